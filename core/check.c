/* The heap checker (um_check_heap, UMALLOC_CHECK=1): walks every heap, segment, page and free
 * list and verifies the invariants the rest of the core relies on without testing them.
 *
 * What it checks, and who relies on it:
 *  - segments: the cookie and the segment-map entry (free() trusts both to find the header),
 *    the page layout of the kind, the counts of used and dirty slots (slot allocation and the
 *    purge trust them), that every segment is on exactly one list (a heap's, the abandoned list,
 *    the cache) and in the registry (statistics, trim, fork walk that);
 *  - pages: size class, block size and capacity agree with the page's area; every block on the
 *    free list and on the remote list is a carved block of the page, at a block boundary, on one
 *    list only (a block on two lists is a block handed out twice); free blocks + blocks in use =
 *    carved blocks (emptiness is allocs == frees); the owner word names the heap's thread;
 *    a free slot has no owner (a clean one reads zero: calloc and a fresh page trust that);
 *  - heaps: each bin queue is well linked and holds pages of its bin, none marked full, and
 *    bin_hot[] and direct[] point at the first one (malloc's fast path reads only those); every
 *    page in use is either queued or marked full; the delayed-free list holds blocks of the
 *    heap's pages;
 *  - statistics: the bytes carved into blocks, the bytes mapped per node and per page kind, and
 *    the bytes of huge blocks equal what the walk finds.
 *
 * The calling thread's heap can be checked at any time. Other heaps change under the walk while
 * their threads run, so the whole check is for a quiet program (no other thread allocating or
 * freeing), as in a test after its threads are joined; it holds every lock of the core while it
 * walks, in their order, so at least no list changes shape underneath. It reads; it never
 * collects, retires or fixes anything, and it allocates nothing. */
#include "core/check.h"

#include <stdlib.h>

#include "base/fmt.h"
#include "core/block.h"
#include "core/counters.h"

#define UM_CHECK_LINES_MAX 16 /* problems printed in full; the rest are counted */

typedef struct check_s {
    size_t problems;
    size_t carved_bytes;    /* over all pages in use, and the extents' pages in blocks */
    size_t listed_segments; /* pooled segments found on some list */
} check_t;

static void problem(check_t *c, const char *what, const void *where) {
    c->problems++;
    if (c->problems <= UM_CHECK_LINES_MAX) umi_dprintf(2, "umalloc: heap check: %s at %p\n", what, where);
}

/* Blocks carved in a page: at most a 64 KiB page of 16-byte blocks. One bit each, on the stack,
 * so that a block on two lists (or twice on one: a cycle) is found without allocating. */
#define UM_CHECK_BLOCKS_MAX (UM_SMALL_PAGE_SIZE / 16)
typedef struct block_seen_s {
    uint64_t bits[UM_CHECK_BLOCKS_MAX / 64];
} block_seen_t;

/* Walk one free list of page (its links encoded with `secret` in the hardened build: decoded,
 * not trusted); returns the number of blocks, or SIZE_MAX after a problem. */
static size_t walk_blocks(check_t *c, um_page_t *page, um_block_t *b, uintptr_t secret, block_seen_t *seen, bool marked) {
    size_t n = 0, bsize = page->block_size;
    for (; b != NULL; b = umi_link_get(b, secret)) {
        size_t off = (size_t)((uint8_t *)b - page->start);
        if ((uint8_t *)b < page->start || off >= (size_t)page->reserved * bsize) { problem(c, "free-list block outside the carved blocks of its page", b); return SIZE_MAX; }
        if (off % bsize != 0) { problem(c, "free-list block not at a block boundary", b); return SIZE_MAX; }
        size_t i = off / bsize;
        if (!umi_block_carved(page, i)) { problem(c, "free-list block outside the carved blocks of its page", b); return SIZE_MAX; }
        if (seen->bits[i / 64] & ((uint64_t)1 << (i % 64))) { problem(c, "block twice on the free lists of its page", b); return SIZE_MAX; }
        seen->bits[i / 64] |= (uint64_t)1 << (i % 64);
        if (marked && umi_key_get(b) != umi_block_key(b)) { problem(c, "block on a remote free list without the free mark", b); return SIZE_MAX; }
        n++;
    }
    return n;
}

