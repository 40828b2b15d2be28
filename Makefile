# libiadsr - plain GNU make build (no autotools). See docs/BUILD.md.
# SPDX-License-Identifier: MIT
#
#   make [all]             lib/libiadsr.{a,so*,pc} and bin/iadsr
#   make check             unit tests (Check) + tests/cli_test.sh
#   make install / uninstall   PREFIX, LIBDIR, INCLUDEDIR, BINDIR, PKGCONFIGDIR, DESTDIR
#   make examples          install into build/stage, build and run examples/*.c
#   make check-install     install into a temporary DESTDIR; build an example
#                          against it (pkg-config shared/static, CMake), check the man page
#   make dist / distcheck  build/libiadsr-VERSION.tar.gz of the git-tracked files / build it
#   make asan / valgrind   unit tests in a BLAS=none sanitizer / valgrind build
#   make header-check symbols-check version-check lint docs demo bench clean help
#
# Knobs: BLAS=openblas|cblas|none (BLAS_CFLAGS, BLAS_LIBS), WERROR=1,
# CFLAGS / CPPFLAGS / LDFLAGS (appended to the required flags, never replace
# them), CC, AR, NM, PKG_CONFIG.

.DEFAULT_GOAL := all
SHELL := /bin/sh
.DELETE_ON_ERROR:
.SUFFIXES:

# ---------------------------------------------------------------------------
# Version: parsed from the public header (the single source of truth).
# While the major version is 0 every minor release may break the ABI, so the
# SONAME carries 0.MINOR; from 1.0 on it carries MAJOR only.
# ---------------------------------------------------------------------------
IADSR_H := include/iadsr.h
SYMBOLS_LIST := tests/abi/libiadsr.symbols
version_macro = $(shell sed -n 's/^.define[[:blank:]]\{1,\}IADSR_VERSION_$(1)[[:blank:]]\{1,\}\([0-9]\{1,\}\).*/\1/p' $(IADSR_H))
VERSION_MAJOR := $(call version_macro,MAJOR)
VERSION_MINOR := $(call version_macro,MINOR)
VERSION_PATCH := $(call version_macro,PATCH)
ifeq ($(strip $(VERSION_MAJOR)),)
$(error could not parse IADSR_VERSION_MAJOR from $(IADSR_H))
endif
ifeq ($(strip $(VERSION_MINOR)),)
$(error could not parse IADSR_VERSION_MINOR from $(IADSR_H))
endif
ifeq ($(strip $(VERSION_PATCH)),)
$(error could not parse IADSR_VERSION_PATCH from $(IADSR_H))
endif
VERSION := $(VERSION_MAJOR).$(VERSION_MINOR).$(VERSION_PATCH)
ifeq ($(VERSION_MAJOR),0)
SOVERSION := 0.$(VERSION_MINOR)
else
SOVERSION := $(VERSION_MAJOR)
endif

# ---------------------------------------------------------------------------
# Install locations (DESTDIR is used only by install/uninstall).
# ---------------------------------------------------------------------------
PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
BINDIR ?= $(PREFIX)/bin
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
CMAKEDIR ?= $(LIBDIR)/cmake/iadsr
MANDIR ?= $(PREFIX)/share/man
DESTDIR ?=
INSTALL ?= install

AR ?= ar
NM ?= nm
PKG_CONFIG ?= pkg-config
VALGRIND ?= valgrind
CPPCHECK ?= cppcheck

# ---------------------------------------------------------------------------
# BLAS backend.
# ---------------------------------------------------------------------------
BLAS ?= openblas
ifeq ($(BLAS),openblas)
  ifeq ($(origin BLAS_CFLAGS),undefined)
    BLAS_CFLAGS := $(shell $(PKG_CONFIG) --cflags openblas 2>/dev/null)
  endif
  ifeq ($(origin BLAS_LIBS),undefined)
    BLAS_LIBS := $(shell $(PKG_CONFIG) --libs openblas 2>/dev/null || echo -lopenblas)
  endif
  BLAS_DEFS := -DIADSR_BLAS_OPENBLAS
else ifeq ($(BLAS),cblas)
  # Any CBLAS; e.g. make BLAS=cblas BLAS_CFLAGS=-I/opt/blis/include BLAS_LIBS=-lblis
  BLAS_CFLAGS ?=
  BLAS_LIBS ?= -lblas
  BLAS_DEFS := -DIADSR_BLAS_CBLAS
else ifeq ($(BLAS),none)
  # Internal reference kernels only (deterministic oracle; sanitizer builds).
  override BLAS_CFLAGS :=
  override BLAS_LIBS :=
  BLAS_DEFS := -DIADSR_BLAS_NONE
else
  $(error BLAS must be openblas, cblas or none (got '$(BLAS)'))
endif

# ---------------------------------------------------------------------------
# Build variants. Each BLAS/sanitizer combination has its own object
# directory build/<variant>/ so that objects never mix. The plain variants
# write the user-facing outputs lib/ and bin/iadsr; the sanitizer variants
# keep everything under build/<variant>/. The unit-test runner is always
# build/<variant>/check_iadsr (e.g. build/openblas/check_iadsr).
# SAN is normally set by the asan / valgrind targets, not by hand.
# ---------------------------------------------------------------------------
SAN ?=
SAN_CFLAGS :=
SAN_LDFLAGS :=
SAN_ENV :=
TEST_WRAPPER :=
ifeq ($(SAN),)
else ifeq ($(SAN),asan)
  SAN_CFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all \
                -fno-omit-frame-pointer -O1 -g
  SAN_LDFLAGS := -fsanitize=address,undefined
  # a request too large for any machine must come back NULL (the library's
  # NOMEM path), not abort the process as ASan's allocator does by default
  SAN_ENV := CK_FORK=no ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1
else ifeq ($(SAN),tsan)
  SAN_CFLAGS := -fsanitize=thread -fno-omit-frame-pointer -O1 -g
  SAN_LDFLAGS := -fsanitize=thread
  SAN_ENV := CK_FORK=no TSAN_OPTIONS=halt_on_error=1:exitcode=66
else ifeq ($(SAN),valgrind)
  SAN_ENV := CK_FORK=no
  TEST_WRAPPER := $(VALGRIND) --error-exitcode=1 --leak-check=full \
                  --errors-for-leak-kinds=definite \
                  $(if $(wildcard tests/valgrind.supp),--suppressions=tests/valgrind.supp)
else
  $(error SAN must be empty, asan, tsan or valgrind (got '$(SAN)'))
endif

VARIANT := $(BLAS)$(if $(SAN),-$(SAN))
VDIR := build/$(VARIANT)
ifeq ($(SAN),)
  OUT_LIBDIR := lib
  CLI_BIN := bin/iadsr
  TEST_TMPDIR := $(CURDIR)/build/testtmp
  LINK_STAMP := build/link.stamp
  PC_STAMP := build/pc.stamp
else
  OUT_LIBDIR := $(VDIR)/lib
  CLI_BIN := $(VDIR)/bin/iadsr
  TEST_TMPDIR := $(CURDIR)/$(VDIR)/testtmp
  LINK_STAMP := $(VDIR)/link.stamp
  PC_STAMP := $(VDIR)/pc.stamp
endif
TEST_BIN := $(VDIR)/check_iadsr
CLI_BINDIR := $(patsubst %/,%,$(dir $(CLI_BIN)))
FLAGS_STAMP := $(VDIR)/flags.stamp

STATIC_LIB := $(OUT_LIBDIR)/libiadsr.a
SHARED_REAL := $(OUT_LIBDIR)/libiadsr.so.$(VERSION)
SHARED_SONAME := $(OUT_LIBDIR)/libiadsr.so.$(SOVERSION)
SHARED_LINK := $(OUT_LIBDIR)/libiadsr.so
PC_FILE := $(OUT_LIBDIR)/libiadsr.pc

# ---------------------------------------------------------------------------
# Flags. Required flags first, the user's CPPFLAGS/CFLAGS/LDFLAGS last (so
# e.g. make CFLAGS=-O0 lowers the optimisation level but keeps the rest).
# Never -ffast-math / -Ofast: the numerics rely on IEEE semantics (NaN
# checks, -INFINITY scores).
# ---------------------------------------------------------------------------
WARN_CFLAGS := -Wall -Wextra -Wpedantic -Wshadow -Wcast-qual \
               -Wstrict-prototypes -Wmissing-prototypes -Wundef \
               -Wpointer-arith -Wvla -Wformat=2 -Wwrite-strings \
               -Wredundant-decls -Wdouble-promotion
