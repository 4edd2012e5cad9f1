/* free. The fast path: a small block whose page belongs to the calling thread and has no flags
 * goes on the page's free list with no lock and no atomic read-modify-write. A small block of
 * one of the thread's full pages takes umi_free_not_owned, nearly as short, and so does one of
 * another thread's small pages, on to that page's remote list. Anything else (an aligned block,
 * a medium, large or huge block, a pointer that is not ours, every free when the small-page
 * region is missing) takes umi_free_generic. */
#include "core/fastpath.h"
#include "core/counters.h"

void umi_free(void *p) { umi_fast_free(p); }

/* Everything umi_free_generic does not finish inline: reports, pages with aligned blocks or
 * flags, other threads' pages. */
static UM_NOINLINE void free_checked(um_segment_t *seg, um_page_t *page, void *p) {
    if (UM_UNLIKELY(page->slot != UM_SLOT_USED)) { umi_warn_ptr("free of a pointer into an unused page:", p); return; }
    uintptr_t owner = atomic_load_explicit(&umi_page_hot_in(seg, page)->owner, UM_RELAXED);
    um_block_t *b = p;
    if (owner & UM_PAGE_HAS_ALIGNED) {
        b = umi_block_start(seg, page, p);
        if (b == NULL) { umi_warn_ptr("free of a pointer outside any block:", p); return; }
    } else {
        size_t off = (size_t)((uint8_t *)p - page->start);
        if (UM_UNLIKELY(off >= (size_t)page->reserved * page->block_size)) { /* the header, the hot words */
            umi_warn_ptr("free of a pointer outside any block:", p);
            return;
        }
        /* off % block_size != 0 without a division (um_page_t.block_div): every remote free
         * comes this way, and a 64-bit divide costs it tens of cycles */
        if (UM_UNLIKELY((uint64_t)(uint32_t)off * page->block_div > page->block_div - 1)) {
            umi_warn_ptr("free of a pointer into the middle of a block:", p);
            return;
        }
    }
    /* The owner path only for the heap that owns the page: a thread id can come back (a new
     * thread on a dead one's stack), and a thread between heaps has none to free into. */
    if ((owner & ~UM_PAGE_FLAGS) == umi_thread_id() && atomic_load_explicit(&page->heap, UM_RELAXED) == umi_tl_heap)
        umi_page_local_free_slow(umi_tl_heap, page, b);
    else umi_page_remote_free(page, b);
}

/* A full page of this thread that has a batch of free blocks again: back in its queue. Its
 * owner word carried this thread's id, but in a fork child so do an orphan's pages for a thread
 * that got a dead one's id (umi_heap_orphan_others): those stay where they are. */
static UM_NOINLINE void full_page_refilled(um_page_t *page) {
    if (UM_UNLIKELY(atomic_load_explicit(&page->heap, UM_RELAXED) != umi_tl_heap)) return;
    umi_page_unfull(umi_tl_heap, page);
    if (UM_PAGE_USED(page) == 0) umi_page_retire(umi_tl_heap, page);
}

/* A block of another thread's small page (or of a page no thread owns now): onto the page's
 * remote list. The owner word said the page is in use and has no aligned blocks, so the page
 * and the block follow from the address alone: no segment-map lookup, no kind tests, none of
 * free_checked's second reading of the owner. Still checked: that p starts a block of the
 * page as it is now (a stale or forged pointer is reported, never pushed). */
static void remote_small_free(void *p) {
    um_page_t *page = umi_small_page_of(p);
    if (UM_UNLIKELY(!umi_page_starts_block(page, p))) {
        free_checked(umi_segment_of(p), page, p); /* says what is wrong with p */
        return;
    }
    umi_page_remote_free(page, p);
}

/* The fast path's free found a small page whose owner word is not this thread's id alone. If it
 * is this thread's id plus UM_PAGE_IN_FULL, the block goes on the page's list with the fast
 * path's own steps, and the page back in its queue once it has a batch of free blocks
 * (um_page_hot_t.requeue_used). In a program that keeps nearly all its blocks of a size in use,
 * most frees land in full pages: here they cost no segment-map lookup and none of
 * free_checked's tests. p passed the fast path's tests (16-byte aligned: a pointer that is not
 * reads its owner word off by 1..15 bytes and cannot match). A block of another thread's page
 * goes to remote_small_free; the rest (aligned blocks, pages no thread owns, pointers that are
 * not 16-byte aligned) to umi_free_generic. */
