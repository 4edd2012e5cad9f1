/* Shared helpers for the umalloc unit and stress tests (test/unit_*.c).
 *
 * Everything here is static inline so that every test file can include it; each translation
 * unit gets its own copy of the (tiny) failure-recording state.
 *
 * - variant scaling: UM_TEST_VARIANT is "plain", "asan" or "tsan" (set by the Makefile);
 *   tu_pick(plain, asan, tsan) chooses an iteration count / size for the current build.
 * - memory measures: tu_rss_bytes(), tu_vm_size_bytes() (from /proc/self/statm), tu_totals().
 * - patterns: tu_fill()/tu_check() write and verify a position- and seed-dependent pattern,
 *   so that a lost, shifted or overlapping block is detected.
 * - RNG: xorshift64* (tu_rng_t).
 * - failure recording from worker threads / children: tu_fail() (Criterion assertions are only
 *   used on the test's main thread).
 * - stderr capture: tu_capture_begin()/tu_capture_end() redirect fd 2 to a temporary file.
 */
#ifndef UM_TEST_UTIL_H
#define UM_TEST_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "umalloc.h"

#ifndef UM_TEST_VARIANT
#define UM_TEST_VARIANT "plain"
#endif

#define TU_KiB ((size_t)1024)
#define TU_MiB ((size_t)1024 * 1024)
#define TU_GiB ((size_t)1024 * 1024 * 1024)

/* ---- build variant --------------------------------------------------------------------------- */
static inline int tu_is_asan(void) { return strcmp(UM_TEST_VARIANT, "asan") == 0; }
static inline int tu_is_tsan(void) { return strcmp(UM_TEST_VARIANT, "tsan") == 0; }
static inline int tu_is_plain(void) { return !tu_is_asan() && !tu_is_tsan(); }

/* The value for this build: plain, ASan+UBSan (~2-3x slower) or TSan (~10x slower). */
static inline size_t tu_pick(size_t plain, size_t asan, size_t tsan)
{
    if (tu_is_tsan())
        return tsan;
    if (tu_is_asan())
        return asan;
    return plain;
}

/* ---- small utilities ------------------------------------------------------------------------ */
static inline size_t tu_page_size(void)
{
    long ps = sysconf(_SC_PAGESIZE);
    return ps > 0 ? (size_t)ps : 4096;
}

static inline size_t tu_round_up(size_t n, size_t align) { return (n + align - 1) / align * align; }

static inline int tu_is_aligned(const void *p, size_t align)
{
    return align == 0 || ((uintptr_t)p % align) == 0;
}

static inline double tu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline void tu_sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Resident set size of this process in bytes, from /proc/self/statm (0 if unreadable). */
static inline size_t tu_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0;
    if (!f)
        return 0;
    if (fscanf(f, "%lu %lu", &size, &resident) != 2)
        resident = 0;
    fclose(f);
    return (size_t)resident * tu_page_size();
}

/* Address space this process maps in bytes (VmSize), from /proc/self/statm (0 if unreadable). */
static inline size_t tu_vm_size_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0;
    if (!f)
        return 0;
    if (fscanf(f, "%lu", &size) != 1)
        size = 0;
    fclose(f);
    return (size_t)size * tu_page_size();
}

static inline um_totals_t tu_totals(void)
{
    um_totals_t t;
    memset(&t, 0xA5, sizeof t); /* a field um_get_totals forgets to set shows up as garbage */
    um_get_totals(&t);
    return t;
}

static inline double tu_mib(size_t bytes) { return (double)bytes / (double)TU_MiB; }

/* ---- RNG: xorshift64* ------------------------------------------------------------------------- */
typedef struct {
    uint64_t s;
} tu_rng_t;

static inline uint64_t tu_mix64(uint64_t x) /* splitmix64 finaliser */
{
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

static inline tu_rng_t tu_rng(uint64_t seed)
{
    tu_rng_t r;
    r.s = tu_mix64(seed) | 1;
    return r;
}

static inline uint64_t tu_next(tu_rng_t *r)
{
    uint64_t x = r->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* Uniform in [lo, hi] (inclusive). */
static inline size_t tu_range(tu_rng_t *r, size_t lo, size_t hi)
{
    return lo + (size_t)(tu_next(r) % (uint64_t)(hi - lo + 1));
}

/* ---- patterns ----------------------------------------------------------------------------------- */
/* Word i of the pattern depends on the seed and on i, so a block copied to the wrong offset,
 * a block holding another block's data, or a stray write all show up. Callers usually derive
 * the seed from the block address and size. */
static inline uint64_t tu_word(uint64_t base, size_t i) { return base ^ ((uint64_t)i * 0x9E3779B97F4A7C15ULL); }

static inline void tu_fill(void *p, size_t n, uint64_t seed)
{
    unsigned char *b = (unsigned char *)p;
    uint64_t base = tu_mix64(seed);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v = tu_word(base, i);
        memcpy(b + i, &v, 8);
    }
    for (; i < n; i++)
        b[i] = (unsigned char)(tu_word(base, i & ~(size_t)7) >> ((i & 7) * 8));
}

/* Offset of the first byte that differs from the pattern, or -1 if the block is intact. */
static inline long tu_check(const void *p, size_t n, uint64_t seed)
{
    const unsigned char *b = (const unsigned char *)p;
    uint64_t base = tu_mix64(seed);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, b + i, 8);
        if (v != tu_word(base, i)) {
            size_t k = i;
            while (b[k] == (unsigned char)(tu_word(base, i) >> ((k - i) * 8)))
                k++;
            return (long)k;
        }
    }
    for (; i < n; i++)
        if (b[i] != (unsigned char)(tu_word(base, i & ~(size_t)7) >> ((i & 7) * 8)))
            return (long)i;
    return -1;
}

