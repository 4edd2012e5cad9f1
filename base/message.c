/* Fatal messages. They may be printed from inside malloc or free, so they go through
 * base/fmt.c: no stdio, no malloc, one write(2). */
#include <stdlib.h>

#include "base/base.h"
#include "base/fmt.h"

void umi_fatal(const char *file, int line, const char *what) {
    umi_dprintf(2, "umalloc: heap corruption detected (%s) at %s:%d\n", what, file, line);
    abort();
}

void umi_fatal_msg(const char *what) {
    umi_dprintf(2, "umalloc: %s\n", what);
    abort();
}
