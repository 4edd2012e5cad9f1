/* Segments: 4 MiB aligned regions cut into page slots (core/slots.c). A heap owns its
 * segments; free slots are purged after UMALLOC_PURGE_DELAY_MS; an empty segment waits in a
 * small process-wide cache before it is unmapped; a dead thread's segments are abandoned and
 * adopted by the next thread that needs a page. */
#include <sched.h>
#include <string.h>

#include "core/internal.h"
#include "os/os.h"
#include "os/region.h"
#include "numa/arena.h"
#include "hugepages/pagesize.h"
#include "core/counters.h"

_Static_assert(UM_REGION_UNIT_SHIFT == UM_SEGMENT_SHIFT && UM_REGION_BITS == UM_REGION_SHIFT,
               "the region is carved in segments, and free() knows its size");

um_segment_t *umi_segment_registry;
uint16_t umi_small_region_hi = UM_REGION_NONE;
static bool small_in_region; /* small segments come from the region */

static um_segment_t *cache_list;
static size_t cache_count;
/* Empty segments kept for reuse: resident until the purge delay, mapped until the retain time.
 * The count bounds address space (4 GiB) and the walks of the list, not memory: a segment
 * dropped because the cache is full is unmapped at once, and a program that frees a heap bigger
 * than the cache and builds it again faults every page of the difference in again. */
#define UM_CACHE_MAX 1024

static void segment_unmap(um_segment_t *seg);
static void cache_put(um_segment_t *seg);
static void cache_trim(bool purge_all, bool unmap_all, size_t keep_dirty);

static const uint8_t kind_shift[UM_KIND_COUNT] = {UM_SMALL_PAGE_SHIFT, UM_MEDIUM_PAGE_SHIFT, UM_LARGE_PAGE_SHIFT, UM_SEGMENT_SHIFT, UM_EXTENT_PAGE_SHIFT};

void umi_segment_register(um_segment_t *seg) {
    umi_lock(&umi_segments_lock);
    seg->all_prev = NULL;
    seg->all_next = umi_segment_registry;
    if (umi_segment_registry) umi_segment_registry->all_prev = seg;
    umi_segment_registry = seg;
    umi_unlock(&umi_segments_lock);
}

void umi_segment_unregister(um_segment_t *seg) {
    umi_lock(&umi_segments_lock);
    if (seg->all_prev) seg->all_prev->all_next = seg->all_next;
    else umi_segment_registry = seg->all_next;
    if (seg->all_next) seg->all_next->all_prev = seg->all_prev;
    umi_unlock(&umi_segments_lock);
}


/* ---- the small-page region --------------------------------------------------------------- */
void umi_segment_init_process(void) {
    uintptr_t base = umi_region_reserve(umi_cookie >> 12);
    /* The map's leaves over the whole region now, from its pool (core/segmap.c): a unit the
     * region hands out is then never in a range the map cannot tell about. */
    for (uintptr_t at = base; base != 0 && at < base + ((uintptr_t)1 << UM_REGION_SHIFT); at += UM_SEGMENT_SIZE << UM_SEGMAP_LEAF_SHIFT)
        if (!umi_segmap_cover((void *)at)) base = 0; /* (never: the pool has room) no region then */
    small_in_region = base != 0;
    /* With a purge delay of 0, memory goes back at the free that empties a page: only the slow
     * path tests for that (umi_page_local_free_slow), so every free takes it. */
    if (base != 0 && umi_purge_delay() != 0) umi_small_region_hi = (uint16_t)(base >> UM_REGION_SHIFT);
    umi_pages_reserve_init(); /* UMALLOC_RESERVE: units of the region, mapped now */
}

/* The OS refused memory: under RLIMIT_AS (ulimit -v), or with overcommit off, what umalloc
 * keeps mapped for reuse counts as much as what the program uses. Give back what can go, and
 * say whether a retry may succeed:
 *  - cached segments and freed huge blocks, which are kept for speed only;
 *  - the never-used rest of the small-page region (a program that lowered RLIMIT_AS after
 *    start-up has the whole reservation counted against its limit). free() then finds small
 *    blocks through the segment map, as it does medium ones: the region's window is no longer
 *    ours alone. */
