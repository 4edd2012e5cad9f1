/* free. The fast path: the block's page belongs to this thread's heap and has no flags, so the
 * block goes on the page's local list with no lock and no atomic read-modify-write. Anything
 * else (another thread's page, a full page, an aligned block, a huge block, a pointer that is
 * not ours) takes _x_free_generic. */
#include "core/internal.h"

void _x_free(void *p) {
    uintptr_t u = (uintptr_t)p;
    /* NULL and foreign pointers fail this test too: the map has no entry for them. */
    if (UM_UNLIKELY(_x_segmap_get(u) != UM_MAP_SEGMENT)) { _x_free_generic(p); return; }
    um_segment_t *seg = _x_segment_of(p);
    um_page_t *page = _x_page_of(seg, p);
    um_heap_t *heap = _x_tl_heap;
    if (UM_LIKELY(atomic_load_explicit(&page->xowner, UM_RELAXED) == (uintptr_t)heap)) {
        um_block_t *b = p;
        uintptr_t key = _x_block_key(b);
        if (UM_UNLIKELY(b->key == key)) { _x_warn_ptr("double free of", p); return; }
        b->key = key;
        b->next = page->local_free;
        page->local_free = b;
        UM_OWNER_ADD(page->used, -1);
        if (UM_UNLIKELY(page->used == 0)) _x_page_retire(heap, page);
        return;
    }
    _x_free_generic(p);
}

UM_NOINLINE void _x_free_generic(void *p) {
    if (p == NULL) return;
    um_segment_t *seg = _x_segment_lookup(p);
    if (UM_UNLIKELY(seg == NULL)) { _x_free_foreign(p); return; }
    if (seg->kind == UM_KIND_HUGE) { _x_huge_free(seg, p); return; }
    um_page_t *page = _x_page_of(seg, p);
    uintptr_t owner = atomic_load_explicit(&page->xowner, UM_RELAXED);
    if (UM_UNLIKELY(page->slot != UM_SLOT_USED)) { _x_warn_ptr("free of a pointer into an unused page:", p); return; }
    um_block_t *b = p;
    if (owner & UM_PAGE_HAS_ALIGNED) {
        b = _x_block_start(seg, page, p);
        if (b == NULL) { _x_warn_ptr("free of a pointer outside any block:", p); return; }
    } else if (UM_UNLIKELY(((uint8_t *)p - page->start) % page->block_size != 0)) {
        _x_warn_ptr("free of a pointer into the middle of a block:", p);
        return;
    }
    if ((owner & ~UM_PAGE_FLAGS) == (uintptr_t)_x_tl_heap) _x_page_local_free_slow(_x_tl_heap, page, b);
    else _x_page_remote_free(page, b);
}
