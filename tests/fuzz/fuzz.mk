# tests/fuzz/fuzz.mk - fuzz harnesses; included by the top-level Makefile
# (include tests/fuzz/fuzz.mk), after its variables are defined.
# SPDX-License-Identifier: MIT
#
#   make fuzz-replay      build every harness with $(CC) and the normal
#                         library (build/fuzz-replay/<variant>/) and replay
#                         tests/fuzz/corpus/<h> and tests/fuzz/crashers/<h>
#                         through tests/fuzz/replay.c; fails on any failure.
#                         Part of `make check`. Works with the sanitizer and
#                         valgrind variants too (make BLAS=none SAN=asan
#                         fuzz-replay).
#   make fuzz             libFuzzer (clang, ASan + UBSan, BLAS=none objects
#                         in build/fuzz/): FUZZ_TIME seconds per harness on
#                         build/fuzz/corpus-<h> (seeded from the committed
#                         corpus); new crashers go to tests/fuzz/crashers/<h>/.
#   make fuzz-afl         the same harnesses under AFL++ (afl-clang-fast,
#                         AFL_USE_ASAN=1), afl-fuzz -V FUZZ_TIME each.
#   make fuzz-merge       add to tests/fuzz/corpus/<h> the files of the grown
#                         corpus that reach new edges (libFuzzer -merge=1
#                         -use_counters=0); nothing committed is removed.
#   make fuzz-minimize    a minimal corpus (committed + grown) in
#                         build/fuzz/min-<h>, to review and copy by hand.
#   make fuzz-seeds       regenerate the gen-* seed files (tests/fuzz/gen_seeds.c).
#
# Knobs: FUZZ_HARNESSES (subset), FUZZ_TIME (seconds, default 60),
# FUZZ_ARGS (extra libFuzzer flags), FUZZ_CC (clang), FUZZ_AFL_CC
# (afl-clang-fast).

FUZZ_DIR := tests/fuzz
FUZZ_ALL_HARNESSES := fuzz_checkpoint fuzz_checkpoint_crcfix fuzz_npy \
                      fuzz_text fuzz_wordvec fuzz_api
FUZZ_HARNESSES ?= $(FUZZ_ALL_HARNESSES)
FUZZ_TIME ?= 60
FUZZ_ARGS ?= -timeout=10
FUZZ_CC ?= clang
FUZZ_AFL_CC ?= afl-clang-fast
FUZZ_HDRS := $(FUZZ_DIR)/fuzz_common.h $(IADSR_H)

.PHONY: fuzz-replay fuzz fuzz-afl fuzz-merge fuzz-minimize fuzz-seeds

# ---------------------------------------------------------------------------
# Replay: plain compiler, the variant's static library, no libFuzzer.
# ---------------------------------------------------------------------------
FUZZ_REPLAY_DIR := build/fuzz-replay/$(VARIANT)
FUZZ_REPLAY_BINS := $(addprefix $(FUZZ_REPLAY_DIR)/,$(FUZZ_ALL_HARNESSES))

$(FUZZ_REPLAY_DIR):
	@mkdir -p $@

# static pattern rules only: a plain fuzz_% pattern would also match the
# objects' names
FUZZ_REPLAY_OBJS := $(addsuffix .o,$(FUZZ_REPLAY_BINS)) \
                    $(FUZZ_REPLAY_DIR)/replay.o $(FUZZ_REPLAY_DIR)/gen_seeds.o

$(FUZZ_REPLAY_OBJS): $(FUZZ_REPLAY_DIR)/%.o: $(FUZZ_DIR)/%.c $(FUZZ_HDRS) $(FLAGS_STAMP) | $(FUZZ_REPLAY_DIR)
	$(CC) $(CLI_CFLAGS) -MMD -MP -c $< -o $@

# the crcfix harness is fuzz_checkpoint.c compiled with FUZZ_CRCFIX
$(FUZZ_REPLAY_DIR)/fuzz_checkpoint_crcfix.o: $(FUZZ_DIR)/fuzz_checkpoint.c

