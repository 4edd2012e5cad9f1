/* opt_purge: shows when umalloc gives free pages back to the OS, for the
 * UMALLOC_PURGE_DELAY_MS tests in test/sys_options.c. Run under LD_PRELOAD=libumalloc.so.
 *
 *   opt_purge WAIT_MS
 *
 * Allocates 32 MiB in 8 KiB blocks (pooled blocks, below any large threshold), touches them and
 * frees them all; then for WAIT_MS keeps doing a little allocation work with 5 ms sleeps: each
 * round allocates 512 blocks of 1 KiB (more than one page holds, so that pages run dry and the
 * allocator takes its slow path, where it purges what has been free for longer than the delay)
 * and frees them. Prints
 *   "released_at_free=A released_after_wait=B purged_after_wait=C"
 * where A and B are how much um_get_totals().committed_bytes went down from when the 32 MiB
 * were live to when the last free returned, and to the end of the wait: memory given back to
 * the OS, whether by purging pages (madvise) or unmapping empty segments; and C how much
 * um_get_totals().purged_bytes grew by the end of the wait.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "umalloc.h"

#define NBLOCKS 4096
#define BLOCK 8192

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
    void (*totals)(um_totals_t *) = (void (*)(um_totals_t *))dlsym(RTLD_DEFAULT, "um_get_totals");
    if (!totals) {
        printf("no-umalloc\n");
        return 2;
    }
    double wait = argc > 1 ? atof(argv[1]) : 100;
    static void *blocks[NBLOCKS];
    um_totals_t t0, t1, t2;
    for (int i = 0; i < NBLOCKS; i++) {
        blocks[i] = malloc(BLOCK);
        if (!blocks[i]) return 1;
        memset(blocks[i], 1, BLOCK);
    }
    totals(&t0);
    for (int i = 0; i < NBLOCKS; i++) free(blocks[i]);
    totals(&t1);
    double end = now_ms() + wait;
    while (now_ms() < end) {
        static void *round[512];
        for (int i = 0; i < 512; i++) {
            round[i] = malloc(1024);
            if (round[i]) *(volatile char *)round[i] = 1;
        }
        for (int i = 0; i < 512; i++) free(round[i]);
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    totals(&t2);
    printf("released_at_free=%lld released_after_wait=%lld purged_after_wait=%zu\n",
           (long long)t0.committed_bytes - (long long)t1.committed_bytes,
           (long long)t0.committed_bytes - (long long)t2.committed_bytes,
           t2.purged_bytes - t0.purged_bytes);
    return 0;
}
