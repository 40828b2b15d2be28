#!/bin/sh
# Tests of `iadsr import` (interaction logs to sequence files).
# Usage (from the repository root):  sh tests/cli_import_test.sh bin/iadsr
# Every input is generated here. Scratch files go under
# ${IADSR_TEST_TMPDIR:-/tmp}. The checks against the independent reference
# (k-core, dedup, min-rating, ordering on a random log), the JSON parse and
# the random logs need python3; they are skipped with a message without it.
# SPDX-License-Identifier: MIT

set -u

NAME=cli_import_test
. "$(dirname "$0")/cli_harness.sh"

HAVE_PY=0
if [ -x /usr/bin/python3 ]; then
    PY=/usr/bin/python3
    HAVE_PY=1
elif command -v python3 >/dev/null 2>&1; then
    PY=python3
    HAVE_PY=1
fi

skip() {
    skipped=$((skipped + 1))
    echo "cli_import_test: SKIP: $* (python3 not found)"
}
# same DESC A B: files A and B are byte for byte equal
same() {
    if cmp -s "$2" "$3"; then ok; else
        bad "$1: $2 and $3 differ"
        diff "$2" "$3" 2>&1 | head -10 >&2
    fi
}
imp() { run "$BIN" import "$@"; }

# ------------------------------------------------------------------ help --
imp --help
expect_rc "import --help" 0
check "import --help shows the usage" grep -q "Usage: iadsr import" "$T/out"
check "import --help lists the filters" grep -q -- "--user-core" "$T/out"
run "$BIN" --help
check "iadsr --help lists import" grep -q "^  import" "$T/out"
run "$BIN" help import
expect_rc "iadsr help import" 0

# ---------------------------------------------------- one log, four forms --
# user, item, rating, time; string ids with a comma, a double quote and
# UTF-8; equal times (rows 1/5 and 2/6), repeated pairs (ann/B00,1,
# ann/X-9, o"neil/caf\303\251), users on non-contiguous lines, rows out of
# time order.
CAFE=$(printf 'caf\303\251')
{
    printf 'ann\tB00,1\t5\t100\n'
    printf 'smith, john\tX-9\t3\t50\n'
    printf 'ann\tX-9\t4\t90\n'
    printf 'o"neil\t%s\t2\t70\n' "$CAFE"
    printf 'ann\t%s\t5\t100\n' "$CAFE"
    printf 'smith, john\tB00,1\t1\t50\n'
    printf 'ann\tB00,1\t3\t120\n'
    printf 'o"neil\tX-9\t5\t60\n'
    printf 'zed\tQ\t4\t10\n'
    printf 'smith, john\t%s\t5\t40\n' "$CAFE"
    printf 'ann\tX-9\t2\t95\n'
    printf 'o"neil\t%s\t4\t80\n' "$CAFE"
} >base.tsv

# (1) MovieLens u.data: tab, no header, integer ids (mapped back below)
awk -F '\t' 'BEGIN { OFS = "\t" }
    !($1 in u) { u[$1] = 100 + 7 * nu++; print $1, u[$1] > "umap.tsv" }
    !($2 in it) { it[$2] = 40 - 3 * ni++; print $2, it[$2] > "imap.tsv" }
    { print u[$1], it[$2], $3, $4 }' base.tsv >u.data
# (2) MovieLens ratings.dat: '::', no header
awk -F '\t' '{ print $1 "::" $2 "::" $3 "::" $4 }' base.tsv >ratings.dat
# (3) CSV with a header (columns in another order), RFC-4180 quotes
awk -F '\t' 'function q(s) {
        if (s ~ /[",]/) { gsub(/"/, "\"\"", s); return "\"" s "\"" }
        return s
    }
    BEGIN { print "timestamp,userId,movieId,rating" }
    { print $4 "," q($1) "," q($2) "," $3 }' base.tsv >log.csv
# (4) RecBole atomic .inter
{
    printf 'user_id:token\titem_id:token\trating:float\ttimestamp:float\n'
    cat base.tsv
} >log.inter