$(FUZZ_REPLAY_BINS): $(FUZZ_REPLAY_DIR)/%: $(FUZZ_REPLAY_DIR)/%.o $(FUZZ_REPLAY_DIR)/replay.o $(CLI_SUPPORT_LIB) $(STATIC_LIB) $(LINK_STAMP)
	$(CC) $(LINK_FLAGS) -o $@ $< $(FUZZ_REPLAY_DIR)/replay.o $(CLI_SUPPORT_LIB) $(STATIC_LIB) $(BLAS_LIBS) $(SYS_LIBS)

$(FUZZ_REPLAY_DIR)/gen_seeds: $(FUZZ_REPLAY_DIR)/gen_seeds.o $(STATIC_LIB) $(LINK_STAMP)
	$(CC) $(LINK_FLAGS) -o $@ $< $(STATIC_LIB) $(BLAS_LIBS) $(SYS_LIBS)

fuzz-replay: $(FUZZ_REPLAY_BINS)
	@status=0; \
	for h in $(FUZZ_ALL_HARNESSES); do \
	  env OPENBLAS_NUM_THREADS=1 $(SAN_ENV) $(TEST_WRAPPER) ./$(FUZZ_REPLAY_DIR)/$$h \
	      $(FUZZ_DIR)/corpus/$$h $(FUZZ_DIR)/crashers/$$h || status=1; \
	done; \
	if [ $$status -ne 0 ]; then echo "fuzz-replay: FAILED (rerun one input: $(FUZZ_REPLAY_DIR)/<harness> -n FILE)" >&2; fi; \
	exit $$status

fuzz-seeds: $(FUZZ_REPLAY_DIR)/gen_seeds
	./$(FUZZ_REPLAY_DIR)/gen_seeds $(FUZZ_DIR)/corpus tests/data/golden tests/data/npy

# ---------------------------------------------------------------------------
# libFuzzer: clang, ASan + UBSan, the library with the reference kernels
# (BLAS=none: no uninstrumented BLAS underneath).
# ---------------------------------------------------------------------------
FUZZ_BUILD := build/fuzz
FUZZ_CPPFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L -Iinclude -Isrc -DIADSR_BLAS_NONE
FUZZ_SAN := -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=all \
            -fno-omit-frame-pointer
FUZZ_LIB_OBJS := $(patsubst src/%.c,$(FUZZ_BUILD)/obj/%.o,$(LIB_SRCS) $(CLI_SUPPORT_SRCS))

$(FUZZ_BUILD)/obj:
	@mkdir -p $@

$(FUZZ_BUILD)/obj/%.o: src/%.c | $(FUZZ_BUILD)/obj
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CPPFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

FUZZ_BINS := $(addprefix $(FUZZ_BUILD)/,$(FUZZ_ALL_HARNESSES))