bool umi_release_for_retry(void) {
    size_t unmaps = atomic_load_explicit(&umi_os_stats.unmaps, UM_RELAXED);
    umi_segment_cache_trim(true);
    bool released = atomic_load_explicit(&umi_os_stats.unmaps, UM_RELAXED) != unmaps;
    if (!small_in_region) return released;
    umi_lock(&umi_cache_lock);
    size_t shrunk = umi_region_shrink();
    umi_unlock(&umi_cache_lock);
    if (shrunk == 0) return released;
    __atomic_store_n(&umi_small_region_hi, UM_REGION_NONE, __ATOMIC_RELAXED);
    return true;
}

/* A small segment at an address of the region, or NULL (then it is mapped like the others):
 * from a run of hugepages/ (the reservation, 1 GiB pages) first, mapped already. A run is
 * mapped once for every thread, so each unit is bound for its taker's placement as it is taken:
 * pages not yet touched then land where the policy says (those of a unit used before stay where
 * they are; the mbind of part of a 1 GiB page is refused, and the kernel places those). */
static um_segment_t *region_map(int want, um_pages_use_t use, int *node, unsigned *kind) {
    bool dirty = false;
    umi_lock(&umi_cache_lock);
    void *unit = umi_pages_run_take(kind, &dirty);
    void *at = unit ? NULL : umi_region_take();
    umi_unlock(&umi_cache_lock);
    if (unit != NULL) {
        /* Counted as the taker's placement even where the kernel refused the binding: the
         * heap finds its segments by placement, and one it could not find again would leave
         * it taking a unit for every page. */
        if (umi_numa_on) umi_numa_bind(unit, UM_SEGMENT_SIZE, want);
        *node = umi_numa_on ? want : UMI_NUMA_UNBOUND;
        if (dirty) memset(unit, 0, UM_SEGMENT_SIZE); /* a fresh segment reads as zeros */
        return unit;
    }
    if (at == NULL) return NULL;
    um_segment_t *seg = umi_arena_commit(at, UM_SEGMENT_SIZE, want, use, node, kind);
    if (seg == NULL) {
        umi_lock(&umi_cache_lock);
        umi_region_put(at);
        umi_unlock(&umi_cache_lock);
    }
    return seg;
}

/* ---- getting and dropping segments ------------------------------------------------------ */
/* A small page's hot words need no writing: every slot is clean, and a clean slot reads zero,
 * owner word included (fresh from the OS, or purged whole by slot_purge). */
static void segment_format(um_segment_t *seg, um_kind_t kind) {
    UM_SAN_UNPOISON(seg, UM_SEGMENT_SIZE); /* ASan: blocks of the old layout may lie where hot words go */
    /* An extent segment's page map lies where the page structs go: what segment_format does not
     * write below must read zero (um_page_t.recarve, for one). */
    if (seg->kind == UM_KIND_EXTENT) memset(&seg->extents, 0, sizeof seg->extents);
    memset(seg->hot, 0, sizeof seg->hot); /* medium and large pages' */
    seg->kind = (uint8_t)kind;
    seg->moved_dirty = 0;
    seg->page_shift = kind_shift[kind];
    /* an extent segment has no page slots: its page map is core/extent.c's */
    seg->page_count = kind == UM_KIND_EXTENT ? 0 : (uint8_t)umi_segment_slots(kind, kind_shift[kind]);
    seg->used_pages = 0;
    seg->dirty_pages = 0;
    /* Medium and large segments have 8 slots and 1: their page structs all lie in the header's
     * first OS page, and writing no more leaves the second one untouched in a fresh segment
     * (4 KiB less resident for each; a program with many threads has a large segment per
     * large size class and thread). A small segment's every struct is written, the guard
     * slot's too: a stray free() into the guard page reads it. */
    size_t structs = kind == UM_KIND_SMALL ? UM_PAGES_MAX : seg->page_count;
    for (size_t i = 0; i < structs; i++) {
        um_page_t *page = &seg->pages[i];
        page->index = (uint8_t)i;
        page->freed_at_ms = 0; /* never purged by the delay (umi_purge_regret) */
        UM_SHARED_WRITE(page->slot, UM_SLOT_CLEAN);
        UM_SHARED_WRITE(page->block_size, 0);
    }
    umi_segmap_set(seg); /* the map entry carries the page shift */
}

/* ---- layouts over resident memory ------------------------------------------------------ */
/* A free slot of a segment formatted afresh over memory that may hold old bytes: dirty, as if its
 * page had just been retired (a page set up there does not take it for zeros; the purge delay runs). */
