/* malloc and its aligned, zeroed and resized relatives. The fast path is inline in umi_malloc:
 * one TLS load, one table load, pop the page's free list. Everything else is umi_malloc_generic. */
#include <string.h>

#include "core/fastpath.h"
#include "core/counters.h"
#include "os/os.h"

/* Largest request we try at all: beyond it, size arithmetic (headers, alignment) could wrap. */
#define UM_REQUEST_MAX (((size_t)1 << 62))

void *umi_malloc(size_t size) { return umi_fast_malloc(size); }

/* Everything but popping a block from the bin's first page: making the thread's heap, huge
 * blocks, and a first page that ran dry. Blocks other threads freed into that page (a
 * producer's, in a producer / consumer pair) are taken back here without the slow path's
 * housekeeping (purge, sweep, delayed frees), which runs on one refill in 32 all the same. */
static UM_NOINLINE void *malloc_refill(size_t size, um_heap_t *heap) {
    if (UM_UNLIKELY(heap == &umi_heap_empty)) {
        heap = umi_heap_for_thread();
        if (heap == NULL) return umi_heap_malloc_backup(size); /* after the exit hook, or recursion while making it */
    }
    if (UM_UNLIKELY(size >= umi_large_threshold)) {
        if (size > UM_REQUEST_MAX) { errno = ENOMEM; umi_count_failed(); return NULL; }
        return umi_huge_alloc(size, 16);
    }
    size_t bin = umi_bin_of(size);
    if (bin >= UM_BIN_EXTENT_FIRST && umi_extents_on) {
        void *p = umi_extent_cache_pop(heap, bin);
        return p != NULL ? p : umi_extent_alloc(heap, bin, 16, false, 0);
    }
    um_page_t *page = heap->queues[bin].first;
    if (page != NULL && (++heap->refills & 31) != 0) {
        um_page_hot_t *hot = heap->bin_hot[bin];
        umi_page_collect(heap, page);
        if (hot->free != NULL) return umi_hot_pop(hot, hot->free);
    }
    return umi_page_alloc_slow(heap, bin);
}

/* Sizes above the direct table, and any size whose direct page ran dry: the fast path's pop,
 * after rounding the size to its bin. Kept to that alone, it saves and restores no register
 * (with the refill inlined, its register pressure would make every medium malloc push and pop
 * several). Bins at or above the large threshold never get a page, so their bin_hot stays
 * empty and they reach malloc_refill, which maps them. */
UM_NOINLINE void *umi_malloc_generic(size_t size, um_heap_t *heap) {
    if (UM_LIKELY(size <= UM_LARGE_MAX)) {
        size_t bin = size - (UM_DIRECT_MAX + 1) < UM_BIN_TABLE_MAX - UM_DIRECT_MAX ? umi_bin_of_mid(size) : umi_bin_of(size);
        um_page_hot_t *hot = heap->bin_hot[bin];
        um_block_t *b = hot->free;
        if (UM_LIKELY(b != NULL)) return umi_hot_pop(hot, b);
    }
    return malloc_refill(size, heap);
}

/* The entry points below allocate and free through malloc's own paths; they count those
 * blocks as theirs (umi_count_internal) so that malloc's and free's call counts come out right. */
static void *internal_malloc(size_t size) {
    void *p = umi_malloc(size);
    if (p != NULL) umi_count_internal(1, 0);
    return p;
}
static void internal_free(void *p) {
    umi_count_internal(0, 1);
    umi_free(p);
}

void *umi_calloc(size_t count, size_t size) {
    umi_count_call(UM_CALL_CALLOC);
    size_t total;
    if (UM_UNLIKELY(__builtin_mul_overflow(count, size, &total))) { errno = ENOMEM; umi_count_failed(); return NULL; }
    if (umi_is_extent_size(total) && total < umi_large_threshold) {
        /* A block of the class this thread freed lately, from its cache (as malloc takes it),
         * cleared here while its lines are likely still in the CPU's cache; else one from the
         * arena, which clears only the pages it must (fresh or purged ones read zero). Without
         * the cache a program that callocs and frees such blocks in turn went to the arena
         * twice a round, and the freed blocks waited in the cache for nothing. */
        um_heap_t *heap = umi_tl_heap;
        size_t bin = umi_bin_of(total);
        void *p = umi_heap_is_own(heap) ? umi_extent_cache_pop(heap, bin) : NULL;
        if (p != NULL) memset(p, 0, total);
        else p = umi_extent_alloc(heap, bin, 16, true, 0);
        if (p != NULL) {
            umi_count_internal(1, 0);
            UM_SAN_EXPOSE(p, total);
        }
        return p;
    }
    void *p = internal_malloc(total);
    if (UM_UNLIKELY(p == NULL)) return NULL;
    if (total >= umi_large_threshold) { /* a huge block: its memory may read as zero already */
        um_segment_t *seg = umi_segment_lookup(p);
        if (seg->kind == UM_KIND_HUGE) {
            if (!seg->pages[0].is_zero) umi_huge_zero(seg, p, total); /* reused from the cache */
            return p;
        }
    }
    memset(p, 0, total);
    return p;
}

