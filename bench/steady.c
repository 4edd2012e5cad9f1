/* steady: a working set that stays full while its blocks are replaced in random order.
 *
 * The state of a cache, a hash table, a server's table of connections, and of glibc's
 * benchtests/bench-malloc-thread (a fixed array of blocks per thread; at each step a random one
 * is freed and a block of a random size allocated in its place), written from that description.
 * Unlike alloc-test, whose pool settles half full, every slot holds a block at every step but
 * the one being replaced: the allocator's pages of each size stay all but full, and the block
 * freed is rarely in the page the next allocation comes from.
 *
 * Each thread has `slots` slots, filled at the start, and does its share of `iters` steps: pick a
 * random slot, check and free its block, allocate a new one of a size log-uniform in [min, max]
 * (density ~ 1/size) and tag it. align=A (a power of two, at least 32) allocates with
 * posix_memalign instead, at an alignment drawn from 32, 64, ..., A: the pattern of programs
 * whose objects ask for cache-line or SIMD alignment (C++ alignas types, Rust's allocator for
 * alignments above 16). The threads do not share blocks.
 *
 *   steady threads=1 slots=30000 iters=6000000 min=32 max=512 align=0 seed=1
 * iters is the total, shared by the threads. rss=1 prints "round N rss_kb=K" on stderr each
 * time thread 0 has done another `report` steps (default iters/threads/10).
 */
#include "common.h"

typedef struct {
    int id;
    long long iters;
    uint64_t seed;
    uint64_t sum;
    long long bad;
    char pad[64];
} arg_t;

typedef struct {
    void *p;
    uint32_t n;
    uint32_t tag; /* the block's tag is mix64(tag) */
} slot_t;

static long long g_slots, g_min, g_max, g_align, g_report;
static int g_align_steps, g_rss;

static void *new_block(rng_t *r, slot_t *s)
{
    size_t n = (size_t)rng_loguniform(r, (uint64_t)g_min, (uint64_t)g_max);
    void *p;
    if (g_align) {
        size_t align = (size_t)32 << rng_range(r, 0, (uint64_t)g_align_steps);
        if (posix_memalign(&p, align, n) != 0)
            fail("posix_memalign(%zu, %zu) failed", align, n);
        if ((uintptr_t)p & (align - 1))
            fail("posix_memalign(%zu, %zu) returned %p", align, n, p);
    } else {
        p = xmalloc(n);
    }
    s->p = p;
    s->n = (uint32_t)n;
    s->tag = (uint32_t)rng_next(r);
    tag_write(p, n, mix64(s->tag));
    return p;
}

static void *worker(void *argp)
{
    arg_t *a = argp;
    rng_t r = rng_seed(a->seed, 0x5d);
    slot_t *slot = xmalloc(sizeof(slot_t) * (size_t)g_slots);
    for (long long k = 0; k < g_slots; k++)
        new_block(&r, &slot[k]);
    uint64_t sum = 0;
    long long bad = 0, round = 0;
    for (long long i = 0; i < a->iters; i++) {
        slot_t *s = &slot[rng_range(&r, 0, (uint64_t)g_slots - 1)];
        uint64_t tag = mix64(s->tag);
        bad += !tag_ok(s->p, s->n, tag);
        sum += tag + s->n;
        free(s->p);
        new_block(&r, s);
        if (g_rss && a->id == 0 && (i + 1) % g_report == 0)
            rss_round(++round);
    }
    for (long long k = 0; k < g_slots; k++) {
        uint64_t tag = mix64(slot[k].tag);
        bad += !tag_ok(slot[k].p, slot[k].n, tag);
        sum += tag + slot[k].n;
        free(slot[k].p);
    }
    free(slot);
    a->sum = sum;
    a->bad = bad;
    return NULL;
}

int main(int argc, char **argv)
{
    opts_init("steady", argc, argv);
    int threads = (int)opt("threads", 1);
    long long iters = opt("iters", 6000000);
    g_slots = opt("slots", 30000);
    g_min = opt("min", 32);
    g_max = opt("max", 512);
    g_align = opt("align", 0);
    uint64_t seed = (uint64_t)opt("seed", 1);
    g_rss = (int)opt("rss", 0);
    g_report = opt("report", iters / threads / 10 > 0 ? iters / threads / 10 : 1);
    opts_done();
    if (threads < 1 || iters < 0 || g_slots < 1 || g_min < 1 || g_max < g_min || g_max > 0xffffffffll || g_report < 1 ||
        (g_align != 0 && (g_align < 32 || (g_align & (g_align - 1)) != 0)))
        fail("bad parameters (min <= max; align 0 or a power of two >= 32)");
    for (long long a = g_align; a > 32; a >>= 1)
        g_align_steps++;
    arg_t *args = xmalloc(sizeof(arg_t) * (size_t)threads);
    for (int t = 0; t < threads; t++)
        args[t] = (arg_t){ .id = t, .iters = share(iters, threads, t), .seed = mix64(seed * 1000003 + (uint64_t)t) };
    run_threads(threads, worker, args, sizeof(arg_t));
    uint64_t sum = 0;
    long long bad = 0;
    for (int t = 0; t < threads; t++) {
        sum += args[t].sum;
        bad += args[t].bad;
    }
    free(args);
    if (bad)
        fail("%lld blocks corrupted", bad);
    printf("steady ok checksum=%016" PRIx64 " iters=%lld\n", sum, iters);
    return 0;
}
