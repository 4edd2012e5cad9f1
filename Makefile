# umalloc build. `make` builds build/libumalloc.so (the preload library) and build/libumalloc.a
# (the core with um_* names only). `make SECURE=1` (or `make secure`) also builds the hardened
# preload library build/libumalloc-secure.so (docs/security.md). `make test` and `make bench`
# install what they need first, and build and check the hardened library too.

CC      ?= cc
CFLAGS_COMMON := -std=gnu11 -Wall -Wextra -Wshadow -Wstrict-prototypes -Wno-unused-parameter \
                 -Iinclude -I. -D_GNU_SOURCE -fno-plt -ftls-model=initial-exec \
                 -fvisibility=hidden -fno-strict-aliasing
OPT     := -O2 -g -fno-semantic-interposition
SAN_OPT := -O1 -g -fno-omit-frame-pointer

# The library's own sources: every folder but preload/ makes the core.
CORE_SRC    := $(sort $(wildcard base/*.c os/*.c hugepages/*.c numa/*.c core/*.c stats/*.c))
PRELOAD_SRC := $(sort $(wildcard preload/*.c))
HEADERS     := $(wildcard include/*.h base/*.h os/*.h hugepages/*.h numa/*.h core/*.h stats/*.h preload/*.h)
UNIT_SRC    := $(sort $(wildcard test/unit_*.c))
SYS_SRC     := $(sort $(wildcard test/sys_*.c))
TEST_HDR    := $(wildcard test/*.h)
PROG_SRC    := $(sort $(wildcard test/progs/*.c))
PROGS       := $(patsubst test/progs/%.c,build/test/progs/%,$(PROG_SRC))

B := build

# --- the libraries ---------------------------------------------------------------------------
$(B)/obj/so/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) $(OPT) -flto -fPIC -DUM_PRELOAD=1 -c $< -o $@

$(B)/obj/a/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) $(OPT) -fPIC -c $< -o $@

# The preload library with statistics counting compiled out, to measure what counting costs.
$(B)/obj/nostats/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) $(OPT) -flto -fPIC -DUM_PRELOAD=1 -DUM_NO_STATS=1 -c $< -o $@

# The hardened preload library: encoded and checked free lists, guard pages, fresh blocks in
# random order (-DUM_SECURE=1; docs/security.md).
$(B)/obj/secure/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) $(OPT) -flto -fPIC -DUM_PRELOAD=1 -DUM_SECURE=1 -c $< -o $@

# The tests' builds of the core are debug builds (-DUM_DEBUG=1): the lock order is checked at
# every acquisition, and tests can pause a thread between the steps of a protocol (UM_TEST_HOOK).
$(B)/obj/debug/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) $(OPT) -fPIC -DUM_DEBUG=1 -c $< -o $@

$(B)/obj/asan/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) $(SAN_OPT) -DUM_DEBUG=1 -fsanitize=address,undefined -fno-sanitize-recover=undefined -c $< -o $@

$(B)/obj/tsan/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) $(SAN_OPT) -DUM_DEBUG=1 -fsanitize=thread -c $< -o $@

SO_OBJ   := $(patsubst %.c,$(B)/obj/so/%.o,$(CORE_SRC) $(PRELOAD_SRC))
A_OBJ    := $(patsubst %.c,$(B)/obj/a/%.o,$(CORE_SRC))
DEBUG_OBJ := $(patsubst %.c,$(B)/obj/debug/%.o,$(CORE_SRC))
ASAN_OBJ := $(patsubst %.c,$(B)/obj/asan/%.o,$(CORE_SRC))
TSAN_OBJ := $(patsubst %.c,$(B)/obj/tsan/%.o,$(CORE_SRC))

$(B)/libumalloc.so: $(SO_OBJ)
	$(CC) $(OPT) -flto=auto -shared -o $@ $^ -Wl,-z,now -Wl,-z,relro -Wl,--no-undefined -pthread -ldl

NOSTATS_OBJ := $(patsubst %.c,$(B)/obj/nostats/%.o,$(CORE_SRC) $(PRELOAD_SRC))
$(B)/nostats/libumalloc.so: $(NOSTATS_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(OPT) -flto=auto -shared -o $@ $^ -Wl,-z,now -Wl,-z,relro -Wl,--no-undefined -pthread -ldl

SECURE_OBJ := $(patsubst %.c,$(B)/obj/secure/%.o,$(CORE_SRC) $(PRELOAD_SRC))
$(B)/libumalloc-secure.so: $(SECURE_OBJ)
	$(CC) $(OPT) -flto=auto -shared -o $@ $^ -Wl,-z,now -Wl,-z,relro -Wl,--no-undefined -pthread -ldl

$(B)/libumalloc.a: $(A_OBJ)
	@rm -f $@; ar rcs $@ $^

$(B)/debug/libumalloc.a: $(DEBUG_OBJ)
	@mkdir -p $(dir $@); rm -f $@; ar rcs $@ $^

$(B)/asan/libumalloc.a: $(ASAN_OBJ)
	@mkdir -p $(dir $@); rm -f $@; ar rcs $@ $^

$(B)/tsan/libumalloc.a: $(TSAN_OBJ)
	@mkdir -p $(dir $@); rm -f $@; ar rcs $@ $^

SECURE ?= 0
all: $(B)/libumalloc.so $(B)/libumalloc.a $(if $(filter 1,$(SECURE)),$(B)/libumalloc-secure.so)
.DEFAULT_GOAL := all
secure: $(B)/libumalloc-secure.so

# --- tests -------------------------------------------------------------------------------------
# test/unit_*.c: one Criterion binary per build of the core; the same tests run plain, under
# ASan+UBSan and under TSan. test/sys_*.c: one binary that spawns programs (test/progs/ and
# real ones) under LD_PRELOAD=build/libumalloc.so and compares them with plain runs, and checks
# build/libumalloc-secure.so (test/sys_hardening.c).
TEST_LIBS := -lcriterion -pthread -ldl -lm

$(B)/test/unit: $(UNIT_SRC) $(TEST_HDR) $(B)/debug/libumalloc.a $(PROGS) $(B)/libumalloc.so
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) -fvisibility=default -O1 -g -DUM_DEBUG=1 -DUM_TEST_VARIANT='"plain"' -o $@ $(UNIT_SRC) $(B)/debug/libumalloc.a $(TEST_LIBS)

$(B)/test/unit-asan: $(UNIT_SRC) $(TEST_HDR) $(B)/asan/libumalloc.a $(PROGS) $(B)/libumalloc.so
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) -fvisibility=default $(SAN_OPT) -fsanitize=address,undefined -DUM_DEBUG=1 -DUM_TEST_VARIANT='"asan"' -o $@ $(UNIT_SRC) $(B)/asan/libumalloc.a $(TEST_LIBS)

$(B)/test/unit-tsan: $(UNIT_SRC) $(TEST_HDR) $(B)/tsan/libumalloc.a $(PROGS) $(B)/libumalloc.so
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) -fvisibility=default $(SAN_OPT) -fsanitize=thread -DUM_DEBUG=1 -DUM_TEST_VARIANT='"tsan"' -o $@ $(UNIT_SRC) $(B)/tsan/libumalloc.a $(TEST_LIBS)

$(B)/test/progs/%: test/progs/%.c include/umalloc.h
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O1 -g -Wall -Wno-unused-result -Iinclude -D_GNU_SOURCE -o $@ $< -pthread -ldl -lm

# System tests: run once, against the preload library and real programs.
$(B)/test/system: $(SYS_SRC) $(TEST_HDR) $(PROGS) $(B)/libumalloc.so $(B)/libumalloc.a $(B)/libumalloc-secure.so
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) -fvisibility=default -O1 -g -o $@ $(SYS_SRC) $(B)/libumalloc.a $(TEST_LIBS)

progs: $(PROGS)

# Dependencies first and alone: under -j, make would otherwise compile while apt installs.
test: deps-test
	@$(MAKE) --no-print-directory all secure progs $(B)/test/unit $(B)/test/unit-asan $(B)/test/unit-tsan $(B)/test/system
	@scripts/run-tests.sh

deps-test:
	@scripts/deps.sh test

deps-bench:
	@scripts/deps.sh bench

bench: deps-bench
	@$(MAKE) --no-print-directory all $(B)/nostats/libumalloc.so $(B)/libumalloc-secure.so
	@scripts/bench.sh

bench-instr: deps-bench
	@$(MAKE) --no-print-directory all
	@scripts/bench-instr.sh

clean:
	rm -rf $(B)

.PHONY: all secure test deps-test deps-bench bench bench-instr clean progs
