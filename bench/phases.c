/* phases: a program that works in phases, each building a structure of objects of one kind and
 * dropping most of it before the next: a compiler's passes (tokens, then syntax tree nodes, then
 * instructions, then code buffers), a batch job's stages, the steps of a build run in one process.
 *
 * Each phase picks a typical object size, log-uniform over [min, max] (a run's phases go over
 * small, medium and big sizes alike), and allocates objects of that size to 1.25 times it until
 * the phase holds `mib` MiB, writing each one whole. Then it checks and frees them in random
 * order, all but one in `keep` (keep=0: all), which live on to the end of the run (a symbol
 * table, interned strings): a segregated allocator cannot give their pages to another size. What is measured is whether the memory one phase freed serves the next phase's
 * objects, of another size: the time (memory fresh from the OS costs a page fault per 4 KiB)
 * and the peak RSS.
 *
 *   phases threads=1 phases=16 mib=32 min=16 max=262144 keep=64 seed=1
 * phases is per thread; each thread runs its own. rss=1 prints "round N rss_kb=K" after each
 * phase of thread 0.
 */
#include "common.h"

typedef struct {
    uint64_t seed;
    int first;
    uint64_t sum;
    long long bad;
    char pad[32];
} arg_t;

static long long g_phases, g_mib, g_min, g_max, g_keep, g_rss;

typedef struct {
    void *p;
    size_t n;
    uint64_t tag;
} obj_t;

static void *worker(void *argp)
{
    arg_t *a = argp;
    rng_t r = rng_seed(a->seed, 0x9a5e);
    size_t budget = (size_t)g_mib << 20;
    size_t cap = budget / (size_t)g_min + 1;
    obj_t *o = xmalloc(sizeof(obj_t) * cap);
    obj_t *kept = NULL;
    size_t kept_n = 0, kept_cap = 0;
    uint64_t sum = 0;
    long long bad = 0;
    for (long long ph = 0; ph < g_phases; ph++) {
        size_t typical = (size_t)rng_loguniform(&r, (uint64_t)g_min, (uint64_t)g_max);
        size_t n = 0, held = 0;
        while (held < budget && n < cap) {
            size_t sz = typical + (size_t)rng_range(&r, 0, typical / 4);
            uint64_t tag = mix64(a->seed ^ mix64((uint64_t)ph << 32 ^ n));
            void *p = xmalloc(sz);
            memset(p, (int)(tag & 0xff), sz);
            tag_write(p, sz, tag);
            o[n++] = (obj_t){ p, sz, tag };
            held += sz;
        }
        for (size_t i = n; i > 1; i--) { /* Fisher-Yates: the order a structure is torn down in */
            size_t j = (size_t)rng_range(&r, 0, i - 1);
            obj_t t = o[i - 1];
            o[i - 1] = o[j];
            o[j] = t;
        }
        for (size_t i = 0; i < n; i++) {
            if (!tag_ok(o[i].p, o[i].n, o[i].tag))
                bad++;
            sum += o[i].tag >> 40;
            if (g_keep != 0 && i % (size_t)g_keep == 0) {
                if (kept_n == kept_cap) {
                    kept_cap = kept_cap ? 2 * kept_cap : 1024;
                    obj_t *k = realloc(kept, sizeof(obj_t) * kept_cap);
                    if (k == NULL)
                        fail("realloc(%zu) returned NULL", sizeof(obj_t) * kept_cap);
                    kept = k;
                }
                kept[kept_n++] = o[i];
            } else {
                free(o[i].p);
            }
        }
        if (g_rss && a->first)
            rss_round(ph + 1);
    }
    for (size_t i = 0; i < kept_n; i++) {
        if (!tag_ok(kept[i].p, kept[i].n, kept[i].tag))
            bad++;
        free(kept[i].p);
    }
    free(kept);
    free(o);
    a->sum = sum;
    a->bad = bad;
    return NULL;
}

int main(int argc, char **argv)
{
    opts_init("phases", argc, argv);
    long long threads = opt("threads", 1);
    g_phases = opt("phases", 16);
    g_mib = opt("mib", 32);
    g_min = opt("min", 16);
    g_max = opt("max", 262144);
    g_keep = opt("keep", 64);
    g_rss = opt("rss", 0);
    uint64_t seed = (uint64_t)opt("seed", 1);
    opts_done();
    if (threads < 1 || threads > 256 || g_phases < 1 || g_mib < 1 || g_mib > 65536 || g_min < 1 || g_max < g_min ||
        g_keep < 0)
        fail("bad parameters (1 <= threads <= 256, phases >= 1, 1 <= mib <= 65536, 1 <= min <= max, keep >= 0)");
    arg_t *args = xmalloc(sizeof(arg_t) * (size_t)threads);
    for (long long t = 0; t < threads; t++)
        args[t] = (arg_t){ .seed = seed + (uint64_t)t, .first = t == 0 };
    run_threads((int)threads, worker, args, sizeof(arg_t));
    uint64_t sum = 0;
    long long bad = 0;
    for (long long t = 0; t < threads; t++) {
        sum += args[t].sum;
        bad += args[t].bad;
    }
    free(args);
    if (bad)
        fail("%lld objects corrupted", bad);
    printf("phases ok checksum=%016" PRIx64 "\n", sum);
    return 0;
}
