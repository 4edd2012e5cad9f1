/* The extent arenas' quick lists (core/extent.c, "the quick list"): a big block the program
 * frees is kept whole for the next malloc of its size, from any thread, without the page maps;
 * a malloc of another size, the arena's tick and the list's limits give blocks back to the page
 * maps; a second free of a listed block is reported; calloc clears a listed block. Each test
 * runs in a process of its own, so the arenas start empty. */
#include <criterion/criterion.h>
#include <pthread.h>

#include "core/internal.h"
#include "os/os.h"
#include "test_util.h"

#define SIZE ((size_t)300000) /* the 320 KiB class: above 64 KiB, no thread caches it */

static void need_extents(void) {
    um_free(um_malloc(1)); /* start-up, and this thread's heap */
    if (!umi_extents_on) cr_skip_test("extent arenas are off here (several NUMA nodes, or OS pages other than 4 KiB)");
    if (umi_purge_delay() == 0) cr_skip_test("UMALLOC_PURGE_DELAY_MS=0: memory goes back at the free, no block is kept");
    /* The arena's first tick is due at its first free: it gives the list back. Over with now,
     * the next one is a purge delay away. */
    um_free(um_malloc(SIZE));
}

static um_extent_arena_t *arena_of(void *p) { return umi_segment_of(p)->extents.arena; }

/* The point of the list: without it each malloc/free pair of a 300 KB block cleared and set
 * its pages' bits in five page maps (about 1800 instructions). */
Test(extent_quick, a_freed_block_serves_the_next_malloc_of_its_size_without_the_page_maps) {
    need_extents();
    char *p = um_malloc(SIZE);
    cr_assert_not_null(p);
    um_extent_arena_t *a = arena_of(p);
    um_segment_t *seg = umi_segment_of(p);
    uint32_t free_pages = seg->extents.free_pages;
    uint64_t frees = a->counts->frees[umi_bin_of(SIZE)];
    um_free(p);
    cr_assert_eq(seg->extents.free_pages, free_pages, "the free gave the block's pages back to the page map");
    cr_assert_eq(a->quick_count, 1);
    cr_assert_eq(a->quick_bytes, umi_bin_size(umi_bin_of(SIZE)));
    cr_assert_eq(a->counts->frees[umi_bin_of(SIZE)], frees + 1, "the free is counted");
    char *q = um_malloc(SIZE);
    cr_assert_eq(q, p, "the block freed last came back: %p, not %p", (void *)q, (void *)p);
    cr_assert_eq(seg->extents.free_pages, free_pages);
    cr_assert_eq(a->quick_count, 0);
    cr_assert_eq(a->quick_bytes, 0);
    memset(q, 0x5a, SIZE); /* whole, writable */
    um_free(q);
    cr_assert_eq(um_check_heap(), 0);
}

static void *malloc_in_thread(void *arg) { return um_malloc(*(size_t *)arg); }

/* A block one thread freed serves another thread's next block of its size: a list in each
 * thread would keep it resident for its own thread alone. */
Test(extent_quick, another_threads_malloc_takes_the_block) {
    need_extents();
    char *p = um_malloc(SIZE);
    cr_assert_not_null(p);
    um_free(p);
    size_t size = SIZE;
    pthread_t t;
    void *q = NULL;
    cr_assert_eq(pthread_create(&t, NULL, malloc_in_thread, &size), 0);
    pthread_join(t, &q);
    cr_assert_eq(q, p, "the other thread got %p, not the freed block %p", q, (void *)p);
    um_free(q);
    cr_assert_eq(um_check_heap(), 0);
}

/* A malloc of a size the list does not hold gives the list back first: its pages may serve
 * that size (first fit), and a program of assorted sizes keeps no more resident than before. */
Test(extent_quick, a_malloc_of_another_size_gives_the_blocks_back_to_the_page_maps) {
    need_extents();
    char *p = um_malloc(SIZE);
    cr_assert_not_null(p);
    um_free(p);
    cr_assert_eq(arena_of(p)->quick_count, 1, "precondition: the block is listed");
    char *smaller = um_malloc(100 * TU_KiB);
    cr_assert_eq(arena_of(p)->quick_count, 0, "the list kept its block");
    cr_assert_eq(smaller, p, "the smaller block went to %p, not to the freed pages at %p", (void *)smaller, (void *)p);
    um_free(smaller);
    cr_assert_eq(um_check_heap(), 0);
}

/* A program that stops allocating big blocks does not keep them: the arena's tick (here the
 * one threads' sweeps run) gives them back, and they are purged a delay or two later. */
