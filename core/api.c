/* The public um_* API (include/umalloc.h): thin, so that the preload library's malloc and the
 * static library's um_malloc run the same code. */
#include <string.h>
#include <unistd.h>

#include "core/fastpath.h"
#include "os/os.h"
#include "core/check.h"
#include "core/counters.h"
#include "umalloc.h"

_Static_assert(offsetof(um_segment_t, pages) + sizeof(um_page_t) <= UM_HUGE_HEADER,
               "a huge block may overlap the unused page descriptors of its header, not the used one");

_Atomic unsigned umi_purge_epoch;

UM_API void *um_malloc(size_t size) { return umi_fast_malloc(size); }
UM_API void um_free(void *p) { umi_fast_free(p); }
UM_API void *um_calloc(size_t count, size_t size) { return umi_calloc(count, size); }
UM_API void *um_realloc(void *p, size_t size) { return umi_realloc(p, size); }

UM_API void *um_reallocarray(void *p, size_t count, size_t size) {
    size_t total;
    if (__builtin_mul_overflow(count, size, &total)) { umi_count_call(UM_CALL_REALLOC); umi_count_failed(); errno = ENOMEM; return NULL; }
    return umi_realloc(p, total);
}

/* free_sized: umalloc finds a block's size from its page, so the size is not needed; it is
 * checked in debug builds only (a wrong size is the program's bug, worth one line there). In
 * release builds free_sized costs what free costs, plus its count: C++ programs call it (sized
 * delete) as often as free. */
UM_API void um_free_sized(void *p, size_t size) {
#if defined(UM_DEBUG) && UM_DEBUG
    if (p != NULL && size > umi_usable_size(p) && umi_segment_lookup(p) != NULL) umi_warn_ptr("free_sized with a size larger than the block:", p);
#else
    (void)size;
#endif
    umi_count_sized_free(p != NULL);
    if (p != NULL) umi_fast_free(p);
}
UM_API void um_free_aligned_sized(void *p, size_t alignment, size_t size) {
    (void)alignment;
    um_free_sized(p, size);
}

static bool valid_alignment(size_t a) { return a != 0 && (a & (a - 1)) == 0; }

UM_API int um_posix_memalign(void **out, size_t alignment, size_t size) {
    if (!valid_alignment(alignment) || alignment % sizeof(void *) != 0) { umi_count_call(UM_CALL_ALIGNED); return EINVAL; }
    return umi_posix_memalign(out, alignment, size);
}

/* C17 lets aligned_alloc fail for a non-power-of-two alignment; glibc 2.38 does (EINVAL). */
UM_API void *um_aligned_alloc(size_t alignment, size_t size) {
    if (!valid_alignment(alignment)) { umi_count_call(UM_CALL_ALIGNED); errno = EINVAL; return NULL; }
    return umi_malloc_aligned(alignment, size);
}

/* memalign: glibc rounds a non-power-of-two alignment up to the next power of two. */
UM_API void *um_memalign(size_t alignment, size_t size) {
    if (!valid_alignment(alignment)) {
        if (alignment > ((size_t)1 << 62)) { umi_count_call(UM_CALL_ALIGNED); errno = EINVAL; return NULL; }
        size_t a = 1;
        while (a < alignment) a <<= 1;
        alignment = a;
    }
    return umi_malloc_aligned(alignment, size);
}

UM_API void *um_valloc(size_t size) { return umi_malloc_aligned(umi_os_page_size(), size); }

UM_API void *um_pvalloc(size_t size) {
    size_t ps = umi_os_page_size();
    if (size > SIZE_MAX - ps) { umi_count_call(UM_CALL_ALIGNED); umi_count_failed(); errno = ENOMEM; return NULL; }
    size_t rounded = size == 0 ? ps : (size + ps - 1) & ~(ps - 1);
    return umi_malloc_aligned(ps, rounded);
}

