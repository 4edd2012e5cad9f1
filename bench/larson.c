/* larson: the Larson & Krishnan server simulation ("Memory allocation for long-running server
 * applications", ISMM 1998), written from its description.
 *
 * The main thread fills one array of `slots` blocks per worker. Then, for `rounds` rounds,
 * `threads` new threads are started; in round r thread t takes the array that thread t-1 used in
 * round r-1 (so the blocks it frees were allocated by a thread that has exited, the way a server
 * hands connections between worker threads) and does its share of `ops`: pick a random slot,
 * check and free its block, allocate a new one of a random size in [min, max], tag it. At the
 * end the main thread checks and frees whatever is left.
 *
 *   larson threads=2 rounds=20 slots=1000 ops=2000000 min=8 max=1000 seed=1
 * ops is the total per round, shared by the threads.
 *
 * sized=1 frees every block with its size: "Larson with sized deallocation", the way C++
 * servers free through sized operator delete. It calls C23's free_sized(p, size), looked up with
 * dlsym so that the same binary runs where it is missing (glibc 2.36 lacks it); where it is
 * missing, the preloaded allocator's own sized free if it has one (jemalloc's sdallocx,
 * mimalloc's mi_free_size, tcmalloc's tc_free_sized: what their sized operator delete calls),
 * else plain free. The function used is named on stderr. rss=1 prints "round N rss_kb=K" on
 * stderr after each round.
 */
#include "common.h"
#include <dlfcn.h>

typedef struct {
    void **ptr;
    uint32_t *size;
    uint64_t *tag;
} slots_t;

typedef struct {
    slots_t *arr;
    long long ops;
    long long nslots;
    uint64_t seed;
    uint64_t sum;
    long long bad;
} work_t;

static long long g_min, g_max;

/* how blocks are freed: free(p), or with sized=1 free_sized(p, n) or the allocator's own */
static void (*g_free_sized)(void *, size_t);

static void (*g_sdallocx)(void *, size_t, int);
static void sdallocx0(void *p, size_t n)
{
    g_sdallocx(p, n, 0);
}

static inline void release(void *p, size_t n)
{
    if (g_free_sized)
        g_free_sized(p, n);
    else
        free(p);
}

static void *worker(void *argp)
{
    work_t *w = argp;
    slots_t *a = w->arr;
    rng_t r = rng_seed(w->seed, 0x1a2);
    uint64_t sum = 0;
    for (long long i = 0; i < w->ops; i++) {
        uint64_t k = rng_range(&r, 0, (uint64_t)w->nslots - 1);
        if (!tag_ok(a->ptr[k], a->size[k], a->tag[k]))
            w->bad++;
        sum += a->tag[k];
        release(a->ptr[k], a->size[k]);
        size_t n = (size_t)rng_range(&r, (uint64_t)g_min, (uint64_t)g_max);
        uint64_t tag = mix64(w->seed + (uint64_t)i);
        void *p = xmalloc(n);
        tag_write(p, n, tag);
        a->ptr[k] = p;
        a->size[k] = (uint32_t)n;
        a->tag[k] = tag;
    }
    w->sum = sum;
    return NULL;
}

int main(int argc, char **argv)
{
    opts_init("larson", argc, argv);
    int threads = (int)opt("threads", 2);
    long long rounds = opt("rounds", 20);
    long long nslots = opt("slots", 1000);
    long long ops = opt("ops", 2000000);
    g_min = opt("min", 8);
    g_max = opt("max", 1000);
    uint64_t seed = (uint64_t)opt("seed", 1);
    int sized = (int)opt("sized", 0);
    int rss = (int)opt("rss", 0);
    opts_done();
    if (threads < 1 || nslots < 1 || g_min < 1 || g_max < g_min)
        fail("bad parameters");
    if (sized) {
        static const char *const names[] = { "free_sized", "mi_free_size", "tc_free_sized" };
        const char *used = "free";
        for (int i = 0; i < 3 && !g_free_sized; i++)
            if ((*(void **)&g_free_sized = dlsym(RTLD_DEFAULT, names[i])))
                used = names[i];
        if (!g_free_sized && (*(void **)&g_sdallocx = dlsym(RTLD_DEFAULT, "sdallocx"))) {
            g_free_sized = sdallocx0;
            used = "sdallocx";
        }
        fprintf(stderr, "larson: sized=1: freeing with %s\n", used);
    }

    slots_t *arrs = xmalloc(sizeof(slots_t) * (size_t)threads);
    rng_t r = rng_seed(seed, 7);
    for (int t = 0; t < threads; t++) {
        arrs[t].ptr = xmalloc(sizeof(void *) * (size_t)nslots);
        arrs[t].size = xmalloc(sizeof(uint32_t) * (size_t)nslots);
        arrs[t].tag = xmalloc(sizeof(uint64_t) * (size_t)nslots);
        for (long long k = 0; k < nslots; k++) {
            size_t n = (size_t)rng_range(&r, (uint64_t)g_min, (uint64_t)g_max);
            uint64_t tag = rng_next(&r);
            arrs[t].ptr[k] = xmalloc(n);
            tag_write(arrs[t].ptr[k], n, tag);
            arrs[t].size[k] = (uint32_t)n;
            arrs[t].tag[k] = tag;
        }
    }

    work_t *w = xmalloc(sizeof(work_t) * (size_t)threads);
    uint64_t sum = 0;
    long long bad = 0;
    for (long long rd = 0; rd < rounds; rd++) {
        for (int t = 0; t < threads; t++) {
            w[t] = (work_t){ .arr = &arrs[(t + rd) % threads], .ops = share(ops, threads, t),
                             .nslots = nslots, .seed = mix64((uint64_t)rd * 1000 + (uint64_t)t + seed) };
        }
        run_threads(threads, worker, w, sizeof(work_t));
        for (int t = 0; t < threads; t++) {
            sum += w[t].sum;
            bad += w[t].bad;
        }
        if (rss)
            rss_round(rd + 1);
    }
    for (int t = 0; t < threads; t++) {
        for (long long k = 0; k < nslots; k++) {
            if (!tag_ok(arrs[t].ptr[k], arrs[t].size[k], arrs[t].tag[k]))
                bad++;
            sum += arrs[t].tag[k];
            release(arrs[t].ptr[k], arrs[t].size[k]);
        }
        free(arrs[t].ptr);
        free(arrs[t].size);
        free(arrs[t].tag);
    }
    free(arrs);
    free(w);
    if (bad)
        fail("%lld blocks corrupted", bad);
    printf("larson ok checksum=%016" PRIx64 " threads=%d ops=%lld\n", sum, threads, rounds * ops);
    return 0;
}
