# seqlab build.
#
#   make            libseqlab.a and the seqlab binary (build/)
#   make test       every cmocka suite in tests/ (fails if any test fails)
#   make asan       the same suites built with AddressSanitizer + UBSan (build/asan/)
#   make demo       set up, build, run the main job on a bundled example
#   make bench      benchmarks against PyTorch CPU (installs torch with pip, bench only)
#   make deps       install the Debian packages seqlab needs, when any is missing
#   make CUDA=1     also build kernels/cuda/ with nvcc and link cuBLAS (docs/cuda.md;
#                   CUDA_ARCH="-gencode ..." picks the GPUs)
#   make V=1        show full command lines
#
# Every public target runs `deps` first, then re-invokes make so that the
# pkg-config flags are read once, after the packages exist.

PKGS      := gsl lapacke openblas sqlite3 cairo jansson libcrypto
TEST_PKGS := cmocka
# Debian package per pkg-config name (make deps installs the missing ones).
DEB_gsl       := libgsl-dev
DEB_lapacke   := liblapacke-dev
DEB_openblas  := libopenblas-dev
DEB_sqlite3   := libsqlite3-dev
DEB_cairo     := libcairo2-dev
DEB_jansson   := libjansson-dev
DEB_libcrypto := libssl-dev
DEB_cmocka    := libcmocka-dev
# Runtime tools the tests use (pdftoppm, xmllint) and the font figures use.
DEB_TOOLS     := pkg-config fonts-dejavu-core poppler-utils libxml2-utils

CC      ?= cc
BUILD   ?= build
NVCC    ?= nvcc
CUDA    ?= 0

ifeq ($(V),1)
Q :=
else
Q := @
endif

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# pkg-config is asked once per make invocation (the inner one, after deps).
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# GSL's pkg-config adds its own reference CBLAS; OpenBLAS provides CBLAS, so drop it.
PKG_LIBS   := $(filter-out -lgslcblas,$(shell pkg-config --libs $(PKGS) 2>/dev/null))
TEST_LIBS  := $(shell pkg-config --libs $(TEST_PKGS) 2>/dev/null)

GIT_COMMIT := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
VERSION    := $(shell cat VERSION 2>/dev/null || echo 0.0.0)

WARN    := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -Wno-format-truncation
DEFS    := -D_GNU_SOURCE -include base/version.h
INC     := -I. -Ibase -Ikernels -Imodels -Ianalysis -Iplot -Idb -Icli
OPT     ?= -O2 -march=x86-64-v2
CFLAGS_ALL = -std=c11 $(OPT) $(WARN) $(DEFS) $(INC) -fopenmp $(PKG_CFLAGS) $(EXTRA_CFLAGS)
LDLIBS_ALL = $(PKG_LIBS) -fopenmp -lm $(EXTRA_LDLIBS)

