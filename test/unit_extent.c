/* Big blocks (80..512 KiB) as runs of pages in shared arenas (core/extent.c): what one thread
 * frees serves any size in any thread, free neighbours merge, free pages are purged by age and
 * at thread exits, calloc clears only what is not zero already, realloc moves the end of a
 * block in place, and the heap check sees the page maps. Each test runs in a process of its
 * own (Criterion), so the arenas start empty. */
#include <criterion/criterion.h>

#include "core/internal.h"
#include "os/fault.h"
#include "os/os.h"
#include "test_util.h"

static size_t committed(void) { return tu_totals().committed_bytes; }

/* Extents are off on a machine with several NUMA nodes (big blocks then stay in the threads'
 * pages, which follow each thread's placement): these tests say so and skip. */
static void need_extents(void) {
    um_free(um_malloc(1)); /* start-up */
    if (!umi_extents_on) cr_skip_test("extent arenas are off here (several NUMA nodes, or OS pages other than 4 KiB)");
}

typedef struct {
    size_t n, size;
    size_t committed_grew; /* out: how much committed memory grew while the blocks were held */
} fill_arg_t;

/* Allocate n blocks of `size`, write every byte, measure, free them all. */
static void *fill_touch_free(void *argp) {
    fill_arg_t *a = argp;
    char **v = calloc(a->n, sizeof *v);
    size_t before = committed();
    for (size_t i = 0; i < a->n; i++) {
        v[i] = um_malloc(a->size);
        if (v[i] == NULL) return NULL;
        memset(v[i], 0x5a, a->size);
    }
    size_t during = committed();
    a->committed_grew = during > before ? during - before : 0;
    for (size_t i = 0; i < a->n; i++) um_free(v[i]);
    free(v);
    return a;
}

static void run_thread(fill_arg_t *a) {
    pthread_t t;
    void *ret = NULL;
    cr_assert_eq(pthread_create(&t, NULL, fill_touch_free, a), 0);
    pthread_join(t, &ret);
    cr_assert_not_null(ret, "um_malloc(%zu) failed in the thread", a->size);
}

/* The point of the arenas: a thread that comes after one that exited reuses its big blocks'
 * memory, whatever sizes it asks for (pages of one class in the exited thread's heap were
 * purged at its exit, and served no other class anyway). */
Test(extent, pages_freed_by_an_exited_thread_serve_the_next_thread_in_any_size) {
    need_extents();
    fill_arg_t first = {.n = 20, .size = 256 * TU_KiB};
    run_thread(&first);
    cr_assert_geq(first.committed_grew, first.n * first.size, "the first thread's blocks committed only %zu B", first.committed_grew);
    fill_arg_t second = {.n = 40, .size = 128 * TU_KiB}; /* the same 5 MiB, in another class */
    run_thread(&second);
    fprintf(stderr, "[extent/next thread] committed grew by %.2f MiB for the first thread, %.2f MiB for the second\n",
            tu_mib(first.committed_grew), tu_mib(second.committed_grew));
    /* what the blocks of another size do not fit exactly at a segment's end: a page or two */
    cr_assert_lt(second.committed_grew, 512 * TU_KiB, "the second thread committed %.2f MiB more for blocks the first one freed",
                 tu_mib(second.committed_grew));
}

/* Free blocks side by side make one free run that a bigger block takes, at the same place;
 * a block takes resident (dirty) pages before others. */
Test(extent, free_neighbours_merge) {
    need_extents();
    const size_t k = 80 * TU_KiB;
    char *a = um_malloc(k), *b = um_malloc(k), *c = um_malloc(k);
    cr_assert(a && b && c);
    cr_assert(b == a + k && c == b + k, "fresh blocks not side by side: %p %p %p", (void *)a, (void *)b, (void *)c);
    um_free(b);
    char *b2 = um_malloc(k);
    cr_assert_eq(b2, b, "the only dirty pages were not reused: %p, not %p", (void *)b2, (void *)b);
    um_free(b2);
    um_free(a);
    char *d = um_malloc(2 * k); /* a's and b's pages, merged */
    cr_assert_eq(d, a, "a 160 KiB block went to %p, not to the two free 80 KiB blocks at %p", (void *)d, (void *)a);
    um_free(c);
    char *e = um_malloc(3 * k); /* 240 KiB: the 256 KiB class, from c's pages and the free ones after them */
    cr_assert_eq(e, c, "a 240 KiB block went to %p, not to the free run at %p", (void *)e, (void *)c);
    um_free(d);
    um_free(e);
    cr_assert_eq(um_check_heap(), 0);
}

