/* Multi-threaded stress: random malloc/free in 8 threads, producer/consumer cross-thread frees
 * with memory-reuse checks, 64 short-lived threads leaving live blocks behind, memory given
 * back at thread exit, um_thread_done, cross-thread realloc, um_trim/um_get_totals racing with
 * allocation. Criterion assertions are only made on the test's main thread; workers record
 * failures with tu_fail(). */
#include <criterion/criterion.h>
#include <sched.h>
#include <sys/resource.h>

#include "core/internal.h"
#include "os/os.h"
#include "test_util.h"

#define ASSERT_NO_WORKER_FAILURE()                                                                                 \
    cr_assert_eq(atomic_load(&tu_fail_count), 0, "%lu worker failure(s), first: %s",                              \
                 (unsigned long)atomic_load(&tu_fail_count), tu_fail_msg)

/* mostly 8..1024, some to 64 KiB, a few to 1 MiB */
static size_t mixed_size(tu_rng_t *r)
{
    unsigned x = (unsigned)(tu_next(r) % 1000);
    if (x < 900)
        return tu_range(r, 8, 1024);
    if (x < 995)
        return tu_range(r, 1025, 64 * TU_KiB);
    return tu_range(r, 64 * TU_KiB + 1, TU_MiB);
}

static void start_threads(pthread_t *t, size_t n, void *(*fn)(void *), void *args, size_t arg_size)
{
    for (size_t i = 0; i < n; i++) {
        int e = pthread_create(&t[i], NULL, fn, (char *)args + i * arg_size);
        cr_assert_eq(e, 0, "pthread_create #%zu failed: %s", i, strerror(e));
    }
}

static void join_threads(pthread_t *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        pthread_join(t[i], NULL);
}

/* Warm the calling thread's heap up (so that baselines include its first segment). */
static void warm_up(void)
{
    void *v[64];
    for (size_t i = 0; i < 64; i++)
        v[i] = um_malloc(16 << (i % 12));
    for (size_t i = 0; i < 64; i++)
        um_free(v[i]);
}

/* ---- 1. 8 threads x 200k random malloc/free ------------------------------------------------- */
typedef struct {
    unsigned id;
    size_t ops, slots;
} mix_arg_t;

static void *mix_worker(void *argp)
{
    mix_arg_t *a = argp;
    tu_rng_t rng = tu_rng(a->id * 7919 + 1);
    tu_block_t *slot = calloc(a->slots, sizeof *slot);
    uint64_t salt = (uint64_t)a->id << 48;
    if (!slot) {
        tu_fail("thread %u: calloc failed", a->id);
        return NULL;
    }
    for (size_t op = 0; op < a->ops; op++) {
        size_t i = tu_next(&rng) % a->slots;
        tu_block_t *s = &slot[i];
        if (s->p) {
            long bad = tu_check(s->p, s->size, tu_seed(s->p, s->size) ^ salt);
            if (bad >= 0)
                tu_fail("thread %u op %zu: block %p (%zu B) corrupted at offset %ld", a->id, op, s->p, s->size, bad);
            um_free(s->p);
            s->p = NULL;
        } else {
            size_t n = mixed_size(&rng);
            void *p = um_malloc(n);
            if (!p) {
                tu_fail("thread %u op %zu: um_malloc(%zu) returned NULL", a->id, op, n);
                continue;
            }
            if (!tu_is_aligned(p, 16))
                tu_fail("thread %u: um_malloc(%zu) = %p not 16-aligned", a->id, n, p);
            tu_fill(p, n, tu_seed(p, n) ^ salt);
            s->p = p;
            s->size = n;
        }
    }
    for (size_t i = 0; i < a->slots; i++) {
        tu_block_t *s = &slot[i];
        if (!s->p)
            continue;
        long bad = tu_check(s->p, s->size, tu_seed(s->p, s->size) ^ salt);
        if (bad >= 0)
            tu_fail("thread %u: block %p (%zu B) corrupted at offset %ld at the end", a->id, s->p, s->size, bad);
        um_free(s->p);
    }
    free(slot);
    return NULL;
}

Test(threads, random_malloc_free_8_threads, .timeout = 170)
{
    enum { T = 8 };
    pthread_t th[T];
    mix_arg_t args[T];
    size_t ops = tu_pick(200000, 60000, 15000);
    tu_fail_reset();
    for (unsigned i = 0; i < T; i++)
        args[i] = (mix_arg_t){.id = i + 1, .ops = ops, .slots = 1000};
    double t0 = tu_now();
    start_threads(th, T, mix_worker, args, sizeof args[0]);
    /* um_get_totals races with the workers: it must not crash or return garbage */
    size_t polls = 0;
    for (int k = 0; k < 20; k++) {
        um_totals_t t = tu_totals();
        cr_assert_lt(t.live_bytes, (size_t)1 << 40, "live_bytes garbage while threads run: %zu", t.live_bytes);
        cr_assert_lt(t.mapped_bytes, (size_t)1 << 40, "mapped_bytes garbage while threads run: %zu", t.mapped_bytes);
        polls++;
        tu_sleep_ms(5);
    }
    join_threads(th, T);
    fprintf(stderr, "[threads/random_malloc_free_8_threads] %d x %zu ops in %.2f s (%zu totals polls)\n", T, ops,
            tu_now() - t0, polls);
    ASSERT_NO_WORKER_FAILURE();
    /* the heap is fine afterwards */
    void *p = um_malloc(100), *q = um_malloc(100000);
    cr_assert(p && q && p != q);
    um_free(p);
    um_free(q);
}

/* ---- 2. producer/consumer cross-thread frees ------------------------------------------------ */
#define RING 1024
typedef struct {
    _Alignas(64) atomic_size_t head; /* written by the producer */
    _Alignas(64) atomic_size_t tail; /* written by the consumer */
    _Alignas(64) tu_block_t buf[RING];
} ring_t;

typedef struct {
    unsigned id;
    size_t per_round, rounds;
    ring_t *ring;
    pthread_barrier_t *bar;
} pc_arg_t;

static void ring_push(ring_t *r, tu_block_t b)
{
    size_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
    while (h - atomic_load_explicit(&r->tail, memory_order_acquire) >= RING)
        sched_yield();
    r->buf[h % RING] = b;
    atomic_store_explicit(&r->head, h + 1, memory_order_release);
}

static tu_block_t ring_pop(ring_t *r)
{
    size_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    while (atomic_load_explicit(&r->head, memory_order_acquire) == t)
        sched_yield();
    tu_block_t b = r->buf[t % RING];
    atomic_store_explicit(&r->tail, t + 1, memory_order_release);
    return b;
}

static void *producer(void *argp)
{
    pc_arg_t *a = argp;
    tu_rng_t rng = tu_rng(a->id * 31 + 5);
    for (size_t round = 0; round < a->rounds; round++) {
        pthread_barrier_wait(a->bar);
        for (size_t i = 0; i < a->per_round; i++) {
            size_t n = tu_range(&rng, 8, 512);
            void *p = um_malloc(n);
            if (!p) {
                tu_fail("producer %u: um_malloc(%zu) returned NULL", a->id, n);
                n = 0;
            } else {
                tu_fill(p, n, tu_seed(p, n));
            }
            ring_push(a->ring, (tu_block_t){p, n});
        }
        pthread_barrier_wait(a->bar);
    }
    return NULL;
}

static void *consumer(void *argp)
{
    pc_arg_t *a = argp;
    for (size_t round = 0; round < a->rounds; round++) {
        pthread_barrier_wait(a->bar);
        for (size_t i = 0; i < a->per_round; i++) {
            tu_block_t b = ring_pop(a->ring);
            if (!b.p)
                continue;
            long bad = tu_check(b.p, b.size, tu_seed(b.p, b.size));
            if (bad >= 0)
                tu_fail("consumer %u: block %p (%zu B) from the producer corrupted at %ld", a->id, b.p, b.size, bad);
            um_free(b.p);
        }
        pthread_barrier_wait(a->bar);
    }
    return NULL;
}

Test(threads, producer_consumer_remote_frees_are_reused, .timeout = 170)
{
    enum { PAIRS = 2, ROUNDS = 3 };
    size_t total = tu_pick(2000000, 600000, 150000); /* objects per round, all pairs together */
    static ring_t rings[PAIRS];
    pthread_barrier_t bar;
    pthread_t th[2 * PAIRS];
    pc_arg_t args[2 * PAIRS];
    tu_fail_reset();
    warm_up();
    cr_assert_eq(pthread_barrier_init(&bar, NULL, 2 * PAIRS + 1), 0);
    for (unsigned i = 0; i < PAIRS; i++) {
        atomic_store(&rings[i].head, 0);
        atomic_store(&rings[i].tail, 0);
        args[i] = (pc_arg_t){i, total / PAIRS, ROUNDS, &rings[i], &bar};
        args[PAIRS + i] = (pc_arg_t){i, total / PAIRS, ROUNDS, &rings[i], &bar};
    }
    start_threads(th, PAIRS, producer, args, sizeof args[0]);
    start_threads(th + PAIRS, PAIRS, consumer, args + PAIRS, sizeof args[0]);
    size_t mapped[ROUNDS], rss[ROUNDS];
    for (size_t r = 0; r < ROUNDS; r++) {
        double t0 = tu_now();
        pthread_barrier_wait(&bar); /* start */
        pthread_barrier_wait(&bar); /* end: every object of the round has been freed */
        mapped[r] = tu_totals().mapped_bytes;
        rss[r] = tu_rss_bytes();
        fprintf(stderr, "[threads/producer_consumer] round %zu: %zu objects in %.2f s, mapped %.1f MiB, RSS %.1f MiB\n",
                r + 1, total, tu_now() - t0, tu_mib(mapped[r]), tu_mib(rss[r]));
    }
    join_threads(th, 2 * PAIRS);
    pthread_barrier_destroy(&bar);
    ASSERT_NO_WORKER_FAILURE();
    size_t slack_m = mapped[1] / 10 > 4 * TU_MiB ? mapped[1] / 10 : 4 * TU_MiB;
    cr_assert_leq(mapped[2], mapped[1] + slack_m,
                  "mapped_bytes grew from %.1f MiB (round 2) to %.1f MiB (round 3): remotely freed memory not reused",
                  tu_mib(mapped[1]), tu_mib(mapped[2]));
    size_t slack_r = rss[1] / 10 > 4 * TU_MiB ? rss[1] / 10 : 4 * TU_MiB;
    cr_assert_leq(rss[2], rss[1] + slack_r, "RSS grew from %.1f MiB (round 2) to %.1f MiB (round 3)", tu_mib(rss[1]),
                  tu_mib(rss[2]));
}

