/* Blocks of 20..64 KiB (core/extent_cache.c): extents with a cache in each thread. A freed one
 * comes back to the thread's next malloc of the class without its arena; a second free of a
 * cached block is reported, by the cache and by the arena when another thread holds it; the
 * cache gives back what its thread stops using, and everything at the thread's exit; the
 * statistics count cached blocks free. And the arenas' search bound (um_extent_map_t.
 * longest_free) grows back when frees merge runs. Each test runs in a process of its own. */
#include <criterion/criterion.h>
#include <pthread.h>

#include "core/internal.h"
#include "os/os.h"
#include "test_util.h"

#define SIZE (40 * TU_KiB)

static void need_extents(void) {
    um_free(um_malloc(1)); /* start-up, and this thread's heap */
    if (!umi_extents_on) cr_skip_test("extent arenas are off here (several NUMA nodes, or OS pages other than 4 KiB)");
}

/* ASan stops the program at a double free (asan::double_free_is_reported checks a cached block's). */
static void skip_under_asan(void) {
    if (tu_is_asan()) cr_skip_test("under ASan a double free is reported and fatal; asan::double_free_is_reported checks it");
}

static uint64_t arena_mallocs(size_t bin) {
    uint64_t n = 0;
    for (unsigned i = 0; i < UM_EXTENT_ARENAS_MAX; i++) n += umi_extent_arenas[i].counts->mallocs[bin];
    return n;
}

/* Pages of all arenas in blocks (the cached ones included: the arenas count them in use). */
static size_t arena_pages_in_blocks(void) {
    size_t n = 0;
    for (unsigned i = 0; i < UM_EXTENT_ARENAS_MAX; i++) {
        um_extent_arena_t *a = &umi_extent_arenas[i];
        umi_lock(&a->lock);
        for (um_segment_t *seg = a->segments; seg != NULL; seg = seg->next)
            n += UM_EXTENT_END_PAGE - UM_EXTENT_FIRST_PAGE - seg->extents.free_pages;
        umi_unlock(&a->lock);
    }
    return n;
}

static size_t cached(size_t bin) { return umi_tl_heap->extent_cache.count[bin - UM_BIN_EXTENT_FIRST]; }

Test(extent_cache, a_freed_block_serves_the_next_malloc_without_the_arena) {
    need_extents();
    size_t bin = umi_bin_of(SIZE);
    cr_assert(bin >= UM_BIN_EXTENT_FIRST && bin <= UM_BIN_ECACHE_LAST, "precondition: %zu B is a cached class", SIZE);
    char *p = um_malloc(SIZE);
    cr_assert_not_null(p);
    uint64_t from_arena = arena_mallocs(bin);
    um_free(p);
    cr_assert_eq(cached(bin), 1);
    char *q = um_malloc(SIZE);
    cr_assert_eq(q, p, "the block freed last came back: %p, not %p", (void *)q, (void *)p);
    cr_assert_eq(arena_mallocs(bin), from_arena, "the arena handed out a block for a malloc the cache could serve");
    cr_assert_eq(cached(bin), 0);
    um_free(q);
    cr_assert_eq(um_check_heap(), 0);
}

/* calloc takes the cached block as malloc does, and clears it: before, it always went to the arena
 * (which clears only the pages it must), and a program that callocs and frees a block of the
 * class in turn paid the arena twice a round while the freed block waited in the cache. */
Test(extent_cache, a_freed_block_serves_the_next_calloc_cleared) {
    need_extents();
    size_t bin = umi_bin_of(SIZE);
    unsigned char *p = um_malloc(SIZE);
    cr_assert_not_null(p);
    memset(p, 0xa5, SIZE);
    uint64_t from_arena = arena_mallocs(bin);
    um_free(p);
    cr_assert_eq(cached(bin), 1);
    unsigned char *q = um_calloc(1, SIZE);
    cr_assert_eq(q, p, "calloc did not take the block freed last: %p, not %p", (void *)q, (void *)p);
    cr_assert_eq(arena_mallocs(bin), from_arena, "the arena handed out a block for a calloc the cache could serve");
    cr_assert_eq(cached(bin), 0);
    for (size_t i = 0; i < SIZE; i++) cr_assert_eq(q[i], 0, "byte %zu of the calloc'ed block is %#x", i, q[i]);
    um_free(q);
    cr_assert_eq(um_check_heap(), 0);
}

