/* Segments: 4 MiB aligned regions cut into page slots. A heap owns its segments; free slots are
 * purged after UMALLOC_PURGE_DELAY_MS; an empty segment waits in a small process-wide cache
 * before it is unmapped; a dead thread's segments are abandoned and adopted by the next thread
 * that needs a page. */
#include <sched.h>
#include <string.h>

#include "core/internal.h"
#include "hugepages/os.h"
#include "hugepages/region.h"
#include "numa/arena.h"
#include "stats/stats.h"

_Static_assert(UM_REGION_UNIT_SHIFT == UM_SEGMENT_SHIFT && UM_REGION_BITS == UM_REGION_SHIFT,
               "the region is carved in segments, and free() knows its size");

um_segment_t *_x_segment_registry;
uintptr_t _x_small_region_hi = ~(uintptr_t)0;
static bool small_in_region; /* small segments come from the region */

static um_segment_t *abandoned_list;
static _Atomic size_t abandoned_count; /* written under the lock, read without it as a hint */
static um_segment_t *cache_list;
static size_t cache_count;
#define UM_CACHE_MAX 64 /* 256 MiB of address space at most; what is resident is purged on the usual delay */

static void slot_purge(um_segment_t *seg, um_page_t *page);

static const uint8_t kind_shift[UM_KIND_COUNT] = {UM_SMALL_PAGE_SHIFT, UM_MEDIUM_PAGE_SHIFT, UM_LARGE_PAGE_SHIFT, UM_SEGMENT_SHIFT};

void _x_segment_register(um_segment_t *seg) {
    _x_lock(&_x_segments_lock);
    seg->all_prev = NULL;
    seg->all_next = _x_segment_registry;
    if (_x_segment_registry) _x_segment_registry->all_prev = seg;
    _x_segment_registry = seg;
    _x_unlock(&_x_segments_lock);
}

void _x_segment_unregister(um_segment_t *seg) {
    _x_lock(&_x_segments_lock);
    if (seg->all_prev) seg->all_prev->all_next = seg->all_next;
    else _x_segment_registry = seg->all_next;
    if (seg->all_next) seg->all_next->all_prev = seg->all_prev;
    _x_unlock(&_x_segments_lock);
}

/* ---- intrusive segment lists (heap lists, abandoned list, cache) ------------------------ */
static void list_push(um_segment_t **head, um_segment_t *seg) {
    seg->prev = NULL;
    seg->next = *head;
    if (*head) (*head)->prev = seg;
    *head = seg;
}
static void list_remove(um_segment_t **head, um_segment_t *seg) {
    if (seg->prev) seg->prev->next = seg->next;
    else *head = seg->next;
    if (seg->next) seg->next->prev = seg->prev;
    seg->next = seg->prev = NULL;
}
static um_segment_t **heap_list_of(um_heap_t *heap, um_segment_t *seg) {
    return seg->used_pages == seg->page_count ? &heap->full_segments : &heap->segments[seg->kind];
}

/* ---- the small-page region --------------------------------------------------------------- */
void _x_segment_init_process(void) {
    uintptr_t base = _x_region_reserve(_x_cookie >> 12);
    small_in_region = base != 0;
    /* With a purge delay of 0, memory goes back at the free that empties a page: only the slow
     * path tests for that (_x_page_local_free_slow), so every free takes it. */
    if (base != 0 && _x_purge_delay_ms != 0) _x_small_region_hi = base >> UM_REGION_SHIFT;
}

/* A small segment at an address of the region, or NULL (then it is mapped like the others). */
static um_segment_t *region_map(int *node) {
    _x_lock(&_x_cache_lock);
    void *at = _x_region_take();
    _x_unlock(&_x_cache_lock);
    if (at == NULL) return NULL;
    um_segment_t *seg = _x_arena_commit(at, _x_arena_current_node(), node);
    if (seg == NULL) {
        _x_lock(&_x_cache_lock);
        _x_region_put(at);
        _x_unlock(&_x_cache_lock);
    }
    return seg;
}

/* ---- getting and dropping segments ------------------------------------------------------ */
/* A small page's hot words need no writing: every slot is clean, and a clean slot reads zero,
 * owner word included (fresh from the OS, or purged whole by slot_purge). */