/* ---- 3. 64 short-lived threads leave live blocks to the main thread ---------------------------- */
typedef struct {
    unsigned id;
    size_t nblocks;
    tu_block_t *blocks;
} orphan_arg_t;

static size_t orphan_size(unsigned id, size_t k)
{
    tu_rng_t r = tu_rng(((uint64_t)id << 32) | k);
    if (k % 250 == 249)
        return tu_range(&r, 256 * TU_KiB, TU_MiB); /* 2 per thread */
    if (k % 12 == 11)
        return tu_range(&r, 4 * TU_KiB, 64 * TU_KiB);
    return tu_range(&r, 16, 2048);
}

static void *orphan_worker(void *argp)
{
    orphan_arg_t *a = argp;
    for (size_t k = 0; k < a->nblocks; k++) {
        size_t n = orphan_size(a->id, k);
        void *p = um_malloc(n);
        if (!p) {
            tu_fail("thread %u: um_malloc(%zu) returned NULL", a->id, n);
            a->blocks[k] = (tu_block_t){NULL, 0};
            continue;
        }
        tu_fill(p, n, tu_seed(p, n));
        a->blocks[k] = (tu_block_t){p, n};
    }
    return NULL; /* exits with its blocks still live */
}

Test(threads, short_lived_threads_leave_blocks_to_main, .timeout = 170)
{
    enum { T = 64 };
    const size_t nblocks = 500;
    pthread_t th[T];
    static orphan_arg_t args[T];
    tu_fail_reset();
    warm_up();
    um_trim(0);
    um_totals_t base = tu_totals();
    tu_block_t *all = calloc(T * nblocks, sizeof *all);
    cr_assert_not_null(all);
    for (unsigned i = 0; i < T; i++)
        args[i] = (orphan_arg_t){i, nblocks, all + i * nblocks};
    /* two waves of 32 */
    start_threads(th, T / 2, orphan_worker, args, sizeof args[0]);
    join_threads(th, T / 2);
    start_threads(th + T / 2, T / 2, orphan_worker, args + T / 2, sizeof args[0]);
    join_threads(th + T / 2, T / 2);
    ASSERT_NO_WORKER_FAILURE();

    um_totals_t peak = tu_totals();
    size_t live_req = 0;
    for (size_t i = 0; i < T * nblocks; i++)
        live_req += all[i].size;
    cr_assert_geq(peak.live_bytes, base.live_bytes + live_req, "live_bytes %zu with %zu bytes left by dead threads",
                  peak.live_bytes, live_req);
    cr_assert_geq(peak.live_blocks, base.live_blocks + T * nblocks, "live_blocks %zu with %zu blocks of dead threads",
                  peak.live_blocks, (size_t)T * nblocks);
    for (size_t i = 0; i < T * nblocks; i++) {
        long bad = tu_check(all[i].p, all[i].size, tu_seed(all[i].p, all[i].size));
        cr_assert_eq(bad, -1, "block %zu of dead thread %zu (%p, %zu B) corrupted at %ld", i % nblocks, i / nblocks,
                     all[i].p, all[i].size, bad);
        cr_assert_eq(um_owns(all[i].p), 1, "um_owns(block of a dead thread) != 1");
        cr_assert_geq(um_malloc_usable_size(all[i].p), all[i].size);
    }
    for (size_t i = 0; i < T * nblocks; i++)
        um_free(all[i].p);
    free(all);
    um_totals_t freed = tu_totals();
    cr_assert_eq(peak.live_blocks - freed.live_blocks, T * nblocks,
                 "freeing %zu blocks of dead threads took %zu off live_blocks", (size_t)T * nblocks,
                 peak.live_blocks - freed.live_blocks);

    /* the main thread allocates normally afterwards */
    enum { M = 20000 };
    tu_block_t *mine = calloc(M, sizeof *mine);
    cr_assert_not_null(mine);
    tu_rng_t rng = tu_rng(3);
    for (size_t i = 0; i < M; i++) {
        size_t n = tu_range(&rng, 1, 4000);
        mine[i] = (tu_block_t){um_malloc(n), n};
        cr_assert_not_null(mine[i].p);
        tu_fill(mine[i].p, n, tu_seed(mine[i].p, n));
    }
    for (size_t i = 0; i < M; i++) {
        long bad = tu_check(mine[i].p, mine[i].size, tu_seed(mine[i].p, mine[i].size));
        cr_assert_eq(bad, -1, "main-thread block %zu corrupted at %ld", i, bad);
    }
    long ov = tu_find_overlap(mine, M);
    cr_assert_eq(ov, -1, "main thread got overlapping blocks after reclaiming dead threads' memory");
    for (size_t i = 0; i < M; i++)
        um_free(mine[i].p);
    free(mine);

    um_trim(0);
    um_totals_t end = tu_totals();
    fprintf(stderr,
            "[threads/short_lived] mapped: base %.1f MiB, peak %.1f MiB, after trim %.1f MiB (committed %.1f MiB)\n",
            tu_mib(base.mapped_bytes), tu_mib(peak.mapped_bytes), tu_mib(end.mapped_bytes),
            tu_mib(end.committed_bytes));
    cr_assert_geq(peak.mapped_bytes, base.mapped_bytes + 100 * TU_MiB, "test did not allocate what it meant to");
    cr_assert_leq(end.mapped_bytes, base.mapped_bytes + 32 * TU_MiB,
                  "after um_trim(0) mapped_bytes is %.1f MiB, baseline %.1f MiB (peak %.1f MiB)",
                  tu_mib(end.mapped_bytes), tu_mib(base.mapped_bytes), tu_mib(peak.mapped_bytes));
}