static void slot_holds_old_bytes(um_segment_t *seg, um_page_t *page, uint64_t now) {
    UM_SHARED_WRITE(page->slot, UM_SLOT_DIRTY);
    page->freed_at_ms = now;
    seg->dirty_pages++;
}

/* How many 64 KiB spans (small slots) a slot of seg covers: *span, and a mask of as many bits. */
static uint64_t slot_spans(const um_segment_t *seg, size_t *span) {
    *span = (size_t)1 << (seg->page_shift - UM_SMALL_PAGE_SHIFT);
    return *span >= 64 ? ~(uint64_t)0 : ((uint64_t)1 << *span) - 1;
}

/* The 64 KiB spans of seg that may hold old bytes: those of its dirty slots, and the first (the
 * header's). */
static uint64_t dirty_spans(const um_segment_t *seg) {
    size_t span;
    uint64_t mask = slot_spans(seg, &span), dirty = 1;
    for (size_t i = 0; i < seg->page_count; i++)
        if (seg->pages[i].slot == UM_SLOT_DIRTY) dirty |= mask << (i * span);
    return dirty;
}

/* seg formatted for `kind`, the slots over the spans `dirty` taken for dirty (an extent
 * segment's pages there, moved_dirty). A small slot holds its hot words: over old bytes its
 * owner word is cleared, so that a stray free() into it finds no owner (a clean slot reads
 * zero, owner word included). */
static void format_over_old_bytes(um_segment_t *seg, um_kind_t kind, uint64_t dirty) {
    segment_format(seg, kind);
    if (kind == UM_KIND_EXTENT) {
        seg->moved_dirty = dirty;
        return;
    }
    uint64_t now = umi_os_now_ms();
    size_t span;
    uint64_t mask = slot_spans(seg, &span);
    for (size_t i = 0; i < seg->page_count; i++) {
        if (!(dirty >> (i * span) & mask)) continue;
        if (kind == UM_KIND_SMALL) atomic_store_explicit(&UM_PAGE_OWNER(&seg->pages[i]), 0, UM_RELAXED);
        slot_holds_old_bytes(seg, &seg->pages[i], now);
    }
}

/* Segments the heaps took lately (cached or new), for umi_segment_handoff_keep: counted in
 * windows of UM_PURGE_WINDOW_MS, the one under way and the one before. Relaxed atomics: a count
 * lost to a race only changes how many segments a hand-off keeps resident. */
static _Atomic uint32_t demand_now, demand_before;
static _Atomic uint64_t demand_window_ms;

static void demand_roll(uint64_t now) {
    uint64_t start = atomic_load_explicit(&demand_window_ms, UM_RELAXED);
    uint64_t age = umi_os_ms_since(start, now);
    if (age < UM_PURGE_WINDOW_MS || !atomic_compare_exchange_strong_explicit(&demand_window_ms, &start, now, UM_RELAXED, UM_RELAXED))
        return;
    uint32_t last = atomic_exchange_explicit(&demand_now, 0, UM_RELAXED);
    atomic_store_explicit(&demand_before, age < 2 * UM_PURGE_WINDOW_MS ? last : 0, UM_RELAXED);
}

/* How many emptied segments a thread's hand-off leaves resident in the cache: as many as the
 * program's heaps took (cached or new) in the last second or two. A program that replaces its
 * threads in batches (a pool recycled, a thread per request with a working set of megabytes)
 * starts the next batch at once, and each of its threads takes what an exited one emptied;
 * purged, every OS page of it is faulted in again. A program whose threads took few segments
 * lately keeps few: its emptied memory is purged at the exit. At most UM_HANDOFF_KEEP_MAX: a
 * program that goes idle after its threads exit holds no more than that until its next
 * allocation's purge. The first UM_HANDOFF_CACHE_KEEP kept age with the delay, the rest with the
 * base delay (cache_trim): nobody may come for them. */
size_t umi_segment_handoff_keep(void) {
    demand_roll(umi_os_now_ms());
    size_t n = (size_t)atomic_load_explicit(&demand_now, UM_RELAXED) + atomic_load_explicit(&demand_before, UM_RELAXED);
    return n < UM_HANDOFF_CACHE_KEEP ? UM_HANDOFF_CACHE_KEEP : n > UM_HANDOFF_KEEP_MAX ? UM_HANDOFF_KEEP_MAX : n;
}

