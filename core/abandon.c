/* Abandoned segments: what an exiting thread leaves behind, and how the threads after it find
 * and reuse it.
 *
 * A thread that exits gives back what it can: pages with no block in use go back to their
 * segments, and empty segments to the cache. The rest of its heap normally goes whole to the
 * next new thread (core/handoff.c). When enough heaps already wait for one, and for a waiting
 * heap nobody took, every segment that still holds live blocks goes on one process-wide list
 * with no owner; blocks freed into it meanwhile wait on their pages'
 * remote lists (delay state NEVER: there is no heap to wake). Living threads take such segments
 * over ("adopt" them) on their allocation slow path:
 *  - when the heap has no page of a size class at all (a new thread, a class it never used),
 *    before carving or taking a fresh page (umi_page_alloc_slow): what exited threads left is
 *    the memory a new thread reuses first. Not whenever a class merely runs dry: a heap would
 *    then take over segment after segment while its own pages' blocks come back remotely (a
 *    program whose threads free each other's blocks and are replaced as they exit);
 *  - when a heap needs a free page slot, before it maps a segment (umi_segment_page_alloc);
 *  - a couple at a time from the periodic sweep (umi_page_sweep), so that a program whose other
 *    threads have all exited (a main thread freeing its workers' results) gets memory back too.
 * Adopting collects every page's remote frees, gives back the pages now empty (the segment goes
 * to the cache when all are) and queues the rest in the adopter's heap. What exited threads
 * leave is therefore bounded by the blocks still live in it, never by how many threads ran.
 *
 * The list is LIFO for adoption on need (the segment abandoned last is the one most likely
 * still in cache, with free blocks of the classes in use now) and FIFO for the sweep's
 * adoptions, so that no segment waits forever at the far end.
 *
 * Lock: umi_abandoned_lock guards the list. A segment off the list belongs to the heap that
 * took it (seg->heap is set before the lock drops), so adopting needs no lock. */
#include "core/internal.h"
#include "core/counters.h"
#include "os/os.h"

static um_segment_t *abandoned_head, *abandoned_tail; /* umi_abandoned_lock */
_Atomic size_t umi_abandoned_count;                   /* written under the lock */

/* Call fn on every segment the heap owns. fn may move a segment between the heap's lists or
 * release it: the next one is read first, and a segment moved to a list not walked yet is
 * merely seen twice (fn must allow that). */
static void each_segment(um_heap_t *heap, void (*fn)(um_heap_t *, um_segment_t *)) {
    um_segment_t **lists[UM_KIND_COUNT + 1] = {&heap->full_segments};
    for (size_t k = 0; k < UM_KIND_COUNT; k++) lists[k + 1] = &heap->segments[k];
    for (size_t l = 0; l <= UM_KIND_COUNT; l++) {
        um_segment_t *next;
        for (um_segment_t *seg = *lists[l]; seg != NULL; seg = next) {
            next = seg->next;
            fn(heap, seg);
        }
    }
}

/* A walk over the pages of seg in use that stops after the last one: a thread's exit and the
 * next thread's start each walk every segment of the heap, and a segment that holds a page or
 * two (a thread that lived for one request) would otherwise be read through all of its 64
 * descriptors, 88 cache lines, several times per thread. The caller may free each page it is
 * given (the count of those still to come is taken at the start). */
typedef struct {
    um_segment_t *seg;
    size_t next;  /* index to look at next */
    size_t left;  /* pages in use not reached yet */
} used_walk_t;
static inline used_walk_t used_walk(um_segment_t *seg) { return (used_walk_t){seg, 0, seg->used_pages}; }
static inline um_page_t *used_next(used_walk_t *w) {
    while (w->left != 0 && w->next < w->seg->page_count) {
        um_page_t *page = &w->seg->pages[w->next++];
        if (page->slot == UM_SLOT_USED) { w->left--; return page; }
    }
    return NULL;
}

