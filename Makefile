# rlhf-c — one Makefile for everything (see README.md).
#
#   make            build every program into build/
#   make test       dependency check, build, run the whole test suite (tests/run.sh)
#   make demo       dependency check, build, run the most complete pipeline there is
#   make bench      benchmarks (never part of `make test`)
#   make asan       the test suite under AddressSanitizer + UBSan (separate build dir)
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
OPT      ?= -O3 -march=native
CFLAGS   ?= $(OPT) -g
CFLAGS   += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Icommon
SAN      ?=

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

.PHONY: all deps test demo overopt bench asan fuzz faults clean format
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
$(BUILD)/$(1): $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard $(1)/*.c)) $(LIB)
	$$(CC) $$(CFLAGS) $$(SAN) $$^ -o $$@ $$(LDLIBS)
endef
$(foreach r,learner actor reward_server,$(eval $(call role_rule,$(r))))

$(BUILD)/rlhf-%: $(BUILD)/obj/tools/rlhf-%.o $(LIB)
	$(CC) $(CFLAGS) $(SAN) $^ -o $@ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SAN) $^ -o $@ $(LDLIBS)

$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SAN) $^ -o $@ $(LDLIBS)

test: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) bash tests/run.sh

demo: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) bash tools/demo.sh

bench: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) bash bench/run.sh

# ASan+UBSan: a separate build tree, -O1 for useful traces, the same test runner. Leak
# reports need whole stacks (fast_unwind_on_malloc=0: Open MPI and OpenBLAS are built
# without frame pointers) and Open MPI's components kept loaded, so that tests/lsan.supp
# can tell the libraries' process-lifetime allocations from ours.
asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan OPT="-O1 -march=native" \
	  SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" all
	@BUILD=build-asan RLHF_ASAN=1 OMPI_MCA_mca_base_component_disable_dlclose=1 \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:fast_unwind_on_malloc=0 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 bash tests/run.sh

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
