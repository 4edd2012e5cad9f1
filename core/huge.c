/* Huge blocks: LARGE_THRESHOLD bytes or more, each in a mapping of its own, so that realloc can
 * move it with mremap instead of copying, and free can hand its memory to the piece cache
 * (core/huge_cache.c) for the next huge block of any size.
 *
 * Layout: the block's header (a um_segment_t with one page) is the OS page right before the
 * block, and the huge index (core/segmap.c) has a bit for it, so that the block may start on
 * any OS page: the cache places blocks wherever a piece has room. The mapping starts at the
 * header, or, for a block aligned beyond an OS page, up to `align` bytes before it. */
#include <string.h>

#include "core/internal.h"
#include "hugepages/pagesize.h"
#include "os/os.h"
#include "numa/arena.h"
#include "core/counters.h"

_Atomic size_t umi_huge_live_bytes;

static size_t round_page(size_t n) {
    size_t ps = umi_os_page_size();
    return (n + ps - 1) & ~(ps - 1);
}

static void huge_unmap(um_segment_t *seg) {
    umi_count_mapped(seg, -1);
    umi_arena_unmap(seg->map_base, seg->map_size);
}

/* Live huge bytes: the core's count (statistics, the heap check) and hugepages/' (the thp
 * threshold counts huge blocks whole). */
static void live_add(int64_t bytes) {
    atomic_fetch_add_explicit(&umi_huge_live_bytes, (size_t)bytes, UM_RELAXED);
    umi_pages_whole_add(bytes);
}

static void huge_publish(um_segment_t *seg, uint8_t *block) {
    umi_huge_index_add(seg);
    umi_segment_register(seg);
    live_add((int64_t)umi_huge_usable(seg, block));
    umi_count_huge(1, umi_huge_usable(seg, block));
}

/* A block aligned beyond an OS page, from cached memory: a piece with room for its header and
 * the block at an `align` boundary, of which the block's mapping takes only that (from the
 * header on); the cached bytes before and after it go back to the cache. Fresh memory instead
 * would cost a fault for every page the program writes, every time, while the freed mapping
 * sits in the cache until evicted (a program that keeps a few 2 MiB-aligned buffers and
 * replaces them, docs/bench-notes.md). On success out->base is the header's page and
 * *map_size the mapping's size. */
static bool take_aligned(size_t size, size_t align, int node, um_huge_take_t *out, size_t *map_size) {
    size_t ps = umi_os_page_size();
    size_t need = round_page(UM_HUGE_HEADER + size) + UM_GUARD_SIZE, room = need + align - ps;
    /* One piece that holds it, or fresh memory: assembling pieces with mremap, as an unaligned
     * block may, moves several MiB of page tables a call for the alignment's slack, and cost
     * more than the faults it saves (docs/bench-notes.md). */
    if (need < size || room < need || !umi_huge_cache_take_fit(room, node, out)) return false;
    uint8_t *block = (uint8_t *)(((uintptr_t)out->base + UM_HUGE_HEADER + align - 1) & ~(uintptr_t)(align - 1));
    uint8_t *start = block - UM_HUGE_HEADER, *end = start + need, *got_end = out->base + room;
    UM_CHECK(start >= out->base && end <= got_end);
    /* The taken piece stopped counting as the cache's (umi_huge_cache_take_fit): what goes
     * back counts again, and what the cache cannot keep is unmapped. */
    const struct { uint8_t *at; size_t len; } rest[2] = {{out->base, (size_t)(start - out->base)}, {end, (size_t)(got_end - end)}};
    for (int i = 0; i < 2; i++) {
        if (rest[i].len == 0) continue;
        umi_count_mapped_bytes(node, out->page_kind, rest[i].len, 1);
        if (!umi_huge_cache_put(rest[i].at, rest[i].len, node, out->page_kind, out->multi_vma)) {
            umi_count_mapped_bytes(node, out->page_kind, rest[i].len, -1);
            umi_arena_unmap(rest[i].at, rest[i].len);
        }
    }
    out->base = start;
    *map_size = need;
    return true;
}

