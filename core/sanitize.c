/* ASan builds: a block handed out is poisoned but for the bytes asked for (base/sanitize.h).
 * Elsewhere this file is empty. */
#include "core/internal.h"

#if UM_ASAN
/* The block holding p, [*start, *end), or false if p is in no block of ours in use. */
static bool block_bounds(const void *p, uint8_t **start, uint8_t **end) {
    um_segment_t *seg = umi_segment_lookup(p);
    if (seg == NULL) return false;
    if (seg->kind == UM_KIND_HUGE) {
        *start = seg->pages[0].start;
        *end = *start + umi_huge_usable(seg, *start);
        return (const uint8_t *)p >= *start && (const uint8_t *)p < *end;
    }
    if (seg->kind == UM_KIND_EXTENT) { /* p is a block start, or no block's */
        *start = (uint8_t *)p;
        *end = *start + umi_extent_usable(seg, p);
        return *end != *start;
    }
    um_page_t *page = umi_page_of(seg, p);
    if (page->slot != UM_SLOT_USED) return false;
    *start = umi_block_start(seg, page, p);
    *end = *start + page->block_size;
    return *start != NULL;
}

/* The slack (what the block holds beyond n bytes from p, and before p for an aligned block)
 * stays poisoned: ASan then reports an overflow of even one byte. Poisoning the whole block
 * first, then unpoisoning [p, p + n), gives the last partial 8-byte granule the shadow value
 * that opens exactly its first n % 8 bytes. */
void umi_san_expose(const void *p, size_t n) {
    uint8_t *start, *end;
    if (!block_bounds(p, &start, &end)) return;
    UM_SAN_POISON(start, (size_t)(end - start));
    UM_SAN_UNPOISON(p, n);
}

/* A program may use the whole usable size it was told (malloc_usable_size), as ASan's own
 * allocator allows: open it, unless the block is free (a use after free stays reported). */
void umi_san_open_usable(const void *p, size_t n) {
    uint8_t *start, *end;
    if (n == 0 || !block_bounds(p, &start, &end)) return;
    if (umi_key_get((const um_block_t *)start) == UM_FREE_MARK) return;
    UM_SAN_UNPOISON(p, n);
}

/* What realloc may copy: the bytes of [p, p + n) open to the program (the request, or the usable
 * size once it was asked for), not the slack, which it never wrote. */
size_t umi_san_live_size(const void *p, size_t n) {
    const void *bad = UM_SAN_FIRST_POISONED(p, n);
    return bad == NULL ? n : (size_t)((const uint8_t *)bad - (const uint8_t *)p);
}
#endif