/* A page in use. tid: what its owner word must name (0: no thread). */
static void check_page(check_t *c, um_heap_t *heap, um_segment_t *seg, um_page_t *page, uintptr_t tid) {
    size_t bin = page->bin;
    if (bin == 0 || bin >= UM_BIN_COUNT || umi_bin_kind(bin) != seg->kind) { problem(c, "page with a size class not of its segment's kind", page); return; }
    size_t area_size;
    uint8_t *area = umi_page_area(seg, page, &area_size);
    if (page->block_size != umi_bin_size(bin) || page->start != area || page->reserved != area_size / page->block_size) {
        problem(c, "page whose block size, start or room disagree with its class", page);
        return;
    }
    if (page->capacity > page->reserved) { problem(c, "page with more blocks carved than fit", page); return; }
    if (atomic_load_explicit(&page->heap, UM_RELAXED) != heap) problem(c, "page whose heap is not its segment's", page);
    um_page_hot_t *hot = umi_page_hot_in(seg, page);
    if (hot->guard[0] != UM_PAGE_GUARD || hot->guard[1] != UM_PAGE_GUARD) problem(c, "page whose guard words were overwritten", hot);
    uintptr_t owner = atomic_load_explicit(&hot->owner, UM_RELAXED);
    if ((owner & ~UM_PAGE_FLAGS) != tid) problem(c, "page whose owner word is not its heap's thread", page);
    if (!(owner & UM_PAGE_IN_FULL) && hot->requeue_used != 0) problem(c, "page not full that keeps a full page's count to go back in its queue", page);
    uintptr_t tf = atomic_load_explicit(&page->thread_free, UM_RELAXED);
    if (tid == 0 && (tf & UM_TF_STATE) != UM_DELAY_NEVER) problem(c, "page of no thread that may still wake a heap", page);

    block_seen_t seen;
    for (size_t i = 0; i < (page->reserved + 63) / 64; i++) seen.bits[i] = 0;
    size_t local = walk_blocks(c, page, hot->free, UM_HOT_SECRET(hot), &seen, false);
    size_t remote = walk_blocks(c, page, UM_TF_LIST(tf), UM_PAGE_SECRET(page), &seen, true);
    if (local == SIZE_MAX || remote == SIZE_MAX) return;
    uint64_t used = umi_hot_used(hot);
    if (hot->allocs < hot->frees || local + used != page->capacity) problem(c, "page whose free and used blocks do not add up to its carved ones", page);
    else if (remote > used) problem(c, "page with more remote frees than blocks in use", page);
    else if (remote != UM_TF_COUNT(tf)) problem(c, "page whose remote list is not as long as its word says", page);
    c->carved_bytes += (size_t)page->capacity * page->block_size;
}

/* The header of a pooled segment, and its free slots. */
static bool check_segment_header(check_t *c, um_segment_t *seg) {
    if (seg->cookie != ((uintptr_t)seg ^ umi_cookie)) { problem(c, "segment with a bad cookie", seg); return false; }
    if (seg->kind >= UM_KIND_HUGE) { problem(c, "huge segment on a list of pooled ones", seg); return false; }
    static const uint8_t shift[UM_KIND_HUGE] = {UM_SMALL_PAGE_SHIFT, UM_MEDIUM_PAGE_SHIFT, UM_LARGE_PAGE_SHIFT};
    if (seg->page_shift != shift[seg->kind] || seg->page_count != umi_segment_slots(seg->kind, seg->page_shift)) {
        problem(c, "segment whose page layout is not its kind's", seg);
        return false;
    }
    if (umi_segmap_get((uintptr_t)seg) != seg->page_shift) problem(c, "segment missing from the segment map", seg);
    size_t used = 0, dirty = 0;
    for (size_t i = 0; i < seg->page_count; i++) {
        um_page_t *page = &seg->pages[i];
        if (page->slot == UM_SLOT_USED) { used++; continue; }
        if (page->slot == UM_SLOT_DIRTY) dirty++;
        else if (page->slot != UM_SLOT_CLEAN) { problem(c, "page slot in no known state", page); continue; }
        if (page->block_size != 0) problem(c, "free page slot with a block size", page);
        if (atomic_load_explicit(&umi_page_hot_in(seg, page)->owner, UM_RELAXED) != 0) problem(c, "free page slot with an owner", page);
    }
    if (used != seg->used_pages || dirty != seg->dirty_pages) { problem(c, "segment whose slot counts are wrong", seg); return false; }
    c->listed_segments++;
    return true;
}

