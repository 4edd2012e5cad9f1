/* simple: blocks of one size allocated in a batch, then all freed, round after round; the
 * pattern of glibc's benchtests/bench-malloc-simple, written from its description, and of a
 * program that builds a short-lived structure per request, a parse tree per file, a frame's
 * worth of objects.
 *
 * Each thread goes through five (size, count) pairs, 16 x 1600, 64 x 1600, 256 x 400,
 * 1024 x 100 and 4096 x 25 (about 100 KB a batch, under glibc's trim threshold, so that glibc
 * is measured at its malloc and not at giving its heap top back every round), a fifth of
 * `ops` malloc+free pairs each: a round allocates `count` blocks, writes a tag into each (a
 * program uses what it allocates) and frees them all, in the order they were allocated (or,
 * reverse=1, the other way). Every batch spans more than one of a pooled allocator's pages of
 * its class, so each round empties pages and fills them again. The threads do not share
 * blocks.
 *
 *   simple threads=1 ops=20000000 reverse=0
 * ops is the total, shared by the threads.
 */
#include "common.h"

typedef struct {
    long long ops;
    uint64_t sum;
    char pad[64];
} arg_t;

static int g_reverse;

static const struct {
    size_t size, count;
} pairs[] = { { 16, 1600 }, { 64, 1600 }, { 256, 400 }, { 1024, 100 }, { 4096, 25 } };
#define PAIRS (sizeof pairs / sizeof pairs[0])

static void *worker(void *argp)
{
    arg_t *a = argp;
    uint64_t **blk = xmalloc(sizeof(void *) * 1600);
    uint64_t sum = 0;
    for (size_t k = 0; k < PAIRS; k++) {
        size_t size = pairs[k].size, count = pairs[k].count;
        long long rounds = a->ops / (long long)PAIRS / (long long)count;
        for (long long r = 0; r < rounds; r++) {
            for (size_t i = 0; i < count; i++) {
                blk[i] = xmalloc(size);
                blk[i][0] = (uint64_t)r * 1600 + i;
            }
            for (size_t j = 0; j < count; j++) {
                size_t i = g_reverse ? count - 1 - j : j;
                if (blk[i][0] != (uint64_t)r * 1600 + i)
                    fail("block %zu of %zu bytes lost its tag", i, size);
                sum += blk[i][0];
                free(blk[i]);
            }
        }
    }
    free(blk);
    a->sum = sum;
    return NULL;
}

int main(int argc, char **argv)
{
    opts_init("simple", argc, argv);
    int threads = (int)opt("threads", 1);
    long long ops = opt("ops", 20000000);
    g_reverse = (int)opt("reverse", 0);
    opts_done();
    if (threads < 1 || ops < 1)
        fail("bad parameters");
    arg_t *args = xmalloc(sizeof(arg_t) * (size_t)threads);
    for (int t = 0; t < threads; t++)
        args[t] = (arg_t){ .ops = share(ops, threads, t) };
    run_threads(threads, worker, args, sizeof(arg_t));
    uint64_t sum = 0;
    for (int t = 0; t < threads; t++)
        sum += args[t].sum;
    free(args);
    printf("simple ok checksum=%016" PRIx64 " ops=%lld\n", mix64(sum), ops);
    return 0;
}