static void pages_never_delayed(um_heap_t *heap, um_segment_t *seg) {
    (void)heap;
    used_walk_t w = used_walk(seg);
    for (um_page_t *page; (page = used_next(&w)) != NULL;) umi_page_set_never_delayed(page);
}

/* The free blocks of a page of big blocks, given back to the OS but for their first OS page
 * (which holds the free-list link and the free mark). A page of 32 KiB blocks and more that an
 * exiting thread leaves with one block live would otherwise keep every block it ever carved
 * resident until that block is freed and someone adopts the page: in a program whose big blocks
 * wait in a transfer array for the threads of later rounds, RSS would climb round after round.
 * Purged blocks read as zero again past their first page; nothing relies on more. */
#define UM_BIG_BLOCK_PURGE_MIN ((size_t)32 << 10)
static void purge_free_big_blocks(um_page_t *page) {
    size_t bsize = page->block_size, ps = umi_os_page_size();
    if (bsize < UM_BIG_BLOCK_PURGE_MIN) return;
    um_page_hot_t *hot = umi_page_hot(page);
    for (um_block_t *b = hot->free; b != NULL; b = umi_link_next(b, hot)) {
        uintptr_t from = ((uintptr_t)b + ps) & ~(uintptr_t)(ps - 1), to = ((uintptr_t)b + bsize) & ~(uintptr_t)(ps - 1);
        if (to > from) umi_os_purge((void *)from, to - from);
    }
}

/* Collect every page of seg and give back the empty ones. Returns false if that emptied the
 * segment (it went to the cache and is no longer the heap's). */
static bool give_back_empty_pages(um_heap_t *heap, um_segment_t *seg) {
    used_walk_t w = used_walk(seg);
    for (um_page_t *page; (page = used_next(&w)) != NULL;) {
        umi_page_collect(heap, page);
        if (UM_PAGE_USED(page) != 0) continue;
        if (!(atomic_load_explicit(&UM_PAGE_OWNER(page), UM_RELAXED) & UM_PAGE_IN_FULL)) umi_page_queue_remove(heap, page);
        bool last = seg->used_pages == 1;
        umi_segment_page_free(heap, page);
        if (last) return false;
    }
    return true;
}
static void give_back_empty(um_heap_t *heap, um_segment_t *seg) { (void)give_back_empty_pages(heap, seg); }

static void abandon_one(um_heap_t *heap, um_segment_t *seg) {
    umi_seg_list_remove(umi_segment_heap_list(heap, seg), seg);
    heap->dirty_pages -= seg->dirty_pages;
    used_walk_t w = used_walk(seg);
    for (um_page_t *page; (page = used_next(&w)) != NULL;) {
        purge_free_big_blocks(page);
        uintptr_t keep = atomic_load_explicit(&UM_PAGE_OWNER(page), UM_RELAXED) & UM_PAGE_HAS_ALIGNED;
        atomic_store_explicit(&UM_PAGE_OWNER(page), keep, UM_RELAXED); /* no thread's: every free is remote */
        umi_page_hot(page)->requeue_used = 0; /* not full any more (see um_page_hot_t.requeue_used) */
        atomic_store_explicit(&page->heap, NULL, UM_RELAXED);
        page->next = page->prev = NULL;
    }
    atomic_store_explicit(&seg->heap, NULL, UM_RELAXED);
    umi_lock(&umi_abandoned_lock);
    seg->abandoned = 1;
    umi_seg_list_push(&abandoned_head, seg);
    if (abandoned_tail == NULL) abandoned_tail = seg;
    atomic_fetch_add_explicit(&umi_abandoned_count, 1, UM_RELAXED);
    umi_unlock(&umi_abandoned_lock);
}

void umi_segment_stop_delayed(um_heap_t *heap) {
    /* No remote free may use the heap's delayed list from now on; take in what is there. */
    each_segment(heap, pages_never_delayed);
    umi_heap_collect_delayed(heap);
}

