/* Pointers that are not ours, in the static library: nothing to hand them to, so say so once
 * per call and leave the heap alone. The preload library replaces these (preload/foreign.c). */
#include "core/internal.h"

__attribute__((weak)) void umi_free_foreign(void *p) { umi_warn_ptr("free of a pointer umalloc did not allocate:", p); }

__attribute__((weak)) size_t umi_usable_foreign(const void *p) { (void)p; return 0; }

__attribute__((weak)) void *umi_realloc_foreign(void *p, size_t size) {
    (void)size;
    umi_warn_ptr("realloc of a pointer umalloc did not allocate:", p);
    errno = EINVAL;
    return NULL;
}