/* Walk a heap's pages: through its segments (every page in use) and through its bin queues. */
static void check_heap(check_t *c, um_heap_t *heap, uintptr_t tid) {
    size_t in_use = 0, marked_full = 0, dirty = 0;
    um_segment_t *lists[UM_KIND_COUNT + 1];
    for (size_t k = 0; k < UM_KIND_COUNT; k++) lists[k] = heap->segments[k];
    lists[UM_KIND_COUNT] = heap->full_segments;
    for (size_t k = 0; k <= UM_KIND_COUNT; k++) {
        um_segment_t *prev = NULL;
        for (um_segment_t *seg = lists[k]; seg != NULL; prev = seg, seg = seg->next) {
            if (seg->prev != prev) { problem(c, "segment list with a broken back link", seg); break; }
            if (!check_segment_header(c, seg)) break;
            if (atomic_load_explicit(&seg->heap, UM_RELAXED) != heap || seg->abandoned) problem(c, "segment on a heap's list that is not the heap's", seg);
            bool full = seg->used_pages == seg->page_count;
            if (k == UM_KIND_COUNT ? !full : (full || seg->kind != k)) problem(c, "segment on the wrong list of its heap", seg);
            dirty += seg->dirty_pages;
            for (size_t i = 0; i < seg->page_count; i++) {
                um_page_t *page = &seg->pages[i];
                if (page->slot != UM_SLOT_USED) continue;
                in_use++;
                if (atomic_load_explicit(&umi_page_hot_in(seg, page)->owner, UM_RELAXED) & UM_PAGE_IN_FULL) marked_full++;
                check_page(c, heap, seg, page, tid);
            }
        }
    }
    if (dirty != heap->dirty_pages) problem(c, "heap whose count of dirty page slots is wrong", heap);

    size_t queued = 0;
    for (size_t bin = 1; bin < UM_BIN_COUNT; bin++) {
        um_page_queue_t *q = &heap->queues[bin];
        um_page_t *prev = NULL;
        for (um_page_t *page = q->first; page != NULL; prev = page, page = page->next) {
            if (page->prev != prev || page->slot != UM_SLOT_USED || page->bin != bin || atomic_load_explicit(&page->heap, UM_RELAXED) != heap) {
                problem(c, "bin queue with a page that does not belong there", page);
                break;
            }
            if (atomic_load_explicit(&UM_PAGE_OWNER(page), UM_RELAXED) & UM_PAGE_IN_FULL) problem(c, "page marked full in a bin queue", page);
            if (++queued > in_use) { problem(c, "bin queue that loops", page); return; }
            if (page->next == NULL && q->last != page) problem(c, "bin queue whose last page is wrong", page);
        }
        if (q->first == NULL && q->last != NULL) problem(c, "empty bin queue with a last page", heap);
        um_page_hot_t *first = q->first ? umi_page_hot(q->first) : &umi_hot_empty;
        /* or, with no page of its own, at the first page of a bin it borrows from (page_borrow) */
        for (size_t l = bin + 1; q->first == NULL && umi_bin_may_lend(bin, l); l++)
            if (heap->queues[l].first != NULL && heap->bin_hot[bin] == umi_page_hot(heap->queues[l].first)) first = heap->bin_hot[bin];
        if (heap->bin_hot[bin] != first) problem(c, "bin_hot[] not at the bin's first page", heap);
        size_t hi = umi_bin_size(bin), lo = bin == 1 ? 0 : umi_bin_size(bin - 1) + 1;
        for (size_t size = lo; size <= hi && size <= UM_DIRECT_MAX; size++)
            if (heap->direct[size] != first) { problem(c, "direct[] not at the bin's first page", heap); break; }
    }
    if (queued + marked_full != in_use) problem(c, "heap with pages in use that are neither queued nor marked full", heap);

    size_t delayed = 0;
    for (um_block_t *b = atomic_load_explicit(&heap->delayed_free, UM_RELAXED); b != NULL;) {
        um_segment_t *seg = umi_segment_lookup(b);
        um_page_t *page = seg != NULL && seg->kind != UM_KIND_HUGE ? umi_page_of(seg, b) : NULL;
        if (page == NULL || page->slot != UM_SLOT_USED || atomic_load_explicit(&page->heap, UM_RELAXED) != heap || umi_block_start(seg, page, b) != (void *)b) {
            problem(c, "delayed free of a block not in the heap's pages", b);
            break;
        }
        /* every delayed block is a carved block of a page walked above: more of them is a loop */
        if (++delayed > c->carved_bytes / 16) { problem(c, "delayed-free list that loops", b); break; }
        b = umi_link_get(b, UM_PAGE_SECRET(page)); /* each link is coded with its block's page's secret */
    }
}

