/* check_corrupt: run under LD_PRELOAD=libumalloc.so. With "corrupt", writes over a freed block's
 * free-list link (a use-after-free write) so that malloc would hand a live block out twice,
 * then exits without allocating again. Under UMALLOC_CHECK=1 umalloc must find that at exit,
 * say what and where in one line and abort. Without "corrupt" it exercises threads and sizes
 * and exits 0: UMALLOC_CHECK=1 must find nothing there. */
#pragma GCC diagnostic ignored "-Wpragmas"
#pragma GCC diagnostic ignored "-Wuse-after-free"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *worker(void *arg) {
    void **slots = arg;
    for (unsigned i = 0; i < 200000; i++) {
        unsigned k = (i * 2654435761u) % 1024;
        void *p = malloc(1 + (i * 7919u) % (i % 64 == 0 ? 300000 : 2000));
        free(__atomic_exchange_n(&slots[k], p, __ATOMIC_ACQ_REL)); /* blocks cross threads */
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "corrupt") == 0) {
        void *keep = malloc(48), *a = malloc(48), *live = malloc(48);
        free(a);
        *(void **)a = live; /* the freed block's link now points at a live block */
        printf("check_corrupt: link overwritten (%p -> %p, page kept by %p)\n", a, live, keep);
        fflush(stdout);
        return 0;
    }
    static void *slots[1024];
    for (int round = 0; round < 4; round++) {
        pthread_t t[2];
        for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, worker, slots);
        for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    }
    for (int i = 0; i < 1024; i++) free(slots[i]);
    printf("check_corrupt: clean run done\n");
    return 0;
}