/* ---- a thread's kept block ------------------------------------------------------------------
 * A thread that frees a huge block of a mapping of up to UM_HUGE_KEEP_MAX keeps it, whole and
 * still registered, for its own next huge malloc that it fits without wasting more than half
 * of it; of two, the bigger stays, so that buffers that vary a little in size find one that
 * fits them all. Threads that each cycle buffers of a MiB or so (a buffer per request, a
 * compression window) would otherwise each go through the shared cache's lock, the segment
 * registry's and the shared counters on every malloc and free, and two threads on two cores
 * spend more time handing those cache lines to each other than one thread takes for the work.
 * So a keep and a take touch nothing shared: the block counts as live for the counters
 * (umi_huge_live_bytes, the peak samples) until it is taken again or released, and the
 * thread counts the reuse in its own statistics. UM_HUGE_KEEPERS threads at most keep one at a
 * time (a place is taken at a thread's first keep and given back with the block): a thousand
 * threads that each freed a buffer and went idle must not hold a thousand buffers. A kept block
 * is free for the statistics' walk and the checker (its slot is UM_SLOT_DIRTY); it goes to the
 * shared cache when its thread exits, at the thread's first sweep a purge delay after a sweep
 * first found it kept, or at the next sweep after um_trim. Bigger blocks are rarer, and the shared cache serves them in pieces
 * of any size, where a kept block serves only its thread and its size. */
#define UM_HUGE_KEEP_MAX ((size_t)4 << 20)
#define UM_HUGE_KEEPERS 64
static _Atomic unsigned huge_keepers;

static void huge_free_now(um_segment_t *seg);

static bool huge_keep(um_segment_t *seg) {
    um_heap_t *heap = umi_tl_heap;
    um_segment_t *old = heap->huge_kept;
    if (heap == &umi_heap_empty || heap->is_backup || seg->map_size > UM_HUGE_KEEP_MAX || (old != NULL && old->map_size >= seg->map_size)) return false;
    if (!heap->huge_keeper) {
        if (atomic_fetch_add_explicit(&huge_keepers, 1, UM_RELAXED) >= UM_HUGE_KEEPERS) {
            atomic_fetch_sub_explicit(&huge_keepers, 1, UM_RELAXED);
            return false;
        }
        heap->huge_keeper = 1;
    }
    seg->pages[0].is_zero = 0;
    UM_SHARED_WRITE(seg->pages[0].slot, UM_SLOT_DIRTY);
    heap->huge_kept = seg;
    heap->huge_kept_ms = 0; /* its age starts at the next sweep (umi_huge_release_kept): no clock read here */
    if (old != NULL) huge_free_now(old);
    return true;
}

/* The kept block if it fits; if it does not, it goes to the shared cache, where this request
 * may use it (grown by mremap, assembled with others): a thread whose next huge block is of
 * another size has moved on from the one it kept. */
static void *huge_take_kept(size_t size, int node) {
    um_heap_t *heap = umi_tl_heap;
    um_segment_t *seg = heap->huge_kept;
    if (seg == NULL) return NULL;
    heap->huge_kept = NULL;
    uint8_t *block = seg->pages[0].start;
    size_t usable = umi_huge_usable(seg, block);
    if (usable < size || usable / 2 > size || (umi_numa_on && seg->node != node)) {
        huge_free_now(seg);
        return NULL;
    }
    UM_SAN_UNPOISON(block, usable);
    UM_SHARED_WRITE(seg->pages[0].slot, UM_SLOT_USED);
    UM_COUNT_ADD(heap->stats.huge_reuses, 1);
    UM_COUNT_ADD(heap->stats.huge_reused_bytes, usable);
    return block;
}