/* Without the mark the second free pushed the block again, and two mallocs got the same block. */
Test(extent_cache, a_second_free_of_a_cached_block_is_reported) {
    need_extents();
    skip_under_asan();
    um_stats_t s0, s1;
    char *p = um_malloc(SIZE);
    cr_assert_not_null(p);
    um_stats_get(&s0);
    um_free(p);
    um_free(p);
    um_stats_get(&s1);
    cr_assert_eq(s1.invalid_frees - s0.invalid_frees, 1, "%llu invalid frees counted", (unsigned long long)(s1.invalid_frees - s0.invalid_frees));
    cr_assert_eq(cached(umi_bin_of(SIZE)), 1, "the block went into the cache twice");
    char *a = um_malloc(SIZE), *b = um_malloc(SIZE);
    cr_assert(a && b && a != b, "two mallocs got %p and %p", (void *)a, (void *)b);
    um_free(a);
    um_free(b);
    cr_assert_eq(um_check_heap(), 0);
}

/* A block in a thread's cache, freed again: by a thread with a cache, that cache finds the mark;
 * by one with none (its first call, or one after its exit), the arena finds it, instead of
 * taking the block back while the other thread still holds it. */
typedef struct {
    char *block;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int step; /* 1: freed into its cache; 2: go on */
    char *got; /* its next malloc of the class */
} holder_t;

static void *hold_in_cache(void *argp) {
    holder_t *h = argp;
    um_free(um_malloc(1)); /* a heap of its own */
    um_free(h->block);
    pthread_mutex_lock(&h->mu);
    h->step = 1;
    pthread_cond_broadcast(&h->cv);
    while (h->step != 2) pthread_cond_wait(&h->cv, &h->mu);
    pthread_mutex_unlock(&h->mu);
    h->got = um_malloc(SIZE);
    return NULL;
}

static void *free_only(void *p) {
    um_free(p); /* this thread's first call: it has no heap, so no cache */
    return NULL;
}

static void free_again_while_cached(bool from_a_thread_without_cache) {
    holder_t h = {.block = um_malloc(SIZE), .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    cr_assert_not_null(h.block);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, hold_in_cache, &h), 0);
    pthread_mutex_lock(&h.mu);
    while (h.step != 1) pthread_cond_wait(&h.cv, &h.mu);
    pthread_mutex_unlock(&h.mu);
    um_stats_t s0, s1;
    um_stats_get(&s0);
    if (from_a_thread_without_cache) {
        pthread_t u;
        cr_assert_eq(pthread_create(&u, NULL, free_only, h.block), 0);
        pthread_join(u, NULL);
    } else {
        um_free(h.block);
    }
    um_stats_get(&s1);
    char *mine = um_malloc(SIZE);
    pthread_mutex_lock(&h.mu);
    h.step = 2;
    pthread_cond_broadcast(&h.cv);
    pthread_mutex_unlock(&h.mu);
    pthread_join(t, NULL);
    cr_assert_eq(s1.invalid_frees - s0.invalid_frees, 1, "the second free was not reported");
    cr_assert_eq(h.got, h.block, "the other thread's malloc did not get the block it cached");
    cr_assert_neq(mine, h.block, "the arena handed out a block another thread's cache held");
    um_free(mine);
    um_free(h.got);
    cr_assert_eq(um_check_heap(), 0);
}

Test(extent_cache, a_free_of_a_block_another_thread_caches_is_reported) {
    need_extents();
    skip_under_asan();
    free_again_while_cached(false);
}

Test(extent_cache, a_free_without_a_cache_of_a_cached_block_is_reported) {
    need_extents();
    skip_under_asan();
    free_again_while_cached(true);
}

/* A thread's exit gives its cached blocks back to the arenas: after it, the arenas' pages in
 * blocks are what they were before it. */
static void *free_many(void *arg) {
    enum { N = 12 };
    char *v[N];
    for (int i = 0; i < N; i++) {
        v[i] = um_malloc((size_t)(20 + 4 * (i % 8)) * TU_KiB);
        if (v[i] == NULL) return NULL;
        memset(v[i], i, 20 * TU_KiB);
    }
    for (int i = 0; i < N; i++) um_free(v[i]);
    return umi_tl_heap->extent_cache.bytes != 0 ? arg : NULL; /* some of them cached */
}

Test(extent_cache, a_thread_exit_gives_the_cached_blocks_back) {
    need_extents();
    size_t before = arena_pages_in_blocks();
    um_stats_t s0, s1;
    um_stats_get(&s0);
    pthread_t t;
    void *ret = NULL;
    static int token;
    cr_assert_eq(pthread_create(&t, NULL, free_many, &token), 0);
    pthread_join(t, &ret);
    cr_assert_not_null(ret, "precondition: the thread's frees went into its cache");
    um_stats_get(&s1);
    cr_assert_eq(arena_pages_in_blocks(), before, "%zu pages in blocks after the thread's exit, %zu before",
                 arena_pages_in_blocks(), before);
    cr_assert_eq(s1.live_bytes, s0.live_bytes);
    cr_assert_eq(um_check_heap(), 0);
}

