/* Messages to stderr. They are printed from inside free(), so they go through core/fmt.c: no
 * stdio, no malloc, one write(2) per line, errno preserved. */
#include <stdlib.h>

#include "core/fmt.h"
#include "core/internal.h"
#include "stats/stats.h"

void _x_warn_ptr(const char *what, const void *p) {
    _x_stats_invalid();
    _x_dprintf(2, "umalloc: %s %p: ignored, the heap is left as it was\n", what, p);
}

void _x_fatal(const char *file, int line, const char *what) {
    _x_dprintf(2, "umalloc: heap corruption detected (%s) at %s:%d\n", what, file, line);
    abort();
}
