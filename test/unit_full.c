/* Full pages (core/page.c, "full pages and the delayed-free wake-up"): a page that filled up goes
 * back in its bin queue when a batch of its blocks is free again, not at its first free (which
 * made a program that keeps its blocks of a size nearly all in use move a page on every malloc
 * and free); a remote free still wakes the owner at its first block, and that page goes back at
 * once, since no later remote free would wake anyone. */
#include <criterion/criterion.h>
#include <pthread.h>

#include "core/internal.h"
#include "test_util.h"

enum { SIZE = 512, MEDIUM = 12000, MAX_BLOCKS = 4096 };

static void *blocks[MAX_BLOCKS];
static size_t block_count;

static void *in_fresh_thread_arg(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    void *result = NULL;
    cr_assert_eq(pthread_create(&t, NULL, fn, arg), 0);
    cr_assert_eq(pthread_join(t, &result), 0);
    return result;
}

static void *in_fresh_thread(void *(*fn)(void *)) { return in_fresh_thread_arg(fn, NULL); }

static um_page_t *page_of(const void *p) { return umi_page_of(umi_segment_of(p), p); }

static bool is_full(const um_page_t *page)
{
    return (atomic_load_explicit(&UM_PAGE_OWNER(page), UM_RELAXED) & UM_PAGE_IN_FULL) != 0;
}

static bool is_queued(um_heap_t *heap, const um_page_t *page)
{
    for (um_page_t *q = heap->queues[page->bin].first; q != NULL; q = q->next)
        if (q == page) return true;
    return false;
}

/* In a fresh thread: allocates `size`-byte blocks until the page of the first one is full (out of
 * its queue), and returns that page. The thread has no page of a larger class that its first
 * block could be borrowed from (unit_borrow.c): that block is in a page of its own class. */
static um_page_t *fill_a_page(size_t size)
{
    block_count = 0;
    cr_assert_not_null(blocks[block_count++] = um_malloc(size));
    um_page_t *page = page_of(blocks[0]);
    cr_assert_eq(umi_bin_size(page->bin), um_malloc_usable_size(blocks[0]), "the first block of %zu bytes is borrowed", size);
    while (!is_full(page)) {
        cr_assert_lt(block_count, MAX_BLOCKS, "%zu blocks of %zu bytes and their page never went full", block_count, size);
        cr_assert_not_null(blocks[block_count++] = um_malloc(size));
    }
    return page;
}

/* The blocks of `page` among those allocated, up to n of them, into out[]. */
static size_t blocks_of(const um_page_t *page, void **out, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < block_count && k < n; i++)
        if (blocks[i] != NULL && page_of(blocks[i]) == page) {
            out[k++] = blocks[i];
            blocks[i] = NULL;
        }
    return k;
}

static void free_all(void)
{
    for (size_t i = 0; i < block_count; i++)
        um_free(blocks[i]);
    block_count = 0;
}

/* arg: the block size (a small page's, or a medium page's, whose frees take free_checked) */
static void *owner_frees_into_a_full_page(void *arg)
{
    size_t size = (size_t)(uintptr_t)arg;
    um_page_t *page = fill_a_page(size);
    um_heap_t *heap = umi_tl_heap;
    size_t batch = page->reserved - umi_page_hot(page)->requeue_used; /* page_requeue_min */
    cr_assert(batch > 1 && batch <= page->reserved / 8 + 1, "a full page of %u blocks goes back with %zu free", page->reserved, batch);
    static void *mine[MAX_BLOCKS];
    cr_assert_geq(blocks_of(page, mine, batch), batch);
    cr_assert_eq(umi_hot_used(umi_page_hot(page)), page->reserved, "a full page of %u blocks has %llu in use", page->reserved,
                 (unsigned long long)umi_hot_used(umi_page_hot(page)));

    for (size_t i = 0; i + 1 < batch; i++) {
        um_free(mine[i]);
        cr_assert(is_full(page) && !is_queued(heap, page), "a full page of %u blocks went back in its queue at %zu free (the "
                  "batch is %zu)", page->reserved, i + 1, batch);
    }
    cr_expect_eq(um_check_heap(), 0, "the heap check rejects a full page holding free blocks");
    um_free(mine[batch - 1]);
    cr_assert(!is_full(page) && is_queued(heap, page), "a full page of %u blocks with %zu free is still out of its queue",
              page->reserved, batch);
    cr_expect_eq(um_check_heap(), 0);

    /* the batch is served: the blocks freed come back once the bin's first page runs dry */
    size_t back = 0;
    for (size_t i = 0; i < page->reserved && back < batch; i++) {
        void *p = um_malloc(size);
        cr_assert_not_null(p);
        back += page_of(p) == page;
        blocks[block_count++] = p;
    }
    cr_expect_eq(back, batch, "%zu of the %zu blocks freed into the page were handed out again", back, batch);
    free_all();
    cr_expect_eq(um_check_heap(), 0);
    return NULL;
}

Test(full_pages, an_owner_free_puts_a_full_page_back_only_with_a_batch)
{
    in_fresh_thread_arg(owner_frees_into_a_full_page, (void *)(uintptr_t)SIZE);
}

Test(full_pages, an_owner_free_puts_a_full_medium_page_back_only_with_a_batch)
{
    in_fresh_thread_arg(owner_frees_into_a_full_page, (void *)(uintptr_t)MEDIUM);
}

/* A double free into a full page is reported like any other (the path of frees into full pages
 * has its own push). */