/* Blocks the thread stops using go back a half at each collection (its sweeps, 20 ms apart at
 * the most often); a class it keeps using keeps its blocks. */
Test(extent_cache, unused_blocks_go_back_and_used_ones_stay) {
    need_extents();
    size_t idle = umi_bin_of(20 * TU_KiB), busy = umi_bin_of(64 * TU_KiB);
    enum { N = 6 };
    char *v[N], *w[2];
    for (int i = 0; i < N; i++) cr_assert_not_null(v[i] = um_malloc(20 * TU_KiB));
    for (int i = 0; i < 2; i++) cr_assert_not_null(w[i] = um_malloc(64 * TU_KiB));
    for (int i = 0; i < N; i++) um_free(v[i]);
    for (int i = 0; i < 2; i++) um_free(w[i]);
    cr_assert_eq(cached(idle), N);
    cr_assert_eq(cached(busy), 2);
    size_t counts[8];
    for (int round = 0; round < 8; round++) {
        tu_sleep_ms(25);
        um_free(um_malloc(64 * TU_KiB)); /* the busy class in use */
        umi_extent_cache_flush(umi_tl_heap, false);
        counts[round] = cached(idle);
    }
    cr_assert_eq(counts[7], 0, "unused blocks still cached after 8 collections (%zu, %zu, %zu, ...)", counts[0], counts[1], counts[2]);
    for (int round = 1; round < 8; round++)
        cr_assert_leq(counts[round], counts[round - 1], "the unused class grew from %zu to %zu", counts[round - 1], counts[round]);
    cr_assert_gt(counts[1], 0, "all of them went back at once");
    cr_assert_geq(cached(busy), 1, "the class in use lost its blocks");
    cr_assert_eq(um_check_heap(), 0);
}

/* A batch of blocks allocated and freed again, over and over, larger than a stack's share (25
 * of 32 KiB, a share of 4): the stack grows until it holds the batch, and the arena hands out
 * no more blocks. Without the growth every round took 21 blocks from the arena and gave them
 * back, about a thousand instructions a pair. */
enum { BATCH = 25, BATCH_SIZE = 32 * TU_KiB };
static void batch_round(char **v, size_t n) {
    for (size_t i = 0; i < n; i++) {
        v[i] = um_malloc(BATCH_SIZE);
        cr_assert_not_null(v[i]);
        v[i][0] = (char)i;
    }
    for (size_t i = 0; i < n; i++) um_free(v[i]);
}

Test(extent_cache, a_stack_grows_to_hold_a_batch_freed_and_allocated_again) {
    need_extents();
    size_t bin = umi_bin_of(BATCH_SIZE);
    char *v[BATCH];
    for (int round = 0; round < 40; round++) batch_round(v, BATCH);
    uint64_t from_arena = arena_mallocs(bin);
    for (int round = 0; round < 10; round++) batch_round(v, BATCH);
    cr_assert_eq(arena_mallocs(bin), from_arena, "the arena still handed out %llu blocks in 10 rounds",
                 (unsigned long long)(arena_mallocs(bin) - from_arena));
    cr_assert_geq(cached(bin), BATCH);
    cr_assert_eq(um_check_heap(), 0);
}

/* Misses at a slow rate (a thread that allocates a block now and then, frees its few at its
 * exit) grow no stack: 100 misses 1 ms apart, then frees that overflow the stack. */
Test(extent_cache, misses_at_a_slow_rate_grow_no_stack) {
    need_extents();
    size_t bin = umi_bin_of(BATCH_SIZE), k = bin - UM_BIN_EXTENT_FIRST;
    char *v[100];
    for (int i = 0; i < 100; i++) {
        cr_assert_not_null(v[i] = um_malloc(BATCH_SIZE));
        tu_sleep_ms(1);
    }
    for (int i = 0; i < 100; i++) um_free(v[i]);
    cr_assert_eq(umi_tl_heap->extent_cache.cap[k], 4, "the stack grew to %u", umi_tl_heap->extent_cache.cap[k]);
    cr_assert_leq(cached(bin), 4);
    cr_assert_eq(um_check_heap(), 0);
}

