/* Shared helpers for the umalloc benchmark workloads (the C files in bench/).
 *
 * Every workload:
 *  - takes its parameters as name=value arguments (unknown names are an error), so that
 *    scripts/bench.sh can shrink them for QUICK runs;
 *  - is deterministic: the random streams are seeded per thread / per round, never from time;
 *  - checks every block it frees (a tag written at allocation is read back) and prints one
 *    line "NAME ok checksum=HEX ..." whose content does not depend on the allocator or on
 *    thread scheduling, so the driver can also compare outputs across allocators;
 *  - exits 1 on any mismatch or allocation failure.
 * Workloads with rounds take `rss=1` to print "round N rss_kb=K" on stderr after each round
 * (scripts/steady-state.sh reads these lines to see whether memory use settles).
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

static const char *bench_name = "bench";

__attribute__((format(printf, 1, 2), noreturn)) static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: FAIL: ", bench_name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/* ---- arguments: name=value ------------------------------------------------------------------ */
static int opt_argc;
static char **opt_argv;
static unsigned char opt_used[256];

static void opts_init(const char *name, int argc, char **argv)
{
    bench_name = name;
    opt_argc = argc;
    opt_argv = argv;
    if (argc > 256)
        fail("too many arguments");
}

static long long opt(const char *name, long long def)
{
    size_t n = strlen(name);
    for (int i = 1; i < opt_argc; i++) {
        if (strncmp(opt_argv[i], name, n) == 0 && opt_argv[i][n] == '=') {
            char *end;
            errno = 0;
            long long v = strtoll(opt_argv[i] + n + 1, &end, 0);
            if (errno || *end)
                fail("bad number in %s", opt_argv[i]);
            opt_used[i] = 1;
            return v;
        }
    }
    return def;
}

static void opts_done(void)
{
    for (int i = 1; i < opt_argc; i++)
        if (!opt_used[i])
            fail("unknown argument '%s'", opt_argv[i]);
}

/* ---- random numbers: splitmix64 seeding, xorshift64* stream ------------------------------- */
static inline uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

typedef struct { uint64_t s; } rng_t;

static inline rng_t rng_seed(uint64_t a, uint64_t b)
{
    rng_t r = { mix64(a * 0x100000001b3ull ^ mix64(b)) | 1 };
    return r;
}

static inline uint64_t rng_next(rng_t *r)
{
    uint64_t x = r->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 0x2545f4914f6cdd1dull;
}

/* uniform in [lo, hi] */
static inline uint64_t rng_range(rng_t *r, uint64_t lo, uint64_t hi)
{
    return lo + (uint64_t)(((unsigned __int128)rng_next(r) * (hi - lo + 1)) >> 64);
}

/* log-uniform in [lo, hi]: density ~ 1/x (a power law of exponent 1) */
static inline uint64_t rng_loguniform(rng_t *r, uint64_t lo, uint64_t hi)
{
    double u = (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
    double v = exp(log((double)lo) + u * (log((double)hi + 1.0) - log((double)lo)));
    uint64_t x = (uint64_t)v;
    return x < lo ? lo : x > hi ? hi : x;
}

/* ---- block tags: written at allocation, checked before free ---------------------------------- */
/* Writes the 8-byte tag at the start (fewer bytes if n < 8) and, for n >= 16, at the end. */
static inline void tag_write(void *p, size_t n, uint64_t tag)
{
    unsigned char *c = p;
    if (n >= 8) {
        memcpy(c, &tag, 8);
        if (n >= 16)
            memcpy(c + n - 8, &tag, 8);
    } else {
        for (size_t i = 0; i < n; i++)
            c[i] = (unsigned char)(tag >> (8 * i));
    }
}

static inline int tag_ok(const void *p, size_t n, uint64_t tag)
{
    const unsigned char *c = p;
    uint64_t a;
    if (n >= 8) {
        memcpy(&a, c, 8);
        if (a != tag)
            return 0;
        if (n >= 16) {
            memcpy(&a, c + n - 8, 8);
            if (a != tag)
                return 0;
        }
        return 1;
    }
    for (size_t i = 0; i < n; i++)
        if (c[i] != (unsigned char)(tag >> (8 * i)))
            return 0;
    return 1;
}

static inline void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p)
        fail("malloc(%zu) returned NULL", n);
    return p;
}

