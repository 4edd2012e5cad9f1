/* Messages to stderr. They are printed from inside free(), so they go through base/fmt.c: no
 * stdio, no malloc, one write(2) per line, errno preserved. */
#include <stdlib.h>

#include "base/fmt.h"
#include "core/internal.h"
#include "stats/stats.h"

void umi_warn_ptr(const char *what, const void *p) {
    umi_stats_invalid();
    umi_dprintf(2, "umalloc: %s %p: ignored, the heap is left as it was\n", what, p);
}

void umi_fatal(const char *file, int line, const char *what) {
    umi_dprintf(2, "umalloc: heap corruption detected (%s) at %s:%d\n", what, file, line);
    abort();
}
