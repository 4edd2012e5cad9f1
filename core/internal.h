/* The core's face to itself: names shared between core files (prefix umi_), the inline helpers
 * the fast paths need, and the cheap invariant checks that stay on in release builds. */
#ifndef UM_INTERNAL_H
#define UM_INTERNAL_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "core/types.h"
#include "core/block.h"
#include "numa/policy.h"

/* Counters the owner alone writes but other threads read for statistics. A plain increment is
 * one instruction; TSan must see an atomic to know the cross-thread read is intended. */
#if defined(__SANITIZE_THREAD__)
#define UM_OWNER_ADD(field, n) __atomic_store_n(&(field), __atomic_load_n(&(field), __ATOMIC_RELAXED) + (n), __ATOMIC_RELAXED)
#else
#define UM_OWNER_ADD(field, n) ((field) += (n))
#endif
#define UM_SHARED_READ(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)
#define UM_SHARED_WRITE(field, v) __atomic_store_n(&(field), (v), __ATOMIC_RELAXED)

/* One line on stderr: "umalloc: <what> <pointer>". */
UM_COLD void umi_warn_ptr(const char *what, const void *p);

/* Test builds (UM_DEBUG) let a test pause a thread between the steps of a protocol, to force
 * an interleaving that is otherwise a matter of luck; elsewhere the hooks compile to nothing. */
enum {
    UM_HOOK_REMOTE_FREEING, /* arg: the page */
    UM_HOOK_REMOTE_PUSHED,  /* arg: the page */
    UM_HOOK_CLOCK_READ,     /* a walk of stamped entries read the clock; arg: its name */
    UM_HOOK_SEGMAP_MAP,     /* a thread found no map leaf for a range and is about to make one; arg: NULL */
};
#if defined(UM_DEBUG) && UM_DEBUG
extern void (*volatile umi_test_hook)(int point, void *arg);
#define UM_TEST_HOOK(point, arg) do { if (umi_test_hook) umi_test_hook((point), (arg)); } while (0)
#else
#define UM_TEST_HOOK(point, arg) ((void)0)
#endif

/* ---- size classes ----------------------------------------------------------------------- */
/* (see UM_BIN_COUNT) Above 128 a size lies in the doubling (2^b, 2^(b+1)], cut in eighths by the
 * three bits below the highest; above UM_FINE_MAX only the top two of them count. */
static inline size_t umi_bin_of(size_t size) {
    if (size <= 128) return size <= 16 ? 1 : (size + 15) >> 4;
    size_t w = size - 1;
    unsigned b = 63u - (unsigned)__builtin_clzl(w); /* highest bit: the doubling */
    size_t eighth = (w >> (b - 3u)) & 7u;
    if (b < UM_FINE_SHIFT) return 8u * (b - 6u) + eighth + 1u;
    return UM_BIN_FINE_LAST + 4u * (b - UM_FINE_SHIFT) + (eighth >> 1) + 1u;
}
/* umi_bin_of for sizes of UM_DIRECT_MAX + 1 .. UM_BIN_TABLE_MAX: one load instead of a branch
 * on the size being above UM_FINE_MAX or not, which a program whose sizes lie on both sides of
 * it at random mispredicts once in two mallocs. Every class in that range is a multiple of 128
 * bytes, so the table has an entry per 128 bytes (core/bins.c). */
#define UM_BIN_TABLE_MAX ((size_t)64 << 10)
extern const uint8_t umi_bin_by_128[UM_BIN_TABLE_MAX / 128 + 1];
static inline size_t umi_bin_of_mid(size_t size) { return umi_bin_by_128[(size + 127) >> 7]; }
static inline size_t umi_bin_size(size_t bin) {
    if (bin <= 8) return bin << 4;
    if (bin <= UM_BIN_FINE_LAST) {
        size_t b = (bin - 1) / 8 + 6, eighth = (bin - 1) % 8;
        return (8 + eighth + 1) << (b - 3);
    }
    size_t b = (bin - UM_BIN_FINE_LAST - 1) / 4 + UM_FINE_SHIFT, quarter = (bin - UM_BIN_FINE_LAST - 1) % 4;
    return (4 + quarter + 1) << (b - 2);
}
static inline um_kind_t umi_bin_kind(size_t bin) {
    size_t size = umi_bin_size(bin);
    return size <= UM_SMALL_MAX ? UM_KIND_SMALL : size <= UM_MEDIUM_MAX ? UM_KIND_MEDIUM : UM_KIND_LARGE;
}

/* ---- pointer -> segment -> page ---------------------------------------------------------- */
/* The segment map: one byte per 4 MiB unit of the 128 TiB user address space. It answers "is
 * this ours?" without touching the pointed-to memory, so a foreign pointer can never make us
 * fault. Two levels (core/segmap.c): a top table of leaves made on first use, each the entries
 * of 2^16 units (256 GiB of address space). A program's segments lie in a few such ranges, so
 * its map takes little address space, where one flat table took 32 MiB, which counts against
 * RLIMIT_AS (`ulimit -v`) as much as memory in use does. */
