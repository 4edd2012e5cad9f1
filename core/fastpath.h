/* The two fast paths, inline, so that the exported malloc/free (preload/) and um_malloc/um_free
 * (core/api.c) each contain them without a call or jump in between. Every instruction here is
 * paid on every allocation: see docs/design.md, "Thread heaps and the fast path",
 * for the count and why each is there. */
#ifndef UM_FASTPATH_H
#define UM_FASTPATH_H

#include "core/internal.h"

#define UM_INLINE static inline __attribute__((always_inline))

/* malloc: thread's heap -> page for this size -> pop its free list. */
UM_INLINE void *_x_fast_malloc(size_t size) {
    um_heap_t *heap = _x_tl_heap;
    if (UM_LIKELY(size <= UM_DIRECT_MAX)) {
        um_page_t *page = heap->direct[size];
        um_block_t *b = page->free;
        if (UM_LIKELY(b != NULL)) {
            page->free = b->next;
            b->key = 0; /* not free any more: a later free of it is legitimate */
            return b;
        }
    }
    return _x_malloc_generic(size, heap);
}

/* free: map entry (ours? aligned? page shift) -> owned by this thread? -> push on the page's
 * local list. */
UM_INLINE void _x_fast_free(void *p) {
    uintptr_t u = (uintptr_t)p;
    /* One map load answers "ours, and a possible block start?" and gives the page shift. NULL
     * and foreign pointers have no entry, so they need no test of their own on this path. */
    unsigned shift = _x_segmap_get_block(u);
    if (UM_LIKELY(_x_map_is_segment(shift))) {
        um_segment_t *seg = _x_segment_of(p);
        size_t idx = (u & UM_SEGMENT_MASK) >> shift;
        /* The three arrays start the header and share one stride: one address, three fixed
         * offsets (written this way so GCC doesn't fold each offset into its own index). */
        _Atomic uintptr_t *owner = &seg->page_owner[idx];
        um_block_t **local = (um_block_t **)((uint8_t *)owner + offsetof(um_segment_t, page_local_free));
        uint64_t *used = (uint64_t *)((uint8_t *)owner + offsetof(um_segment_t, page_used));
        if (UM_LIKELY(atomic_load_explicit(owner, UM_RELAXED) == _x_thread_id())) {
            um_block_t *b = p;
            if (UM_UNLIKELY(b->key == UM_FREE_MARK)) { _x_warn_ptr("double free of", p); return; }
            b->key = UM_FREE_MARK;
            b->next = *local;
            *local = b;
            UM_OWNER_ADD(*used, -1);
            if (UM_UNLIKELY(*used == 0)) _x_page_retire_slot(owner);
            return;
        }
    }
    _x_free_generic(p);
}

#endif