printf '1 1 1 2 3 2\n2 3 1 2\n3 1 3 3\n4 4\n' >expect.txt
{
    printf 'kind\tid\texternal\n'
    printf 'user\t1\tann\nuser\t2\tsmith, john\nuser\t3\to"neil\nuser\t4\tzed\n'
    printf 'item\t1\tX-9\nitem\t2\tB00,1\nitem\t3\t%s\nitem\t4\tQ\n' "$CAFE"
} >expect_vocab.tsv

for f in u.data ratings.dat log.csv log.inter; do
    imp --in "$f" --out "s_$f.txt" --vocab "v_$f.tsv"
    expect_rc "import $f" 0
    expect_no_out "import $f prints nothing on stdout"
    same "import $f: the expected sequences (time order, stable ties)" expect.txt "s_$f.txt"
done
expect_err "the .inter typed header is read" "user: 'user_id' (column 1)"
same "ratings.dat and the CSV give the same vocabulary" v_ratings.dat.tsv v_log.csv.tsv
same "the .inter file gives the same vocabulary" v_log.inter.tsv v_log.csv.tsv
same "the vocabulary: header, users, items in dense order" expect_vocab.tsv v_log.csv.tsv
# u.data: map the integer ids back through umap/imap
awk -F '\t' 'BEGIN { OFS = "\t" }
    FILENAME == "umap.tsv" { u[$2] = $1; next }
    FILENAME == "imap.tsv" { it[$2] = $1; next }
    FNR == 1 { print; next }
    $1 == "user" { print $1, $2, u[$3]; next }
    { print $1, $2, it[$3] }' umap.tsv imap.tsv v_u.data.tsv >v_u.mapped.tsv
same "u.data's vocabulary maps back to the string ids" v_u.mapped.tsv v_log.csv.tsv
check "no temporary files left" sh -c '! ls | grep -F .tmp. >/dev/null'

# determinism: the same log twice gives the same bytes
imp --in log.csv --out s_again.txt --vocab v_again.tsv --quiet
same "a second run gives the same sequence file" s_log.csv.txt s_again.txt
same "a second run gives the same vocabulary" v_log.csv.tsv v_again.tsv
expect_no_out "--quiet: nothing on stdout"
check "--quiet: nothing on stderr" test ! -s "$T/err"

# the same formats chosen explicitly / by other means
cp u.data plain.txt
imp --in plain.txt --format udata --out s_x1.txt --vocab v_x1.tsv
same "--format udata on a .txt file" expect.txt s_x1.txt
imp --in plain.txt --out s_x2.txt --vocab v_x2.tsv --user 1 --item 2 --time 4
same "a tab file sniffed from its first line (tsv, no header)" expect.txt s_x2.txt
imp --in u.data --format delim --delimiter '\t' --time 4 --out s_x3.txt --vocab v_x3.tsv
same "--format delim --delimiter '\\t'" expect.txt s_x3.txt
imp --in ratings.dat --format delim --delimiter '::' --no-header --time 4 --out s_x4.txt --vocab v_x4.tsv
same "--format delim --delimiter '::' (multi-byte)" expect.txt s_x4.txt
cp ratings.dat ratings_dat.log
imp --in ratings_dat.log --out s_x5.txt --vocab v_x5.tsv
same "a '::' file sniffed from its first line" expect.txt s_x5.txt
sed 's/,/;/g' log.csv >log_semi.txt
# the quoted ids hold commas, so re-quote for ';'
awk -F '\t' 'function q(s) { if (s ~ /[";]/) { gsub(/"/, "\"\"", s); return "\"" s "\"" } return s }
    BEGIN { print "timestamp;userId;movieId;rating" }
    { print $4 ";" q($1) ";" q($2) ";" $3 }' base.tsv >log_semi.csv
imp --in log_semi.csv --delimiter ';' --out s_x6.txt --vocab v_x6.tsv
same "a quoted CSV with --delimiter ';'" expect.txt s_x6.txt
same "a quoted CSV with --delimiter ';': the same vocabulary" v_log.csv.tsv v_x6.tsv
# by name and by position, header forced
imp --in log.csv --user userId --item movieId --time timestamp --out s_x7.txt --vocab v_x7.tsv
same "columns by name" expect.txt s_x7.txt
imp --in log.csv --header --user 2 --item 3 --time 1 --out s_x8.txt --vocab v_x8.tsv
same "columns by position" expect.txt s_x8.txt
imp --in log.csv --user USERID --item MovieID --time TimeStamp --out s_x9.txt --vocab v_x9.tsv
same "column names match case-insensitively" expect.txt s_x9.txt