/* ---- 6. a thread's memory comes back after it exits ------------------------------------------- */
typedef struct {
    size_t target;
    size_t peak_mapped;
    size_t peak_committed;
} bulk_arg_t;

static void *bulk_worker(void *argp)
{
    bulk_arg_t *a = argp;
    size_t cap = a->target / 16 + 16, n = 0, total = 0;
    tu_block_t *blk = malloc(cap * sizeof *blk);
    tu_rng_t rng = tu_rng(11);
    if (!blk) {
        tu_fail("malloc failed");
        return NULL;
    }
    while (total < a->target && n < cap) {
        size_t s = tu_range(&rng, 16, 1024);
        void *p = um_malloc(s);
        if (!p) {
            tu_fail("um_malloc(%zu) returned NULL after %zu bytes", s, total);
            break;
        }
        tu_fill(p, s, tu_seed(p, s));
        blk[n++] = (tu_block_t){p, s};
        total += s;
    }
    um_totals_t t = tu_totals();
    a->peak_mapped = t.mapped_bytes;
    a->peak_committed = t.committed_bytes;
    for (size_t i = 0; i < n; i++) {
        long bad = tu_check(blk[i].p, blk[i].size, tu_seed(blk[i].p, blk[i].size));
        if (bad >= 0)
            tu_fail("block %zu (%zu B) corrupted at %ld", i, blk[i].size, bad);
        um_free(blk[i].p);
    }
    free(blk);
    return NULL;
}

Test(threads, thread_exit_gives_memory_back, .timeout = 120)
{
    tu_fail_reset();
    warm_up();
    um_trim(0);
    um_totals_t base = tu_totals();
    bulk_arg_t arg = {.target = 64 * TU_MiB};
    pthread_t th;
    start_threads(&th, 1, bulk_worker, &arg, sizeof arg);
    join_threads(&th, 1);
    ASSERT_NO_WORKER_FAILURE();
    cr_assert_geq(arg.peak_mapped, base.mapped_bytes + 64 * TU_MiB, "peak mapped %.1f MiB: 64 MiB were not allocated?",
                  tu_mib(arg.peak_mapped));
    um_trim(0);
    um_totals_t end = tu_totals();
    fprintf(stderr, "[threads/thread_exit] mapped: base %.1f MiB, peak %.1f MiB, after exit+trim %.1f MiB; committed "
                    "base %.1f peak %.1f end %.1f MiB\n",
            tu_mib(base.mapped_bytes), tu_mib(arg.peak_mapped), tu_mib(end.mapped_bytes), tu_mib(base.committed_bytes),
            tu_mib(arg.peak_committed), tu_mib(end.committed_bytes));
    cr_assert_leq(end.mapped_bytes, base.mapped_bytes + 8 * TU_MiB,
                  "after thread exit and um_trim(0), mapped_bytes %.1f MiB vs %.1f MiB at the start",
                  tu_mib(end.mapped_bytes), tu_mib(base.mapped_bytes));
    cr_assert_leq(end.committed_bytes, base.committed_bytes + 8 * TU_MiB,
                  "after thread exit and um_trim(0), committed_bytes %.1f MiB vs %.1f MiB at the start",
                  tu_mib(end.committed_bytes), tu_mib(base.committed_bytes));
}

/* A thread that empties whole segments and exits: their memory goes back (purged), but the
 * segments stay mapped in the cache for the threads that come next. Unmapping them at every
 * exit cost a munmap and an mmap per segment and per thread, each taking the address-space lock
 * that every page fault of the other threads needs. */
/* Allocate n blocks of size, write them, free them all; false (and a worker failure) if one
 * allocation failed. */
static bool fill_write_free(size_t n, size_t size, int byte)
{
    void **v = calloc(n, sizeof *v);
    if (v == NULL) {
        tu_fail("calloc failed");
        return false;
    }
    bool ok = true;
    for (size_t i = 0; i < n && ok; i++) {
        v[i] = um_malloc(size);
        if (v[i] == NULL) {
            tu_fail("um_malloc(%zu) returned NULL", size);
            ok = false;
        } else {
            memset(v[i], byte, size);
        }
    }
    for (size_t i = 0; i < n; i++)
        um_free(v[i]); /* um_free(NULL) is a no-op */
    free(v);
    return ok;
}

static long thread_minor_faults(void)
{
    struct rusage ru;
    getrusage(RUSAGE_THREAD, &ru);
    return ru.ru_minflt;
}

typedef struct {
    size_t bytes; /* written and freed */
    long faults;  /* minor faults meanwhile */
} filler_arg_t;

static void *segment_filler(void *argp)
{
    filler_arg_t *a = argp;
    /* medium pages, 8 a segment: 800 blocks fill 2.4 segments (bigger blocks are the extent
     * arenas', which no thread owns: tests of their purging are in test/unit_extent.c) */
    enum { N = 800, SIZE = 12 << 10 };
    long f0 = thread_minor_faults();
    if (fill_write_free(N, SIZE, 0x5a))
        a->bytes = (size_t)N * SIZE;
    a->faults = thread_minor_faults() - f0;
    return NULL;
}

/* Threads that exit in a batch leave the segments they emptied resident, as many as the program
 * took lately (umi_segment_handoff_keep), and the next batch takes them without faulting their
 * pages in again; nothing is unmapped, and what stays resident is bounded, then purged once the
 * delay has passed. With two segments kept whatever the demand, every batch of three threads
 * faulted in most of its 7 segments anew. */
