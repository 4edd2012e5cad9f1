/* vector: dynamic arrays grown by appending and rebuilt in rounds, the way C++ vectors, Rust
 * Vecs, Go slices and CPython lists grow.
 *
 * Each thread keeps `k` vectors of 8-byte elements. A round gives every vector a target length
 * (log-uniform in [min, max] elements) and appends to the vectors in turn, one element at a
 * time, until all reach their targets; a full vector grows by realloc to its capacity times a
 * growth factor plus 4 elements. The factors cycle over the vectors: 1.125 (CPython's lists),
 * 1.5 (MSVC, folly) and 2 (libstdc++, Rust). At the end of a round every element is checked and
 * the vectors are freed, and the next round builds them again. What is measured is realloc of
 * big blocks by small factors, and whether the memory a round frees serves the next one.
 *
 *   vector threads=1 rounds=30 k=4 min=1000 max=400000 seed=1
 * rounds is per thread.
 */
#include "common.h"

typedef struct {
    uint64_t seed;
    uint64_t sum;
    long long bad;
    char pad[40];
} arg_t;

static long long g_rounds, g_k, g_min, g_max;

static inline uint64_t elem(uint64_t tag, size_t i)
{
    return tag ^ (i * 0x9e3779b97f4a7c15ull);
}

static void *worker(void *argp)
{
    arg_t *a = argp;
    rng_t r = rng_seed(a->seed, 0x7ec);
    uint64_t **v = xmalloc(sizeof(uint64_t *) * (size_t)g_k);
    size_t *len = xmalloc(sizeof(size_t) * (size_t)g_k), *cap = xmalloc(sizeof(size_t) * (size_t)g_k);
    size_t *target = xmalloc(sizeof(size_t) * (size_t)g_k);
    uint64_t *tag = xmalloc(sizeof(uint64_t) * (size_t)g_k);
    static const unsigned factor_x8[] = { 9, 12, 16 }; /* growth factor times 8 */
    uint64_t sum = 0;
    long long bad = 0;
    for (long long round = 0; round < g_rounds; round++) {
        size_t left = 0;
        for (long long j = 0; j < g_k; j++) {
            v[j] = NULL;
            len[j] = cap[j] = 0;
            target[j] = (size_t)rng_loguniform(&r, (uint64_t)g_min, (uint64_t)g_max);
            tag[j] = mix64(a->seed ^ mix64((uint64_t)(round * g_k + j)));
            left += target[j];
        }
        while (left > 0) {
            for (long long j = 0; j < g_k; j++) {
                if (len[j] == target[j])
                    continue;
                if (len[j] == cap[j]) {
                    size_t grown = cap[j] * factor_x8[j % 3] / 8 + 4;
                    uint64_t *nv = realloc(v[j], grown * sizeof(uint64_t));
                    if (nv == NULL)
                        fail("realloc(%zu) returned NULL", grown * sizeof(uint64_t));
                    v[j] = nv;
                    cap[j] = grown;
                }
                v[j][len[j]] = elem(tag[j], len[j]);
                len[j]++;
                left--;
            }
        }
        for (long long j = 0; j < g_k; j++) {
            for (size_t i = 0; i < len[j]; i++) {
                if (v[j][i] != elem(tag[j], i))
                    bad++;
                sum += v[j][i] >> 32;
            }
            free(v[j]);
        }
    }
    free(v);
    free(len);
    free(cap);
    free(target);
    free(tag);
    a->sum = sum;
    a->bad = bad;
    return NULL;
}

int main(int argc, char **argv)
{
    opts_init("vector", argc, argv);
    long long threads = opt("threads", 1);
    g_rounds = opt("rounds", 30);
    g_k = opt("k", 4);
    g_min = opt("min", 1000);
    g_max = opt("max", 400000);
    uint64_t seed = (uint64_t)opt("seed", 1);
    opts_done();
    if (threads < 1 || threads > 256 || g_rounds < 1 || g_k < 1 || g_k > 1000 || g_min < 1 || g_max < g_min)
        fail("bad parameters (1 <= threads <= 256, 1 <= k <= 1000, 1 <= min <= max)");
    arg_t *args = xmalloc(sizeof(arg_t) * (size_t)threads);
    for (long long t = 0; t < threads; t++)
        args[t] = (arg_t){ .seed = seed + (uint64_t)t };
    run_threads((int)threads, worker, args, sizeof(arg_t));
    uint64_t sum = 0;
    long long bad = 0;
    for (long long t = 0; t < threads; t++) {
        sum += args[t].sum;
        bad += args[t].bad;
    }
    free(args);
    if (bad)
        fail("%lld elements corrupted", bad);
    printf("vector ok checksum=%016" PRIx64 "\n", sum);
    return 0;
}