# CRLF line ends, a UTF-8 BOM, blank lines, blanks around fields
{
    printf '\357\273\277'
    awk 'NR == 3 { print "\r" } { printf "%s\r\n", $0 }' log.csv | sed 's/,/ , /'
    printf '\r\n\r\n'
} >log_crlf.csv
imp --in log_crlf.csv --out s_crlf.txt --vocab v_crlf.tsv
expect_rc "CRLF + BOM + blank lines + blanks around fields" 0
same "CRLF + BOM: the same sequences" expect.txt s_crlf.txt
same "CRLF + BOM: the same vocabulary" v_log.csv.tsv v_crlf.tsv

# ---------------------------------------------------------------- filters --
printf '1 1 2 3\n2 3 1 2\n3 1 3\n4 4\n' >expect_first.txt
printf '1 1 2 3\n2 2 1 3\n3 1 2\n4 4\n' >expect_last.txt
printf '1 1 2 3 2\n2 3 1\n3 1 3\n4 4\n' >expect_minr.txt
printf '1 1 2 3 1 2\n2 2 1 3\n3 3 2 3\n4 4\n' >expect_fileorder.txt
for f in ratings.dat log.csv; do
    imp --in "$f" --dedup first --out "first_$f.txt" --vocab /dev/null
    same "--dedup first ($f)" expect_first.txt "first_$f.txt"
    imp --in "$f" --dedup last --out "last_$f.txt" --vocab /dev/null
    same "--dedup last ($f)" expect_last.txt "last_$f.txt"
    imp --in "$f" --min-rating 3 --out "minr_$f.txt" --vocab /dev/null
    same "--min-rating 3 ($f)" expect_minr.txt "minr_$f.txt"
done
expect_err "--min-rating: the dropped rows are counted" "3 below --min-rating"
imp --in log.csv --time none --out s_fo.txt --vocab /dev/null
same "--time none keeps the file order" expect_fileorder.txt s_fo.txt
imp --in log.csv --dedup first --out s_d.txt --vocab /dev/null
expect_err "--dedup: the dropped pairs are counted" "3 repeated pairs"
# k-core by hand: items with >= 2 users' rows: X-9 (5), B00,1 (3), cafe (4);
# Q (1) goes, then zed has nothing left
imp --in log.csv --item-core 2 --out s_k.txt --vocab v_k.tsv
check "--item-core 2: zed and Q are gone" sh -c "printf '1 1 1 2 3 2\n2 3 1 2\n3 1 3 3\n' | cmp -s - s_k.txt"
expect_err "--item-core 2: the removed user and item are counted" "removed 1 users, 1 items, 1 interactions"
imp --in log.csv --min-len 4 --out s_m.txt --vocab v_m.tsv
check "--min-len 4 keeps ann only, renumbered" sh -c "printf '1 1 1 2 3 2\n' | cmp -s - s_m.txt"
check "--min-len 4: the vocabulary has 1 user and 3 items" sh -c "test \$(wc -l <v_m.tsv) -eq 5"

# --------------------------------------------------------------- --json --
imp --in log.csv --out s_j.txt --vocab v_j.tsv --json --min-rating 3 --skip-bad
expect_rc "--json" 0
if [ "$HAVE_PY" -eq 1 ]; then
    check "--json: exactly one JSON object with the counts" "$PY" -c '
import json, sys
text = open(sys.argv[1]).read()
assert text.endswith("}\n") and text.count("\n") == 1, text
j = json.loads(text)
assert j["users"] == 4 and j["items"] == 4 and j["interactions"] == 9, j
assert j["rows_read"] == 12 and j["min_rating_dropped"] == 3, j
assert j["bad_rows"] == 0 and j["dedup_dropped"] == 0, j
assert j["kcore_users_removed"] == 0 and j["format"] == "csv", j
assert abs(j["density"] - 9 / 16) < 1e-9, j
' "$T/out"
else
    skip "--json parse"
fi