/* Free pages go back to the OS between one and two purge delays after the free, on the
 * arenas' own operations, and the statistics follow. */
Test(extent, free_pages_are_purged_after_the_delay) {
    need_extents(); /* start-up: the options, then our own delay */
    __atomic_store_n(&umi_purge_delay_ms, 20, __ATOMIC_RELAXED);
    enum { N = 32 };
    char *v[N];
    for (size_t i = 0; i < N; i++) {
        v[i] = um_malloc(100 * TU_KiB);
        cr_assert_not_null(v[i]);
        memset(v[i], 1, 100 * TU_KiB);
    }
    char *keep = um_malloc(80 * TU_KiB); /* the arena's first segment stays: its blocks are what is measured */
    for (size_t i = 0; i < N; i++) um_free(v[i]);
    size_t dirty = committed();
    size_t purged0 = atomic_load_explicit(&umi_os_stats.purged_total, memory_order_relaxed);
    for (int tick = 0; tick < 3; tick++) { /* aged, purged */
        tu_sleep_ms(30);
        um_free(um_malloc(80 * TU_KiB)); /* an arena operation: it ticks */
    }
    size_t purged = atomic_load_explicit(&umi_os_stats.purged_total, memory_order_relaxed) - purged0;
    size_t after = committed();
    fprintf(stderr, "[extent/purge] committed %.2f -> %.2f MiB, purged %.2f MiB\n", tu_mib(dirty), tu_mib(after), tu_mib(purged));
    cr_assert_geq(purged, (size_t)N * 96 * TU_KiB, "only %.2f MiB purged", tu_mib(purged));
    cr_assert_lt(after + (size_t)N * 96 * TU_KiB, dirty, "committed %.2f MiB after the delay, %.2f before", tu_mib(after), tu_mib(dirty));
    um_free(keep);
}

/* Free runs that only clean free pages separate are purged with one madvise: with several
 * threads each call is a TLB shootdown on every CPU the process runs on. */
Test(extent, runs_apart_by_clean_pages_are_purged_in_one_call) {
    need_extents();
    enum { SIZE = 112 * 1024 }; /* a class's size: blocks side by side */
    char *keep = um_malloc(80 * TU_KiB); /* the arena's first segment stays */
    char *a = um_malloc(SIZE), *b = um_malloc(SIZE), *c = um_malloc(SIZE), *d = um_malloc(SIZE);
    cr_assert(a && b && c && d);
    cr_assert(b == a + SIZE && c == b + SIZE, "the blocks are not side by side: %p %p %p", a, b, c);
    memset(a, 1, SIZE);
    memset(b, 1, SIZE);
    memset(c, 1, SIZE);
    um_free(b);
    um_trim(0); /* b's pages: free and clean */
    um_free(a);
    um_free(c); /* a and c: free and dirty, b's clean pages between them */
    umi_fault_arm(UM_FAULT_NTH, UM_SYS_MADVISE, UINT64_MAX, 0); /* fails none: counts */
    um_trim(0);
    uint64_t calls = umi_fault_calls(UM_SYS_MADVISE);
    umi_fault_disarm();
    cr_expect_eq(calls, 1, "%llu madvise calls to purge two runs a clean run apart", (unsigned long long)calls);
    size_t resident = umi_os_resident_pages(a, 3 * SIZE);
    cr_expect_eq(resident, 0, "%zu pages of the three blocks still resident", resident);
    um_free(d);
    um_free(keep);
}

/* calloc clears the pages a freed block left dirty, and trusts purged and fresh ones. */
Test(extent, calloc_reads_zero_on_reused_and_fresh_pages) {
    need_extents();
    const size_t n = 200 * TU_KiB;
    for (int round = 0; round < 3; round++) {
        unsigned char *p = um_malloc(n);
        cr_assert_not_null(p);
        memset(p, 0xff, n);
        um_free(p);
        unsigned char *q = um_calloc(1, n + 4096 * round); /* the same pages first, then more */
        cr_assert_not_null(q);
        for (size_t i = 0; i < n + 4096 * round; i++)
            if (q[i] != 0) cr_assert_fail("calloc(%zu) byte %zu is %#x (round %d)", n + 4096 * round, i, q[i], round);
        memset(q, 0xee, n);
        um_free(q);
    }
}

