/* churn: allocation churn with power-law lifetimes.
 *
 * Each thread runs its own clock: at every tick it frees (after checking) the blocks whose
 * lifetime ends at that tick, then allocates one block and fills it. Sizes are log-uniform in
 * [min, max] (density ~ 1/size: many small blocks, a few large ones); lifetimes, in ticks, are
 * log-uniform in [1, lmax) (density ~ 1/lifetime, a power law: most blocks die young, a few live
 * for most of lmax ticks). The live set settles near lmax / ln(lmax) blocks. Blocks whose
 * lifetime has not ended when the thread is done are freed at the end.
 *
 * Bookkeeping lives in arrays allocated once per thread (a timing wheel of lmax buckets), so
 * the allocator sees only the workload's blocks. Sizes and lifetimes are drawn from tables of
 * 64 Ki precomputed samples so that drawing them costs next to nothing.
 *
 *   churn threads=1 ops=3000000 min=8 max=1024 lmax=131072 fill=1 seed=1
 * ops is the total, shared by the threads; fill=1 writes the whole block (else just its ends).
 */
#include "common.h"

#define TABLE (1u << 16)

typedef struct {
    long long ops;
    uint64_t seed;
    uint64_t sum;
    long long bad;
    long long max_live;
    char pad[64];
} arg_t;

static long long g_min, g_max, g_lmax, g_fill;

typedef struct {
    void *ptr;
    uint64_t tag;
    uint32_t size;
    int32_t next;
} slot_t;

static void *worker(void *argp)
{
    arg_t *a = argp;
    rng_t r = rng_seed(a->seed, 0xc4);
    uint32_t *sizes = xmalloc(sizeof(uint32_t) * TABLE);
    uint32_t *lives = xmalloc(sizeof(uint32_t) * TABLE);
    for (uint32_t i = 0; i < TABLE; i++) {
        sizes[i] = (uint32_t)rng_loguniform(&r, (uint64_t)g_min, (uint64_t)g_max);
        lives[i] = (uint32_t)rng_loguniform(&r, 1, (uint64_t)g_lmax - 1);
    }
    long long lmax = g_lmax;
    int32_t *bucket = xmalloc(sizeof(int32_t) * (size_t)lmax);
    slot_t *slot = xmalloc(sizeof(slot_t) * (size_t)(lmax + 1));
    for (long long i = 0; i < lmax; i++)
        bucket[i] = -1;
    /* free slots: a stack threaded through next */
    int32_t free_top = 0;
    for (long long i = 0; i <= lmax; i++)
        slot[i].next = i < lmax ? (int32_t)(i + 1) : -1;

    uint64_t sum = 0;
    long long bad = 0, live = 0, max_live = 0;
    for (long long t = 0; t < a->ops + lmax; t++) {
        long long b = t % lmax;
        int32_t s = bucket[b];
        bucket[b] = -1;
        while (s >= 0) {
            slot_t *e = &slot[s];
            int32_t nx = e->next;
            unsigned char *p = e->ptr;
            if (!tag_ok(p, e->size, e->tag) || (g_fill && e->size > 16 && p[e->size / 2] != (unsigned char)e->tag))
                bad++;
            sum += e->tag + e->size;
            free(p);
            live--;
            e->next = free_top;
            free_top = s;
            s = nx;
        }
        if (t >= a->ops)
            continue; /* draining */
        uint64_t x = rng_next(&r);
        uint32_t n = sizes[x & (TABLE - 1)];
        uint32_t life = lives[(x >> 16) & (TABLE - 1)];
        uint64_t tag = mix64(a->seed ^ (uint64_t)t);
        s = free_top;
        if (s < 0)
            fail("slot table overflow");
        slot_t *e = &slot[s];
        free_top = e->next;
        unsigned char *p = xmalloc(n);
        if (g_fill)
            memset(p, (unsigned char)tag, n);
        tag_write(p, n, tag);
        e->ptr = p;
        e->size = n;
        e->tag = tag;
        long long db = (t + life) % lmax;
        e->next = bucket[db];
        bucket[db] = s;
        if (++live > max_live)
            max_live = live;
    }
    free(bucket);
    free(slot);
    free(sizes);
    free(lives);
    a->sum = sum;
    a->bad = bad;
    a->max_live = max_live;
    return NULL;
}

int main(int argc, char **argv)
{
    opts_init("churn", argc, argv);
    int threads = (int)opt("threads", 1);
    long long ops = opt("ops", 3000000);
    g_min = opt("min", 8);
    g_max = opt("max", 1024);
    g_lmax = opt("lmax", 131072);
    g_fill = opt("fill", 1);
    uint64_t seed = (uint64_t)opt("seed", 1);
    opts_done();
    if (threads < 1 || g_min < 1 || g_max < g_min || g_max > 0x7fffffff || g_lmax < 2 ||
        g_lmax > 0x7ffffff0)
        fail("bad parameters");
    arg_t *args = xmalloc(sizeof(arg_t) * (size_t)threads);
    for (int t = 0; t < threads; t++)
        args[t] = (arg_t){ .ops = share(ops, threads, t), .seed = mix64(seed + (uint64_t)t) };
    run_threads(threads, worker, args, sizeof(arg_t));
    uint64_t sum = 0;
    long long bad = 0, max_live = 0;
    for (int t = 0; t < threads; t++) {
        sum += args[t].sum;
        bad += args[t].bad;
        max_live += args[t].max_live;
    }
    free(args);
    if (bad)
        fail("%lld blocks corrupted", bad);
    printf("churn ok checksum=%016" PRIx64 " ops=%lld max_live=%lld\n", sum, ops, max_live);
    return 0;
}
