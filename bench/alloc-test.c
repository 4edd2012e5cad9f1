/* alloc-test: random allocation and deallocation over a fixed pool of slots, in the style of the
 * alloc-test of OLogN Technologies / ITHare (run by mimalloc-bench as alloc-test1 and
 * alloc-testN: each thread picks random slots of its own pool, freeing what a slot holds or else
 * allocating a block of a random size from a distribution skewed towards small sizes), written
 * from that description.
 *
 * Each thread has `slots` slots, all empty at the start, and does its share of `iters` steps:
 * pick a random slot; if it holds a block, check and free it, else allocate a block of a random
 * size and tag it. Sizes: one in `big` is log-uniform in (max, bigmax] (occasional bigger
 * blocks), the others log-uniform in [min, max] (density ~ 1/size: mostly small). The pool
 * settles at half full, so the live set stays the same while the blocks in it keep changing:
 * memory use should be flat after the first rounds. The threads do not share blocks.
 *
 *   alloc-test threads=1 iters=8000000 slots=65536 min=8 max=4096 big=128 bigmax=65536 seed=1
 * iters is the total, shared by the threads. rss=1 prints "round N rss_kb=K" on stderr each
 * time thread 0 has done another `report` steps (default iters/threads/10).
 */
#include "common.h"

typedef struct {
    int id;
    long long iters;
    uint64_t seed;
    uint64_t sum;
    long long bad, peak_live;
    char pad[64];
} arg_t;

typedef struct {
    void *p;
    uint32_t n;
    uint32_t tag; /* the block's tag is mix64(tag) */
} slot_t;

static long long g_slots, g_min, g_max, g_big, g_bigmax, g_report;
static int g_rss;

static inline uint64_t full_tag(uint32_t t)
{
    return mix64(t);
}

static void *worker(void *argp)
{
    arg_t *a = argp;
    rng_t r = rng_seed(a->seed, 0xa7);
    slot_t *slot = xmalloc(sizeof(slot_t) * (size_t)g_slots);
    memset(slot, 0, sizeof(slot_t) * (size_t)g_slots);
    uint64_t sum = 0;
    long long bad = 0, live = 0, peak = 0, round = 0;
    for (long long i = 0; i < a->iters; i++) {
        slot_t *s = &slot[rng_range(&r, 0, (uint64_t)g_slots - 1)];
        if (s->p) {
            uint64_t tag = full_tag(s->tag);
            if (!tag_ok(s->p, s->n, tag))
                bad++;
            sum += tag + s->n;
            free(s->p);
            s->p = NULL;
            live--;
        } else {
            size_t n = rng_range(&r, 1, (uint64_t)g_big) == 1
                           ? (size_t)rng_loguniform(&r, (uint64_t)g_max + 1, (uint64_t)g_bigmax)
                           : (size_t)rng_loguniform(&r, (uint64_t)g_min, (uint64_t)g_max);
            s->p = xmalloc(n);
            s->n = (uint32_t)n;
            s->tag = (uint32_t)rng_next(&r);
            tag_write(s->p, n, full_tag(s->tag));
            if (++live > peak)
                peak = live;
        }
        if (g_rss && a->id == 0 && (i + 1) % g_report == 0)
            rss_round(++round);
    }
    for (long long k = 0; k < g_slots; k++)
        if (slot[k].p) {
            uint64_t tag = full_tag(slot[k].tag);
            if (!tag_ok(slot[k].p, slot[k].n, tag))
                bad++;
            sum += tag + slot[k].n;
            free(slot[k].p);
        }
    free(slot);
    a->sum = sum;
    a->bad = bad;
    a->peak_live = peak;
    return NULL;
}

int main(int argc, char **argv)
{
    opts_init("alloc-test", argc, argv);
    int threads = (int)opt("threads", 1);
    long long iters = opt("iters", 8000000);
    g_slots = opt("slots", 65536);
    g_min = opt("min", 8);
    g_max = opt("max", 4096);
    g_big = opt("big", 128);
    g_bigmax = opt("bigmax", 65536);
    uint64_t seed = (uint64_t)opt("seed", 1);
    g_rss = (int)opt("rss", 0);
    g_report = opt("report", iters / threads / 10 > 0 ? iters / threads / 10 : 1);
    opts_done();
    if (threads < 1 || iters < 0 || g_slots < 1 || g_min < 1 || g_max < g_min || g_big < 1 ||
        g_bigmax <= g_max || g_bigmax > 0xffffffffll || g_report < 1)
        fail("bad parameters (min <= max < bigmax)");
    arg_t *args = xmalloc(sizeof(arg_t) * (size_t)threads);
    for (int t = 0; t < threads; t++)
        args[t] = (arg_t){ .id = t, .iters = share(iters, threads, t),
                           .seed = mix64(seed * 1000003 + (uint64_t)t) };
    run_threads(threads, worker, args, sizeof(arg_t));
    uint64_t sum = 0;
    long long bad = 0, peak = 0;
    for (int t = 0; t < threads; t++) {
        sum += args[t].sum;
        bad += args[t].bad;
        peak += args[t].peak_live;
    }
    free(args);
    if (bad)
        fail("%lld blocks corrupted", bad);
    printf("alloc-test ok checksum=%016" PRIx64 " iters=%lld peak_live=%lld\n", sum, iters, peak);
    return 0;
}
