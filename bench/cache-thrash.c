/* cache-thrash: active false sharing, after Hoard's cache-thrash test (Berger et al., ASPLOS
 * 2000), written from its description.
 *
 * Each thread does its share of `iters`: allocate an object of `size` bytes, write every byte of
 * it `reps` times, read it back, free it. Nothing is shared by the program; an allocator that
 * hands objects from one cache line to several threads at once makes them share anyway.
 *
 *   cache-thrash threads=2 iters=40000 size=8 reps=500
 * iters is the total, shared by the threads.
 */
#include "common.h"

typedef struct {
    long long iters;
    long long bad;
    uint64_t sum;
    char pad[64];
} arg_t;

static long long g_size, g_reps;

static void *worker(void *argp)
{
    arg_t *a = argp;
    uint64_t sum = 0;
    for (long long i = 0; i < a->iters; i++) {
        volatile unsigned char *p = xmalloc((size_t)g_size);
        for (long long k = 0; k < g_size; k++)
            p[k] = (unsigned char)i;
        for (long long j = 0; j < g_reps; j++)
            for (long long k = 0; k < g_size; k++)
                p[k]++;
        for (long long k = 0; k < g_size; k++) {
            if (p[k] != (unsigned char)(i + g_reps))
                a->bad++;
            sum += p[k];
        }
        free((void *)p);
    }
    a->sum = sum;
    return NULL;
}

int main(int argc, char **argv)
{
    opts_init("cache-thrash", argc, argv);
    int threads = (int)opt("threads", 2);
    long long iters = opt("iters", 40000);
    g_size = opt("size", 8);
    g_reps = opt("reps", 500);
    opts_done();
    if (threads < 1 || g_size < 1 || iters < 0 || g_reps < 0)
        fail("bad parameters");
    arg_t *args = xmalloc(sizeof(arg_t) * (size_t)threads);
    for (int t = 0; t < threads; t++)
        args[t] = (arg_t){ .iters = share(iters, threads, t) };
    run_threads(threads, worker, args, sizeof(arg_t));
    uint64_t sum = 0;
    long long bad = 0;
    for (int t = 0; t < threads; t++) {
        sum += args[t].sum;
        bad += args[t].bad;
    }
    free(args);
    if (bad)
        fail("%lld bytes wrong", bad);
    printf("cache-thrash ok checksum=%016" PRIx64 " iters=%lld\n", sum, iters);
    return 0;
}