Test(extent_quick, listed_blocks_are_purged_after_the_delay) {
    need_extents(); /* its warm-up set the next tick a delay (as it was then) away */
    __atomic_store_n(&umi_purge_delay_ms, 20, __ATOMIC_RELAXED);
    char *keep = um_malloc(80 * TU_KiB); /* the arena's first segment stays: its pages are what is measured */
    char *p = um_malloc(SIZE);
    cr_assert(keep && p);
    memset(p, 1, SIZE);
    um_free(p);
    um_extent_arena_t *a = arena_of(p);
    cr_assert_eq(a->quick_count, 1, "precondition: the block is listed");
    size_t before = tu_totals().committed_bytes, after = before;
    int ms = 0;
    for (; ms < 2000 && (a->quick_count != 0 || after + SIZE > before); ms += 10) {
        tu_sleep_ms(10);
        umi_extent_tick_all(UM_EXTENT_TICK_DUE);
        after = tu_totals().committed_bytes;
    }
    cr_assert_eq(a->quick_count, 0, "the ticks of 2 s left %u blocks listed", (unsigned)a->quick_count);
    cr_assert_geq(before, after + SIZE, "committed %.2f MiB after 2 s of ticks, %.2f before", tu_mib(after), tu_mib(before));
    fprintf(stderr, "[extent_quick/purge] the listed block was purged after %d ms\n", ms);
    um_free(keep);
    cr_assert_eq(um_check_heap(), 0);
}

/* um_trim (malloc_trim) gives the list back and purges it with every other free page. */
Test(extent_quick, trim_purges_the_listed_blocks) {
    need_extents();
    char *keep = um_malloc(80 * TU_KiB); /* the arena's first segment stays: its pages are what is measured */
    char *p = um_malloc(SIZE);
    cr_assert(keep && p);
    memset(p, 1, SIZE);
    um_free(p);
    um_extent_arena_t *a = arena_of(p);
    cr_assert_eq(a->quick_count, 1, "precondition: the block is listed");
    size_t before = tu_totals().committed_bytes;
    cr_assert_eq(um_trim(0), 1, "um_trim released nothing");
    size_t after = tu_totals().committed_bytes;
    cr_assert_eq(a->quick_count, 0, "um_trim left %u blocks listed", (unsigned)a->quick_count);
    cr_assert_geq(before, after + SIZE, "committed %.2f MiB after um_trim, %.2f before", tu_mib(after), tu_mib(before));
    um_free(keep);
    cr_assert_eq(um_check_heap(), 0);
}

/* At most UM_EXTENT_QUICK_SLOTS blocks and UM_EXTENT_QUICK_BYTES bytes: the oldest go first. */
Test(extent_quick, the_list_keeps_to_its_limits_and_gives_back_the_oldest) {
    need_extents();
    enum { N = UM_EXTENT_QUICK_SLOTS + 4 };
    char *v[N];
    for (int i = 0; i < N; i++) cr_assert_not_null(v[i] = um_malloc(80 * TU_KiB));
    um_extent_arena_t *a = arena_of(v[0]);
    for (int i = 0; i < N; i++) {
        um_free(v[i]);
        cr_assert_leq(a->quick_count, UM_EXTENT_QUICK_SLOTS);
    }
    cr_assert_eq(a->quick_count, UM_EXTENT_QUICK_SLOTS);
    cr_assert_eq(a->quick[0], v[N - UM_EXTENT_QUICK_SLOTS], "the oldest blocks were not the ones given back");
    char *big[4];
    for (int i = 0; i < 4; i++) cr_assert_not_null(big[i] = um_malloc(448 * TU_KiB));
    for (int i = 0; i < 4; i++) {
        um_free(big[i]);
        cr_assert_leq(a->quick_bytes, UM_EXTENT_QUICK_BYTES, "%zu B listed", a->quick_bytes);
    }
    cr_assert_eq(a->quick[a->quick_count - 1], big[3], "the block freed last is listed");
    cr_assert_eq(um_check_heap(), 0);
}

/* A listed block carries the free mark: a second free is reported, and the block is listed once. */
Test(extent_quick, a_second_free_of_a_listed_block_is_reported) {
    need_extents();
    if (tu_is_asan()) cr_skip_test("under ASan a double free is reported and fatal; asan::double_free_is_reported checks it");
    um_stats_t s0, s1;
    char *p = um_malloc(SIZE);
    cr_assert_not_null(p);
    um_stats_get(&s0);
    um_free(p);
    um_free(p);
    um_stats_get(&s1);
    cr_assert_eq(s1.invalid_frees - s0.invalid_frees, 1, "%llu invalid frees counted", (unsigned long long)(s1.invalid_frees - s0.invalid_frees));
    cr_assert_eq(arena_of(p)->quick_count, 1, "the block was listed twice");
    char *a = um_malloc(SIZE), *b = um_malloc(SIZE);
    cr_assert(a && b && a != b, "two mallocs got %p and %p", (void *)a, (void *)b);
    um_free(a);
    um_free(b);
    cr_assert_eq(um_check_heap(), 0);
}

/* calloc of a listed block's size gets it back cleared: the program wrote it. */
Test(extent_quick, calloc_clears_a_listed_block) {
    need_extents();
    char *p = um_malloc(SIZE);
    cr_assert_not_null(p);
    memset(p, 0xff, SIZE);
    um_free(p);
    char *z = um_calloc(1, SIZE);
    cr_assert_eq(z, p, "precondition: calloc took the listed block");
    for (size_t i = 0; i < SIZE; i++)
        if (z[i] != 0) cr_assert_fail("byte %zu of a calloc'ed block reads %d", i, z[i]);
    um_free(z);
    cr_assert_eq(um_check_heap(), 0);
}

