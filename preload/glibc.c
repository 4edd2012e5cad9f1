/* glibc's malloc introspection and tuning calls, answered from umalloc's own totals. */
#include <limits.h>
#include <string.h>

#include "base/fmt.h"
#include "core/internal.h"
#include "preload/glue.h"
#include "umalloc.h"

UM_EXPORT struct mallinfo2 mallinfo2(void) {
    um_totals_t t;
    um_get_totals(&t);
    struct mallinfo2 mi;
    memset(&mi, 0, sizeof mi);
    mi.arena = t.mapped_bytes - t.large_bytes; /* pooled space */
    mi.hblks = 0;
    mi.hblkhd = t.large_bytes;                 /* blocks mapped on their own */
    mi.uordblks = t.live_bytes - t.large_bytes;
    mi.fordblks = t.free_bytes;
    mi.ordblks = t.segments;
    return mi;
}

static int clamp_int(size_t v) { return v > INT_MAX ? INT_MAX : (int)v; }

UM_EXPORT struct mallinfo mallinfo(void) {
    struct mallinfo2 m2 = mallinfo2();
    struct mallinfo mi;
    memset(&mi, 0, sizeof mi);
    mi.arena = clamp_int(m2.arena);
    mi.ordblks = clamp_int(m2.ordblks);
    mi.hblkhd = clamp_int(m2.hblkhd);
    mi.uordblks = clamp_int(m2.uordblks);
    mi.fordblks = clamp_int(m2.fordblks);
    return mi;
}

UM_EXPORT int malloc_trim(size_t pad) { return um_trim(pad); }

/* glibc's knobs have no meaning here but M_MMAP_THRESHOLD, which is our large threshold.
 * The others are accepted (return 1) so that programs that set them carry on. */
UM_EXPORT int mallopt(int param, int value) {
    switch (param) {
    case M_MMAP_THRESHOLD:
        if (value < 4096) value = 4096;
        umi_process_init();
        umi_large_threshold = (size_t)value > UM_LARGE_MAX ? UM_LARGE_MAX : (size_t)value;
        return 1;
    case M_TRIM_THRESHOLD: case M_TOP_PAD: case M_MMAP_MAX: case M_ARENA_MAX: case M_ARENA_TEST:
    case M_PERTURB: case M_CHECK_ACTION: case M_MXFAST:
        return 1;
    default:
        return 0;
    }
}

/* Same shape as glibc's malloc_stats, on stderr. */
UM_EXPORT void malloc_stats(void) {
    um_totals_t t;
    um_get_totals(&t);
    umi_dprintf(2, "umalloc %s\nsystem bytes     = %10zu\nin use bytes     = %10zu\nTotal (incl. mmap):\n"
                  "system bytes     = %10zu\nin use bytes     = %10zu\nmax mmap regions = %10zu\nmax mmap bytes   = %10zu\n",
               UMALLOC_VERSION, t.mapped_bytes - t.large_bytes, t.live_bytes - t.large_bytes, t.mapped_bytes,
               t.live_bytes, t.segments, t.large_bytes);
}

UM_EXPORT int malloc_info(int options, FILE *fp) {
    (void)options;
    um_totals_t t;
    um_get_totals(&t);
    return fprintf(fp, "<malloc version=\"umalloc-%s\">\n<total type=\"mmap\" size=\"%zu\"/>\n<system type=\"current\" size=\"%zu\"/>\n"
                       "<aspace type=\"total\" size=\"%zu\"/>\n</malloc>\n",
                   UMALLOC_VERSION, t.large_bytes, t.mapped_bytes, t.mapped_bytes) < 0 ? -1 : 0;
}