/* The same wherever the block lies: which of its pages were dirty is read off the arena's
 * bitmaps a word at a time, and a block of 75 pages (more than a word's 64) starting anywhere in
 * a word spans two or three of them. Blocks of 20..27 pages before it move its start. */
Test(extent, calloc_reads_zero_wherever_the_block_starts) {
    need_extents();
    const size_t n = 300 * TU_KiB;
    for (size_t spacer = 0; spacer <= 112 * TU_KiB; spacer += (spacer == 0 ? 80 : 16) * TU_KiB) {
        void *s = spacer != 0 ? um_malloc(spacer) : NULL;
        unsigned char *p = um_malloc(n);
        cr_assert_not_null(p);
        memset(p, 0xff, n);
        um_free(p);
        unsigned char *q = um_calloc(1, n);
        cr_assert_not_null(q);
        for (size_t i = 0; i < n; i++)
            if (q[i] != 0) cr_assert_fail("calloc(%zu) byte %zu is %#x (after a block of %zu KiB)", n, i, q[i], spacer >> 10);
        memset(q, 0xee, n);
        um_free(q);
        um_free(s);
    }
}

/* A block over dirty, clean, dirty and fresh pages in turn: calloc clears each dirty run (one
 * memset a run) and leaves the clean ones, and every byte reads zero. The clean run between the
 * two dirty ones is checked to be purged, so that the test covers a run that starts past the
 * block's first page. */
Test(extent, calloc_clears_each_dirty_run) {
    need_extents();
    enum { SIZE = 112 * 1024 }; /* a class's size: blocks side by side */
    char *keep = um_malloc(80 * TU_KiB); /* the arena's first segment stays */
    char *a = um_malloc(SIZE), *b = um_malloc(SIZE), *c = um_malloc(SIZE);
    cr_assert(a && b && c);
    cr_assert(b == a + SIZE && c == b + SIZE, "the blocks are not side by side: %p %p %p", a, b, c);
    memset(a, 0xa1, SIZE);
    memset(b, 0xb2, SIZE);
    memset(c, 0xc3, SIZE);
    um_free(b);
    um_trim(0); /* b's pages: free and clean */
    cr_assert_eq(umi_os_resident_pages(b, SIZE), 0, "b's pages were not purged");
    um_free(a);
    um_free(c); /* a and c: free and dirty */
    const size_t n = 4 * SIZE; /* a, b, c, then fresh pages */
    unsigned char *q = um_calloc(1, n);
    cr_assert_eq((char *)q, a, "calloc(%zu) did not take a's pages", n);
    for (size_t i = 0; i < n; i++)
        if (q[i] != 0) cr_assert_fail("calloc(%zu) byte %zu (block %zu) is %#x", n, i, i / SIZE, q[i]);
    um_free(q);
    um_free(keep);
}

/* realloc of a big block that is not a buffer growing step by step moves its end in place:
 * into the free pages after it, and back, which frees the tail for the next block. */
Test(extent, realloc_moves_the_end_in_place) {
    need_extents();
    char *a = um_malloc(80 * TU_KiB);
    cr_assert_not_null(a);
    tu_fill(a, 80 * TU_KiB, 7);
    char *b = um_realloc(a, 200 * TU_KiB); /* more than twice: not a buffer grown step by step */
    cr_assert_eq(b, a, "growing into free pages moved the block: %p -> %p", (void *)a, (void *)b);
    cr_assert_eq(tu_check(b, 80 * TU_KiB, 7), -1);
    cr_assert_geq(um_malloc_usable_size(b), 200 * TU_KiB);
    char *c = um_realloc(b, 80 * TU_KiB);
    cr_assert_eq(c, a, "shrinking moved the block: %p -> %p", (void *)a, (void *)c);
    cr_assert_eq(um_malloc_usable_size(c), 80 * TU_KiB);
    cr_assert_eq(tu_check(c, 80 * TU_KiB, 7), -1);
    char *d = um_malloc(96 * TU_KiB);
    cr_assert_eq(d, a + 80 * TU_KiB, "the tail given back was not reused: %p, block at %p", (void *)d, (void *)a);
    char *e = um_realloc(c, 240 * TU_KiB); /* the pages after it are taken now: moved, contents kept */
    cr_assert_neq(e, c);
    cr_assert_eq(tu_check(e, 80 * TU_KiB, 7), -1);
    um_free(d);
    um_free(e);
}

