/* Races and orderings that once broke umalloc, each forced here rather than left to luck. The
 * core's test builds (UM_DEBUG) let a test pause a thread between the steps of a protocol
 * (UM_TEST_HOOK) and check the lock order at every acquisition (base/lock.h), so each test
 * drives the one interleaving that used to fail:
 *  - delayed_free_wakeup_survives_a_refill: a page that fills up again while a remote free is
 *    still waking its owner for the page's previous stay in "full";
 *  - retire_waits_for_a_remote_free: the owner empties and retires a page that a remote free is
 *    still touching;
 *  - fork_child_thread_with_a_dead_threads_id: after fork, a new thread whose thread pointer is
 *    that of a parent thread whose heap is still registered;
 *  - backup_heap_allocation_keeps_the_lock_order: allocations after a thread's exit hook (the
 *    backup heap's lock held) that carve enough to ask for a statistics sample;
 *  - lowered_address_space_limit_leaves_room: RLIMIT_AS lowered after start-up;
 *  - deferred_dump_waits_for_a_safe_point: a statistics dump deferred by a signal that came
 *    while a lock was held runs at the next allocation slow path, not inside the unlock;
 *  - dump_in_a_thread_with_a_cancel_pending: the statistics handler runs in a thread with a
 *    cancel pending, and neither it nor a later dump is cut short;
 *  - segment_cached_during_a_trim_is_not_taken_for_old, and the same for a huge block and a
 *    heap handed off during a sweep: an entry stamped after a walk read the clock;
 *  - segment_map_leaf_made_by_another_thread_meanwhile: two threads make the same leaf of the
 *    segment map at once (from the .bss pool, then mapped, the OS refusing the second one's). */
#include <criterion/criterion.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "core/check.h"
#include "core/internal.h"
#include "os/fault.h"
#include "os/os.h"
#include "test_util.h"

/* ---- a remote freer paused between its steps ------------------------------------------------ */
static __thread int tl_pause_at = -1;     /* the hook point this thread stops at, once */
static _Atomic int freer_paused, freer_release;
static _Atomic int slot_after_pause = -1; /* the page's slot state when the freer went on */

static void pause_hook(int point, void *arg) {
    if (point != tl_pause_at) return;
    tl_pause_at = -1;
    atomic_store(&freer_paused, 1);
    while (!atomic_load(&freer_release)) sched_yield();
    um_page_t *page = arg;
    atomic_store(&slot_after_pause, UM_SHARED_READ(page->slot));
}

typedef struct {
    void *block;
    int pause_at;
} freer_arg_t;

static void *freer_main(void *argp) {
    freer_arg_t *a = argp;
    tl_pause_at = a->pause_at;
    um_free(a->block);
    return NULL;
}

/* Let the paused freer go on after `ms`, whatever the main thread is doing by then (the fixed
 * code makes it wait for the freer; the old code did not). */
static void *releaser_main(void *arg) {
    tu_sleep_ms((unsigned)(uintptr_t)arg);
    atomic_store(&freer_release, 1);
    return NULL;
}

static um_page_t *page_of(void *p) { return umi_page_of(umi_segment_of(p), p); }
static unsigned delay_state(um_page_t *page) { return (unsigned)(atomic_load(&page->thread_free) & 3); }
static int in_full(um_page_t *page) { return (atomic_load(&UM_PAGE_OWNER(page)) & UM_PAGE_IN_FULL) != 0; }

/* Fill a fresh page P of 4 KiB blocks until the next block comes from another page: P is then
 * out of its queue ("full", delay state USE). blocks[0..*n) are P's; returns that next block. */
static void *fill_a_page(void **blocks, size_t *n, size_t cap) {
    *n = 0;
    blocks[(*n)++] = um_malloc(4096);
    um_page_t *P = page_of(blocks[0]);
    for (;;) {
        void *p = um_malloc(4096);
        cr_assert_not_null(p);
        if (page_of(p) != P) {
            cr_assert(in_full(P) && delay_state(P) == UM_DELAY_USE, "precondition: the filled page is in \"full\"");
            return p;
        }
        cr_assert(*n < cap);
        blocks[(*n)++] = p;
    }
}

/* Start a remote free of `block` that stops right after putting it on the owner's delayed
 * list, and wait until it has. */