/* ---- the shared lists (quiet program only) ----------------------------------------------- */
static void check_abandoned(um_segment_t *seg, void *arg) {
    check_t *c = arg;
    if (!check_segment_header(c, seg)) return;
    if (!seg->abandoned || atomic_load_explicit(&seg->heap, UM_RELAXED) != NULL) problem(c, "segment on the abandoned list with an owner", seg);
    for (size_t i = 0; i < seg->page_count; i++)
        if (seg->pages[i].slot == UM_SLOT_USED) check_page(c, NULL, seg, &seg->pages[i], 0);
}

static void check_cached(um_segment_t *seg, void *arg) {
    check_t *c = arg;
    if (!check_segment_header(c, seg)) return;
    if (seg->used_pages != 0 || atomic_load_explicit(&seg->heap, UM_RELAXED) != NULL) problem(c, "cached segment with pages in use or an owner", seg);
}

static void check_handed(um_heap_t *heap, void *arg) { check_heap(arg, heap, 0); }

/* A segment of an orphan heap in a fork child (umi_heap_orphan_others): nothing in it can be
 * trusted, its heap's lists included (its thread may have been changing them when fork came),
 * but that it and its pages are the orphan's; its blocks still count as carved. */
static void orphaned(check_t *c, um_segment_t *seg) {
    c->listed_segments++;
    um_heap_t *heap = atomic_load_explicit(&seg->heap, UM_RELAXED);
    for (size_t i = 0; i < seg->page_count; i++) {
        um_page_t *page = &seg->pages[i];
        if (page->slot != UM_SLOT_USED) continue;
        if (atomic_load_explicit(&page->heap, UM_RELAXED) != heap) problem(c, "page of an orphaned segment that names another heap", page);
        c->carved_bytes += (size_t)page->capacity * page->block_size;
    }
}

/* The extent arenas' segments (each is listed there), and their page maps. */
static void check_extents(check_t *c) {
    for (unsigned i = 0; i < UM_EXTENT_ARENAS_MAX; i++) {
        um_extent_arena_t *a = &umi_extent_arenas[i];
        size_t dirty = 0;
        for (um_segment_t *seg = a->segments; seg != NULL; seg = seg->next) {
            c->listed_segments++;
            if (seg->cookie != ((uintptr_t)seg ^ umi_cookie)) { problem(c, "extent segment with a bad cookie", seg); continue; }
            if (umi_segmap_get((uintptr_t)seg) != UM_EXTENT_PAGE_SHIFT) problem(c, "extent segment missing from the segment map", seg);
            const char *what = umi_extent_check(seg, a);
            if (what != NULL) problem(c, what, seg);
            dirty += seg->extents.dirty_pages;
            c->carved_bytes += (size_t)(UM_EXTENT_END_PAGE - UM_EXTENT_FIRST_PAGE - seg->extents.free_pages) << UM_EXTENT_PAGE_SHIFT;
        }
        if (dirty != a->dirty_pages) problem(c, "extent arena whose count of dirty pages is wrong", a);
        size_t quick_bytes = 0;
        for (size_t j = 0; j < a->quick_count; j++) {
            um_segment_t *seg = umi_segment_lookup(a->quick[j]);
            bool listed = seg != NULL && seg->kind == UM_KIND_EXTENT && seg->extents.arena == a;
            if (!listed || umi_extent_usable(seg, a->quick[j]) != (size_t)a->quick_pages[j] << UM_EXTENT_PAGE_SHIFT)
                problem(c, "extent arena's quick list holds a pointer that is no block of the arena's, or not of its length", a->quick[j]);
            else if (umi_key_get(a->quick[j]) != UM_FREE_MARK) problem(c, "block in an extent arena's quick list without the free mark", a->quick[j]);
            quick_bytes += (size_t)a->quick_pages[j] << UM_EXTENT_PAGE_SHIFT;
        }
        if (quick_bytes != a->quick_bytes) problem(c, "extent arena whose count of quick bytes is wrong", a);
    }
}

/* Every registered segment: huge ones checked here, pooled ones counted (each must have been
 * on exactly one list). Returns the bytes the registry maps. */