static void segment_format(um_segment_t *seg, um_kind_t kind) {
    memset(seg->hot, 0, sizeof seg->hot); /* medium and large pages' */
    seg->kind = (uint8_t)kind;
    seg->page_shift = kind_shift[kind];
    seg->page_count = (uint8_t)(UM_SEGMENT_SIZE >> kind_shift[kind]);
    seg->used_pages = 0;
    seg->dirty_pages = 0;
    for (size_t i = 0; i < UM_PAGES_MAX; i++) {
        um_page_t *page = &seg->pages[i];
        page->index = (uint8_t)i;
        UM_SHARED_WRITE(page->slot, UM_SLOT_CLEAN);
        UM_SHARED_WRITE(page->block_size, 0);
    }
    _x_segmap_set(seg, UM_SEGMENT_SIZE, seg->page_shift); /* the map entry carries the page shift */
}

/* A cached segment for `kind`: one in the region for small pages, one outside it for the others
 * (free()'s fast path takes every pointer in the region for a small block). */
static um_segment_t *segment_from_cache(um_kind_t kind) {
    bool want_region = kind == UM_KIND_SMALL && small_in_region;
    _x_lock(&_x_cache_lock);
    um_segment_t *seg = cache_list;
    while (seg != NULL && (_x_region_contains(seg) != 0) != want_region) seg = seg->next;
    if (seg) { list_remove(&cache_list, seg); cache_count--; }
    _x_unlock(&_x_cache_lock);
    if (seg == NULL) return NULL;
    if (seg->kind != kind) { /* slot layout changes: forget per-slot residency */
        if (seg->dirty_pages) {
            size_t hdr = (sizeof(um_segment_t) + 4095) & ~(size_t)4095;
            _x_os_purge((uint8_t *)seg + hdr, UM_SEGMENT_SIZE - hdr);
        }
        /* It is registered: the statistics walk must not see the layout half changed. */
        _x_lock(&_x_segments_lock);
        segment_format(seg, kind);
        _x_unlock(&_x_segments_lock);
    }
    return seg;
}

static um_segment_t *segment_alloc(um_heap_t *heap, um_kind_t kind) {
    um_segment_t *seg = segment_from_cache(kind);
    if (seg == NULL) {
        int node;
        seg = kind == UM_KIND_SMALL && small_in_region ? region_map(&node) : NULL;
        if (seg == NULL) seg = _x_arena_map(UM_SEGMENT_SIZE, UM_SEGMENT_SIZE, _x_arena_current_node(), &node);
        if (seg == NULL) return NULL;
        seg->node = (int16_t)node;
        seg->map_base = seg;
        seg->map_size = UM_SEGMENT_SIZE;
        seg->cookie = (uintptr_t)seg ^ _x_cookie;
        segment_format(seg, kind);
        _x_segment_register(seg);
        UM_STAT_SEGMENT_MAPPED(seg);
    }
    seg->abandoned = 0;
    atomic_store_explicit(&seg->heap, heap, UM_RELAXED);
    heap->dirty_pages += seg->dirty_pages;
    list_push(&heap->segments[kind], seg);
    return seg;
}

static void segment_unmap(um_segment_t *seg) {
    _x_segment_unregister(seg);
    _x_segmap_clear(seg, UM_SEGMENT_SIZE);
    UM_STAT_SEGMENT_UNMAPPED(seg);
    if (_x_region_contains(seg)) {
        /* Read-only zeros again, not unmapped: free() may still read a stale pointer's owner
         * word there (it reads 0: not this thread's, and the slow path finds no segment). */
        _x_arena_decommit(seg);
        _x_lock(&_x_cache_lock);
        _x_region_put(seg);
        _x_unlock(&_x_cache_lock);
    } else {
        _x_arena_unmap(seg->map_base, seg->map_size);
    }
}

