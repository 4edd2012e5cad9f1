/* A bad pointer, reported and counted. The report comes from inside free(), so it goes through
 * base/fmt.c: no stdio, no malloc, one write(2), errno preserved. */
#include <stdlib.h>

#include "base/fmt.h"
#include "core/internal.h"
#include "core/counters.h"

void umi_warn_ptr(const char *what, const void *p) {
    umi_count_invalid();
    umi_dprintf(2, "umalloc: %s %p: ignored, the heap is left as it was\n", what, p);
}

void umi_double_free(const void *p) {
    umi_warn_ptr("double free of", p);
#if UM_ASAN
    /* ASan reports it too, as it does a double free of its own blocks: p's block is free, so
     * poisoned, and this instrumented read of it is reported ("use-after-poison") with the
     * stack of the second free. (ASan stops the program there, as for any error.) */
    (void)*(const volatile char *)p;
#endif
}

#if UM_SECURE
/* Never returns: the list's next block can't be trusted, and handing it out could give a block
 * in use to a second owner. */
void umi_link_corrupt(const void *b, const void *next) {
    umi_dprintf(2, "umalloc: corrupted free list: the link of free block %p decodes to %p, no block of its page "
                   "(written after free?); aborting\n", b, next);
    abort();
}
#endif