static void demand_add(void) {
    demand_roll(umi_os_now_ms());
    atomic_fetch_add_explicit(&demand_now, 1, UM_RELAXED);
}

/* A cached segment for `kind`: one in the region for small pages, one outside it for the others
 * (free()'s fast path takes every pointer in the region for a small block); on several NUMA
 * nodes, one bound for the same placement `node` (the cache is per node); with
 * `resident_only`, one that has resident slots. */
static um_segment_t *segment_from_cache(um_kind_t kind, int node, bool resident_only, um_pages_use_t use) {
    bool want_region = kind == UM_KIND_SMALL && small_in_region;
    umi_lock(&umi_cache_lock);
    /* The newest that fits, but first one still resident in the same layout: a segment of
     * another kind is purged whole before it is formatted again (below). */
    um_segment_t *seg = NULL;
    for (um_segment_t *s = cache_list; s != NULL; s = s->next) {
        if ((umi_region_contains(s) != 0) != want_region || (umi_numa_on && s->node != node)) continue;
        if (resident_only && s->dirty_pages == 0) continue;
        if (seg == NULL) seg = s;
        if (s->dirty_pages > 0 && s->kind == kind) { seg = s; break; }
    }
    if (seg) { umi_seg_list_remove(&cache_list, seg); cache_count--; }
    umi_unlock(&umi_cache_lock);
    if (seg == NULL) return NULL;
    unsigned page_kind = umi_pages_for_reused_unit(seg, seg->page_kind, use);
    if (page_kind != seg->page_kind) { /* mapped for a user that filled little, or when umalloc used too little for THP */
        umi_lock(&umi_segments_lock);
        umi_count_mapped(seg, -1);
        seg->page_kind = (uint8_t)page_kind;
        umi_count_mapped(seg, 1);
        umi_unlock(&umi_segments_lock);
    }
    if (seg->kind != kind) { /* slot layout changes */
        /* A hugetlb page or locked memory is not purged: cleared by hand, it stays resident. */
        size_t hdr = (sizeof(um_segment_t) + 4095) & ~(size_t)4095;
        bool cleared = seg->dirty_pages && !umi_pages_splittable(seg->page_kind);
        if (cleared) memset((uint8_t *)seg + hdr, 0, UM_SEGMENT_SIZE - hdr);
        /* Else what was resident stays: the new layout's slots over it are dirty, as if just
         * retired, and the purge delay runs for them (a program that moves on from blocks of
         * 4..16 KiB to big ones would otherwise fault in again what it just freed). It is
         * registered: the statistics walk must not see the layout half changed. */
        uint64_t dirty = cleared ? 0 : dirty_spans(seg);
        umi_lock(&umi_segments_lock);
        format_over_old_bytes(seg, kind, dirty);
        umi_unlock(&umi_segments_lock);
    }
    return seg;
}

/* ---- pages moved across the region's border --------------------------------------------- */
/* The region holds small segments only (free() tells a small block by its address), so an
 * empty small segment in the cache cannot become the extent, medium or large segment a
 * program that moved on to bigger blocks asks for: it would wait there to be purged while a
 * fresh segment faults every page in. Its pages move instead: mremap hands them to an address
 * outside the region with their page tables, no byte copied and no page faulted, and leaves
 * the unit mapped behind, empty, to be made read-only zeros again as any given-back unit is (a
 * unit is never left unmapped, even for a moment: another mapping could take its place in the
 * region's window). Only a segment with resident slots is worth it, of pages the kernel can
 * move (not hugetlb, not locked, not a unit of a reserved run). The new layout takes what
 * may hold old bytes for dirty: the slots over a dirty small slot (moved_dirty for extents). */