void umi_segment_give_back(um_heap_t *heap, um_purge_t what) {
    /* Every page with no block in use goes back, and the segments that leaves empty; the free
     * slots are purged now (but for a hand-off, see UM_PURGE_HANDOFF): the threads that come
     * next may be far fewer, and nothing else would purge them before one takes the memory
     * over. */
    each_segment(heap, give_back_empty);
    umi_segment_purge(heap, what);
}

void umi_segment_abandon_segments(um_heap_t *heap) {
    each_segment(heap, abandon_one);
    heap->dirty_pages = 0;
}

void umi_segment_abandon_all(um_heap_t *heap) {
    umi_segment_stop_delayed(heap);
    umi_segment_give_back(heap, UM_PURGE_ALL);
    umi_segment_abandon_segments(heap); /* what holds live blocks: for the threads that come later */
}

/* ---- a whole heap handed to the next thread (core/handoff.c) --------------------------------- */
static void strip_owner(um_heap_t *heap, um_segment_t *seg) {
    (void)heap;
    used_walk_t w = used_walk(seg);
    for (um_page_t *page; (page = used_next(&w)) != NULL;) {
        uintptr_t flags = atomic_load_explicit(&UM_PAGE_OWNER(page), UM_RELAXED) & UM_PAGE_FLAGS;
        atomic_store_explicit(&UM_PAGE_OWNER(page), flags, UM_RELAXED); /* no thread's: every free is remote */
    }
}
void umi_segment_strip_owners(um_heap_t *heap) { each_segment(heap, strip_owner); }

/* The heap's new thread owns its pages: its id in the owner words, remote frees back on the
 * page lists (full pages wake it again), and what was freed meanwhile collected. */
static void take_owner(um_heap_t *heap, um_segment_t *seg) {
    used_walk_t w = used_walk(seg);
    for (um_page_t *page; (page = used_next(&w)) != NULL;) {
        uintptr_t flags = atomic_load_explicit(&UM_PAGE_OWNER(page), UM_RELAXED) & UM_PAGE_FLAGS;
        bool full = (flags & UM_PAGE_IN_FULL) != 0;
        uintptr_t tf = atomic_load_explicit(&page->thread_free, UM_RELAXED);
        while (!atomic_compare_exchange_weak_explicit(&page->thread_free, &tf, (tf & ~UM_TF_STATE) | (full ? UM_DELAY_USE : UM_DELAY_NORMAL),
                                                      memory_order_acq_rel, UM_RELAXED)) {}
        atomic_store_explicit(&UM_PAGE_OWNER(page), heap->tid | flags, memory_order_release);
        umi_page_collect(heap, page);
        if (full && umi_page_hot(page)->free != NULL) umi_page_unfull(heap, page);
    }
}
void umi_segment_take_owners(um_heap_t *heap) { each_segment(heap, take_owner); }

/* After fork, a heap that lives on in the child (the forking thread's, the backup heap): a
 * remote free that a parent thread had begun (FREEING) will never finish here. USE again sends
 * the next remote free to the owner, as for any full page. */
static void forget_freeing(um_heap_t *heap, um_segment_t *seg) {
    (void)heap;
    for (size_t i = 0; i < seg->page_count; i++) {
        um_page_t *page = &seg->pages[i];
        uintptr_t tf = atomic_load_explicit(&page->thread_free, UM_RELAXED);
        if (page->slot == UM_SLOT_USED && (tf & UM_TF_STATE) == UM_DELAY_FREEING)
            atomic_store_explicit(&page->thread_free, (tf & ~UM_TF_STATE) | UM_DELAY_USE, UM_RELAXED);
    }
}
void umi_segment_forget_freeing(um_heap_t *heap) { each_segment(heap, forget_freeing); }

/* Take seg over for heap (seg is off the abandoned list, seg->heap already set). Returns false
 * if nothing in it was live any more: it went to the cache. */