static size_t check_registry(check_t *c, size_t *pooled, size_t *huge_usable) {
    size_t mapped = 0;
    for (um_segment_t *seg = umi_segment_registry; seg != NULL; seg = seg->all_next) {
        mapped += seg->map_size;
        if (seg->cookie != ((uintptr_t)seg ^ umi_cookie)) { problem(c, "registered segment with a bad cookie", seg); continue; }
        if (seg->kind != UM_KIND_HUGE) {
            (*pooled)++;
            if (umi_heap_is_orphan(atomic_load_explicit(&seg->heap, UM_RELAXED))) orphaned(c, seg);
            continue;
        }
        um_page_t *page = &seg->pages[0];
        uint8_t *end = (uint8_t *)seg->map_base + seg->map_size;
        /* a freed block its thread keeps (core/huge.c) is UM_SLOT_DIRTY, and still counted live */
        if ((page->slot != UM_SLOT_USED && page->slot != UM_SLOT_DIRTY) || page->start <= (uint8_t *)seg || page->start >= end) { problem(c, "huge segment whose block lies outside its mapping", seg); continue; }
        if (umi_segment_lookup(page->start) != seg) problem(c, "huge block the segment map does not find", page->start);
        *huge_usable += umi_huge_usable(seg, page->start);
    }
    return mapped;
}

size_t umi_check_heap(bool quiet_program) {
    check_t c = {0};
    um_heap_t *own = umi_tl_heap;
    bool own_is_real = own != &umi_heap_empty;
    if (!quiet_program) {
        if (own_is_real) check_heap(&c, own, own->tid);
        return c.problems;
    }
    umi_process_init();
    umi_lock(&umi_registry_lock);
    umi_lock(&umi_backup_lock);
    umi_lock(&umi_abandoned_lock);
    umi_extent_lock_all();
    umi_lock(&umi_cache_lock);
    umi_lock(&umi_segments_lock);
    check_extents(&c);
    for (um_heap_t *heap = umi_heap_registry; heap != NULL; heap = heap->reg_next) check_heap(&c, heap, heap->tid);
    if (umi_heap_backup.tid != 0) check_heap(&c, &umi_heap_backup, umi_heap_backup.tid); /* set up */
    umi_heap_each_handed(check_handed, &c);
    umi_segment_each_abandoned(check_abandoned, &c);
    umi_segment_each_cached(check_cached, &c);
    size_t pooled = 0, huge_usable = 0;
    size_t mapped = check_registry(&c, &pooled, &huge_usable);
    if (pooled != c.listed_segments) problem(&c, "pooled segments on no list, or on two", umi_segment_registry);
    if (huge_usable != atomic_load_explicit(&umi_huge_live_bytes, UM_RELAXED)) problem(&c, "huge-block bytes differ from the huge blocks mapped", &umi_huge_live_bytes);
#if !(defined(UM_NO_STATS) && UM_NO_STATS)
    /* Cached huge pieces are no segment's but still count as mapped (core/huge_cache.c). */
    mapped += atomic_load_explicit(&umi_huge_cached_bytes, UM_RELAXED);
    uint64_t by_node = 0, by_kind = 0;
    for (size_t i = 0; i < UM_STATS_NODES; i++) by_node += atomic_load_explicit(&umi_counters.node_mapped[i], UM_RELAXED);
    for (size_t i = 0; i < UM_PAGES_KINDS; i++) by_kind += atomic_load_explicit(&umi_counters.kind_mapped[i], UM_RELAXED);
    if (by_node != mapped || by_kind != mapped) problem(&c, "statistics of mapped bytes differ from the segments mapped", &umi_counters);
    if (atomic_load_explicit(&umi_counters.carved, UM_RELAXED) != c.carved_bytes) problem(&c, "statistics of carved bytes differ from the pages' blocks", &umi_counters);
#else
    (void)mapped; /* no statistics to compare it with */
#endif
    umi_unlock(&umi_segments_lock);
    umi_unlock(&umi_cache_lock);
    umi_extent_unlock_all();
    umi_unlock(&umi_abandoned_lock);
    umi_unlock(&umi_backup_lock);
    umi_unlock(&umi_registry_lock);
    if (c.problems > UM_CHECK_LINES_MAX) umi_dprintf(2, "umalloc: heap check: %zu problems in all\n", c.problems);
    return c.problems;
}

bool umi_check_enabled;

void umi_check_or_abort(bool quiet_program) {
    if (umi_check_heap(quiet_program) == 0) return;
    umi_dprintf(2, "umalloc: heap check failed (UMALLOC_CHECK=1): aborting\n");
    abort();
}

/* UMALLOC_CHECK=1, at exit: the whole process when this is the last thread with a heap (any
 * other could be changing its heap under the walk), else the calling thread's. A destructor,
 * as the statistics' at-exit dump, so that atexit need not allocate. */
__attribute__((destructor)) static void check_at_exit(void) {
    if (!umi_check_enabled) return;
    umi_lock(&umi_registry_lock);
    bool alone = umi_heap_count <= 1;
    umi_unlock(&umi_registry_lock);
    umi_check_or_abort(alone);
}