# ------------------------------------------------------------- item text --
{
    printf 'asin\ttitle\tbrand\n'
    printf 'Q\tBlue thing\tAcme\n'
    printf 'X-9\tRed large\tZed\n'
    printf 'NOPE\tUnknown item\tZed\n'
    printf '%s\tGreen small\tAcme\n' "$CAFE"
    printf 'X-9\tRed again\tZed\n'
} >items.tsv
imp --in log.csv --out s_t.txt --vocab v_t.tsv --item-text items.tsv --text-out items_dense.tsv
expect_rc "--item-text" 0
printf 'item_id\ttitle\tbrand\n1\tRed large\tZed\n2\t\t\n3\tGreen small\tAcme\n4\tBlue thing\tAcme\n' >expect_items.tsv
same "--text-out: one row per dense id, re-keyed, empty text for B00,1" expect_items.tsv items_dense.tsv
expect_err "--text-out: unknown, repeated and missing items counted" "3 rows re-keyed, 1 skipped (item not in the output), 1 skipped (item repeated), 1 items without a row"
printf 'red 1 0 0 0\ngreen 0 1 0 0\nblue 0 0 1 0\nlarge 0 0 0 1\nsmall 0 0 0 -1\n' >vecs.txt
run "$BIN" embed-text --items items_dense.tsv --text-col title --vectors vecs.txt --out e.npy
expect_rc "embed-text reads the re-keyed item texts" 0
check "embed-text on the re-keyed texts: a row for every item (5 x 4 .npy)" \
    sh -c "test \$(wc -c <e.npy) -eq \$((128 + 4 * 5 * 4))"

# -------------------------------------------------------------- errors --
printf 'user,item,time\na,x,1\nb,y,2\nc\nd,z,4\n' >bad.csv
imp --in bad.csv --out e1.txt --vocab e1.tsv
expect_rc "a row with too few fields" 1
expect_err "a row with too few fields names FILE:LINE" "bad.csv:4:"
check "a failed import writes nothing" sh -c '! test -e e1.txt && ! test -e e1.tsv'
imp --in bad.csv --out e1.txt --vocab e1.tsv --skip-bad --json
expect_rc "--skip-bad" 0
check "--skip-bad counts the row" grep -q '"bad_rows":1' "$T/out"
expect_err "--skip-bad names the first bad row" "first bad row: bad.csv:4:"
printf 'user,item,time\na,x,1\nb,y,yesterday\n' >badtime.csv
imp --in badtime.csv --out e2.txt --vocab e2.tsv
expect_rc "a time that is not a number" 1
expect_err "a time that is not a number names FILE:LINE" "badtime.csv:3: time 'yesterday'"
printf 'user,item,rating\na,x,1\nb,y,good\n' >badrating.csv
imp --in badrating.csv --out e3.txt --vocab e3.tsv --min-rating 1
expect_rc "a rating that is not a number" 1
expect_err "a rating that is not a number names FILE:LINE" "badrating.csv:3: rating 'good'"
imp --in badrating.csv --out e3.txt --vocab e3.tsv
expect_rc "the rating column is not read without --min-rating" 0
printf 'user,item\na,x\n"b,y\nc,z\n' >badquote.csv
imp --in badquote.csv --out e4.txt --vocab e4.tsv
expect_rc "an unterminated quote" 1
expect_err "an unterminated quote names the line" "badquote.csv:3: field 1: unterminated quote"
printf 'user,item\na,x\n"b"c,y\n' >badquote2.csv
imp --in badquote2.csv --out e4.txt --vocab e4.tsv
expect_rc "text after a closing quote" 1
expect_err "text after a closing quote names the line" "badquote2.csv:3:"
printf 'user,item\na,x\n"b\tb",y\n' >tabid.csv
imp --in tabid.csv --out e5.txt --vocab e5.tsv
expect_rc "an id with a tab" 1
expect_err "an id with a tab is refused naming the line" "tabid.csv:3: the user id (column 1) contains a tab"
printf 'user,item\na,x\n"b\nb",y\n' >nlid.csv
imp --in nlid.csv --out e5.txt --vocab e5.tsv
expect_rc "an id with a line break" 1
expect_err "an id with a line break is refused naming the line" "nlid.csv:3: the user id (column 1) contains a tab or a line break"
printf 'user,item\na,x\nb,\n' >emptyid.csv
imp --in emptyid.csv --out e5.txt --vocab e5.tsv
expect_err "an empty id is refused" "emptyid.csv:3: the item id (column 2) is empty"
printf 'user,item\na,x\nb\000,y\n' >nul.csv
imp --in nul.csv --out e6.txt --vocab e6.tsv
expect_rc "a NUL byte" 1
expect_err "a NUL byte is refused" "nul.csv:3: NUL byte"
imp --in nul.csv --out e6.txt --vocab e6.tsv --skip-bad
expect_rc "a NUL byte even with --skip-bad" 1
: >empty.csv
imp --in empty.csv --out e7.txt --vocab e7.tsv
expect_rc "an empty file" 1
expect_err "an empty file says so" "no data rows"
printf 'user,item\n' >hdronly.csv
imp --in hdronly.csv --out e7.txt --vocab e7.tsv
expect_rc "a header only" 1
expect_err "a header only says so" "only a header line"
imp --in missing.csv --out e7.txt --vocab e7.tsv
expect_rc "a missing file" 1
expect_err "a missing file is named" "missing.csv"
imp --in log.csv --user-core 5 --item-core 5 --out e8.txt --vocab e8.tsv
expect_rc "a k-core that removes everything" 1
expect_err "a k-core that removes everything says which filter" "--user-core 5 / --item-core 5 removed every interaction"
imp --in log.csv --min-len 6 --out e8.txt --vocab e8.tsv
expect_rc "--min-len that removes everything" 1
expect_err "--min-len that removes everything says so" "--min-len 6 removed every user (the longest sequence left has 5"
imp --in log.csv --min-rating 9 --out e8.txt --vocab e8.tsv
expect_rc "--min-rating that removes everything" 1
expect_err "--min-rating that removes everything says so" "--min-rating 9 removed every row"
check "the failed filters wrote nothing" sh -c '! test -e e8.txt && ! test -e e8.tsv'

