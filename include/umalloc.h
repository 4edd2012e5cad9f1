/* umalloc: a thread-caching, NUMA-aware, huge-page-capable memory allocator.
 *
 * Two ways to use it:
 *  - LD_PRELOAD=libumalloc.so PROGRAM: malloc, free and the whole malloc family are replaced;
 *    the um_* functions below are exported too, for programs that want the extras.
 *  - link libumalloc.a: only the um_* names exist; the C library's malloc is left alone.
 *    This is how the tests, the sanitizer builds and the fuzzer use the core.
 *
 * Semantics follow glibc wherever C and POSIX leave room (see docs/design.md, "Semantics"):
 * every result is 16-byte aligned, um_malloc(0) returns a unique pointer, failure returns NULL
 * with errno = ENOMEM, um_realloc(p, 0) frees p and returns NULL, um_free preserves errno.
 */
#ifndef UMALLOC_H
#define UMALLOC_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define UMALLOC_VERSION "0.1.0"

#if defined(__GNUC__)
#define UM_API __attribute__((visibility("default")))
#define UM_MALLOC_ATTR __attribute__((malloc, warn_unused_result))
#else
#define UM_API
#define UM_MALLOC_ATTR
#endif

/* ---- the malloc family, prefixed ---------------------------------------------------------- */
UM_API UM_MALLOC_ATTR void *um_malloc(size_t size);
UM_API UM_MALLOC_ATTR void *um_calloc(size_t count, size_t size);
UM_API void *um_realloc(void *p, size_t size);
UM_API void *um_reallocarray(void *p, size_t count, size_t size);
UM_API void um_free(void *p);
/* C23: size must be the size asked for (or anything up to the usable size); checked cheaply. */
UM_API void um_free_sized(void *p, size_t size);
UM_API void um_free_aligned_sized(void *p, size_t alignment, size_t size);
UM_API int um_posix_memalign(void **out, size_t alignment, size_t size);
UM_API UM_MALLOC_ATTR void *um_aligned_alloc(size_t alignment, size_t size);
UM_API UM_MALLOC_ATTR void *um_memalign(size_t alignment, size_t size);
UM_API UM_MALLOC_ATTR void *um_valloc(size_t size);
UM_API UM_MALLOC_ATTR void *um_pvalloc(size_t size);
/* Bytes usable at p (>= the size asked for); 0 for NULL or a pointer umalloc does not own. */
UM_API size_t um_malloc_usable_size(const void *p);

/* ---- the extras ---------------------------------------------------------------------------- */
/* 1 if p is the start of a live block (or an aligned pointer into one) umalloc handed out,
 * 0 otherwise. Cheap: one table lookup, never touches memory umalloc does not own. */
UM_API int um_owns(const void *p);
/* Give every free page back to the OS now (all threads' retired pages, cached segments,
 * abandoned segments). Returns 1 if any memory was released, like glibc's malloc_trim. */
UM_API int um_trim(size_t pad);
/* Make the calling thread give back its heap now, as it would at thread exit. The thread may
 * keep allocating afterwards; it then gets a fresh heap. */
UM_API void um_thread_done(void);
UM_API const char *um_version(void);

/* Process-wide totals, summed over every thread when called (a few microseconds). */
typedef struct um_totals_s {
    size_t mapped_bytes;    /* address space umalloc holds from the OS, in segments and large blocks */
    size_t committed_bytes; /* of that, not purged: what can count towards RSS */
    size_t live_bytes;      /* usable bytes of blocks handed out and not yet freed */
    size_t live_blocks;     /* blocks handed out and not yet freed */
    size_t large_bytes;     /* of live_bytes: blocks mapped on their own */
    size_t free_bytes;      /* bytes cached in pages, ready for reuse */
    size_t metadata_bytes;  /* segment headers, heap structures, tables */
    size_t purged_bytes;    /* bytes given back to the OS so far (cumulative) */
    size_t threads;         /* thread heaps alive */
    size_t segments;        /* segments alive */
} um_totals_t;
UM_API void um_get_totals(um_totals_t *out);

#ifdef __cplusplus
}
#endif
#endif /* UMALLOC_H */