Test(threads, thread_exits_keep_emptied_segments_for_the_next_batch, .timeout = 60)
{
    /* the kept segments age with the delay, those past the first two with the base one: take a
     * loaded machine's slowness out of the test (read with the options, at the first malloc) */
    setenv("UMALLOC_PURGE_DELAY_MS", "2000", 1);
    tu_fail_reset();
    warm_up();
    cr_assert_eq(umi_purge_delay_base(), 2000, "precondition: UMALLOC_PURGE_DELAY_MS read at the first malloc");
    um_trim(0);
    size_t unmaps0 = atomic_load_explicit(&umi_os_stats.unmaps, memory_order_relaxed);
    size_t committed0 = tu_totals().committed_bytes;
    enum { ROUNDS = 3, BATCH = 3 };
    filler_arg_t arg[ROUNDS][BATCH];
    memset(arg, 0, sizeof arg);
    long faults[ROUNDS] = {0};
    size_t bytes = 0;
    for (int round = 0; round < ROUNDS; round++) {
        pthread_t th[BATCH];
        start_threads(th, BATCH, segment_filler, arg[round], sizeof arg[round][0]);
        join_threads(th, BATCH);
        ASSERT_NO_WORKER_FAILURE();
        for (int t = 0; t < BATCH; t++) {
            cr_assert_gt(arg[round][t].bytes, 2 * UM_SEGMENT_SIZE, "precondition: a thread fills 2 segments or more");
            faults[round] += arg[round][t].faults;
        }
        bytes = arg[round][0].bytes;
    }
    size_t unmaps = atomic_load_explicit(&umi_os_stats.unmaps, memory_order_relaxed) - unmaps0;
    size_t committed = tu_totals().committed_bytes;
    fprintf(stderr, "[threads/exits keep segments] faults a batch %ld, %ld, %ld; unmaps %zu; committed %.1f -> %.1f MiB\n",
            faults[0], faults[1], faults[2], unmaps, tu_mib(committed0), tu_mib(committed));
    cr_assert_eq(unmaps, 0, "%zu segments were unmapped at thread exit", unmaps);
    long fresh = (long)(BATCH * bytes / 4096); /* the pages a batch writes */
    cr_assert_geq(faults[0], fresh / 2, "precondition: the first batch faults its pages in (%ld faults)", faults[0]);
    for (int round = 1; round < ROUNDS; round++)
        cr_assert_leq(faults[round], faults[0] / 4, /* relative: TSan's shadow faults in too */
                      "batch %d faulted %ld times (the first %ld, %ld pages written): the segments the last batch "
                      "emptied were not reused", round + 1, faults[round], faults[0], fresh);
    cr_assert_lt(committed, committed0 + 4 * TU_MiB + (size_t)UM_HANDOFF_KEEP_MAX * UM_SEGMENT_SIZE,
                 "committed %.1f MiB after the threads, %.1f before", tu_mib(committed), tu_mib(committed0));
    /* Kept, not pinned: once the delay has passed, the cache's trim purges them. */
    __atomic_store_n(&umi_purge_delay_ms, 1, __ATOMIC_RELAXED);
    usleep(20000);
    umi_segment_cache_trim(false);
    cr_assert_lt(tu_totals().committed_bytes, committed0 + 4 * TU_MiB, "committed %.1f MiB after the delay, %.1f before",
                 tu_mib(tu_totals().committed_bytes), tu_mib(committed0));
}

/* What threads leave resident at their exit for the next batch waits for the base purge delay
 * (UMALLOC_PURGE_DELAY_MS), not for the delay learned from the program's cycles, but for the
 * first UM_HANDOFF_CACHE_KEEP segments: one that nobody comes for (a program whose threads only
 * exit) must not stay resident a learned second or two. */
Test(threads, segments_kept_at_exit_expire_after_the_base_delay, .timeout = 60)
{
    tu_fail_reset();
    warm_up();
    um_trim(0);
    size_t committed0 = tu_totals().committed_bytes;
    __atomic_store_n(&umi_purge_delay_ms, UM_PURGE_DELAY_MAX_MS, __ATOMIC_RELAXED); /* as if learned */
    enum { BATCH = 3 };
    filler_arg_t arg[BATCH];
    memset(arg, 0, sizeof arg);
    pthread_t th[BATCH];
    start_threads(th, BATCH, segment_filler, arg, sizeof arg[0]);
    join_threads(th, BATCH);
    ASSERT_NO_WORKER_FAILURE();
    size_t committed = tu_totals().committed_bytes;
    size_t two = UM_HANDOFF_CACHE_KEEP * UM_SEGMENT_SIZE;
    cr_assert_gt(committed, committed0 + two, "precondition: the exits kept more than %d segments (committed %.1f -> %.1f MiB)",
                 UM_HANDOFF_CACHE_KEEP, tu_mib(committed0), tu_mib(committed));
    usleep((useconds_t)(umi_purge_delay_base() + 20) * 1000);
    umi_segment_cache_trim(false);
    size_t after = tu_totals().committed_bytes;
    fprintf(stderr, "[threads/kept at exit expire] committed %.1f -> %.1f MiB, after the base delay %.1f MiB\n",
            tu_mib(committed0), tu_mib(committed), tu_mib(after));
    cr_assert_leq(after, committed0 + two + 4 * TU_MiB,
                  "committed %.1f MiB after the base delay (%.1f before the threads): the segments kept past the "
                  "first %d wait for the learned delay", tu_mib(after), tu_mib(committed0), UM_HANDOFF_CACHE_KEEP);
}