static void *double_free_into_a_full_page(void *arg)
{
    (void)arg;
    um_page_t *page = fill_a_page(SIZE);
    void *one;
    cr_assert_eq(blocks_of(page, &one, 1), 1);
    um_free(one);
    cr_assert(is_full(page));
    tu_capture_t cap;
    char out[4096];
    cr_assert_eq(tu_capture_begin(&cap), 0);
    um_free(one);
    size_t len = tu_capture_end(&cap, out, sizeof out);
    cr_assert(len > 0 && strstr(out, "double free") != NULL, "a double free into a full page was not reported: '%.*s'", (int)len, out);
    cr_assert_eq(umi_hot_used(umi_page_hot(page)), page->reserved - 1, "the double free changed the page's count of blocks in use");
    cr_expect_eq(um_check_heap(), 0);
    free_all();
    return NULL;
}

Test(full_pages, a_double_free_into_a_full_page_is_reported)
{
    if (tu_is_asan())
        cr_skip_test("under ASan a double free is fatal; asan::double_free_is_reported checks it");
    in_fresh_thread(double_free_into_a_full_page);
}

static void *remote_free(void *p)
{
    um_free(p);
    return NULL;
}

/* The first remote free into a full page wakes the owner (the heap's delayed list): the page
 * goes back in its queue with that one block, and the other thread's later frees, which wake
 * nobody, are found there. */
static void *remote_free_wakes_a_full_page(void *arg)
{
    (void)arg;
    um_page_t *page = fill_a_page(SIZE);
    um_heap_t *heap = umi_tl_heap;
    void *theirs[2];
    cr_assert_eq(blocks_of(page, theirs, 2), 2);
    in_fresh_thread_arg(remote_free, theirs[0]);
    void *other = um_malloc(3000); /* a class with no page yet: the slow path collects the wake-up */
    cr_assert_not_null(other);
    cr_assert(!is_full(page) && is_queued(heap, page), "a full page that another thread freed into is still out of its queue");
    in_fresh_thread_arg(remote_free, theirs[1]);
    umi_page_collect(heap, page);
    cr_assert_eq(umi_hot_used(umi_page_hot(page)), page->reserved - 2, "the second remote free was not found in the page");
    cr_expect_eq(um_check_heap(), 0);
    um_free(other);
    free_all();
    return NULL;
}

Test(full_pages, a_remote_free_puts_a_full_page_back_at_once)
{
    in_fresh_thread(remote_free_wakes_a_full_page);
}

/* Blocks of 5..8 KiB kept in use and replaced at random, as a server's buffers or ptmalloc's
 * t-test1: every page is all but full, and a page goes back to its queue with a batch of free
 * blocks. On small pages, which hold 7..12 such blocks, that batch was one or two blocks, and
 * every other malloc took the refill path (core/types.h, UM_SMALL_MAX); on medium pages it is 8. */
static void *replaced_at_random(void *arg)
{
    (void)arg;
    enum { LIVE = 2000, STEPS = 20000, BLOCK = 6000 };
    static void *live[LIVE];
    for (size_t i = 0; i < LIVE; i++) cr_assert_not_null(live[i] = um_malloc(BLOCK));
    um_heap_t *heap = umi_tl_heap;
    uint32_t refills = heap->refills;
    uint64_t r = 42;
    for (size_t s = 0; s < STEPS; s++) {
        r = r * 6364136223846793005u + 1442695040888963407u;
        size_t i = (size_t)(r >> 33) % LIVE;
        um_free(live[i]);
        cr_assert_not_null(live[i] = um_malloc(BLOCK));
    }
    refills = heap->refills - refills;
    for (size_t i = 0; i < LIVE; i++) um_free(live[i]);
    fprintf(stderr, "[full_pages/replaced at random] %u of %d mallocs found their page dry\n", refills, STEPS);
    cr_expect_lt(refills, STEPS / 4, "%u of %d mallocs found their page dry", refills, STEPS);
    return NULL;
}

Test(full_pages, blocks_of_5_to_8_kib_replaced_at_random_seldom_find_their_page_dry)
{
    in_fresh_thread(replaced_at_random);
}

/* The owner's free of a medium block tests one count for both kinds of page: a full page's
 * batch (um_page_hot_t.requeue_used), and 0 on any other page, where the same test tells that
 * the page was emptied. So the count must go when the flag does. A thread that exits leaves its
 * full page full in its handed-off heap; dissolved, the heap's segments are abandoned, their
 * pages no thread's and no longer full: the count goes with the flag. Left behind, it made the
 * heap check fail, and the page's next owner take the path of an emptied page at every free
 * below it. */
static void *fill_a_medium_page(void *arg)
{
    (void)arg;
    return fill_a_page(MEDIUM);
}

Test(full_pages, an_abandoned_full_page_keeps_no_count_to_go_back_at)
{
    um_page_t *page = in_fresh_thread(fill_a_medium_page);
    cr_assert(is_full(page), "the exited thread's full page is not full in its handed-off heap");
    cr_assert_neq(umi_page_hot(page)->requeue_used, 0);
    umi_heap_dissolve_handed(true);
    cr_assert(!is_full(page) && atomic_load_explicit(&page->heap, UM_RELAXED) == NULL, "the dissolved heap's full page was not abandoned");
    cr_expect_eq(umi_page_hot(page)->requeue_used, 0, "the abandoned page keeps the count of %u blocks in use to go back in its queue at",
                 umi_page_hot(page)->requeue_used);
    cr_expect_eq(um_check_heap(), 0);
    free_all();
    cr_expect_eq(um_check_heap(), 0);
}
