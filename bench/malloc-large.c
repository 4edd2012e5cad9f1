/* malloc-large: random large buffers, in the style of mimalloc-bench's "malloc-large" test
 * (a test of large allocations of several MiB: 20 live buffers of random sizes between 5 and
 * 25 MiB, replaced at random), written from that description.
 *
 * `live` slots each hold a buffer. Each of `iters` iterations picks a random slot, checks and
 * frees its buffer and allocates a new one of a uniform random size in [min, max] MiB, which it
 * value-initialises the way std::vector<char>(n) does: malloc, then zero every byte (so every
 * page is touched). Then a tag goes into its first and last 8 bytes, and the word in the middle
 * stays zero; both are checked before the buffer is freed. What is measured: whether the
 * allocator reuses big blocks or maps and unmaps them every time (page faults dominate), and how
 * much it keeps mapped.
 *
 *   malloc-large iters=100 live=20 min=5 max=25 seed=1
 */
#include "common.h"

typedef struct {
    unsigned char *p;
    size_t n;
    uint64_t tag;
} buf_t;

static long long check(const buf_t *b, uint64_t *sum)
{
    uint64_t mid;
    memcpy(&mid, b->p + (b->n / 2 & ~(size_t)7), 8);
    *sum += b->tag + b->n;
    return !tag_ok(b->p, b->n, b->tag) || mid != 0;
}

int main(int argc, char **argv)
{
    opts_init("malloc-large", argc, argv);
    long long iters = opt("iters", 100);
    long long live = opt("live", 20);
    long long min = opt("min", 5);
    long long max = opt("max", 25);
    uint64_t seed = (uint64_t)opt("seed", 1);
    opts_done();
    if (iters < 0 || live < 1 || min < 1 || max < min)
        fail("bad parameters (sizes in MiB)");

    rng_t r = rng_seed(seed, 0x1a7);
    buf_t *slot = xmalloc(sizeof(buf_t) * (size_t)live);
    memset(slot, 0, sizeof(buf_t) * (size_t)live);
    uint64_t sum = 0;
    long long bad = 0;
    for (long long i = 0; i < iters; i++) {
        buf_t *b = &slot[rng_range(&r, 0, (uint64_t)live - 1)];
        if (b->p) {
            bad += check(b, &sum);
            free(b->p);
        }
        b->n = (size_t)rng_range(&r, (uint64_t)min << 20, (uint64_t)max << 20);
        b->p = xmalloc(b->n);
        /* keep the compiler from turning malloc + memset into calloc, which may skip the
         * zeroing of fresh pages: std::vector<char>(n) writes them */
        __asm__ volatile("" : : "r"(b->p) : "memory");
        memset(b->p, 0, b->n);
        b->tag = mix64(seed ^ (uint64_t)i);
        tag_write(b->p, b->n, b->tag);
    }
    for (long long k = 0; k < live; k++)
        if (slot[k].p) {
            bad += check(&slot[k], &sum);
            free(slot[k].p);
        }
    free(slot);
    if (bad)
        fail("%lld buffers corrupted", bad);
    printf("malloc-large ok checksum=%016" PRIx64 " iters=%lld\n", sum, iters);
    return 0;
}