static um_segment_t *segment_moved_out(um_kind_t kind, int node, um_pages_use_t use) {
    if (!small_in_region || kind == UM_KIND_SMALL || UM_GUARD_SIZE != 0) return NULL; /* a guard page splits the mapping */
    umi_lock(&umi_cache_lock);
    um_segment_t *seg = NULL;
    for (um_segment_t *s = cache_list; s != NULL; s = s->next) {
        if (!umi_region_contains(s) || s->dirty_pages == 0 || (umi_numa_on && s->node != node)) continue;
        if ((s->page_kind & UM_PAGES_LOCKED) || !umi_pages_splittable(s->page_kind) || umi_pages_run_owns(s)) continue;
        seg = s;
        break;
    }
    if (seg) { umi_seg_list_remove(&cache_list, seg); cache_count--; }
    umi_unlock(&umi_cache_lock);
    if (seg == NULL) return NULL;
    uint64_t dirty = dirty_spans(seg);
    int got_node;
    unsigned got_kind;
    uint8_t *dst = umi_arena_map(UM_SEGMENT_SIZE, UM_SEGMENT_SIZE, seg->node, use, &got_node, &got_kind);
    if (dst != NULL && !umi_segmap_cover(dst)) { umi_arena_unmap(dst, UM_SEGMENT_SIZE); dst = NULL; }
    if (dst == NULL) { cache_put(seg); return NULL; }
    umi_segment_unregister(seg);
    umi_segmap_clear(seg);
    if (umi_os_move_keep(seg, UM_SEGMENT_SIZE, dst) != 0) {
        umi_arena_unmap(dst, UM_SEGMENT_SIZE);
        umi_segmap_set(seg);
        umi_segment_register(seg);
        cache_put(seg);
        return NULL;
    }
    umi_arena_decommit(seg, UM_SEGMENT_SIZE);
    umi_lock(&umi_cache_lock);
    umi_region_put(seg);
    umi_unlock(&umi_cache_lock);
    um_segment_t *moved = (um_segment_t *)dst;
    moved->map_base = moved;
    moved->cookie = (uintptr_t)moved ^ umi_cookie;
    format_over_old_bytes(moved, kind, dirty);
    umi_segment_register(moved);
    return moved;
}

/* A cached segment outside the region with resident slots: a medium or large one whose pages
 * were all retired, or an extent one the arenas gave back. *dirty: the small slots over its
 * dirty slots, and the first (the header). */
static um_segment_t *cached_outside_region(int node, uint64_t *dirty) {
    umi_lock(&umi_cache_lock);
    um_segment_t *seg = NULL;
    for (um_segment_t *s = cache_list; s != NULL; s = s->next) {
        if (umi_region_contains(s) || s->dirty_pages == 0 || (umi_numa_on && s->node != node)) continue;
        if ((s->page_kind & UM_PAGES_LOCKED) || !umi_pages_splittable(s->page_kind)) continue;
        seg = s;
        break;
    }
    if (seg) { umi_seg_list_remove(&cache_list, seg); cache_count--; }
    umi_unlock(&umi_cache_lock);
    if (seg != NULL) *dirty = dirty_spans(seg);
    return seg;
}

/* The other way: a segment outside the region whose blocks were all freed, resident (an extent
 * segment, or a medium or large one from the cache: a program that moves on from blocks of
 * 4..16 KiB to small ones), serves a small segment, moved into a unit of the region (the
 * address the segment leaves is simply unmapped), formatted afresh for small pages over its
 * old bytes (format_over_old_bytes). */
static um_segment_t *segment_moved_in(int node, bool filling) {
    if (!small_in_region || UM_GUARD_SIZE != 0) return NULL; /* a guard page splits the mapping */
    uint64_t dirty;
    um_segment_t *seg = umi_extent_take_free_segment(node, filling, &dirty);
    if (seg == NULL) seg = cached_outside_region(node, &dirty);
    if (seg == NULL) return NULL;
    umi_lock(&umi_cache_lock);
    uint8_t *unit = umi_region_take();
    umi_unlock(&umi_cache_lock);
    if (unit == NULL) { umi_segment_put_unowned(seg, true); return NULL; }
    umi_segment_unregister(seg);
    umi_segmap_clear(seg);
    if (umi_os_move(seg, UM_SEGMENT_SIZE, unit) != 0) {
        /* The kernel may have unmapped the unit before it refused: read-only zeros again. */
        umi_region_decommit(unit);
        umi_lock(&umi_cache_lock);
        umi_region_put(unit);
        umi_unlock(&umi_cache_lock);
        umi_segmap_set(seg);
        umi_segment_register(seg);
        umi_segment_put_unowned(seg, true);
        return NULL;
    }
    um_segment_t *moved = (um_segment_t *)unit;
    moved->map_base = moved;
    moved->cookie = (uintptr_t)moved ^ umi_cookie;
    format_over_old_bytes(moved, UM_KIND_SMALL, dirty);
    umi_segment_register(moved);
    return moved;
}