/* A thread hands its heap to the next one with a small free slot of each class resident: the
 * next thread takes the slot of a class it allocates again, and its blocks there cost no page
 * fault. Purged at the hand-off, every 4 KiB of them was faulted in again. */
enum { HANDOFF_BLOCKS = 50, HANDOFF_SIZE = 1000 }; /* one small page (55 blocks) of one class */

typedef struct {
    void *keep;        /* a block left live: the heap keeps its segment */
    uintptr_t lo, hi;  /* where the blocks lay (first thread), or lie (second) */
    long faults;       /* minor faults while allocating and writing them */
} handoff_arg_t;

static void *handoff_worker(void *argp)
{
    handoff_arg_t *a = argp;
    void *v[HANDOFF_BLOCKS];
    a->keep = um_malloc(64);
    long f0 = thread_minor_faults();
    a->lo = UINTPTR_MAX;
    a->hi = 0;
    for (size_t i = 0; i < HANDOFF_BLOCKS; i++) {
        v[i] = um_malloc(HANDOFF_SIZE);
        if (v[i] == NULL) {
            tu_fail("um_malloc(%d) returned NULL", HANDOFF_SIZE);
            return NULL;
        }
        memset(v[i], 0x33, HANDOFF_SIZE);
        if ((uintptr_t)v[i] < a->lo) a->lo = (uintptr_t)v[i];
        if ((uintptr_t)v[i] > a->hi) a->hi = (uintptr_t)v[i];
    }
    a->faults = thread_minor_faults() - f0;
    for (size_t i = 0; i < HANDOFF_BLOCKS; i++)
        um_free(v[i]);
    return NULL;
}

Test(threads, handed_off_heap_keeps_small_free_slots_resident, .timeout = 60)
{
    tu_fail_reset();
    /* The kept slots age with the purge delay under the next thread: on a loaded machine (the
     * sanitizer builds, tests run in parallel) starting that thread can take longer than the
     * default 100 ms, and the slots are then rightly purged. The longest delay takes time out
     * of what is tested. */
    um_free(um_malloc(1));
    __atomic_store_n(&umi_purge_delay_ms, UM_PURGE_DELAY_MAX_MS, __ATOMIC_RELAXED);
    handoff_arg_t first = {0}, second = {0};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, handoff_worker, &first), 0);
    pthread_join(th, NULL);
    ASSERT_NO_WORKER_FAILURE();
    cr_assert_eq(atomic_load(&umi_handed_count), 1, "precondition: the first thread handed its heap off");
    cr_assert_eq(pthread_create(&th, NULL, handoff_worker, &second), 0);
    pthread_join(th, NULL);
    ASSERT_NO_WORKER_FAILURE();
    fprintf(stderr, "[threads/handoff warm] first thread %ld faults, second %ld, for %d blocks of %d bytes\n",
            first.faults, second.faults, HANDOFF_BLOCKS, HANDOFF_SIZE);
    cr_assert(second.lo >= first.lo && second.hi <= first.hi,
              "the second thread's blocks [%#lx, %#lx] are not in the first one's slots [%#lx, %#lx]",
              (unsigned long)second.lo, (unsigned long)second.hi, (unsigned long)first.lo, (unsigned long)first.hi);
    cr_assert_geq(first.faults, 10, "precondition: fresh slots fault (%ld faults)", first.faults);
    cr_assert_leq(second.faults, 2, "%ld page faults for blocks in slots the first thread left resident",
                  second.faults);
    um_free(first.keep);
    um_free(second.keep);
}

/* ...but one slot a class only: a thread that freed a lot before it exited does not leave it
 * all resident in a heap that may wait long for its next thread. */
static void *free_many_then_exit(void *argp)
{
    void **keep = argp;
    *keep = um_malloc(64); /* the heap keeps its segment: only the slots can be purged */
    fill_write_free(600, HANDOFF_SIZE, 0x44); /* ~11 small pages of one class */
    return NULL;
}

Test(threads, handed_off_heap_keeps_one_free_slot_per_class, .timeout = 60)
{
    tu_fail_reset();
    void *keep = NULL;
    size_t purged0 = atomic_load_explicit(&umi_os_stats.purged_total, memory_order_relaxed);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, free_many_then_exit, &keep), 0);
    pthread_join(th, NULL);
    ASSERT_NO_WORKER_FAILURE();
    cr_assert_eq(atomic_load(&umi_handed_count), 1, "precondition: the thread handed its heap off");
    size_t purged = atomic_load_explicit(&umi_os_stats.purged_total, memory_order_relaxed) - purged0;
    fprintf(stderr, "[threads/handoff one a class] %.2f MiB purged at the hand-off\n", tu_mib(purged));
    cr_assert_geq(purged, (size_t)8 * UM_SMALL_PAGE_SIZE,
                  "only %.2f MiB purged: the hand-off kept more than one free slot of the class", tu_mib(purged));
    um_free(keep);
}