ifeq ($(WERROR),1)
  WARN_CFLAGS += -Werror
endif
BASE_CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L -O3 -g $(WARN_CFLAGS)
IADSR_CPPFLAGS = -Iinclude -Isrc $(BLAS_DEFS) $(BLAS_CFLAGS)
COMMON_CFLAGS = $(BASE_CFLAGS) $(SAN_CFLAGS) $(CFLAGS)
LIB_CFLAGS = $(IADSR_CPPFLAGS) $(CPPFLAGS) -fPIC -fvisibility=hidden $(COMMON_CFLAGS)
CLI_CFLAGS = $(IADSR_CPPFLAGS) $(CPPFLAGS) $(COMMON_CFLAGS)
SHARED_LDFLAGS := -shared -Wl,-soname,libiadsr.so.$(SOVERSION) \
                  -Wl,--version-script=src/libiadsr.map -Wl,--no-undefined \
                  -Wl,-z,relro -Wl,-z,now -Wl,-z,noexecstack
SYS_LIBS := -lm -lpthread
LINK_FLAGS = $(COMMON_CFLAGS) $(SAN_LDFLAGS) $(LDFLAGS)

# Check (unit tests). Debian's check.pc gives -pthread -lcheck_pic -lrt -lm -lsubunit.
CHECK_CFLAGS := $(shell $(PKG_CONFIG) --cflags check 2>/dev/null)
CHECK_LIBS := $(shell $(PKG_CONFIG) --libs check 2>/dev/null || echo -pthread -lcheck -lsubunit -lrt -lm)
# Suite constructors are declared only in the generated suites.h (which
# check_main.c includes), and Check's ck_assert_float_* macros pass floats
# through varargs.
TEST_CFLAGS = $(CLI_CFLAGS) $(CHECK_CFLAGS) -Wno-missing-prototypes -Wno-double-promotion

# Examples use only the installed header and pkg-config flags (no -Isrc).
EX_CFLAGS = -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -g $(WARN_CFLAGS) $(CFLAGS)

# ---------------------------------------------------------------------------
# Sources and objects.
# ---------------------------------------------------------------------------
# The library's sources, listed by hand so that a stray file never ships.
# One folder per concept; docs/ARCHITECTURE.md draws how they depend.
LIB_SRCS := \
    src/common/alloc.c src/common/clock.c src/common/crc32c.c \
    src/common/error.c src/common/fileio.c src/common/fork_join.c \
    src/common/params.c src/common/rng.c \
    src/math/adam.c src/math/blas.c src/math/gemm_avx512.c src/math/kernels.c \
    src/math/linear_f32.c src/math/xent.c \
    src/data/dataset.c src/data/semantic.c \
    src/backbone/layout.c src/backbone/model.c src/backbone/model_params.c \
    src/backbone/registry.c \
    src/backbone/sasrec_f32.c src/backbone/gru4rec_f32.c \
    src/backbone/caser_f32.c \
    src/denoise/layers_f32.c src/denoise/heads.c src/denoise/aligner.c \
    src/denoise/gate.c src/denoise/denoiser.c \
    src/train/trainer.c src/train/pipeline.c \
    src/score/ctx.c src/score/eval.c src/score/scan.c src/score/text_recommender.c \
    src/io/checkpoint_format.c src/io/checkpoint_read.c \
    src/io/checkpoint_write.c src/io/npy.c src/io/semantic_npy.c \
    src/io/version.c
