/* ttest: the pattern of ptmalloc's t-test1 (Wolfram Gloger's multi-threaded test of the malloc
 * that became glibc's), written from its description.
 *
 * Each thread keeps `bins` bins, half of them filled at its start, and goes round until it has
 * done `actions` operations: it empties a random number (0..29) of random bins, then fills a
 * random number (0..29) of random bins with a block of a random size in [1, size]. Of the
 * fills, 4 in 1024 are memalign (alignment 4, 8, 16 or 32), 16 calloc (checked to read zero),
 * 80 realloc of the bin's block while that is under 2000 bytes, the others malloc (the bin's old
 * block freed first). Every block gets a byte every 2047 and its last byte written, from its
 * address, and they are checked before it is freed or reallocated. A thread that is done frees
 * its bins and exits, and a new one takes its place, until `runs` threads have run in each of
 * the `threads` places, as t-test1 runs its threads.
 *
 *   ttest threads=2 runs=10 actions=100000 size=10000 bins=400 seed=1
 * bins defaults to 8000000 / (size * threads), as in t-test1.
 */
#include "common.h"
#include <malloc.h>

typedef struct {
    unsigned char *p;
    size_t n;
} bin_t;

typedef struct {
    uint64_t seed;
    uint64_t sum;
    long long bad;
    char pad[64];
} arg_t;

static long long g_runs, g_actions, g_size, g_bins;

static inline unsigned char mark(const unsigned char *p, size_t i)
{
    uintptr_t j = (uintptr_t)p ^ i;
    return (unsigned char)(j ^ (j >> 8));
}

static void fill(unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i += 2047)
        p[i] = mark(p, i);
    if (n != 0)
        p[n - 1] = mark(p, n - 1);
}

static int intact(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i += 2047)
        if (p[i] != mark(p, i))
            return 0;
    return n == 0 || p[n - 1] == mark(p, n - 1);
}

static void bin_empty(bin_t *b, long long *bad)
{
    if (b->n == 0)
        return;
    if (!intact(b->p, b->n))
        (*bad)++;
    free(b->p);
    b->p = NULL;
    b->n = 0;
}

static void bin_fill(bin_t *b, size_t n, unsigned r, long long *bad)
{
    if (b->n != 0 && !intact(b->p, b->n))
        (*bad)++;
    r %= 1024;
    if (r < 4) {
        if (b->n != 0)
            free(b->p);
        b->p = memalign(sizeof(int) << r, n);
    } else if (r < 20) {
        if (b->n != 0)
            free(b->p);
        b->p = calloc(n, 1);
        if (b->p != NULL)
            for (size_t i = 0; i < n; i++)
                if (b->p[i] != 0) {
                    (*bad)++;
                    break;
                }
    } else if (r < 100 && b->n < 2000) {
        b->p = realloc(b->n != 0 ? b->p : NULL, n);
    } else {
        if (b->n != 0)
            free(b->p);
        b->p = malloc(n);
    }
    if (b->p == NULL)
        fail("out of memory for %zu bytes", n);
    b->n = n;
    fill(b->p, n);
}

static void *run_one(void *argp)
{
    arg_t *a = argp;
    rng_t r = rng_seed(a->seed, 0x71);
    bin_t *bins = xmalloc(sizeof(bin_t) * (size_t)g_bins);
    memset(bins, 0, sizeof(bin_t) * (size_t)g_bins);
    uint64_t sum = 0;
    for (long long k = 0; k < g_bins; k++)
        if (rng_range(&r, 0, 1) == 0) {
            size_t n = (size_t)rng_range(&r, 1, (uint64_t)g_size);
            bin_fill(&bins[k], n, (unsigned)rng_next(&r), &a->bad);
            sum += n;
        }
    for (long long done = 0; done < g_actions;) {
        long long frees = (long long)rng_range(&r, 0, 29), fills = (long long)rng_range(&r, 0, 29);
        for (long long j = 0; j < frees; j++)
            bin_empty(&bins[rng_range(&r, 0, (uint64_t)g_bins - 1)], &a->bad);
        for (long long j = 0; j < fills; j++) {
            size_t n = (size_t)rng_range(&r, 1, (uint64_t)g_size);
            bin_fill(&bins[rng_range(&r, 0, (uint64_t)g_bins - 1)], n, (unsigned)rng_next(&r), &a->bad);
            sum += n;
        }
        done += frees + fills;
    }
    for (long long k = 0; k < g_bins; k++)
        bin_empty(&bins[k], &a->bad);
    free(bins);
    a->sum += sum;
    return NULL;
}

/* One place: its threads one after another. */
static void *place(void *argp)
{
    arg_t *a = argp;
    uint64_t seed = a->seed;
    for (long long k = 0; k < g_runs; k++) {
        pthread_t t;
        a->seed = mix64(seed + (uint64_t)k);
        if (pthread_create(&t, NULL, run_one, a) != 0)
            fail("pthread_create failed");
        pthread_join(t, NULL);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    opts_init("ttest", argc, argv);
    int threads = (int)opt("threads", 2);
    g_runs = opt("runs", 10);
    g_actions = opt("actions", 100000);
    g_size = opt("size", 10000);
    g_bins = opt("bins", g_size > 0 && threads > 0 ? 8000000 / (g_size * threads) : 0);
    uint64_t seed = (uint64_t)opt("seed", 1);
    opts_done();
    if (threads < 1 || g_runs < 1 || g_actions < 0 || g_size < 1 || g_size > 0xffffffffll || g_bins < 1)
        fail("bad parameters (size >= 1, bins >= 1)");
    arg_t *args = xmalloc(sizeof(arg_t) * (size_t)threads);
    for (int t = 0; t < threads; t++)
        args[t] = (arg_t){ .seed = mix64(seed * 1000003 + (uint64_t)t) };
    run_threads(threads, place, args, sizeof(arg_t));
    uint64_t sum = 0;
    long long bad = 0;
    for (int t = 0; t < threads; t++) {
        sum += args[t].sum;
        bad += args[t].bad;
    }
    free(args);
    if (bad)
        fail("%lld blocks corrupted", bad);
    printf("ttest ok checksum=%016" PRIx64 " runs=%lld\n", sum, (long long)threads * g_runs);
    return 0;
}
