/* The malloc family, exported under glibc's names so that LD_PRELOAD (or linking first) makes
 * every allocation of the program and of its libraries ours. glibc's own code calls malloc
 * through the PLT, and the __libc_* names are what some programs and glibc's debugging hooks
 * call directly, so they are ours too. Semantics: see docs/design.md, "Semantics". */
#include <errno.h>

#include "core/fastpath.h"
#include "preload/glue.h"
#include "umalloc.h"

UM_EXPORT void *malloc(size_t size) { return umi_fast_malloc(size); }
UM_EXPORT void free(void *p) { umi_fast_free(p); }
UM_EXPORT void cfree(void *p) { umi_fast_free(p); }
UM_EXPORT void *calloc(size_t count, size_t size) { return umi_calloc(count, size); }
UM_EXPORT void *realloc(void *p, size_t size) { return umi_realloc(p, size); }
UM_EXPORT void *reallocarray(void *p, size_t count, size_t size) { return um_reallocarray(p, count, size); }
UM_EXPORT int posix_memalign(void **out, size_t alignment, size_t size) { return um_posix_memalign(out, alignment, size); }
UM_EXPORT void *aligned_alloc(size_t alignment, size_t size) { return um_aligned_alloc(alignment, size); }
UM_EXPORT void *memalign(size_t alignment, size_t size) { return um_memalign(alignment, size); }
UM_EXPORT void *valloc(size_t size) { return um_valloc(size); }
UM_EXPORT void *pvalloc(size_t size) { return um_pvalloc(size); }
UM_EXPORT size_t malloc_usable_size(void *p) { return um_malloc_usable_size(p); }
UM_EXPORT void free_sized(void *p, size_t size) { um_free_sized(p, size); }
UM_EXPORT void free_aligned_sized(void *p, size_t alignment, size_t size) { um_free_aligned_sized(p, alignment, size); }

UM_EXPORT void *__libc_malloc(size_t size) { return umi_fast_malloc(size); }
UM_EXPORT void __libc_free(void *p) { umi_fast_free(p); }
UM_EXPORT void __libc_cfree(void *p) { umi_fast_free(p); }
UM_EXPORT void *__libc_calloc(size_t count, size_t size) { return umi_calloc(count, size); }
UM_EXPORT void *__libc_realloc(void *p, size_t size) { return umi_realloc(p, size); }
UM_EXPORT void *__libc_memalign(size_t alignment, size_t size) { return um_memalign(alignment, size); }
UM_EXPORT void *__libc_valloc(size_t size) { return um_valloc(size); }
UM_EXPORT void *__libc_pvalloc(size_t size) { return um_pvalloc(size); }
UM_EXPORT int __posix_memalign(void **out, size_t alignment, size_t size) { return um_posix_memalign(out, alignment, size); }
