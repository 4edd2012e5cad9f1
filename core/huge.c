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

_Atomic size_t _x_huge_live_bytes;

/* Freed huge mappings are kept a while for the next huge allocation of about the same size:
 * mapping, trimming and faulting in a fresh block costs far more than the memset-free reuse
 * (glibc gets the same effect by raising its mmap threshold). Kept blocks are purged after the
 * purge delay like everything else, and unmapped after UM_RETAIN_MS or when the cache is full. */
#define UM_HUGE_CACHE_COUNT 32
#define UM_HUGE_CACHE_BYTES ((size_t)128 << 20) /* resident until purged: keep it modest */
#define UM_HUGE_CACHE_BLOCK_MAX ((size_t)64 << 20)
static um_segment_t *huge_cache; /* most recently freed first */
static _Atomic size_t huge_cache_count; /* written under the cache lock, read without it as a hint */
_Atomic size_t _x_huge_cached_bytes;

static size_t round_page(size_t n) {
    size_t ps = _x_os_page_size();
    return (n + ps - 1) & ~(ps - 1);
}

static void huge_unmap(um_segment_t *seg) {
    UM_STAT_SEGMENT_UNMAPPED(seg);
    _x_arena_unmap(seg->map_base, seg->map_size);
}

static void cache_unlink(um_segment_t *seg) {
    if (seg->prev) seg->prev->next = seg->next;
    else huge_cache = seg->next;
    if (seg->next) seg->next->prev = seg->prev;
    huge_cache_count--;
    atomic_fetch_sub_explicit(&_x_huge_cached_bytes, seg->map_size, UM_RELAXED);
}

/* The cached mapping that fits `map_size` best, if one is at most twice as large; a tail of
 * more than a quarter is given back with mremap (in place: no copy, no fault). */
static um_segment_t *cache_take(size_t map_size) {
    if (huge_cache_count == 0) return NULL;
    _x_lock(&_x_cache_lock);
    um_segment_t *best = NULL;
    for (um_segment_t *s = huge_cache; s; s = s->next)
        if (s->map_size >= map_size && s->map_size - map_size <= map_size && (best == NULL || s->map_size < best->map_size)) best = s;
    if (best) cache_unlink(best);
    _x_unlock(&_x_cache_lock);
    if (best != NULL && best->map_size - map_size > map_size / 4 && _x_os_remap(best, best->map_size, map_size, UM_SEGMENT_SIZE) == (void *)best) {
        UM_STAT_SEGMENT_UNMAPPED(best);
        best->map_size = map_size;
        UM_STAT_SEGMENT_MAPPED(best);
    }
    return best;
}

static bool cache_put(um_segment_t *seg) {
    if (seg->map_base != (void *)seg || seg->map_size > UM_HUGE_CACHE_BLOCK_MAX) return false;
    seg->cached_at_ms = _x_os_now_ms();
    seg->pages[0].is_zero = 0;
    um_segment_t *evict = NULL;
    _x_lock(&_x_cache_lock);
    seg->prev = NULL;
    seg->next = huge_cache;
    if (huge_cache) huge_cache->prev = seg;
    huge_cache = seg;
    huge_cache_count++;
    size_t bytes = atomic_fetch_add_explicit(&_x_huge_cached_bytes, seg->map_size, UM_RELAXED) + seg->map_size;
    if (huge_cache_count > UM_HUGE_CACHE_COUNT || bytes > UM_HUGE_CACHE_BYTES) {
        evict = huge_cache;
        while (evict->next) evict = evict->next;
        cache_unlink(evict);
    }
    _x_unlock(&_x_cache_lock);
    if (evict) huge_unmap(evict);
    return true;
}

/* Purge cached blocks older than the purge delay, unmap those older than the retain time. */
void _x_huge_cache_trim(bool force) {
    if (huge_cache_count == 0) return;
    uint64_t now = _x_os_now_ms();
    for (;;) {
        um_segment_t *victim = NULL, *purge = NULL;
        _x_lock(&_x_cache_lock);
        for (um_segment_t *s = huge_cache; s; s = s->next) {
            uint64_t age = now - s->cached_at_ms;
            if (force || age >= UM_RETAIN_MS + _x_purge_delay_ms) { victim = s; break; }
            if (!s->pages[0].is_zero && age >= _x_purge_delay_ms) { purge = s; break; }
        }
        if (victim) cache_unlink(victim);
        else if (purge) cache_unlink(purge); /* ours while we purge it: nobody may take it meanwhile */
        _x_unlock(&_x_cache_lock);
        if (victim) {
            huge_unmap(victim);
        } else if (purge) {
            _x_os_purge((uint8_t *)purge + UM_HUGE_HEADER, purge->map_size - UM_HUGE_HEADER);
            purge->pages[0].is_zero = 1;
            _x_lock(&_x_cache_lock); /* back in, at the head: cached_at still makes it expire on time */
            purge->prev = NULL;
            purge->next = huge_cache;
            if (huge_cache) huge_cache->prev = purge;
            huge_cache = purge;
            huge_cache_count++;
            atomic_fetch_add_explicit(&_x_huge_cached_bytes, purge->map_size, UM_RELAXED);
            _x_unlock(&_x_cache_lock);
        }
        else return;
    }
}

