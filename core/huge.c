/* Huge blocks: LARGE_THRESHOLD bytes or more, each in a mapping of its own, so that free gives
 * the memory straight back and realloc can move it with mremap instead of copying.
 *
 * Layout: a segment header at a 4 MiB boundary, the block UM_HUGE_HEADER bytes later (or at the
 * first `align` boundary after the header). When align is 4 MiB or more the block itself starts
 * on a 4 MiB boundary: its header then sits in the 4 MiB unit just below, and the map entry of
 * the block's unit says so (UM_MAP_HUGE_PREV). */
#include "core/internal.h"
#include "hugepages/os.h"
#include "numa/arena.h"
#include "stats/stats.h"

_Atomic size_t _x_huge_live_bytes, _x_huge_live_blocks;

static size_t round_page(size_t n) {
    size_t ps = _x_os_page_size();
    return (n + ps - 1) & ~(ps - 1);
}

void *_x_huge_alloc(size_t size, size_t align) {
    _x_process_init();
    size_t offset = align <= UM_HUGE_HEADER ? UM_HUGE_HEADER : align; /* block start from map base */
    size_t map_align = align <= UM_SEGMENT_SIZE ? UM_SEGMENT_SIZE : align;
    if (size > SIZE_MAX / 2 - offset) { errno = ENOMEM; return NULL; }
    size_t map_size = round_page(offset + size);
    int node;
    uint8_t *base = _x_arena_map(map_size, map_align, _x_arena_current_node(), &node);
    if (base == NULL) { errno = ENOMEM; return NULL; }
    uint8_t *block = base + offset;
    um_segment_t *seg = offset >= UM_SEGMENT_SIZE ? (um_segment_t *)(block - UM_SEGMENT_SIZE) : (um_segment_t *)base;
    seg->kind = UM_KIND_HUGE;
    seg->page_shift = UM_SEGMENT_SHIFT;
    seg->page_count = 1;
    seg->used_pages = 1;
    seg->node = (int16_t)node;
    seg->map_base = base;
    seg->map_size = map_size;
    seg->cookie = (uintptr_t)seg ^ _x_cookie;
    um_page_t *page = &seg->pages[0];
    page->start = block;
    UM_SHARED_WRITE(page->slot, UM_SLOT_USED);
    page->reserved = page->capacity = 1;
    UM_PAGE_USED(page) = 1;
    atomic_store_explicit(&UM_PAGE_OWNER(page), 0, UM_RELAXED);
    if (offset >= UM_SEGMENT_SIZE) {
        _x_segmap_set(base, map_size, UM_MAP_INTERIOR);
        atomic_store_explicit(&_x_segmap[(uintptr_t)block >> UM_SEGMENT_SHIFT], UM_MAP_HUGE_PREV, memory_order_release);
    } else {
        _x_segmap_set(base, map_size, UM_SEGMENT_SHIFT);
    }
    _x_segment_register(seg);
    atomic_fetch_add_explicit(&_x_huge_live_bytes, _x_huge_usable(seg, block), UM_RELAXED);
    atomic_fetch_add_explicit(&_x_huge_live_blocks, 1, UM_RELAXED);
    UM_STAT_SEGMENT_MAPPED(seg);
    return block;
}

size_t _x_huge_usable(um_segment_t *seg, const void *p) {
    return (size_t)((uint8_t *)seg->map_base + seg->map_size - (const uint8_t *)p);
}

void _x_huge_free(um_segment_t *seg, void *p) {
    if (UM_UNLIKELY(p != seg->pages[0].start)) { _x_warn_ptr("free of a pointer inside a large block:", p); return; }
    atomic_fetch_sub_explicit(&_x_huge_live_bytes, _x_huge_usable(seg, p), UM_RELAXED);
    atomic_fetch_sub_explicit(&_x_huge_live_blocks, 1, UM_RELAXED);
    _x_segment_unregister(seg);
    UM_STAT_SEGMENT_UNMAPPED(seg);
    void *base = seg->map_base;
    size_t size = seg->map_size;
    _x_segmap_clear(base, size);
    _x_arena_unmap(base, size);
}

/* Grow or shrink in the kernel: mremap moves page tables, never bytes. */
void *_x_huge_realloc(um_segment_t *seg, void *p, size_t size) {
    if (p != seg->pages[0].start || seg->map_base != (void *)seg) return NULL; /* over-aligned: copy */
    size_t offset = (size_t)((uint8_t *)p - (uint8_t *)seg);
    if (size > SIZE_MAX / 2 - offset) return NULL;
    size_t new_size = round_page(offset + size), old_size = seg->map_size;
    size_t old_usable = _x_huge_usable(seg, p);
    _x_segment_unregister(seg);
    _x_segmap_clear(seg, old_size);
    um_segment_t *nseg = _x_os_remap(seg, old_size, new_size, UM_SEGMENT_SIZE);
    if (nseg == NULL) nseg = seg; /* unchanged */
    else {
        nseg->map_base = nseg;
        nseg->map_size = new_size;
        nseg->cookie = (uintptr_t)nseg ^ _x_cookie;
        nseg->pages[0].start = (uint8_t *)nseg + offset;
    }
    _x_segmap_set(nseg, nseg->map_size, UM_SEGMENT_SHIFT);
    _x_segment_register(nseg);
    if (nseg == seg && new_size != old_size) return NULL;
    atomic_fetch_add_explicit(&_x_huge_live_bytes, _x_huge_usable(nseg, nseg->pages[0].start) - old_usable, UM_RELAXED);
    return nseg->pages[0].start;
}
