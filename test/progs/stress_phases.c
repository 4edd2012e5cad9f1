/* stress_phases: threads that move through phases of small blocks, big blocks (extents) and
 * a mix with a few large ones, so that memory one kind of block emptied serves the next kind
 * (small segments moved out of the region and back, extents cut over old bytes, cached
 * segments of another layout). Blocks change hands through a shared array, are realloc'ed,
 * calloc'ed and memaligned, and every block is checked whole before it is freed or resized:
 * its size and tag in its first two words, then a byte pattern of the tag. calloc'ed blocks
 * must read zero, aligned ones be aligned, malloc_usable_size cover the size asked for.
 *
 *   stress_phases THREADS ROUNDS STEPS   (defaults 6 2 4000; STEPS per thread and round)
 * Prints "stress_phases ok" and exits 0 when every check held, else names the first few
 * failures on stderr and exits 1. */
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SLOTS = 600, SHARED = 1024, MAX_THREADS = 64 };

static long steps = 4000;
static _Atomic(uint64_t *) shared[SHARED];
static _Atomic long failures;

static void failed(const char *what, const void *p, size_t n) {
    if (atomic_fetch_add(&failures, 1) < 8) fprintf(stderr, "stress_phases: %s: %p (%zu bytes)\n", what, p, n);
}

static uint64_t next(uint64_t *s) { /* xorshift64 */
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Big blocks are checked on a sparse stride: every page, not every byte. */
static size_t stride(size_t n) { return n > 65536 ? 61 : 1; }

static void fill(uint64_t *p, size_t n, uint64_t tag) {
    p[0] = n;
    p[1] = tag;
    unsigned char *c = (unsigned char *)p;
    for (size_t i = 16; i < n; i++) c[i] = (unsigned char)(tag + i);
}

static int intact(const uint64_t *p) {
    size_t n = p[0];
    const unsigned char *c = (const unsigned char *)p;
    if (n < 16 || n > ((size_t)4 << 20)) return 0;
    for (size_t i = 16; i < n; i += stride(n))
        if (c[i] != (unsigned char)(p[1] + i)) return 0;
    return malloc_usable_size((void *)p) >= n;
}

/* Phase 0: small blocks; 1: mostly big ones (12 KiB .. 500 KiB); 2: powers of two up to
 * 64 KiB and now and then a large one (up to 1.5 MiB). */
static size_t pick(uint64_t *s, int phase) {
    uint64_t u = next(s) % 1000;
    if (phase == 0) return 16 + next(s) % 1024;
    if (phase == 1) return u < 700 ? 12000 + next(s) % 500000 : 16 + next(s) % 256;
    if (u < 5) return 600000 + next(s) % 900000;
    return (size_t)16 << (next(s) % 13);
}

static uint64_t *get(uint64_t *s, size_t n, uint64_t tag) {
    void *p = NULL;
    uint64_t how = next(s) % 10;
    if (how == 0) {
        p = calloc(1, n);
        const unsigned char *c = p;
        for (size_t i = 0; p != NULL && i < n; i += stride(n))
            if (c[i] != 0) { failed("calloc'ed block not zero", p, n); break; }
    } else if (how == 1) {
        size_t align = (size_t)16 << (next(s) % 12);
        if (posix_memalign(&p, align, n) != 0) p = NULL;
        else if ((uintptr_t)p % align != 0) failed("posix_memalign'ed block misaligned", p, n);
    } else {
        p = malloc(n);
    }
    if (p == NULL) {
        failed("allocation failed", NULL, n);
        exit(1);
    }
    fill(p, n, tag);
    return p;
}

static void *worker(void *arg) {
    uint64_t s = (uint64_t)(uintptr_t)arg * 0x9E3779B97F4A7C15ull + 1;
    uint64_t **slot = calloc(SLOTS, sizeof *slot);
    for (long i = 0; i < steps; i++) {
        int phase = (int)(i / (steps / 6 + 1) % 3);
        uint64_t **p = &slot[next(&s) % SLOTS];
        uint64_t op = next(&s) % 100;
        if (*p != NULL && !intact(*p)) {
            failed("block changed while in use", *p, (*p)[0]);
            *p = NULL; /* not freed: its header can't be trusted */
            continue;
        }
        if (op < 10) {
            *p = atomic_exchange(&shared[next(&s) % SHARED], *p); /* freed later by any thread */
        } else if (op < 25 && *p != NULL) {
            size_t n = pick(&s, phase), old = (*p)[0];
            uint64_t tag = (*p)[1];
            uint64_t *q = realloc(*p, n);
            if (q == NULL) { failed("realloc failed", *p, n); exit(1); }
            size_t kept = old < n ? old : n;
            const unsigned char *c = (const unsigned char *)q;
            for (size_t j = 16; j < kept; j += stride(kept))
                if (c[j] != (unsigned char)(tag + j)) { failed("realloc lost the block's bytes", q, n); break; }
            fill(q, n, tag);
            *p = q;
        } else if (op < 45) {
            free(*p);
            *p = NULL;
        } else {
            free(*p);
            *p = get(&s, pick(&s, phase), next(&s));
        }
    }
    for (int k = 0; k < SLOTS; k++) {
        if (slot[k] != NULL && !intact(slot[k])) failed("block changed while in use", slot[k], slot[k][0]);
        else free(slot[k]);
    }
    free(slot);
    return NULL;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 6, rounds = argc > 2 ? atoi(argv[2]) : 2;
    if (argc > 3) steps = atol(argv[3]);
    if (threads < 1 || threads > MAX_THREADS || rounds < 1 || steps < 1) {
        fprintf(stderr, "usage: stress_phases [THREADS 1..%d] [ROUNDS] [STEPS]\n", MAX_THREADS);
        return 2;
    }
    for (int r = 0; r < rounds; r++) {
        pthread_t t[MAX_THREADS];
        for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(1 + i + 1000 * r));
        for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
        if (r % 2 == 1) malloc_trim(0); /* everything free given back between rounds */
    }
    for (int k = 0; k < SHARED; k++) {
        uint64_t *p = shared[k];
        if (p != NULL && !intact(p)) failed("block changed while in use", p, p[0]);
        else free(p);
    }
    if (failures != 0) return 1;
    printf("stress_phases ok\n");
    return 0;
}
