/* The two fast paths, inline, so that the exported malloc/free (preload/) and um_malloc/um_free
 * (core/api.c) each contain them without a call or jump in between. Every instruction here is
 * paid on every allocation: see docs/design.md "Fast path" for the count and why each is there. */
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

/* free: map entry (ours? page shift) -> page -> owned by this thread? -> push on its local list. */
UM_INLINE void _x_fast_free(void *p) {
    uintptr_t u = (uintptr_t)p;
    /* One map load answers "ours?" and gives the page shift. NULL and foreign pointers have no
     * entry, so they need no test of their own on this path. */
    unsigned shift = _x_segmap_get(u);
    if (UM_LIKELY(_x_map_is_segment(shift))) {
        um_segment_t *seg = _x_segment_of(p);
        um_page_t *page = &seg->pages[(u & UM_SEGMENT_MASK) >> shift];
        if (UM_LIKELY(atomic_load_explicit(&page->xowner, UM_RELAXED) == _x_thread_id())) {
            um_block_t *b = p;
            uintptr_t key = _x_block_key(b);
            if (UM_UNLIKELY(b->key == key)) { _x_warn_ptr("double free of", p); return; }
            b->key = key;
            b->next = page->local_free;
            page->local_free = b;
            UM_OWNER_ADD(page->used, -1);
            if (UM_UNLIKELY(page->used == 0)) _x_page_retire(_x_tl_heap, page);
            return;
        }
    }
    _x_free_generic(p);
}

#endif