static void huge_publish(um_segment_t *seg, uint8_t *block, size_t offset) {
    if (offset >= UM_SEGMENT_SIZE) {
        _x_segmap_set(seg->map_base, seg->map_size, UM_MAP_INTERIOR);
        atomic_store_explicit(&_x_segmap[(uintptr_t)block >> UM_SEGMENT_SHIFT], UM_MAP_HUGE_PREV, memory_order_release);
    } else {
        _x_segmap_set(seg->map_base, seg->map_size, UM_SEGMENT_SHIFT);
    }
    _x_segment_register(seg);
    atomic_fetch_add_explicit(&_x_huge_live_bytes, _x_huge_usable(seg, block), UM_RELAXED);
    _x_stats_huge(1, _x_huge_usable(seg, block));
}

void *_x_huge_alloc(size_t size, size_t align) {
    _x_process_init();
    size_t offset = align <= UM_HUGE_HEADER ? UM_HUGE_HEADER : align; /* block start from map base */
    size_t map_align = align <= UM_SEGMENT_SIZE ? UM_SEGMENT_SIZE : align;
    if (size > SIZE_MAX / 2 - offset) { errno = ENOMEM; _x_stats_failed(); return NULL; }
    size_t map_size = round_page(offset + size);
    if (offset == UM_HUGE_HEADER) {
        um_segment_t *seg = cache_take(map_size);
        if (seg != NULL) {
            uint8_t *block = (uint8_t *)seg + UM_HUGE_HEADER;
            huge_publish(seg, block, UM_HUGE_HEADER);
            return block;
        }
    }
    int node;
    uint8_t *base = _x_arena_map(map_size, map_align, _x_arena_current_node(), &node);
    if (base == NULL) { errno = ENOMEM; _x_stats_failed(); return NULL; }
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
    /* A big block is written through, typically: back it with transparent huge pages, one
     * fault per 2 MiB instead of 512 (a no-op where THP is off). */
    seg->page_kind = _x_os_advise_huge(base, map_size) ? UM_PAGES_THP : UM_PAGES_4K;
    um_page_t *page = &seg->pages[0];
    page->start = block;
    page->is_zero = 1;
    UM_SHARED_WRITE(page->slot, UM_SLOT_USED);
    page->reserved = page->capacity = 1; /* no hot words (UM_PAGE_OWNER...): huge frees never need them */
    huge_publish(seg, block, offset);
    UM_STAT_SEGMENT_MAPPED(seg);
    return block;
}

size_t _x_huge_usable(um_segment_t *seg, const void *p) {
    return (size_t)((uint8_t *)seg->map_base + seg->map_size - (const uint8_t *)p);
}

UM_NOINLINE void _x_huge_free(um_segment_t *seg, void *p) { /* not inlined: _x_free_generic stays frameless */
    if (UM_UNLIKELY(p != seg->pages[0].start)) { _x_warn_ptr("free of a pointer inside a large block:", p); return; }
    _x_stats_huge(-1, _x_huge_usable(seg, p));
    atomic_fetch_sub_explicit(&_x_huge_live_bytes, _x_huge_usable(seg, p), UM_RELAXED);
    _x_segment_unregister(seg);
    _x_segmap_clear(seg->map_base, seg->map_size);
    if (!cache_put(seg)) huge_unmap(seg);
    _x_huge_cache_trim(false); /* a program that only makes huge blocks must still see them purged */
}

/* Grow or shrink in the kernel: mremap moves page tables, never bytes. */
void *_x_huge_realloc(um_segment_t *seg, void *p, size_t size) {
    size_t offset = (size_t)((uint8_t *)p - (uint8_t *)seg);
    /* Only a block whose header shares its 4 MiB unit: an over-aligned one (header in the unit
     * below, map entry UM_MAP_HUGE_PREV) is copied instead. */
    if (p != seg->pages[0].start || seg->map_base != (void *)seg || offset >= UM_SEGMENT_SIZE) return NULL;
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
    size_t new_usable = _x_huge_usable(nseg, nseg->pages[0].start);
    atomic_fetch_add_explicit(&_x_huge_live_bytes, new_usable - old_usable, UM_RELAXED);
    if (new_usable > old_usable) _x_stats_huge(0, 0);
    return nseg->pages[0].start;
}