/* Offset of the first byte != c, or -1. */
static inline long tu_check_byte(const void *p, size_t n, unsigned char c)
{
    const unsigned char *b = (const unsigned char *)p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != c)
            return (long)i;
    return -1;
}

/* The seed the tests use for a block: its address and size. */
static inline uint64_t tu_seed(const void *p, size_t n) { return (uint64_t)(uintptr_t)p * 31u + n; }

/* ---- failure recording (worker threads, forked children) ---------------------------------------- */
static atomic_ulong tu_fail_count;
static atomic_int tu_fail_claimed;
static char tu_fail_msg[512];

/* Record a failure; the first message is kept. Read tu_fail_count/tu_fail_msg after joining. */
__attribute__((format(printf, 1, 2), unused)) static void tu_fail(const char *fmt, ...)
{
    if (atomic_fetch_add(&tu_fail_count, 1) == 0 && atomic_exchange(&tu_fail_claimed, 1) == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(tu_fail_msg, sizeof tu_fail_msg, fmt, ap);
        va_end(ap);
    }
}

static inline void tu_fail_reset(void)
{
    atomic_store(&tu_fail_count, 0);
    atomic_store(&tu_fail_claimed, 0);
    tu_fail_msg[0] = 0;
}

/* ---- stderr capture --------------------------------------------------------------------------- */
typedef struct {
    int saved_fd;
    int file_fd;
} tu_capture_t;

/* Redirect fd 2 into an unlinked temporary file; returns 0 on success. */
static inline int tu_capture_begin(tu_capture_t *c)
{
    char path[] = "/tmp/umtest-stderr-XXXXXX";
    fflush(stderr);
    c->saved_fd = -1;
    c->file_fd = mkstemp(path);
    if (c->file_fd < 0)
        return -1;
    unlink(path);
    c->saved_fd = dup(2);
    if (c->saved_fd < 0 || dup2(c->file_fd, 2) < 0)
        return -1;
    return 0;
}

/* Restore fd 2, copy what was written into buf (NUL-terminated), echo it to the real stderr
 * with a prefix (so a test log still shows it), return its length. */
static inline size_t tu_capture_end(tu_capture_t *c, char *buf, size_t cap)
{
    size_t n = 0;
    fflush(stderr);
    if (c->saved_fd >= 0) {
        dup2(c->saved_fd, 2);
        close(c->saved_fd);
    }
    if (c->file_fd >= 0) {
        if (lseek(c->file_fd, 0, SEEK_SET) == 0) {
            ssize_t r;
            while (n + 1 < cap && (r = read(c->file_fd, buf + n, cap - 1 - n)) > 0)
                n += (size_t)r;
        }
        close(c->file_fd);
    }
    buf[n] = 0;
    if (n > 0)
        fprintf(stderr, "[captured stderr] %s%s", buf, buf[n - 1] == '\n' ? "" : "\n");
    return n;
}

/* Number of newline-terminated (or final unterminated) non-empty lines in s. */
static inline size_t tu_count_lines(const char *s)
{
    size_t lines = 0;
    int in_line = 0;
    for (; *s; s++) {
        if (*s == '\n') {
            lines += in_line;
            in_line = 0;
        } else {
            in_line = 1;
        }
    }
    return lines + (size_t)in_line;
}

/* ---- block bookkeeping ------------------------------------------------------------------------ */
typedef struct {
    void *p;
    size_t size;
} tu_block_t;

static inline int tu_cmp_block(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const tu_block_t *)a)->p, y = (uintptr_t)((const tu_block_t *)b)->p;
    return x < y ? -1 : x > y;
}

/* Sort blocks by address and return the index of the first block whose [p, p+size) overlaps
 * the next one, or -1 if all ranges are disjoint. The array is reordered. */
static inline long tu_find_overlap(tu_block_t *blocks, size_t n)
{
    qsort(blocks, n, sizeof *blocks, tu_cmp_block);
    for (size_t i = 0; i + 1 < n; i++) {
        uintptr_t end = (uintptr_t)blocks[i].p + (blocks[i].size ? blocks[i].size : 1);
        if (end > (uintptr_t)blocks[i + 1].p)
            return (long)i;
    }
    return -1;
}

#endif /* UM_TEST_UTIL_H */
