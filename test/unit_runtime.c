/* Runtime glue for the unit-test binaries (no tests in this file).
 *
 * 1. Sanitizer defaults (environment variables ASAN_OPTIONS/UBSAN_OPTIONS/TSAN_OPTIONS still
 *    override them):
 *    - ASan: detect_leaks=0. umalloc's blocks come from mmap and are invisible to LeakSanitizer
 *      anyway; what it would report is Criterion's own runner allocations and test bookkeeping
 *      left behind by a failed assertion, which would turn into spurious failures.
 *    - UBSan: stop at the first report in test code (the core is built with
 *      -fno-sanitize-recover already), so undefined behaviour fails the test that caused it.
 *    - TSan: die_after_fork=0, so the fork tests (unit_fork.c) may fork while threads run;
 *      halt_on_error=1, so a race report aborts the test that triggered it (Criterion ignores
 *      TSan's non-zero exit code at the end of a test process: without this, races are only
 *      printed and every test still PASSes).
 *
 * 2. Criterion under TSan (x86-64 only). Criterion 2.4 (BoxFort) maps its "inheritable arena"
 *    at a random 16 MiB-aligned address in [0x200000000000, 0x7f0000000000), after probing
 *    with mincore() that the spot is free. TSan reserves nearly all of that range (shadow,
 *    meta, gaps mapped PROT_NONE), so the probes find it "in use" and Criterion aborts at
 *    start-up with "Could not initialize inheritable arena: Resource temporarily unavailable"
 *    (upstream issue Snaipe/Criterion#274) -- here about 29 runs out of 30. The two wrappers
 *    below are linked into the executable, so they take precedence over libc's symbols for
 *    libcriterion's calls:
 *    - mincore(): a probe of exactly one page in that window, outside the application range
 *      where TSan lets programs map (the PIE area), is answered "not mapped";
 *    - mmap64(): a MAP_FIXED request into that window outside the PIE area is moved to a free
 *      spot of the PIE area [0x566000000000, 0x568000000000), above where the kernel loads PIE
 *      binaries and below the end of TSan's application range, with MAP_FIXED_NOREPLACE.
 *    The child processes re-map the arena at the same address, which is application memory.
 *    umalloc itself calls mmap(), not mmap64(), and never probes with mincore, so the wrappers
 *    never see its calls; a TSan build of umalloc is unaffected.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
const char *__asan_default_options(void);
const char *__ubsan_default_options(void);
const char *__asan_default_options(void) { return "detect_leaks=0"; }
const char *__ubsan_default_options(void) { return "print_stacktrace=1:halt_on_error=1"; }
#endif

#if defined(__SANITIZE_THREAD__)
const char *__tsan_default_options(void);
const char *__tsan_default_options(void) { return "die_after_fork=0:halt_on_error=1:second_deadlock_stack=1"; }

#if defined(__x86_64__)
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

#define BXF_WINDOW_LO 0x200000000000ULL
#define BXF_WINDOW_HI 0x7f0000000000ULL
#define PIE_LO 0x550000000000ULL /* TSan's application range for PIE binaries */
#define PIE_HI 0x568000000000ULL
#define ARENA_LO 0x566000000000ULL /* above any PIE load address (base + 2^28 pages) */
#define ARENA_STEP 0x10000000ULL   /* 256 MiB per candidate slot */

static int in_reserved_window(uintptr_t a)
{
    return a >= BXF_WINDOW_LO && a < BXF_WINDOW_HI && !(a >= PIE_LO && a < PIE_HI);
}

int mincore(void *addr, size_t length, unsigned char *vec)
{
    uintptr_t a = (uintptr_t)addr;
    if (length == 4096 && in_reserved_window(a)) {
        errno = ENOMEM; /* "nothing mapped here": mmap64 below will place the arena elsewhere */
        return -1;
    }
    long r = syscall(SYS_mincore, addr, length, vec);
    return (int)r;
}

typedef void *(*mmap64_fn)(void *, size_t, int, int, int, off64_t);

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off64_t off)
{
    static void *real_sym; /* the next mmap64: TSan's interceptor */
    void *sym = __atomic_load_n(&real_sym, __ATOMIC_ACQUIRE);
    if (!sym) {
        sym = dlsym(RTLD_NEXT, "mmap64");
        __atomic_store_n(&real_sym, sym, __ATOMIC_RELEASE);
    }
    mmap64_fn real;
    memcpy(&real, &sym, sizeof real); /* object -> function pointer, the POSIX way */
    if (!real) {
        errno = ENOSYS;
        return MAP_FAILED;
    }
    uintptr_t a = (uintptr_t)addr;
    if (!(flags & MAP_FIXED) || !in_reserved_window(a))
        return real(addr, len, prot, flags, fd, off);
    /* slot from the pid, so a child's own arenas do not land where the parent's are inherited */
    uintptr_t nslots = (PIE_HI - ARENA_LO) / ARENA_STEP;
    uintptr_t first = ((uintptr_t)getpid() * 2654435761u) % nslots;
    for (uintptr_t k = 0; k < nslots; k++) {
        uintptr_t hint = ARENA_LO + ((first + k) % nslots) * ARENA_STEP;
        if (len > ARENA_STEP)
            break;
        void *p = real((void *)hint, len, prot, (flags & ~MAP_FIXED) | MAP_FIXED_NOREPLACE, fd, off);
        if (p == (void *)hint)
            return p;
        if (p != MAP_FAILED)
            munmap(p, len);
    }
    errno = ENOMEM;
    return MAP_FAILED;
}
#endif /* __x86_64__ */
#endif /* __SANITIZE_THREAD__ */
