/* The sweep: the pages free() emptied, found in their bin queues (core/page.c) and given back
 * to their segments, and the periodic work of a heap's slow path that comes with it. */
#include "core/internal.h"
#include "os/os.h"
#include "core/check.h"

/* No block of the page is in use (allocs == frees). Keep the page if it is its
 * bin's only one and `keep_only` (a thread that frees and reallocates one block in a loop must
 * not map and purge a page each time); otherwise give the slot back to the segment, and say so. */
static bool page_retire(um_heap_t *heap, um_page_t *page, bool keep_only) {
    /* The callers come with the page in its queue: the sweep walks the queues (a page there has
     * no IN_FULL flag), umi_page_local_free_slow takes it out of "full" first. */
    UM_CHECK(!(atomic_load_explicit(&UM_PAGE_OWNER(page), UM_RELAXED) & UM_PAGE_IN_FULL));
    um_page_queue_t *q = &heap->queues[page->bin];
    if (keep_only && q->first == page && page->next == NULL) return false;
    umi_page_queue_remove(heap, page);
    umi_segment_page_free(heap, page);
    return true;
}

bool umi_page_retire(um_heap_t *heap, um_page_t *page) { return page_retire(heap, page, true); }

/* free()'s fast path counts a page's frees without testing for emptiness (a compare and a
 * branch less on every free), so a page it empties stays in its bin queue. Its blocks are not
 * lost: they are all on its free list, ready for malloc if it is the bin's first page. The
 * pages behind it are found here and retired: by the allocation slow path, at most every
 * UM_SWEEP_MS (plus a little per page walked last time, so that a heap with very many pages
 * spends only a small share of its time here), and at once when forced (um_trim, malloc_trim).
 * O(queued pages): full pages are out of the queues, and a free into one takes the slow path,
 * which retires it there. */
#define UM_SWEEP_MS 10
#define UM_SWEEP_PAGES_PER_MS 100

/* Walk the queues: retire the empty pages (only those idle since the last walk unless
 * `busy_too`; a bin's only page only if `only_too`); returns the pages walked, and the bytes of
 * the pages retired in *retired. */
static size_t sweep_queues(um_heap_t *heap, bool busy_too, bool only_too, size_t *retired) {
    size_t walked = 0;
    *retired = 0;
    for (size_t bin = 1; bin < UM_BIN_COUNT; bin++) {
        um_page_t *next;
        for (um_page_t *page = heap->queues[bin].first; page != NULL; page = next) {
            next = page->next;
            walked++;
            /* empty, and idle since the last sweep: retired; a page that empties and fills up
             * again all the time (a producer's, whose blocks other threads free), or its bin's
             * only one, stays, and is carved again when next needed (umi_page_forget_free_list) */
            umi_page_collect(heap, page); /* blocks other threads gave back count too */
            um_page_hot_t *hot = umi_page_hot(page);
            if (umi_hot_used(hot) == 0) {
                size_t bytes = (size_t)1 << umi_segment_of(page)->page_shift;
                if ((busy_too || page->swept_allocs == hot->allocs) && page_retire(heap, page, !only_too)) {
                    *retired += bytes;
                    continue;
                }
                if (hot->free != NULL) umi_page_forget_free_list(page);
            }
            page->swept_allocs = hot->allocs;
        }
    }
    return walked;
}

/* A new page found no free slot in the heap's segments, and the next step maps a segment (or
 * adopts one). The empty pages in the queues go back to their segments first, busy or idle:
 * keeping a busy one saves a page set-up, but here the alternative is fresh memory, which
 * costs a fault per OS page and stays resident beside the emptied pages (a program that
 * drops a structure of one size and builds one of another). A heap that emptied a segment's
 * worth of pages or more is between such phases: its bins' last pages go too, so that whole
 * segments come free (and may move out of the region to serve big blocks, core/segment.c); one
 * that emptied less keeps a page in each bin for its next block of that size. A walk that
 * retired nothing is made again only after the heap took a sixteenth as many new pages as it
 * walked: a heap that just grows pays a few steps of walk per page it sets up, which faults in
 * 64 KiB. */
#define UM_SLOT_SWEEP_PAGES_PER_STEP 16
bool umi_page_sweep_for_slot(um_heap_t *heap) {
    if (heap->slot_sweep_wait != 0) return false;
    size_t retired, more = 0;
    size_t walked = sweep_queues(heap, true, false, &retired);
    if (retired >= UM_SEGMENT_SIZE) sweep_queues(heap, true, true, &more);
    if (retired == 0) heap->slot_sweep_wait = (uint32_t)(walked / UM_SLOT_SWEEP_PAGES_PER_STEP);
    return retired + more != 0;
}

void umi_page_sweep(um_heap_t *heap, bool force) {
    uint64_t now = umi_os_now_ms();
    if (!force && now < heap->next_sweep_ms) return;
    size_t retired;
    size_t walked = sweep_queues(heap, force, force, &retired); /* forced (um_trim): the bins' last pages too */
    heap->next_sweep_ms = now + UM_SWEEP_MS + walked / UM_SWEEP_PAGES_PER_MS;
    umi_extent_cache_flush(heap, force); /* the blocks it kept and did not use */
    umi_huge_release_kept(heap, force);
    if (UM_UNLIKELY(umi_check_enabled)) umi_check_or_abort(false); /* the calling thread's heap */
    umi_extent_tick_all(UM_EXTENT_TICK_DUE);    /* arenas no thread allocates from now age and purge too */
    /* Segments that exited threads left: a couple each time, the oldest first, so that their
     * memory comes back even when no thread runs short of pages (core/abandon.c). */
    umi_segment_cache_trim(false); /* the cache's purge delay runs even when no heap has dirty slots */
    if (heap->is_backup) return; /* under its lock, which ranks above the registry's */
    if (UM_UNLIKELY(atomic_load_explicit(&umi_handed_count, UM_RELAXED) != 0)) umi_heap_dissolve_handed(false);
    if (atomic_load_explicit(&umi_abandoned_count, UM_RELAXED) != 0) umi_segment_adopt(heap, 0, UM_KIND_COUNT, 2);
}