/* Outside the region no move is needed: a segment of an extent arena whose blocks were all
 * freed, resident, serves a medium or large segment where it is, formatted over its old bytes.
 * Without it a program that moves on from blocks of 20 KiB and more to blocks of 4..16 KiB
 * faulted in fresh medium segments while the arena's free ones waited for its tick to purge
 * them (the arena gives a segment to the cache only once it is free and clean). */
static um_segment_t *extent_segment_taken_over(um_kind_t kind, int node, bool filling) {
    uint64_t dirty;
    um_segment_t *seg = umi_extent_take_free_segment(node, filling, &dirty);
    if (seg == NULL) return NULL;
    /* registered all along: the statistics walk must not see the layout half changed */
    umi_lock(&umi_segments_lock);
    format_over_old_bytes(seg, kind, dirty);
    umi_unlock(&umi_segments_lock);
    return seg;
}

/* A formatted, registered segment of `kind` for placement `want`, owned by nobody yet; backed by
 * transparent huge pages (where the policy says so) only for a user that fills it (`use`, see
 * UM_THP_HEAP_SEGMENTS). `filling`: for a heap that has filled a segment already, which takes
 * all the extent arenas can give (umi_extent_take_free_segment). */
static um_segment_t *segment_get(um_kind_t kind, int want, um_pages_use_t use, bool filling) {
    /* Resident memory first (cached, moved across the region's border, or an extent arena's
     * free segment), then any cached segment. */
    demand_add();
    um_segment_t *seg = segment_from_cache(kind, want, true, use);
    if (seg == NULL) seg = kind == UM_KIND_SMALL ? segment_moved_in(want, filling) : segment_moved_out(kind, want, use);
    if (seg == NULL && (kind == UM_KIND_MEDIUM || kind == UM_KIND_LARGE)) seg = extent_segment_taken_over(kind, want, filling);
    if (seg == NULL) seg = segment_from_cache(kind, want, false, use);
    if (seg == NULL) {
        int node;
        unsigned page_kind = UM_PAGES_4K;
        seg = kind == UM_KIND_SMALL && small_in_region ? region_map(want, use, &node, &page_kind) : NULL;
        if (seg == NULL) seg = umi_arena_map(UM_SEGMENT_SIZE, UM_SEGMENT_SIZE, want, use, &node, &page_kind);
        if (seg == NULL && umi_release_for_retry()) seg = umi_arena_map(UM_SEGMENT_SIZE, UM_SEGMENT_SIZE, want, use, &node, &page_kind);
        if (seg == NULL) return NULL;
        /* (a program that lowered RLIMIT_AS may need the region's unused rest for a map leaf) */
        if (!umi_segmap_cover(seg) && !(umi_release_for_retry() && umi_segmap_cover(seg))) {
            umi_arena_unmap(seg, UM_SEGMENT_SIZE); /* not the region's: its leaves exist */
            return NULL;
        }
        /* the header, which segment_format writes: a small segment's whole, another's first OS page */
        if (page_kind == UM_PAGES_4K) umi_os_fault_in(seg, (uint8_t *)seg + (kind == UM_KIND_SMALL ? sizeof(um_segment_t) : 1));
        /* The heap finds its segments by placement: one whose binding the kernel refused
         * (mbind is denied by some seccomp filters) still counts as the heap's, or the heap would
         * map a segment for every page. */
        seg->node = (int16_t)(umi_numa_on ? want : node);
        seg->page_kind = (uint8_t)page_kind;
        seg->map_base = seg;
        seg->map_size = UM_SEGMENT_SIZE;
        seg->cookie = (uintptr_t)seg ^ umi_cookie;
        if (UM_GUARD_SIZE != 0) umi_os_guard((uint8_t *)seg + UM_SEGMENT_SIZE - UM_GUARD_SIZE, UM_GUARD_SIZE, true);
        segment_format(seg, kind);
        umi_segment_register(seg);
        umi_count_mapped(seg, 1);
    }
    return seg;
}

/* A thread's heap gets segments backed by transparent huge pages once it holds this many: a
 * 2 MiB page is faulted in whole at the first write into it, and a thread that uses a few pages
 * of each class (one of a thousand threads of a server, each holding a little) would hold 2 or
 * 4 MiB for what fits in a few hundred KiB. A heap that holds this many is one whose pages
 * are filled (a segment is mapped only when the others have no free slot) and whose
 * working set outgrows the TLB's reach with 4 KiB pages, where huge pages pay. The process-wide
 * threshold of hugepages/ (umalloc's use as a whole) applies as well. */
