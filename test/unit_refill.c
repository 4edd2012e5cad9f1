/* The refill walk (core/page.c, umi_page_alloc_slow): when the bin's first page runs dry, a page
 * whose blocks were all freed in the order they went out is taken with its free list as it
 * stands (free_list_in_order). Carving it again wrote a link into every block, a cache miss
 * each, in every round of a program that fills and empties several pages of one size over and
 * over; and the walk undid the free lists of all the emptied pages it passed. A list in no
 * order (blocks freed at random) is still dropped and the page carved again:
 * semantics::blocks_go_out_in_address_order. */
#include <criterion/criterion.h>
#include <pthread.h>

#include "core/internal.h"
#include "test_util.h"

enum { SIZE = 1024, PAGES = 4, MAX_BLOCKS = 1024 };

static um_page_t *page_of(const void *p) { return umi_page_of(umi_segment_of(p), p); }

static void *emptied_pages_keep_their_free_lists(void *arg)
{
    (void)arg;
    static void *blocks[MAX_BLOCKS];
    /* blocks of one class over PAGES pages, freed in the order they were allocated */
    size_t n = 0;
    cr_assert_not_null(blocks[n++] = um_malloc(SIZE));
    if (umi_small_region_hi == UM_REGION_NONE) { /* known once umalloc has set up, at that malloc */
        um_free(blocks[0]);
        cr_skip_test("no small-page region in this build (the sanitizers own those addresses): a small page the owner "
                     "empties is retired at once, as a medium one is, and no emptied page waits in a queue");
    }
    um_heap_t *heap = umi_tl_heap; /* the thread's, made by its first malloc */
    size_t bin = page_of(blocks[0])->bin, per_page = page_of(blocks[0])->reserved;
    cr_assert_eq(umi_bin_size(bin), SIZE);
    while (n < PAGES * per_page) {
        cr_assert_lt(n, MAX_BLOCKS);
        cr_assert_not_null(blocks[n++] = um_malloc(SIZE));
    }
    for (size_t i = 0; i < n; i++) um_free(blocks[i]);

    /* the pages as the frees left them: each one's free list starts at the block freed last */
    um_page_t *pages[PAGES + 1];
    um_block_t *heads[PAGES + 1];
    size_t queued = 0;
    for (um_page_t *p = heap->queues[bin].first; p != NULL && queued <= PAGES; p = p->next) {
        cr_assert_eq(umi_hot_used(umi_page_hot(p)), 0, "a page of the bin still has blocks in use");
        cr_assert_not_null(umi_page_hot(p)->free);
        pages[queued] = p;
        heads[queued++] = umi_page_hot(p)->free;
    }
    cr_assert(queued >= 2 && queued <= PAGES, "%zu pages queued for %d pages of blocks freed", queued, PAGES);

    /* the blocks on the first page's free list (it may not have carved all it holds), then one
     * more: the refill walks the queue */
    size_t first_free = pages[0]->capacity;
    for (size_t i = 0; i < first_free; i++) {
        void *p = um_malloc(SIZE);
        cr_assert_eq(page_of(p), pages[0], "block %zu came from another page than the bin's first", i);
        blocks[i] = p;
    }
    void *next = um_malloc(SIZE);
    cr_assert_not_null(next);
    um_page_t *taken = page_of(next);
    size_t k = 1;
    while (k < queued && pages[k] != taken) k++;
    cr_assert_lt(k, queued, "the refill took a page that was not queued");
    cr_expect_eq(next, heads[k], "the refill carved the emptied page again instead of taking its free list: got %p, the "
                 "block freed last into it was %p", next, (void *)heads[k]);
    for (size_t j = 1; j < queued; j++) {
        if (j == k) continue;
        cr_expect(umi_page_hot(pages[j])->free == heads[j] && pages[j]->capacity == pages[j]->reserved,
                  "the refill undid the free list of emptied page %zu it passed", j);
    }
    cr_expect_eq(um_check_heap(), 0);
    for (size_t i = 0; i < first_free; i++) um_free(blocks[i]);
    um_free(next);
    cr_expect_eq(um_check_heap(), 0);
    return NULL;
}

Test(refill, an_emptied_page_is_taken_with_its_free_list)
{
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, emptied_pages_keep_their_free_lists, NULL), 0);
    cr_assert_eq(pthread_join(t, NULL), 0);
}
