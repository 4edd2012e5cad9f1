# umalloc build. `make` builds build/libumalloc.so (the preload library) and build/libumalloc.a
# (the core with um_* names only). `make SECURE=1` (or `make secure`) also builds the hardened
# preload library build/libumalloc-secure.so (docs/security.md). `make test` and `make bench`
# install what they need first, and build and check the hardened library too. `make install` and
# `make deb` install it (docs/install.md).

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
PROG_CXX_SRC := $(sort $(wildcard test/progs/*.cpp))
PROGS       := $(patsubst test/progs/%.c,build/test/progs/%,$(PROG_SRC)) \
               $(patsubst test/progs/%.cpp,build/test/progs/%,$(PROG_CXX_SRC))

B := build

# The release (include/umalloc.h) and the ABI version: SOVERSION changes only when a program
# linked with an older library would break.
VERSION   := $(shell sed -n 's/.*define UMALLOC_VERSION "\(.*\)".*/\1/p' include/umalloc.h)
SOVERSION := 0
SONAME    := libumalloc.so.$(SOVERSION)

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

# Packed relative relocations (DT_RELR) where the linker has them: the static heaps' size tables
# (core/heap.c) are some 3300 pointers, each a 24-byte relocation record that the loader reads at
# start-up, 80 KiB of the library resident in every process; packed, under 1 KiB. The loader
# needs glibc 2.36 or later, which the linker checks.
RELR_FLAG := $(shell $(CC) -shared -Wl,-z,pack-relative-relocs -x c /dev/null -o /dev/null 2>/dev/null && echo -Wl,-z,pack-relative-relocs)
SO_LDFLAGS := -Wl,-z,now -Wl,-z,relro -Wl,--no-undefined $(RELR_FLAG)

# The soname names the ABI: a program linked with -lumalloc records libumalloc.so.$(SOVERSION) and
# runs with any later library of that ABI. build/libumalloc.so is what `make install` installs
# as libumalloc.so.$(VERSION).
$(B)/libumalloc.so: $(SO_OBJ)
	$(CC) $(OPT) -flto=auto -shared -o $@ $^ -Wl,-soname,$(SONAME) $(SO_LDFLAGS) -pthread -ldl

NOSTATS_OBJ := $(patsubst %.c,$(B)/obj/nostats/%.o,$(CORE_SRC) $(PRELOAD_SRC))
$(B)/nostats/libumalloc.so: $(NOSTATS_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(OPT) -flto=auto -shared -o $@ $^ $(SO_LDFLAGS) -pthread -ldl

SECURE_OBJ := $(patsubst %.c,$(B)/obj/secure/%.o,$(CORE_SRC) $(PRELOAD_SRC))
$(B)/libumalloc-secure.so: $(SECURE_OBJ)
	$(CC) $(OPT) -flto=auto -shared -o $@ $^ $(SO_LDFLAGS) -pthread -ldl

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

# --- fuzzing -----------------------------------------------------------------------------------
# test/fuzz/fuzz_api.c drives the whole um_* API from libFuzzer's inputs against a shadow model
# (scripts/fuzz.sh). libFuzzer comes with clang only, so this build of the core is clang's: a
# debug build like the other tests', under ASan + UBSan, with the fuzzer's coverage hooks.
# clang 14 does not define __SANITIZE_ADDRESS__ (gcc does), which the core reads to know that
# ASan owns the low address space (os/region.c, os/os.c): defined here, so that this build maps
# segments as the gcc ASan build does instead of trying addresses inside ASan's shadow.
FUZZ_CC  ?= clang
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined -D__SANITIZE_ADDRESS__=1
FUZZ_OBJ := $(patsubst %.c,$(B)/fuzz/obj/%.o,$(CORE_SRC))

$(B)/fuzz/obj/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CFLAGS_COMMON) $(SAN_OPT) -DUM_DEBUG=1 $(FUZZ_SAN) -fsanitize=fuzzer-no-link -c $< -o $@

$(B)/fuzz/fuzz_api: test/fuzz/fuzz_api.c $(wildcard test/fuzz/*.h) $(FUZZ_OBJ)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CFLAGS_COMMON) -fvisibility=default $(SAN_OPT) -DUM_DEBUG=1 $(FUZZ_SAN) -fsanitize=fuzzer -o $@ \
		test/fuzz/fuzz_api.c $(FUZZ_OBJ) -pthread -ldl

# make fuzz: FUZZ_SECONDS (default 600) of fuzzing over build/fuzz/corpus, seeded from
# test/fuzz/corpus. make fuzz-merge: what that run found, minimized into test/fuzz/corpus.
FUZZ_SECONDS ?= 600
fuzz: deps-test
	@$(MAKE) --no-print-directory $(B)/fuzz/fuzz_api
	@FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh run

fuzz-merge: deps-test
	@$(MAKE) --no-print-directory $(B)/fuzz/fuzz_api
	@scripts/fuzz.sh merge

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

$(B)/test/progs/%: test/progs/%.c include/umalloc.h $(wildcard test/progs/*.h)
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O1 -g -Wall -Wno-unused-result -Iinclude -D_GNU_SOURCE -o $@ $< -pthread -ldl -lm

CXX ?= c++
$(B)/test/progs/%: test/progs/%.cpp
	@mkdir -p $(dir $@)
	$(CXX) -std=gnu++17 -O1 -g -Wall -o $@ $< -ldl

# System tests: run once, against the preload library and real programs.
$(B)/test/system: $(SYS_SRC) $(TEST_HDR) $(PROGS) $(B)/libumalloc.so $(B)/libumalloc.a $(B)/libumalloc-secure.so
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) -fvisibility=default -O1 -g -o $@ $(SYS_SRC) $(B)/libumalloc.a $(TEST_LIBS)

progs: $(PROGS)

# The NUMA placement program (scripts/test-numa.sh runs it in multi-node qemu guests). libnuma is
# the test's independent witness of where pages are; the library itself never calls it.
$(B)/test/numa_place: test/numa/numa_place.c include/umalloc.h
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O2 -g -Wall -Wextra -Iinclude -D_GNU_SOURCE -o $@ $< -lnuma -pthread -ldl

# Dependencies first and alone: under -j, make would otherwise compile while apt installs.
test: deps-test
	@$(MAKE) --no-print-directory all secure progs $(B)/test/unit $(B)/test/unit-asan $(B)/test/unit-tsan $(B)/test/system \
		$(B)/fuzz/fuzz_api $(B)/test/numa_place
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

# --- manual pages -----------------------------------------------------------------------------
# man/*.in with the version filled in; the option list of umalloc(7) is printed from the options
# table by scripts/man-options.c, linked with the core, so it cannot drift from UMALLOC_HELP.
MAN_PAGES := $(B)/man/umalloc.1 $(B)/man/umalloc-stat.1 $(B)/man/umalloc.3 $(B)/man/umalloc.7

$(B)/man/man-options: scripts/man-options.c $(B)/libumalloc.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) -O1 -o $@ $< $(B)/libumalloc.a -pthread -ldl

$(B)/man/options.roff: $(B)/man/man-options
	$< >$@.tmp && mv $@.tmp $@

$(B)/man/umalloc.7: man/umalloc.7.in $(B)/man/options.roff include/umalloc.h
	sed -e 's/@VERSION@/$(VERSION)/g' -e '/^@OPTIONS@$$/{r $(B)/man/options.roff' -e 'd;}' $< >$@.tmp
	mv $@.tmp $@

$(B)/man/%: man/%.in include/umalloc.h
	@mkdir -p $(dir $@)
	sed -e 's/@VERSION@/$(VERSION)/g' $< >$@.tmp && mv $@.tmp $@

man: $(MAN_PAGES)

# --- install -----------------------------------------------------------------------------------
# `make install` (PREFIX, DESTDIR, LIBDIR...) installs the shared library under its soname with
# the usual links, the static library, the header, umalloc.pc, the manual pages, umalloc-stat and
# the launcher. Files that name an installed path (umalloc.pc, the launcher) are written straight
# into place, so a later install with another PREFIX cannot pick up a stale copy. Without
# DESTDIR, as root, both targets run ldconfig: the loader's cache must learn the soname.
PREFIX       ?= /usr/local
BINDIR       ?= $(PREFIX)/bin
LIBDIR       ?= $(PREFIX)/lib
INCLUDEDIR   ?= $(PREFIX)/include
MANDIR       ?= $(PREFIX)/share/man
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig

# umalloc.pc says ${prefix}/... wherever it can, so that pkg-config --define-variable=prefix=DIR
# (or --define-prefix) finds a tree that was moved or installed under DESTDIR.
pc_dir = $(patsubst $(PREFIX)/%,$${prefix}/%,$(1))

INSTALLED := $(BINDIR)/umalloc $(BINDIR)/umalloc-stat \
             $(LIBDIR)/libumalloc.so.$(VERSION) $(LIBDIR)/$(SONAME) $(LIBDIR)/libumalloc.so \
             $(LIBDIR)/libumalloc.a $(INCLUDEDIR)/umalloc.h $(PKGCONFIGDIR)/umalloc.pc \
             $(MANDIR)/man1/umalloc.1 $(MANDIR)/man1/umalloc-stat.1 \
             $(MANDIR)/man3/umalloc.3 $(MANDIR)/man7/umalloc.7

install: all man
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) \
	    $(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3 \
	    $(DESTDIR)$(MANDIR)/man7
	install -m 644 $(B)/libumalloc.so $(DESTDIR)$(LIBDIR)/libumalloc.so.$(VERSION)
	ln -sf libumalloc.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libumalloc.so
	install -m 644 $(B)/libumalloc.a $(DESTDIR)$(LIBDIR)/libumalloc.a
	install -m 644 include/umalloc.h $(DESTDIR)$(INCLUDEDIR)/umalloc.h
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(call pc_dir,$(LIBDIR))|g' \
	    -e 's|@INCLUDEDIR@|$(call pc_dir,$(INCLUDEDIR))|g' -e 's|@VERSION@|$(VERSION)|g' \
	    umalloc.pc.in >$(DESTDIR)$(PKGCONFIGDIR)/umalloc.pc
	chmod 644 $(DESTDIR)$(PKGCONFIGDIR)/umalloc.pc
	sed -e 's|@UMALLOC_LIB@|$(LIBDIR)/$(SONAME)|g' -e 's|@UMALLOC_VERSION@|$(VERSION)|g' \
	    scripts/umalloc >$(DESTDIR)$(BINDIR)/umalloc
	chmod 755 $(DESTDIR)$(BINDIR)/umalloc
	install -m 755 scripts/umalloc-stat $(DESTDIR)$(BINDIR)/umalloc-stat
	install -m 644 $(B)/man/umalloc.1 $(B)/man/umalloc-stat.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 644 $(B)/man/umalloc.3 $(DESTDIR)$(MANDIR)/man3/
	install -m 644 $(B)/man/umalloc.7 $(DESTDIR)$(MANDIR)/man7/
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then ldconfig; fi

uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then ldconfig; fi

# --- Debian package ----------------------------------------------------------------------------
# Built by dpkg-buildpackage in a copy of the tree (build/deb/umalloc-VERSION), so that its
# `make clean` and its debian/ leftovers never touch this checkout; the packages, .changes and
# .buildinfo land in build/deb/.
deb:
	@scripts/make-deb.sh

clean:
	rm -rf $(B)

.PHONY: all secure test deps-test deps-bench bench bench-instr clean progs man install uninstall deb fuzz fuzz-merge
