/* xmalloc: producer/consumer, after the xmalloc test of Lever & Boreham ("malloc() Performance
 * in a Multithreaded Linux Environment", USENIX 2000), written from its description.
 *
 * threads/2 producers allocate blocks of random sizes in [min, max], tag them and pass them in
 * batches of `batch` through a bounded queue to threads/2 consumers, which check and free them:
 * every block is freed by a thread other than the one that allocated it. The batch arrays
 * themselves are malloc'ed by the producer and freed by the consumer too.
 *
 *   xmalloc threads=2 blocks=4000000 batch=256 min=8 max=512 seed=1
 * blocks is the total, shared by the producers.
 */
#include "common.h"
#include <stdatomic.h>

typedef struct {
    int n;
    void *ptr[];
} batch_t;

#define QCAP 64
static struct {
    pthread_mutex_t mu;
    pthread_cond_t not_empty, not_full;
    batch_t *q[QCAP];
    int head, count, producers_left;
} Q = { .mu = PTHREAD_MUTEX_INITIALIZER, .not_empty = PTHREAD_COND_INITIALIZER,
        .not_full = PTHREAD_COND_INITIALIZER };

static long long g_batch, g_min, g_max;
static _Atomic uint64_t g_sum;
static _Atomic long long g_count, g_bad;

typedef struct {
    int producer;
    int id;
    long long blocks;
    uint64_t seed;
} arg_t;

/* the tag tells the size back: low 16 bits hold it */
static inline uint64_t make_tag(uint64_t seed, long long i, size_t n)
{
    return (mix64(seed ^ (uint64_t)i) & ~0xffffull) | (uint64_t)n;
}

static void push(batch_t *b)
{
    pthread_mutex_lock(&Q.mu);
    while (Q.count == QCAP)
        pthread_cond_wait(&Q.not_full, &Q.mu);
    Q.q[(Q.head + Q.count) % QCAP] = b;
    Q.count++;
    pthread_cond_signal(&Q.not_empty);
    pthread_mutex_unlock(&Q.mu);
}

static batch_t *pop(void)
{
    pthread_mutex_lock(&Q.mu);
    while (Q.count == 0 && Q.producers_left > 0)
        pthread_cond_wait(&Q.not_empty, &Q.mu);
    batch_t *b = NULL;
    if (Q.count > 0) {
        b = Q.q[Q.head];
        Q.head = (Q.head + 1) % QCAP;
        Q.count--;
        pthread_cond_signal(&Q.not_full);
    }
    pthread_mutex_unlock(&Q.mu);
    return b;
}

static void *thread_main(void *argp)
{
    arg_t *a = argp;
    if (a->producer) {
        rng_t r = rng_seed(a->seed, (uint64_t)a->id);
        long long i = 0;
        while (i < a->blocks) {
            long long n = a->blocks - i < g_batch ? a->blocks - i : g_batch;
            batch_t *b = xmalloc(sizeof(batch_t) + sizeof(void *) * (size_t)n);
            b->n = (int)n;
            for (long long k = 0; k < n; k++, i++) {
                size_t sz = (size_t)rng_range(&r, (uint64_t)g_min, (uint64_t)g_max);
                void *p = xmalloc(sz);
                tag_write(p, sz, make_tag(a->seed + (uint64_t)a->id, i, sz));
                b->ptr[k] = p;
            }
            push(b);
        }
        pthread_mutex_lock(&Q.mu);
        Q.producers_left--;
        pthread_cond_broadcast(&Q.not_empty);
        pthread_mutex_unlock(&Q.mu);
    } else {
        uint64_t sum = 0;
        long long count = 0, bad = 0;
        batch_t *b;
        while ((b = pop()) != NULL) {
            for (int k = 0; k < b->n; k++) {
                uint64_t tag;
                memcpy(&tag, b->ptr[k], 8);
                size_t sz = tag & 0xffff;
                if (sz < 8 || !tag_ok(b->ptr[k], sz, tag))
                    bad++;
                sum += tag;
                free(b->ptr[k]);
            }
            count += b->n;
            free(b);
        }
        atomic_fetch_add(&g_sum, sum);
        atomic_fetch_add(&g_count, count);
        atomic_fetch_add(&g_bad, bad);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    opts_init("xmalloc", argc, argv);
    int threads = (int)opt("threads", 2);
    long long blocks = opt("blocks", 4000000);
    g_batch = opt("batch", 256);
    g_min = opt("min", 8);
    g_max = opt("max", 512);
    uint64_t seed = (uint64_t)opt("seed", 1);
    opts_done();
    if (threads < 2 || threads % 2 || g_batch < 1 || g_min < 8 || g_max > 0xffff || g_max < g_min)
        fail("bad parameters (threads must be even >= 2, 8 <= min <= max <= 65535)");
    int np = threads / 2;
    Q.producers_left = np;
    arg_t *args = xmalloc(sizeof(arg_t) * (size_t)threads);
    for (int t = 0; t < threads; t++)
        args[t] = (arg_t){ .producer = t < np, .id = t, .blocks = t < np ? share(blocks, np, t) : 0,
                           .seed = seed };
    run_threads(threads, thread_main, args, sizeof(arg_t));
    free(args);
    if (g_bad)
        fail("%lld blocks corrupted", (long long)g_bad);
    if (g_count != blocks)
        fail("consumed %lld blocks of %lld", (long long)g_count, blocks);
    printf("xmalloc ok checksum=%016" PRIx64 " blocks=%lld\n", (uint64_t)g_sum, blocks);
    return 0;
}