/* node: the placement key to map for (see numa/policy.h), or UMI_NUMA_UNSET for the caller's. */
static void *huge_alloc(size_t size, size_t align, bool growable, int on_node) {
    umi_process_init();
    size_t offset = align <= UM_HUGE_HEADER ? UM_HUGE_HEADER : align; /* block start from map base */
    size_t map_align = align <= UM_SEGMENT_SIZE ? UM_SEGMENT_SIZE : align;
    if (size > SIZE_MAX / 2 - offset) { errno = ENOMEM; umi_count_failed(); return NULL; }
    /* Whole hugetlb pages where the policy uses them (hugepages/): the rounding is usable. */
    size_t map_size = umi_pages_block_size(round_page(offset + size) + UM_GUARD_SIZE);
    int want_node = on_node, node;
    if (on_node == UMI_NUMA_UNSET) {
        want_node = umi_arena_current_node();
        /* The thread's pooled pages follow it too: mixed sizes reach here often. */
        um_heap_t *heap = umi_tl_heap;
        if (UM_UNLIKELY(umi_numa_on) && heap != NULL && !heap->is_backup && heap->numa_node != UMI_NUMA_UNSET) umi_heap_numa_check(heap);
    }
    node = want_node;
    if (offset == UM_HUGE_HEADER) {
        void *kept = huge_take_kept(size, want_node);
        if (kept != NULL) return kept;
    }
    um_huge_take_t got;
    uint8_t *base;
    unsigned page_kind;
    bool is_zero, multi_vma = false;
    if (offset == UM_HUGE_HEADER && umi_huge_cache_take(map_size, want_node, growable, &got)) {
        base = got.base;
        page_kind = got.page_kind;
        is_zero = got.is_zero;
        multi_vma = got.multi_vma;
    } else if (offset != UM_HUGE_HEADER && !growable && align <= UM_SEGMENT_SIZE &&
               take_aligned(size, align, want_node, &got, &map_size)) {
        base = got.base;
        offset = UM_HUGE_HEADER;
        page_kind = got.page_kind;
        is_zero = got.is_zero;
        multi_vma = got.multi_vma;
    } else {
        /* A big block is written through, typically: hugepages/ backs it with huge pages as
         * UMALLOC_HUGEPAGES says (transparent ones: one fault per 2 MiB instead of 512). */
        umi_heap_tend(); /* what the thread's heap emptied goes back first (core/page.c) */
        base = umi_arena_map(map_size, map_align, want_node, UM_USE_BLOCK, &node, &page_kind);
        if (base == NULL && umi_release_for_retry()) base = umi_arena_map(map_size, map_align, want_node, UM_USE_BLOCK, &node, &page_kind);
        if (base == NULL) { errno = ENOMEM; umi_count_failed(); return NULL; }
        is_zero = true;
    }
    uint8_t *block = base + offset;
    um_segment_t *seg = (um_segment_t *)(block - UM_HUGE_HEADER);
    /* no memory for the index's leaf: under RLIMIT_AS, what umalloc keeps for reuse may be
     * what stands in its way, as for a mapping */
    if (UM_UNLIKELY(!umi_huge_index_prepare(seg)) && !(umi_release_for_retry() && umi_huge_index_prepare(seg))) {
        umi_count_mapped_bytes(node, page_kind, map_size, 1); /* the cache counts what it holds */
        if (!umi_huge_cache_put(base, map_size, node, page_kind, multi_vma)) {
            umi_count_mapped_bytes(node, page_kind, map_size, -1);
            umi_arena_unmap(base, map_size);
        }
        errno = ENOMEM;
        umi_count_failed();
        return NULL;
    }
    UM_SAN_UNPOISON(base, map_size); /* ASan: cached memory holds a freed block, poisoned */
    /* A block aligned to 2 MiB or more has its header alone in the 2 MiB before it: backed by a
     * transparent huge page (advised, or with THP "always"), the header would hold 2 MiB, as
     * much as the block again for a block of 2 MiB. Its page gets none, before it is touched. */
    if ((uintptr_t)block % UM_THP_BYTES == 0 && UM_PAGES_KIND(page_kind) < UM_PAGES_2M) umi_os_advise_no_huge(seg, UM_HUGE_HEADER);
    /* Cached memory holds whatever was there: clear the part of the header a huge block uses
     * (fresh memory reads as zero already, and is faulted in with one call: umi_os_fault_in). */
    if (!is_zero) memset(seg, 0, offsetof(um_segment_t, pages[1]));
    else if (page_kind == UM_PAGES_4K) umi_os_fault_in(seg, &seg->pages[1]);
    seg->kind = UM_KIND_HUGE;
    seg->page_shift = UM_SEGMENT_SHIFT;
    seg->page_count = 1;
    seg->used_pages = 1;
    seg->node = (int16_t)node;
    seg->map_base = base;
    seg->map_size = map_size;
    seg->cookie = (uintptr_t)seg ^ umi_cookie;
    seg->page_kind = (uint8_t)page_kind;
    seg->multi_vma = multi_vma;
    um_page_t *page = &seg->pages[0];
    page->start = block;
    page->is_zero = is_zero;
    UM_SHARED_WRITE(page->slot, UM_SLOT_USED);
    page->reserved = page->capacity = 1; /* no hot words (UM_PAGE_OWNER...): huge frees never need them */
    if (UM_GUARD_SIZE != 0) umi_os_guard(base + map_size - UM_GUARD_SIZE, UM_GUARD_SIZE, true);
    huge_publish(seg, block);
    umi_count_mapped(seg, 1);
    return block;
}

void *umi_huge_alloc(size_t size, size_t align) { return huge_alloc(size, align, false, UMI_NUMA_UNSET); }
void *umi_huge_alloc_growable(size_t size, size_t will_copy) {
    uint8_t *p = huge_alloc(size, 16, true, UMI_NUMA_UNSET);
    if (p == NULL) return NULL;
    um_segment_t *seg = (um_segment_t *)(p - UM_HUGE_HEADER);
    /* fresh or purged pages that realloc's copy writes: faulted in at once (umi_os_fault_in) */
    if (seg->pages[0].is_zero && seg->page_kind == UM_PAGES_4K) umi_os_fault_in(p, p + (will_copy < size ? will_copy : size));
    return p;
}
void *umi_huge_alloc_onnode(size_t size, int node) { return huge_alloc(size, 16, false, node); }