/* An empty segment leaves its heap for the cache; old cache entries are unmapped. */
static void segment_release(um_heap_t *heap, um_segment_t *seg) {
    list_remove(heap_list_of(heap, seg), seg);
    heap->dirty_pages -= seg->dirty_pages;
    atomic_store_explicit(&seg->heap, NULL, UM_RELAXED);
    seg->cached_at_ms = _x_os_now_ms();
    _x_lock(&_x_cache_lock);
    um_segment_t *evict = NULL;
    if (cache_count >= UM_CACHE_MAX) { /* drop the oldest: it is at the tail */
        evict = cache_list;
        while (evict->next) evict = evict->next;
        list_remove(&cache_list, evict);
        cache_count--;
    }
    list_push(&cache_list, seg);
    cache_count++;
    _x_unlock(&_x_cache_lock);
    if (evict) segment_unmap(evict);
    _x_segment_cache_trim(false);
}

/* Cached segments: purge what is resident after the purge delay, unmap after the retain time
 * (everything, when forced). Mapping a segment costs a syscall and faults in every page it
 * touches again; keeping the address space costs nothing once purged. */
void _x_segment_cache_trim(bool force) {
    uint64_t now = _x_os_now_ms();
    for (;;) {
        um_segment_t *victim = NULL, *purge = NULL;
        _x_lock(&_x_cache_lock);
        for (um_segment_t *s = cache_list; s; s = s->next) {
            uint64_t age = now - s->cached_at_ms;
            if (force || age >= UM_RETAIN_MS + _x_purge_delay_ms) { victim = s; break; }
            if (s->dirty_pages > 0 && age >= _x_purge_delay_ms) { purge = s; break; }
        }
        if (victim) { list_remove(&cache_list, victim); cache_count--; }
        else if (purge) { list_remove(&cache_list, purge); cache_count--; } /* ours while we purge it */
        _x_unlock(&_x_cache_lock);
        if (victim) {
            segment_unmap(victim);
        } else if (purge) {
            for (size_t i = 0; i < purge->page_count; i++)
                if (purge->pages[i].slot == UM_SLOT_DIRTY) slot_purge(purge, &purge->pages[i]);
            _x_lock(&_x_cache_lock);
            list_push(&cache_list, purge); /* cached_at unchanged: it still expires on time */
            cache_count++;
            _x_unlock(&_x_cache_lock);
        } else {
            break;
        }
    }
    _x_huge_cache_trim(force);
}

/* ---- page slots ------------------------------------------------------------------------- */
um_page_t *_x_segment_page_alloc(um_heap_t *heap, um_kind_t kind) {
    um_segment_t *seg = heap->segments[kind];
    if (seg == NULL && !heap->is_backup && _x_segment_reclaim_one(heap)) seg = heap->segments[kind];
    if (seg == NULL) seg = segment_alloc(heap, kind);
    if (seg == NULL) return NULL;
    /* Prefer a dirty slot: its memory is resident already, reusing it saves page faults. */
    um_page_t *pick = NULL;
    for (size_t i = 0; i < seg->page_count; i++) {
        um_page_t *page = &seg->pages[i];
        if (page->slot == UM_SLOT_DIRTY) { pick = page; break; }
        if (page->slot == UM_SLOT_CLEAN && pick == NULL) pick = page;
    }
    UM_CHECK(pick != NULL);
    if (pick->slot == UM_SLOT_DIRTY) { seg->dirty_pages--; heap->dirty_pages--; pick->is_zero = 0; }
    else pick->is_zero = 1;
    UM_SHARED_WRITE(pick->slot, UM_SLOT_USED);
    seg->used_pages++;
    if (seg->used_pages == seg->page_count) {
        list_remove(&heap->segments[kind], seg);
        list_push(&heap->full_segments, seg);
    }
    return pick;
}

static void slot_purge(um_segment_t *seg, um_page_t *page) {
    size_t size;
    uint8_t *area = _x_page_area(seg, page, &size);
    _x_os_purge(area, size + _x_page_tail(seg)); /* the whole slot: a clean slot reads zero */
    UM_SHARED_WRITE(page->slot, UM_SLOT_CLEAN);
    seg->dirty_pages--;
}

