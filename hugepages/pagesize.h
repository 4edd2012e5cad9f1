/* Page-size policy: which kind of page backs a mapping the core asks for. The core states what
 * a mapping is for; this layer decides how it is backed and reports what it got, as one of
 * include/umalloc.h's UM_PAGES_* kinds, which the statistics count. The system calls themselves
 * are the OS layer's (os/os.h). */
#ifndef UM_PAGESIZE_H
#define UM_PAGESIZE_H

#include <stddef.h>

/* A huge block's mapping [p, p + size): written through, typically, so transparent huge pages
 * pay from 2 MiB up (one fault per 2 MiB instead of 512; nothing where THP is off). Returns the
 * kind of page that now backs it. */
unsigned umi_pages_for_huge_block(void *p, size_t size);

#endif
