/* The segment map: which 4 MiB units of the address space are ours, and how; and the huge
 * index, which finds the header of a huge block that starts anywhere in a unit.
 *
 * The map's leaves (core/internal.h) come first from a pool in the library's .bss, then from
 * mappings of their own. The pool holds the small-page region's four and two more, enough for
 * most programs' segments (the region, os/os.c's hint area): no system call, and no address
 * space beyond the library's. It stays small: a library whose mapping spans 2 MiB or more is
 * placed 2 MiB-aligned by the kernel, which moves the thread stacks glibc maps below the
 * libraries to where each munmap of one flushes its pages from the TLB one by one instead of
 * all at once (docs/bench-notes.md). Leaves read zero until written and are touched a page at
 * a time. */
#include "core/internal.h"
#include "os/os.h"

#include <errno.h>

/* The leaf of every range without one of its own: zeros, read but never written. The top
 * table's 512 pointers to it are relocated as the library is loaded: one page of .data. */
UM_BIG_BSS static um_segmap_leaf_t none_leaf;
um_segmap_leaf_t *_Atomic umi_segmap_leaves[UM_SEGMAP_LEAVES] = {[0 ... UM_SEGMAP_LEAVES - 1] = &none_leaf};

#define POOL_LEAVES 6
UM_BIG_BSS static um_segmap_leaf_t pool[POOL_LEAVES];
static _Atomic unsigned pool_taken; /* bit i: pool[i] is a published leaf, or about to be */

static um_segmap_leaf_t *pool_take(void) {
    unsigned taken = atomic_load_explicit(&pool_taken, UM_RELAXED);
    while (taken != (1u << POOL_LEAVES) - 1) {
        unsigned i = (unsigned)__builtin_ctz(~taken);
        if (atomic_compare_exchange_weak_explicit(&pool_taken, &taken, taken | 1u << i, UM_RELAXED, UM_RELAXED)) return &pool[i];
    }
    return NULL;
}

const void *umi_segmap_first_entries(void) { return &pool[0].entry[0]; }

size_t umi_segmap_pool_left(void) {
    return POOL_LEAVES - (size_t)__builtin_popcount(atomic_load_explicit(&pool_taken, UM_RELAXED));
}

bool umi_segmap_cover(const void *p) {
    uintptr_t idx = (uintptr_t)p >> UM_SEGMENT_SHIFT;
    if (idx >= UM_SEGMAP_ENTRIES) { errno = ENOMEM; return false; }
    um_segmap_leaf_t *_Atomic *slot = &umi_segmap_leaves[idx >> UM_SEGMAP_LEAF_SHIFT];
    if (UM_LIKELY(atomic_load_explicit(slot, memory_order_acquire) != &none_leaf)) return true;
    UM_TEST_HOOK(UM_HOOK_SEGMAP_MAP, NULL);
    um_segmap_leaf_t *mine = pool_take(), *none = &none_leaf;
    bool pooled = mine != NULL;
    if (!pooled) mine = umi_os_map_table(sizeof(um_segmap_leaf_t));
    /* refused: another thread's leaf, if one was made meanwhile (errno: mmap's) */
    if (mine == NULL) return atomic_load_explicit(slot, memory_order_acquire) != &none_leaf;
    /* release: whoever finds the leaf finds it zeroed (a pool leaf is .bss; a mapping is zeros) */
    if (atomic_compare_exchange_strong_explicit(slot, &none, mine, memory_order_acq_rel, memory_order_acquire)) return true;
    /* another thread made it first: ours goes back, untouched */
    if (pooled) atomic_fetch_and_explicit(&pool_taken, ~(1u << (mine - pool)), UM_RELAXED);
    else umi_os_unmap(mine, sizeof(um_segmap_leaf_t));
    return true;
}

static inline um_segmap_byte_t *entry_of(const um_segment_t *seg) {
    uintptr_t idx = (uintptr_t)seg >> UM_SEGMENT_SHIFT;
    um_segmap_leaf_t *leaf = umi_segmap_leaf(idx);
    UM_CHECK(leaf != &none_leaf); /* umi_segmap_cover made it before the segment came here */
    return &leaf->entry[umi_segmap_slot(idx)];
}

void umi_segmap_set(um_segment_t *seg) {
    atomic_store_explicit(entry_of(seg), (uint8_t)seg->page_shift, memory_order_release);
}

void umi_segmap_clear(um_segment_t *seg) {
    atomic_store_explicit(entry_of(seg), UM_MAP_NONE, UM_RELAXED);
}

/* ---- the huge index ---------------------------------------------------------------------
 * A huge block's header is the OS page before the block, wherever the huge cache placed it, so
 * several blocks may start in one 4 MiB unit and the map byte cannot say where their headers
 * are. The index has one bit per OS page of the address space that holds a live header: a
 * lookup reads the page before a pointer only when its bit is set, so a pointer we never
 * handed out is never dereferenced (it may point next to unmapped memory).
 *
 * Its leaves, of 64 KiB, each the bits of 512 units (2 GiB), hang off the segment map's leaves
 * (um_segmap_leaf_t.huge). They are mapped on first use and never given back: a program's huge
 * blocks lie in a few GiB of address space (os/os.c's hint area), so it maps one or two. */
#define HUGE_BITS_PER_UNIT (UM_SEGMENT_SIZE / UM_HUGE_HEADER) /* 1024 */
#define HUGE_WORDS_PER_UNIT (HUGE_BITS_PER_UNIT / 64)
#define HUGE_LEAF_UNITS ((size_t)1 << UM_HUGE_LEAF_SHIFT)
#define HUGE_LEAF_BYTES (HUGE_LEAF_UNITS * HUGE_WORDS_PER_UNIT * sizeof(uint64_t))

/* The word and bit of header page h, or NULL when its leaf does not exist (and `make` is
 * false, or no memory for it). */
static _Atomic uint64_t *huge_word(uintptr_t h, bool make, uint64_t *bit) {
    uintptr_t unit = h >> UM_SEGMENT_SHIFT;
    if (unit >= UM_SEGMAP_ENTRIES) return NULL;
    if (make && !umi_segmap_cover((const void *)h)) return NULL;
    um_segmap_leaf_t *map_leaf = umi_segmap_leaf(unit);
    if (map_leaf == &none_leaf) return NULL;
    _Atomic(_Atomic uint64_t *) *slot = &map_leaf->huge[umi_segmap_slot(unit) >> UM_HUGE_LEAF_SHIFT];
    _Atomic uint64_t *leaf = atomic_load_explicit(slot, memory_order_acquire);
    if (UM_UNLIKELY(leaf == NULL)) {
        if (!make) return NULL;
        _Atomic uint64_t *fresh = umi_os_map_aligned(HUGE_LEAF_BYTES, umi_os_page_size());
        if (fresh == NULL) return NULL;
        if (atomic_compare_exchange_strong_explicit(slot, &leaf, fresh, memory_order_acq_rel, memory_order_acquire)) leaf = fresh;
        else umi_os_unmap(fresh, HUGE_LEAF_BYTES); /* another thread made it first */
    }
    size_t page = (h & UM_SEGMENT_MASK) / UM_HUGE_HEADER;
    *bit = (uint64_t)1 << (page % 64);
    return &leaf[(unit & (HUGE_LEAF_UNITS - 1)) * HUGE_WORDS_PER_UNIT + page / 64];
}

bool umi_huge_index_prepare(const void *header) {
    uint64_t bit;
    return huge_word((uintptr_t)header, true, &bit) != NULL;
}

void umi_huge_index_add(const void *header) {
    uint64_t bit;
    _Atomic uint64_t *w = huge_word((uintptr_t)header, true, &bit);
    UM_CHECK(w != NULL); /* umi_huge_index_prepare made its leaf */
    atomic_fetch_or_explicit(w, bit, memory_order_release);
    /* The unit's entry stays UM_MAP_HUGE when its blocks go: a pooled segment, which needs the
     * whole unit, overwrites it when it gets there. */
    um_segmap_byte_t *entry = entry_of((const um_segment_t *)((uintptr_t)header & ~(uintptr_t)UM_SEGMENT_MASK));
    if (atomic_load_explicit(entry, UM_RELAXED) != UM_MAP_HUGE) atomic_store_explicit(entry, UM_MAP_HUGE, memory_order_release);
}

void umi_huge_index_remove(const void *header) {
    uint64_t bit;
    _Atomic uint64_t *w = huge_word((uintptr_t)header, false, &bit);
    UM_CHECK(w != NULL);
    atomic_fetch_and_explicit(w, ~bit, UM_RELAXED);
}

um_segment_t *umi_huge_lookup(uintptr_t p) {
    uintptr_t h = p - UM_HUGE_HEADER;
    if ((p & (UM_HUGE_HEADER - 1)) != 0 || h > p) return NULL; /* a huge block starts on a page */
    if (umi_segmap_get(h) != UM_MAP_HUGE) return NULL;
    uint64_t bit;
    _Atomic uint64_t *w = huge_word(h, false, &bit);
    if (w == NULL || (atomic_load_explicit(w, memory_order_acquire) & bit) == 0) return NULL;
    return (um_segment_t *)h;
}