LIB_OBJS := $(patsubst src/%.c,$(VDIR)/obj/%.o,$(LIB_SRCS))
# Code only the command-line tool and the tests use (synthetic data, word
# vectors, SIF): an internal archive, never part of libiadsr.
CLI_SUPPORT_SRCS := src/cli/synth.c src/cli/wordvec.c src/cli/sif.c
CLI_SUPPORT_OBJS := $(patsubst src/cli/%.c,$(VDIR)/cli/%.o,$(CLI_SUPPORT_SRCS))
CLI_SUPPORT_LIB := $(VDIR)/libiadsr_cli.a
CLI_SRCS := $(filter-out $(CLI_SUPPORT_SRCS) src/cli/dist_mpi.c,$(sort $(wildcard src/cli/*.c)))
CLI_OBJS := $(patsubst src/cli/%.c,$(VDIR)/cli/%.o,$(CLI_SRCS))
# The MPI front end (make MPI=1, or make mpi): bin/iadsr-mpi is the CLI
# with src/cli/dist_mpi.c in place of dist_none.c, that one file compiled
# and the binary linked by mpicc. libiadsr and bin/iadsr never see MPI.
MPICC ?= mpicc
CLI_MPI_BIN := $(CLI_BINDIR)/iadsr-mpi
CLI_MPI_OBJS := $(filter-out $(VDIR)/cli/dist_none.o,$(CLI_OBJS)) $(VDIR)/cli/dist_mpi.o
# One Check suite per tests/test_<stem>.c, constructor Suite *suite_<stem>(void);
# the runner's list of suites is generated from these files (TEST_SUITES_H).
TEST_SUITE_SRCS := $(sort $(wildcard tests/test_*.c))
TEST_SRCS := tests/check_main.c $(TEST_SUITE_SRCS)
# Double-precision instantiations of the layers, for the gradient checks.
TEST_F64_SRCS := $(sort $(wildcard tests/f64/*.c))
TEST_OBJS := $(patsubst tests/%.c,$(VDIR)/tests/%.o,$(TEST_SRCS) $(TEST_F64_SRCS))
EX_SRCS := $(sort $(wildcard examples/*.c))
STRESS_SRCS := $(sort $(wildcard tests/stress/*.c))
STRESS_BINS := $(patsubst tests/stress/%.c,$(VDIR)/stress/%,$(STRESS_SRCS))

LIB_OUTPUTS := $(STATIC_LIB) $(SHARED_REAL) $(SHARED_SONAME) $(SHARED_LINK) $(PC_FILE)
ALL_OUTPUTS := $(LIB_OUTPUTS) $(if $(CLI_SRCS),$(CLI_BIN)) $(if $(filter 1,$(MPI)),$(CLI_MPI_BIN))

.PHONY: all library static shared cli mpi check-mpi tests check unit asan asan-python valgrind demo bench bench-semantic bench-backbones bench-iadsr \
        stress tsan examples install uninstall symbols-check symbols-update abi-check abi-baseline \
        header-check version-check doc-check check-python \
        print-version print-soversion docs lint clean help FORCE \
        man package-files check-install dist distcheck

all: $(ALL_OUTPUTS)
library: $(LIB_OUTPUTS)
static: $(STATIC_LIB)
shared: $(SHARED_REAL) $(SHARED_SONAME) $(SHARED_LINK)
cli: $(CLI_BIN)
tests: $(TEST_BIN)

# ---------------------------------------------------------------------------
# Stamps: rewritten only when their content changes, so that a change of
# flags, BLAS backend or install prefix rebuilds exactly what depends on it.
# ---------------------------------------------------------------------------
define update-stamp
@mkdir -p $(@D)
@printf '%s\n' '$(subst ','\'',$(strip $(1)))' > $@.tmp
@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv -f $@.tmp $@; fi
endef

$(FLAGS_STAMP): FORCE
	$(call update-stamp,$(CC) | $(LIB_CFLAGS) | $(CLI_CFLAGS) | $(TEST_CFLAGS))
# The object lists are part of the link stamp so that deleting a source file
# relinks the outputs without its object.
$(LINK_STAMP): FORCE
	$(call update-stamp,$(VARIANT) | $(CC) | $(AR) | $(LINK_FLAGS) | $(BLAS_LIBS) | $(CHECK_LIBS) | $(LIB_OBJS) | $(CLI_OBJS) | $(CLI_SUPPORT_OBJS) | $(TEST_OBJS))
$(PC_STAMP): FORCE
	$(call update-stamp,$(VERSION) | $(PREFIX) | $(LIBDIR) | $(INCLUDEDIR) | $(BLAS_LIBS))

FORCE:

$(VDIR)/obj $(VDIR)/cli $(VDIR)/tests $(OUT_LIBDIR) $(CLI_BINDIR):
	@mkdir -p $@

# ---------------------------------------------------------------------------
# Library.
# ---------------------------------------------------------------------------
$(VDIR)/obj/%.o: src/%.c $(FLAGS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(LIB_CFLAGS) -MMD -MP -c $< -o $@

$(STATIC_LIB): $(LIB_OBJS) $(LINK_STAMP) | $(OUT_LIBDIR)
	@rm -f $@
	$(AR) rcs $@ $(LIB_OBJS)

LINK_SHARED = $(CC) $(SHARED_LDFLAGS) $(LINK_FLAGS) -o $(SHARED_REAL) $(LIB_OBJS) $(BLAS_LIBS) $(SYS_LIBS)

# The exported-symbol guard runs after every link: a library whose exports
# differ from the committed list is deleted, not left behind.
$(SHARED_REAL): $(LIB_OBJS) src/libiadsr.map $(SYMBOLS_LIST) $(IADSR_H) $(LINK_STAMP) | $(OUT_LIBDIR)
	$(LINK_SHARED)
	@NM='$(NM)' sh tools/check-symbols.sh $@ $(IADSR_H) $(SYMBOLS_LIST) || { rm -f $@; exit 1; }

$(SHARED_SONAME): $(SHARED_REAL)
	ln -sf $(notdir $<) $@

$(SHARED_LINK): $(SHARED_SONAME)
	ln -sf $(notdir $<) $@

# libdir/includedir are written relative to ${prefix} when they live under
# it, so that pkg-config --define-variable=prefix=... relocates the file.
PC_LIBDIR = $(patsubst $(PREFIX)/%,$${prefix}/%,$(LIBDIR))
PC_INCLUDEDIR = $(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))

$(PC_FILE): libiadsr.pc.in $(PC_STAMP) | $(OUT_LIBDIR)
	sed -e 's|@PREFIX@|$(PREFIX)|' \
	    -e 's|@LIBDIR@|$(PC_LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(PC_INCLUDEDIR)|' \
	    -e 's|@VERSION@|$(VERSION)|' \
	    -e 's|@BLAS_LIBS@|$(strip $(BLAS_LIBS))|' \
	    -e 's|Libs.private:  *-lm|Libs.private: -lm|' \
	    libiadsr.pc.in > $@

# ---------------------------------------------------------------------------
# Command-line tool: linked statically so that it may use iadsr__* helpers.
# ---------------------------------------------------------------------------
$(VDIR)/cli/%.o: src/cli/%.c $(FLAGS_STAMP) | $(VDIR)/cli
	$(CC) $(CLI_CFLAGS) -MMD -MP -c $< -o $@

$(VDIR)/cli/dist_mpi.o: src/cli/dist_mpi.c $(FLAGS_STAMP) | $(VDIR)/cli
	@command -v $(MPICC) >/dev/null 2>&1 || { echo "mpi: '$(MPICC)' not found (apt-get install openmpi-bin libopenmpi-dev)" >&2; exit 1; }
	$(MPICC) $(CLI_CFLAGS) -MMD -MP -c $< -o $@

$(CLI_MPI_BIN): $(CLI_MPI_OBJS) $(CLI_SUPPORT_LIB) $(STATIC_LIB) $(LINK_STAMP) | $(CLI_BINDIR)
	$(MPICC) $(LINK_FLAGS) -o $@ $(CLI_MPI_OBJS) $(CLI_SUPPORT_LIB) $(STATIC_LIB) $(BLAS_LIBS) $(SYS_LIBS)

mpi: $(CLI_MPI_BIN)

# The distributed front end against one process (tests/mpi_test.sh):
# needs Open MPI (apt-get install openmpi-bin libopenmpi-dev).
check-mpi: $(CLI_MPI_BIN) $(CLI_BIN)
	env $(TEST_ENV) sh tests/mpi_test.sh $(CLI_BIN) $(CLI_MPI_BIN)

$(CLI_SUPPORT_LIB): $(CLI_SUPPORT_OBJS) $(LINK_STAMP)
	@rm -f $@
	$(AR) rcs $@ $(CLI_SUPPORT_OBJS)

$(CLI_BIN): $(CLI_OBJS) $(CLI_SUPPORT_LIB) $(STATIC_LIB) $(LINK_STAMP) | $(CLI_BINDIR)
	$(CC) $(LINK_FLAGS) -o $@ $(CLI_OBJS) $(CLI_SUPPORT_LIB) $(STATIC_LIB) $(BLAS_LIBS) $(SYS_LIBS)

# ---------------------------------------------------------------------------
# Tests.
# ---------------------------------------------------------------------------
$(VDIR)/tests/%.o: tests/%.c $(FLAGS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -MMD -MP -c $< -o $@

# The suite list: rewritten only when it changes (so check_main.o is rebuilt
# only then), regenerated at every make so that an added or deleted test file
# is seen. Its declarations are strong: a test file without its constructor
# fails the link of $(TEST_BIN) (undefined reference to suite_<stem>).
TEST_SUITES_H := $(VDIR)/tests/suites.h
$(TEST_SUITES_H): tests/gen-suites.sh FORCE
	@mkdir -p $(@D)
	@sh tests/gen-suites.sh $(TEST_SUITE_SRCS) > $@.tmp || { rm -f $@.tmp; exit 1; }
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv -f $@.tmp $@; echo "gen-suites: $@ ($(words $(TEST_SUITE_SRCS)) suites)"; fi

$(VDIR)/tests/check_main.o: $(TEST_SUITES_H)
$(VDIR)/tests/check_main.o: private TEST_CFLAGS += -I$(VDIR)/tests

$(TEST_BIN): $(TEST_OBJS) $(CLI_SUPPORT_LIB) $(STATIC_LIB) $(LINK_STAMP)
	@mkdir -p $(@D)
	$(CC) $(LINK_FLAGS) $(CHECK_CFLAGS) -o $@ $(TEST_OBJS) $(CLI_SUPPORT_LIB) $(STATIC_LIB) $(BLAS_LIBS) $(CHECK_LIBS) $(SYS_LIBS)

# CK_DEFAULT_TIMEOUT may be raised from the environment (slow machines).
TEST_ENV = OPENBLAS_NUM_THREADS=1 CK_DEFAULT_TIMEOUT=$${CK_DEFAULT_TIMEOUT:-600} \
           IADSR_TEST_TMPDIR='$(TEST_TMPDIR)' $(SAN_ENV)

# The Python binding's tests (tests/python), with numpy (zero-copy path) and
# again as if numpy were absent (stdlib path). Debian's python3 has numpy
# as python3-numpy; another python3 on PATH may not.
PYTHON ?= $(if $(wildcard /usr/bin/python3),/usr/bin/python3,python3)
PY_TEST_ENV = OPENBLAS_NUM_THREADS=1 IADSR_LIBRARY=$(CURDIR)/$(SHARED_LINK)
check-python: $(SHARED_LINK)
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "check-python: $(PYTHON) not found (apt-get install python3 python3-numpy)" >&2; exit 1; }
	@echo "== $(PYTHON) -m unittest discover -s tests/python (numpy: `$(PYTHON) -c 'import numpy; print(numpy.__version__)' 2>/dev/null || echo absent`)"
	@env $(PY_TEST_ENV) $(PYTHON) -m unittest discover -s tests/python
	@echo "== the same without numpy (IADSR_PY_NO_NUMPY=1)"
	@env $(PY_TEST_ENV) IADSR_PY_NO_NUMPY=1 $(PYTHON) -m unittest discover -s tests/python

# The Python tests against the library built with ASan and UBSan (the
# interpreter is not instrumented: the runtimes are preloaded; leaks are the
# interpreter's, not checked). The binding's crash cases run here too.
ASAN_PY_LIB = build/none-asan/lib/libiadsr.so
asan-python:
	$(MAKE) --no-print-directory BLAS=none SAN=asan shared
	env OPENBLAS_NUM_THREADS=1 IADSR_LIBRARY=$(CURDIR)/$(ASAN_PY_LIB) \
	    LD_PRELOAD="`$(CC) -print-file-name=libasan.so` `$(CC) -print-file-name=libubsan.so`" \
	    ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1 \
	    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    $(PYTHON) -m unittest discover -s tests/python

# The CLI script and the Python tests run first so that Check's summary
# line is the last output.
check: all $(TEST_BIN)
	@rm -rf '$(TEST_TMPDIR)' && mkdir -p '$(TEST_TMPDIR)'
	@status=0; \
	if [ -f tests/cli_test.sh ]; then \
	  echo "== sh tests/cli_test.sh $(CLI_BIN)"; \
	  env $(TEST_ENV) sh tests/cli_test.sh $(CLI_BIN) || { echo "check: tests/cli_test.sh FAILED" >&2; status=1; }; \
	fi; \
	if [ -f tests/cli_import_test.sh ]; then \
	  echo "== sh tests/cli_import_test.sh $(CLI_BIN)"; \
	  env $(TEST_ENV) sh tests/cli_import_test.sh $(CLI_BIN) || { echo "check: tests/cli_import_test.sh FAILED" >&2; status=1; }; \
	fi; \
	if [ -f tests/cli_eval_test.sh ]; then \
	  echo "== sh tests/cli_eval_test.sh $(CLI_BIN)"; \
	  env $(TEST_ENV) sh tests/cli_eval_test.sh $(CLI_BIN) || { echo "check: tests/cli_eval_test.sh FAILED" >&2; status=1; }; \
	fi; \
	if [ -f tests/cli_export_test.sh ]; then \
	  echo "== sh tests/cli_export_test.sh $(CLI_BIN)"; \
	  env $(TEST_ENV) sh tests/cli_export_test.sh $(CLI_BIN) || { echo "check: tests/cli_export_test.sh FAILED" >&2; status=1; }; \
	fi; \
	if [ -f tests/cli_report_test.sh ]; then \
	  echo "== sh tests/cli_report_test.sh $(CLI_BIN)"; \
	  env $(TEST_ENV) sh tests/cli_report_test.sh $(CLI_BIN) || { echo "check: tests/cli_report_test.sh FAILED" >&2; status=1; }; \
	fi; \
	if [ -f tests/cli_vocab_test.sh ]; then \
	  echo "== sh tests/cli_vocab_test.sh $(CLI_BIN)"; \
	  env $(TEST_ENV) sh tests/cli_vocab_test.sh $(CLI_BIN) || { echo "check: tests/cli_vocab_test.sh FAILED" >&2; status=1; }; \
	fi; \
	if [ -z '$(SAN)' ] && command -v $(MPICC) >/dev/null 2>&1 && command -v mpirun >/dev/null 2>&1; then \
	  echo "== sh tests/mpi_test.sh $(CLI_BIN) $(CLI_MPI_BIN)"; \
	  $(MAKE) --no-print-directory check-mpi || { echo "check: tests/mpi_test.sh FAILED" >&2; status=1; }; \
	elif [ -z '$(SAN)' ]; then \
	  echo "== tests/mpi_test.sh skipped: no $(MPICC)/mpirun (apt-get install openmpi-bin libopenmpi-dev)"; \
	fi; \
	if [ -z '$(SAN)' ]; then \
	  $(MAKE) --no-print-directory check-python || { echo "check: the Python binding tests FAILED" >&2; status=1; }; \
	fi; \
	echo "== fuzz corpus replay (tests/fuzz/corpus, tests/fuzz/crashers)"; \
	$(MAKE) --no-print-directory fuzz-replay || { echo "check: the fuzz corpus replay FAILED" >&2; status=1; }; \
	echo "== $(strip $(TEST_WRAPPER) ./$(TEST_BIN))"; \
	env $(TEST_ENV) $(TEST_WRAPPER) ./$(TEST_BIN) || status=1; \
	exit $$status

# `iadsr report` rendered in headless Chromium (apt-get install chromium):
# the figures in the DOM it builds and a 1200x2400 screenshot.
# sh tests/report_render_test.sh bin/iadsr --demo --png docs/report.png
# remakes the README's image.
.PHONY: check-report
check-report: all
	@mkdir -p '$(TEST_TMPDIR)'
	env $(TEST_ENV) sh tests/report_render_test.sh $(CLI_BIN)

# Unit suite only (used by the sanitizer targets).
unit: $(TEST_BIN)
	@rm -rf '$(TEST_TMPDIR)' && mkdir -p '$(TEST_TMPDIR)'
	env $(TEST_ENV) $(TEST_WRAPPER) ./$(TEST_BIN)

asan:
	$(MAKE) --no-print-directory BLAS=none SAN=asan unit

valgrind:
	@command -v $(VALGRIND) >/dev/null 2>&1 || { echo "valgrind: '$(VALGRIND)' not found (apt-get install valgrind)" >&2; exit 1; }
	$(MAKE) --no-print-directory BLAS=none SAN=valgrind unit

# Stress programs (tests/stress/): the public API only, linked statically.
$(VDIR)/stress/%: tests/stress/%.c $(STATIC_LIB) $(IADSR_H)
	@mkdir -p $(dir $@)
	$(CC) $(CLI_CFLAGS) -Iinclude $(LINK_FLAGS) -o $@ $< $(STATIC_LIB) $(BLAS_LIBS) $(SYS_LIBS)

STRESS_THREADS ?= 8
STRESS_CALLS ?= 11000
CRASH_KILLS ?= 200
stress: $(STRESS_BINS)
	env $(TEST_ENV) $(SAN_ENV) ./$(VDIR)/stress/thread_stress $(STRESS_THREADS) $(STRESS_CALLS)
	env $(TEST_ENV) ./$(VDIR)/stress/crash_save $(CURDIR)/$(VDIR)/crash $(CRASH_KILLS)

# ThreadSanitizer: the library and the thread stress built with
# -fsanitize=thread (BLAS=none: an uninstrumented OpenBLAS would hide races).
tsan:
	$(MAKE) --no-print-directory BLAS=none SAN=tsan build/none-tsan/stress/thread_stress
	env $(TEST_ENV) TSAN_OPTIONS=halt_on_error=1:exitcode=66 \
	    ./build/none-tsan/stress/thread_stress $(STRESS_THREADS) $(STRESS_CALLS)

# ---------------------------------------------------------------------------
# Demo and benchmark.
# ---------------------------------------------------------------------------
DEMO_DIR := build/demo
DEMO_BIN := ./$(CLI_BIN)
# One set of backbone settings for the three trainings, so that they compare.
DEMO_TRAIN := --dim 32 --max-len 20 --dropout 0.2 --lr 0.003 --threads 2 --seed 1
demo: all
	@mkdir -p $(DEMO_DIR)
	@echo '== 1. generate a synthetic dataset (users with latent interests) and semantic item vectors'
	$(DEMO_BIN) synth --users 3000 --items 600 --seed 7 --out $(DEMO_DIR)/synth.txt \
	    --semantic-out $(DEMO_DIR)/sem.npy
	@echo '== 2. inject noise: 20% random items into the training parts, with labels'
	$(DEMO_BIN) inject-noise --data $(DEMO_DIR)/synth.txt --rate 0.2 --seed 7 \
	    --out $(DEMO_DIR)/noisy.txt --labels $(DEMO_DIR)/noisy.labels
	@echo '== 3. train SASRec on the noisy data (leave-one-out split, early stopping on valid NDCG@10)'
	$(DEMO_BIN) train --data $(DEMO_DIR)/noisy.txt --out $(DEMO_DIR)/raw.iadsr --epochs 20 $(DEMO_TRAIN)
	@echo '== 4. evaluate it on the held-out last items (full ranking), vs popularity'
	$(DEMO_BIN) popularity --data $(DEMO_DIR)/noisy.txt
	$(DEMO_BIN) eval --model $(DEMO_DIR)/raw.iadsr --data $(DEMO_DIR)/noisy.txt > $(DEMO_DIR)/eval_raw.txt
	@cat $(DEMO_DIR)/eval_raw.txt
	$(DEMO_BIN) eval --model $(DEMO_DIR)/raw.iadsr --data $(DEMO_DIR)/noisy.txt --json
	@echo '== 5. recommend the next 10 items for the first users'
	$(DEMO_BIN) recommend --model $(DEMO_DIR)/raw.iadsr --data $(DEMO_DIR)/noisy.txt \
	    --k 10 --exclude-history --users 5
	@echo '== 6. train IADSR on the noisy data: backbone + aligner + a detector gate, jointly'
	@echo '   (the detector learns from items inserted on the fly; the labels are not used)'
	$(DEMO_BIN) train --data $(DEMO_DIR)/noisy.txt --out $(DEMO_DIR)/iadsr.iadsr \
	    --semantic $(DEMO_DIR)/sem.npy --gate detect --epochs 10 $(DEMO_TRAIN)
	@echo '== 7. denoise the training parts with the gate at the threshold it proposes from'
	@echo '   the data (no labels), then score the drops against the injected items'
	$(DEMO_BIN) denoise --model $(DEMO_DIR)/iadsr.iadsr --semantic $(DEMO_DIR)/sem.npy \
	    --data $(DEMO_DIR)/noisy.txt --out $(DEMO_DIR)/clean.txt \
	    --labels $(DEMO_DIR)/noisy.labels --threads 2 > $(DEMO_DIR)/denoise.txt
	@cat $(DEMO_DIR)/denoise.txt
	@echo '== 8. retrain SASRec on the cleaned data and evaluate it (cleaned histories, same targets)'
	$(DEMO_BIN) train --data $(DEMO_DIR)/clean.txt --out $(DEMO_DIR)/clean.iadsr --epochs 20 $(DEMO_TRAIN)
	$(DEMO_BIN) eval --model $(DEMO_DIR)/clean.iadsr --data $(DEMO_DIR)/clean.txt > $(DEMO_DIR)/eval_clean.txt
	@cat $(DEMO_DIR)/eval_clean.txt
	@echo '== 9. before / after'
	@ndcg10() { awk '$$1 == "NDCG" { print $$3 }' "$$1"; }; \
	field() { awk -v k="$$2" '$$1 == "precision" { for (i = 1; i < NF; i++) if ($$i == k) print $$(i + 1) }' "$$1"; }; \
	dropped=`awk '$$1 == "items" && $$2 == "dropped:" { print $$3, $$4 }' $(DEMO_DIR)/denoise.txt`; \
	printf '%-46s %s\n' '' 'test NDCG@10'; \
	printf '%-46s %s\n' 'SASRec trained on the noisy data' "`ndcg10 $(DEMO_DIR)/eval_raw.txt`"; \
	printf '%-46s %s\n' 'IADSR: denoise, then retrain SASRec' "`ndcg10 $(DEMO_DIR)/eval_clean.txt`"; \
	printf 'gate vs the injected items: precision %s, recall %s, F1 %s (items dropped: %s)\n' \
	    "`field $(DEMO_DIR)/denoise.txt precision`" "`field $(DEMO_DIR)/denoise.txt recall`" \
	    "`field $(DEMO_DIR)/denoise.txt F1`" "$$dropped"

bench: all
	sh bench/run.sh

bench-semantic: all
	sh bench/semantic.sh

bench-backbones: all
	sh bench/backbones.sh

bench-iadsr: all
	sh bench/iadsr.sh

# ---------------------------------------------------------------------------
# Packaging files, generated at build time and installed by make install:
# libiadsr-static.pc (pkg-config for linking libiadsr.a), the CMake package
# (iadsrConfig.cmake, iadsrConfigVersion.cmake: imported targets iadsr::iadsr
# and iadsr::iadsr_static; no CMake needed here) and the iadsr(1) man page
# (tools/make-man.sh, from the tool's own help texts).
# ---------------------------------------------------------------------------
PKG_OUTDIR := $(patsubst %/,%,$(dir $(PC_STAMP)))
PC_STATIC_FILE := $(PKG_OUTDIR)/pkgconfig/libiadsr-static.pc
CMAKE_STAMP := $(PKG_OUTDIR)/cmake.stamp
CMAKE_CONFIG := $(PKG_OUTDIR)/cmake/iadsrConfig.cmake
CMAKE_CONFIG_VERSION := $(PKG_OUTDIR)/cmake/iadsrConfigVersion.cmake
MAN_PAGE := $(PKG_OUTDIR)/man/iadsr.1

package-files: $(PC_STATIC_FILE) $(CMAKE_CONFIG) $(CMAKE_CONFIG_VERSION) $(if $(CLI_SRCS),$(MAN_PAGE))
man: $(MAN_PAGE)

$(PC_STATIC_FILE): libiadsr-static.pc.in $(PC_STAMP)
	@mkdir -p $(@D)
	sed -e 's|@PREFIX@|$(PREFIX)|' \
	    -e 's|@LIBDIR@|$(PC_LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(PC_INCLUDEDIR)|' \
	    -e 's|@VERSION@|$(VERSION)|' \
	    -e 's|@BLAS_LIBS@|$(strip $(BLAS_LIBS))|' \
	    -e 's|libiadsr\.a  *-lm|libiadsr.a -lm|' \
	    libiadsr-static.pc.in > $@

# The CMake files find the install prefix from their own directory when
# CMAKEDIR lies under PREFIX (LIBDIR/cmake/iadsr -> ../../..), so that an
# installed tree may be moved or staged with DESTDIR; LIBDIR and INCLUDEDIR
# are written relative to that prefix when they lie under PREFIX.
iadsr_empty :=
iadsr_space := $(iadsr_empty) $(iadsr_empty)
CMAKEDIR_IN_PREFIX = $(patsubst $(PREFIX)/%,%,$(CMAKEDIR))
CMAKE_PREFIX_DIR = $(if $(filter $(CMAKEDIR),$(CMAKEDIR_IN_PREFIX)),$(PREFIX),$${CMAKE_CURRENT_LIST_DIR}$(subst $(iadsr_space),,$(foreach d,$(subst /, ,$(CMAKEDIR_IN_PREFIX)),/..)))
CMAKE_LIBDIR = $(patsubst $(PREFIX)/%,$${_iadsr_prefix}/%,$(LIBDIR))
CMAKE_INCLUDEDIR = $(patsubst $(PREFIX)/%,$${_iadsr_prefix}/%,$(INCLUDEDIR))
CMAKE_STATIC_LIBS = $(subst $(iadsr_space),;,$(strip $(BLAS_LIBS) -lm -lpthread))

$(CMAKE_STAMP): FORCE
	$(call update-stamp,$(VERSION) | $(PREFIX) | $(LIBDIR) | $(INCLUDEDIR) | $(CMAKEDIR) | $(BLAS_LIBS) | $(CC) | $(CFLAGS))

$(CMAKE_CONFIG): cmake/iadsrConfig.cmake.in $(CMAKE_STAMP)
	@mkdir -p $(@D)
	sed -e 's|@VERSION@|$(VERSION)|g' \
	    -e 's|@SOVERSION@|$(SOVERSION)|g' \
	    -e 's|@IADSR_PREFIX_DIR@|$(CMAKE_PREFIX_DIR)|' \
	    -e 's|@IADSR_LIBDIR@|$(CMAKE_LIBDIR)|' \
	    -e 's|@IADSR_INCLUDEDIR@|$(CMAKE_INCLUDEDIR)|' \
	    -e 's|@IADSR_STATIC_LIBS@|$(CMAKE_STATIC_LIBS)|' \
	    cmake/iadsrConfig.cmake.in > $@

# The pointer size of the target, as CMake's own version files record it.
$(CMAKE_CONFIG_VERSION): cmake/iadsrConfigVersion.cmake.in $(CMAKE_STAMP)
	@mkdir -p $(@D)
	@ptr=`echo __SIZEOF_POINTER__ | $(CC) $(CPPFLAGS) $(CFLAGS) -E -P -x c - 2>/dev/null | tr -d ' \n'`; \
	case "$$ptr" in [1-9]*) ;; *) echo "$@: cannot read __SIZEOF_POINTER__ from '$(CC) -E'" >&2; exit 1;; esac; \
	echo "sed -e 's|@VERSION@|$(VERSION)|g' -e 's|@SOVERSION@|$(SOVERSION)|g' -e 's|@SIZEOF_VOID_P@|$$ptr|g' $< > $@"; \
	sed -e 's|@VERSION@|$(VERSION)|g' \
	    -e 's|@SOVERSION@|$(SOVERSION)|g' \
	    -e "s|@SIZEOF_VOID_P@|$$ptr|g" \
	    cmake/iadsrConfigVersion.cmake.in > $@

$(MAN_PAGE): $(CLI_BIN) tools/make-man.sh
	@mkdir -p $(@D)
	sh tools/make-man.sh ./$(CLI_BIN) $(VERSION) > $@.tmp || { rm -f $@.tmp; exit 1; }
	@mv -f $@.tmp $@

# ---------------------------------------------------------------------------
# Install / uninstall.
# ---------------------------------------------------------------------------
install: all package-files
	$(INSTALL) -d -m 755 '$(DESTDIR)$(INCLUDEDIR)' '$(DESTDIR)$(LIBDIR)' '$(DESTDIR)$(PKGCONFIGDIR)' \
	    '$(DESTDIR)$(CMAKEDIR)'
	$(INSTALL) -m 644 include/iadsr.h '$(DESTDIR)$(INCLUDEDIR)/iadsr.h'
	$(INSTALL) -m 755 $(SHARED_REAL) '$(DESTDIR)$(LIBDIR)/libiadsr.so.$(VERSION)'
	ln -sf libiadsr.so.$(VERSION) '$(DESTDIR)$(LIBDIR)/libiadsr.so.$(SOVERSION)'
	ln -sf libiadsr.so.$(SOVERSION) '$(DESTDIR)$(LIBDIR)/libiadsr.so'
	$(INSTALL) -m 644 $(STATIC_LIB) '$(DESTDIR)$(LIBDIR)/libiadsr.a'
	$(INSTALL) -m 644 $(PC_FILE) '$(DESTDIR)$(PKGCONFIGDIR)/libiadsr.pc'
	$(INSTALL) -m 644 $(PC_STATIC_FILE) '$(DESTDIR)$(PKGCONFIGDIR)/libiadsr-static.pc'
	$(INSTALL) -m 644 $(CMAKE_CONFIG) '$(DESTDIR)$(CMAKEDIR)/iadsrConfig.cmake'
	$(INSTALL) -m 644 $(CMAKE_CONFIG_VERSION) '$(DESTDIR)$(CMAKEDIR)/iadsrConfigVersion.cmake'
ifneq ($(CLI_SRCS),)
	$(INSTALL) -d -m 755 '$(DESTDIR)$(BINDIR)' '$(DESTDIR)$(MANDIR)/man1'
	$(INSTALL) -m 755 $(CLI_BIN) '$(DESTDIR)$(BINDIR)/iadsr'
	$(INSTALL) -m 644 $(MAN_PAGE) '$(DESTDIR)$(MANDIR)/man1/iadsr.1'
ifeq ($(MPI),1)
	$(INSTALL) -m 755 $(CLI_MPI_BIN) '$(DESTDIR)$(BINDIR)/iadsr-mpi'
endif
endif

uninstall:
	rm -f '$(DESTDIR)$(INCLUDEDIR)/iadsr.h' \
	      '$(DESTDIR)$(LIBDIR)/libiadsr.so.$(VERSION)' \
	      '$(DESTDIR)$(LIBDIR)/libiadsr.so.$(SOVERSION)' \
	      '$(DESTDIR)$(LIBDIR)/libiadsr.so' \
	      '$(DESTDIR)$(LIBDIR)/libiadsr.a' \
	      '$(DESTDIR)$(PKGCONFIGDIR)/libiadsr.pc' \
	      '$(DESTDIR)$(PKGCONFIGDIR)/libiadsr-static.pc' \
	      '$(DESTDIR)$(CMAKEDIR)/iadsrConfig.cmake' \
	      '$(DESTDIR)$(CMAKEDIR)/iadsrConfigVersion.cmake' \
	      '$(DESTDIR)$(BINDIR)/iadsr' \
	      '$(DESTDIR)$(BINDIR)/iadsr-mpi' \
	      '$(DESTDIR)$(MANDIR)/man1/iadsr.1'
	@rmdir '$(DESTDIR)$(CMAKEDIR)' 2>/dev/null || true

# ---------------------------------------------------------------------------
# Examples: built against a staged install through pkg-config, then run.
# ---------------------------------------------------------------------------
STAGE := $(CURDIR)/build/stage
STAGE_PREFIX := /usr/local
STAGE_LIBDIR := $(STAGE)$(STAGE_PREFIX)/lib
EX_DIR := build/examples

examples: all
	@rm -rf '$(STAGE)'
	$(MAKE) --no-print-directory install DESTDIR='$(STAGE)' PREFIX=$(STAGE_PREFIX) \
	    LIBDIR=$(STAGE_PREFIX)/lib INCLUDEDIR=$(STAGE_PREFIX)/include \
	    BINDIR=$(STAGE_PREFIX)/bin PKGCONFIGDIR=$(STAGE_PREFIX)/lib/pkgconfig
	@rm -rf $(EX_DIR) && mkdir -p $(EX_DIR)/work
	@set -e; \
	pcflags=`PKG_CONFIG_PATH='$(STAGE_LIBDIR)/pkgconfig' $(PKG_CONFIG) \
	    --define-variable=prefix='$(STAGE)$(STAGE_PREFIX)' --cflags --libs libiadsr`; \
	echo "examples: pkg-config --cflags --libs libiadsr -> $$pcflags"; \
	for src in $(EX_SRCS); do \
	  name=`basename $$src .c`; \
	  echo "$(CC) $(EX_CFLAGS) $$src -o $(EX_DIR)/$$name $$pcflags -Wl,-rpath,$(STAGE_LIBDIR) $(LDFLAGS) -lm -pthread"; \
	  $(CC) $(EX_CFLAGS) $$src -o $(EX_DIR)/$$name $$pcflags -Wl,-rpath,'$(STAGE_LIBDIR)' $(LDFLAGS) -lm -pthread; \
	done; \
	for src in $(EX_SRCS); do \
	  name=`basename $$src .c`; \
	  echo "== $(EX_DIR)/$$name $(EX_DIR)/work"; \
	  OPENBLAS_NUM_THREADS=1 ./$(EX_DIR)/$$name $(EX_DIR)/work || { echo "examples: $$name FAILED" >&2; exit 1; }; \
	done; \
	echo "examples: `echo $(EX_SRCS) | wc -w` example(s) built and run against the staged install"

# ---------------------------------------------------------------------------
# check-install: make install into a temporary DESTDIR (build/check-install),
# then build one example against the installed tree the ways docs/BUILD.md
# documents, run each build, and read its dynamic section:
#   shared   pkg-config --cflags --libs libiadsr, run with LD_LIBRARY_PATH:
#            must need libiadsr.so.SOVERSION, resolved in the staged libdir
#   rpath    the same plus -Wl,-rpath,LIBDIR: runs without LD_LIBRARY_PATH
#   static   pkg-config --cflags --libs libiadsr-static: needs no libiadsr.so
#   CMake    tests/cmake (find_package(iadsr), iadsr::iadsr and
#            iadsr::iadsr_static), with cmake from Debian
# then renders the installed man page (man -l, else groff; groff -ww must
# print no warning), and checks that make uninstall leaves no file behind.
# ---------------------------------------------------------------------------
CI_DIR := $(CURDIR)/build/check-install
CI_ROOT := $(CI_DIR)/root
CI_PREFIX := /usr/local
CI_EXAMPLE := examples/train_and_score.c
CI_INSTALL_VARS = DESTDIR='$(CI_ROOT)' PREFIX=$(CI_PREFIX) LIBDIR=$(CI_PREFIX)/lib \
    INCLUDEDIR=$(CI_PREFIX)/include BINDIR=$(CI_PREFIX)/bin PKGCONFIGDIR=$(CI_PREFIX)/lib/pkgconfig \
    CMAKEDIR=$(CI_PREFIX)/lib/cmake/iadsr MANDIR=$(CI_PREFIX)/share/man
CMAKE ?= cmake
READELF ?= readelf

check-install: all
	@command -v $(CMAKE) >/dev/null 2>&1 || { echo "check-install: '$(CMAKE)' not found (apt-get install cmake)" >&2; exit 1; }
	@command -v $(READELF) >/dev/null 2>&1 || { echo "check-install: '$(READELF)' not found (apt-get install binutils)" >&2; exit 1; }
	@rm -rf '$(CI_DIR)'
	$(MAKE) --no-print-directory install $(CI_INSTALL_VARS)
	@set -e; root='$(CI_ROOT)$(CI_PREFIX)'; lib="$$root/lib"; work='$(CI_DIR)'; \
	fail() { echo "check-install: FAILED: $$*" >&2; exit 1; }; \
	needed() { $(READELF) -d "$$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'; }; \
	run() { name=$$1; shift; mkdir -p "$$work/run-$$name"; \
	  echo "== $$* $$work/run-$$name"; \
	  env OPENBLAS_NUM_THREADS=1 "$$@" "$$work/run-$$name" > "$$work/run-$$name.log" 2>&1 || { cat "$$work/run-$$name.log" >&2; fail "$$name: the program failed"; }; \
	  grep -q . "$$work/run-$$name.log" || fail "$$name: the program printed nothing"; }; \
	for f in include/iadsr.h lib/libiadsr.so.$(VERSION) lib/libiadsr.so.$(SOVERSION) lib/libiadsr.so \
	         lib/libiadsr.a lib/pkgconfig/libiadsr.pc lib/pkgconfig/libiadsr-static.pc \
	         lib/cmake/iadsr/iadsrConfig.cmake lib/cmake/iadsr/iadsrConfigVersion.cmake \
	         bin/iadsr share/man/man1/iadsr.1; do \
	  [ -e "$$root/$$f" ] || fail "make install did not install $(CI_PREFIX)/$$f"; \
	done; \
	"$$root/bin/iadsr" --version | grep -q '^iadsr $(VERSION) ' || fail "the installed iadsr --version does not say $(VERSION)"; \
	pc() { PKG_CONFIG_PATH="$$lib/pkgconfig" $(PKG_CONFIG) --define-variable=prefix="$$root" "$$@"; }; \
	shared_flags=`pc --cflags --libs libiadsr`; static_flags=`pc --cflags --libs libiadsr-static`; \
	pc_libdir=`pc --variable=libdir libiadsr`; \
	[ "$$pc_libdir" = "$$lib" ] || fail "pkg-config --variable=libdir libiadsr gives $$pc_libdir, not $$lib"; \
	echo "== shared: $(CC) $(EX_CFLAGS) $(CI_EXAMPLE) -o $$work/app-shared $$shared_flags $(LDFLAGS)"; \
	$(CC) $(EX_CFLAGS) $(CI_EXAMPLE) -o "$$work/app-shared" $$shared_flags $(LDFLAGS); \
	needed "$$work/app-shared" | grep -qx 'libiadsr\.so\.$(SOVERSION)' || fail "app-shared does not need libiadsr.so.$(SOVERSION)"; \
	LD_LIBRARY_PATH="$$lib" ldd "$$work/app-shared" | grep -q "libiadsr\.so\.$(SOVERSION) => $$lib/libiadsr\.so\.$(SOVERSION) " \
	    || fail "with LD_LIBRARY_PATH=$$lib, ldd does not resolve libiadsr.so.$(SOVERSION) there"; \
	run shared env LD_LIBRARY_PATH="$$lib" "$$work/app-shared"; \
	echo "== rpath: $(CC) $(EX_CFLAGS) $(CI_EXAMPLE) -o $$work/app-rpath $$shared_flags -Wl,-rpath,$$pc_libdir $(LDFLAGS)"; \
	$(CC) $(EX_CFLAGS) $(CI_EXAMPLE) -o "$$work/app-rpath" $$shared_flags -Wl,-rpath,"$$pc_libdir" $(LDFLAGS); \
	$(READELF) -d "$$work/app-rpath" | grep -E '\((RUNPATH|RPATH)\)' | grep -qF "[$$lib]" || fail "app-rpath carries no RUNPATH $$lib"; \
	env -u LD_LIBRARY_PATH ldd "$$work/app-rpath" | grep -q "libiadsr\.so\.$(SOVERSION) => $$lib/libiadsr\.so\.$(SOVERSION) " \
	    || fail "ldd does not resolve app-rpath's libiadsr.so.$(SOVERSION) through its RUNPATH"; \
	run rpath env -u LD_LIBRARY_PATH "$$work/app-rpath"; \
	echo "== static: $(CC) $(EX_CFLAGS) $(CI_EXAMPLE) -o $$work/app-static $$static_flags $(LDFLAGS)"; \
	$(CC) $(EX_CFLAGS) $(CI_EXAMPLE) -o "$$work/app-static" $$static_flags $(LDFLAGS); \
	if needed "$$work/app-static" | grep -q libiadsr; then fail "app-static needs `needed "$$work/app-static" | grep libiadsr`"; fi; \
	if ldd "$$work/app-static" | grep -q libiadsr; then fail "ldd lists libiadsr for app-static"; fi; \
	run static env -u LD_LIBRARY_PATH "$$work/app-static"; \
	echo "== cmake: find_package(iadsr) from $$root (tests/cmake)"; \
	CC='$(CC)' $(CMAKE) -S tests/cmake -B "$$work/cmake" -DCMAKE_PREFIX_PATH="$$root" \
	    -DIADSR_EXAMPLE='$(CURDIR)/$(CI_EXAMPLE)' -DIADSR_EXPECT_VERSION=$(VERSION) \
	    > "$$work/cmake-configure.log" 2>&1 || { cat "$$work/cmake-configure.log" >&2; fail "cmake could not configure tests/cmake"; }; \
	grep 'iadsr $(VERSION) from' "$$work/cmake-configure.log"; \
	env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL $(CMAKE) --build "$$work/cmake" > "$$work/cmake-build.log" 2>&1 \
	    || { cat "$$work/cmake-build.log" >&2; fail "cmake --build tests/cmake failed"; }; \
	needed "$$work/cmake/app_shared" | grep -qx 'libiadsr\.so\.$(SOVERSION)' || fail "CMake's app_shared does not need libiadsr.so.$(SOVERSION)"; \
	if needed "$$work/cmake/app_static" | grep -q libiadsr; then fail "CMake's app_static needs a libiadsr.so"; fi; \
	run cmake-shared env -u LD_LIBRARY_PATH "$$work/cmake/app_shared"; \
	run cmake-static env -u LD_LIBRARY_PATH "$$work/cmake/app_static"; \
	page="$$root/share/man/man1/iadsr.1"; \
	if command -v groff >/dev/null 2>&1; then \
	  groff -man -ww -z "$$page" > "$$work/groff-warnings.txt" 2>&1 || true; \
	  if [ -s "$$work/groff-warnings.txt" ]; then cat "$$work/groff-warnings.txt" >&2; fail "groff -man -ww warns about $$page"; fi; \
	fi; \
	if command -v man >/dev/null 2>&1; then \
	  echo "== man -l $$page"; \
	  LC_ALL=C MANWIDTH=80 MAN_DISABLE_SECCOMP=1 man -l - < "$$page" > "$$work/iadsr.1.txt" 2>"$$work/man-stderr.txt" || { cat "$$work/man-stderr.txt" >&2; fail "man -l could not render $$page"; }; \
	elif command -v groff >/dev/null 2>&1; then \
	  echo "== groff -man -Tascii $$page (no man installed)"; \
	  groff -man -Tascii -P-c -P-b -P-u "$$page" > "$$work/iadsr.1.txt"; \
	else fail "neither man nor groff is installed (apt-get install man-db)"; fi; \
	cmds=`"$$root/bin/iadsr" --help | awk '/^Commands:$$/ { on = 1; next } on && /^$$/ { exit } on && /^  [a-z]/ && $$1 != "help" { print $$1 }'`; \
	[ -n "$$cmds" ] || fail "no command list in iadsr --help"; \
	for c in $$cmds; do grep -q "^   iadsr $$c\$$" "$$work/iadsr.1.txt" || fail "the rendered man page has no section 'iadsr $$c'"; done; \
	for s in NAME SYNOPSIS DESCRIPTION COMMANDS OPTIONS 'EXIT STATUS'; do grep -q "^$$s\$$" "$$work/iadsr.1.txt" || fail "the rendered man page has no $$s"; done; \
	grep -q -e '--semantic EMB.npy' "$$work/iadsr.1.txt" || fail "the rendered man page lacks train's --semantic option"; \
	echo "check-install: man page OK (`echo $$cmds | wc -w` commands, `wc -l < "$$work/iadsr.1.txt"` lines rendered)"
	$(MAKE) --no-print-directory uninstall $(CI_INSTALL_VARS)
	@left=`find '$(CI_ROOT)' ! -type d`; \
	if [ -n "$$left" ]; then echo "$$left" >&2; echo "check-install: FAILED: make uninstall left the files above" >&2; exit 1; fi
	@echo "check-install: OK (make install into $(CI_ROOT); the example built and run against it: shared, rpath, static via libiadsr-static.pc, CMake iadsr::iadsr and iadsr::iadsr_static; man page; uninstall complete)"

# ---------------------------------------------------------------------------
# dist: build/libiadsr-VERSION.tar.gz holding every file git tracks, as it
# is in the working tree (uncommitted edits of tracked files included; a new
# file must be git-added to be shipped), under libiadsr-VERSION/, with
# sorted names, owner 0 and the mtime of the last commit. For a release, run
# it in a clean checkout of the tag. distcheck unpacks that tarball into
# build/distcheck, builds it with WERROR=1, runs its bin/iadsr --version and
# its make check-install.
# ---------------------------------------------------------------------------
DIST_NAME := libiadsr-$(VERSION)
DIST_TARBALL := build/$(DIST_NAME).tar.gz
DIST_DIR := build/dist
DISTCHECK_DIR := $(CURDIR)/build/distcheck

dist:
	@command -v git >/dev/null 2>&1 && git rev-parse --git-dir >/dev/null 2>&1 || \
	    { echo "dist: needs git and a git checkout (the tarball holds the files git tracks)" >&2; exit 1; }
	@rm -rf '$(DIST_DIR)' '$(DIST_TARBALL)' && mkdir -p '$(DIST_DIR)/$(DIST_NAME)'
	@set -e; \
	git -c core.quotepath=off ls-files > '$(DIST_DIR)/tracked.txt'; \
	while read -r f; do \
	  if [ -f "$$f" ] || [ -L "$$f" ]; then printf '%s\n' "$$f"; else printf '%s\n' "$$f" >> '$(DIST_DIR)/gone.txt'; fi; \
	done < '$(DIST_DIR)/tracked.txt' > '$(DIST_DIR)/files.txt'; \
	tar -cf - --verbatim-files-from -T '$(DIST_DIR)/files.txt' | tar -xf - -C '$(DIST_DIR)/$(DIST_NAME)'; \
	mtime=`git log -1 --format=%ct 2>/dev/null || echo 0`; \
	tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@$${mtime:-0} \
	    -C '$(DIST_DIR)' -cf - '$(DIST_NAME)' | gzip -9n > '$(DIST_TARBALL).tmp'; \
	mv -f '$(DIST_TARBALL).tmp' '$(DIST_TARBALL)'; \
	changed=`git status --porcelain --untracked-files=no | wc -l`; \
	untracked=`git ls-files --others --exclude-standard | wc -l`; \
	if [ "$$changed" -ne 0 ]; then echo "dist: note: $$changed tracked file(s) differ from the last commit; the tarball has their working-tree content"; fi; \
	if [ "$$untracked" -ne 0 ]; then echo "dist: note: $$untracked untracked file(s) are not in the tarball (git add them to ship them)"; fi; \
	if [ -s '$(DIST_DIR)/gone.txt' ]; then echo "dist: note: `wc -l < '$(DIST_DIR)/gone.txt'` tracked file(s) deleted from the working tree are not in the tarball"; fi; \
	echo "dist: $(DIST_TARBALL) (`wc -l < '$(DIST_DIR)/files.txt'` files, `wc -c < '$(DIST_TARBALL)'` bytes)"

distcheck: dist
	@rm -rf '$(DISTCHECK_DIR)' && mkdir -p '$(DISTCHECK_DIR)'
	tar -xzf '$(DIST_TARBALL)' -C '$(DISTCHECK_DIR)'
	$(MAKE) -C '$(DISTCHECK_DIR)/$(DIST_NAME)' WERROR=1 all
	@v=`'$(DISTCHECK_DIR)/$(DIST_NAME)/bin/iadsr' --version | head -n 1`; echo "distcheck: bin/iadsr --version: $$v"; \
	case "$$v" in "iadsr $(VERSION) "*) ;; *) echo "distcheck: FAILED: expected 'iadsr $(VERSION) ...'" >&2; exit 1;; esac
	$(MAKE) -C '$(DISTCHECK_DIR)/$(DIST_NAME)' WERROR=1 check-install
	@echo "distcheck: OK ($(DIST_TARBALL) unpacks, builds with WERROR=1, and passes make check-install)"

# ---------------------------------------------------------------------------
# Mechanical checks.
# ---------------------------------------------------------------------------
# Only iadsr_* may be exported (no iadsr__* internals, nothing else), and
# every exported symbol must be declared in the public header.
symbols-check: $(SHARED_REAL)
	@NM='$(NM)' sh tools/check-symbols.sh $(SHARED_REAL) $(IADSR_H) $(SYMBOLS_LIST)

# Deliberate ABI additions only: relink without the guard, then rewrite the list.
symbols-update: $(LIB_OBJS) | $(OUT_LIBDIR)
	$(LINK_SHARED)
	@NM='$(NM)' sh tools/check-symbols.sh $(SHARED_REAL) $(IADSR_H) $(SYMBOLS_LIST) --update

# libabigail guard: the ABI of the shared library (function signatures and
# every public struct reachable from them) against the committed baseline of
# this SONAME. Added functions pass (the symbol list guards them); removed
# functions and changed public types fail. The baseline is regenerated only
# with a SONAME bump (docs/ABI.md).
ABI_BASELINE := tests/abi/libiadsr.abi
ABI_SUPPR := tests/abi/libiadsr.abignore
ABIDIFF ?= abidiff
ABIDW ?= abidw
abi-check: $(SHARED_REAL)
	@command -v $(ABIDIFF) >/dev/null 2>&1 || { echo "abi-check: '$(ABIDIFF)' not found (apt-get install abigail-tools)" >&2; exit 1; }
	@mkdir -p build; $(ABIDIFF) --suppressions $(ABI_SUPPR) --no-added-syms $(ABI_BASELINE) $(SHARED_REAL) > build/abidiff.txt; rc=$$?; \
	if [ $$rc -ne 0 ]; then \
	  cat build/abidiff.txt >&2; \
	  echo "abi-check: FAILED (abidiff exit $$rc): the ABI differs from $(ABI_BASELINE), see docs/ABI.md" >&2; exit 1; \
	fi; \
	echo "abi-check: OK (abidiff against $(ABI_BASELINE): no removed or changed function, no changed public type)"

abi-baseline: $(SHARED_REAL)
	$(ABIDW) --no-show-locs --no-comp-dir-path --no-corpus-path --out-file $(ABI_BASELINE).tmp $(SHARED_REAL)
	mv $(ABI_BASELINE).tmp $(ABI_BASELINE)
	@echo "abi-baseline: wrote $(ABI_BASELINE) from $(SHARED_REAL)"

header-check:
	printf '#include "iadsr.h"\n#include "iadsr.h"\n' | $(CC) -std=c99 -pedantic -Wall -Wextra -Werror -fsyntax-only -Iinclude -x c -
	printf '#include "iadsr.h"\n' | $(CC) -std=c11 -pedantic -Wall -Wextra -Werror -fsyntax-only -Iinclude -x c -
	printf '#include "iadsr.h"\n' | $(CXX) -x c++ -std=c++11 -pedantic -fsyntax-only -Wall -Wextra -Werror -Iinclude -
	@echo "header-check: OK ($(IADSR_H) compiles alone as C99, C11 and C++)"

version-check:
	sh tests/check-version-consistency.sh

print-version:
	@echo $(VERSION)

print-soversion:
	@echo $(SOVERSION)

lint:
	@command -v $(CPPCHECK) >/dev/null 2>&1 || { echo "lint: '$(CPPCHECK)' not found (apt-get install cppcheck)" >&2; exit 1; }
	$(CPPCHECK) --enable=warning,performance,portability --error-exitcode=1 \
	    --suppress=missingIncludeSystem --inline-suppr --std=c11 --quiet \
	    -Iinclude -Isrc src

# API reference from the header (docs/Doxyfile). Any Doxygen warning, e.g.
# an undocumented public member, fails the target, and so does a reference
# without the header's page or without any IADSR_API function in it
# (tools/check-docs-output.sh: without a @file block Doxygen documents
# nothing and warns about nothing).
docs:
	@command -v doxygen >/dev/null 2>&1 || { echo "docs: doxygen not found (apt-get install doxygen); the reference is $(IADSR_H)" >&2; exit 1; }
	@rm -rf build/docs && mkdir -p build/docs
	@IADSR_VERSION=$(VERSION) doxygen docs/Doxyfile || { cat build/docs/warnings.txt >&2; echo "docs: FAILED (doxygen warnings above)" >&2; exit 1; }
	@sh tools/check-docs-output.sh $(IADSR_H) build/docs || { echo "docs: FAILED (the generated reference is incomplete, see above)" >&2; exit 1; }
	@echo "docs: build/docs/html/index.html (libiadsr $(VERSION), every IADSR_API function documented, no doxygen warnings)"

# Every IADSR_API declaration carries a /** doc comment */ (no tools needed).
doc-check:
	@sh tools/check-doc-comments.sh $(IADSR_H)

# tests/check_iadsr is where older trees built the unit-test runner.
clean:
	rm -rf build tests/check_iadsr
	rm -f lib/libiadsr.a lib/libiadsr.so lib/libiadsr.so.* lib/libiadsr.pc
	rm -f bin/iadsr
	@rmdir bin 2>/dev/null || true

help:
	@echo "libiadsr $(VERSION) (SONAME libiadsr.so.$(SOVERSION)), BLAS=$(BLAS)"
	@echo "targets: all check install uninstall examples asan valgrind demo bench"
	@echo "         header-check symbols-check symbols-update abi-check abi-baseline"
	@echo "         doc-check docs version-check lint clean"
	@echo "         stress tsan fuzz fuzz-replay fuzz-afl fuzz-merge check-python"
	@echo "         asan-python check-report check-install man package-files"
	@echo "         dist distcheck print-version print-soversion"
	@echo "knobs:   BLAS=openblas|cblas|none BLAS_CFLAGS= BLAS_LIBS= WERROR=1"
	@echo "         CFLAGS= CPPFLAGS= LDFLAGS= PREFIX= LIBDIR= INCLUDEDIR= BINDIR= DESTDIR="
	@echo "         CMAKEDIR= MANDIR="

# Fuzz harnesses, their corpus replay (part of check) and make fuzz.
include tests/fuzz/fuzz.mk

-include $(wildcard $(VDIR)/*/*.d $(VDIR)/*/*/*.d)
