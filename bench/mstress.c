/* mstress: mixed-size stress with objects migrating between threads and threads replaced every
 * round, in the style of the "mstress" test of mimalloc-bench (Leijen, Zorn & de Moura,
 * "Mimalloc: Free List Sharding in Action", MSR-TR-2019-18: "simulates real-world server-like
 * allocation patterns, using N threads with allocations in powers of 2 where objects can
 * migrate between threads and some objects are retained"), written from that description.
 *
 * For `rounds` rounds, `threads` new threads are started. Each keeps `live` local slots and does
 * `iters` steps on random slots: allocate (freeing what was there), realloc to a new size,
 * exchange with a random slot of a global transfer array of `transfers` slots (the block put
 * there is picked up, and later freed or realloc'ed, by another thread, often one of a later
 * round), or free. Sizes are mostly small (16..256 B, powers of two and in between), some medium
 * (up to 8 KiB) and one in `big` large (16 KiB..`max`). When its steps are done a thread frees
 * everything in its slots and exits; the transfer array lives on to the next round and is freed
 * by the main thread at the end.
 *
 * Every block carries a header (tag, size) and, from 24 bytes, the tag again in its last word;
 * it is checked before every free and realloc. With fill=1 a block is written whole when it is
 * allocated (as a program fills a buffer it asked for), not only at its ends: the pages of a
 * big block then all count, which the ends-only writes leave out. Which thread frees a block
 * depends on scheduling, but every block is freed once, so the checksum (sum of the tags) does
 * not.
 *
 *   mstress threads=2 rounds=20 iters=200000 live=500 transfers=1000 big=200 max=393216 fill=0 seed=1
 * iters is per thread and round. rss=1 prints "round N rss_kb=K" on stderr after each round.
 */
#include "common.h"
#include <stdatomic.h>

typedef struct {
    uint64_t tag;
    uint64_t size;
} hdr_t;

static _Atomic(hdr_t *) *g_transfer;
static long long g_iters, g_live, g_ntransfer, g_big, g_max, g_fill;
static _Atomic uint64_t g_sum;
static _Atomic long long g_bad, g_allocs, g_frees;

typedef struct {
    uint64_t seed;
    char pad[56];
} arg_t;

static size_t pick_size(rng_t *r)
{
    uint64_t u = rng_range(r, 0, 999);
    if ((long long)rng_range(r, 1, (uint64_t)g_big) == 1)
        return (size_t)rng_loguniform(r, 16384, (uint64_t)g_max);
    if (u < 450) /* powers of two, 16..256 */
        return (size_t)16 << rng_range(r, 0, 4);
    if (u < 900)
        return (size_t)rng_range(r, 16, 256);
    return (size_t)rng_loguniform(r, 257, 8192);
}

static void mark(hdr_t *h, size_t n, uint64_t tag)
{
    if (g_fill)
        memset(h, (int)(tag & 0xff), n);
    h->tag = tag;
    h->size = n;
    if (n >= 24)
        memcpy((char *)h + n - 8, &tag, 8);
}

static long long check(const hdr_t *h)
{
    uint64_t t;
    if (h->size < 16 || h->size > (uint64_t)g_max)
        return 1;
    if (h->size >= 24) {
        memcpy(&t, (const char *)h + h->size - 8, 8);
        if (t != h->tag)
            return 1;
    }
    return 0;
}

static void *worker(void *argp)
{
    arg_t *a = argp;
    rng_t r = rng_seed(a->seed, 0x57);
    hdr_t **slot = xmalloc(sizeof(hdr_t *) * (size_t)g_live);
    memset(slot, 0, sizeof(hdr_t *) * (size_t)g_live);
    uint64_t sum = 0;
    long long bad = 0, allocs = 0, frees = 0;
    for (long long i = 0; i < g_iters; i++) {
        /* the same draws every step, whatever the slot holds (which depends on scheduling) */
        hdr_t **s = &slot[rng_range(&r, 0, (uint64_t)g_live - 1)];
        uint64_t op = rng_range(&r, 0, 99);
        uint64_t j = rng_range(&r, 0, (uint64_t)g_ntransfer - 1);
        size_t n = pick_size(&r);
        if (op < 15) { /* hand over: put ours in, take someone else's */
            *s = atomic_exchange(&g_transfer[j], *s);
        } else if (op < 30) { /* resize */
            hdr_t *h = *s;
            if (!h)
                continue;
            bad += check(h);
            uint64_t tag = h->tag;
            h = realloc(h, n);
            if (!h)
                fail("realloc(%zu) returned NULL", n);
            bad += h->tag != tag;
            mark(h, n, tag);
            *s = h;
        } else if (op < 40) { /* free */
            if (*s) {
                bad += check(*s);
                sum += (*s)->tag;
                frees++;
                free(*s);
                *s = NULL;
            }
        } else { /* replace */
            if (*s) {
                bad += check(*s);
                sum += (*s)->tag;
                frees++;
                free(*s);
            }
            hdr_t *h = xmalloc(n);
            mark(h, n, mix64(a->seed ^ (uint64_t)i));
            allocs++;
            *s = h;
        }
    }
    for (long long k = 0; k < g_live; k++)
        if (slot[k]) {
            bad += check(slot[k]);
            sum += slot[k]->tag;
            frees++;
            free(slot[k]);
        }
    free(slot);
    atomic_fetch_add(&g_sum, sum);
    atomic_fetch_add(&g_bad, bad);
    atomic_fetch_add(&g_allocs, allocs);
    atomic_fetch_add(&g_frees, frees);
    return NULL;
}

int main(int argc, char **argv)
{
    opts_init("mstress", argc, argv);
    int threads = (int)opt("threads", 2);
    long long rounds = opt("rounds", 20);
    g_iters = opt("iters", 200000);
    g_live = opt("live", 500);
    g_ntransfer = opt("transfers", 1000);
    g_big = opt("big", 200);
    g_max = opt("max", 393216);
    g_fill = opt("fill", 0);
    uint64_t seed = (uint64_t)opt("seed", 1);
    int rss = (int)opt("rss", 0);
    opts_done();
    if (threads < 1 || rounds < 1 || g_iters < 0 || g_live < 1 || g_ntransfer < 1 || g_big < 1 ||
        g_max < 16384)
        fail("bad parameters (max >= 16384)");

    g_transfer = xmalloc(sizeof(*g_transfer) * (size_t)g_ntransfer);
    for (long long k = 0; k < g_ntransfer; k++)
        atomic_init(&g_transfer[k], NULL);
    arg_t *args = xmalloc(sizeof(arg_t) * (size_t)threads);
    for (long long rd = 0; rd < rounds; rd++) {
        for (int t = 0; t < threads; t++)
            args[t] = (arg_t){ .seed = mix64(seed * 1000003 + (uint64_t)rd * 1000 + (uint64_t)t) };
        run_threads(threads, worker, args, sizeof(arg_t));
        if (rss)
            rss_round(rd + 1);
    }
    free(args);

    uint64_t sum = g_sum;
    long long bad = g_bad, frees = g_frees;
    for (long long k = 0; k < g_ntransfer; k++) {
        hdr_t *h = atomic_load(&g_transfer[k]);
        if (h) {
            bad += check(h);
            sum += h->tag;
            frees++;
            free(h);
        }
    }
    free(g_transfer);
    if (bad)
        fail("%lld blocks corrupted", bad);
    if (frees != g_allocs)
        fail("freed %lld blocks of %lld", frees, (long long)g_allocs);
    printf("mstress ok checksum=%016" PRIx64 " allocs=%lld\n", sum, (long long)g_allocs);
    return 0;
}