/* A buffer grown step by step past 8 KiB (with its headroom) leaves the pooled classes for an
 * extent block of whole OS pages (core/alloc.c), where it grows in place into the free pages
 * after it: from 7000 bytes to 16 KiB it moves once (into the extent), not into a block of
 * each class on the way. */
Test(extent, a_buffer_grown_past_8_KiB_grows_in_place_in_an_extent) {
    need_extents();
    size_t n = 7000;
    char *p = um_malloc(n);
    cr_assert_not_null(p);
    tu_fill(p, n, 9);
    cr_assert_neq(umi_segment_lookup(p)->kind, UM_KIND_EXTENT, "precondition: a 7000-byte block is pooled");
    int moves = 0;
    while (n < 16 * TU_KiB) {
        char *q = um_realloc(p, n + 64);
        cr_assert_not_null(q);
        cr_assert_eq(tu_check(q, n, 9), -1, "contents lost growing %zu -> %zu", n, n + 64);
        moves += q != p;
        p = q;
        n += 64;
        tu_fill(p, n, 9);
    }
    cr_assert_eq(umi_segment_lookup(p)->kind, UM_KIND_EXTENT, "grown to %zu B, the buffer is not in an extent", n);
    cr_assert_eq(moves, 1, "the buffer moved %d times between 7000 bytes and 16 KiB", moves);
    cr_assert_eq(um_malloc_usable_size(p) % 4096, 0, "usable size %zu: not whole OS pages", um_malloc_usable_size(p));
    cr_assert_eq(um_check_heap(), 0);
    um_free(p);
    cr_assert_eq(um_check_heap(), 0);
}

/* Such blocks of 12 and 16 KiB are counted in their classes like any other (the statistics added
 * the arenas' counts from 20 KiB only, and saw none of them), and a second free of one is
 * reported (the thread caches, which take 20..64 KiB only, pass it to the arena). */
Test(extent, blocks_of_grown_buffers_are_counted_and_checked) {
    need_extents();
    um_stats_t s0, s1, s2;
    um_stats_get(&s0);
    char *p = um_malloc(5000);
    cr_assert_not_null(p);
    p = um_realloc(p, 9000); /* a quarter more room: 11250 B, in 12 KiB of whole pages */
    cr_assert_not_null(p);
    cr_assert_eq(umi_segment_lookup(p)->kind, UM_KIND_EXTENT);
    size_t bin = umi_bin_of(um_malloc_usable_size(p));
    cr_assert_eq(um_malloc_usable_size(p), 12 * TU_KiB);
    um_stats_get(&s1);
    cr_assert_eq(s1.classes[bin].live_blocks - s0.classes[bin].live_blocks, 1, "%llu live blocks of 12 KiB counted",
                 (unsigned long long)(s1.classes[bin].live_blocks - s0.classes[bin].live_blocks));
    cr_assert_eq(s1.live_bytes - s0.live_bytes, 12 * TU_KiB, "live bytes grew by %llu", (unsigned long long)(s1.live_bytes - s0.live_bytes));
    um_free(p);
    um_stats_get(&s2);
    cr_assert_eq(s2.classes[bin].live_blocks, s0.classes[bin].live_blocks);
    cr_assert_eq(s2.live_bytes, s0.live_bytes);
    if (tu_is_asan()) return; /* a double free is fatal there */
    um_free(p);
    um_stats_t s3;
    um_stats_get(&s3);
    cr_assert_eq(s3.invalid_frees - s2.invalid_frees, 1, "the second free was not reported");
    cr_assert_eq(um_check_heap(), 0);
}

/* Alignments above 4 KiB are met by where the block starts, not by an inner pointer. */
Test(extent, aligned_blocks_start_at_the_alignment) {
    need_extents();
    const size_t aligns[] = {8 * TU_KiB, 16 * TU_KiB, 32 * TU_KiB, 64 * TU_KiB};
    const size_t sizes[] = {100, 8 * TU_KiB, 20000, 70000, 100000, 300 * TU_KiB};
    for (size_t i = 0; i < sizeof aligns / sizeof aligns[0]; i++)
        for (size_t j = 0; j < sizeof sizes / sizeof sizes[0]; j++) {
            char *p = um_aligned_alloc(aligns[i], sizes[j]);
            cr_assert_not_null(p);
            cr_assert(tu_is_aligned(p, aligns[i]), "aligned_alloc(%zu, %zu) = %p", aligns[i], sizes[j], (void *)p);
            cr_assert_geq(um_malloc_usable_size(p), sizes[j]);
            cr_assert_eq(um_owns(p), 1);
            memset(p, 3, sizes[j]);
            um_free(p);
        }
    cr_assert_eq(um_check_heap(), 0);
}

