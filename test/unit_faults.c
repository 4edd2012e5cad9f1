/* A failing OS never corrupts the heap. Every kind of system call the OS layer makes (mmap,
 * munmap, madvise, mremap, mprotect, mlock2: os/sys.h; refused hugetlb mappings and locks are
 * test/unit_hugepages.c's) is failed on purpose (os/fault.h, test builds
 * only) while a mixed two-thread workload runs:
 *  - the Nth call of the kind, for each N of the first 200 calls (fewer in the sanitizer builds,
 *    which run every step 3-10x slower: every 20th under ASan, every 100th under TSan);
 *  - 1 % of all calls, at random, over 2 * 10^5 operations (10^6 with UM_FAULTS_RANDOM_OPS).
 * Every allocation then either succeeds, with its contents intact, or returns NULL with errno
 * ENOMEM (a failed realloc leaves the old block as it was); nothing crashes; um_check_heap()
 * finds the heap consistent; and once the failures stop, the same workload runs with no NULL
 * at all ("full service"). */
#include <criterion/criterion.h>

#include "core/internal.h"
#include "os/fault.h"
#include "test_util.h"

#define SLOTS 256
#define PASS_MAX 64 /* blocks in flight from one thread to the other */
#define AFTER_FAILURE 200 /* operations a run goes on for after its failed call */

typedef struct {
    void *p;
    size_t size;
    uint64_t seed;
} block_t;

/* Blocks one thread hands to the other to free (cross-thread frees). */
typedef struct {
    pthread_mutex_t lock;
    block_t items[PASS_MAX];
    size_t count;
} mailbox_t;

typedef struct {
    uint64_t seed;
    size_t ops;
    /* Stop early, AFTER_FAILURE operations after the call of kind `until_call` numbered
     * `until_n` was made (that is the one failed): the run need not go on for long once the
     * failure is handled. until_n = UINT64_MAX: run all ops. */
    um_sys_call_t until_call;
    uint64_t until_n;
    mailbox_t *inbox, *outbox;
    size_t nulls; /* allocations that returned NULL (each with errno ENOMEM, or it is a failure) */
} worker_t;

/* Only the head and the tail of a block carry the pattern: enough to see a block lost, moved
 * or shared, at a cost that does not grow with the multi-MiB blocks. */
#define EDGE 128
static void mark(block_t *b) {
    size_t n = b->size < 2 * EDGE ? b->size : EDGE;
    tu_fill(b->p, n, b->seed);
    if (b->size >= 2 * EDGE) tu_fill((char *)b->p + b->size - EDGE, EDGE, b->seed ^ 1);
}
static bool intact(const block_t *b, size_t size) {
    size_t n = size < 2 * EDGE ? size : EDGE;
    if (tu_check(b->p, n, b->seed) >= 0) return false;
    return size < 2 * EDGE || size != b->size || tu_check((char *)b->p + size - EDGE, EDGE, b->seed ^ 1) < 0;
}

static size_t pick_size(tu_rng_t *r) {
    /* Many huge blocks, each a few system calls, so that a run reaches its 200th call of every
     * kind soon; few big pooled ones, whose reallocs copy. */
    size_t k = tu_range(r, 0, 99);
    if (k < 55) return tu_range(r, 1, 1024);
    if (k < 78) return tu_range(r, 1025, 64 * TU_KiB);
    if (k < 82) return tu_range(r, 64 * TU_KiB, 512 * TU_KiB);
    if (k < 95) return tu_range(r, 512 * TU_KiB, 640 * TU_KiB); /* huge: mmap, mremap, the piece cache */
    return tu_range(r, 2 * TU_MiB, 2 * TU_MiB + 256 * TU_KiB);   /* THP advice (madvise) */
}

static void release(block_t *b) {
    if (b->p == NULL) return;
    if (!intact(b, b->size)) tu_fail("block %p of %zu bytes changed while it was live", b->p, b->size);
    um_free(b->p);
    b->p = NULL;
}