#define UM_SEGMAP_ENTRIES ((size_t)1 << (47 - UM_SEGMENT_SHIFT))
#define UM_SEGMAP_LEAF_SHIFT 16
#define UM_SEGMAP_LEAF_ENTRIES ((size_t)1 << UM_SEGMAP_LEAF_SHIFT)
#define UM_SEGMAP_LEAVES (UM_SEGMAP_ENTRIES >> UM_SEGMAP_LEAF_SHIFT) /* 512 */
#define UM_HUGE_LEAF_SHIFT 9 /* units per leaf of the huge index (core/segmap.c): 512, 2 GiB */
/* An entry is the page shift of the segment starting there (16, 19 or 22: one load gives both
 * "ours?" and pointer -> page), or one of these small codes. */
enum {
    UM_MAP_NONE = 0,      /* not ours */
    UM_MAP_HUGE = 4,      /* huge block headers are (or were) here: ask the huge index */
    UM_MAP_MIN_SHIFT = UM_EXTENT_PAGE_SHIFT, /* entries >= this are segment starts */
};
typedef _Atomic uint8_t um_segmap_byte_t;
typedef struct um_segmap_leaf_s {
    um_segmap_byte_t entry[UM_SEGMAP_LEAF_ENTRIES]; /* a byte per unit: UM_MAP_* or a page shift */
    /* the huge index's leaves for these units, made on first use (core/segmap.c) */
    _Atomic(_Atomic uint64_t *) huge[UM_SEGMAP_LEAF_ENTRIES >> UM_HUGE_LEAF_SHIFT];
} um_segmap_leaf_t;
/* A range no leaf covers yet points at an empty leaf that is never written (core/segmap.c):
 * every lookup there finds nothing, with no test for a missing leaf on the lookup's path. A
 * leaf, once published, is never taken away. */
extern um_segmap_leaf_t *_Atomic umi_segmap_leaves[UM_SEGMAP_LEAVES];
/* Make the leaf that covers p's unit if there is none yet: false (errno ENOMEM) if the OS
 * refused. Called before a segment or a huge block is placed in a range for the first time;
 * the region's ranges are covered when it is reserved. */
bool umi_segmap_cover(const void *p);
/* Where the small-page region's first segments are entered: the first entry of the pool's
 * first leaf, which the region takes as it is reserved (its base starts a leaf's range). */
const void *umi_segmap_first_entries(void);
/* Leaves of the .bss pool not yet taken (for the tests). */
size_t umi_segmap_pool_left(void);

/* The leaf that covers unit idx (below UM_SEGMAP_ENTRIES), and the unit's place in it. */
static inline um_segmap_leaf_t *umi_segmap_leaf(uintptr_t idx) {
    return atomic_load_explicit(&umi_segmap_leaves[idx >> UM_SEGMAP_LEAF_SHIFT], memory_order_acquire);
}
static inline size_t umi_segmap_slot(uintptr_t idx) { return idx & (UM_SEGMAP_LEAF_ENTRIES - 1); }
/* The entry of unit idx (below UM_SEGMAP_ENTRIES). */
static inline unsigned umi_segmap_at(uintptr_t idx) {
    return atomic_load_explicit(&umi_segmap_leaf(idx)->entry[umi_segmap_slot(idx)], UM_RELAXED);
}
static inline unsigned umi_segmap_get(uintptr_t u) {
    uintptr_t idx = u >> UM_SEGMENT_SHIFT;
    if (UM_UNLIKELY(idx >= UM_SEGMAP_ENTRIES)) return UM_MAP_NONE;
    return umi_segmap_at(idx);
}
/* The same for a pointer that must also be 16-byte aligned (as every block start is): the low 4
 * bits are rotated up next to the segment number, so one range check rejects both a pointer
 * above the user address space and a misaligned one (a pointer into the middle of a block). */
static inline unsigned umi_segmap_get_block(uintptr_t u) {
    uintptr_t m = u & ~(uintptr_t)(UM_SEGMENT_MASK & ~(uintptr_t)15);
    uintptr_t idx = (m >> UM_SEGMENT_SHIFT) | (m << (64 - UM_SEGMENT_SHIFT));
    if (UM_UNLIKELY(idx >= UM_SEGMAP_ENTRIES)) return UM_MAP_NONE;
    return umi_segmap_at(idx);
}
/* The page slots of a pooled segment of `kind` whose pages are 2^shift bytes: the secure
 * build's small segments give their last one to the guard page (UM_GUARD_SIZE). */
static inline size_t umi_segment_slots(um_kind_t kind, unsigned shift) {
    size_t n = UM_SEGMENT_SIZE >> shift;
    return UM_GUARD_SIZE != 0 && kind == UM_KIND_SMALL ? n - 1 : n;
}
static inline um_segment_t *umi_segment_of(const void *p) {
    return (um_segment_t *)((uintptr_t)p & ~(uintptr_t)UM_SEGMENT_MASK);
}
static inline um_page_t *umi_page_of(um_segment_t *seg, const void *p) {
    return &seg->pages[((uintptr_t)p & UM_SEGMENT_MASK) >> seg->page_shift];
}
/* The descriptor of the small page p lies in, from the address alone (p in the small-page
 * region: its segment is p rounded down, its pages all small). */
