/* The preload library's one coupling point with the outside: glibc's names and structures. */
#ifndef UM_GLUE_H
#define UM_GLUE_H

#include <malloc.h>
#include <stddef.h>

#define UM_EXPORT __attribute__((visibility("default")))

/* glibc's own allocator, found lazily (never during our initialisation: dlsym may allocate),
 * for pointers it handed out before we were in place. NULL when it cannot be found. */
typedef struct um_libc_s {
    void (*free)(void *);
    size_t (*usable_size)(void *);
} um_libc_t;
const um_libc_t *umi_libc(void);
void __libc_free(void *p); /* ours: preload/override.c */

#endif