/* Aligned blocks. Every page's block area starts on an OS page, so for an alignment up to 4 KiB
 * every block of a class whose size is a multiple of it is aligned: the smallest such class
 * that is no larger than the one over-allocating would take (4 KiB-aligned blocks of 4 KiB + a
 * little come from the 8 KiB class). Otherwise over-allocate by the alignment and hand out an
 * inner pointer, flagging the page so that free() looks for the block start: the flag sends
 * every free of the page's blocks down the slow path, and the inner pointer wastes up to the
 * alignment. */
#define UM_CLASS_ALIGN_MAX ((size_t)4096)
#define UM_ALIGN_AS_SIZE_MAX ((size_t)8192) /* a smaller request takes a block of the alignment's size */
static void *malloc_aligned(size_t align, size_t size) {
    if (align <= 16) return internal_malloc(size);
    if (UM_UNLIKELY(size > UM_REQUEST_MAX || align > UM_REQUEST_MAX)) { errno = ENOMEM; umi_count_failed(); return NULL; }
    /* umi_large_threshold is read below: a program's first allocation may be this one, made
     * while another thread's first one sets the threshold from the options. */
    umi_process_init();
    /* A mapped block of 0 bytes would start where its mapping ends: no usable byte, and from
     * 4 MiB alignments up outside its own segment, so free() would not know it. */
    if (size == 0) size = 1;
    if (size < align && align <= UM_ALIGN_AS_SIZE_MAX) {
        /* a block of `align` bytes is align-aligned: power-of-two bins start at aligned offsets */
        size_t bsize = umi_bin_size(umi_bin_of(align));
        if (bsize == align) size = align;
    }
    if (size + align >= umi_large_threshold || align > UM_LARGE_MAX / 8) {
        void *p = umi_huge_alloc(size, align);
        if (p != NULL) umi_count_internal(1, 0);
        return p;
    }
    size_t bin = umi_bin_of(size);
    if (align > UM_CLASS_ALIGN_MAX && umi_is_extent_size(size + align - 16)) {
        /* a big block is placed at the alignment: no inner pointer */
        void *p = umi_extent_alloc(umi_tl_heap, umi_is_extent_size(size) ? bin : UM_BIN_EXTENT_FIRST, align, false, 0);
        if (p != NULL) umi_count_internal(1, 0);
        return p;
    }
    if (align <= UM_CLASS_ALIGN_MAX) {
        for (size_t b = bin; b < UM_BIN_COUNT && b <= umi_bin_of(size + align - 16); b++) {
            if ((umi_bin_size(b) & (align - 1)) != 0) continue;
            um_heap_t *heap = umi_heap_for_thread(); /* NULL: the backup heap, which never borrows */
            if (heap != NULL) umi_heap_stop_borrowing(heap, b);
            void *p = internal_malloc(umi_bin_size(b));
            UM_CHECK(((uintptr_t)p & (align - 1)) == 0);
            return p;
        }
    } else if ((umi_bin_size(bin) & (align - 1)) == 0) {
        void *p = internal_malloc(size);
        if (p == NULL || ((uintptr_t)p & (align - 1)) == 0) return p;
        internal_free(p);
    }
    uint8_t *p = internal_malloc(size + align - 16);
    if (p == NULL) return NULL;
    uint8_t *q = (uint8_t *)(((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1));
    if (q != p) {
        um_segment_t *seg = umi_segment_of(p);
        um_page_t *page = umi_page_of(seg, p);
        atomic_fetch_or_explicit(&UM_PAGE_OWNER(page), UM_PAGE_HAS_ALIGNED, UM_RELAXED);
    }
    return q;
}

/* aligned_class[bin][k]: for a request of `bin` at alignment 32 << k, the class malloc_aligned
 * takes when the heap has a page of it: for a request of at most the alignment, the class of
 * the alignment; else the first class from the request's whose size is a multiple of the
 * alignment, if it is no larger than the class over-allocating would take: for requests of at
 * least min_size bytes.
 *
 * An entry is worked out the first time a request needs it (aligned_slow), not at start-up:
 * the whole table costs some 35k instructions and 5 KiB of written memory, for nothing in the
 * many processes that never ask for an aligned block. It is stored as one word (bin, min_size
 * and UM_ALIGNED_KNOWN), so that a thread that reads it while another stores it sees all of
 * it or 0; 0 and an entry without a class (bin 0) both send the request to aligned_slow. */
#define UM_ALIGNED_STEPS 8 /* 32 .. UM_CLASS_ALIGN_MAX */
#define UM_ALIGNED_KNOWN ((uint64_t)1 << 63)
UM_BIG_BSS static _Atomic uint64_t aligned_class[UM_BIN_COUNT][UM_ALIGNED_STEPS];
_Static_assert((size_t)32 << (UM_ALIGNED_STEPS - 1) == UM_CLASS_ALIGN_MAX, "a column per alignment up to 4 KiB");

static uint64_t aligned_entry(size_t bin, size_t align) {
    if (bin <= umi_bin_of(align)) return UM_ALIGNED_KNOWN | umi_bin_of(align);
    for (size_t b = bin; b < UM_BIN_COUNT; b++) {
        if ((umi_bin_size(b) & (align - 1)) != 0) continue;
        /* over-allocating takes the class of size + align - 16: b or above from here */
        size_t min_size = umi_bin_size(b - 1) + 17 - align;
        return min_size <= umi_bin_size(bin) ? UM_ALIGNED_KNOWN | (uint64_t)min_size << 8 | b : UM_ALIGNED_KNOWN;
    }
    return UM_ALIGNED_KNOWN;
}

/* The entry of a request aligned_pop takes (align a power of two), worked out if it is not yet. */
static void aligned_learn(size_t align, size_t size) {
    if (align - 32 > UM_CLASS_ALIGN_MAX - 32 || size > UM_LARGE_MAX) return;
    size_t bin = umi_bin_of(size), k = (size_t)__builtin_ctzl(align) - 5;
    if (atomic_load_explicit(&aligned_class[bin][k], UM_RELAXED) == 0)
        atomic_store_explicit(&aligned_class[bin][k], aligned_entry(bin, align), UM_RELAXED);
}

/* The common aligned request (alignment 32..4096, a class whose blocks are all aligned, a page
 * of it ready in the heap) popped as malloc pops, without malloc_aligned's walk over the classes
 * and its call of malloc, and counted. NULL: nothing done, nothing counted; take
 * aligned_slow. `align` is a power of two. */
static inline void *aligned_pop(size_t align, size_t size) {
    if (align - 32 > UM_CLASS_ALIGN_MAX - 32 || size > UM_LARGE_MAX) return NULL;
    uint64_t entry = atomic_load_explicit(&aligned_class[umi_bin_of(size)][__builtin_ctzl(align) - 5], UM_RELAXED);
    size_t bin = (uint8_t)entry, min_size = (uint32_t)(entry >> 8);
    um_heap_t *heap = umi_tl_heap;
    /* Only a bin with a page of its own: bin_hot[] is then that page's. A bin without one may
     * point at a lender's page, whose blocks are of another size, even after its last borrowing
     * (page_borrow counts up to UM_BORROW_MAX and leaves the bin pointed there). The empty heap
     * has no page: the heap is a thread's own from here on. */
    if (bin == 0 || size < min_size || heap->queues[bin].first == NULL || size + align >= umi_large_threshold) return NULL;
    um_page_hot_t *hot = heap->bin_hot[bin];
    if (hot->free == NULL) return NULL;
    UM_OWNER_ADD(heap->stats.calls[UM_CALL_ALIGNED], 1);
    UM_OWNER_ADD(heap->stats.internal_allocs, 1);
    void *p = umi_hot_pop(hot, hot->free);
    UM_SAN_EXPOSE(p, size); /* ASan: the size asked for */
    return p;
}

static UM_NOINLINE void *aligned_slow(size_t align, size_t size) {
    umi_count_call(UM_CALL_ALIGNED);
    aligned_learn(align, size);
    void *p = malloc_aligned(align, size);
    if (p != NULL) UM_SAN_EXPOSE(p, size); /* ASan: at its offset, and the size asked for */
    return p;
}

void *umi_malloc_aligned(size_t align, size_t size) {
    void *p = aligned_pop(align, size);
    return UM_LIKELY(p != NULL) ? p : aligned_slow(align, size);
}

/* posix_memalign for an alignment known valid: the common request pops a block with no errno
 * to save, since nothing on that path can set it. */
int umi_posix_memalign(void **out, size_t align, size_t size) {
    void *p = aligned_pop(align, size);
    if (UM_UNLIKELY(p == NULL)) {
        int saved = errno; /* posix_memalign reports by its result and leaves errno alone */
        p = aligned_slow(align, size);
        if (p == NULL) { errno = saved; return ENOMEM; }
    }
    *out = p;
    return 0;
}

/* A block that realloc grows to this size or more moves to a mapping of its own (a huge block),
 * even below LARGE_THRESHOLD: from then on it grows with mremap, in place or by moving page
 * tables, never by copying, and what it holds is exact to the OS page. Pooled, a buffer growing
 * through the size classes leaves a freed block in each, and when many buffers grow together
 * (strings, vectors, I/O buffers) those holes pin half-empty pages. */
#define UM_REALLOC_MAP_MIN ((size_t)64 << 10)
/* Only a block that grows step by step (to at most twice its size) is such a buffer. A realloc
 * to an unrelated size (a program reusing an allocation for something else) gets a pooled
 * block: a mapping of its own would cost an mmap and an munmap for a block that may never grow
 * again, on every such realloc of a program that reuses its allocations this way. */

/* A buffer that realloc grows past UM_REALLOC_EXTENT_MIN (8 KiB with its headroom), step by step
 * as above, moves to the extent arenas below the extent classes too, in a block of whole OS
 * pages (12 or 16 KiB): there it grows in place into the free pages after it, and the pages it
 * leaves when it must move serve the next block of any size. Through the pooled classes of
 * 10..16 KiB it would leave a block in a page of each class, which serves that class only:
 * buffers that grow together would fault in pages of every class, then fresh extent pages for
 * the same bytes. Not from 4 KiB: a buffer that stops at 3.3..6.5 KiB would hold an 8 KiB
 * block, where the pooled classes of 5, 6 and 7 KiB fit it closer (docs/bench-notes.md). */

/* A block that grows will likely grow again (appending to a buffer): a quarter more room, so a
 * buffer grown byte by byte is copied (or remapped) once per quarter rather than once per
 * class (an eighth). */
static size_t with_headroom(size_t size) {
    return size <= SIZE_MAX / 2 ? size + size / 4 : size;
}

static void *realloc_block(void *p, size_t size) {
    if (p == NULL) return internal_malloc(size);
    if (size == 0) { internal_free(p); return NULL; } /* glibc: realloc(p, 0) frees and returns NULL */
    /* a buffer grown a few bytes at a time (a string being built) stays in its block through
     * most reallocs, and each of them asks this first */
    size_t usable = umi_small_block_size(p);
    um_segment_t *seg;
    if (usable != 0) { /* a small block: its size and segment follow from its address (no map lookup) */
        if (size <= usable && size >= usable / 2) return p; /* as below, the common case first */
        seg = umi_segment_of(p);
    } else {
        seg = umi_segment_lookup(p);
        if (UM_UNLIKELY(seg == NULL)) return umi_realloc_foreign(p, size);
        usable = umi_usable_in(seg, p);
        if (size <= usable && size >= usable / 2) return p; /* shrinking a bit: keep the block */
    }
    if (seg->kind == UM_KIND_HUGE && size >= UM_REALLOC_MAP_MIN && size <= UM_REQUEST_MAX) {
        void *q = umi_huge_realloc(seg, p, size > usable ? with_headroom(size) : size); /* mremap: no copy */
        if (q != NULL) return q;
    }
    void *q;
    size_t want = size > usable ? with_headroom(size) : size;
    bool step = size > usable && size <= 2 * usable; /* grown step by step, as a buffer is */
    bool growing_buffer = step && want >= UM_REALLOC_MAP_MIN && size <= UM_REQUEST_MAX;
    /* A big block that is not such a buffer: into the free pages after it, or giving back its tail. */
    if (seg->kind == UM_KIND_EXTENT && !growing_buffer && (umi_extent_resize(seg, p, want) || (want != size && umi_extent_resize(seg, p, size))))
        return p;
    /* A growing buffer below the extent classes, 8..16 KiB: see "A buffer that realloc grows". */
    size_t extent_bin = 0;
    if (step && want > UM_REALLOC_EXTENT_MIN && umi_extents_on && !umi_is_extent_size(want)) {
        extent_bin = umi_extent_bin_for(want);
        if (umi_bin_size(extent_bin) >= umi_large_threshold) extent_bin = 0;
    }
    size_t copy = usable < size ? usable : size;
    if (growing_buffer) {
        q = umi_huge_alloc_growable(want, copy);
    } else if (extent_bin != 0) {
        q = umi_extent_alloc(umi_tl_heap, extent_bin, 16, false, copy);
    } else {
        if (want >= umi_large_threshold && size < umi_large_threshold) want = size;
        q = umi_malloc(want);
    }
    if (UM_UNLIKELY(q == NULL && want != size)) q = umi_malloc(size);
    if (UM_UNLIKELY(q == NULL)) return NULL; /* p stays valid, errno is ENOMEM */
    memcpy(q, p, UM_SAN_LIVE_SIZE(p, copy));
    umi_free(p);
    umi_count_internal(1, 1); /* the malloc and the free above */
    return q;
}

void *umi_realloc(void *p, size_t size) {
    umi_count_call(UM_CALL_REALLOC);
    void *q = realloc_block(p, size);
    if (q != NULL) UM_SAN_EXPOSE(q, size); /* ASan: in place, or with headroom: the size asked for */
    return q;
}