/* An allocation came back NULL: the one answer allowed is ENOMEM. */
static void refused(worker_t *w, const char *what, size_t size) {
    if (errno != ENOMEM) tu_fail("%s(%zu) returned NULL with errno %d, not ENOMEM", what, size, errno);
    w->nulls++;
}

static void *worker_main(void *arg) {
    worker_t *w = arg;
    tu_rng_t r = tu_rng(w->seed);
    block_t slots[SLOTS] = {{0}};
    size_t stop = w->ops;
    for (size_t op = 0; op < stop; op++) {
        if (stop == w->ops && w->until_n != UINT64_MAX && umi_fault_calls(w->until_call) > w->until_n)
            stop = op + AFTER_FAILURE < w->ops ? op + AFTER_FAILURE : w->ops;
        block_t *b = &slots[tu_range(&r, 0, SLOTS - 1)];
        size_t k = tu_range(&r, 0, 99), size = pick_size(&r);
        if (k < 45) { /* malloc, or calloc, into the slot */
            release(b);
            bool zeroed = k < 15;
            if (zeroed && size > 4 * TU_KiB && tu_range(&r, 0, 9) != 0) size = size % (4 * TU_KiB) + 1; /* clearing MiBs costs */
            errno = 0;
            void *p = zeroed ? um_calloc(1, size) : um_malloc(size);
            if (p == NULL) { refused(w, zeroed ? "calloc" : "malloc", size); continue; }
            if (zeroed && tu_check_byte(p, size < 4096 ? size : 4096, 0) >= 0) tu_fail("calloc(%zu) gave %p not zeroed", size, p);
            *b = (block_t){p, size, tu_next(&r)};
            mark(b);
        } else if (k < 65) { /* realloc: grow or shrink, from small to huge and back */
            if (b->p == NULL) continue;
            if (b->size >= 512 * TU_KiB && k < 58) size = b->size + tu_range(&r, 1, b->size / 8); /* mremap grows it */
            else if (b->size >= 64 * TU_KiB && size < 512 * TU_KiB) size = tu_range(&r, 1, 1024); /* a copy, but a short one */
            errno = 0;
            void *p = um_realloc(b->p, size);
            if (p == NULL) {
                refused(w, "realloc", size);
                if (!intact(b, b->size)) tu_fail("a failed realloc changed its block");
                continue;
            }
            size_t kept = size < b->size ? size : b->size;
            if (tu_check(p, kept < EDGE ? kept : EDGE, b->seed) >= 0) tu_fail("realloc(%zu) lost the block's head", size);
            *b = (block_t){p, size, tu_next(&r)};
            mark(b);
        } else if (k < 90) {
            release(b);
        } else if (k < 97) { /* hand the block to the other thread, which frees it */
            if (b->p == NULL) continue;
            pthread_mutex_lock(&w->outbox->lock);
            if (w->outbox->count < PASS_MAX) { w->outbox->items[w->outbox->count++] = *b; b->p = NULL; }
            pthread_mutex_unlock(&w->outbox->lock);
        } else if (k < 99) { /* free what the other thread handed over */
            pthread_mutex_lock(&w->inbox->lock);
            while (w->inbox->count > 0) release(&w->inbox->items[--w->inbox->count]);
            pthread_mutex_unlock(&w->inbox->lock);
        } else if (tu_range(&r, 0, 4) == 0) {
            um_trim(0); /* purges and unmaps now: madvise and munmap on demand */
        }
    }
    for (size_t i = 0; i < SLOTS; i++) release(&slots[i]); /* the thread then exits: hand-off */
    return NULL;
}

/* Two threads, `ops` operations each (or fewer: see worker_t.until_n); returns the allocations
 * that came back NULL. */