# usage errors: exit 2
imp --in log.csv --user nosuch --out e9.txt --vocab e9.tsv
expect_rc "an unknown column" 2
expect_err "an unknown column lists the header" "no column 'nosuch' in the header of log.csv (columns: 'timestamp', 'userId', 'movieId', 'rating')"
imp --in log.csv --item 9 --out e9.txt --vocab e9.tsv
expect_rc "a column position past the header" 2
imp --in u.data --user user --out e9.txt --vocab e9.tsv --no-header
expect_rc "a column name without a header" 2
expect_err "a column name without a header says so" "without a header line"
imp --in log.csv --out log.csv --vocab e9.tsv
expect_rc "--out the same file as --in" 2
expect_err "--out the same file as --in is refused" "name the same file"
imp --in log.csv --out e9.txt --vocab ./e9.txt
expect_rc "--vocab the same file as --out" 2
imp --in log.csv --out e9.txt --vocab e9.tsv --item-text items.tsv --text-out items.tsv
expect_rc "--text-out the same file as --item-text" 2
imp --in log.csv --out e9.txt --vocab e9.tsv --item-text items.tsv
expect_rc "--item-text without --text-out" 2
imp --in log.csv --out e9.txt --vocab e9.tsv --format delim
expect_rc "--format delim without --delimiter" 2
imp --in log.csv --out e9.txt --vocab e9.tsv --format tsv --delimiter ';'
expect_rc "--delimiter with a fixed-delimiter format" 2
imp --in log.csv --out e9.txt --vocab e9.tsv --format delim --delimiter '\q'
expect_rc "--delimiter with an unknown escape" 2
imp --in log.csv --out e9.txt --vocab e9.tsv --header --no-header
expect_rc "--header with --no-header" 2
imp --in log.csv --out e9.txt --vocab e9.tsv --dedup sometimes
expect_rc "--dedup with an unknown mode" 2
printf 'user,item\na,x\n' >norating.csv
imp --in norating.csv --out e9.txt --vocab e9.tsv --min-rating 3
expect_rc "--min-rating without a rating column" 2
expect_err "--min-rating without a rating column says so" "--min-rating needs a rating column"
imp --in log.csv --out e9.txt
expect_rc "--vocab is required" 2
printf 'just one column\n' >one.txt
imp --in one.txt --out e9.txt --vocab e9.tsv
expect_rc "an undetectable format" 2
expect_err "an undetectable format asks for --format" "pass --format"
check "the usage errors wrote nothing" sh -c '! test -e e9.txt && ! test -e e9.tsv'

