/* preload_libc_text: run under LD_PRELOAD=libumalloc.so. A small threaded program (blocks of a
 * few sizes, 20 threads one after another that allocate, free and exit) must not make umalloc
 * call libc's clock_gettime or sched_getaffinity: the kernel maps libc's text 64 KiB around
 * the page that faults, and nothing else in such a process runs code there, so each call
 * would cost it a page fault and up to 64 KiB of RSS (os/clock.c).
 *
 * The two functions are defined here, in the executable, so that the preloaded library's calls
 * to them resolve to these (the executable comes first in symbol lookup): they count the calls
 * and forward them to libc. The program itself never calls them.
 * Prints "clock_gettime N sched_getaffinity M"; exit status 0 when both are 0, 1 otherwise, 2 if
 * the blocks are not umalloc's (no preload). */
#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int clock_calls, affinity_calls;

int clock_gettime(clockid_t id, struct timespec *ts) {
    __atomic_add_fetch(&clock_calls, 1, __ATOMIC_RELAXED);
    int (*real)(clockid_t, struct timespec *) = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
    return real(id, ts);
}

int sched_getaffinity(pid_t pid, size_t size, cpu_set_t *set) {
    __atomic_add_fetch(&affinity_calls, 1, __ATOMIC_RELAXED);
    int (*real)(pid_t, size_t, cpu_set_t *) = (int (*)(pid_t, size_t, cpu_set_t *))dlsym(RTLD_NEXT, "sched_getaffinity");
    return real(pid, size, set);
}

static void *worker(void *arg) {
    void *keep[64];
    for (int i = 0; i < 64; i++) {
        keep[i] = malloc((size_t)(16 << (i % 10)));
        memset(keep[i], i, 16);
    }
    for (int i = 0; i < 64; i++) free(keep[i]);
    return arg;
}

int main(void) {
    char *p = malloc(100);
    void *big = malloc(100000); /* a big block: umalloc's arenas for those count the CPUs */
    int (*owns)(const void *) = (int (*)(const void *))dlsym(RTLD_DEFAULT, "um_owns");
    if (owns == NULL || !owns(p)) {
        fprintf(stderr, "preload_libc_text: the blocks are not umalloc's (run it under LD_PRELOAD)\n");
        return 2;
    }
    for (int t = 0; t < 20; t++) {
        pthread_t th;
        if (pthread_create(&th, NULL, worker, NULL) != 0 || pthread_join(th, NULL) != 0) return 3;
    }
    free(big);
    free(p);
    printf("clock_gettime %d sched_getaffinity %d\n", clock_calls, affinity_calls);
    return clock_calls == 0 && affinity_calls == 0 ? 0 : 1;
}
