/* large: big blocks, 256 KiB .. 64 MiB.
 *
 * Each thread keeps `live` slots. An iteration picks a random slot, checks and frees its block,
 * allocates a new one of a log-uniform size in [min, max] and writes one word in every page
 * (`stride` bytes apart, and the last byte), the way a program fills a big buffer. Most of the
 * cost is in the kernel (mmap, munmap, page faults): what is measured is whether the allocator
 * reuses big blocks or goes to the kernel every time, and how much it keeps mapped.
 *
 * With zero=1 the blocks come from calloc, and read zero where they are written (a program's
 * zero-initialised buffers: the allocator must clear what it hands out again, and may skip
 * what it knows to be zero).
 *
 *   large threads=1 iters=400 live=4 min=262144 max=67108864 stride=4096 zero=0 seed=1
 * iters is the total, shared by the threads.
 */
#include "common.h"

typedef struct {
    long long iters;
    uint64_t seed;
    uint64_t sum;
    long long bad;
    char pad[64];
} arg_t;

static long long g_live, g_min, g_max, g_stride, g_zero;

typedef struct {
    unsigned char *p;
    size_t n;
    uint64_t tag;
} blk_t;

/* The last byte, written and checked apart unless the last word written covers it. */
static int tail_apart(const blk_t *b)
{
    return b->n < 8 || b->n - 1 >= (b->n - 8) / (size_t)g_stride * (size_t)g_stride + 8;
}

static void fill(blk_t *b)
{
    for (size_t off = 0; off + 8 <= b->n; off += (size_t)g_stride) {
        uint64_t v = b->tag + off;
        memcpy(b->p + off, &v, 8);
    }
    if (tail_apart(b))
        b->p[b->n - 1] = (unsigned char)b->tag;
}

static long long check(const blk_t *b, uint64_t *sum)
{
    long long bad = 0;
    for (size_t off = 0; off + 8 <= b->n; off += (size_t)g_stride) {
        uint64_t v;
        memcpy(&v, b->p + off, 8);
        if (v != b->tag + off)
            bad++;
        *sum += v;
    }
    if (tail_apart(b) && b->p[b->n - 1] != (unsigned char)b->tag)
        bad++;
    return bad;
}

/* A calloc'ed block reads zero where fill() is about to write. */
static int zeroed(const blk_t *b)
{
    for (size_t off = 0; off + 8 <= b->n; off += (size_t)g_stride) {
        uint64_t v;
        memcpy(&v, b->p + off, 8);
        if (v != 0)
            return 0;
    }
    return b->p[b->n - 1] == 0;
}

static void *worker(void *argp)
{
    arg_t *a = argp;
    rng_t r = rng_seed(a->seed, 0x1a);
    blk_t *slot = xmalloc(sizeof(blk_t) * (size_t)g_live);
    memset(slot, 0, sizeof(blk_t) * (size_t)g_live);
    uint64_t sum = 0;
    long long bad = 0;
    for (long long i = 0; i < a->iters; i++) {
        blk_t *b = &slot[rng_range(&r, 0, (uint64_t)g_live - 1)];
        if (b->p) {
            bad += check(b, &sum);
            free(b->p);
        }
        b->n = (size_t)rng_loguniform(&r, (uint64_t)g_min, (uint64_t)g_max);
        if (g_zero) {
            b->p = calloc(1, b->n);
            if (b->p == NULL)
                fail("calloc(1, %zu) returned NULL", b->n);
            bad += !zeroed(b);
        } else {
            b->p = xmalloc(b->n);
        }
        b->tag = mix64(a->seed ^ (uint64_t)i);
        fill(b);
    }
    for (long long i = 0; i < g_live; i++)
        if (slot[i].p) {
            bad += check(&slot[i], &sum);
            free(slot[i].p);
        }
    free(slot);
    a->sum = sum;
    a->bad = bad;
    return NULL;
}

int main(int argc, char **argv)
{
    opts_init("large", argc, argv);
    int threads = (int)opt("threads", 1);
    long long iters = opt("iters", 400);
    g_live = opt("live", 4);
    g_min = opt("min", 262144);
    g_max = opt("max", 67108864);
    g_stride = opt("stride", 4096);
    g_zero = opt("zero", 0);
    uint64_t seed = (uint64_t)opt("seed", 1);
    opts_done();
    if (threads < 1 || g_live < 1 || g_min < 16 || g_max < g_min || g_stride < 8)
        fail("bad parameters");
    arg_t *args = xmalloc(sizeof(arg_t) * (size_t)threads);
    for (int t = 0; t < threads; t++)
        args[t] = (arg_t){ .iters = share(iters, threads, t), .seed = mix64(seed + (uint64_t)t) };
    run_threads(threads, worker, args, sizeof(arg_t));
    uint64_t sum = 0;
    long long bad = 0;
    for (int t = 0; t < threads; t++) {
        sum += args[t].sum;
        bad += args[t].bad;
    }
    free(args);
    if (bad)
        fail("%lld words wrong", bad);
    printf("large ok checksum=%016" PRIx64 " iters=%lld\n", sum, iters);
    return 0;
}