size_t umi_huge_usable(um_segment_t *seg, const void *p) {
    return (size_t)((uint8_t *)seg->map_base + seg->map_size - UM_GUARD_SIZE - (const uint8_t *)p);
}

/* calloc of a huge block that reuses cached memory (not is_zero): it must read as zero. A
 * memset writes every page, and faults in those the block's last user never touched: a
 * program that callocs a big table and fills a little of it (a sparse array, a hash table or
 * a buffer sized for the worst case) would have all of it resident after one cycle, and clear
 * all of it on every calloc. So a block of UM_ZERO_PURGE_MIN or more of which at most an
 * eighth is resident is purged instead (MADV_DONTNEED: it then reads as zero, swapped pages
 * too, and the pages the program writes fault in as fresh ones would). Otherwise memset:
 * clearing a resident page costs a fraction of faulting it in again (a twentieth on bare
 * metal, far less on a virtual machine, where a fault traps to the hypervisor), and below a
 * few MiB the clear costs less than the faults of the pages the program will write anyway.
 * Hugetlb and locked memory are not purged in parts: memset. */
#define UM_ZERO_PURGE_MIN ((size_t)4 << 20)
#define UM_RESIDENT_PROBE ((size_t)2 << 20) /* mincore's vector: 512 pages a call */
void umi_huge_zero(um_segment_t *seg, void *p, size_t size) {
    size_t ps = umi_os_page_size();
    uintptr_t lo = ((uintptr_t)p + ps - 1) & ~(uintptr_t)(ps - 1), hi = ((uintptr_t)p + size) & ~(uintptr_t)(ps - 1);
    if (size < UM_ZERO_PURGE_MIN || hi <= lo || !umi_pages_splittable(seg->page_kind)) { memset(p, 0, size); return; }
    size_t resident = 0, pages = (hi - lo) / ps;
    for (uintptr_t at = lo; at < hi && resident * 8 <= pages; at += UM_RESIDENT_PROBE)
        resident += umi_os_resident_pages((void *)at, hi - at < UM_RESIDENT_PROBE ? hi - at : UM_RESIDENT_PROBE);
    if (resident * 8 > pages || !umi_os_purge((void *)lo, hi - lo)) { memset(p, 0, size); return; }
    memset(p, 0, lo - (uintptr_t)p);               /* the partial pages at both ends */
    memset((void *)hi, 0, (uintptr_t)p + size - hi);
}

/* Freed for the counters, and its mapping to the shared cache or back to the OS. */
static void huge_free_now(um_segment_t *seg) {
    umi_count_huge(-1, umi_huge_usable(seg, seg->pages[0].start));
    live_add(-(int64_t)umi_huge_usable(seg, seg->pages[0].start));
    umi_segment_unregister(seg);
    umi_huge_index_remove(seg);
    /* the cache's pieces are read-write throughout: the next block there may be of any size */
    if (UM_GUARD_SIZE != 0) umi_os_guard((uint8_t *)seg->map_base + seg->map_size - UM_GUARD_SIZE, UM_GUARD_SIZE, false);
    /* The cache keeps counting the bytes as mapped on the segment's node and page kind. */
    if (!umi_huge_cache_put(seg->map_base, seg->map_size, seg->node, seg->page_kind, seg->multi_vma)) huge_unmap(seg);
    umi_huge_cache_trim(false); /* a program that only makes huge blocks must still see them purged */
}

UM_NOINLINE void umi_huge_free(um_segment_t *seg, void *p) { /* not inlined: umi_free_generic stays frameless */
    if (UM_UNLIKELY(p != seg->pages[0].start)) { umi_warn_ptr("free of a pointer inside a large block:", p); return; }
    if (UM_UNLIKELY(seg->pages[0].slot != UM_SLOT_USED)) { umi_double_free(p); return; } /* a kept block */
    UM_SAN_POISON(p, umi_huge_usable(seg, p)); /* ASan: a use after free of it is reported while it is cached */
    if (!huge_keep(seg)) huge_free_now(seg);
}

/* After fork, an orphan's kept block stays where it is, lost with the rest of the orphan; its
 * place goes back, or a child of a process whose threads kept 64 blocks could keep none. */
void umi_huge_forget_kept(um_heap_t *heap) {
    if (!heap->huge_keeper) return;
    heap->huge_keeper = 0;
    atomic_fetch_sub_explicit(&huge_keepers, 1, UM_RELAXED);
}

void umi_huge_release_kept(um_heap_t *heap, bool all) {
    um_segment_t *seg = heap->huge_kept;
    if (seg != NULL && !all) {
        uint64_t now = umi_os_now_ms();
        if (heap->huge_kept_ms == 0) heap->huge_kept_ms = now;
        if (umi_os_ms_since(heap->huge_kept_ms, now) < umi_purge_delay()) return;
    }
    heap->huge_kept = NULL;
    if (seg != NULL) huge_free_now(seg);
    if (heap->huge_keeper) { /* its place, for another thread */
        heap->huge_keeper = 0;
        atomic_fetch_sub_explicit(&huge_keepers, 1, UM_RELAXED);
    }
}

/* Moved by its page tables to fresh address space (4 MiB-aligned, as every fresh huge mapping),
 * with the index ready for the header there. NULL: not moved. */
static um_segment_t *move_resized(um_segment_t *seg, size_t old_size, size_t new_size) {
    void *dst = umi_os_map_aligned(new_size, UM_SEGMENT_SIZE);
    if (dst == NULL) return NULL;
    if (umi_huge_index_prepare(dst) && umi_os_move_resize(seg, old_size, new_size, dst) != NULL) return dst;
    umi_os_unmap(dst, new_size);
    return NULL;
}

/* Grow or shrink in the kernel: mremap moves page tables, never bytes. */
void *umi_huge_realloc(um_segment_t *seg, void *p, size_t size) {
    const size_t offset = UM_HUGE_HEADER;
    /* An over-aligned block (its mapping starts before its header) is copied instead. */
    if (p != seg->pages[0].start || seg->map_base != (void *)seg) return NULL;
    if (size > SIZE_MAX / 2 - offset) return NULL;
    size_t new_size = umi_pages_block_size(round_page(offset + size) + UM_GUARD_SIZE), old_size = seg->map_size;
    /* Cached memory right after the block first (umi_huge_cache_take_after): resident, and no
     * system call. It may be another kernel mapping than the block's, so mremap is off for
     * the block from then on; when the piece is used up, the next growth copies. */
    size_t taken = new_size > old_size ? umi_huge_cache_take_after((uint8_t *)seg + old_size, new_size - old_size, seg->node, seg->page_kind) : 0;
    if (taken == 0 && seg->multi_vma) return NULL;
    /* Grown by mremap, the block gains fresh pages, a fault each; copied into a resident piece
     * of the cache, it gains none, and the copy costs less than the faults would. */
    if (taken == 0 && new_size > old_size && umi_huge_cache_has_resident_fit(new_size, seg->node)) return NULL;
    size_t old_usable = umi_huge_usable(seg, p);
    umi_segment_unregister(seg);
    umi_huge_index_remove(seg);
    umi_count_mapped(seg, -1);
    /* mremap resizes one kernel mapping: the guard page must be one with the rest meanwhile */
    if (UM_GUARD_SIZE != 0) umi_os_guard((uint8_t *)seg + old_size - UM_GUARD_SIZE, UM_GUARD_SIZE, false);
    um_segment_t *nseg;
    if (taken != 0) {
        nseg = seg;
        new_size = old_size + taken;
        seg->multi_vma = 1;
    } else {
        nseg = umi_os_resize(seg, old_size, new_size); /* in place first: no copy, no move */
        if (nseg == NULL) nseg = move_resized(seg, old_size, new_size);
    }
    bool failed = nseg == NULL;
    if (failed) nseg = seg; /* unchanged */
    else {
        UM_SAN_UNPOISON(nseg, new_size); /* the caller opens the block as asked */
        nseg->map_base = nseg;
        nseg->map_size = new_size;
        nseg->cookie = (uintptr_t)nseg ^ umi_cookie;
        nseg->pages[0].start = (uint8_t *)nseg + offset;
    }
    if (UM_GUARD_SIZE != 0) umi_os_guard((uint8_t *)nseg + nseg->map_size - UM_GUARD_SIZE, UM_GUARD_SIZE, true);
    umi_count_mapped(nseg, 1);
    umi_huge_index_add(nseg);
    umi_segment_register(nseg);
    if (failed) return NULL;
    size_t new_usable = umi_huge_usable(nseg, nseg->pages[0].start);
    live_add((int64_t)new_usable - (int64_t)old_usable);
    if (new_usable > old_usable) umi_count_huge(0, 0);
    return nseg->pages[0].start;
}
