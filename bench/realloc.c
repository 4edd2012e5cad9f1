/* realloc: growth of many buffers by realloc, the way strings, vectors and I/O buffers grow.
 *
 * Each thread keeps `nbuf` buffers. A step picks a random buffer and appends 1..`chunk` bytes to
 * it with realloc(buf, len + k) (exact growth, no doubling: the allocator's in-place growth is
 * what is measured), writing bytes that are a function of the buffer's generation and offset.
 * When a buffer reaches its target length (log-uniform in [min, max]) its whole content is
 * checked and it is freed; it then starts again from NULL.
 *
 *   realloc threads=1 steps=3000000 nbuf=1000 chunk=64 min=1024 max=262144 seed=1
 * steps is the total, shared by the threads.
 */
#include "common.h"

typedef struct {
    long long steps;
    uint64_t seed;
    uint64_t sum;
    long long bad, done;
    char pad[64];
} arg_t;

static long long g_nbuf, g_chunk, g_min, g_max;

typedef struct {
    unsigned char *p;
    size_t len, target;
    uint64_t gen;
} buf_t;

static inline unsigned char byte_at(uint64_t gen, size_t i)
{
    return (unsigned char)((gen >> ((i & 7) * 8)) + i * 7);
}

static long long check_free(buf_t *b, uint64_t *sum)
{
    long long bad = 0;
    uint64_t s = 0;
    for (size_t i = 0; i < b->len; i++) {
        if (b->p[i] != byte_at(b->gen, i))
            bad++;
        s += b->p[i];
    }
    *sum += s + b->len;
    free(b->p);
    b->p = NULL;
    b->len = 0;
    return bad;
}

static void *worker(void *argp)
{
    arg_t *a = argp;
    rng_t r = rng_seed(a->seed, 0x7e);
    buf_t *bufs = xmalloc(sizeof(buf_t) * (size_t)g_nbuf);
    uint64_t gen = 0;
    for (long long i = 0; i < g_nbuf; i++)
        bufs[i] = (buf_t){ NULL, 0, (size_t)rng_loguniform(&r, (uint64_t)g_min, (uint64_t)g_max),
                           mix64(a->seed + gen++) };
    uint64_t sum = 0;
    long long bad = 0, done = 0;
    for (long long s = 0; s < a->steps; s++) {
        uint64_t x = rng_next(&r);
        buf_t *b = &bufs[(x >> 32) % (uint64_t)g_nbuf];
        size_t k = 1 + (size_t)((x & 0xffffffffu) % (uint64_t)g_chunk);
        unsigned char *np = realloc(b->p, b->len + k);
        if (!np)
            fail("realloc(%zu) returned NULL", b->len + k);
        b->p = np;
        for (size_t i = b->len; i < b->len + k; i++)
            np[i] = byte_at(b->gen, i);
        b->len += k;
        if (b->len >= b->target) {
            bad += check_free(b, &sum);
            done++;
            b->target = (size_t)rng_loguniform(&r, (uint64_t)g_min, (uint64_t)g_max);
            b->gen = mix64(a->seed + gen++);
        }
    }
    for (long long i = 0; i < g_nbuf; i++)
        if (bufs[i].p)
            bad += check_free(&bufs[i], &sum);
    free(bufs);
    a->sum = sum;
    a->bad = bad;
    a->done = done;
    return NULL;
}

int main(int argc, char **argv)
{
    opts_init("realloc", argc, argv);
    int threads = (int)opt("threads", 1);
    long long steps = opt("steps", 3000000);
    g_nbuf = opt("nbuf", 1000);
    g_chunk = opt("chunk", 64);
    g_min = opt("min", 1024);
    g_max = opt("max", 262144);
    uint64_t seed = (uint64_t)opt("seed", 1);
    opts_done();
    if (threads < 1 || g_nbuf < 1 || g_chunk < 1 || g_min < 1 || g_max < g_min)
        fail("bad parameters");
    arg_t *args = xmalloc(sizeof(arg_t) * (size_t)threads);
    for (int t = 0; t < threads; t++)
        args[t] = (arg_t){ .steps = share(steps, threads, t), .seed = mix64(seed + (uint64_t)t) };
    run_threads(threads, worker, args, sizeof(arg_t));
    uint64_t sum = 0;
    long long bad = 0, done = 0;
    for (int t = 0; t < threads; t++) {
        sum += args[t].sum;
        bad += args[t].bad;
        done += args[t].done;
    }
    free(args);
    if (bad)
        fail("%lld bytes wrong", bad);
    printf("realloc ok checksum=%016" PRIx64 " steps=%lld buffers_completed=%lld\n", sum, steps, done);
    return 0;
}
