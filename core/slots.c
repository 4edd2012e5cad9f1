/* Page slots: a heap's pages take slots of its segments (core/segment.c), and give them back
 * dirty, to be purged after the purge delay. */
#include "core/internal.h"
#include "os/os.h"
#include "numa/arena.h"
#include "hugepages/pagesize.h"
#include "core/counters.h"

/* The heap's first segment of `kind` with a free slot, on the heap's node when that matters. */
static um_segment_t *segment_with_slot(um_heap_t *heap, um_kind_t kind, int node) {
    um_segment_t *seg = heap->segments[kind];
    if (UM_UNLIKELY(umi_numa_on) && !heap->is_backup)
        while (seg != NULL && seg->node != node) seg = seg->next;
    return seg;
}

static void purge_stranded(um_heap_t *heap, um_kind_t kind, size_t fresh);

um_page_t *umi_segment_page_alloc(um_heap_t *heap, size_t bin) {
    um_kind_t kind = umi_bin_kind(bin);
    /* The heap's placement (umi_heap_numa_check); the backup heap serves every exiting thread
     * and takes its memory from wherever it is. */
    int node = !umi_numa_on ? UMI_NUMA_UNBOUND : heap->is_backup ? umi_arena_current_node() : heap->numa_node;
    if (heap->slot_sweep_wait != 0) heap->slot_sweep_wait--;
    um_segment_t *seg = segment_with_slot(heap, kind, node);
    if (seg == NULL && !heap->is_backup && umi_page_sweep_for_slot(heap)) seg = segment_with_slot(heap, kind, node);
    if (seg == NULL && !heap->is_backup && atomic_load_explicit(&umi_abandoned_count, UM_RELAXED) != 0) {
        umi_segment_adopt(heap, 0, kind, 4);
        seg = segment_with_slot(heap, kind, node);
    }
    if (seg == NULL) seg = umi_segment_alloc(heap, kind, node);
    if (seg == NULL) return NULL;
    /* Prefer a dirty slot: its memory is resident already, reusing it saves page faults. Best
     * one that held a page of this size class: the blocks that page had carved are resident,
     * and page_extend carves them again in one step (um_page_t.recarve). In a slot of another
     * class the new page would carve only what it needs, and the rest of what the slot holds
     * resident would sit unused while other pages fault in memory of their own: a program
     * whose threads come and go and reuse each other's heaps (core/handoff.c) would see its
     * RSS creep up to every slot's largest use. */
    um_page_t *pick = NULL;
    for (size_t i = 0; i < seg->page_count; i++) {
        um_page_t *page = &seg->pages[i];
        if (page->slot == UM_SLOT_DIRTY) {
            if (page->bin == bin) { pick = page; break; }
            if (pick == NULL || pick->slot != UM_SLOT_DIRTY) pick = page;
        } else if (page->slot == UM_SLOT_CLEAN && pick == NULL) {
            pick = page;
        }
    }
    UM_CHECK(pick != NULL);
    bool fresh = pick->slot == UM_SLOT_CLEAN;
    if (!fresh) { seg->dirty_pages--; heap->dirty_pages--; pick->is_zero = 0; }
    else pick->is_zero = 1;
    if (fresh && pick->freed_at_ms != 0) { /* the delay purged it: too soon? */
        uint64_t now = umi_os_now_ms();
        umi_purge_regret(now - pick->freed_at_ms, now, (size_t)1 << seg->page_shift);
        pick->freed_at_ms = 0;
    }
    UM_SHARED_WRITE(pick->slot, UM_SLOT_USED);
    seg->used_pages++;
    if (seg->used_pages == seg->page_count) {
        umi_seg_list_remove(&heap->segments[kind], seg);
        umi_seg_list_push(&heap->full_segments, seg);
    }
    if (fresh) purge_stranded(heap, kind, (size_t)1 << seg->page_shift);
    return pick;
}

/* A slot stays dirty when the kernel refuses the purge: a clean one must read zero. */
static bool slot_purge(um_segment_t *seg, um_page_t *page) {
    if (!umi_pages_splittable(seg->page_kind)) return false; /* kept until the segment goes whole */
    size_t size;
    uint8_t *area = umi_page_area(seg, page, &size);
    if (!umi_os_purge(area, size + umi_page_tail(seg))) return false; /* the whole slot */
    UM_SHARED_WRITE(page->slot, UM_SLOT_CLEAN);
    seg->dirty_pages--;
    return true;
}

/* Dirty slots of one kind are memory the heap cannot use for pages of the other: small pages
 * take 64 KiB slots and medium ones 512 KiB slots, each kind in segments of its own. When a
 * program's sizes move from one kind to the other (buffers that realloc grows past 4 KiB, a
 * whole first wave of them), the heap faults in fresh slots of the new kind while the slots
 * the old kind left stay resident until the purge delay, and peak RSS counts both. So every
 * fresh slot the heap takes earns its size in credit, and the credit purges the heap's dirty
 * slots of the other kind that have been idle for UM_STRANDED_MS: what it commits anew, it
 * gives back of what it has no use for now. The purge is forced, and says nothing about the
 * delay (freed_at_ms = 0, as in umi_segment_purge). Large slots (one a segment) go to the
 * segment cache when freed, where any kind takes them. */
