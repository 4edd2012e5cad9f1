/* sh6bench: batches of small objects freed in LIFO and FIFO order, in the style of MicroQuill's
 * SmartHeap benchmarks sh6bench ("some of the objects are freed in a usual last-allocated,
 * first-freed (LIFO) order, but others are freed in reverse order", as mimalloc-bench describes
 * it) and, with cross=1, sh8bench (the same, "with objects freed by other threads"), written from
 * those descriptions.
 *
 * Each of a thread's `iters` iterations allocates a batch of `batch` objects of random sizes in
 * [min, max] (uniform: small objects of every size), tags them, then frees the second half
 * newest first (LIFO) and the first half oldest first (FIFO). With cross=1 the first half is
 * instead handed, as an array, to the next thread of a ring (a bounded single-producer,
 * single-consumer queue), which frees it oldest first; a thread whose queue to the next one is
 * full frees what has arrived for it meanwhile, so the ring cannot stall. Every object is freed
 * once, so the checksum (sum of the tags) does not depend on scheduling.
 *
 *   sh6bench threads=2 iters=2000 batch=2000 min=1 max=1000 cross=0 seed=1
 * iters is the total, shared by the threads.
 */
#include "common.h"
#include <sched.h>

typedef struct {
    int n;
    long long iter;   /* made in this iteration */
    uint64_t seed;    /* by the thread with this seed: the tags follow */
    uint32_t size[];
    /* followed by the pointers */
} half_t;

typedef ring_arg_t arg_t;

static int g_threads, g_cross;
static long long g_batch, g_min, g_max;

static inline void **ptrs(half_t *h)
{
    return (void **)((char *)h + ((sizeof(half_t) + sizeof(uint32_t) * (size_t)h->n + 7) & ~(size_t)7));
}

static inline uint64_t make_tag(uint64_t seed, long long i, long long k)
{
    return mix64(seed ^ ((uint64_t)i << 20 | (uint64_t)k));
}

static void release(arg_t *a, void *p, size_t n, uint64_t tag)
{
    if (!tag_ok(p, n, tag))
        a->bad++;
    a->sum += tag;
    free(p);
}

/* checks and frees, oldest first, the halves that have arrived; returns how many */
static int drain(arg_t *a)
{
    half_t *h;
    int n = 0;
    while ((h = spsc_pop(&ring_queue[a->id])) != NULL) {
        void **p = ptrs(h);
        for (int k = 0; k < h->n; k++) {
            release(a, p[k], h->size[k], make_tag(h->seed, h->iter, k));
        }
        free(h);
        n++;
    }
    a->got += n;
    return n;
}

static void *worker(void *argp)
{
    arg_t *a = argp;
    rng_t r = rng_seed(a->seed, 0x56);
    long long nb = g_batch, lo = nb / 2;
    void **p = xmalloc(sizeof(void *) * (size_t)nb);
    uint32_t *size = xmalloc(sizeof(uint32_t) * (size_t)nb);
    for (long long i = 0; i < a->iters; i++) {
        for (long long k = 0; k < nb; k++) {
            size[k] = (uint32_t)rng_range(&r, (uint64_t)g_min, (uint64_t)g_max);
            p[k] = xmalloc(size[k]);
            tag_write(p[k], size[k], make_tag(a->seed, i, k));
        }
        for (long long k = nb - 1; k >= lo; k--) /* newest first */
            release(a, p[k], size[k], make_tag(a->seed, i, k));
        if (!g_cross) {
            for (long long k = 0; k < lo; k++) /* oldest first */
                release(a, p[k], size[k], make_tag(a->seed, i, k));
            continue;
        }
        half_t *h = xmalloc(sizeof(half_t) + (sizeof(uint32_t) + sizeof(void *)) * (size_t)lo + 8);
        h->n = (int)lo;
        h->iter = i;
        h->seed = a->seed;
        memcpy(h->size, size, sizeof(uint32_t) * (size_t)lo);
        memcpy(ptrs(h), p, sizeof(void *) * (size_t)lo);
        while (!spsc_push(&ring_queue[(a->id + 1) % g_threads], h))
            if (!drain(a))
                sched_yield();
        drain(a);
    }
    while (g_cross && a->got < a->expect)
        if (!drain(a))
            sched_yield();
    free(p);
    free(size);
    return NULL;
}

int main(int argc, char **argv)
{
    opts_init("sh6bench", argc, argv);
    g_threads = (int)opt("threads", 2);
    long long iters = opt("iters", 2000);
    g_batch = opt("batch", 2000);
    g_min = opt("min", 1);
    g_max = opt("max", 1000);
    g_cross = (int)opt("cross", 0);
    uint64_t seed = (uint64_t)opt("seed", 1);
    opts_done();
    if (g_threads < 1 || g_threads > 256 || iters < 0 || g_batch < 2 || g_batch > (1 << 20) ||
        g_min < 1 || g_max < g_min || g_max > 0xffffffffll)
        fail("bad parameters (2 <= batch <= 2^20, 1 <= min <= max)");

    uint64_t sum;
    long long bad, got;
    ring_run(g_threads, iters, seed, worker, &sum, &bad, &got);
    if (bad)
        fail("%lld objects corrupted", bad);
    if (g_cross && got != iters)
        fail("freed %lld handed-over halves of %lld", got, iters);
    printf("sh6bench ok checksum=%016" PRIx64 " objects=%lld\n", sum, iters * g_batch);
    return 0;
}