void _x_segment_page_free(um_heap_t *heap, um_page_t *page) {
    um_segment_t *seg = _x_segment_of(page);
    UM_CHECK(page->slot == UM_SLOT_USED && seg->cookie == ((uintptr_t)seg ^ _x_cookie));
    _x_stats_page_gone(heap, page);
    bool was_full = seg->used_pages == seg->page_count;
    atomic_store_explicit(&UM_PAGE_OWNER(page), 0, UM_RELAXED);
    UM_SHARED_WRITE(page->block_size, 0);
    UM_SHARED_WRITE(page->slot, UM_SLOT_DIRTY);
    page->freed_at_ms = _x_os_now_ms();
    seg->used_pages--;
    seg->dirty_pages++;
    heap->dirty_pages++;
    if (was_full) {
        list_remove(&heap->full_segments, seg);
        list_push(&heap->segments[seg->kind], seg);
    }
    if (_x_purge_delay_ms == 0) { slot_purge(seg, page); heap->dirty_pages--; }
    if (seg->used_pages == 0) segment_release(heap, seg);
}

/* Purge the heap's free slots that have been dirty for longer than the delay. */
void _x_segment_purge(um_heap_t *heap, bool force) {
    if (heap->dirty_pages == 0 && !force) return;
    uint64_t now = _x_os_now_ms();
    if (!force && now < heap->next_purge_ms) return;
    uint64_t next = UINT64_MAX;
    um_segment_t *lists[UM_KIND_COUNT + 1];
    for (size_t k = 0; k < UM_KIND_COUNT; k++) lists[k] = heap->segments[k];
    lists[UM_KIND_COUNT] = heap->full_segments;
    for (size_t k = 0; k <= UM_KIND_COUNT; k++) {
        for (um_segment_t *seg = lists[k]; seg; seg = seg->next) {
            if (seg->dirty_pages == 0) continue;
            for (size_t i = 0; i < seg->page_count; i++) {
                um_page_t *page = &seg->pages[i];
                if (page->slot != UM_SLOT_DIRTY) continue;
                if (force || now - page->freed_at_ms >= _x_purge_delay_ms) {
                    slot_purge(seg, page);
                    heap->dirty_pages--;
                } else if (page->freed_at_ms + _x_purge_delay_ms < next) {
                    next = page->freed_at_ms + _x_purge_delay_ms;
                }
            }
        }
    }
    heap->next_purge_ms = next == UINT64_MAX ? now + _x_purge_delay_ms : next;
    _x_segment_cache_trim(force);
}

/* ---- abandon and reclaim ---------------------------------------------------------------- */
/* The heap's thread is going away. Free what can be freed, purge, and leave the segments that
 * still hold live blocks on the abandoned list. */
