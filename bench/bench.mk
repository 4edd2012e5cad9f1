# Builds the benchmark workloads and tools into build/bench/bin/. Used by scripts/bench.sh and
# scripts/bench-instr.sh as `make -f bench/bench.mk`; independent of the library's Makefile.
BENCH_BIN := build/bench/bin
BENCH_CC ?= cc
BENCH_CFLAGS := -std=gnu11 -O2 -g -Wall -Wextra -Wno-unused-parameter -D_GNU_SOURCE
BENCH_CXX ?= c++
BENCH_CXXFLAGS := -std=gnu++17 -O2 -g -Wall -Wextra
WORKLOADS := larson xmalloc cache-scratch cache-thrash churn realloc large tree \
             threadchurn mstress malloc-large rptest alloc-test sh6bench tlb spawn vector cxx steady phases forkheap \
             ttest simple

all: $(addprefix $(BENCH_BIN)/,$(WORKLOADS) bench-run instr)

$(BENCH_BIN)/%: bench/%.c bench/common.h
	@mkdir -p $(BENCH_BIN)
	$(BENCH_CC) $(BENCH_CFLAGS) -o $@ $< -pthread -lm -ldl

$(BENCH_BIN)/%: bench/%.cpp
	@mkdir -p $(BENCH_BIN)
	$(BENCH_CXX) $(BENCH_CXXFLAGS) -o $@ $< -pthread

$(BENCH_BIN)/bench-run: bench/runner.c
	@mkdir -p $(BENCH_BIN)
	$(BENCH_CC) $(BENCH_CFLAGS) -o $@ $<

# -fno-builtin: keep every malloc/free call in the counted loop as written
$(BENCH_BIN)/instr: bench/instr.c
	@mkdir -p $(BENCH_BIN)
	$(BENCH_CC) -std=gnu11 -O2 -g -Wall -fno-builtin -o $@ $<

.PHONY: all