/* The statistics count big blocks by class, as any pooled block. */
Test(extent, statistics_count_blocks_by_class) {
    need_extents();
    um_stats_t s0, s1, s2;
    um_stats_get(&s0);
    void *v[3];
    for (int i = 0; i < 3; i++) cr_assert_not_null(v[i] = um_malloc(96 * TU_KiB));
    um_stats_get(&s1);
    size_t bin = umi_bin_of(96 * TU_KiB);
    cr_assert_eq(s1.classes[bin].size, 96 * TU_KiB);
    cr_assert_eq(s1.classes[bin].live_blocks - s0.classes[bin].live_blocks, 3);
    cr_assert_geq(s1.committed_bytes - s0.committed_bytes, 3 * 96 * TU_KiB);
    for (int i = 0; i < 3; i++) um_free(v[i]);
    um_stats_get(&s2);
    cr_assert_eq(s2.classes[bin].live_blocks, s0.classes[bin].live_blocks);
    cr_assert_eq(s2.classes[bin].frees - s0.classes[bin].frees, 3);
    cr_assert_eq(s2.live_bytes, s0.live_bytes, "live %zu B after the frees, %zu before", (size_t)s2.live_bytes, (size_t)s0.live_bytes);
}

/* The heap check walks the arenas' page maps and finds a block that lost its start. */
Test(extent, heap_check_walks_the_page_maps) {
    need_extents();
    char *p = um_malloc(160 * TU_KiB), *q = um_malloc(96 * TU_KiB);
    cr_assert(p && q);
    cr_assert_eq(um_check_heap(), 0);
    um_segment_t *seg = umi_segment_of(p);
    cr_assert_eq(seg->kind, UM_KIND_EXTENT);
    size_t i = (size_t)(p - (char *)seg) >> UM_EXTENT_PAGE_SHIFT;
    uint64_t bit = (uint64_t)1 << (i & 63);
    seg->extents.start_map[i >> 6] &= ~bit; /* p's pages are now in no block */
    tu_capture_t cap;
    char out[4096];
    cr_assert_eq(tu_capture_begin(&cap), 0);
    size_t problems = um_check_heap();
    tu_capture_end(&cap, out, sizeof out);
    seg->extents.start_map[i >> 6] |= bit;
    cr_assert_gt(problems, 0, "a block with no start was not found");
    cr_assert(strstr(out, "in no block") != NULL, "the check said: %s", out);
    cr_assert_eq(um_check_heap(), 0);
    um_free(p);
    um_free(q);
}

/* Threads that allocate big blocks of every size and free each other's: every block intact,
 * nothing lost, the maps consistent afterwards (and no race, under TSan). */