static pthread_t start_paused_free(freer_arg_t *arg, void *block) {
    atomic_store(&freer_paused, 0);
    atomic_store(&freer_release, 0);
    umi_test_hook = pause_hook;
    *arg = (freer_arg_t){block, UM_HOOK_REMOTE_PUSHED};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, freer_main, arg), 0);
    double until = tu_now() + 10;
    while (!atomic_load(&freer_paused) && tu_now() < until) sched_yield();
    cr_assert(atomic_load(&freer_paused), "the remote free never reached its hook");
    return t;
}

Test(races, delayed_free_wakeup_survives_a_refill, .timeout = 60) {
    void *blocks[64];
    size_t n;
    void *q1 = fill_a_page(blocks, &n, 64);
    um_page_t *P = page_of(blocks[0]);
    um_heap_t *heap = umi_tl_heap;

    freer_arg_t fa;
    pthread_t freer = start_paused_free(&fa, blocks[0]); /* P's state is FREEING until it goes on */
    umi_heap_collect_delayed(heap);                       /* blocks[0] is back: P leaves "full" */
    cr_assert(!in_full(P));
    um_free(q1);
    um_trim(0); /* q1's page, now empty, is retired: P is its bin's first page */
    cr_assert_eq(heap->queues[P->bin].first, P);
    cr_assert_eq(um_malloc(4096), blocks[0], "the block freed last goes out first");

    /* P has no free block: this malloc's refill moves it to "full" again, while the freer of
     * its previous stay has not yet reset FREEING. */
    pthread_t releaser;
    cr_assert_eq(pthread_create(&releaser, NULL, releaser_main, (void *)(uintptr_t)100), 0);
    void *other = um_malloc(4096);
    cr_assert_not_null(other);
    pthread_join(freer, NULL);
    pthread_join(releaser, NULL);
    umi_test_hook = NULL;

    cr_assert(in_full(P));
    cr_assert_eq(delay_state(P), UM_DELAY_USE,
                 "a page in \"full\" must wake its owner at the next remote free (delay state %u)", delay_state(P));
    /* And it does: another thread frees one of P's blocks; the owner gets it back. */
    freer_arg_t fb = {blocks[1], -1};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, freer_main, &fb), 0);
    pthread_join(t, NULL);
    umi_heap_collect_delayed(heap);
    cr_assert(!in_full(P), "the remote free into the full page was lost: the page stays full for good");
}

Test(races, retire_waits_for_a_remote_free, .timeout = 60) {
    void *blocks[64];
    size_t n;
    void *q1 = fill_a_page(blocks, &n, 64);
    um_page_t *P = page_of(blocks[0]);

    freer_arg_t fa;
    pthread_t freer = start_paused_free(&fa, blocks[0]);
    umi_heap_collect_delayed(umi_tl_heap);
    pthread_t releaser;
    cr_assert_eq(pthread_create(&releaser, NULL, releaser_main, (void *)(uintptr_t)100), 0);
    /* P empties; q1 keeps the other page busy. P is retired by the last free (outside the
     * small-page region, as under the sanitizers) or by the trim's sweep. */
    for (size_t i = 1; i < n; i++) um_free(blocks[i]);
    um_trim(0);
    pthread_join(freer, NULL);
    pthread_join(releaser, NULL);
    umi_test_hook = NULL;
    cr_assert_eq(atomic_load(&slot_after_pause), UM_SLOT_USED,
                 "P was retired (slot state %d) while a remote free still had to write to it",
                 atomic_load(&slot_after_pause));
    cr_assert_neq(P->slot, UM_SLOT_USED, "P should be retired by now");
    um_free(q1);
}

/* ---- fork ------------------------------------------------------------------------------------ */
#define FORK_BLOCKS 3000
#define FORK_MEDIUM 4 /* blocks of 12 KiB: one medium page */
static void *parent_blocks[FORK_BLOCKS], *parent_medium[FORK_MEDIUM];
static _Atomic uintptr_t parent_tid;
static _Atomic int parent_ready, parent_exit;

static void *parent_thread(void *arg) {
    (void)arg;
    for (size_t i = 0; i < FORK_BLOCKS; i++) { /* 3 pages of 64-byte blocks: two of them full */
        parent_blocks[i] = um_malloc(64);
        memset(parent_blocks[i], 0x5a, 64);
    }
    for (size_t i = 0; i < FORK_MEDIUM; i++) parent_medium[i] = um_malloc(12 << 10);
    atomic_store(&parent_tid, umi_thread_id());
    atomic_store(&parent_ready, 1);
    while (!atomic_load(&parent_exit)) tu_sleep_ms(1);
    return NULL;
}

/* Every page queued in the calling thread's heap belongs to that heap. */
static int heap_is_consistent(void) {
    um_heap_t *heap = umi_tl_heap;
    for (size_t bin = 1; bin < UM_BIN_COUNT; bin++)
        for (um_page_t *page = heap->queues[bin].first; page != NULL; page = page->next)
            if (atomic_load(&page->heap) != heap || atomic_load(&umi_segment_of(page)->heap) != heap) return 0;
    return 1;
}

static _Atomic int child_result;
static void *child_thread(void *arg) {
    uintptr_t dead_tid = (uintptr_t)arg;
    int same_tid = umi_thread_id() == dead_tid;
    static void *mine[FORK_BLOCKS];
    mine[0] = um_malloc(64); /* a heap of its own first */
    void *medium = um_malloc(12 << 10); /* and a medium page of the parent's medium class */
    for (size_t i = 0; i < FORK_BLOCKS; i++) um_free(parent_blocks[i]);
    for (size_t i = 0; i < FORK_MEDIUM; i++) um_free(parent_medium[i]); /* the last empties the dead one's page */
    for (size_t i = 1; i < FORK_BLOCKS; i++) mine[i] = um_malloc(64);
    int ok = heap_is_consistent() && umi_check_heap(true) == 0;
    for (size_t i = 0; i < FORK_BLOCKS; i++) um_free(mine[i]);
    um_free(medium);
    ok = ok && heap_is_consistent() && umi_check_heap(true) == 0;
    atomic_store(&child_result, !ok ? 1 : !same_tid ? 2 : 0);
    return NULL;
}

Test(races, fork_child_thread_with_a_dead_threads_id, .timeout = 120) {
    if (tu_is_tsan())
        cr_skip("SKIPPED under TSan: its runtime stops a forked child whose new thread reuses a dead "
                "thread's id (\"dup thread with used id\"), which is the very case tested here");
    pthread_t pt;
    cr_assert_eq(pthread_create(&pt, NULL, parent_thread, NULL), 0);
    while (!atomic_load(&parent_ready)) tu_sleep_ms(1);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        pthread_t ct;
        if (pthread_create(&ct, NULL, child_thread, (void *)atomic_load(&parent_tid)) != 0) _exit(3);
        pthread_join(ct, NULL);
        _exit(atomic_load(&child_result));
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    atomic_store(&parent_exit, 1);
    pthread_join(pt, NULL);
    cr_assert(WIFEXITED(status), "the child died (status 0x%x)", status);
    if (WEXITSTATUS(status) == 2)
        cr_skip("SKIPPED: the child's thread did not get the dead thread's thread pointer, so this glibc "
                "does not reuse stacks after fork the way the test needs (the heap stayed consistent)");
    cr_assert_neq(WEXITSTATUS(status), 3, "the child could not start a thread");
    cr_assert_eq(WEXITSTATUS(status), 0,
                 "the child's new thread (same thread pointer as a dead parent thread) spliced the dead "
                 "thread's pages into its own heap (child exit %d)", WEXITSTATUS(status));
}

/* ---- the backup heap and the lock order ------------------------------------------------------ */
static pthread_key_t late_key;
static _Atomic int late_ran, late_on_backup;

/* A destructor of a key made after umalloc's own, so it runs after umalloc's exit hook: its
 * allocations go to the backup heap, under its lock. 4 MiB of fresh small blocks carve far
 * past the 1 MiB at which the statistics ask for a peak sample. */
static void late_destructor(void *v) {
    (void)v;
    atomic_store(&late_on_backup, umi_tl_heap == &umi_heap_empty && umi_tl_exited);
    enum { N = 4096 };
    static void *p[N];
    for (size_t i = 0; i < N; i++) p[i] = um_malloc(1024);
    for (size_t i = 0; i < N; i++) um_free(p[i]);
    atomic_store(&late_ran, 1);
}

static void *late_thread(void *arg) {
    (void)arg;
    um_free(um_malloc(32)); /* a heap of its own, so that its exit hook runs */
    pthread_setspecific(late_key, (void *)1);
    return NULL;
}

Test(races, backup_heap_allocation_keeps_the_lock_order, .timeout = 60) {
    um_free(um_malloc(16)); /* umalloc's key first */
    cr_assert_eq(pthread_key_create(&late_key, late_destructor), 0);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, late_thread, NULL), 0);
    pthread_join(t, NULL);
    cr_assert(atomic_load(&late_ran));
    cr_assert(atomic_load(&late_on_backup), "precondition: the destructor ran after umalloc's exit hook");
    um_stats_t s;
    um_stats_get(&s); /* the sample asked for runs at a safe point; the numbers add up */
    /* sampled when carving passes 9/8 of the last sample: the true peak is at most 9/8 of it */
    cr_assert_geq(s.peak_live_bytes, (uint64_t)4096 * 1024 * 8 / 9, "the backup heap's 4 MiB were not sampled (peak %llu)",
                  (unsigned long long)s.peak_live_bytes);
}

/* ---- RLIMIT_AS lowered after start-up --------------------------------------------------------- */

Test(races, lowered_address_space_limit_leaves_room, .timeout = 60) {
    if (!tu_is_plain()) cr_skip("SKIPPED in the sanitizer builds: they have no small-page region (os/region.c)");
    void *first = um_malloc(64);
    cr_assert_not_null(first);
    if (tu_vm_size_bytes() < ((size_t)1 << 40))
        cr_skip("SKIPPED: the small-page region is not reserved here (a finite RLIMIT_AS at start?)");
    struct rlimit rl = {(rlim_t)8 << 30, RLIM_INFINITY};
    cr_assert_eq(setrlimit(RLIMIT_AS, &rl), 0);
    void *big = um_malloc(100000);
    cr_assert_not_null(big, "malloc(100000) under an 8 GiB RLIMIT_AS failed (errno %d)", errno);
    memset(big, 1, 100000);
    /* Small blocks still work, and free() tells them from foreign pointers by the segment map. */
    enum { N = 20000 };
    static void *small[N];
    for (size_t i = 0; i < N; i++) {
        small[i] = um_malloc(256);
        cr_assert_not_null(small[i]);
        memset(small[i], (int)i, 256);
    }
    for (size_t i = 0; i < N; i++) um_free(small[i]);
    um_free(big);
    um_free(first);
    cr_assert_lt(tu_vm_size_bytes(), (size_t)8 << 30, "the unused reservation was not given back");
}

/* ---- a deferred dump runs at a safe point ------------------------------------------------------ */
static off_t file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

/* Dumps on SIGUSR1 into a new empty file whose name goes to path, umalloc started (options
 * read, handler installed). */
static void dump_to_temp_file_on_sigusr1(char path[static 32]) {
    strcpy(path, "/tmp/umalloc-races-XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    setenv("UMALLOC_STATS_FILE", path, 1);
    setenv("UMALLOC_STATS_SIGNAL", "SIGUSR1", 1);
    um_free(um_malloc(16));
}

Test(races, deferred_dump_waits_for_a_safe_point, .timeout = 60) {
    char path[32];
    dump_to_temp_file_on_sigusr1(path);

    umi_lock(&umi_cache_lock);
    raise(SIGUSR1); /* this thread holds a lock: the handler must not dump now */
    cr_assert_eq(file_size(path), 0);
    umi_unlock(&umi_cache_lock);
    cr_assert_eq(file_size(path), 0, "the deferred dump ran inside umi_unlock (file I/O inside malloc's locks)");
    pid_t pid = fork(); /* nor in a fork handler */
    if (pid == 0) _exit(file_size(path) == 0 ? 0 : 1);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "a fork handler made the deferred dump");
    cr_assert_eq(file_size(path), 0, "a fork handler made the deferred dump");

    void *p = um_malloc(3000); /* a size class not used yet: the allocation slow path */
    cr_assert_gt(file_size(path), 0, "the deferred dump did not run at the next allocation slow path");
    um_free(p);
    unlink(path);
}

/* ---- a dump in a thread with a cancel pending ------------------------------------------------ */
/* The statistics handler opens and writes the dump file; with libc's open and write, both
 * cancellation points, a thread with a cancel pending was unwound inside the handler, the dump
 * unmade and its busy flag left set: no later dump in the process was ever made. */
static _Atomic int handler_returned;

static void *signal_with_a_cancel_pending(void *arg) {
    (void)arg;
    pthread_cancel(pthread_self());
    raise(SIGUSR1);
    atomic_store(&handler_returned, 1);
    pthread_testcancel();
    return NULL;
}

Test(races, dump_in_a_thread_with_a_cancel_pending, .timeout = 60) {
    char path[32];
    dump_to_temp_file_on_sigusr1(path);

    pthread_t t;
    void *result = NULL;
    cr_assert_eq(pthread_create(&t, NULL, signal_with_a_cancel_pending, NULL), 0);
    cr_assert_eq(pthread_join(t, &result), 0);
    cr_assert_eq(atomic_load(&handler_returned), 1, "the thread was cancelled inside the statistics handler");
    cr_assert_eq(result, PTHREAD_CANCELED, "the pending cancel was lost");
    off_t first = file_size(path);
    cr_assert_gt(first, 0, "the dump of the cancelled thread's signal was not made");
    raise(SIGUSR1);
    cr_assert_gt(file_size(path), first, "the next dump was not made (the busy flag left set)");
    unlink(path);
}

/* ---- a walk that read the clock before another thread stamped an entry ------------------------- */
/* The trims of the segment cache and of the huge cache, and the dissolving of handed-off heaps,
 * read the clock once and then walk entries that other threads stamp meanwhile. A stamp newer
 * than the walker's clock once made an age that wrapped to 2^64 ms: a segment cached a moment
 * ago was unmapped at once, a heap handed off a moment ago dissolved before any thread could
 * take it. The hook holds the walker right after its clock read while another thread stamps. */
static const char *clock_site;       /* the walk to hold up */
static pthread_t clock_walker;       /* the thread walking */
static void (*clock_meanwhile)(void); /* what another thread does while it is held */

static void *run_meanwhile(void *arg) {
    clock_meanwhile();
    return arg;
}

static void clock_hook(int point, void *arg) {
    if (point != UM_HOOK_CLOCK_READ || !pthread_equal(pthread_self(), clock_walker) || strcmp(arg, clock_site) != 0) return;
    clock_site = ""; /* once */
    tu_sleep_ms(20); /* the coarse clock ticks every 1-4 ms: the stamp below is newer than `now` */
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, run_meanwhile, NULL), 0);
    pthread_join(t, NULL);
}

/* Run walk(false) in this thread, held after its clock read while another thread runs
 * meanwhile(). */
static void walk_held(const char *site, void (*walk)(bool), void (*meanwhile)(void)) {
    clock_site = site;
    clock_walker = pthread_self();
    clock_meanwhile = meanwhile;
    umi_test_hook = clock_hook;
    walk(false);
    umi_test_hook = NULL;
    cr_assert_eq(clock_site[0], 0, "the walk of the %s never reached its hook", site);
}

static size_t unmaps(void) { return atomic_load(&umi_os_stats.unmaps); }

static void thread_with_a_block_exits(void) { um_free(um_malloc(100)); } /* its segment: cached */

Test(races, segment_cached_during_a_trim_is_not_taken_for_old, .timeout = 60) {
    um_free(um_malloc(100));
    size_t before = unmaps();
    walk_held("segment cache", umi_segment_cache_trim, thread_with_a_block_exits);
    cr_assert_eq(unmaps(), before, "a segment cached during the trim was unmapped at once (%zu munmap)", unmaps() - before);
}

static void *huge_block;
static void huge_block_freed(void) { um_free(huge_block); }

Test(races, huge_block_cached_during_a_trim_is_not_taken_for_old, .timeout = 60) {
    void *first = um_malloc((size_t)8 << 20);
    huge_block = um_malloc((size_t)8 << 20);
    cr_assert(first != NULL && huge_block != NULL);
    memset(huge_block, 1, 4096);
    um_free(first); /* a piece in the cache: the trim walks the cache */
    size_t before = unmaps();
    walk_held("huge cache", umi_huge_cache_trim, huge_block_freed);
    cr_assert_eq(unmaps(), before, "a huge block cached during the trim was unmapped at once (%zu munmap)", unmaps() - before);
}

static void *kept_block;
static void thread_keeping_a_block_exits(void) { kept_block = um_malloc(100); } /* its heap: handed off */

Test(races, heap_handed_off_during_a_sweep_waits_for_a_thread, .timeout = 60) {
    um_free(um_malloc(100));
    walk_held("handed heaps", umi_heap_dissolve_handed, thread_keeping_a_block_exits);
    cr_assert_eq(atomic_load(&umi_handed_count), 1, "a heap handed off during the sweep was dissolved at once");
    um_free(kept_block);
}

/* ---- two threads make a leaf of the segment map at once -------------------------------------- */
static _Atomic int mapper_paused, mapper_release;
static __thread int tl_pause_segmap;

static void segmap_hook(int point, void *arg) {
    (void)arg;
    if (point != UM_HOOK_SEGMAP_MAP || !tl_pause_segmap) return;
    tl_pause_segmap = 0;
    atomic_store(&mapper_paused, 1);
    while (!atomic_load(&mapper_release)) sched_yield();
}

static void *cover_paused(void *range) {
    tl_pause_segmap = 1;
    return (void *)(uintptr_t)umi_segmap_cover(range);
}

/* Ranges of 256 GiB (a leaf's) where nothing is mapped: from 96 TiB up. */
static void *far_range(unsigned k) { return (void *)(((uintptr_t)96 << 40) + ((uintptr_t)k << 38)); }

/* With leaves from the .bss pool, the one A took goes back to it; once the pool is spent, the
 * OS refuses A's mapping of one, which must not fail its cover: the leaf exists. */
Test(races, segment_map_leaf_made_by_another_thread_meanwhile, .timeout = 60) {
    um_free(um_malloc(32)); /* the process set up: the region's leaves made */
    umi_test_hook = segmap_hook;
    size_t left = umi_segmap_pool_left();
    cr_assert(left > 0, "the pool is spent before the test");
    pthread_t a;
    void *ok = NULL;
    atomic_store(&mapper_paused, 0);
    atomic_store(&mapper_release, 0);
    cr_assert(pthread_create(&a, NULL, cover_paused, far_range(0)) == 0);
    while (!atomic_load(&mapper_paused)) sched_yield();
    cr_assert(umi_segmap_cover(far_range(0)));
    atomic_store(&mapper_release, 1);
    cr_assert(pthread_join(a, &ok) == 0);
    cr_assert(ok != NULL, "a thread whose leaf lost the race failed its cover");
    cr_assert_eq(umi_segmap_pool_left(), left - 1, "the race cost %zu pool leaves, not one", left - umi_segmap_pool_left());

    for (unsigned k = 1; umi_segmap_pool_left() > 0; k++) cr_assert(umi_segmap_cover(far_range(k)));
    atomic_store(&mapper_paused, 0);
    atomic_store(&mapper_release, 0);
    cr_assert(pthread_create(&a, NULL, cover_paused, far_range(40)) == 0);
    while (!atomic_load(&mapper_paused)) sched_yield();
    cr_assert(umi_segmap_cover(far_range(40)), "no leaf mapped once the pool is spent (errno %d)", errno);
    umi_fault_arm(UM_FAULT_NTH, UM_SYS_MMAP, 0, 0); /* the paused thread's own mapping */
    atomic_store(&mapper_release, 1);
    cr_assert(pthread_join(a, &ok) == 0);
    um_fault_stats_t st = umi_fault_disarm();
    umi_test_hook = NULL;
    cr_assert(st.failed[UM_SYS_MMAP] == 1, "the paused thread's mapping was not refused (%llu refused)", (unsigned long long)st.failed[UM_SYS_MMAP]);
    cr_assert(ok != NULL, "a thread whose mapping of a leaf was refused failed its cover, though another thread had made the leaf");
    cr_assert_eq(umi_segmap_get((uintptr_t)far_range(40)), UM_MAP_NONE, "a covered range with nothing in it is not ours");
}
