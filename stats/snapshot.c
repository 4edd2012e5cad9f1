/* The snapshot: what the core counts, summed on the reader's side (see stats/stats.h). */
#include <stddef.h>
#include <string.h>

#include "core/internal.h"
#include "os/os.h"
#include "hugepages/pagesize.h"
#include "stats/stats.h"

/* ---- the snapshot ----------------------------------------------------------------------- */
static void add_heap(uint64_t *mallocs, uint64_t *frees, um_stats_t *out, const um_heap_stats_t *h, uint64_t *ia, uint64_t *ifr) {
    for (size_t b = 0; b < UM_BIN_COUNT; b++) {
        mallocs[b] += UM_SHARED_READ(h->mallocs[b]);
        frees[b] += UM_SHARED_READ(h->frees[b]);
    }
    out->remote_frees += UM_SHARED_READ(h->remote_frees);
    for (size_t c = 0; c < UM_CALL_COUNT; c++) out->calls[c] += UM_SHARED_READ(h->calls[c]);
    *ia += UM_SHARED_READ(h->internal_allocs);
    *ifr += UM_SHARED_READ(h->internal_frees);
    out->mallocs += UM_SHARED_READ(h->huge_reuses); /* a huge block freed and taken again by its thread */
    out->frees += UM_SHARED_READ(h->huge_reuses);
    out->usable_bytes += UM_SHARED_READ(h->huge_reused_bytes);
}

/* Per-node counts of `bytes` of a segment bound for placement key `node` (numa/policy.h):
 * memory spread over several nodes counts in equal shares over the process's node list, as
 * the mapped bytes do (core/counters.c). */
static void node_add(uint64_t *per_node, int node, uint64_t bytes) {
    if (node == UMI_NUMA_SPREAD) {
        uint64_t nodes = umi_numa_process_nodes();
        uint64_t share = bytes / (uint64_t)__builtin_popcountll(nodes), rest = bytes - share * (uint64_t)__builtin_popcountll(nodes);
        for (int i = 0; i < UM_STATS_NODES; i++)
            if (nodes >> i & 1) { per_node[i] += share + rest; rest = 0; }
        return;
    }
    per_node[node < 0 || node >= UM_STATS_NODES ? 0 : node] += bytes;
}

/* Of a page in use, the OS pages its carved blocks span, and the one holding a small page's
 * hot words (its last 4 KiB). */
static uint64_t page_touched(const um_segment_t *seg, const um_page_t *page, size_t area) {
    size_t carved = (size_t)UM_SHARED_READ(page->capacity) * UM_SHARED_READ(page->block_size);
    size_t span = (carved + 4095) & ~(size_t)4095;
    if (seg->kind == UM_KIND_SMALL && span + 4096 <= area) span += 4096;
    return span < area ? span : area;
}

/* What of a segment the kernel can have made resident: the OS pages touched, and where
 * transparent huge pages were advised, each 2 MiB half of it that any of them lies in (the kernel
 * backs an advised range's first fault with a whole huge page when it has one). */
#define UM_THP_SIZE ((size_t)2 << 20)
typedef struct touch_s {
    size_t bytes;    /* OS pages touched */
    unsigned halves; /* bit h: something touched in the h-th 2 MiB of the segment */
} touch_t;
static void touch(touch_t *t, size_t at, size_t len) {
    if (len == 0) return;
    t->bytes += len;
    t->halves |= (at < UM_THP_SIZE ? 1u : 0u) | (at + len > UM_THP_SIZE ? 2u : 0u);
}
static size_t segment_resident(const um_segment_t *seg, const touch_t *t) {
    if (UM_PAGES_KIND(seg->page_kind) != UM_PAGES_THP) return t->bytes;
    return (size_t)__builtin_popcount(t->halves) * UM_THP_SIZE;
}