ifeq ($(CUDA),1)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(shell command -v $(NVCC)))
DEFS      += -DSL_CUDA=1
CUDA_SRC  := $(wildcard kernels/cuda/*.cu)
CUDA_OBJ  := $(patsubst %.cu,$(BUILD)/obj/%.o,$(CUDA_SRC))
# SASS for Ampere (sm_80; also runs on sm_86/89) and Hopper (sm_90: H100/H200),
# plus compute_90 PTX that newer GPUs JIT. Precise math (no --use_fast_math):
# the kernels are checked against the CPU to 1e-5. Warnings are errors.
CUDA_ARCH ?= -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
             -gencode arch=compute_90,code=compute_90
NVCCFLAGS ?= -O3 -std=c++17 $(CUDA_ARCH) -Werror all-warnings -Xptxas -Werror \
             -Xcompiler -Wall,-Wextra,-Wshadow,-Werror
EXTRA_LDLIBS += -L$(CUDA_HOME)/lib64 -lcublas -lcudart -lstdc++
endif

LIB_DIRS := base kernels models analysis plot db
LIB_SRC  := $(foreach d,$(LIB_DIRS),$(wildcard $(d)/*.c))
CLI_SRC  := $(wildcard cli/*.c)
TEST_SRC := $(wildcard tests/test_*.c)
TEST_SUPPORT := $(filter-out $(TEST_SRC),$(wildcard tests/*.c))
NB_SRC   := $(wildcard notebooks-c/*.c)

VERSION_SRC := $(BUILD)/gen/version.c
LIB_OBJ  := $(patsubst %.c,$(BUILD)/obj/%.o,$(LIB_SRC)) $(BUILD)/obj/gen/version.o $(CUDA_OBJ)
CLI_OBJ  := $(patsubst %.c,$(BUILD)/obj/%.o,$(CLI_SRC))
CLI_LIB_OBJ := $(filter-out $(BUILD)/obj/cli/main.o,$(CLI_OBJ))
SUP_OBJ  := $(patsubst %.c,$(BUILD)/obj/%.o,$(TEST_SUPPORT))
TEST_BIN := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))
NB_BIN   := $(patsubst notebooks-c/%.c,$(BUILD)/notebooks/%,$(NB_SRC))

LIB     := $(BUILD)/libseqlab.a
CLILIB  := $(BUILD)/libseqlab-cli.a
BIN     := $(BUILD)/seqlab

.PHONY: all deps test asan demo bench clean notebooks gallery build-all run-tests check-deps \
        _all _test _notebooks _gallery _bench
.DEFAULT_GOAL := all
# Keep intermediate objects (tests/support.o) so an up-to-date tree rebuilds nothing.
.SECONDARY:

# ---------------------------------------------------------------- public targets
all: deps
	$(Q)$(MAKE) --no-print-directory _all

test: deps
	$(Q)$(MAKE) --no-print-directory _test

asan: deps
	$(Q)$(MAKE) --no-print-directory _test BUILD=build/asan \
	  OPT="-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
	  EXTRA_LDLIBS="-fsanitize=address,undefined" \
	  SL_TEST_ENV="ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 UBSAN_OPTIONS=print_stacktrace=1"

notebooks: deps
	$(Q)$(MAKE) --no-print-directory _notebooks

demo: deps
	$(Q)$(MAKE) --no-print-directory _all
	$(Q)./scripts/demo.sh $(BIN)

gallery: deps
	$(Q)$(MAKE) --no-print-directory _gallery

bench: deps
	$(Q)$(MAKE) --no-print-directory _bench

clean:
	rm -rf build

# Install what is missing. pkg-config answers in milliseconds, so the common
# case (everything present) costs nothing.
deps:
	$(Q)missing=""; \
	command -v pkg-config >/dev/null 2>&1 || missing="$(DEB_TOOLS)"; \
	for p in $(PKGS) $(TEST_PKGS); do \
	  pkg-config --exists $$p 2>/dev/null || case $$p in \
	    gsl) missing="$$missing $(DEB_gsl)";; lapacke) missing="$$missing $(DEB_lapacke)";; \
	    openblas) missing="$$missing $(DEB_openblas)";; sqlite3) missing="$$missing $(DEB_sqlite3)";; \
	    cairo) missing="$$missing $(DEB_cairo)";; jansson) missing="$$missing $(DEB_jansson)";; \
	    libcrypto) missing="$$missing $(DEB_libcrypto)";; cmocka) missing="$$missing $(DEB_cmocka)";; \
	  esac; \
	done; \
	for t in pdftoppm:poppler-utils xmllint:libxml2-utils; do \
	  command -v $${t%%:*} >/dev/null 2>&1 || missing="$$missing $${t#*:}"; \
	done; \
	[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing="$$missing fonts-dejavu-core"; \
	if [ -n "$$missing" ]; then \
	  echo "seqlab: installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(DEB_TOOLS) $$missing >/dev/null; \
	fi

# ---------------------------------------------------------------- inner targets
_all: $(LIB) $(BIN)

$(LIB): $(LIB_OBJ)
	@mkdir -p $(@D)
	$(Q)rm -f $@ && ar rcs $@ $^

$(CLILIB): $(CLI_LIB_OBJ)
	@mkdir -p $(@D)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BIN): $(BUILD)/obj/cli/main.o $(CLILIB) $(LIB)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LINK  $@")
	$(Q)$(CC) $(CFLAGS_ALL) -o $@ $^ $(LDLIBS_ALL)

# The version file is rewritten only when the version or commit changes.
.PHONY: FORCE
$(VERSION_SRC): FORCE
	@mkdir -p $(@D)
	@printf 'const char sl_version[] = "%s";\nconst char sl_git_commit[] = "%s%s";\n' "$(VERSION)" "$(GIT_COMMIT)" \
	  "$$(git diff --quiet HEAD 2>/dev/null || echo -dirty)" > $@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@

$(BUILD)/obj/gen/version.o: $(VERSION_SRC)
	@mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS_ALL) -c -o $@ $<

$(BUILD)/obj/%.o: %.c Makefile
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC    $<")
	$(Q)$(CC) $(CFLAGS_ALL) -MMD -MP -c -o $@ $<

$(BUILD)/obj/%.o: %.cu Makefile
	@mkdir -p $(@D)
	@$(if $(Q),echo "  NVCC  $<")
	$(Q)$(NVCC) $(NVCCFLAGS) $(INC) -DSL_CUDA=1 -MMD -MP -c -o $@ $<

$(BUILD)/tests/%: tests/%.c $(SUP_OBJ) $(CLILIB) $(LIB)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  TEST  $@")
	$(Q)$(CC) $(CFLAGS_ALL) -Itests -o $@ $< $(SUP_OBJ) $(CLILIB) $(LIB) $(LDLIBS_ALL) $(TEST_LIBS)

$(BUILD)/notebooks/%: notebooks-c/%.c $(LIB)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  NB    $@")
	$(Q)$(CC) $(CFLAGS_ALL) -o $@ $< $(LIB) $(LDLIBS_ALL)

# Tests run from the repository root with SL_BIN pointing at the binary.
_test: $(LIB) $(BIN) $(TEST_BIN)
	$(Q)fail=0; for t in $(TEST_BIN); do \
	  echo "== $$t"; \
	  env $(SL_TEST_ENV) SL_BIN=$(CURDIR)/$(BIN) SL_BUILD=$(CURDIR)/$(BUILD) OMP_NUM_THREADS=2 $$t || fail=1; \
	done; \
	if [ $$fail -ne 0 ]; then echo "seqlab: some tests FAILED"; exit 1; fi; \
	echo "seqlab: all test suites passed ($(words $(TEST_BIN)) suites)"

_notebooks: $(NB_BIN)

# The gallery is a C program against the library (scripts/gallery.c).
_gallery: $(LIB) $(BIN)
	@mkdir -p $(BUILD)/gallery
	$(Q)$(CC) $(CFLAGS_ALL) -o $(BUILD)/gallery/render scripts/gallery.c $(LIB) $(LDLIBS_ALL)
	$(Q)$(BUILD)/gallery/render $(BUILD)/gallery

BENCH_BIN := $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/*.c))

$(BUILD)/bench/%: bench/%.c $(LIB)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  BENCH $@")
	$(Q)$(CC) $(CFLAGS_ALL) -o $@ $< $(LIB) $(LDLIBS_ALL)

_bench: $(LIB) $(BIN) $(BENCH_BIN)
	$(Q)BUILD=$(BUILD) ./bench/run.sh $(BIN) $(BENCH_ARGS)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