size_t umi_usable_size(const void *p) {
    size_t small = umi_small_block_size(p);
    if (small != 0) return small;
    if (p == NULL) return 0;
    um_segment_t *seg = umi_segment_lookup(p);
    if (seg == NULL) return umi_usable_foreign(p);
    return umi_usable_in(seg, p);
}

size_t umi_usable_in(um_segment_t *seg, const void *p) {
    if (seg->kind == UM_KIND_HUGE) return umi_huge_usable(seg, p);
    if (seg->kind == UM_KIND_EXTENT) return umi_extent_usable(seg, p);
    um_page_t *page = umi_page_of(seg, p);
    if (page->slot != UM_SLOT_USED) return 0;
    const uint8_t *b = umi_block_start(seg, page, p);
    if (b == NULL) return 0;
    return page->block_size - (size_t)((const uint8_t *)p - b);
}

/* In ASan builds the usable size is opened: the program may use all it was told. */
UM_API size_t um_malloc_usable_size(const void *p) {
    umi_count_call(UM_CALL_USABLE_SIZE);
    size_t n = umi_usable_size(p);
    UM_SAN_OPEN_USABLE(p, n);
    return n;
}

UM_API int um_owns(const void *p) {
    if (p == NULL) return 0;
    um_segment_t *seg = umi_segment_lookup(p);
    if (seg == NULL) return 0;
    if (seg->kind == UM_KIND_HUGE) return p == seg->pages[0].start && UM_SHARED_READ(seg->pages[0].slot) == UM_SLOT_USED; /* not a kept one */
    if (seg->kind == UM_KIND_EXTENT) return umi_extent_usable(seg, p) != 0;
    um_page_t *page = umi_page_of(seg, p);
    if (UM_SHARED_READ(page->slot) != UM_SLOT_USED) return 0;
    const um_block_t *b = umi_block_start(seg, page, p);
    if (b == NULL) return 0;
    if ((const void *)b != p && !(atomic_load_explicit(&UM_PAGE_OWNER(page), UM_RELAXED) & UM_PAGE_HAS_ALIGNED)) return 0;
    /* never carved: page_extend has carved `capacity` of the `reserved` blocks (um_page_t.rotation) */
    if (!umi_block_carved(page, (size_t)((const uint8_t *)b - page->start) / page->block_size)) return 0;
    return umi_key_get(b) != umi_block_key(b); /* a free block carries its key */
}

/* Purge what this thread can reach now; other threads purge on their next slow path. */
UM_API int um_trim(size_t pad) {
    (void)pad;
    umi_count_call(UM_CALL_TRIM);
    size_t before = atomic_load_explicit(&umi_os_stats.purged_total, UM_RELAXED);
    size_t unmapped_before = atomic_load_explicit(&umi_os_stats.unmaps, UM_RELAXED);
    atomic_fetch_add_explicit(&umi_purge_epoch, 1, UM_RELAXED);
    umi_segment_reclaim_all();
    um_heap_t *heap = umi_heap_for_thread();
    if (heap != NULL) {
        umi_page_sweep(heap, true); /* pages free() emptied, still queued */
        umi_segment_purge(heap, UM_PURGE_ALL);
    }
    umi_extent_tick_all(UM_EXTENT_TICK_TRIM); /* every arena's free pages, and its free segments to the cache */
    umi_segment_cache_trim(true);
    return atomic_load_explicit(&umi_os_stats.purged_total, UM_RELAXED) != before ||
           atomic_load_explicit(&umi_os_stats.unmaps, UM_RELAXED) != unmapped_before;
}

UM_API void um_thread_done(void) {
    um_heap_t *heap = umi_tl_heap;
    if (heap == &umi_heap_empty) return;
    umi_heap_thread_done(heap);
    umi_tl_heap = &umi_heap_empty;
}

UM_API const char *um_version(void) { return UMALLOC_VERSION; }

UM_API size_t um_check_heap(void) { return umi_check_heap(true); }

