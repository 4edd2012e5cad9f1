/* C++'s operator new and delete, under their Itanium C++ ABI names (every x86-64 and AArch64
 * compiler on Linux, libstdc++ and libc++ alike), so that a C++ program's allocations reach
 * malloc's fast path directly. Without them each new goes through libstdc++'s operator new,
 * which calls malloc through the PLT and loops on the new-handler, and each delete through a
 * jump to free: together about as many instructions as the allocation itself.
 *
 * Semantics stay the C++ library's: only the success path is ours. When there is no memory,
 * new hands the request to the next definition of the same operator (the C++ library's, found
 * with dlsym(RTLD_NEXT)), which calls malloc again in its new-handler loop and throws
 * std::bad_alloc, or returns NULL for the nothrow forms, exactly as without umalloc. That call
 * is a tail call, so an exception never unwinds through a frame of ours. A program that defines
 * its own operators keeps them: the executable comes first in symbol lookup.
 *
 * Sizes and alignments given to delete are not checked: libstdc++ ignores them too, and a
 * program whose sized delete names the wrong size (a base-class pointer without a virtual
 * destructor) works with it. */
#include <dlfcn.h>
#include <stdlib.h>

#include "base/fmt.h"
#include "core/fastpath.h"
#include "preload/glue.h"
#include "umalloc.h"

typedef void *(*um_new_fn)(size_t);
typedef void *(*um_new_aligned_fn)(size_t, size_t);
typedef void *(*um_new_nothrow_fn)(size_t, const void *);
typedef void *(*um_new_aligned_nothrow_fn)(size_t, size_t, const void *);

/* The C++ library's definition of `name`, looked up on the first failure only (dlsym may
 * allocate: not a problem there, the failure is the caller's, not inside our own code). */
static void *next_definition(const char *name) {
    void *fn = dlsym(RTLD_NEXT, name);
    if (fn == NULL) umi_dprintf(2, "umalloc: %s: out of memory, and no C++ library defines it to fall back on\n", name);
    return fn;
}

/* new's slow path: malloc's, then on failure the C++ library's operator (a tail call) */
#define UM_NEW(name)                                                                              \
    static UM_NOINLINE void *name##_slow(size_t size, um_heap_t *heap) {                          \
        void *p = umi_malloc_generic(size, heap);                                                 \
        if (p != NULL) return p;                                                                  \
        um_new_fn next = (um_new_fn)next_definition(#name);                                       \
        if (next == NULL) abort();                                                                \
        return next(size);                                                                        \
    }                                                                                             \
    UM_EXPORT void *name(size_t size) { return umi_fast_malloc_or(size, name##_slow); }
/* std::nothrow_t is empty: the C++ library's operator reads nothing through its reference */
static const char nothrow_tag;
#define UM_NEW_NOTHROW(name)                                                                      \
    static UM_NOINLINE void *name##_slow(size_t size, um_heap_t *heap) {                          \
        void *p = umi_malloc_generic(size, heap);                                                 \
        if (p != NULL) return p;                                                                  \
        um_new_nothrow_fn next = (um_new_nothrow_fn)next_definition(#name);                       \
        return next != NULL ? next(size, &nothrow_tag) : NULL;                                    \
    }                                                                                             \
    UM_EXPORT void *name(size_t size, const void *tag) {                                          \
        (void)tag;                                                                                \
        return umi_fast_malloc_or(size, name##_slow);                                             \
    }
#define UM_NEW_ALIGNED(name)                                                                      \
    UM_EXPORT void *name(size_t size, size_t align) {                                             \
        void *p = um_memalign(align, size); /* any power of two, any size */                      \
        if (UM_LIKELY(p != NULL)) return p;                                                       \
        um_new_aligned_fn next = (um_new_aligned_fn)next_definition(#name);                       \
        if (next == NULL) abort();                                                                \
        return next(size, align);                                                                 \
    }
#define UM_NEW_ALIGNED_NOTHROW(name)                                                              \
    UM_EXPORT void *name(size_t size, size_t align, const void *tag) {                            \
        void *p = um_memalign(align, size); /* any power of two, any size */                      \
        if (UM_LIKELY(p != NULL)) return p;                                                       \
        um_new_aligned_nothrow_fn next = (um_new_aligned_nothrow_fn)next_definition(#name);       \
        return next != NULL ? next(size, align, tag) : NULL;                                      \
    }

/* operator new(size_t), new[](size_t), and their nothrow and align_val_t forms */
UM_NEW(_Znwm)
UM_NEW(_Znam)
UM_NEW_NOTHROW(_ZnwmRKSt9nothrow_t)
UM_NEW_NOTHROW(_ZnamRKSt9nothrow_t)
UM_NEW_ALIGNED(_ZnwmSt11align_val_t)
UM_NEW_ALIGNED(_ZnamSt11align_val_t)
UM_NEW_ALIGNED_NOTHROW(_ZnwmSt11align_val_tRKSt9nothrow_t)
UM_NEW_ALIGNED_NOTHROW(_ZnamSt11align_val_tRKSt9nothrow_t)

/* operator delete and delete[]: plain, sized, nothrow, aligned, sized and aligned,
 * aligned nothrow. free() finds every block's size and alignment itself. */
UM_EXPORT void _ZdlPv(void *p) { umi_fast_free(p); }
UM_EXPORT void _ZdaPv(void *p) { umi_fast_free(p); }
UM_EXPORT void _ZdlPvm(void *p, size_t size) { (void)size; umi_fast_free(p); }
UM_EXPORT void _ZdaPvm(void *p, size_t size) { (void)size; umi_fast_free(p); }
UM_EXPORT void _ZdlPvRKSt9nothrow_t(void *p, const void *tag) { (void)tag; umi_fast_free(p); }
UM_EXPORT void _ZdaPvRKSt9nothrow_t(void *p, const void *tag) { (void)tag; umi_fast_free(p); }
UM_EXPORT void _ZdlPvSt11align_val_t(void *p, size_t align) { (void)align; umi_fast_free(p); }
UM_EXPORT void _ZdaPvSt11align_val_t(void *p, size_t align) { (void)align; umi_fast_free(p); }
UM_EXPORT void _ZdlPvmSt11align_val_t(void *p, size_t size, size_t align) { (void)size, (void)align; umi_fast_free(p); }
UM_EXPORT void _ZdaPvmSt11align_val_t(void *p, size_t size, size_t align) { (void)size, (void)align; umi_fast_free(p); }
UM_EXPORT void _ZdlPvSt11align_val_tRKSt9nothrow_t(void *p, size_t align, const void *tag) { (void)align, (void)tag; umi_fast_free(p); }
UM_EXPORT void _ZdaPvSt11align_val_tRKSt9nothrow_t(void *p, size_t align, const void *tag) { (void)align, (void)tag; umi_fast_free(p); }
