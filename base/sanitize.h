/* What ASan must know about memory umalloc hands out and takes back: the one place the library
 * names the ASan interface. In every other build the macros compile to nothing.
 *
 * In an ASan build (the core of build/test/unit-asan) a free block is poisoned whole, and so is
 * the slack of a block in use (the usable size beyond the request, the rounding to the size
 * class) and every block carved but never handed out: a use after free, or an overflow of a
 * umalloc block by even one byte, is reported by ASan ("use-after-poison") like an error in
 * glibc's blocks. The core itself reads and writes a free block's two words through accessors
 * ASan does not instrument (core/block.h). See docs/design.md, "ASan builds". */
#ifndef UM_SANITIZE_H
#define UM_SANITIZE_H

#include <stddef.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define UM_ASAN 1
#define UM_SAN_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UM_SAN_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
/* The first poisoned byte of [p, p + n), or NULL if none is. */
#define UM_SAN_FIRST_POISONED(p, n) __asan_region_is_poisoned((void *)(p), (n))
#else
#define UM_ASAN 0
#define UM_SAN_POISON(p, n) ((void)(p), (void)(n))
#define UM_SAN_UNPOISON(p, n) ((void)(p), (void)(n))
#define UM_SAN_FIRST_POISONED(p, n) ((void)(p), (void)(n), (void *)0)
#endif

#endif
