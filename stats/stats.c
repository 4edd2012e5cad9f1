/* Statistics: process-wide totals summed on demand (um_get_totals). */
#include <string.h>

#include "core/internal.h"
#include "hugepages/os.h"
#include "stats/stats.h"
#include "umalloc.h"

void _x_stats_init(void) {}

/* Walk every segment under the registry lock. The per-page counters are written by their owners
 * without locks; reading them racily gives a snapshot that is exact when the program is quiet
 * and close otherwise, which is what statistics need. */
void _x_stats_totals(um_totals_t *out) {
    memset(out, 0, sizeof *out);
    size_t hdr = (sizeof(um_segment_t) + 4095) & ~(size_t)4095;
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
            size_t used = UM_SHARED_READ(page->used);
            out->live_blocks += used;
            out->live_bytes += used * bsize;
            out->free_bytes += area - used * bsize;
            out->committed_bytes += area;
        }
    }
    _x_unlock(&_x_segments_lock);
    out->purged_bytes = atomic_load_explicit(&_x_os_stats.purged_total, UM_RELAXED);
    _x_lock(&_x_registry_lock);
    out->threads = _x_heap_count;
    _x_unlock(&_x_registry_lock);
}