#define UM_STRANDED_MS 10
static void purge_stranded(um_heap_t *heap, um_kind_t kind, size_t fresh) {
    if (kind != UM_KIND_SMALL && kind != UM_KIND_MEDIUM) return;
    um_kind_t other = kind == UM_KIND_SMALL ? UM_KIND_MEDIUM : UM_KIND_SMALL;
    size_t other_slot = (size_t)1 << (other == UM_KIND_SMALL ? UM_SMALL_PAGE_SHIFT : UM_MEDIUM_PAGE_SHIFT);
    /* banked up to one slot of either size: eight fresh small slots earn a medium one's purge,
     * one fresh medium slot eight small ones' */
    size_t cap = other_slot > fresh ? other_slot : fresh, credit = heap->stranded_credit + fresh;
    heap->stranded_credit = (uint32_t)(credit < cap ? credit : cap);
    if (heap->stranded_credit < other_slot) return;
    if (heap->dirty_pages != 0) {
        uint64_t now = umi_os_now_ms();
        /* a segment with a dirty slot has a free one: it is on the list of its kind, not the full one */
        for (um_segment_t *seg = heap->segments[other]; seg != NULL; seg = seg->next) {
            if (seg->dirty_pages == 0 || !umi_pages_splittable(seg->page_kind)) continue; /* hugetlb: kept whole */
            for (size_t i = 0; i < seg->page_count; i++) {
                um_page_t *page = &seg->pages[i];
                if (page->slot != UM_SLOT_DIRTY || umi_os_ms_since(page->freed_at_ms, now) < UM_STRANDED_MS) continue;
                if (!slot_purge(seg, page)) return; /* the kernel refuses now: the credit waits */
                page->freed_at_ms = 0;
                heap->dirty_pages--;
                heap->stranded_credit -= (uint32_t)other_slot;
                if (heap->stranded_credit < other_slot) return;
            }
        }
    }
    heap->stranded_credit = 0; /* nothing (more) to give back: no credit is banked */
}

/* Purge the slots [first, last] of seg, each dirty or clean (free), with one system call: slots
 * lie end to end, and each madvise costs a TLB shootdown on every CPU the process runs on,
 * whatever its length (a thread that exits gives back its slots side by side, so one call per
 * run of slots replaces one per slot), while a clean slot costs the call nothing. *dirty: how
 * many were dirty. */
bool umi_slots_purge(um_segment_t *seg, size_t first, size_t last, size_t *dirty) {
    size_t size;
    uint8_t *area = umi_page_area(seg, &seg->pages[first], &size);
    uint8_t *end = (uint8_t *)seg + ((last + 1) << seg->page_shift);
    *dirty = 0;
    if (!umi_os_purge(area, (size_t)(end - area))) return false; /* they stay dirty */
    for (size_t i = first; i <= last; i++) {
        UM_CHECK(seg->pages[i].slot != UM_SLOT_USED);
        *dirty += seg->pages[i].slot == UM_SLOT_DIRTY;
        UM_SHARED_WRITE(seg->pages[i].slot, UM_SLOT_CLEAN);
    }
    seg->dirty_pages = (uint8_t)(seg->dirty_pages - *dirty);
    return true;
}

void umi_segment_page_free(um_heap_t *heap, um_page_t *page) {
    um_segment_t *seg = umi_segment_of(page);
    UM_CHECK(page->slot == UM_SLOT_USED && seg->cookie == ((uintptr_t)seg ^ umi_cookie));
    umi_page_set_never_delayed(page); /* a remote free still touching the page finishes first */
    umi_count_page_gone(heap, page);
    umi_pages_touched_add(-(int64_t)page->capacity, page->block_size);
    {   /* ASan: the next page of this slot may be of another class, its hot words anywhere */
        size_t size;
        uint8_t *area = umi_page_area(seg, page, &size);
        UM_SAN_UNPOISON(area, size + umi_page_tail(seg));
    }
    bool was_full = seg->used_pages == seg->page_count;
    atomic_store_explicit(&UM_PAGE_OWNER(page), 0, UM_RELAXED);
    if (page->capacity > page->recarve) page->recarve = page->capacity; /* resident: for a page of its bin */
    UM_SHARED_WRITE(page->block_size, 0);
    UM_SHARED_WRITE(page->slot, UM_SLOT_DIRTY);
    page->freed_at_ms = umi_os_now_ms();
    seg->used_pages--;
    seg->dirty_pages++;
    heap->dirty_pages++;
    /* A full segment that gets a slot back goes first in its list, where the next new page
     * looks: the slot is resident, and a new page there takes no page fault. But not on hugetlb
     * pages (or locked memory), where every slot is resident anyway and the memory goes back
     * only with the whole segment: there a segment whose pages are being freed one after
     * another (a structure torn down, the sweep retiring the empty pages it left) goes last, to
     * empty and go: at the front, it would take a new page into the first slot it frees, and one
     * page of blocks would pin 4 MiB of hugetlb memory. */
    if (was_full) {
        umi_seg_list_remove(&heap->full_segments, seg);
        if (umi_pages_splittable(seg->page_kind)) umi_seg_list_push(&heap->segments[seg->kind], seg);
        else umi_seg_list_append(&heap->segments[seg->kind], seg);
    }
    if (umi_purge_delay() == 0 && slot_purge(seg, page)) heap->dirty_pages--;
    if (seg->used_pages == 0) umi_segment_release(heap, seg);
}

/* Purge the heap's free slots that have been dirty for longer than the delay, or all of them
 * (UM_PURGE_ALL), or all but one small slot of each size class (UM_PURGE_HANDOFF).
 *
 * Why a hand-off keeps small slots: the next thread that takes the heap allocates the same
 * size classes, and it takes a dirty slot that held its class first
 * (umi_segment_page_alloc), carving what the slot had carved in one step. Purged, every such
 * page is faulted in again 4 KiB at a time, a page fault each, in a program that replaces its
 * threads all the time. One a class: a thread that freed a lot before it exited must not
 * leave all of it resident in a heap that may wait long for its next thread (it is purged
 * when the heap is dissolved, but that takes a living thread's allocations); one page of each
 * class serves the next thread's first blocks. Medium and large slots are purged still: their
 * blocks are 4 KiB and more, a slot is 512 KiB or more, and a program writes a big block only
 * in part, so a kept slot holds far more than the next thread touches. */
void umi_segment_purge(um_heap_t *heap, um_purge_t what) {
    bool force = what != UM_PURGE_AGED;
    if (heap->dirty_pages == 0 && !force) return;
    uint64_t now = umi_os_now_ms();
    uint64_t delay = umi_purge_delay();
    if (!force && now < heap->next_purge_ms) return;
    uint64_t next = UINT64_MAX;
    uint64_t kept[(UM_BIN_COUNT + 63) / 64] = {0}; /* UM_PURGE_HANDOFF: classes with a slot kept */
    um_segment_t *lists[UM_KIND_COUNT + 1];
    for (size_t k = 0; k < UM_KIND_COUNT; k++) lists[k] = heap->segments[k];
    lists[UM_KIND_COUNT] = heap->full_segments;
    for (size_t k = 0; k <= UM_KIND_COUNT; k++) {
        for (um_segment_t *seg = lists[k]; seg; seg = seg->next) {
            if (seg->dirty_pages == 0 || !umi_pages_splittable(seg->page_kind)) continue; /* hugetlb: kept whole */
            bool keep_small = what == UM_PURGE_HANDOFF && seg->kind == UM_KIND_SMALL;
            size_t run = SIZE_MAX; /* first slot of the run of expired dirty slots being gathered */
            size_t run_last = 0;   /* its last expired slot: clean slots between go with it */
            size_t run_aged = 0;   /* how many of the run the delay expired (the others are forced) */
            for (size_t i = 0; i <= seg->page_count; i++) {
                um_page_t *page = &seg->pages[i];
                bool dirty = i < seg->page_count && page->slot == UM_SLOT_DIRTY;
                if (run != SIZE_MAX && i < seg->page_count && page->slot == UM_SLOT_CLEAN) continue; /* see umi_slots_purge */
                bool aged = dirty && now - page->freed_at_ms >= delay;
                bool expired = aged || (force && dirty);
                if (expired && !aged && keep_small && !(kept[page->bin / 64] >> (page->bin % 64) & 1)) {
                    kept[page->bin / 64] |= (uint64_t)1 << (page->bin % 64);
                    expired = false;
                }
                if (expired) {
                    if (!aged) page->freed_at_ms = 0; /* forced: no verdict on the delay */
                    if (run == SIZE_MAX) run = i;
                    run_last = i;
                    if (aged) run_aged++;
                    continue;
                }
                if (run != SIZE_MAX) {
                    size_t purged;
                    if (umi_slots_purge(seg, run, run_last, &purged)) {
                        heap->dirty_pages -= purged;
                        umi_purge_delay_purged(run_aged << seg->page_shift, now);
                    }
                    run = SIZE_MAX;
                    run_aged = 0;
                }
                if (dirty && page->freed_at_ms + delay < next)
                    next = page->freed_at_ms + delay;
            }
        }
    }
    heap->next_purge_ms = next == UINT64_MAX ? now + delay : next;
    /* Forced with the heap's slots (a thread exiting, um_trim), the segment cache is purged too,
     * but at a hand-off for the newest segments, as many as the program's threads took lately
     * (umi_segment_handoff_keep), which age with the delay (core/segment.c): the threads that start
     * next, with heaps of their own or handed-off ones, take them instead of faulting in segments
     * anew. No more than the demand: a program whose threads took few segments lately leaves little
     * resident behind an exit. It stays mapped: an munmap and the next thread's mmap each take the
     * address-space lock for writing, which stalls the page faults of every other thread, and each
     * munmap shoots down the TLBs of every CPU the process runs on. um_trim unmaps it by itself. */
    umi_segment_cache_purge(force, what == UM_PURGE_HANDOFF ? umi_segment_handoff_keep() : 0);
}

