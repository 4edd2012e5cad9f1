/* rptest: the pattern of rpmalloc's benchmark program (Mattias Jansson's rpmalloc; run by
 * mimalloc-bench as "rptest": "a random size allocation pattern with a fraction of cross-thread
 * deallocation", blocks of 8..16000 bytes from a distribution biased towards small sizes),
 * written from that description; here every batch is freed by another thread.
 *
 * The threads form a ring. Each of a thread's `iters` iterations allocates a batch of `batch`
 * blocks, sizes in [min, max] drawn from a distribution biased towards small sizes (three in four
 * log-uniform in [min, 256], the rest log-uniform in [min, max]), writes a tag into each, and
 * hands the batch to the next thread through a bounded single-producer, single-consumer queue;
 * then it checks and frees every batch that has arrived from the previous thread. While its queue
 * to the next thread is full, a thread frees what has arrived for it, so the ring cannot stall.
 * With threads=1 the thread hands the batches to itself (local frees). Every block is freed once,
 * so the checksum (sum of the tags) does not depend on scheduling.
 *
 *   rptest threads=2 iters=20000 batch=64 min=8 max=16000 seed=1
 * iters is the total, shared by the threads. rss=1 prints "round N rss_kb=K" on stderr each
 * time thread 0 has done another `report` iterations (default iters/threads/10).
 */
#include "common.h"
#include <sched.h>

typedef struct {
    int n;
    uint32_t size[];
    /* followed by the pointers */
} batch_t;

typedef ring_arg_t arg_t;

static int g_threads, g_rss;
static long long g_batch, g_min, g_max, g_report;

static inline void **ptrs(batch_t *b)
{
    return (void **)((char *)b + ((sizeof(batch_t) + sizeof(uint32_t) * (size_t)b->n + 7) & ~(size_t)7));
}

static inline uint64_t make_tag(uint64_t seed, long long i, int k)
{
    return mix64(seed ^ ((uint64_t)i << 16 | (uint64_t)k));
}

/* checks and frees what has arrived; returns the number of batches */
static int drain(arg_t *a)
{
    batch_t *b;
    int n = 0;
    while ((b = spsc_pop(&ring_queue[a->id])) != NULL) {
        void **p = ptrs(b);
        for (int k = 0; k < b->n; k++) {
            uint64_t tag;
            size_t sz = b->size[k];
            memcpy(&tag, p[k], 8);
            if (!tag_ok(p[k], sz, tag))
                a->bad++;
            a->sum += tag;
            free(p[k]);
        }
        free(b);
        n++;
    }
    a->got += n;
    return n;
}

static void *worker(void *argp)
{
    arg_t *a = argp;
    rng_t r = rng_seed(a->seed, 0x4e);
    spsc_t *next = &ring_queue[(a->id + 1) % g_threads];
    long long round = 0;
    for (long long i = 0; i < a->iters; i++) {
        batch_t *b = xmalloc(sizeof(batch_t) + (sizeof(uint32_t) + sizeof(void *)) * (size_t)g_batch + 8);
        b->n = (int)g_batch;
        void **p = ptrs(b);
        for (int k = 0; k < b->n; k++) {
            uint64_t hi = rng_range(&r, 0, 3) ? 256 : (uint64_t)g_max;
            hi = hi > (uint64_t)g_max ? (uint64_t)g_max : hi < (uint64_t)g_min ? (uint64_t)g_min : hi;
            size_t sz = (size_t)rng_loguniform(&r, (uint64_t)g_min, hi);
            p[k] = xmalloc(sz);
            tag_write(p[k], sz, make_tag(a->seed, i, k));
            b->size[k] = (uint32_t)sz;
        }
        while (!spsc_push(next, b))
            if (!drain(a))
                sched_yield();
        drain(a);
        if (g_rss && a->id == 0 && (i + 1) % g_report == 0)
            rss_round(++round);
    }
    while (a->got < a->expect)
        if (!drain(a))
            sched_yield();
    return NULL;
}

int main(int argc, char **argv)
{
    opts_init("rptest", argc, argv);
    g_threads = (int)opt("threads", 2);
    long long iters = opt("iters", 20000);
    g_batch = opt("batch", 64);
    g_min = opt("min", 8);
    g_max = opt("max", 16000);
    uint64_t seed = (uint64_t)opt("seed", 1);
    g_rss = (int)opt("rss", 0);
    g_report = opt("report", iters / g_threads / 10 > 0 ? iters / g_threads / 10 : 1);
    opts_done();
    if (g_threads < 1 || g_threads > 256 || iters < 0 || g_batch < 1 || g_batch > 65536 || g_min < 8 ||
        g_max < g_min || g_max > 0xffffffffll || g_report < 1)
        fail("bad parameters (min >= 8)");

    uint64_t sum;
    long long bad, got;
    ring_run(g_threads, iters, seed, worker, &sum, &bad, &got);
    if (bad)
        fail("%lld blocks corrupted", bad);
    if (got != iters)
        fail("freed %lld batches of %lld", got, iters);
    printf("rptest ok checksum=%016" PRIx64 " blocks=%lld\n", sum, iters * g_batch);
    return 0;
}