static bool adopt_one(um_heap_t *heap, um_segment_t *seg) {
    heap->dirty_pages += seg->dirty_pages;
    umi_seg_list_push(umi_segment_heap_list(heap, seg), seg);
    for (size_t i = 0; i < seg->page_count; i++) {
        um_page_t *page = &seg->pages[i];
        if (page->slot != UM_SLOT_USED) continue;
        uintptr_t aligned = atomic_load_explicit(&UM_PAGE_OWNER(page), UM_RELAXED) & UM_PAGE_HAS_ALIGNED;
        atomic_store_explicit(&page->heap, heap, UM_RELAXED);
        atomic_store_explicit(&UM_PAGE_OWNER(page), heap->tid | aligned, memory_order_release);
        /* NEVER -> NORMAL: remote frees push onto the page again; the heap wakes it when full */
        uintptr_t tf = atomic_load_explicit(&page->thread_free, UM_RELAXED);
        while (!atomic_compare_exchange_weak_explicit(&page->thread_free, &tf, tf & ~UM_TF_STATE, memory_order_acq_rel, UM_RELAXED)) {}
        umi_page_collect(heap, page);
        if (UM_PAGE_USED(page) == 0) {
            bool last = seg->used_pages == 1;
            umi_segment_page_free(heap, page);
            if (last) return false;
        } else {
            umi_page_queue_adopt(heap, page);
        }
    }
    return true;
}

/* Room for one more block of bin in the heap without a new page: the queue's first page has
 * free blocks or blocks left to carve (an adopted page with either goes first). */
static bool bin_has_room(um_heap_t *heap, size_t bin) {
    um_page_t *first = heap->queues[bin].first;
    return first != NULL && (umi_page_hot(first)->free != NULL || first->capacity < first->reserved);
}

/* Off the list and the heap's (the caller holds umi_abandoned_lock). Owned before the lock
 * drops: a statistics walk (which holds this lock) must never take a segment being changed for
 * an ownerless one. */
static void take_abandoned(um_heap_t *heap, um_segment_t *seg) {
    if (seg == abandoned_tail) abandoned_tail = seg->prev;
    umi_seg_list_remove(&abandoned_head, seg);
    seg->abandoned = 0;
    atomic_fetch_sub_explicit(&umi_abandoned_count, 1, UM_RELAXED);
    atomic_store_explicit(&seg->heap, heap, UM_RELAXED);
}

size_t umi_segment_adopt(um_heap_t *heap, size_t bin, um_kind_t kind, size_t budget) {
    size_t taken = 0;
    bool lifo = bin != 0 || kind != UM_KIND_COUNT; /* on need: the newest; from the sweep: the oldest */
    while (taken < budget && atomic_load_explicit(&umi_abandoned_count, UM_RELAXED) != 0) {
        umi_lock(&umi_abandoned_lock);
        um_segment_t *seg = lifo ? abandoned_head : abandoned_tail;
        if (seg != NULL) take_abandoned(heap, seg);
        umi_unlock(&umi_abandoned_lock);
        if (seg == NULL) break;
        taken++;
        if (!adopt_one(heap, seg)) continue;
        if (bin != 0 && bin_has_room(heap, bin)) break;
        if (kind != UM_KIND_COUNT && heap->segments[kind] != NULL) break;
    }
    return taken;
}

void umi_segment_each_abandoned(void (*fn)(um_segment_t *, void *), void *arg) {
    for (um_segment_t *seg = abandoned_head; seg != NULL; seg = seg->next) fn(seg, arg);
}

size_t umi_segment_reclaim_all(void) {
    umi_heap_dissolve_handed(true);
    um_heap_t *heap = umi_heap_for_thread();
    if (heap == NULL) return 0;
    return umi_segment_adopt(heap, 0, UM_KIND_COUNT, SIZE_MAX);
}