# never crash: a 131072-byte id, a line of many fields, odd bytes
awk 'BEGIN { s = "x"; for (i = 0; i < 17; i++) s = s s; print "user\titem"; print "u1\t" s; print "u1\tb" }' >long.tsv
imp --in long.tsv --out s_long.txt --vocab v_long.tsv
expect_rc "a 128 KiB item id" 0
check "a 128 KiB item id is kept whole" sh -c "test \$(awk -F '\t' 'NR == 3 { print length(\$3) }' v_long.tsv) -eq 131072"
awk 'BEGIN { printf "a,b"; for (i = 0; i < 50000; i++) printf ",%d", i; print "" }' >wide.csv
imp --in wide.csv --no-header --out s_wide.txt --vocab v_wide.tsv
expect_rc "a row of 50002 fields" 0
printf 'user,item\n\377\376,\200\n"","x"\n' >odd.csv
imp --in odd.csv --out s_odd.txt --vocab v_odd.tsv --skip-bad
expect_rc "invalid UTF-8 ids and an empty quoted id (skipped)" 0

# --------------------------------------------- the reference (python3) --
if [ "$HAVE_PY" -eq 1 ]; then
    cat >ref.py <<'EOF'
# An independent implementation of what docs/IMPORT.md specifies, on a
# random log: python3 ref.py LOG CASES (writes ref_N.txt / ref_N.voc).
import random, sys

rnd = random.Random(20250518)
# heavy-tailed: many short users and rare items, so that the k-core
# cascades over several rounds
users = ["u%d" % k for k in range(300)] + ["mr, x", "o'k", "dup\u00e9", "sp ace"]
items = ["i%03d" % k for k in range(600)] + ["it,1", "\u00fcber", "a b"]
rows = []
for n in range(4000):
    u = users[min(int(rnd.paretovariate(0.8)) - 1, len(users) - 1)] \
        if rnd.random() < 0.5 else rnd.choice(users)
    it = items[min(int(rnd.paretovariate(0.7)) - 1, len(items) - 1)] \
        if rnd.random() < 0.5 else rnd.choice(items)
    rows.append((u, it, rnd.randint(1, 5), rnd.randint(0, 60)))
with open(sys.argv[1], "w", encoding="utf-8") as f:
    f.write("user\titem\trating\ttime\n")
    for u, it, r, t in rows:
        f.write("%s\t%s\t%d\t%d\n" % (u, it, r, t))

def reference(min_rating, dedup, ucore, icore, min_len):
    first = {}
    per = {}
    for idx, (u, it, r, t) in enumerate(rows):
        first.setdefault(u, len(first))
        per.setdefault(u, []).append((t, idx, it, r))
    seqs = {}
    for u, lst in per.items():
        lst.sort()  # by time, then file position: a stable order
        s = [it for (t, idx, it, r) in lst
             if min_rating is None or r >= min_rating]
        if dedup == "first":
            seen, out = set(), []
            for it in s:
                if it not in seen:
                    seen.add(it)
                    out.append(it)
            s = out
        elif dedup == "last":
            seen, out = set(), []
            for it in reversed(s):
                if it not in seen:
                    seen.add(it)
                    out.append(it)
            s = out[::-1]
        seqs[u] = s
    uthr, ithr = max(ucore, min_len, 1), max(icore, 1)
    while True:  # whole rounds until nothing changes
        cnt = {}
        for s in seqs.values():
            for it in s:
                cnt[it] = cnt.get(it, 0) + 1
        new = {}
        for u, s in seqs.items():
            if len(s) < uthr:
                continue
            new[u] = [it for it in s if cnt[it] >= ithr]
        new = {u: s for u, s in new.items() if s}
        if new == seqs:
            break
        seqs = new
    order = sorted(seqs, key=lambda u: first[u])
    ids, lines, voc = {}, [], ["kind\tid\texternal"]
    for k, u in enumerate(order):
        for it in seqs[u]:
            ids.setdefault(it, len(ids) + 1)
        lines.append(" ".join([str(k + 1)] + [str(ids[it]) for it in seqs[u]]))
        voc.append("user\t%d\t%s" % (k + 1, u))
    for it, k in sorted(ids.items(), key=lambda p: p[1]):
        voc.append("item\t%d\t%s" % (k, it))
    return lines, voc