/* A batch larger than a grown stack (100 blocks of 32 KiB, the stack's most is 32) goes on
 * missing: the next collection puts the stack back to its share, and it does not grow again
 * at once. */
Test(extent_cache, a_stack_grown_in_vain_goes_back_to_its_share) {
    need_extents();
    size_t bin = umi_bin_of(BATCH_SIZE), k = bin - UM_BIN_EXTENT_FIRST;
    um_extent_cache_t *c = &umi_tl_heap->extent_cache;
    static char *v[100];
    for (int round = 0; round < 20; round++) batch_round(v, 100);
    cr_assert_gt(c->cap[k], 4, "precondition: the stack grew (its cap is %u)", c->cap[k]);
    tu_sleep_ms(25);
    batch_round(v, 100); /* misses since the last collection */
    umi_extent_cache_flush(umi_tl_heap, false);
    cr_assert_eq(c->cap[k], 4, "a stack that still missed kept its growth (%u)", c->cap[k]);
    cr_assert_leq(cached(bin), 4);
    for (int round = 0; round < 20; round++) batch_round(v, 100);
    cr_assert_eq(c->cap[k], 4, "the stack grew again at once (%u)", c->cap[k]);
    cr_assert_eq(um_check_heap(), 0);
}

/* Cached blocks are free for the statistics: live bytes and blocks come back to where they were,
 * the class counts each malloc and free once, and the cached bytes count as free. */
Test(extent_cache, statistics_count_cached_blocks_free) {
    need_extents();
    size_t bin = umi_bin_of(SIZE);
    um_stats_t s0, s1, s2;
    um_stats_get(&s0);
    char *v[3];
    for (int i = 0; i < 3; i++) cr_assert_not_null(v[i] = um_malloc(SIZE));
    um_stats_get(&s1);
    cr_assert_eq(s1.classes[bin].live_blocks - s0.classes[bin].live_blocks, 3);
    for (int i = 0; i < 3; i++) um_free(v[i]);
    for (int i = 0; i < 3; i++) cr_assert_not_null(v[i] = um_malloc(SIZE)); /* from the cache */
    for (int i = 0; i < 3; i++) um_free(v[i]);
    um_stats_get(&s2);
    cr_assert_eq(cached(bin), 3, "precondition: the blocks are cached");
    cr_assert_eq(s2.classes[bin].mallocs - s0.classes[bin].mallocs, 6);
    cr_assert_eq(s2.classes[bin].frees - s0.classes[bin].frees, 6);
    cr_assert_eq(s2.live_bytes, s0.live_bytes, "live %zu B with the blocks cached, %zu before", (size_t)s2.live_bytes, (size_t)s0.live_bytes);
    cr_assert_geq(s2.free_bytes, s0.free_bytes + 3 * SIZE, "free %zu B with 3 blocks of %zu B cached, %zu before",
                  (size_t)s2.free_bytes, SIZE, (size_t)s0.free_bytes);
}

/* A search that fails bounds the next ones (longest_free); a free that merges runs raises the
 * bound again, and the merged run serves the next block in that segment. Without the raise the
 * arena passed over the segment and mapped another. */
Test(extent_cache, a_merged_run_is_found_after_a_failed_search) {
    need_extents();
    enum { N = 30 };
    const size_t size = 128 * TU_KiB; /* not cached: frees go straight back to the arena */
    char *v[N];
    for (int i = 0; i < N; i++) cr_assert_not_null(v[i] = um_malloc(size));
    um_segment_t *seg = umi_segment_of(v[0]);
    for (int i = 1; i < N; i++) cr_assert_eq(umi_segment_of(v[i]), seg, "precondition: one segment holds the blocks");
    for (int i = 0; i < N; i += 2) um_free(v[i]); /* holes of 128 KiB */
    char *big = um_malloc(2 * size); /* no hole fits: the search fails here, and bounds the segment */
    cr_assert_not_null(big);
    cr_assert_neq(umi_segment_of(big), seg, "precondition: no run of 256 KiB in the first segment");
    cr_assert_lt(seg->extents.longest_free, (2 * size) >> UM_EXTENT_PAGE_SHIFT);
    um_free(v[3]); /* v[2], v[3], v[4]: a run of 384 KiB */
    char *fits = um_malloc(2 * size);
    cr_assert_eq(umi_segment_of(fits), seg, "the merged run of the first segment was passed over");
    cr_assert_eq(fits, v[2]);
    um_free(fits);
    um_free(big);
    for (int i = 1; i < N; i += 2) if (i != 3) um_free(v[i]);
    cr_assert_eq(um_check_heap(), 0);
}
