/* Statistics: process-wide totals summed on demand (um_get_totals). */
#include <string.h>

#include "core/internal.h"
#include "hugepages/os.h"
#include "stats/stats.h"
#include "umalloc.h"

void _x_stats_init(void) {}

/* Length of a block list of `page`, read while its owner may be changing it. Every link is
 * checked to be a block of this page before it is followed, so a racing owner can make the
 * count wrong but never make us read outside the page; the segment cannot be unmapped meanwhile
 * (the caller holds the registry lock). */
static uint32_t racy_list_length(const um_page_t *page, const um_block_t *b) {
    const uint8_t *lo = page->start;
    size_t bsize = UM_SHARED_READ(page->block_size);
    uint32_t cap = UM_SHARED_READ(page->capacity), n = 0;
    if (bsize == 0) return 0;
    const uint8_t *hi = lo + (size_t)cap * bsize;
    while (b != NULL && n < cap) {
        const uint8_t *at = (const uint8_t *)b;
        if (at < lo || at >= hi || (size_t)(at - lo) % bsize != 0) break;
        n++;
        b = __atomic_load_n(&b->next, __ATOMIC_RELAXED);
    }
    return n;
}

/* Blocks of the page that are handed out: used counts everything but the local free list, so
 * take away the free list and the remote list. Exact when the owner is quiet. Under TSan, the
 * lists of another live thread are not walked (the tool would rightly call the read a race):
 * their blocks count as live. */
static uint32_t page_live(const um_page_t *page, bool walk) {
    uint32_t used = UM_SHARED_READ(UM_PAGE_USED(page));
    if (!walk) return used;
    uintptr_t tf = atomic_load_explicit(&page->thread_free, UM_RELAXED) & ~(uintptr_t)3;
    uint32_t idle = racy_list_length(page, UM_SHARED_READ(page->free)) + racy_list_length(page, (const um_block_t *)tf);
    return idle >= used ? 0 : used - idle;
}

#if defined(__SANITIZE_THREAD__)
#define UM_WALK_OTHERS 0
#else
#define UM_WALK_OTHERS 1
#endif

/* Walk every segment under the registry lock (and the abandoned lock, so that no thread adopts
 * a segment while we read its lists). */
void _x_stats_totals(um_totals_t *out) {
    memset(out, 0, sizeof *out);
    size_t hdr = (sizeof(um_segment_t) + 4095) & ~(size_t)4095;
    um_heap_t *self = _x_tl_heap;
    _x_lock(&_x_abandoned_lock);
    _x_lock(&_x_segments_lock);
    for (um_segment_t *seg = _x_segment_registry; seg; seg = seg->all_next) {
        out->segments++;
        out->mapped_bytes += seg->map_size;
        if (seg->kind == UM_KIND_HUGE) {
            size_t usable = _x_huge_usable(seg, seg->pages[0].start);
            out->live_bytes += usable;
            out->large_bytes += usable;
            out->live_blocks++;
            out->metadata_bytes += UM_HUGE_HEADER;
            out->committed_bytes += seg->map_size;
            continue;
        }
        um_heap_t *owner = atomic_load_explicit(&seg->heap, UM_RELAXED);
        bool walk = UM_WALK_OTHERS || owner == self || owner == NULL;
        out->metadata_bytes += hdr;
        out->committed_bytes += hdr;
        size_t psize = (size_t)1 << seg->page_shift;
        for (size_t i = 0; i < seg->page_count; i++) {
            um_page_t *page = &seg->pages[i];
            size_t bsize = UM_SHARED_READ(page->block_size);
            uint8_t slot = UM_SHARED_READ(page->slot);
            size_t area = i == 0 ? psize - hdr : psize;
            if (slot == UM_SLOT_DIRTY) out->committed_bytes += area;
            if (bsize == 0 || slot != UM_SLOT_USED) continue;
            size_t live = page_live(page, walk);
            out->live_blocks += live;
            out->live_bytes += live * bsize;
            out->free_bytes += area - live * bsize;
            out->committed_bytes += area;
        }
    }
    _x_unlock(&_x_segments_lock);
    _x_unlock(&_x_abandoned_lock);
    out->mapped_bytes += atomic_load_explicit(&_x_huge_cached_bytes, UM_RELAXED); /* freed huge blocks kept for reuse */
    out->purged_bytes = atomic_load_explicit(&_x_os_stats.purged_total, UM_RELAXED);
    _x_lock(&_x_registry_lock);
    out->threads = _x_heap_count;
    _x_unlock(&_x_registry_lock);
}
