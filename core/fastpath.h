/* The two fast paths, inline, so that the exported malloc/free (preload/) and um_malloc/um_free
 * (core/api.c) each contain them without a call or jump in between. Every instruction here is
 * paid on every allocation: see docs/design.md, "Thread heaps and the fast path",
 * for the count and why each is there. */
#ifndef UM_FASTPATH_H
#define UM_FASTPATH_H

#include "core/internal.h"

#define UM_INLINE static inline __attribute__((always_inline))

/* malloc: thread's heap -> hot words of the page for this size -> pop its free list; else a
 * tail call of `slow` (umi_malloc_generic, or a caller's wrapper of it that acts on its failure:
 * handling NULL after the call here would keep `size` in a saved register, a push and a pop on
 * the fast path). */
typedef void *(*um_malloc_slow_fn)(size_t size, um_heap_t *heap);
UM_INLINE void *umi_fast_malloc_or(size_t size, um_malloc_slow_fn slow) {
    um_heap_t *heap = umi_tl_heap;
    if (UM_LIKELY(size <= UM_DIRECT_MAX)) {
        um_page_hot_t *hot = heap->direct[size];
        um_block_t *b = hot->free;
        if (UM_LIKELY(b != NULL)) return umi_hot_pop(hot, b);
    }
    return slow(size, heap);
}
UM_INLINE void *umi_fast_malloc_block(size_t size) { return umi_fast_malloc_or(size, umi_malloc_generic); }

/* Every malloc of the core (calloc's, realloc's, aligned ones' too) comes out here. In ASan
 * builds the block is then poisoned but for the `size` bytes asked for (base/sanitize.h). */
UM_INLINE void *umi_fast_malloc(size_t size) {
#if UM_ASAN
    void *p = umi_fast_malloc_block(size);
    if (p != NULL) UM_SAN_EXPOSE(p, size);
    return p;
#else
    return umi_fast_malloc_block(size);
#endif
}

/* Is p in the small-page region: are its bits 40..55 umi_small_region_hi? On x86-64 `shld`
 * shifts them into the low bits of another register and leaves p where it is, where a shift
 * needs a copy of p first: one instruction less, and the one that pays for malloc's prefetch
 * (umi_hot_pop). The other register's old bits land above bit 23, outside the 16-bit compare.
 * Bits 56..63 go uncompared: a non-canonical pointer (or a kernel one whose bits 40..55 match)
 * passed to free() faults on the owner load that follows, as it would in glibc's free. */
UM_INLINE bool umi_in_small_region(uintptr_t u) {
#if defined(__x86_64__)
    uintptr_t high; /* its old value is shifted out of the compared bits: no input needed */
    __asm__("shld $24, %1, %0" : "=r"(high) : "r"(u));
    return (uint16_t)high == umi_small_region_hi;
#else
    return (uint16_t)(u >> UM_REGION_SHIFT) == umi_small_region_hi;
#endif
}

/* The size of p's block when p starts a block of a small page in use with no aligned blocks,
 * found as free() finds the page, from the address (no segment-map lookup); 0 for anything else
 * (the callers then ask the segment map). For realloc and malloc_usable_size, which programs
 * call on most of their blocks. No small-page region (ASan builds): always 0. */
UM_INLINE size_t umi_small_block_size(const void *p) {
    if (!umi_in_small_region((uintptr_t)p) || ((uintptr_t)p & 15) != 0) return 0;
    const um_page_hot_t *hot = (const um_page_hot_t *)(((uintptr_t)p | (UM_SMALL_PAGE_SIZE - 1)) + 1 - UM_PAGE_HOT_SIZE);
    uintptr_t owner = atomic_load_explicit(&hot->owner, UM_RELAXED);
    if (owner == 0 || (owner & UM_PAGE_HAS_ALIGNED) != 0) return 0;
    const um_page_t *page = umi_small_page_of(p);
    return umi_page_starts_block(page, p) ? page->block_size : 0;
}

/* free: a small block of ours? -> its page owned by this thread? -> push on the page's free
 * list, where malloc takes it next. 16 instructions (docs/design.md, "Thread heaps and the fast path"):
 *  - Every small page lies in the small-page region, 2^40 bytes aligned to 2^40: the test above
 *    rejects NULL, every foreign pointer and every medium, large or huge block (those take
 *    umi_free_generic) without touching memory.
 *  - p | 0xfff0 is 16 bytes before the end of p's 64 KiB page, where the page's hot words are
 *    (um_page_hot_t): one `or` instead of a segment-map load, a shift and an index. Every part
 *    of the region ever handed out stays readable (zeros once released), so the owner load
 *    never faults for a pointer we gave out, stale or not.
 *  - The `or` keeps p's low 4 bits: a pointer that is not 16-byte aligned (inside a block)
 *    loads the owner word from 1..15 bytes too high, gets the guard's 0xff in its top byte and
 *    fails the owner compare. No instruction of its own rejects it.
 *  - frees++ has no test: a page emptied here stays queued until a slow path finds it
 *    (umi_page_sweep), which saves a compare and a branch on every free.
 * ASan builds never come this way (they have no small-page region): their frees poison the
 * block in umi_free_generic, which knows its size. */
UM_INLINE void umi_fast_free(void *p) {
    uintptr_t u = (uintptr_t)p;
    if (UM_LIKELY(umi_in_small_region(u))) {
        /* page end - 16 (+ p & 15); the hot words at fixed negative offsets from it (written
         * field by field: through an um_page_hot_t pointer GCC adds a `sub`) */
        uint8_t *end16 = (uint8_t *)(u | (UM_SMALL_PAGE_SIZE - 16));
#define UM_HOT_AT(field) (end16 + offsetof(um_page_hot_t, field) + 16 - UM_PAGE_HOT_SIZE)
        _Atomic uintptr_t *owner = (_Atomic uintptr_t *)UM_HOT_AT(owner);
        um_block_t **list = (um_block_t **)UM_HOT_AT(free);
        uint64_t *frees = (uint64_t *)UM_HOT_AT(frees);
#if UM_SECURE
        uintptr_t secret = *(uintptr_t *)UM_HOT_AT(secret);
#else
        uintptr_t secret = 0;
#endif
#undef UM_HOT_AT
        uintptr_t owner_word = atomic_load_explicit(owner, UM_RELAXED);
        if (UM_LIKELY(owner_word == umi_thread_id())) {
            um_block_t *b = p;
            if (UM_UNLIKELY(umi_key_get(b) == UM_FREE_MARK)) { umi_double_free(p); return; }
            umi_key_set(b, UM_FREE_MARK);
            umi_link_set(b, *list, secret);
            *list = b;
            UM_OWNER_ADD(*frees, 1);
            return;
        }
        umi_free_not_owned(p, owner_word); /* a full page's, another thread's... */
        return;
    }
    umi_free_generic(p);
}

#endif
