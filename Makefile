# rlhf-c — one Makefile for everything (see README.md).
#
#   make            build every program into build/
#   make test       dependency check, build build/ and build-asan/, run the whole test suite
#                   twice (tests/run.sh): plain, then under ASan + UBSan
#   make check      the plain pass alone (build/): for quick local iteration
#   make demo       dependency check, build, run the most complete pipeline there is
#                   (MODEL=llama: the same on the Llama-architecture llama-tiny)
#   make bench      benchmarks (never part of `make test`)
#   make asan       the ASan + UBSan pass alone (build-asan/, every sanitizer report fatal)
#   make overopt    the reward over-optimisation experiment (tools/overopt.sh, after the demo)
#   make faults     the fault-injection suite alone (tests/t_faults.sh)
#   make fuzz       libFuzzer on every decoder (FUZZ_SECONDS per target)
#   make clean
#
#   make ARCH=native  build for this machine's CPU only (default ARCH=portable, below)
#
# Layout is discovered, so adding a file needs no edit here:
#   common/*.c          -> build/lib/librlhf.so (the shared core; its variants below)
#   learner/*.c         -> build/learner        (one program)
#   actor/*.c           -> build/actor
#   reward_server/*.c   -> build/reward_server
#   tools/rlhf-*.c      -> build/rlhf-*         (one program per file)
#   tests/test_*.c      -> build/tests/test_*   (one test program per file, run by tests/run.sh)
#   tests/mpi_*.c, fx_*.c -> build/tests/...    (helpers that tests/t_*.sh scripts launch,
#                                                 e.g. under mpirun; not run on their own)
#   bench/bench_*.c     -> build/bench/bench_*

CC       ?= gcc
BUILD    ?= build
PKGS     := ompi-c openblas hdf5 msgpack jansson libmicrohttpd
# Portable binaries (ARCH=portable, the default on x86-64): the programs and the base copy
# of librlhf.so are built for x86-64-v2 (SSE4.2, POPCNT: every x86-64 server CPU since
# 2009); two more copies of the library go to build/lib/glibc-hwcaps/x86-64-v3/ (AVX2,
# FMA) and x86-64-v4/ (AVX-512, where gemm.c's kernel and ops.c's AVX-512 paths are
# compiled in), and the dynamic loader (glibc >= 2.33) picks the best one the CPU supports
# at every start. A build made on a login node therefore runs, at full speed, on compute
# nodes of another CPU. Below x86-64-v2 the library refuses at load time with the missing
# features named (common/cpu.c). ARCH=native builds one copy for the build machine;
# ARCH=<gcc -march value> one copy for that CPU.
ARCH     ?= portable
ifeq ($(ARCH),portable)
  ifeq ($(shell uname -m),x86_64)
    BASE_ARCH := -march=x86-64-v2 -mtune=generic
    HWCAPS    := x86-64-v3 x86-64-v4
  else
    BASE_ARCH :=
    HWCAPS    :=
  endif
  ARCH_NAME := $(if $(BASE_ARCH),x86-64-v2,default)
else
  BASE_ARCH := -march=$(ARCH)
  HWCAPS    :=
  ARCH_NAME := $(ARCH)
endif
# -mprefer-vector-width=512: GCC vectorises loops with 256-bit registers on AVX-512 CPUs
# unless told otherwise; the element-wise kernels (GELU, LayerNorm, the log-softmax) are
# faster with 512 (tiny training step 72.4 -> 68.0 ms on an Intel Xeon VM). Results are
# bit-identical (no reassociation either way); CPUs without AVX-512 ignore it.
ARCH_FLAGS_x86-64-v3 := -march=x86-64-v3 -mtune=generic
ARCH_FLAGS_x86-64-v4 := -march=x86-64-v4 -mtune=generic -mprefer-vector-width=512
ifeq ($(ARCH),native)
  BASE_ARCH += -mprefer-vector-width=512
endif
OPT      ?= -O3
CFLAGS   ?= $(OPT) -g
# -fno-math-errno: no math function's errno is ever read here; without it GCC cannot
# vectorise a loop that calls sqrtf (AdamW). Values are unchanged (IEEE results either way).
CFLAGS   += -std=c11 -D_GNU_SOURCE -fno-math-errno -Wall -Wextra -Werror -Icommon
# the library: position-independent, its own calls bound at link time (no PLT detours
# between kernels: -fno-semantic-interposition)
LIB_CFLAGS := -fPIC -fno-semantic-interposition
SAN      ?=
JOBS     ?= $(shell nproc 2>/dev/null || echo 2)
# The sanitizer build (build-asan/, `make asan`, `make test`): -O2 (the kernels run ~11%
# faster than at -O1 under ASan, with the same checks compiled in), frame pointers and no
# sibling calls for whole stacks, every report fatal; one copy of the library, for this
# machine (ARCH=native). Its programs also link tests/san_keep_dso.c (see
# there), with its dlclose exported so that it wins over libc's for the loaded libraries.
ASAN_OPT := -O2 -fno-optimize-sibling-calls
ASAN_SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
SAN_OBJ  := $(if $(SAN),$(BUILD)/obj/tests/san_keep_dso.o)
SAN_LD   := $(if $(SAN),-Xlinker --export-dynamic-symbol=dlclose)

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
# programs find build/lib from build/ and from build/tests/, build/bench/
RPATH      := -Wl,-rpath,'$$ORIGIN/lib:$$ORIGIN/../lib'
LDLIBS     += -L$(BUILD)/lib -lrlhf $(RPATH) $(PKG_LIBS) -lm -lpthread