static size_t run_workload_until(uint64_t seed, size_t ops, um_sys_call_t until_call, uint64_t until_n) {
    static mailbox_t box[2] = {{.lock = PTHREAD_MUTEX_INITIALIZER}, {.lock = PTHREAD_MUTEX_INITIALIZER}};
    worker_t w[2] = {{.seed = seed, .ops = ops, .until_call = until_call, .until_n = until_n, .inbox = &box[0], .outbox = &box[1]},
                     {.seed = seed + 1, .ops = ops, .until_call = until_call, .until_n = until_n, .inbox = &box[1], .outbox = &box[0]}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++) cr_assert_eq(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < 2; i++)
        while (box[i].count > 0) release(&box[i].items[--box[i].count]);
    return w[0].nulls + w[1].nulls;
}
static size_t run_workload(uint64_t seed, size_t ops) { return run_workload_until(seed, ops, UM_SYS_MMAP, UINT64_MAX); }

/* After a run with failures: nothing went wrong, the heap is consistent, and a run without
 * failures gets every byte it asks for. */
static void assert_recovered(const char *plan) {
    cr_assert_eq(atomic_load(&tu_fail_count), 0, "%s: %s", plan, tu_fail_msg);
    cr_assert_eq(um_check_heap(), 0, "%s: the heap checker found problems (stderr)", plan);
    size_t nulls = run_workload(99, 200);
    cr_assert_eq(atomic_load(&tu_fail_count), 0, "%s, then no failures: %s", plan, tu_fail_msg);
    cr_assert_eq(nulls, 0, "%s, then no failures: %zu allocations still failed", plan, nulls);
    cr_assert_eq(um_check_heap(), 0, "%s, then no failures: heap check (stderr)", plan);
}

#define NTH_CALLS 200
#define NTH_OPS 40000 /* enough for 200 calls of every kind; a run stops soon after its failure */

/* Fail the nth call of one kind, for each n of the first 200 (a step of them in the sanitizer
 * builds). Returns how many of the runs had a call failed: a kind the workload never calls gets
 * none, and the test says so instead of passing on nothing. */
static void fail_each_of_the_first_calls(um_sys_call_t call) {
    size_t step = tu_pick(1, 20, 100), failed_runs = 0;
    uint64_t calls_seen = 0;
    for (size_t n = 0; n < NTH_CALLS; n += step) {
        tu_fail_reset();
        umi_fault_arm(UM_FAULT_NTH, call, n, 0);
        size_t nulls = run_workload_until(n * 7 + 1, NTH_OPS, call, n);
        um_fault_stats_t s = umi_fault_disarm();
        calls_seen = s.calls[call];
        failed_runs += s.failed[call] != 0;
        char plan[96];
        snprintf(plan, sizeof plan, "%s call #%zu failed (%zu NULLs)", umi_fault_call_name(call), n, nulls);
        assert_recovered(plan);
    }
    size_t runs = (NTH_CALLS + step - 1) / step;
    cr_log_info("%s: %zu of %zu runs had their call failed (the last run made %llu such calls)", umi_fault_call_name(call),
                failed_runs, runs, (unsigned long long)calls_seen);
    cr_assert_eq(failed_runs, runs, "the workload made fewer than %d calls of %s: not every one was failed", NTH_CALLS, umi_fault_call_name(call));
}

Test(faults, mmap_fails_at_each_of_the_first_200_calls, .timeout = 600) { fail_each_of_the_first_calls(UM_SYS_MMAP); }
Test(faults, munmap_fails_at_each_of_the_first_200_calls, .timeout = 600) { fail_each_of_the_first_calls(UM_SYS_MUNMAP); }
Test(faults, madvise_fails_at_each_of_the_first_200_calls, .timeout = 600) { fail_each_of_the_first_calls(UM_SYS_MADVISE); }
Test(faults, mremap_fails_at_each_of_the_first_200_calls, .timeout = 600) { fail_each_of_the_first_calls(UM_SYS_MREMAP); }

/* mprotect is in the OS layer for the hardened build's guard pages; the normal build never
 * calls it, which this checks rather than assumes. */
Test(faults, mprotect_is_not_called_by_this_build) {
    umi_fault_arm(UM_FAULT_FROM, UM_SYS_MPROTECT, 0, 0);
    run_workload(5, 2000);
    um_fault_stats_t s = umi_fault_disarm();
    cr_assert_eq(s.calls[UM_SYS_MPROTECT], 0, "mprotect is called now: give it a test like the others");
    assert_recovered("mprotect refused");
}

/* Every call of a kind fails from the start: the allocator lives on what it has, then says
 * ENOMEM, and comes back when the kernel does. */
Test(faults, every_call_fails_for_a_while, .timeout = 300) {
    for (int call = 0; call < UM_SYS_COUNT; call++) {
        tu_fail_reset();
        umi_fault_arm(UM_FAULT_FROM, (um_sys_call_t)call, 0, 0);
        size_t nulls = run_workload((uint64_t)call + 11, 2000);
        umi_fault_disarm();
        char plan[96];
        snprintf(plan, sizeof plan, "every %s failing (%zu NULLs)", umi_fault_call_name((um_sys_call_t)call), nulls);
        assert_recovered(plan);
    }
}

/* 1 % of every kind of call at random: over 2 * 10^5 operations in `make test` (fewer under
 * the sanitizers), over as many as UM_FAULTS_RANDOM_OPS says when set (10^6 for the issue's
 * acceptance: about 50 s). */
Test(faults, one_percent_at_random, .timeout = 900) {
    const char *want = getenv("UM_FAULTS_RANDOM_OPS");
    size_t total = want ? strtoull(want, NULL, 10) : tu_pick(200000, 50000, 10000);
    if (total < 2) total = 2;
    size_t per_run = total / 2 < 50000 ? total / 2 : 50000, runs = total / (2 * per_run); /* per thread */
    uint64_t failed = 0, calls = 0;
    for (size_t i = 0; i < runs; i++) {
        tu_fail_reset();
        umi_fault_arm(UM_FAULT_RANDOM, UM_SYS_MMAP, 10000, 0x5eed + i);
        run_workload(1000 + i, per_run);
        um_fault_stats_t s = umi_fault_disarm();
        for (int k = 0; k < UM_SYS_COUNT; k++) { failed += s.failed[k]; calls += s.calls[k]; }
        char plan[64];
        snprintf(plan, sizeof plan, "random 1%% failures, run %zu", i);
        assert_recovered(plan);
    }
    cr_log_info("random: %llu of %llu system calls failed over %zu operations", (unsigned long long)failed,
                (unsigned long long)calls, runs * 2 * per_run);
    cr_assert_gt(failed, 0, "no call failed: nothing was tested");
}

/* A purge the kernel refused leaves the memory as it was: what was purged is taken to read
 * zero (a clean page slot; a cached huge mapping, which calloc then does not clear), so a
 * refused purge must not count as one. */
Test(faults, refused_purge_keeps_calloc_zeroed) {
    enum { SIZE = 12 << 20 }; /* both blocks too big for a thread to keep (core/huge.c): to the cache */
    void *big = um_malloc(SIZE), *other = um_malloc(SIZE / 2); /* too small to serve the calloc */
    cr_assert(big != NULL && other != NULL);
    memset(big, 0xa5, SIZE);
    um_free(big); /* into the huge-block cache, resident */
    umi_fault_arm(UM_FAULT_FROM, UM_SYS_MADVISE, 0, 0);
    tu_sleep_ms((unsigned)umi_purge_delay() + 35); /* past the purge delay: the next huge free purges the cached piece */
    um_free(other);
    um_fault_stats_t s = umi_fault_disarm();
    cr_assert_gt(s.failed[UM_SYS_MADVISE], 0, "no purge was attempted: nothing was tested");
    void *z = um_calloc(1, SIZE);
    cr_assert_not_null(z);
    long at = tu_check_byte(z, SIZE, 0);
    cr_assert_lt(at, 0, "calloc(%d) at %p holds old bytes at offset %ld", SIZE, z, at);
    um_free(z);
    cr_assert_eq(um_check_heap(), 0);
}