cases = [
    "", "--dedup first", "--dedup last", "--min-rating 3",
    "--user-core 5", "--item-core 5", "--user-core 5 --item-core 5",
    "--user-core 8 --item-core 4 --dedup first",
    "--user-core 3 --item-core 20 --min-rating 2 --dedup last",
    "--item-core 5 --min-len 12", "--min-len 30 --user-core 2 --item-core 3",
]
with open(sys.argv[2], "w") as f:
    for n, opts in enumerate(cases):
        a = opts.split()
        get = lambda k, d: type(d)(a[a.index(k) + 1]) if k in a else d
        mr = get("--min-rating", 0) if "--min-rating" in a else None
        lines, voc = reference(mr, get("--dedup", "none"), get("--user-core", 0),
                               get("--item-core", 0), get("--min-len", 1))
        with open("ref_%d.txt" % n, "w", encoding="utf-8") as g:
            g.write("".join(l + "\n" for l in lines))
        with open("ref_%d.voc" % n, "w", encoding="utf-8") as g:
            g.write("".join(l + "\n" for l in voc))
        assert lines, ("empty reference", opts)
        f.write("%d %s\n" % (n, opts))
EOF
    if "$PY" ref.py big.tsv cases.txt; then
        ok
        while read -r n opts; do
            # shellcheck disable=SC2086 # the options are split on purpose
            imp --in big.tsv --out "big_$n.txt" --vocab "big_$n.voc" $opts
            expect_rc "reference case $n ($opts)" 0
            same "reference case $n ($opts): sequences" "ref_$n.txt" "big_$n.txt"
            same "reference case $n ($opts): vocabulary" "ref_$n.voc" "big_$n.voc"
        done <cases.txt
        # the k-core holds in the output: every user and item >= K
        check "the (5, 5)-core: every user and item has >= 5 interactions" awk '
            { if (NF - 1 < 5) exit 1; for (i = 2; i <= NF; i++) c[$i]++ }
            END { for (k in c) if (c[k] < 5) exit 1 }' big_6.txt
        # the same log as CSV (quoted ids) gives the same bytes
        "$PY" -c '
import csv, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1], encoding="utf-8")]
with open(sys.argv[2], "w", newline="", encoding="utf-8") as f:
    w = csv.writer(f)
    for r in rows:
        w.writerow([r[3], r[1], r[0], r[2]])
' big.tsv big.csv
        imp --in big.csv --out big_csv.txt --vocab big_csv.voc --user-core 5 --item-core 5
        same "the random log as CSV: the same (5, 5)-core" ref_6.txt big_csv.txt
        same "the random log as CSV: the same vocabulary" ref_6.voc big_csv.voc
    else
        bad "python3 ref.py failed"
    fi
else
    skip "the reference implementation checks (k-core, dedup, min-rating, order)"
fi

# ------------------------------------------------- import -> train -> rec --
# 60 users of 8 items over 40 items, deterministic, as a CSV with string ids
awk 'BEGIN {
        print "user_id,item_id,timestamp"
        for (u = 0; u < 60; u++)
            for (k = 0; k < 8; k++)
                printf "\"user %d\",sku-%d,%d\n", u, (u * 7 + k * 3) % 40, 1000 + (u * 13 + k * 17) % 50 + k * 50
    }' >e2e.csv
imp --in e2e.csv --out e2e.txt --vocab e2e.tsv --min-len 3
expect_rc "round trip: import" 0
run "$BIN" train --data e2e.txt --out e2e.iadsr --epochs 1 --dim 8 --quiet
expect_rc "round trip: train --epochs 1 --dim 8 on the import" 0
run "$BIN" recommend --model e2e.iadsr --data e2e.txt --k 5
expect_rc "round trip: recommend on the import" 0
check "round trip: recommend prints 60 users" sh -c "test \$(wc -l <'$T/out') -eq 60"

finish "python3 missing"