#define UM_THP_HEAP_SEGMENTS 4
static um_pages_use_t heap_segment_use(const um_heap_t *heap) {
    size_t n = 0;
    for (const um_segment_t *s = heap->full_segments; s != NULL && n < UM_THP_HEAP_SEGMENTS; s = s->next) n++;
    for (size_t k = 0; k < UM_KIND_COUNT; k++)
        for (const um_segment_t *s = heap->segments[k]; s != NULL && n < UM_THP_HEAP_SEGMENTS; s = s->next) n++;
    return n >= UM_THP_HEAP_SEGMENTS ? UM_USE_FILLED_SEGMENT : UM_USE_SEGMENT;
}

um_segment_t *umi_segment_alloc(um_heap_t *heap, um_kind_t kind, int want) {
    um_segment_t *seg = segment_get(kind, want, heap_segment_use(heap), heap->full_segments != NULL);
    if (seg == NULL) return NULL;
    atomic_store_explicit(&seg->heap, heap, UM_RELAXED);
    heap->dirty_pages += seg->dirty_pages;
    umi_seg_list_push(&heap->segments[kind], seg);
    return seg;
}

static void segment_unmap(um_segment_t *seg) {
    umi_segment_unregister(seg);
    umi_segmap_clear(seg);
    umi_count_mapped(seg, -1);
    if (umi_region_contains(seg)) {
        /* A unit of a run stays mapped, its run's (hugepages/reserve.c). Else read-only zeros
         * again, not unmapped: free() may still read a stale pointer's owner word there (it
         * reads 0: not this thread's, and the slow path finds no segment). */
        umi_lock(&umi_cache_lock);
        bool kept = umi_pages_run_put(seg);
        umi_unlock(&umi_cache_lock);
        if (kept) return;
        umi_arena_decommit(seg, UM_SEGMENT_SIZE);
        umi_lock(&umi_cache_lock);
        umi_region_put(seg);
        umi_unlock(&umi_cache_lock);
    } else {
        umi_arena_unmap(seg->map_base, seg->map_size);
    }
}

/* An empty segment into the cache; old cache entries are unmapped. */
static void cache_put(um_segment_t *seg) {
    seg->cached_at_ms = umi_os_now_ms();
    seg->exit_kept = 0;
    umi_lock(&umi_cache_lock);
    um_segment_t *evict = NULL;
    if (cache_count >= UM_CACHE_MAX) { /* drop the oldest: it is at the tail */
        evict = cache_list;
        while (evict->next) evict = evict->next;
        umi_seg_list_remove(&cache_list, evict);
        cache_count--;
    }
    umi_seg_list_push(&cache_list, seg);
    cache_count++;
    umi_unlock(&umi_cache_lock);
    if (evict) segment_unmap(evict);
    umi_segment_cache_trim(false);
}

/* An empty segment leaves its heap for the cache. */
void umi_segment_release(um_heap_t *heap, um_segment_t *seg) {
    umi_seg_list_remove(umi_segment_heap_list(heap, seg), seg);
    heap->dirty_pages -= seg->dirty_pages;
    atomic_store_explicit(&seg->heap, NULL, UM_RELAXED);
    cache_put(seg);
}

um_segment_t *umi_segment_take_unowned(um_kind_t kind) {
    /* the extent arenas' (core/extent.c): shared by every thread, their blocks 20 KiB and up */
    return segment_get(kind, umi_numa_on ? umi_arena_current_node() : UMI_NUMA_UNBOUND, UM_USE_FILLED_SEGMENT, false);
}

/* The cache knows slots, not page maps: a segment comes back as an empty one of one large slot,
 * dirty if any of its pages may be resident, so that the cache purges it after the delay and
 * any kind can take it (an extent segment again, after that purge). */
void umi_segment_put_unowned(um_segment_t *seg, bool dirty) {
    umi_lock(&umi_segments_lock); /* registered: the statistics walk must not see it half changed */
    segment_format(seg, UM_KIND_LARGE);
    if (dirty) {
        UM_SHARED_WRITE(seg->pages[0].slot, UM_SLOT_DIRTY);
        seg->pages[0].freed_at_ms = umi_os_now_ms();
        seg->dirty_pages = 1;
    }
    umi_unlock(&umi_segments_lock);
    cache_put(seg);
}