ifneq ($(MAKECMDGOALS),clean)
$(info rlhf-c: CC=$(CC) BUILD=$(BUILD) ARCH=$(ARCH): $(ARCH_NAME)$(if $(HWCAPS), + $(HWCAPS) (glibc-hwcaps)))
$(info rlhf-c: pkg-config $(PKGS) -> $(PKG_LIBS))
endif

# cpu.c (the load-time CPU check) is compiled for plain x86-64 in every copy, told the
# level of its copy and the instruction sets that level enables (from the compiler itself)
CPU_SETS   := SSE3 SSSE3 SSE4_1 SSE4_2 POPCNT AVX AVX2 FMA BMI BMI2 AVX512F AVX512BW AVX512CD AVX512DQ AVX512VL
cpu_need    = $(filter $(CPU_SETS),$(patsubst __%__,%,$(shell $(CC) $(1) -dM -E -x c /dev/null 2>/dev/null | sed -n 's/^\#define \(__[A-Z0-9_]*__\) 1$$/\1/p')))
cpu_flags   = $(if $(filter x86_64,$(shell uname -m)),-march=x86-64 -mtune=generic) -DRLHF_ARCH_NAME='"$(2)"' -DRLHF_CPU_NEED='"$(call cpu_need,$(1))"'

COMMON_SRC  := $(sort $(wildcard common/*.c))
COMMON_OBJ  := $(COMMON_SRC:%.c=$(BUILD)/obj/%.o)
LIB         := $(BUILD)/lib/librlhf.so
HWCAP_LIBS  := $(foreach v,$(HWCAPS),$(BUILD)/lib/glibc-hwcaps/$(v)/librlhf.so)
ROLE_BINS   := $(foreach r,learner actor reward_server,$(if $(wildcard $(r)/*.c),$(BUILD)/$(r)))
TOOL_BINS   := $(patsubst tools/%.c,$(BUILD)/%,$(wildcard tools/rlhf-*.c))
TEST_BINS   := $(patsubst tests/%.c,$(BUILD)/tests/%,$(wildcard tests/test_*.c tests/mpi_*.c tests/fx_*.c))
BENCH_BINS  := $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/bench_*.c))

.PHONY: all pkgcheck FORCE deps test check demo overopt bench asan asan-build fuzz faults clean format
all: $(ROLE_BINS) $(TOOL_BINS) $(TEST_BINS) $(BENCH_BINS)

deps:
	@bash tools/deps.sh

# Without the libraries' development packages every compile would fail on a missing
# header; say what to do instead (an order-only prerequisite: checked, never a cause to
# rebuild).
pkgcheck:
	@if [ -z "$(PKG_LIBS)" ]; then \
	  echo "rlhf-c: pkg-config does not find the libraries ($(PKGS)):" >&2; \
	  pkg-config --print-errors --exists $(PKGS) 2>&1 | sed 's/^/  /' >&2; \
	  echo "rlhf-c: run 'make deps' (as root it installs the Debian packages; otherwise it prints the apt-get line)," >&2; \
	  echo "rlhf-c: or 'make test' / 'make demo', which run it first." >&2; exit 1; fi

# Objects depend on the flags they were compiled with: switching ARCH, OPT, SAN or the
# compiler rebuilds everything (a stale object of another -march in the x86-64-v2 copy
# would crash older CPUs with SIGILL). The stamp is rewritten only when the flags change.
FLAGS_TEXT := $(CC) | $(CFLAGS) | $(SAN) | $(ARCH) $(BASE_ARCH) | $(HWCAPS) | $(PKG_CFLAGS)
FLAGS_STAMP := $(BUILD)/obj/flags.txt
$(FLAGS_STAMP): FORCE
	@mkdir -p $(dir $@)
	@echo '$(FLAGS_TEXT)' | cmp -s - $@ 2>/dev/null || echo '$(FLAGS_TEXT)' > $@
FORCE:

$(BUILD)/obj/%.o: %.c $(FLAGS_STAMP) | pkgcheck
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(BASE_ARCH) $(SAN) $(PKG_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/obj/common/%.o: common/%.c $(FLAGS_STAMP) | pkgcheck
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(BASE_ARCH) $(LIB_CFLAGS) $(SAN) $(PKG_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/obj/common/cpu.o: common/cpu.c $(FLAGS_STAMP) | pkgcheck
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(call cpu_flags,$(BASE_ARCH),$(ARCH_NAME)) $(LIB_CFLAGS) $(SAN) $(PKG_CFLAGS) -MMD -MP -c $< -o $@

$(LIB): $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SAN) -shared -Wl,-soname,librlhf.so $^ -o $@ $(PKG_LIBS) -lm -lpthread

# one more copy of the library per x86-64 level in HWCAPS (see ARCH above)
define hwcap_rule
$(BUILD)/obj-$(1)/common/%.o: common/%.c $(FLAGS_STAMP) | pkgcheck
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS) $$(ARCH_FLAGS_$(1)) $$(LIB_CFLAGS) $$(SAN) $$(PKG_CFLAGS) -MMD -MP -c $$< -o $$@

$(BUILD)/obj-$(1)/common/cpu.o: common/cpu.c $(FLAGS_STAMP) | pkgcheck
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS) $$(call cpu_flags,$$(ARCH_FLAGS_$(1)),$(1)) $$(LIB_CFLAGS) $$(SAN) $$(PKG_CFLAGS) -MMD -MP -c $$< -o $$@

$(BUILD)/lib/glibc-hwcaps/$(1)/librlhf.so: $(COMMON_SRC:%.c=$(BUILD)/obj-$(1)/%.o)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS) $$(SAN) -shared -Wl,-soname,librlhf.so $$^ -o $$@ $$(PKG_LIBS) -lm -lpthread
endef
$(foreach v,$(HWCAPS),$(eval $(call hwcap_rule,$(v))))

define role_rule
$(BUILD)/$(1): $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard $(1)/*.c)) $(SAN_OBJ) $(LIB) $(HWCAP_LIBS)
	$$(CC) $$(CFLAGS) $$(SAN) $$(filter %.o,$$^) -o $$@ $$(SAN_LD) $$(LDLIBS)
endef
$(foreach r,learner actor reward_server,$(eval $(call role_rule,$(r))))

$(BUILD)/rlhf-%: $(BUILD)/obj/tools/rlhf-%.o $(SAN_OBJ) $(LIB) $(HWCAP_LIBS)
	$(CC) $(CFLAGS) $(SAN) $(filter %.o,$^) -o $@ $(SAN_LD) $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(SAN_OBJ) $(LIB) $(HWCAP_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SAN) $(filter %.o,$^) -o $@ $(SAN_LD) $(LDLIBS)

$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(SAN_OBJ) $(LIB) $(HWCAP_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SAN) $(filter %.o,$^) -o $@ $(SAN_LD) $(LDLIBS)

# `make test`: both builds, then the plain pass and the ASan + UBSan pass, one summary
test: deps
	@$(MAKE) --no-print-directory -j$(JOBS) all
	@$(MAKE) --no-print-directory asan-build
	@BUILD=$(BUILD) ASAN_OPT="$(ASAN_OPT)" ASAN_SAN="$(ASAN_SAN)" bash tests/run.sh plain asan

check: deps
	@$(MAKE) --no-print-directory -j$(JOBS) all
	@BUILD=$(BUILD) bash tests/run.sh plain

demo: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) DEMO_MODEL=$(or $(DEMO_MODEL),$(MODEL),gpt2) bash tools/demo.sh

bench: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) bash bench/run.sh

# ASan + UBSan: a separate build tree, the same suites; tests/run.sh sets the run-time
# options (leak checking with whole stacks, tests/lsan.supp for what Open MPI, OpenBLAS
# and libhdf5 keep for the life of a process).
asan: deps
	@$(MAKE) --no-print-directory asan-build
	@ASAN_OPT="$(ASAN_OPT)" ASAN_SAN="$(ASAN_SAN)" bash tests/run.sh asan

asan-build:
	@$(MAKE) --no-print-directory -j$(JOBS) BUILD=build-asan ARCH=native OPT="$(ASAN_OPT)" SAN="$(ASAN_SAN)" all

# libFuzzer targets of every decoder (clang; see fuzz/run.sh and docs/reliability.md)
FUZZ_SECONDS ?= 60
fuzz:
	@bash fuzz/run.sh $(FUZZ_SECONDS)

# reward over-optimisation: PPO with beta = 0 and the default beta, proxy and gold vs sqrt(KL)
overopt: deps
	@$(MAKE) --no-print-directory all
	@bash tools/overopt.sh

# the fault-injection suite alone (kill -9, dead ranks, disk full, NaN; also in `make test`)
faults: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) TEST_FILTER=t_faults bash tests/run.sh

format:
	clang-format -i common/*.[ch] learner/*.[ch] actor/*.[ch] reward_server/*.[ch] tools/*.c tests/*.[ch] bench/*.c 2>/dev/null || true

clean:
	rm -rf build build-asan build-fuzz

-include $(shell find $(BUILD)/obj $(BUILD)/obj-* -name '*.d' 2>/dev/null)
.SECONDARY:
