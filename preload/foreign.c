/* Pointers umalloc did not hand out, in the preload library.
 *
 * Preloaded, we own malloc from the first call, so a foreign pointer is either (a) a block
 * glibc's allocator handed out to someone who called it by another name before or besides us,
 * which lives in the brk heap (we never use brk), or (b) a bug: a stack or static address, or
 * garbage. (a) goes back to glibc; (b) gets one line on stderr and is left alone: freeing it
 * anywhere would corrupt someone's memory. */
#include <dlfcn.h>
#include <unistd.h>

#include "core/internal.h"
#include "preload/glue.h"

static um_libc_t libc_fns;
static _Atomic int libc_state; /* 0 = not looked up, 1 = looking, 2 = done */
static uintptr_t brk_start;

/* After preload/start.c's, which faults in the .bss this writes. */
__attribute__((constructor(102))) static void remember_brk(void) { brk_start = (uintptr_t)sbrk(0); }

const um_libc_t *umi_libc(void) {
    int expected = 0;
    if (atomic_compare_exchange_strong(&libc_state, &expected, 1)) {
        /* dlsym may call malloc: fine here, we are not inside our own initialisation. */
        void *h = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
        if (h != NULL) {
            libc_fns.free = (void (*)(void *))dlsym(h, "__libc_free");
            libc_fns.usable_size = (size_t(*)(void *))dlsym(h, "malloc_usable_size");
            if (libc_fns.free == (void (*)(void *))__libc_free) libc_fns.free = NULL; /* resolved to ours */
        }
        atomic_store(&libc_state, 2);
    }
    return atomic_load(&libc_state) == 2 ? &libc_fns : NULL;
}

/* In glibc's brk heap (between the break at our start-up and the break now)? */
static bool from_glibc_heap(const void *p) {
    uintptr_t u = (uintptr_t)p;
    return brk_start != 0 && u >= brk_start && u < (uintptr_t)sbrk(0) && (u & 15) == 0;
}

void umi_free_foreign(void *p) {
    /* Where huge blocks lie (the 4 MiB unit says so), but starting none: an inner pointer. */
    if (umi_segmap_get((uintptr_t)p) == UM_MAP_HUGE) { umi_warn_ptr("free of a pointer into large-block memory that starts no block:", p); return; }
    const um_libc_t *libc = from_glibc_heap(p) ? umi_libc() : NULL;
    if (libc != NULL && libc->free != NULL) { libc->free(p); return; }
    umi_warn_ptr("free of a pointer umalloc did not allocate:", p);
}

size_t umi_usable_foreign(const void *p) {
    const um_libc_t *libc = from_glibc_heap(p) ? umi_libc() : NULL;
    if (libc != NULL && libc->usable_size != NULL) return libc->usable_size((void *)p);
    return 0;
}

void *umi_realloc_foreign(void *p, size_t size) {
    size_t old = umi_usable_foreign(p);
    if (old == 0) {
        umi_warn_ptr("realloc of a pointer umalloc did not allocate:", p);
        errno = EINVAL;
        return NULL;
    }
    void *q = umi_malloc(size);
    if (q == NULL) return NULL;
    __builtin_memcpy(q, p, old < size ? old : size);
    umi_free_foreign(p);
    return q;
}