/* Cached segments: purge what is resident after the purge delay (at once with purge_all), unmap
 * after the retain time (at once with unmap_all). Mapping a segment costs a syscall and faults
 * in every page it touches again; keeping the address space costs nothing once purged. */
void umi_segment_cache_trim(bool force) { cache_trim(force, force, 0); }
void umi_segment_cache_purge(bool purge_all, size_t keep_dirty) { cache_trim(purge_all, false, keep_dirty); }

/* Purge the cached segments the delay expired, or all (purge_all) but the keep_dirty newest
 * that are dirty; unmap those cached for longer than UM_RETAIN_MS past the delay, or all.
 * Segments kept at a thread's exit beyond the first UM_HANDOFF_CACHE_KEEP expire after the base
 * delay: they are for threads that start at once (the next batch of a pool), and one that
 * nobody comes for (a program whose threads only exit) should not wait a learned second or two
 * beside the living threads. */
static void cache_trim(bool purge_all, bool unmap_all, size_t keep_dirty) {
    uint64_t now = umi_os_now_ms();
    umi_purge_delay_decay(now);
    uint64_t delay = umi_purge_delay(), exit_delay = umi_purge_delay_base();
    if (exit_delay > delay) exit_delay = delay;
    UM_TEST_HOOK(UM_HOOK_CLOCK_READ, (void *)"segment cache");
    for (;;) {
        um_segment_t *victim = NULL, *purge = NULL;
        size_t skipped = 0;
        umi_lock(&umi_cache_lock);
        for (um_segment_t *s = cache_list; s; s = s->next) {
            uint64_t age = umi_os_ms_since(s->cached_at_ms, now);
            bool expired = age >= (s->exit_kept ? exit_delay : delay);
            if (!expired && purge_all) {
                if (s->dirty_pages == 0 || skipped++ >= keep_dirty) expired = true;
                else if (skipped > UM_HANDOFF_CACHE_KEEP) s->exit_kept = 1;
            }
            if (unmap_all || age >= UM_RETAIN_MS + delay) { victim = s; break; }
            /* A hugetlb page can't be purged in parts: released whole after the delay. */
            if (!umi_pages_splittable(s->page_kind) && expired) { victim = s; break; }
            if (s->dirty_pages > 0 && expired) { purge = s; break; }
        }
        if (victim) { umi_seg_list_remove(&cache_list, victim); cache_count--; }
        else if (purge) { umi_seg_list_remove(&cache_list, purge); cache_count--; } /* ours while we purge it */
        umi_unlock(&umi_cache_lock);
        if (victim) {
            segment_unmap(victim);
        } else if (purge) {
            bool refused = false, forced = umi_os_ms_since(purge->cached_at_ms, now) < delay;
            size_t first = SIZE_MAX, last = 0; /* every slot is free: one call from the first dirty one to the last */
            for (size_t i = 0; i < purge->page_count; i++) {
                if (purge->pages[i].slot != UM_SLOT_DIRTY) continue;
                if (forced) purge->pages[i].freed_at_ms = 0; /* no verdict on the delay */
                if (first == SIZE_MAX) first = i;
                last = i;
            }
            size_t dirty = 0;
            if (first != SIZE_MAX) {
                bool ok = umi_slots_purge(purge, first, last, &dirty);
                if (ok && !forced) umi_purge_delay_purged(dirty << purge->page_shift, now);
                refused |= !ok;
            }
            umi_lock(&umi_cache_lock);
            umi_seg_list_push(&cache_list, purge); /* cached_at unchanged: it still expires on time */
            cache_count++;
            umi_unlock(&umi_cache_lock);
            if (refused) break; /* the kernel refuses now: try again on a later trim, not in a loop */
        } else {
            break;
        }
    }
    if (atomic_load_explicit(&umi_pages_temp_runs, UM_RELAXED) != 0) { /* 1 GiB runs (hugepages/reserve.c) */
        umi_lock(&umi_cache_lock);
        umi_pages_runs_trim(now, delay, unmap_all);
        umi_unlock(&umi_cache_lock);
    }
    umi_huge_cache_trim(unmap_all);
}

void umi_segment_each_cached(void (*fn)(um_segment_t *, void *), void *arg) {
    for (um_segment_t *seg = cache_list; seg != NULL; seg = seg->next) fn(seg, arg);
}
