/* stats_hold: holds a known set of blocks at exit, for test/sys_stats.c.
 *
 *   stats_hold [K [SIZE]]
 *
 * Allocates K (default 1000) blocks of SIZE (default 200) bytes and one block of 1 MiB (mapped
 * on its own), writes to all of them, prints "held K blocks of SIZE bytes" and exits 0 without
 * freeing them: an at-exit dump must show them live. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *volatile *held;
static void *volatile big;

int main(int argc, char **argv) {
    int k = argc > 1 ? atoi(argv[1]) : 1000;
    size_t size = argc > 2 ? (size_t)atol(argv[2]) : 200;
    held = calloc((size_t)k + 1, sizeof(void *)); /* not SIZE bytes: does not count in SIZE's class */
    for (int i = 0; i < k; i++) {
        void *p = malloc(size);
        if (!p) return 1;
        memset(p, i & 0xff, size);
        held[i] = p;
    }
    big = malloc(1 << 20);
    if (!big) return 1;
    memset(big, 1, 1 << 20);
    printf("held %d blocks of %zu bytes\n", k, size);
    return 0;
}