UM_NOINLINE void umi_free_not_owned(void *p, uintptr_t owner) {
    uintptr_t self = umi_thread_id();
    if (owner != (self | UM_PAGE_IN_FULL)) {
        if (UM_LIKELY(((uintptr_t)p & 15) == 0 && owner != 0 && (owner & UM_PAGE_HAS_ALIGNED) == 0 &&
                      (owner & ~UM_PAGE_FLAGS) != self))
            remote_small_free(p);
        else umi_free_generic(p);
        return;
    }
    um_block_t *b = p;
    um_page_hot_t *hot = (um_page_hot_t *)(((uintptr_t)p | (UM_SMALL_PAGE_SIZE - 1)) + 1 - UM_PAGE_HOT_SIZE);
    if (UM_UNLIKELY(umi_key_get(b) == umi_block_key(b))) { umi_double_free(b); return; }
    umi_hot_push(hot, b);
    if (UM_UNLIKELY(umi_hot_used(hot) <= hot->requeue_used)) full_page_refilled(umi_page_of(umi_segment_of(b), b));
}

/* The pointers free()'s fast path could not place: NULL, a block of an extent or huge segment,
 * or a pointer that is not ours. Kept out of umi_free_generic so that its common case, which
 * calls nothing, saves no registers. */
static UM_NOINLINE void free_unpooled(um_segment_t *seg, void *p) {
    if (seg == NULL) {
        if (p == NULL) umi_count_null_free(); /* NULL has no map entry either: tested only here */
        else umi_free_foreign(p);
    } else if (seg->kind == UM_KIND_HUGE) umi_huge_free(seg, p);
    else umi_extent_free(seg, p);
}

/* The owner's free brought a page to used <= requeue_used (um_page_hot_t). A full page has its
 * batch of free blocks back: back in its queue. Any other page was emptied: retired at once,
 * unless it is its bin's only page, which umi_page_retire keeps (a program that allocates and
 * frees one block of the size in a loop would otherwise give the page back and set up another
 * every time). Not left queued for the sweep, as the small pages the fast path empties are: a
 * program whose blocks move from class to class (buffers grown by realloc) would hold one
 * class's emptied medium pages, 512 KiB each, while the next class faulted in fresh slots
 * (docs/bench-notes.md). An orphan's page in a fork child may carry this thread's id too (see
 * full_page_refilled): left alone. */
static UM_NOINLINE void owner_page_changed(um_page_t *page, um_page_hot_t *hot) {
    if (atomic_load_explicit(&hot->owner, UM_RELAXED) & UM_PAGE_IN_FULL) {
        full_page_refilled(page);
        return;
    }
    um_heap_t *heap = umi_tl_heap;
    if (umi_hot_used(hot) != 0 || atomic_load_explicit(&page->heap, UM_RELAXED) != heap) return;
    umi_page_retire(heap, page);
}

/* Medium and large blocks come here on every free (they are outside the small-page region), so
 * the owner's case is finished inline, with no call and no division: the fast path's push,
 * after a check that p starts a block, and with the test the fast path leaves out, which one
 * compare makes for a page that may be emptied and for a full one that may have its batch of
 * free blocks back: a branch on which of the two the page is would go either way at random in
 * a program that keeps most of its blocks in use (a server's buffers), a third of whose frees
 * land in full pages. */
UM_NOINLINE void umi_free_generic(void *p) {
    um_segment_t *seg = umi_segment_lookup(p);
    if (UM_UNLIKELY(seg == NULL || seg->kind >= UM_KIND_HUGE)) { free_unpooled(seg, p); return; }
    _Static_assert(UM_KIND_EXTENT > UM_KIND_HUGE && UM_KIND_LARGE < UM_KIND_HUGE, "the pooled kinds come first");
    size_t index = ((uintptr_t)p & UM_SEGMENT_MASK) >> seg->page_shift;
    um_page_t *page = &seg->pages[index];
    /* a small page's hot words end its slot; a medium or large page's are in the header */
    um_page_hot_t *hot = seg->kind == UM_KIND_SMALL ? (um_page_hot_t *)(((uintptr_t)p | (UM_SMALL_PAGE_SIZE - 1)) + 1 - UM_PAGE_HOT_SIZE) : &seg->hot[index];
    /* Owner this thread, the page full or not: the slot is in use and has no aligned blocks. */
    if (UM_LIKELY((atomic_load_explicit(&hot->owner, UM_RELAXED) & ~UM_PAGE_IN_FULL) == umi_thread_id())) {
        um_block_t *b = p;
        if (UM_LIKELY(umi_page_starts_block(page, p) && umi_key_get(b) != umi_block_key(b))) {
            UM_SAN_POISON(b, page->block_size);
            umi_hot_push(hot, b);
            if (UM_UNLIKELY(umi_hot_used(hot) <= hot->requeue_used)) owner_page_changed(page, hot);
            return;
        }
    }
    free_checked(seg, page, p);
}