void _x_segment_abandon_all(um_heap_t *heap) {
    um_segment_t *lists[UM_KIND_COUNT + 1];
#define HEAP_LISTS() do { for (size_t k = 0; k < UM_KIND_COUNT; k++) lists[k] = heap->segments[k]; lists[UM_KIND_COUNT] = heap->full_segments; } while (0)
    /* 1. No remote thread may touch the heap after this: delayed frees go to the pages. */
    HEAP_LISTS();
    for (size_t k = 0; k <= UM_KIND_COUNT; k++)
        for (um_segment_t *seg = lists[k]; seg; seg = seg->next)
            for (size_t i = 0; i < seg->page_count; i++)
                if (seg->pages[i].slot == UM_SLOT_USED) _x_page_set_never_delayed(&seg->pages[i]);
    _x_heap_collect_delayed(heap);
    /* 2. Collect every page; empty pages go back (possibly releasing their segment). */
    for (int again = 1; again;) {
        again = 0;
        HEAP_LISTS();
        for (size_t k = 0; k <= UM_KIND_COUNT && !again; k++) {
            for (um_segment_t *seg = lists[k]; seg && !again; seg = seg->next) {
                for (size_t i = 0; i < seg->page_count; i++) {
                    um_page_t *page = &seg->pages[i];
                    if (page->slot != UM_SLOT_USED) continue;
                    _x_page_collect(heap, page);
                    if (UM_PAGE_USED(page) != 0) continue;
                    if (!(atomic_load_explicit(&UM_PAGE_OWNER(page), UM_RELAXED) & UM_PAGE_IN_FULL)) _x_page_queue_remove(heap, page);
                    bool last = seg->used_pages == 1;
                    _x_segment_page_free(heap, page);
                    if (last) { again = 1; break; } /* the segment left the lists: restart */
                }
            }
        }
    }
    /* 3. What is left holds live blocks: purge its free slots and abandon it. */
    _x_segment_purge(heap, true);
    HEAP_LISTS();
    for (size_t k = 0; k <= UM_KIND_COUNT; k++) {
        um_segment_t *seg = lists[k];
        while (seg) {
            um_segment_t *next = seg->next;
            for (size_t i = 0; i < seg->page_count; i++) {
                um_page_t *page = &seg->pages[i];
                if (page->slot != UM_SLOT_USED) continue;
                uintptr_t keep = atomic_load_explicit(&UM_PAGE_OWNER(page), UM_RELAXED) & UM_PAGE_HAS_ALIGNED;
                atomic_store_explicit(&UM_PAGE_OWNER(page), keep, UM_RELAXED);
                atomic_store_explicit(&page->heap, NULL, UM_RELAXED);
                page->next = page->prev = NULL;
            }
            atomic_store_explicit(&seg->heap, NULL, UM_RELAXED);
            seg->abandoned = 1;
            _x_lock(&_x_abandoned_lock);
            list_push(&abandoned_list, seg);
            atomic_fetch_add_explicit(&abandoned_count, 1, UM_RELAXED);
            _x_unlock(&_x_abandoned_lock);
            seg = next;
        }
    }
#undef HEAP_LISTS
    for (size_t k = 0; k < UM_KIND_COUNT; k++) heap->segments[k] = NULL;
    heap->full_segments = NULL;
    heap->dirty_pages = 0;
}

/* Adopt one abandoned segment: its pages join this heap's queues. */
bool _x_segment_reclaim_one(um_heap_t *heap) {
    if (atomic_load_explicit(&abandoned_count, UM_RELAXED) == 0) return false;
    _x_lock(&_x_abandoned_lock);
    um_segment_t *seg = abandoned_list;
    if (seg) {
        list_remove(&abandoned_list, seg);
        atomic_fetch_sub_explicit(&abandoned_count, 1, UM_RELAXED);
        /* Owned before the lock drops: a statistics walk (which holds this lock) must never
         * take a segment we are about to change for an ownerless one. */
        atomic_store_explicit(&seg->heap, heap, UM_RELAXED);
    }
    _x_unlock(&_x_abandoned_lock);
    if (seg == NULL) return false;
    seg->abandoned = 0;
    heap->dirty_pages += seg->dirty_pages;
    list_push(heap_list_of(heap, seg), seg);
    for (size_t i = 0; i < seg->page_count; i++) {
        um_page_t *page = &seg->pages[i];
        if (page->slot != UM_SLOT_USED) continue;
        uintptr_t aligned = atomic_load_explicit(&UM_PAGE_OWNER(page), UM_RELAXED) & UM_PAGE_HAS_ALIGNED;
        atomic_store_explicit(&page->heap, heap, UM_RELAXED);
        atomic_store_explicit(&UM_PAGE_OWNER(page), heap->tid | aligned, UM_RELAXED);
        uintptr_t tf = atomic_load_explicit(&page->thread_free, UM_RELAXED);
        while (!atomic_compare_exchange_weak_explicit(&page->thread_free, &tf, tf & ~(uintptr_t)3, memory_order_acq_rel, UM_RELAXED)) {}
        _x_page_collect(heap, page);
        if (UM_PAGE_USED(page) == 0) {
            bool last = seg->used_pages == 1;
            _x_segment_page_free(heap, page);
            if (last) return true; /* the whole segment was free: it went to the cache */
        } else {
            _x_page_queue_push(heap, page);
        }
    }
    return true;
}

/* Adopt every abandoned segment (the caller's heap keeps those with live blocks). */
size_t _x_segment_reclaim_all(void) {
    um_heap_t *heap = _x_heap_for_thread();
    size_t n = 0;
    if (heap == NULL) return 0;
    while (_x_segment_reclaim_one(heap)) n++;
    return n;
}
