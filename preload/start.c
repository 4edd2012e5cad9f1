/* The preload library as ld.so loads it: its first constructor (libc's have run, the program's
 * have not; malloc may have been called already, see core/init.c, and nothing here depends on
 * whether it was). */
#include <stdint.h>

#include "core/internal.h"
#include "os/os.h"

/* Where this library's .bss starts: the linker's symbol, bound here to our own (hidden), not to
 * the program's of the same name. */
extern char __bss_start[] __attribute__((visibility("hidden")));

/* The library's .bss, from its start to the end of the first heap structure, faulted in with one
 * system call. Every process writes the small variables there (options, locks, counters) and
 * its first malloc writes the whole first heap (core/heap.c); left to fault page by page, that
 * is a fault each, and two for a page that is read first (the read maps the shared zero page,
 * the write that follows replaces it). The big, rarely used buffers
 * lie after it, in .lbss (UM_BIG_BSS), and stay out. The bound checks the layout this expects:
 * first_heap in .bss, a few pages from its start. */
__attribute__((constructor(101))) static void fault_in_bss(void) {
    const uint8_t *lo = (const uint8_t *)__bss_start, *hi = umi_first_heap_end();
    if (hi > lo && hi - lo <= (64 << 10)) umi_os_fault_in_bss((void *)lo, (void *)hi);
    /* and the segment map's page where the first malloc enters the region's first segment,
     * in .lbss with the map's other leaves (core/segmap.c) */
    const uint8_t *map = umi_segmap_first_entries();
    umi_os_fault_in_bss((void *)map, (void *)(map + 1));
}
