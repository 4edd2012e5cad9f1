/* free. The fast path: a small block whose page belongs to the calling thread and has no flags
 * goes on the page's local list with no lock and no atomic read-modify-write. Anything else
 * (another thread's page, a full page, an aligned block, a medium, large or huge block, a
 * pointer that is not ours, every free when the small-page region is missing) takes
 * _x_free_generic. */
#include "core/fastpath.h"
#include "stats/stats.h"

void _x_free(void *p) { _x_fast_free(p); }

UM_NOINLINE void _x_free_generic(void *p) {
    if (p == NULL) { _x_stats_null_free(); return; }
    um_segment_t *seg = _x_segment_lookup(p);
    if (UM_UNLIKELY(seg == NULL)) { _x_free_foreign(p); return; }
    if (seg->kind == UM_KIND_HUGE) { _x_huge_free(seg, p); return; }
    um_page_t *page = _x_page_of(seg, p);
    uintptr_t owner = atomic_load_explicit(&UM_PAGE_OWNER(page), UM_RELAXED);
    if (UM_UNLIKELY(page->slot != UM_SLOT_USED)) { _x_warn_ptr("free of a pointer into an unused page:", p); return; }
    um_block_t *b = p;
    if (owner & UM_PAGE_HAS_ALIGNED) {
        b = _x_block_start(seg, page, p);
        if (b == NULL) { _x_warn_ptr("free of a pointer outside any block:", p); return; }
    } else {
        size_t off = (size_t)((uint8_t *)p - page->start);
        if (UM_UNLIKELY(off >= (size_t)page->reserved * page->block_size)) { /* the header, the hot words */
            _x_warn_ptr("free of a pointer outside any block:", p);
            return;
        }
        if (UM_UNLIKELY(off % page->block_size != 0)) { _x_warn_ptr("free of a pointer into the middle of a block:", p); return; }
    }
    if ((owner & ~UM_PAGE_FLAGS) == _x_thread_id()) _x_page_local_free_slow(_x_tl_heap, page, b);
    else _x_page_remote_free(page, b);
}