$(addsuffix .o,$(FUZZ_BINS)): $(FUZZ_BUILD)/%.o: $(FUZZ_DIR)/%.c $(FUZZ_HDRS) | $(FUZZ_BUILD)/obj
	$(FUZZ_CC) $(FUZZ_CPPFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

$(FUZZ_BUILD)/fuzz_checkpoint_crcfix.o: $(FUZZ_DIR)/fuzz_checkpoint.c

$(FUZZ_BINS): $(FUZZ_BUILD)/%: $(FUZZ_BUILD)/%.o $(FUZZ_LIB_OBJS)
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $< $(FUZZ_LIB_OBJS) -lm -lpthread

# One line per harness: "fuzz: <h>: <execs> execs in <s> s, <n> crashes".
# The scratch corpus keeps what earlier runs grew; `make clean` resets it.
fuzz: $(addprefix $(FUZZ_BUILD)/,$(FUZZ_HARNESSES))
	@status=0; \
	for h in $(FUZZ_HARNESSES); do \
	  corpus=$(FUZZ_BUILD)/corpus-$$h; crash=$(FUZZ_DIR)/crashers/$$h; \
	  log=$(FUZZ_BUILD)/$$h.log; \
	  mkdir -p $$corpus $$crash; \
	  cp $(FUZZ_DIR)/corpus/$$h/* $$corpus/ 2>/dev/null; \
	  dict=; if [ -f $(FUZZ_DIR)/dict/$$h.dict ]; then dict=-dict=$(FUZZ_DIR)/dict/$$h.dict; fi; \
	  before=`ls $$crash | wc -l`; start=`date +%s`; \
	  env OPENBLAS_NUM_THREADS=1 UBSAN_OPTIONS=print_stacktrace=1 \
	    ASAN_OPTIONS=allocator_may_return_null=1 \
	    ./$(FUZZ_BUILD)/$$h -max_total_time=$(FUZZ_TIME) -print_final_stats=1 \
	    -artifact_prefix=$$crash/ $$dict $(FUZZ_ARGS) $$corpus > $$log 2>&1; rc=$$?; \
	  end=`date +%s`; after=`ls $$crash | wc -l`; \
	  execs=`sed -n 's/^stat::number_of_executed_units: *//p' $$log | tail -1`; \
	  crashes=`expr $$after - $$before`; \
	  echo "fuzz: $$h: $${execs:-0} execs in `expr $$end - $$start` s, $$crashes crashes"; \
	  if [ $$rc -ne 0 ] || [ $$crashes -ne 0 ]; then \
	    status=1; tail -n 40 $$log >&2; echo "fuzz: $$h: FAILED (exit $$rc), log $$log" >&2; \
	  fi; \
	done; \
	exit $$status

fuzz-merge: $(addprefix $(FUZZ_BUILD)/,$(FUZZ_HARNESSES))
	@for h in $(FUZZ_HARNESSES); do \
	  n0=`ls $(FUZZ_DIR)/corpus/$$h | wc -l`; mkdir -p $(FUZZ_BUILD)/corpus-$$h; \
	  env OPENBLAS_NUM_THREADS=1 ./$(FUZZ_BUILD)/$$h -merge=1 -use_counters=0 \
	    $(FUZZ_DIR)/corpus/$$h $(FUZZ_BUILD)/corpus-$$h > $(FUZZ_BUILD)/$$h.merge.log 2>&1 || exit 1; \
	  echo "fuzz-merge: $$h: $$n0 -> `ls $(FUZZ_DIR)/corpus/$$h | wc -l` files in $(FUZZ_DIR)/corpus/$$h"; \
	done

fuzz-minimize: $(addprefix $(FUZZ_BUILD)/,$(FUZZ_HARNESSES))
	@for h in $(FUZZ_HARNESSES); do \
	  rm -rf $(FUZZ_BUILD)/min-$$h && mkdir -p $(FUZZ_BUILD)/min-$$h $(FUZZ_BUILD)/corpus-$$h; \
	  env OPENBLAS_NUM_THREADS=1 ./$(FUZZ_BUILD)/$$h -merge=1 $(FUZZ_BUILD)/min-$$h \
	    $(FUZZ_DIR)/corpus/$$h $(FUZZ_BUILD)/corpus-$$h > $(FUZZ_BUILD)/$$h.merge.log 2>&1 || exit 1; \
	  echo "fuzz-minimize: $$h: `ls $(FUZZ_BUILD)/min-$$h | wc -l` files in $(FUZZ_BUILD)/min-$$h (committed: `ls $(FUZZ_DIR)/corpus/$$h | wc -l`)"; \
	done

# ---------------------------------------------------------------------------
# AFL++: the same LLVMFuzzerTestOneInput harnesses (afl-clang-fast links its
# own driver for -fsanitize=fuzzer), ASan + UBSan via AFL_USE_*.
# ---------------------------------------------------------------------------
FUZZ_AFL_BUILD := build/fuzz-afl
FUZZ_AFL_ENV := AFL_USE_ASAN=1 AFL_USE_UBSAN=1 AFL_QUIET=1
FUZZ_AFL_LIB_OBJS := $(patsubst src/%.c,$(FUZZ_AFL_BUILD)/obj/%.o,$(LIB_SRCS) $(CLI_SUPPORT_SRCS))

$(FUZZ_AFL_BUILD)/obj:
	@mkdir -p $@

$(FUZZ_AFL_BUILD)/obj/%.o: src/%.c | $(FUZZ_AFL_BUILD)/obj
	@mkdir -p $(@D)
	$(FUZZ_AFL_ENV) $(FUZZ_AFL_CC) $(FUZZ_CPPFLAGS) -g -O1 -c $< -o $@

FUZZ_AFL_BINS := $(addprefix $(FUZZ_AFL_BUILD)/,$(FUZZ_ALL_HARNESSES))

$(addsuffix .o,$(FUZZ_AFL_BINS)): $(FUZZ_AFL_BUILD)/%.o: $(FUZZ_DIR)/%.c $(FUZZ_HDRS) | $(FUZZ_AFL_BUILD)/obj
	$(FUZZ_AFL_ENV) $(FUZZ_AFL_CC) $(FUZZ_CPPFLAGS) -g -O1 -c $< -o $@

$(FUZZ_AFL_BUILD)/fuzz_checkpoint_crcfix.o: $(FUZZ_DIR)/fuzz_checkpoint.c

$(FUZZ_AFL_BINS): $(FUZZ_AFL_BUILD)/%: $(FUZZ_AFL_BUILD)/%.o $(FUZZ_AFL_LIB_OBJS)
	$(FUZZ_AFL_ENV) $(FUZZ_AFL_CC) -g -O1 -fsanitize=fuzzer -o $@ $< $(FUZZ_AFL_LIB_OBJS) -lm -lpthread

# One line per harness: "fuzz-afl: <h>: <execs> execs in <s> s, <n> crashes,
# <m> hangs". Crashing inputs are copied to tests/fuzz/crashers/<h>/afl-*.
fuzz-afl: $(addprefix $(FUZZ_AFL_BUILD)/,$(FUZZ_HARNESSES))
	@status=0; \
	for h in $(FUZZ_HARNESSES); do \
	  out=$(FUZZ_AFL_BUILD)/out-$$h; crash=$(FUZZ_DIR)/crashers/$$h; \
	  rm -rf $$out; mkdir -p $$crash; \
	  dict=; if [ -f $(FUZZ_DIR)/dict/$$h.dict ]; then dict="-x $(FUZZ_DIR)/dict/$$h.dict"; fi; \
	  env OPENBLAS_NUM_THREADS=1 AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1 \
	    AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_SKIP_CRASHES=1 \
	    afl-fuzz -i $(FUZZ_DIR)/corpus/$$h -o $$out -V $(FUZZ_TIME) $$dict \
	    -- ./$(FUZZ_AFL_BUILD)/$$h > $(FUZZ_AFL_BUILD)/$$h.log 2>&1; rc=$$?; \
	  st=$$out/default/fuzzer_stats; \
	  if [ ! -f $$st ]; then \
	    status=1; tail -n 30 $(FUZZ_AFL_BUILD)/$$h.log >&2; \
	    echo "fuzz-afl: $$h: afl-fuzz did not run (exit $$rc)" >&2; continue; \
	  fi; \
	  execs=`sed -n 's/^execs_done *: *//p' $$st`; secs=`sed -n 's/^run_time *: *//p' $$st`; \
	  crashes=`sed -n 's/^saved_crashes *: *//p' $$st`; hangs=`sed -n 's/^saved_hangs *: *//p' $$st`; \
	  echo "fuzz-afl: $$h: $${execs:-0} execs in $${secs:-0} s, $${crashes:-0} crashes, $${hangs:-0} hangs"; \
	  for f in $$out/default/crashes/id*; do \
	    [ -f "$$f" ] || continue; \
	    cp "$$f" $$crash/afl-`sha1sum "$$f" | cut -c1-16`; status=1; \
	  done; \
	done; \
	exit $$status

-include $(wildcard $(FUZZ_REPLAY_DIR)/*.d $(FUZZ_BUILD)/*.d $(FUZZ_BUILD)/obj/*.d $(FUZZ_BUILD)/obj/*/*.d)