/* ---- threads -------------------------------------------------------------------------------- */
/* Runs fn(arg_i) on n threads, arg_i = (char *)args + i * size, and joins them. */
static inline void run_threads(int n, void *(*fn)(void *), void *args, size_t size)
{
    pthread_t tid[256];
    if (n < 1 || n > 256)
        fail("bad thread count %d", n);
    for (int i = 0; i < n; i++) {
        int e = pthread_create(&tid[i], NULL, fn, (char *)args + (size_t)i * size);
        if (e)
            fail("pthread_create: %s", strerror(e));
    }
    for (int i = 0; i < n; i++)
        pthread_join(tid[i], NULL);
}

/* share `total` units over n threads: what thread i does */
static inline long long share(long long total, int n, int i)
{
    return total / n + (i < total % n ? 1 : 0);
}

/* ---- single-producer single-consumer queue of pointers, for handing blocks between threads ---- */
#define SPSC_CAP 16
typedef struct {
    _Atomic unsigned long long head; /* next to read (consumer) */
    char pad0[56];
    _Atomic unsigned long long tail; /* next to write (producer) */
    char pad1[56];
    void *q[SPSC_CAP];
} spsc_t;

/* 0 if the queue is full */
static inline int spsc_push(spsc_t *q, void *p)
{
    unsigned long long t = atomic_load_explicit(&q->tail, memory_order_relaxed);
    if (t - atomic_load_explicit(&q->head, memory_order_acquire) == SPSC_CAP)
        return 0;
    q->q[t % SPSC_CAP] = p;
    atomic_store_explicit(&q->tail, t + 1, memory_order_release);
    return 1;
}

/* NULL if the queue is empty */
static inline void *spsc_pop(spsc_t *q)
{
    unsigned long long h = atomic_load_explicit(&q->head, memory_order_relaxed);
    if (h == atomic_load_explicit(&q->tail, memory_order_acquire))
        return NULL;
    void *p = q->q[h % SPSC_CAP];
    atomic_store_explicit(&q->head, h + 1, memory_order_release);
    return p;
}

/* ---- a ring of threads: thread t hands what it makes to thread t+1 (rptest, sh8bench) ------ */
typedef struct {
    int id;
    long long iters;
    long long expect; /* hand-overs that will arrive from the previous thread */
    uint64_t seed;
    uint64_t sum;
    long long bad, got;
    char pad[64];
} ring_arg_t;

static spsc_t *ring_queue; /* ring_queue[t]: from thread t-1 to thread t */

/* Run `threads` workers over `iters` iterations in all, each with its share and its seed, and
 * add up what they report. */
static inline void ring_run(int threads, long long iters, uint64_t seed, void *(*worker)(void *), uint64_t *sum,
                            long long *bad, long long *got)
{
    ring_queue = aligned_alloc(64, sizeof(spsc_t) * (size_t)threads);
    if (!ring_queue)
        fail("aligned_alloc failed");
    memset(ring_queue, 0, sizeof(spsc_t) * (size_t)threads);
    ring_arg_t *args = xmalloc(sizeof(ring_arg_t) * (size_t)threads);
    for (int t = 0; t < threads; t++)
        args[t] = (ring_arg_t){ .id = t, .iters = share(iters, threads, t),
                                .expect = share(iters, threads, (t + threads - 1) % threads),
                                .seed = mix64(seed * 1000003 + (uint64_t)t) };
    run_threads(threads, worker, args, sizeof(ring_arg_t));
    *sum = 0;
    *bad = *got = 0;
    for (int t = 0; t < threads; t++) {
        *sum += args[t].sum;
        *bad += args[t].bad;
        *got += args[t].got;
    }
    free(args);
    free(ring_queue);
}

/* ---- resident set size, for rss=1 ------------------------------------------------------------ */
/* The start of a /proc file, NUL-terminated, read without allocating; 0 if unreadable. */
static inline int proc_read(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    return 1;
}

/* Current RSS in KiB from /proc/self/statm (-1 if unreadable). */
static inline long rss_kb(void)
{
    char buf[128];
    long size, resident;
    if (!proc_read("/proc/self/statm", buf, sizeof buf) || sscanf(buf, "%ld %ld", &size, &resident) != 2)
        return -1;
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* Peak RSS so far (VmHWM) in KiB from /proc/self/status (-1 if unreadable). */
static inline long peak_rss_kb(void)
{
    char buf[4096];
    long kb;
    if (!proc_read("/proc/self/status", buf, sizeof buf))
        return -1;
    const char *at = strstr(buf, "VmHWM:");
    return at && sscanf(at + 6, "%ld", &kb) == 1 ? kb : -1;
}

/* "round N rss_kb=K peak_kb=P" on stderr: rounds are numbered from 1 */
static inline void rss_round(long long round)
{
    fprintf(stderr, "round %lld rss_kb=%ld peak_kb=%ld\n", round, rss_kb(), peak_rss_kb());
}

#endif