#define SLOTS 256
static _Atomic(char *) shared_slots[SLOTS];
static void *swap_big_blocks(void *argp) {
    tu_rng_t r = tu_rng((uintptr_t)argp);
    size_t ops = tu_pick(20000, 4000, 2000);
    for (size_t k = 0; k < ops; k++) {
        size_t n = tu_range(&r, 65 * TU_KiB, 500 * TU_KiB);
        char *p = um_malloc(n);
        if (p == NULL) return NULL;
        memcpy(p, &n, sizeof n); /* its size at both ends */
        memcpy(p + n - sizeof n, &n, sizeof n);
        char *old = atomic_exchange(&shared_slots[tu_range(&r, 0, SLOTS - 1)], p);
        if (old != NULL) {
            size_t m, end;
            memcpy(&m, old, sizeof m);
            memcpy(&end, old + m - sizeof m, sizeof end);
            if (end != m || um_malloc_usable_size(old) < m) return NULL;
            um_free(old);
        }
    }
    return argp;
}
Test(extent, threads_trading_big_blocks) {
    need_extents();
    pthread_t t[4];
    for (uintptr_t i = 0; i < 4; i++) cr_assert_eq(pthread_create(&t[i], NULL, swap_big_blocks, (void *)(i + 1)), 0);
    for (int i = 0; i < 4; i++) {
        void *ret;
        pthread_join(t[i], &ret);
        cr_assert_not_null(ret, "a thread found a block damaged, or um_malloc failed");
    }
    cr_assert_eq(um_check_heap(), 0);
    for (size_t i = 0; i < SLOTS; i++) {
        char *p = shared_slots[i];
        if (p == NULL) continue;
        size_t n = um_malloc_usable_size(p);
        cr_assert_geq(n, 80 * TU_KiB);
        um_free(p);
    }
    um_trim(0); /* every free page purged, every free segment back */
    cr_assert_eq(um_check_heap(), 0);
    for (unsigned i = 0; i < umi_extent_arena_count; i++) {
        um_extent_arena_t *a = &umi_extent_arenas[i];
        cr_assert_eq(a->dirty_pages, 0, "arena %u keeps %zu dirty pages after um_trim", i, a->dirty_pages);
        cr_assert(a->segments == NULL || a->segments->next == NULL, "arena %u keeps more than one segment after um_trim", i);
    }
}

/* A thread's exit ticks the arenas UM_EXTENT_EXIT_TICK_MS or more after their last tick: in a
 * program that replaces its threads in rounds shorter than the purge delay, what the threads
 * before freed and nobody took goes back within two such exits, as their emptied pages do,
 * instead of staying resident while the rounds go on. But the exits of threads that end
 * together tick once: the second of two ticks in a row would purge all the first aged, which
 * is what those threads have just freed, and the next ones would fault it in again. */
static void *small_then_exit(void *arg) {
    (void)arg;
    um_free(um_malloc(64)); /* a heap: its exit hook runs */
    return arg;
}
Test(extent, thread_exits_purge_what_exited_threads_freed) {
    need_extents();
    __atomic_store_n(&umi_purge_delay_ms, UM_PURGE_DELAY_MAX_MS, __ATOMIC_RELAXED); /* no tick by time */
    size_t base = committed();
    fill_arg_t a = {.n = 40, .size = 100 * TU_KiB};
    run_thread(&a);
    uint64_t filled_ms = umi_os_now_ms(); /* its exit ticked: what it freed is aged */
    size_t after_first = committed();
    for (int i = 0; i < 3; i++) { /* three more exits at once: no tick */
        pthread_t t;
        cr_assert_eq(pthread_create(&t, NULL, small_then_exit, NULL), 0);
        pthread_join(t, NULL);
    }
    uint64_t burst_ms = umi_os_now_ms() - filled_ms;
    size_t after_burst = committed();
    for (int i = 0; i < 2; i++) { /* two exits a gap apart: the first ages, the second purges */
        usleep((UM_EXTENT_EXIT_TICK_MS + 10) * 1000);
        pthread_t t;
        cr_assert_eq(pthread_create(&t, NULL, small_then_exit, NULL), 0);
        pthread_join(t, NULL);
    }
    size_t after = committed();
    fprintf(stderr, "[extent/exit ticks] committed %.2f MiB, %.2f after the filling thread, %.2f after three more exits "
            "(in %u ms), %.2f after two more %d ms apart\n", tu_mib(base), tu_mib(after_first), tu_mib(after_burst),
            (unsigned)burst_ms, tu_mib(after), UM_EXTENT_EXIT_TICK_MS + 10);
    cr_assert_geq(after_first, base + 3 * TU_MiB, "precondition: the freed blocks stay committed at first");
    if (burst_ms < UM_EXTENT_EXIT_TICK_MS) /* else the machine stalled the burst longer than the gap */
        cr_assert_geq(after_burst + TU_MiB, after_first, "committed %.2f MiB after three exits at once, %.2f before",
                      tu_mib(after_burst), tu_mib(after_first));
    else
        fprintf(stderr, "[extent/exit ticks] the three exits took %u ms, over the %d ms gap: not checked\n", (unsigned)burst_ms,
                UM_EXTENT_EXIT_TICK_MS);
    cr_assert_lt(after + 3 * TU_MiB, after_first, "committed %.2f MiB after two exits %d ms apart, %.2f before", tu_mib(after),
                 UM_EXTENT_EXIT_TICK_MS + 10, tu_mib(after_first));
}
