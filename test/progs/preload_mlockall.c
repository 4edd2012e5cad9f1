/* preload_mlockall: run under LD_PRELOAD=libumalloc.so. A program that locks its memory
 * (mlockall(MCL_CURRENT | MCL_FUTURE), as real-time programs and cryptsetup do) must keep working
 * at normal speed: the kernel populates every readable mapping it locks, so an allocator that
 * keeps a large readable reservation would make this take minutes and gigabytes of page tables.
 * Allocates and frees small, medium and large blocks from two threads, checks their contents,
 * and prints "preload_mlockall: all checks passed". Skips (exit 0, "SKIP" line) when the process
 * may not lock memory (not root and a small RLIMIT_MEMLOCK). */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static int fail;

static void *work(void *arg) {
    unsigned seed = (unsigned)(uintptr_t)arg;
    static const size_t sizes[] = {16, 24, 100, 1000, 5000, 40000, 300000, 3u << 20};
    for (int round = 0; round < 200; round++) {
        void *p[8];
        for (int i = 0; i < 8; i++) {
            size_t n = sizes[(i + round + seed) % 8];
            p[i] = malloc(n);
            if (p[i] == NULL) { fail = 1; return NULL; }
            memset(p[i], (int)(i + round), n);
        }
        for (int i = 0; i < 8; i++) {
            size_t n = sizes[(i + round + seed) % 8];
            unsigned char *c = p[i];
            if (c[0] != (unsigned char)(i + round) || c[n - 1] != (unsigned char)(i + round)) fail = 1;
            free(p[i]);
        }
    }
    return NULL;
}

int main(void) {
    void *warm = malloc(64); /* the allocator is set up before the lock, as in most programs */
    if (mlockall(MCL_CURRENT | MCL_FUTURE) != 0) {
        printf("preload_mlockall: SKIP: mlockall: %s\n", strerror(errno));
        free(warm);
        return 0;
    }
    pthread_t t[2];
    for (uintptr_t i = 0; i < 2; i++) pthread_create(&t[i], NULL, work, (void *)i);
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    free(warm);
    munlockall();
    if (fail) { printf("preload_mlockall: FAIL: a block lost its contents or malloc failed\n"); return 1; }
    printf("preload_mlockall: all checks passed\n");
    return 0;
}