static inline um_page_t *umi_small_page_of(const void *p) {
    return &umi_segment_of(p)->pages[((uintptr_t)p & UM_SEGMENT_MASK) >> UM_SMALL_PAGE_SHIFT];
}
/* Does p start one of the page's blocks (of a page with no aligned ones)? Inside the block area,
 * and at a multiple of the block size without dividing (um_page_t.block_div). */
static inline bool umi_page_starts_block(const um_page_t *page, const void *p) {
    size_t off = (size_t)((const uint8_t *)p - page->start);
    uint64_t div = page->block_div;
    return off < (size_t)page->reserved * page->block_size && (uint64_t)(uint32_t)off * div <= div - 1;
}
/* A page's hot words (see um_page_hot_t): the last UM_PAGE_HOT_SIZE bytes of a small page,
 * the segment header's for a medium or large one. Not for huge segments: they have none. */
static inline um_page_hot_t *umi_page_hot_in(um_segment_t *seg, const um_page_t *page) {
    if (seg->kind != UM_KIND_SMALL) return &seg->hot[page->index];
    return (um_page_hot_t *)((uint8_t *)seg + ((size_t)(page->index + 1) << UM_SMALL_PAGE_SHIFT) - UM_PAGE_HOT_SIZE);
}
static inline um_page_hot_t *umi_page_hot(const um_page_t *page) { return umi_page_hot_in(umi_segment_of(page), page); }
/* Bytes at the end of each page of `seg` that are no block's (a small page's hot words). */
static inline size_t umi_page_tail(const um_segment_t *seg) { return seg->kind == UM_KIND_SMALL ? UM_PAGE_HOT_SIZE : 0; }
#define UM_PAGE_OWNER(page) (umi_page_hot(page)->owner)
#define UM_PAGE_FREE(page) (umi_page_hot(page)->free)
/* The position (block index from page->start) of the i-th block a page carves, and whether the
 * block at a position has been carved (see um_page_t.rotation). */
static inline size_t umi_block_pos(const um_page_t *page, size_t i) {
    size_t pos = i + page->rotation;
    return pos >= page->reserved ? pos - page->reserved : pos;
}
static inline bool umi_block_carved(const um_page_t *page, size_t pos) {
    size_t i = pos >= page->rotation ? pos - page->rotation : pos + page->reserved - page->rotation;
    return i < page->capacity;
}
/* Blocks of the page in use (remote frees not yet collected count as in use). */
static inline uint64_t umi_hot_used(const um_page_hot_t *hot) { return hot->allocs - hot->frees; }
#define UM_PAGE_USED(page) umi_hot_used(umi_page_hot(page))
/* Hand out b, the head of hot's free list (owner only): malloc's fast path, its generic path and
 * the refill all end here. */
static inline __attribute__((always_inline)) void *umi_hot_pop(um_page_hot_t *hot, um_block_t *b) {
    um_block_t *next = umi_link_next(b, hot);
    /* Each pop loads the block the next pop hands out, so when the list's blocks are not in
     * this core's cache (other threads freed them: a ring of threads passing blocks on) each
     * malloc waits out a whole miss before the next one can start. Asking for the next block
     * now overlaps its miss with the caller's work up to its next malloc (docs/design.md,
     * "Thread heaps and the fast path"). A prefetch of NULL, at a list's end, does not fault. */
    __builtin_prefetch(next);
    hot->free = next;
    UM_OWNER_ADD(hot->allocs, 1);
    umi_key_set(b, 0); /* not free any more: a later free of it is legitimate */
    return b;
}
static inline bool umi_map_is_segment(unsigned entry) { return entry >= UM_MAP_MIN_SHIFT; }
/* The calling thread's id: its thread pointer, one %fs-relative load, unique among live threads. */
static inline uintptr_t umi_thread_id(void) { return (uintptr_t)__builtin_thread_pointer(); }
/* A pooled segment's entry: its page shift (it fills its unit), or none again. */
void umi_segmap_set(um_segment_t *seg);
void umi_segmap_clear(um_segment_t *seg);
/* The huge index (core/segmap.c): a bit per OS page that holds a live huge block's header.
 * prepare makes room for `header`'s bit (false: no memory for it); add and remove need it. */
bool umi_huge_index_prepare(const void *header);
void umi_huge_index_add(const void *header);
void umi_huge_index_remove(const void *header);
/* The header of the huge block starting at p, or NULL: p - UM_HUGE_HEADER holds a live one. */
um_segment_t *umi_huge_lookup(uintptr_t p);

/* ---- globals ---------------------------------------------------------------------------- */
extern uintptr_t umi_cookie;            /* random, never 0: segment header checks */
extern um_heap_t umi_heap_empty;        /* every thread starts here, and ends here after its exit
                                         * hook: its pages have no free blocks */
extern __thread um_heap_t *umi_tl_heap; /* initial-exec TLS: one %fs-relative load */
extern __thread bool umi_tl_exited;     /* the thread's exit hook has run: it allocates from the backup heap */
/* A heap one live thread owns: not a placeholder (before its first allocation, after its exit)
 * and not the shared backup heap. */
static inline bool umi_heap_is_own(const um_heap_t *heap) {
    return heap != &umi_heap_empty && !heap->is_backup;
}
extern size_t umi_large_threshold;      /* blocks of this size or more get their own mapping */
/* How long a free page slot stays resident (core/purge_delay.c): UMALLOC_PURGE_DELAY_MS, or,
 * when that is not set, as long as the program's cycles of freeing and reusing memory take
 * (up to UM_PURGE_DELAY_MAX_MS). */
extern uint64_t umi_purge_delay_ms;
static inline uint64_t umi_purge_delay(void) { return __atomic_load_n(&umi_purge_delay_ms, __ATOMIC_RELAXED); }
#define UM_PURGE_DELAY_MAX_MS 2000
#define UM_PURGE_DECAY_MS 10000
#define UM_PURGE_WINDOW_MS 1000 /* regrets are weighed against what the delay purged in 1-2 of these */
void umi_purge_delay_init(void);   /* after the options are read */
uint64_t umi_purge_delay_base(void); /* UMALLOC_PURGE_DELAY_MS: the delay before any learning */
bool umi_purge_delay_adaptive(void);
/* The delay purged `bytes` (page slots, cached segments, huge pieces; not forced purges). */
void umi_purge_delay_purged(size_t bytes, uint64_t now_ms);
/* `bytes` the delay purged after they had been free for free_for_ms are wanted again. */
void umi_purge_regret(uint64_t free_for_ms, uint64_t now_ms, size_t bytes);
/* A delay that has not been needed for UM_PURGE_DECAY_MS halves (toward the option's value). */
void umi_purge_delay_decay(uint64_t now_ms);
/* How long an empty segment or a freed huge block stays mapped (purged) after the purge delay,
 * for reuse without a new mmap and munmap. */
#define UM_RETAIN_MS 1000
/* Emptied segments a thread's hand-off leaves resident in the segment cache, for the threads
 * that start next (core/slots.c, umi_segment_purge): as many as the program took lately
 * (umi_segment_handoff_keep, core/segment.c), at least UM_HANDOFF_CACHE_KEEP, at most
 * UM_HANDOFF_KEEP_MAX (128 MiB). The first UM_HANDOFF_CACHE_KEEP age with the purge delay,
 * the rest with the base delay. */
#define UM_HANDOFF_CACHE_KEEP 2
#define UM_HANDOFF_KEEP_MAX 32
size_t umi_segment_handoff_keep(void);
extern _Atomic unsigned umi_purge_epoch; /* bumped by um_trim: every heap purges all on its next slow path */
/* free()'s fast path takes pointers whose bits 40..55 equal this: the number of the small-page
 * region (core/segment.c), below 2^7. Bits 56..63 are not looked at (core/fastpath.h,
 * umi_in_small_region): they are 0 in every user address, 4- or 5-level paging alike. Until the
 * region is reserved, when it cannot be, and when memory must go back at the free that empties a
 * page (UMALLOC_PURGE_DELAY_MS=0), it is UM_REGION_NONE, which no canonical address has under
 * 4-level paging (bit 55 set, bits 47..54 clear): every free then takes umi_free_generic. */
#define UM_REGION_NONE ((uint16_t)0x8000)
extern uint16_t umi_small_region_hi;

/* The segment holding block-start (or aligned) pointer p, or NULL when p is not ours (NULL
 * included: it has no map entry). Inline: every medium and large free starts here. */
static inline um_segment_t *umi_segment_lookup(const void *p) {
    uintptr_t u = (uintptr_t)p;
    um_segment_t *seg;
    unsigned entry = umi_segmap_get(u);
    if (UM_LIKELY(umi_map_is_segment(entry))) seg = umi_segment_of(p);
    else if ((seg = umi_huge_lookup(u)) == NULL) return NULL;
    UM_CHECK(seg->cookie == ((uintptr_t)seg ^ umi_cookie));
    return seg;
}

#if UM_SECURE
/* 64 random bits for the secure build (page secrets, the order of fresh blocks): splitmix64 of
 * a per-heap counter, keyed with the process cookie (from AT_RANDOM) and the heap's address, so
 * that neither another run nor another thread's heap predicts them. Owner only. */
static inline uint64_t umi_heap_random(um_heap_t *heap) {
    uint64_t z = (heap->rng += 0x9e3779b97f4a7c15u) ^ umi_cookie ^ (uintptr_t)heap;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}
#endif

/* The mark of a free block (see um_block_t). */
static inline uintptr_t umi_block_key(const void *b) { (void)b; return UM_FREE_MARK; }
/* Take b back onto hot's free list, marked free (owner only): every owner free but the inline
 * fast one, which reaches the same words by their offsets from the page end (core/fastpath.h). */
static inline __attribute__((always_inline)) void umi_hot_push(um_page_hot_t *hot, um_block_t *b) {
    umi_key_set(b, umi_block_key(b));
    umi_link_set(b, hot->free, UM_HOT_SECRET(hot));
    hot->free = b;
    UM_OWNER_ADD(hot->frees, 1);
}

/* ---- locks ------------------------------------------------------------------------------
 * The hierarchy, outermost first: a thread holding one of these takes only locks further down
 * the list (base/lock.h checks it in debug builds). Every lock guards a slow path only; none is
 * ever taken by malloc's or free()'s fast path, and no lock is held while calling out of the
 * allocator (statistics work waits for the safe point, core/counters.h).
 *   init       process start-up (options, the region, the fork handlers)
 *   registry   the registry of live heaps and the pool of exited heaps' structures
 *   backup     the shared heap of threads past their exit hook
 *   abandoned  the abandoned-segment list
 *   extent i   extent arena i (one rank each, in arena order: only fork and the heap check
 *              hold several; every other path holds one arena's lock at a time, and a thread
 *              that moves to another arena lets go of its own first)
 *   cache      the segment cache, the small-page region's free units, the huge-piece cache
 *   segments   the registry of all segments (the statistics walk) */
#include "base/lock.h"
enum {
    UM_RANK_INIT, UM_RANK_REGISTRY, UM_RANK_BACKUP, UM_RANK_ABANDONED,
    UM_RANK_EXTENT, UM_RANK_CACHE = UM_RANK_EXTENT + UM_EXTENT_ARENAS_MAX, UM_RANK_SEGMENTS
};
extern um_lock_t umi_init_lock, umi_registry_lock, umi_backup_lock, umi_abandoned_lock, umi_cache_lock, umi_segments_lock;

/* ---- init.c ----------------------------------------------------------------------------- */
void umi_process_init(void);
extern _Atomic int umi_initialized;

/* ---- heap.c ----------------------------------------------------------------------------- */
um_heap_t *umi_heap_for_thread(void);  /* the calling thread's heap, made on first use */
/* Where the first heap structure (in the library's .bss, core/heap.c) ends: the preload library
 * faults in its .bss up to there as it is loaded (preload/start.c). */
const void *umi_first_heap_end(void);
void umi_heap_thread_done(um_heap_t *heap);
void umi_heap_orphan_others(void);   /* in a child after fork */
static inline bool umi_heap_is_orphan(const um_heap_t *heap) { return heap != NULL && heap->orphaned; }
void umi_heap_release_struct(um_heap_t *heap); /* a heap no thread will use again, to the pool */
void umi_heap_set_bin_first(um_heap_t *heap, size_t bin, um_page_t *page);
/* A bin that has had no page of its own in the heap yet takes, up to UM_BORROW_MAX times, the
 * free blocks of the first page of a bin up to UM_LEND_REACH bins above (page_borrow in
 * core/page.c): its mallocs point there until that page stops being its bin's first. Only a bin
 * whose blocks waste at most a quarter of any request of the borrowing bin, plus 16 bytes, the
 * bound of the classes above 4 KiB (so none of those borrows: they are a quarter apart). */
#define UM_LEND_REACH 2
#define UM_BORROW_MAX 4
static inline bool umi_bin_may_lend(size_t bin, size_t lender) {
    size_t least = bin == 1 ? 1 : umi_bin_size(bin - 1) + 1; /* the smallest request of `bin` */
    return lender > bin && lender <= bin + UM_LEND_REACH && lender < UM_BIN_COUNT && umi_bin_size(lender) <= least + least / 4 + 16;
}
void umi_heap_lend(um_heap_t *heap, size_t bin, um_page_t *lender);
void umi_heap_stop_borrowing(um_heap_t *heap, size_t bin);
void *umi_heap_malloc_backup(size_t size);
void umi_heap_collect_delayed(um_heap_t *heap);
extern um_heap_t umi_heap_backup;
extern _Atomic size_t umi_heap_mapped_bytes;
extern size_t umi_heap_count;
extern um_heap_t *umi_heap_registry;

/* ---- page.c ----------------------------------------------------------------------------- */
extern um_page_hot_t umi_hot_empty; /* what an empty heap's direct[] points at: no free block */
void *umi_page_alloc_slow(um_heap_t *heap, size_t bin); /* refill the bin's page and allocate */
void umi_page_collect(um_heap_t *heap, um_page_t *page); /* gather the remote frees */
void umi_page_forget_free_list(um_page_t *page); /* an empty page is carved again from its start when next needed */
void umi_page_local_free_slow(um_heap_t *heap, um_page_t *page, um_block_t *b);
void umi_free_not_owned(void *p, uintptr_t owner); /* free()'s fast path, for a small page not (only) this thread's */
void umi_page_remote_free(um_page_t *page, um_block_t *b);
/* ---- sweep.c ---------------------------------------------------------------------------- */
bool umi_page_retire(um_heap_t *heap, um_page_t *page);  /* an emptied page goes back to its segment (false: kept) */
void umi_page_sweep(um_heap_t *heap, bool force);        /* retire the empty pages free() left queued */
bool umi_page_sweep_for_slot(um_heap_t *heap);           /* retire every empty page before mapping (true: some were) */
void umi_heap_tend(void); /* the calling thread's heap, before a big block maps memory: retire its empty pages, purge what is due (no lock held) */
/* On several NUMA nodes: if the heap's placement key changed (its thread moved to another node,
 * or changed its policy), the pages it queued elsewhere stop serving: empty ones go back to
 * their segments, the others are set aside as full until a free gives them a block back. Run
 * by the allocation slow paths, so a thread that moves gets memory from its new node after at
 * most one refill. Not for the backup heap. */
void umi_heap_numa_check(um_heap_t *heap);
void umi_page_queue_remove(um_heap_t *heap, um_page_t *page);
void umi_page_queue_push(um_heap_t *heap, um_page_t *page);
void umi_page_queue_adopt(um_heap_t *heap, um_page_t *page);
void umi_page_unfull(um_heap_t *heap, um_page_t *page); /* a full page got a block back */
void umi_page_init(um_heap_t *heap, um_page_t *page, size_t bin);
#if UM_SECURE
void umi_page_init_process(void);
#endif
void umi_page_set_never_delayed(um_page_t *page);
uint8_t *umi_page_area(um_segment_t *seg, um_page_t *page, size_t *size);
void *umi_block_start(um_segment_t *seg, um_page_t *page, const void *p);

/* ---- segment.c -------------------------------------------------------------------------- */
/* Segment lists (a heap's, the abandoned list, the cache): intrusive, doubly linked through
 * seg->next / seg->prev, guarded by whoever owns the list. */
static inline void umi_seg_list_push(um_segment_t **head, um_segment_t *seg) {
    seg->prev = NULL;
    seg->next = *head;
    if (*head) (*head)->prev = seg;
    *head = seg;
}
static inline void umi_seg_list_append(um_segment_t **head, um_segment_t *seg) { /* O(length) */
    um_segment_t *last = *head;
    while (last != NULL && last->next != NULL) last = last->next;
    seg->next = NULL;
    seg->prev = last;
    if (last) last->next = seg;
    else *head = seg;
}
static inline void umi_seg_list_remove(um_segment_t **head, um_segment_t *seg) {
    if (seg->prev) seg->prev->next = seg->next;
    else *head = seg->next;
    if (seg->next) seg->next->prev = seg->prev;
    seg->next = seg->prev = NULL;
}
/* The list of `heap` that `seg` belongs on: full, or with a free slot of its kind. */
static inline um_segment_t **umi_segment_heap_list(um_heap_t *heap, um_segment_t *seg) {
    return seg->used_pages == seg->page_count ? &heap->full_segments : &heap->segments[seg->kind];
}
/* What umi_segment_purge gives back: the heap's free slots, and what the segment cache holds. */
typedef enum {
    UM_PURGE_AGED,    /* what has been free for longer than the purge delay */
    UM_PURGE_ALL,     /* everything free (um_trim, a thread's exit without a hand-off) */
    UM_PURGE_HANDOFF, /* everything free but one small slot of each size class, which the
                       * heap's next thread reuses (core/handoff.c); they age with the delay
                       * under that thread */
} um_purge_t;
void umi_segment_cache_trim(bool force);
/* Purge the cached segments (core/segment.c) the delay expired, or all (purge_all) but the
 * keep_dirty newest that are dirty. */
void umi_segment_cache_purge(bool purge_all, size_t keep_dirty);
/* A formatted segment of `kind` for placement `want`, now the heap's (cached or mapped). */
um_segment_t *umi_segment_alloc(um_heap_t *heap, um_kind_t kind, int want);
void umi_segment_release(um_heap_t *heap, um_segment_t *seg); /* an empty segment leaves its heap for the cache */
/* Segments outside any heap (core/extent.c's): one of `kind`, formatted and registered, from
 * the cache or mapped; and an empty one back to the cache (dirty: some page may be resident). */
um_segment_t *umi_segment_take_unowned(um_kind_t kind);
void umi_segment_put_unowned(um_segment_t *seg, bool dirty);
void umi_segment_init_process(void);    /* reserve the small-page region */
bool umi_release_for_retry(void); /* the OS refused memory: give back caches; true if a retry may succeed */
void umi_segment_register(um_segment_t *seg);
void umi_segment_unregister(um_segment_t *seg);
extern um_segment_t *umi_segment_registry;
void umi_segment_each_cached(void (*fn)(um_segment_t *, void *), void *arg); /* umi_cache_lock held */

/* ---- slots.c ---------------------------------------------------------------------------- */
um_page_t *umi_segment_page_alloc(um_heap_t *heap, size_t bin); /* a free page slot for a page of bin */
void umi_segment_page_free(um_heap_t *heap, um_page_t *page);
void umi_segment_purge(um_heap_t *heap, um_purge_t what);
/* Purge the free slots [first, last] of seg with one call; *dirty: how many were dirty. False:
 * the kernel refused, they stay as they were. */
bool umi_slots_purge(um_segment_t *seg, size_t first, size_t last, size_t *dirty);

/* ---- abandon.c -------------------------------------------------------------------------- */
void umi_segment_abandon_all(um_heap_t *heap);  /* the heap's thread is going away */
void umi_segment_stop_delayed(um_heap_t *heap); /* abandon_all in steps: no more delayed frees, */
void umi_segment_give_back(um_heap_t *heap, um_purge_t what); /* ...empty pages back, purged, */
void umi_segment_abandon_segments(um_heap_t *heap); /* ...the segments onto the list */
void umi_segment_strip_owners(um_heap_t *heap); /* a quiesced heap's pages belong to no thread */
void umi_segment_take_owners(um_heap_t *heap);  /* ...and now to heap->tid's */
void umi_segment_forget_freeing(um_heap_t *heap);   /* after fork: the heap lives on */
/* Adopt abandoned segments into `heap`, at most `budget`, stopping early once `bin` (0: none)
 * has a page with room or `kind` (UM_KIND_COUNT: none) has a segment with a free slot.
 * Returns how many were taken off the abandoned list. */
size_t umi_segment_adopt(um_heap_t *heap, size_t bin, um_kind_t kind, size_t budget);
size_t umi_segment_reclaim_all(void);           /* adopt every abandoned segment (um_trim) */
void umi_segment_each_abandoned(void (*fn)(um_segment_t *, void *), void *arg); /* umi_abandoned_lock held */
/* Segments on the abandoned list: read without the lock, as a hint that adopting may pay. */
extern _Atomic size_t umi_abandoned_count;

/* ---- handoff.c -------------------------------------------------------------------------- */
bool umi_heap_may_hand_off(const um_heap_t *heap); /* at thread exit: room on the list? */
void umi_heap_quiesce_for_hand_off(um_heap_t *heap); /* ...no delayed frees, no thread's pages */
void umi_heap_hand_off(um_heap_t *heap);        /* ...then onto the list (out of the registry) */
um_heap_t *umi_heap_take_handed(void);          /* for a new thread: an exited thread's heap, or NULL */
void umi_heap_own_handed(um_heap_t *heap);      /* ...made the calling thread's (in the registry) */
void umi_heap_dissolve_handed(bool all);        /* heaps handed off long ago (all: every one) */
extern _Atomic size_t umi_handed_count;
void umi_heap_each_handed(void (*fn)(um_heap_t *, void *), void *arg); /* umi_abandoned_lock held */

/* ---- huge.c ----------------------------------------------------------------------------- */
void *umi_huge_alloc(size_t size, size_t align);
/* For realloc: a block mremap can grow, into which the caller copies will_copy bytes at once. */
void *umi_huge_alloc_growable(size_t size, size_t will_copy);
void *umi_huge_alloc_onnode(size_t size, int node); /* um_malloc_onnode: mapped for that node */
void umi_huge_free(um_segment_t *seg, void *p);
void umi_huge_zero(um_segment_t *seg, void *p, size_t size); /* calloc's clear of a reused huge block */
void umi_huge_release_kept(um_heap_t *heap, bool all); /* its kept block, once the purge delay passed (all: now) */
void umi_huge_forget_kept(um_heap_t *heap);           /* an orphan's, after fork: its place back */
void *umi_huge_realloc(um_segment_t *seg, void *p, size_t size);
size_t umi_huge_usable(um_segment_t *seg, const void *p);
extern _Atomic size_t umi_huge_live_bytes;

/* ---- huge_cache.c ----------------------------------------------------------------------- */
typedef struct um_huge_take_s {
    uint8_t *base;     /* page-aligned start of memory of the asked size */
    uint8_t is_zero;   /* every byte reads as zero (purged or fresh) */
    uint8_t page_kind; /* UM_PAGES_*: what backs it */
    uint8_t multi_vma; /* made of several kernel mappings: mremap can't grow or move it */
} um_huge_take_t;
/* A mapping of `size` bytes for a huge block on `node`, made of cached memory; false if the
 * cache has nothing for it (the caller maps fresh memory). one_vma: the block will be grown
 * with mremap, so it must be one kernel mapping. */
bool umi_huge_cache_take(size_t size, int node, bool one_vma, um_huge_take_t *out);
/* The same from one piece that holds `size` bytes, with no system call; false if none does. */
bool umi_huge_cache_take_fit(size_t size, int node, um_huge_take_t *out);
/* The cached bytes from `end` on, at least `size` of them, for a huge block ending there to
 * grow into in place; 0 if no piece starts there. */
size_t umi_huge_cache_take_after(uint8_t *end, size_t size, int node, unsigned page_kind);
bool umi_huge_cache_has_resident_fit(size_t size, int node);
/* Keep a freed huge mapping for reuse; false if it doesn't fit (the caller unmaps it).
 * multi_vma: it may span several kernel mappings (um_segment_t.multi_vma). */
bool umi_huge_cache_put(void *base, size_t size, int node, unsigned page_kind, bool multi_vma);
void umi_huge_cache_trim(bool force);
extern _Atomic size_t umi_huge_cached_bytes;

/* ---- extent.c --------------------------------------------------------------------------- */
/* Blocks of the extent classes: bins from UM_BIN_EXTENT_FIRST below the large threshold, while
 * umi_extents_on (one NUMA node; with several, big blocks stay in the threads' pages, which
 * follow each thread's placement; OS pages of 4 KiB). */
/* The OS pages of an extent segment that blocks may use: after the header, before the secure
 * build's guard page. */
#define UM_EXTENT_FIRST_PAGE ((sizeof(um_segment_t) + 4095) >> UM_EXTENT_PAGE_SHIFT)
#define UM_EXTENT_END_PAGE (UM_EXTENT_PAGES - (UM_GUARD_SIZE >> UM_EXTENT_PAGE_SHIFT))
extern bool umi_extents_on;
extern um_extent_arena_t umi_extent_arenas[UM_EXTENT_ARENAS_MAX];
extern unsigned umi_extent_arena_count;
static inline bool umi_is_extent_size(size_t size) { return umi_bin_of(size) >= UM_BIN_EXTENT_FIRST && umi_extents_on; }
/* A buffer that realloc grows past this moves to an extent block even below the extent classes
 * (see core/alloc.c, "A buffer that realloc grows"). */
#define UM_REALLOC_EXTENT_MIN ((size_t)8 << 10)
/* The smallest class that holds `size` in whole OS pages: 12 or 16 KiB below the extent
 * classes (whose every class is whole pages), for such a buffer. */
static inline size_t umi_extent_bin_for(size_t size) {
    size_t bin = umi_bin_of(size);
    while ((umi_bin_size(bin) & (((size_t)1 << UM_EXTENT_PAGE_SHIFT) - 1)) != 0) bin++;
    return bin;
}
void umi_extent_init_process(void);  /* after the options and NUMA */
/* A block of `bin`, aligned to `align` (a power of two; up to 4 KiB every block is), zeroed when
 * `zero`; NULL with errno ENOMEM. heap: the caller's, for its arena (NULL: any). `will_copy`:
 * the caller writes the block's first will_copy bytes at once (realloc's copy), so pages of
 * them fresh from the OS are faulted in together (umi_os_fault_in); 0 for any other caller. */
void *umi_extent_alloc(um_heap_t *heap, size_t bin, size_t align, bool zero, size_t will_copy);
void umi_extent_free(um_segment_t *seg, void *p);    /* into the caller's cache, else its arena */
/* Blocks from a thread's cache back to their arenas (counted free when the program freed them). */
void umi_extent_free_cached(void *const *blocks, size_t count);
size_t umi_extent_usable(um_segment_t *seg, const void *p); /* 0: no block starts at p */
/* Grow or shrink the block at p in place to umi_extent_bin_for(size) (size above
 * UM_REALLOC_EXTENT_MIN); false if the pages after it are taken. */
bool umi_extent_resize(um_segment_t *seg, void *p, size_t size);
typedef enum {
    UM_EXTENT_TICK_DUE,  /* arenas whose purge delay has passed tick (a thread's sweep) */
    UM_EXTENT_TICK_EXIT, /* arenas that last ticked UM_EXTENT_EXIT_TICK_MS ago or more tick (a thread's exit) */
    UM_EXTENT_TICK_TRIM, /* every free page purged, free segments to the cache (um_trim) */
} um_extent_tick_t;
void umi_extent_tick_all(um_extent_tick_t how); /* busy arenas are passed over but for TRIM */
/* A segment of an extent arena that holds no block and has resident pages, taken out of its
 * arena (still registered, formatted for extents), or NULL; for a heap that holds a little
 * (!filling), not the arena's first, and the quick lists stay. *dirty gets its 64 KiB spans that
 * may hold old bytes (bit i: [i * 64 KiB, (i + 1) * 64 KiB)). Busy arenas are passed over. For
 * core/segment.c, which moves its pages into the small-page region or formats them anew. */
um_segment_t *umi_extent_take_free_segment(int node, bool filling, uint64_t *dirty);
#define UM_EXTENT_EXIT_TICK_MS 25 /* (or the purge delay if shorter) see core/extent.c, "Every purge delay" */
void umi_extent_lock_all(void);           /* fork, the heap check: every arena, in order */
/* What is wrong with extent segment seg of arena a (its lock held), or NULL (core/check.c). */
const char *umi_extent_check(const um_segment_t *seg, const um_extent_arena_t *a);
void umi_extent_unlock_all(void);

/* ---- extent_cache.c ------------------------------------------------------------------------ */
/* A freed block of bin, from the heap's cache, or NULL. */
void *umi_extent_cache_pop(um_heap_t *heap, size_t bin);
/* The block at p (of seg) into the calling thread's cache, whose older half goes back to the
 * arenas when it is full: false when it does not go there (not a cached class, no heap of
 * its own; not a block start, which the arena reports). */
bool umi_extent_cache_push(um_segment_t *seg, void *p);
/* Blocks the heap's thread did not use since the last collection back to their arenas, half
 * of them, a collection every UM_ECACHE_COLLECT_MS at most (its sweep); or all of them (all:
 * its exit, um_trim). */
void umi_extent_cache_flush(um_heap_t *heap, bool all);

/* ---- alloc.c / free.c ------------------------------------------------------------------- */
void *umi_malloc(size_t size);
void umi_free(void *p);
void *umi_malloc_generic(size_t size, um_heap_t *heap);
void *umi_malloc_aligned(size_t align, size_t size);
int umi_posix_memalign(void **out, size_t align, size_t size); /* align: valid for posix_memalign */
void umi_free_generic(void *p);
size_t umi_usable_size(const void *p);
size_t umi_usable_in(um_segment_t *seg, const void *p); /* p's segment, looked up already */
void *umi_realloc(void *p, size_t size);
void *umi_calloc(size_t count, size_t size);

/* The core calls this for a pointer that is not ours. The static library says so on stderr and
 * leaves the heap alone; the preload library overrides it to hand the pointer to glibc. */
void umi_free_foreign(void *p);
size_t umi_usable_foreign(const void *p);
void *umi_realloc_foreign(void *p, size_t size);

#endif