int umi_stats_snapshot(um_stats_t *out, int in_signal) {
    uint64_t huge_kept = 0; /* freed huge blocks their threads keep */
    if (in_signal && umi_locks_held_by_me()) return -1;
    memset(out, 0, sizeof *out);
    out->version = UM_STATS_VERSION;
    uint64_t mallocs[UM_BIN_COUNT] = {0}, frees[UM_BIN_COUNT] = {0};
    uint64_t internal_allocs = 0, internal_frees = 0;
    size_t hdr = (sizeof(um_segment_t) + 4095) & ~(size_t)4095;

    umi_lock(&umi_registry_lock);
    for (um_heap_t *h = umi_heap_registry; h; h = h->reg_next) {
        add_heap(mallocs, frees, out, &h->stats, &internal_allocs, &internal_frees);
        out->free_bytes += UM_SHARED_READ(h->extent_cache.bytes); /* in use as far as the arenas know */
    }
    add_heap(mallocs, frees, out, &umi_counters.exited, &internal_allocs, &internal_frees);
    out->threads = umi_heap_count;
    out->threads_exited = umi_counters.exited_threads;
    umi_unlock(&umi_registry_lock);
    add_heap(mallocs, frees, out, &umi_heap_backup.stats, &internal_allocs, &internal_frees);
    size_t heaps = atomic_load_explicit(&umi_heap_mapped_bytes, UM_RELAXED); /* pooled ones too: never unmapped */
    out->metadata_bytes += heaps;
    out->mapped_bytes += heaps;
    out->committed_bytes += heaps;

    umi_lock(&umi_abandoned_lock);
    umi_lock(&umi_segments_lock);
    for (um_segment_t *seg = umi_segment_registry; seg; seg = seg->all_next) {
        out->segments++;
        out->mapped_bytes += seg->map_size;
        if (seg->kind == UM_KIND_HUGE && UM_SHARED_READ(seg->pages[0].slot) != UM_SLOT_USED) {
            /* freed, kept by its thread (core/huge.c): its free is counted once it is taken or released */
            huge_kept++;
            out->metadata_bytes += UM_HUGE_HEADER;
            out->free_bytes += seg->map_size - UM_HUGE_HEADER;
            out->committed_bytes += seg->map_size;
            node_add(out->node_committed_bytes, seg->node, seg->map_size);
            continue;
        }
        if (seg->kind == UM_KIND_HUGE) {
            size_t usable = umi_huge_usable(seg, seg->pages[0].start);
            out->large_blocks++;
            out->large_bytes += usable;
            out->metadata_bytes += UM_HUGE_HEADER;
            out->committed_bytes += seg->map_size;
            node_add(out->node_committed_bytes, seg->node, seg->map_size);
            node_add(out->node_live_bytes, seg->node, usable);
            continue;
        }
        out->metadata_bytes += hdr;
        out->committed_bytes += hdr;
        if (seg->kind == UM_KIND_EXTENT) { /* blocks in use and free pages not purged; the blocks are counted by class below */
            size_t in_use = UM_EXTENT_END_PAGE - UM_EXTENT_FIRST_PAGE - UM_SHARED_READ(seg->extents.free_pages);
            size_t dirty = UM_SHARED_READ(seg->extents.dirty_pages);
            out->committed_bytes += (in_use + dirty) << UM_EXTENT_PAGE_SHIFT;
            out->free_bytes += dirty << UM_EXTENT_PAGE_SHIFT;
            node_add(out->node_committed_bytes, seg->node, hdr + ((in_use + dirty) << UM_EXTENT_PAGE_SHIFT));
            node_add(out->node_live_bytes, seg->node, in_use << UM_EXTENT_PAGE_SHIFT);
            continue;
        }
        touch_t touched = {.bytes = hdr, .halves = 1};
        size_t psize = (size_t)1 << seg->page_shift;
        for (size_t i = 0; i < seg->page_count; i++) {
            um_page_t *page = &seg->pages[i];
            size_t bsize = UM_SHARED_READ(page->block_size);
            uint8_t slot = UM_SHARED_READ(page->slot);
            size_t area = i == 0 ? psize - hdr : psize, at = i * psize + (i == 0 ? hdr : 0);
            if (slot == UM_SLOT_DIRTY) { out->committed_bytes += area; touch(&touched, at, area); }
            if (bsize == 0 || slot != UM_SLOT_USED) continue;
            out->pages++;
            out->committed_bytes += area;
            touch(&touched, at, page_touched(seg, page, area));
            um_page_hot_t *hot = umi_page_hot_in(seg, page);
            uint64_t allocs = UM_SHARED_READ(hot->allocs), freed = UM_SHARED_READ(hot->frees);
            /* the remote frees not yet collected: the list's length is in its word */
            uint64_t remote = UM_TF_COUNT(atomic_load_explicit(&page->thread_free, UM_RELAXED));
            freed += remote;
            out->remote_frees += remote;
            size_t bin = UM_SHARED_READ(page->bin);
            mallocs[bin] += allocs;
            frees[bin] += freed;
            uint64_t live = allocs > freed ? allocs - freed : 0;
            out->free_bytes += area > live * bsize ? area - live * bsize : 0;
            node_add(out->node_live_bytes, seg->node, live * bsize);
        }
        node_add(out->node_committed_bytes, seg->node, segment_resident(seg, &touched));
    }
    umi_unlock(&umi_segments_lock);
    umi_unlock(&umi_abandoned_lock);
    for (size_t i = 0; i < UM_EXTENT_ARENAS_MAX; i++) {
        for (size_t b = 1; b < UM_BIN_COUNT; b++) { /* 12, 16 KiB too: buffers realloc grew (core/alloc.c) */
            mallocs[b] += UM_SHARED_READ(umi_extent_arenas[i].counts->mallocs[b]);
            frees[b] += UM_SHARED_READ(umi_extent_arenas[i].counts->frees[b]);
        }
        out->free_bytes += UM_SHARED_READ(umi_extent_arenas[i].quick_bytes); /* in use as far as the page maps know */
    }

    /* Per class, then totals. */
    for (size_t b = 1; b < UM_BIN_COUNT; b++) {
        um_stats_class_t *c = &out->classes[b];
        c->size = umi_bin_size(b);
        c->mallocs = mallocs[b];
        c->frees = frees[b] < c->mallocs ? frees[b] : c->mallocs; /* racy reads: never negative live */
        c->live_blocks = c->mallocs - c->frees;
        c->live_bytes = c->live_blocks * c->size;
        out->mallocs += c->mallocs;
        out->frees += c->frees;
        out->live_blocks += c->live_blocks;
        out->live_bytes += c->live_bytes;
        out->usable_bytes += c->mallocs * c->size;
    }
    uint64_t huge_allocs = atomic_load_explicit(&umi_counters.huge_allocs, UM_RELAXED), huge_frees = atomic_load_explicit(&umi_counters.huge_frees, UM_RELAXED);
    out->mallocs += huge_allocs;
    out->frees += huge_frees + huge_kept;
    out->live_blocks += out->large_blocks;
    out->live_bytes += out->large_bytes;
    out->usable_bytes += atomic_load_explicit(&umi_counters.huge_usable_total, UM_RELAXED);

    size_t cached = atomic_load_explicit(&umi_huge_cached_bytes, UM_RELAXED);
    out->mapped_bytes += cached; /* freed huge blocks kept for reuse */
    out->free_bytes += cached;
    out->committed_bytes += cached; /* resident until their purge */
    out->purged_bytes = atomic_load_explicit(&umi_os_stats.purged_total, UM_RELAXED);
    out->failed_allocs = atomic_load_explicit(&umi_counters.failed, UM_RELAXED);
    out->invalid_frees = atomic_load_explicit(&umi_counters.invalid, UM_RELAXED);
    for (size_t c = 0; c < UM_CALL_COUNT; c++) out->calls[c] += atomic_load_explicit(&umi_counters.calls[c], UM_RELAXED);
    internal_allocs += atomic_load_explicit(&umi_counters.internal_allocs, UM_RELAXED);
    internal_frees += atomic_load_explicit(&umi_counters.internal_frees, UM_RELAXED);
    out->calls[UM_CALL_MALLOC] = out->mallocs > internal_allocs ? out->mallocs - internal_allocs : 0;
    out->calls[UM_CALL_FREE] = (out->frees > internal_frees ? out->frees - internal_frees : 0) +
                               atomic_load_explicit(&umi_counters.null_frees, UM_RELAXED) + out->invalid_frees;

    out->node_count = 1;
    for (size_t n = 0; n < UM_STATS_NODES; n++) {
        out->node_mapped_bytes[n] = atomic_load_explicit(&umi_counters.node_mapped[n], UM_RELAXED);
        out->node_migrated_pages[n] = atomic_load_explicit(&umi_counters.node_migrated[n], UM_RELAXED);
        if (out->node_mapped_bytes[n] != 0 || out->node_migrated_pages[n] != 0) out->node_count = (unsigned)n + 1;
    }
    for (size_t k = 0; k < UM_PAGES_KINDS; k++) out->page_kind_mapped_bytes[k] = atomic_load_explicit(&umi_counters.kind_mapped[k], UM_RELAXED);
    /* Units of reserved runs that hold no segment (hugepages/reserve.c): mapped and resident. */
    for (size_t k = 0; k < UM_PAGES_KINDS; k++) {
        uint64_t idle = atomic_load_explicit(&umi_pages_stats.idle[k], UM_RELAXED);
        out->page_kind_mapped_bytes[k] += idle;
        out->node_mapped_bytes[0] += idle;
        out->mapped_bytes += idle;
        out->committed_bytes += idle;
        out->free_bytes += idle;
    }
    out->hugepage_fallbacks = atomic_load_explicit(&umi_pages_stats.fallbacks, UM_RELAXED);
    out->locked_bytes = atomic_load_explicit(&umi_counters.locked, UM_RELAXED) + atomic_load_explicit(&umi_pages_stats.idle_locked, UM_RELAXED);

    atomic_store_explicit(&umi_counters.sampled_pooled_live, out->live_bytes - out->large_bytes, UM_RELAXED);
    umi_count_peak(out->live_bytes);
    out->peak_live_bytes = atomic_load_explicit(&umi_counters.peak_live, UM_RELAXED);
    if (out->peak_live_bytes < out->live_bytes) out->peak_live_bytes = out->live_bytes;
#if defined(UM_STATS_REQUESTED) && UM_STATS_REQUESTED
    out->requested_counted = 1;
#endif
    return 0;
}