/* The statistics count a listed block free: live bytes come back to where they were. */
Test(extent_quick, statistics_count_listed_blocks_free) {
    need_extents();
    um_stats_t s0, s1;
    char *p = um_malloc(SIZE);
    cr_assert_not_null(p);
    um_stats_get(&s0);
    um_free(p);
    um_stats_get(&s1);
    size_t bytes = umi_bin_size(umi_bin_of(SIZE));
    cr_assert_eq(arena_of(p)->quick_count, 1, "precondition: the block is listed");
    cr_assert_eq(s0.live_bytes - s1.live_bytes, bytes, "live %zu B with the block listed, %zu in use", (size_t)s1.live_bytes, (size_t)s0.live_bytes);
    cr_assert_eq(s1.free_bytes - s0.free_bytes, bytes, "free %zu B with the block listed, %zu in use", (size_t)s1.free_bytes, (size_t)s0.free_bytes);
    cr_assert_eq(s1.committed_bytes, s0.committed_bytes, "a listed block stays committed");
}

/* A thread whose frees find its arena busy moves to another arena for its next blocks, as one
 * whose mallocs do. With the quick lists a free is short and a malloc that misses the list the
 * long one: two threads churning blocks of assorted sizes found each other's mallocs, not
 * frees, holding the lock, never moved apart, and ran 2.4 times slower than on two arenas. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int holding;
} holder_t;

static void *hold_arena_lock(void *arg) {
    holder_t *h = arg;
    umi_lock(&umi_extent_arenas[0].lock);
    pthread_mutex_lock(&h->mu);
    h->holding = 1;
    pthread_cond_signal(&h->cv);
    pthread_mutex_unlock(&h->mu);
    tu_sleep_ms(5); /* the free waits for it */
    umi_unlock(&umi_extent_arenas[0].lock);
    return NULL;
}

Test(extent_quick, a_thread_whose_frees_find_its_arena_busy_moves_on) {
    need_extents();
    if (umi_extent_arena_count < 2) cr_skip_test("one arena here (one CPU): there is nowhere to move");
    enum { N = 32, BUSY = 8 };
    char *v[N];
    for (int i = 0; i < N; i++) cr_assert_not_null(v[i] = um_malloc(SIZE + (size_t)i * 4096)); /* a window of mallocs, none busy */
    cr_assert_eq(arena_of(v[0]), &umi_extent_arenas[0], "precondition: a thread starts at the first arena");
    um_heap_t *heap = umi_tl_heap;
    cr_assert_leq(heap->extent_arena, 1, "precondition: the thread is still at the first arena");
    for (int i = 0; i < N; i++) {
        pthread_t t;
        holder_t h = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
        if (i < BUSY) {
            cr_assert_eq(pthread_create(&t, NULL, hold_arena_lock, &h), 0);
            pthread_mutex_lock(&h.mu);
            while (!h.holding) pthread_cond_wait(&h.cv, &h.mu);
            pthread_mutex_unlock(&h.mu);
        }
        um_free(v[i]);
        if (i < BUSY) pthread_join(t, NULL);
    }
    cr_assert_eq(heap->extent_arena, 2, "the thread found its arena busy on %d of %d frees and stayed (arena %u)", BUSY, N,
                 (unsigned)heap->extent_arena);
    char *next = um_malloc(SIZE);
    cr_assert_eq(arena_of(next), &umi_extent_arenas[1], "the next block comes from the next arena");
    um_free(next);
    cr_assert_eq(um_check_heap(), 0);
}

/* A block that realloc grows takes the free pages after it in place: a listed block there
 * goes back to the page map first, or the block would move (and fault in new pages) for pages
 * that are free all but in name. */
Test(extent_quick, realloc_grows_into_a_listed_neighbour_in_place) {
    need_extents();
    const size_t k = 80 * TU_KiB; /* a class's size: blocks side by side */
    char *a = um_malloc(k), *b = um_malloc(k);
    cr_assert(a && b);
    cr_assert_eq(b, a + k, "precondition: fresh blocks side by side (%p, %p)", (void *)a, (void *)b);
    memset(a, 0x3c, k);
    um_free(b);
    cr_assert_eq(arena_of(a)->quick_count, 1, "precondition: the neighbour is listed");
    char *grown = um_realloc(a, 200 * TU_KiB); /* more than twice: not a buffer grown step by step */
    cr_assert_eq(grown, a, "the block moved to %p instead of growing into its listed neighbour", (void *)grown);
    cr_assert_eq(arena_of(a)->quick_count, 0);
    for (size_t i = 0; i < k; i++)
        if (grown[i] != 0x3c) cr_assert_fail("byte %zu lost in the growth", i);
    um_free(grown);
    cr_assert_eq(um_check_heap(), 0);
}