/* ---- um_thread_done ---------------------------------------------------------------------------- */
static void *thread_done_worker(void *argp)
{
    (void)argp;
    enum { N = 2000 };
    tu_block_t *first = calloc(N, sizeof *first), *second = calloc(N, sizeof *second);
    if (!first || !second) {
        tu_fail("calloc failed");
        return NULL;
    }
    for (size_t i = 0; i < N; i++) {
        size_t n = 1 + (i * 53) % 3000;
        first[i] = (tu_block_t){um_malloc(n), n};
        if (!first[i].p)
            tu_fail("um_malloc failed before um_thread_done");
        else
            tu_fill(first[i].p, n, tu_seed(first[i].p, n));
    }
    um_thread_done();
    um_thread_done(); /* twice is harmless */
    for (size_t i = 0; i < N; i++) {
        size_t n = 1 + (i * 71) % 3000;
        second[i] = (tu_block_t){um_malloc(n), n};
        if (!second[i].p)
            tu_fail("um_malloc failed after um_thread_done");
        else
            tu_fill(second[i].p, n, tu_seed(second[i].p, n));
    }
    for (size_t i = 0; i < N; i++) {
        tu_block_t *b[2] = {&first[i], &second[i]};
        for (int k = 0; k < 2; k++) {
            if (!b[k]->p)
                continue;
            long bad = tu_check(b[k]->p, b[k]->size, tu_seed(b[k]->p, b[k]->size));
            if (bad >= 0)
                tu_fail("%s block %zu corrupted at %ld", k ? "post" : "pre", i, bad);
        }
    }
    /* blocks from the given-back heap are freed after the thread got a fresh heap */
    for (size_t i = 0; i < N; i++)
        um_free(first[i].p);
    for (size_t i = 0; i < N; i++)
        um_free(second[i].p);
    free(first);
    free(second);
    return NULL;
}

Test(threads, thread_done_then_keep_allocating)
{
    tu_fail_reset();
    pthread_t th[2];
    start_threads(th, 2, thread_done_worker, NULL, 0);
    join_threads(th, 2);
    ASSERT_NO_WORKER_FAILURE();
    /* and on the main thread */
    thread_done_worker(NULL);
    ASSERT_NO_WORKER_FAILURE();
}

/* ---- realloc/free of blocks owned by another, still running, thread ---------------------------- */
enum { XR_N = 3000 };
typedef struct {
    tu_block_t set1[XR_N], set2[XR_N];
    pthread_barrier_t bar;
} xr_shared_t;

static void *xr_owner(void *argp)
{
    xr_shared_t *s = argp;
    for (size_t i = 0; i < XR_N; i++) {
        size_t n = 1 + (i * 97) % 20000;
        s->set1[i] = (tu_block_t){um_malloc(n), n};
        if (s->set1[i].p)
            tu_fill(s->set1[i].p, n, i);
        else
            tu_fail("owner: um_malloc(%zu) failed", n);
    }
    pthread_barrier_wait(&s->bar);
    /* allocate while the other thread reallocs and frees our blocks */
    for (size_t i = 0; i < XR_N; i++) {
        size_t n = 1 + (i * 31) % 20000;
        s->set2[i] = (tu_block_t){um_malloc(n), n};
        if (s->set2[i].p)
            tu_fill(s->set2[i].p, n, tu_seed(s->set2[i].p, n));
        else
            tu_fail("owner: um_malloc(%zu) failed", n);
    }
    pthread_barrier_wait(&s->bar);
    for (size_t i = 0; i < XR_N; i++) {
        long bad = tu_check(s->set2[i].p, s->set2[i].size, tu_seed(s->set2[i].p, s->set2[i].size));
        if (bad >= 0)
            tu_fail("owner: set2 block %zu corrupted at %ld", i, bad);
        um_free(s->set2[i].p);
    }
    return NULL;
}

static void *xr_other(void *argp)
{
    xr_shared_t *s = argp;
    pthread_barrier_wait(&s->bar);
    for (size_t i = 0; i < XR_N; i++) {
        tu_block_t b = s->set1[i];
        if (!b.p)
            continue;
        size_t to = (i % 3 == 0) ? b.size / 2 + 1 : b.size * 3 + 100;
        void *q = um_realloc(b.p, to);
        if (!q) {
            tu_fail("other: um_realloc(%zu -> %zu) failed", b.size, to);
            continue;
        }
        size_t keep = b.size < to ? b.size : to;
        long bad = tu_check(q, keep, i);
        if (bad >= 0)
            tu_fail("other: realloc of a foreign-thread block %zu (%zu -> %zu) lost content at %ld", i, b.size, to,
                    bad);
        um_free(q);
    }
    pthread_barrier_wait(&s->bar);
    return NULL;
}

Test(threads, realloc_and_free_blocks_of_a_live_thread)
{
    static xr_shared_t s;
    tu_fail_reset();
    cr_assert_eq(pthread_barrier_init(&s.bar, NULL, 2), 0);
    pthread_t th[2];
    cr_assert_eq(pthread_create(&th[0], NULL, xr_owner, &s), 0);
    cr_assert_eq(pthread_create(&th[1], NULL, xr_other, &s), 0);
    join_threads(th, 2);
    pthread_barrier_destroy(&s.bar);
    ASSERT_NO_WORKER_FAILURE();
}

/* ---- um_trim and um_get_totals while other threads allocate -------------------------------------- */
typedef struct {
    unsigned id;
    size_t ops;
    atomic_int *done;
} churn_arg_t;

static void *churn_worker(void *argp)
{
    churn_arg_t *a = argp;
    mix_arg_t m = {.id = a->id, .ops = a->ops, .slots = 300};
    mix_worker(&m);
    atomic_fetch_add(a->done, 1);
    return NULL;
}