/* Programs built against version 2's header have a um_stats_t that ends where version 3 added
 * the per-node and huge-page fields. */
#define UM_STATS_V2_SIZE offsetof(um_stats_t, node_committed_bytes)

UM_API void um_stats_get_sized(um_stats_t *out, size_t size) {
    if (out == NULL || size < sizeof out->version) return;
    umi_process_init();
    if (size >= sizeof *out) { umi_stats_snapshot(out, 0); return; }
    um_stats_t s;
    umi_stats_snapshot(&s, 0);
    s.version = 2; /* what such a caller's fields are */
    memcpy(out, &s, size);
}

UM_API void(um_stats_get)(um_stats_t *out) { um_stats_get_sized(out, UM_STATS_V2_SIZE); }

/* um_get_totals: the same walk, fewer fields. */
UM_API void um_get_totals(um_totals_t *out) {
    if (out == NULL) return;
    um_stats_t s;
    umi_stats_snapshot(&s, 0);
    memset(out, 0, sizeof *out);
    out->mapped_bytes = s.mapped_bytes;
    out->committed_bytes = s.committed_bytes;
    out->live_bytes = s.live_bytes;
    out->live_blocks = s.live_blocks;
    out->large_bytes = s.large_bytes;
    out->free_bytes = s.free_bytes;
    out->metadata_bytes = s.metadata_bytes;
    out->purged_bytes = s.purged_bytes;
    out->threads = s.threads;
    out->segments = s.segments;
}
