# rlhf-c — one Makefile for everything (see README.md).
#
#   make            build every program into build/
#   make test       dependency check, build build/ and build-asan/, run the whole test suite
#                   twice (tests/run.sh): plain, then under ASan + UBSan; ~13 min on 2 cores
#   make check      the plain pass alone (build/, ~5 min): for quick local iteration
#   make demo       dependency check, build, run the most complete pipeline there is
#   make bench      benchmarks (never part of `make test`)
#   make asan       the ASan + UBSan pass alone (build-asan/, every sanitizer report fatal)
#   make overopt    the reward over-optimisation experiment (tools/overopt.sh, after the demo)
#   make faults     the fault-injection suite alone (tests/t_faults.sh)
#   make fuzz       libFuzzer on every decoder (FUZZ_SECONDS per target)
#   make clean
#
# Layout is discovered, so adding a file needs no edit here:
#   common/*.c          -> build/librlhf.a (the shared core)
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
PKGS     := ompi-c openblas hdf5 msgpack jansson
# -mprefer-vector-width=512: GCC vectorises loops with 256-bit registers on AVX-512 CPUs
# unless told otherwise; the element-wise kernels (GELU, LayerNorm, the log-softmax) are
# faster with 512 (tiny training step 72.4 -> 68.0 ms, docs/bench.md). Results are
# bit-identical (no reassociation either way); CPUs without AVX-512 ignore it.
OPT      ?= -O3 -march=native -mprefer-vector-width=512
CFLAGS   ?= $(OPT) -g
# -fno-math-errno: no math function's errno is ever read here; without it GCC cannot
# vectorise a loop that calls sqrtf (AdamW). Values are unchanged (IEEE results either way).
CFLAGS   += -std=c11 -D_GNU_SOURCE -fno-math-errno -Wall -Wextra -Werror -Icommon
SAN      ?=
JOBS     ?= $(shell nproc 2>/dev/null || echo 2)
# The sanitizer build (build-asan/, `make asan`, `make test`): -O2 (the kernels run ~11%
# faster than at -O1 under ASan, with the same checks compiled in), frame pointers and no
# sibling calls for whole stacks, every report fatal. Its programs also link tests/san_keep_dso.c (see
# there), with its dlclose exported so that it wins over libc's for the loaded libraries.
ASAN_OPT := -O2 -march=native -fno-optimize-sibling-calls
ASAN_SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
SAN_OBJ  := $(if $(SAN),$(BUILD)/obj/tests/san_keep_dso.o)
SAN_LD   := $(if $(SAN),-Xlinker --export-dynamic-symbol=dlclose)

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
LDLIBS     += $(PKG_LIBS) -lm -lpthread

ifneq ($(MAKECMDGOALS),clean)
$(info rlhf-c: CC=$(CC) BUILD=$(BUILD))
$(info rlhf-c: pkg-config $(PKGS) -> $(PKG_LIBS))
endif

COMMON_SRC  := $(sort $(wildcard common/*.c))
COMMON_OBJ  := $(COMMON_SRC:%.c=$(BUILD)/obj/%.o)
LIB         := $(BUILD)/librlhf.a
ROLE_BINS   := $(foreach r,learner actor reward_server,$(if $(wildcard $(r)/*.c),$(BUILD)/$(r)))
TOOL_BINS   := $(patsubst tools/%.c,$(BUILD)/%,$(wildcard tools/rlhf-*.c))
TEST_BINS   := $(patsubst tests/%.c,$(BUILD)/tests/%,$(wildcard tests/test_*.c tests/mpi_*.c tests/fx_*.c))
BENCH_BINS  := $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/bench_*.c))

.PHONY: all deps test check demo overopt bench asan asan-build fuzz faults clean format
all: $(ROLE_BINS) $(TOOL_BINS) $(TEST_BINS) $(BENCH_BINS)

deps:
	@bash tools/deps.sh

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SAN) $(PKG_CFLAGS) -MMD -MP -c $< -o $@

$(LIB): $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	@rm -f $@
	ar rcs $@ $^

define role_rule
$(BUILD)/$(1): $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard $(1)/*.c)) $(LIB) $(SAN_OBJ)
	$$(CC) $$(CFLAGS) $$(SAN) $$^ -o $$@ $$(SAN_LD) $$(LDLIBS)
endef
$(foreach r,learner actor reward_server,$(eval $(call role_rule,$(r))))

$(BUILD)/rlhf-%: $(BUILD)/obj/tools/rlhf-%.o $(LIB) $(SAN_OBJ)
	$(CC) $(CFLAGS) $(SAN) $^ -o $@ $(SAN_LD) $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(LIB) $(SAN_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SAN) $^ -o $@ $(SAN_LD) $(LDLIBS)

$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(LIB) $(SAN_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SAN) $^ -o $@ $(SAN_LD) $(LDLIBS)

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
	@BUILD=$(BUILD) bash tools/demo.sh

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
	@$(MAKE) --no-print-directory -j$(JOBS) BUILD=build-asan OPT="$(ASAN_OPT)" SAN="$(ASAN_SAN)" all

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

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
.SECONDARY:
