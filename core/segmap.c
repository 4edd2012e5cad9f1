/* The segment map: which 4 MiB units of the address space are ours, and how; and the huge
 * index, which finds the header of a huge block that starts anywhere in a unit.
 *
 * The map (32 MiB) and the index's top table (512 KiB) lie in one mapping of their own, made
 * before the first segment is (umi_segmap_ready), not in the library's .bss: a library whose
 * mapping spans 2 MiB or more is placed 2 MiB-aligned by the kernel, which moves the thread
 * stacks glibc maps below the libraries to where each munmap of one flushes its pages from the
 * TLB one by one instead of all at once (docs/bench-notes.md). Both tables read zero until
 * written and are touched a page at a time (MAP_NORESERVE). */
#include "core/internal.h"
#include "os/os.h"

#define HUGE_LEAF_SHIFT 9 /* units per leaf of the huge index: 512 */
#define HUGE_TOP_ENTRIES (UM_SEGMAP_ENTRIES >> HUGE_LEAF_SHIFT)
#define TABLES_BYTES (UM_SEGMAP_ENTRIES + HUGE_TOP_ENTRIES * sizeof(void *))

um_segmap_byte_t *_Atomic umi_segmap; /* the mapping, once a thread has made it */
_Atomic size_t umi_segmap_entries;

bool umi_segmap_ready(void) {
    if (UM_LIKELY(atomic_load_explicit(&umi_segmap_entries, memory_order_acquire) != 0)) return true;
    UM_TEST_HOOK(UM_HOOK_SEGMAP_MAP, NULL);
    um_segmap_byte_t *mine = umi_os_map_table(TABLES_BYTES), *won = NULL;
    if (mine != NULL && atomic_compare_exchange_strong_explicit(&umi_segmap, &won, mine, memory_order_acq_rel, memory_order_acquire)) won = mine;
    else if (mine != NULL) umi_os_unmap(mine, TABLES_BYTES); /* another thread made it first: won is its */
    else won = atomic_load_explicit(&umi_segmap, memory_order_acquire); /* refused: another thread's, if any */
    if (won == NULL) return false; /* errno: mmap's */
    /* Whichever thread gets here publishes the bound: the same value, after the map. */
    atomic_store_explicit(&umi_segmap_entries, UM_SEGMAP_ENTRIES, memory_order_release);
    return true;
}

void umi_segmap_set(um_segment_t *seg) {
    atomic_store_explicit(&umi_segmap_table()[(uintptr_t)seg >> UM_SEGMENT_SHIFT], (uint8_t)seg->page_shift, memory_order_release);
}

void umi_segmap_clear(um_segment_t *seg) {
    atomic_store_explicit(&umi_segmap_table()[(uintptr_t)seg >> UM_SEGMENT_SHIFT], UM_MAP_NONE, UM_RELAXED);
}

/* ---- the huge index ---------------------------------------------------------------------
 * A huge block's header is the OS page before the block, wherever the huge cache placed it, so
 * several blocks may start in one 4 MiB unit and the map byte cannot say where their headers
 * are. The index has one bit per OS page of the address space that holds a live header: a
 * lookup reads the page before a pointer only when its bit is set, so a pointer we never
 * handed out is never dereferenced (it may point next to unmapped memory).
 *
 * Two levels: a top table (512 KiB, after the map in its mapping, a page of it touched per 1 TiB of
 * address space in use) of leaves of 64 KiB, each the bits of 512 units (2 GiB). Leaves are
 * mapped on first use and never given back: a program's huge blocks lie in a few GiB of
 * address space (os/os.c's hint area), so it maps one or two. */
#define HUGE_BITS_PER_UNIT (UM_SEGMENT_SIZE / UM_HUGE_HEADER) /* 1024 */
#define HUGE_WORDS_PER_UNIT (HUGE_BITS_PER_UNIT / 64)
#define HUGE_LEAF_UNITS ((size_t)1 << HUGE_LEAF_SHIFT)
#define HUGE_LEAF_BYTES (HUGE_LEAF_UNITS * HUGE_WORDS_PER_UNIT * sizeof(uint64_t))

/* The word and bit of header page h, or NULL when its leaf does not exist (and `make` is
 * false, or no memory for it), or the tables do not (umi_segmap_ready). */
static _Atomic uint64_t *huge_word(uintptr_t h, bool make, uint64_t *bit) {
    uintptr_t unit = h >> UM_SEGMENT_SHIFT;
    if (unit >= atomic_load_explicit(&umi_segmap_entries, memory_order_acquire)) return NULL;
    _Atomic(_Atomic uint64_t *) *huge_top = (_Atomic(_Atomic uint64_t *) *)(umi_segmap_table() + UM_SEGMAP_ENTRIES);
    _Atomic(_Atomic uint64_t *) *slot = &huge_top[unit >> HUGE_LEAF_SHIFT];
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
    if (!umi_segmap_ready()) return false;
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
    uintptr_t unit = (uintptr_t)header >> UM_SEGMENT_SHIFT;
    um_segmap_byte_t *map = umi_segmap_table();
    if (atomic_load_explicit(&map[unit], UM_RELAXED) != UM_MAP_HUGE) atomic_store_explicit(&map[unit], UM_MAP_HUGE, memory_order_release);
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
