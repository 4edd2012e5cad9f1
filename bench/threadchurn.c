/* threadchurn: one short-lived thread per request, handing its block over to a later thread.
 *
 * Models a server that starts a thread for every request and lets a later request pick up
 * what an earlier one left behind: Larson & Krishnan's thread replacement ("Memory allocation for
 * long-running server applications", ISMM 1998; bench/larson.c) taken to its extreme, one thread
 * per request. Whatever per-thread state an allocator sets up (thread cache, heap, arena binding)
 * is created and torn down thousands of times, and almost every block is freed by a thread other
 * than the one that allocated it, after that thread has exited. An allocator that leaks or
 * strands a little per dead thread grows without bound here.
 *
 * The main thread starts `threads` threads one after another: with batch=1 it starts one, joins
 * it and starts the next; with batch=8 it starts 8, joins the 8, and so on. Each thread does
 * calloc(16, 8) and checks that the 128 bytes are zero, fills them (its index, then a tag),
 * atomically exchanges the block into a random one of `slots` shared slots and checks and frees
 * the block it took out, if any. At the end the main thread checks and frees what is left in the
 * slots. Every block is freed exactly once, so the checksum (sum of the freed blocks' tags) does
 * not depend on the order in which the threads ran.
 *
 * With work=N each thread first serves its request with a working set: N blocks of
 * log-uniform sizes in [wmin, wmax] (64 B..512 KiB), each written whole (memset) and tagged,
 * checked and freed before the thread hands its block over and exits: a server whose
 * connection or request threads build buffers of megabytes, a thread pool recycled after each
 * job. Each thread's memory is freed before its batch's next thread starts, so that the
 * next batch can reuse what the last one emptied. slots=0 (with work) leaves out the hand-over:
 * each thread exits with nothing live, and the checksum sums the working sets' tags.
 *
 *   threadchurn threads=40000 batch=1 slots=1000 seed=1 rss=0 report=threads/10 work=0 wmin=64 wmax=524288
 * rss=1 prints "round N rss_kb=K" on stderr after every `report` threads (a round).
 */
#include "common.h"
#include <stdatomic.h>

#define WORDS 16 /* calloc(16, 8) */

static _Atomic(uint64_t *) *g_slot;
static long long g_nslots, g_threads;
static uint64_t g_seed;
static _Atomic uint64_t g_sum;
static _Atomic long long g_bad, g_freed;
static long long g_work, g_wmin, g_wmax;

static inline uint64_t tag_of(uint64_t i)
{
    return mix64(g_seed * 0x9e3779b97f4a7c15ull + i);
}

/* checks a block written by thread (or allocation) w[0] and adds its tag to *sum */
static long long check(const uint64_t *w, uint64_t *sum)
{
    if (w[0] >= (uint64_t)g_threads)
        return 1;
    uint64_t tag = tag_of(w[0]);
    long long bad = 0;
    for (int k = 1; k < WORDS; k++)
        bad += w[k] != tag + (uint64_t)k;
    *sum += tag;
    return bad != 0;
}

/* The request's working set: allocated and written whole, then checked and freed. */
static long long serve(uint64_t i)
{
    if (g_work == 0)
        return 0;
    rng_t r = rng_seed(g_seed ^ 0x5bd1e995u, i);
    unsigned char **blk = malloc(sizeof(*blk) * (size_t)g_work);
    size_t *len = malloc(sizeof(*len) * (size_t)g_work);
    if (!blk || !len)
        fail("malloc of the working set's table returned NULL");
    for (long long k = 0; k < g_work; k++) {
        len[k] = (size_t)rng_loguniform(&r, (uint64_t)g_wmin, (uint64_t)g_wmax);
        blk[k] = malloc(len[k]);
        if (!blk[k])
            fail("malloc(%zu) returned NULL", len[k]);
        memset(blk[k], (int)(k & 0xff), len[k]);
        tag_write(blk[k], len[k], tag_of(i) ^ (uint64_t)k);
    }
    long long bad = 0;
    uint64_t sum = 0;
    for (long long k = 0; k < g_work; k++) {
        bad += !tag_ok(blk[k], len[k], tag_of(i) ^ (uint64_t)k);
        sum += tag_of(i) ^ (uint64_t)k;
        bad += len[k] > 16 && blk[k][len[k] / 2] != (unsigned char)(k & 0xff);
        free(blk[k]);
    }
    free(blk);
    free(len);
    if (g_nslots == 0)
        atomic_fetch_add(&g_sum, sum);
    return bad;
}