Test(threads, trim_and_totals_race_with_allocation, .timeout = 120)
{
    enum { T = 2 };
    atomic_int done = 0;
    churn_arg_t args[T];
    pthread_t th[T];
    tu_fail_reset();
    for (unsigned i = 0; i < T; i++)
        args[i] = (churn_arg_t){100 + i, tu_pick(150000, 40000, 10000), &done};
    start_threads(th, T, churn_worker, args, sizeof args[0]);
    size_t trims = 0;
    while (atomic_load(&done) < T) {
        int r = um_trim(0);
        cr_assert(r == 0 || r == 1, "um_trim returned %d", r);
        um_totals_t t = tu_totals();
        cr_assert_lt(t.mapped_bytes, (size_t)1 << 40);
        trims++;
        tu_sleep_ms(1);
    }
    join_threads(th, T);
    fprintf(stderr, "[threads/trim_race] %zu trims during the run\n", trims);
    ASSERT_NO_WORKER_FAILURE();
}

/* A thread that exits hands its heap off whole, and the next new thread takes it over: the same
 * heap, its queues, counters and warm pages as they were (a heap from the pool would start
 * empty), and its first malloc of a class the exited thread used comes from that thread's page
 * (core/handoff.c). */
static um_heap_t *first_heap;
static uint32_t first_slow_calls;
static void *handoff_first(void *arg) {
    void **kept = arg;
    void *scratch[100];
    for (int i = 0; i < 100; i++) scratch[i] = um_malloc(i % 8 ? 256 : 20000);
    for (int i = 0; i < 50; i++) kept[i] = scratch[i];       /* live when the thread exits */
    for (int i = 50; i < 100; i++) um_free(scratch[i]);        /* free blocks in its pages */
    first_heap = umi_tl_heap;
    first_slow_calls = first_heap->slow_calls;
    return NULL;
}
static void *handoff_second(void *arg) {
    void **out = arg;
    out[0] = um_malloc(256);
    out[1] = umi_tl_heap;
    out[2] = (void *)(uintptr_t)umi_tl_heap->slow_calls;
    return NULL;
}
Test(threads, next_thread_takes_over_an_exited_threads_heap) {
    void *kept[50], *got[3];
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, handoff_first, kept), 0);
    pthread_join(t, NULL);
    cr_assert_gt(first_slow_calls, 1);
    cr_assert_eq(pthread_create(&t, NULL, handoff_second, got), 0);
    pthread_join(t, NULL);
    cr_assert_eq(got[1], first_heap, "the new thread did not take the exited thread's heap");
    cr_assert_geq((uintptr_t)got[2], first_slow_calls, "the heap was reset, not handed over whole");
    cr_assert_eq(umi_segment_of(got[0]), umi_segment_of(kept[1]), "the block is not from the exited thread's segment");
    for (int i = 0; i < 50; i++) um_free(kept[i]);
    um_free(got[0]);
}

/* ---- remote frees not yet collected ------------------------------------------------------- */
/* What other threads freed into a page sits on the page's remote list until its owner next
 * refills from it. The list's length travels with its head in one word (UM_TF_COUNT): the
 * owner takes the list over without walking it, and the statistics count those frees without
 * walking another thread's list (which they skipped under TSan, calling the blocks live). */
typedef struct {
    void *blocks[200];
    pthread_barrier_t bar;
} held_t;

static void *hold_blocks(void *argp)
{
    held_t *h = argp;
    for (size_t i = 0; i < 200; i++)
        h->blocks[i] = um_malloc(48);
    pthread_barrier_wait(&h->bar); /* allocated */
    pthread_barrier_wait(&h->bar); /* main freed them: stay alive, collect nothing */
    return NULL;
}

Test(threads, remote_frees_into_a_live_threads_pages_are_counted_at_once, .timeout = 60)
{
    static held_t h;
    cr_assert_eq(pthread_barrier_init(&h.bar, NULL, 2), 0);
    um_totals_t base = tu_totals();
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, hold_blocks, &h), 0);
    pthread_barrier_wait(&h.bar);
    for (size_t i = 0; i < 200; i++)
        cr_assert_not_null(h.blocks[i]);
    um_totals_t held = tu_totals();
    cr_assert_eq(held.live_blocks, base.live_blocks + 200, "200 blocks allocated: live %zu -> %zu", base.live_blocks,
                 held.live_blocks);

    for (size_t i = 0; i < 200; i++)
        um_free(h.blocks[i]); /* remote: the owner is alive and waits */
    size_t listed = 0;
    for (size_t i = 0; i < 200; i++) { /* each page once: its word counts its remote list */
        um_page_t *page = umi_page_of(umi_segment_of(h.blocks[i]), h.blocks[i]);
        size_t j = 0;
        while (j < i && umi_page_of(umi_segment_of(h.blocks[j]), h.blocks[j]) != page)
            j++;
        if (j == i)
            listed += UM_TF_COUNT(atomic_load(&page->thread_free));
    }
    cr_assert_eq(listed, 200, "the remote lists' words count %zu blocks, 200 were freed", listed);
    um_totals_t freed = tu_totals();
    cr_assert_eq(freed.live_blocks, base.live_blocks,
                 "all 200 freed by this thread, none collected by their owner: live %zu, %zu before", freed.live_blocks,
                 base.live_blocks);
    pthread_barrier_wait(&h.bar);
    pthread_join(t, NULL);
    pthread_barrier_destroy(&h.bar);
}
