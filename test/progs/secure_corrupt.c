/* secure_corrupt: what the hardened library (build/libumalloc-secure.so) stops, run by
 * test/sys_hardening.c under it and, to show the difference, under build/libumalloc.so.
 *
 *   secure_corrupt pointer   a use after free overwrites a freed block's link with the address
 *                            of a block in use, then the program mallocs until the list gets there
 *   secure_corrupt garbage   the same with garbage
 *   secure_corrupt none      the same frees and mallocs, no overwrite (must run to the end)
 *   secure_corrupt order     prints "sequential N of M": fresh blocks that follow the one before
 *   secure_corrupt guard     writes one byte past the usable size of a huge block
 *
 * Every block malloc returns is printed ("got P"), and "twice P" if it is in use already, at
 * once (stdout unbuffered), so that what happened before an abort is seen. Exit 0: ran to the end. */
#pragma GCC diagnostic ignored "-Wpragmas"
#pragma GCC diagnostic ignored "-Wuse-after-free"
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { LIVE = 64, SIZE = 64 };
static void *live[LIVE + 16];
static int nlive;

static void got(void *p) {
    printf("got %p\n", p);
    for (int i = 0; i < nlive; i++)
        if (live[i] == p) {
            printf("twice %p\n", p);
            exit(3);
        }
    live[nlive++] = p;
}

static int corrupt(const char *mode) {
    for (int i = 0; i < LIVE; i++) got(malloc(SIZE));
    void *a = malloc(SIZE), *b = malloc(SIZE);
    free(b);
    free(a); /* the list is now a -> b -> ... */
    if (strcmp(mode, "pointer") == 0) memcpy(a, &live[LIVE / 2], sizeof(void *)); /* a block in use */
    else if (strcmp(mode, "garbage") == 0) memset(a, 0x41, sizeof(void *));
    else if (strcmp(mode, "none") != 0) return 2;
    for (int i = 0; i < 8; i++) got(malloc(SIZE));
    printf("end\n");
    return 0;
}

static int order(void) {
    enum { N = 1000 };
    static char *p[N];
    int seq = 0;
    for (int i = 0; i < N; i++) p[i] = malloc(48);
    for (int i = 1; i < N; i++) seq += p[i] == p[i - 1] + 48;
    printf("sequential %d of %d\n", seq, N - 1);
    return 0;
}

/* Two blocks whose mappings are 4 MiB each, side by side where the address space allows: one
 * byte past the first one's usable size is the second one's header, unless a guard page is
 * there. */
static int guard(void) {
    size_t size = ((size_t)4 << 20) - 4096; /* with its header, a mapping of 4 MiB */
    char *p = malloc(size), *q = malloc(size);
    size_t n = malloc_usable_size(p);
    memset(p, 1, n);
    printf("usable %zu, next block at %+ld bytes; writing one byte past it\n", n, (long)(q - p));
    p[n] = 1;
    printf("end\n");
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc != 2) return 2;
    if (strcmp(argv[1], "order") == 0) return order();
    if (strcmp(argv[1], "guard") == 0) return guard();
    return corrupt(argv[1]);
}