static void *worker(void *argp)
{
    uint64_t i = (uint64_t)(uintptr_t)argp;
    long long served_bad = serve(i);
    if (g_nslots == 0) {
        if (served_bad)
            atomic_fetch_add(&g_bad, served_bad);
        return NULL;
    }
    uint64_t *w = calloc(WORDS, 8);
    if (!w)
        fail("calloc(%d, 8) returned NULL", WORDS);
    uint64_t any = 0;
    for (int k = 0; k < WORDS; k++)
        any |= w[k];
    long long bad = (any != 0) + served_bad;
    uint64_t tag = tag_of(i);
    w[0] = i;
    for (int k = 1; k < WORDS; k++)
        w[k] = tag + (uint64_t)k;
    rng_t r = rng_seed(g_seed, i);
    uint64_t *old = atomic_exchange(&g_slot[rng_range(&r, 0, (uint64_t)g_nslots - 1)], w);
    if (old) {
        uint64_t sum = 0;
        bad += check(old, &sum);
        free(old);
        atomic_fetch_add(&g_sum, sum);
        atomic_fetch_add(&g_freed, 1);
    }
    if (bad)
        atomic_fetch_add(&g_bad, bad);
    return NULL;
}

int main(int argc, char **argv)
{
    opts_init("threadchurn", argc, argv);
    g_threads = opt("threads", 40000);
    long long batch = opt("batch", 1);
    g_nslots = opt("slots", 1000);
    g_seed = (uint64_t)opt("seed", 1);
    int rss = (int)opt("rss", 0);
    long long report = opt("report", g_threads / 10 > 0 ? g_threads / 10 : 1);
    g_work = opt("work", 0);
    g_wmin = opt("wmin", 64);
    g_wmax = opt("wmax", 524288);
    opts_done();
    if (g_threads < 1 || batch < 1 || batch > 256 || g_nslots < 0 || (g_nslots == 0 && g_work == 0) || report < 1 ||
        g_work < 0 || g_wmin < 1 || g_wmax < g_wmin)
        fail("bad parameters (1 <= batch <= 256, work >= 0, slots >= 1 or work >= 1, 1 <= wmin <= wmax)");

    g_slot = xmalloc(sizeof(*g_slot) * (size_t)(g_nslots ? g_nslots : 1));
    for (long long k = 0; k < g_nslots; k++)
        atomic_init(&g_slot[k], NULL);
    pthread_t tid[256];
    long long round = 0;
    for (long long i = 0; i < g_threads;) {
        long long n = g_threads - i < batch ? g_threads - i : batch;
        for (long long b = 0; b < n; b++) {
            int e = pthread_create(&tid[b], NULL, worker, (void *)(uintptr_t)(i + b));
            if (e)
                fail("pthread_create: %s", strerror(e));
        }
        for (long long b = 0; b < n; b++)
            pthread_join(tid[b], NULL);
        i += n;
        while (rss && i >= (round + 1) * report)
            rss_round(++round);
    }

    uint64_t sum = g_sum;
    long long bad = g_bad, freed = g_freed;
    for (long long k = 0; k < g_nslots; k++) {
        uint64_t *w = atomic_load(&g_slot[k]);
        if (w) {
            bad += check(w, &sum);
            free(w);
            freed++;
        }
    }
    free(g_slot);
    if (bad)
        fail("%lld blocks corrupted (or not zeroed by calloc)", bad);
    if (g_nslots != 0 && freed != g_threads)
        fail("freed %lld blocks of %lld", freed, g_threads);
    printf("threadchurn ok checksum=%016" PRIx64 " threads=%lld\n", sum, g_threads);
    return 0;
}
