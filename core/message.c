/* A bad pointer, reported and counted. The report comes from inside free(), so it goes through
 * base/fmt.c: no stdio, no malloc, one write(2), errno preserved. */
#include "base/fmt.h"
#include "core/internal.h"
#include "core/counters.h"

void umi_warn_ptr(const char *what, const void *p) {
    umi_count_invalid();
    umi_dprintf(2, "umalloc: %s %p: ignored, the heap is left as it was\n", what, p);
}
