/* stats_load: allocation load for the signal test of test/sys_stats.c.
 *
 *   stats_load STOPFILE [MAX_SECONDS]
 *
 * Four threads do random malloc / calloc / realloc / free of mixed sizes (16 B .. 64 KiB, now and
 * then 600 KiB: a block mapped on its own), filling every block with a pattern and checking it
 * before every realloc and free; a quarter of the frees are of blocks another thread made (they
 * pass through a shared exchange array). Prints "ready" once the threads run, and runs until
 * STOPFILE exists (checked every 5 ms by main) or MAX_SECONDS (default 60) have passed. Then it
 * frees everything, prints "ok OPS ops" and exits 0; a bad block prints "FAIL ..." and exits 1.
 * Signals interrupting main's sleep are fine (EINTR). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define THREADS 4
#define SLOTS 256    /* blocks each thread keeps */
#define EXCHANGE 64  /* blocks in flight between threads */

typedef struct {
    size_t size;  /* usable size we asked for */
    uint32_t tag; /* fill byte seed */
    uint32_t check;
} hdr_t;

static atomic_int stop;
static _Atomic(hdr_t *) exchange[EXCHANGE];
static atomic_ullong total_ops;
static atomic_int failed;

static uint64_t rnd(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void fill(hdr_t *h, size_t size, uint32_t tag) {
    h->size = size;
    h->tag = tag;
    h->check = (uint32_t)size ^ tag ^ 0x5a5a5a5au;
    unsigned char *p = (unsigned char *)(h + 1);
    size_t n = size - sizeof *h;
    if (n > 256) { /* ends only, for speed */
        memset(p, (int)(tag & 0xff), 128);
        memset(p + n - 128, (int)(tag & 0xff), 128);
    } else {
        memset(p, (int)(tag & 0xff), n);
    }
}

static int check(const hdr_t *h, const char *what) {
    if (h->check != ((uint32_t)h->size ^ h->tag ^ 0x5a5a5a5au)) goto bad;
    const unsigned char *p = (const unsigned char *)(h + 1);
    size_t n = h->size - sizeof *h;
    unsigned char want = (unsigned char)(h->tag & 0xff);
    size_t lo = n > 256 ? 128 : n;
    for (size_t i = 0; i < lo; i++)
        if (p[i] != want) goto bad;
    if (n > 256)
        for (size_t i = n - 128; i < n; i++)
            if (p[i] != want) goto bad;
    return 1;
bad:
    printf("FAIL: bad block %p before %s (size %zu tag %u)\n", (const void *)h, what, h->size, h->tag);
    fflush(stdout);
    atomic_store(&failed, 1);
    return 0;
}

static size_t pick_size(uint64_t *s) {
    uint64_t r = rnd(s);
    size_t size;
    switch (r % 16) {
    case 0: size = 600 * 1024; break;                      /* large: mapped on its own */
    case 1: case 2: size = 4096 + rnd(s) % 60000; break;   /* medium */
    default: size = 16 + rnd(s) % 1000; break;             /* small */
    }
    if (r % 512 == 7) size = 600 * 1024;
    return size < sizeof(hdr_t) ? sizeof(hdr_t) : size;
}

static void *worker(void *arg) {
    uint64_t seed = 0x9e3779b97f4a7c15ull * (uintptr_t)arg + 12345;
    hdr_t *slot[SLOTS] = {0};
    unsigned long long ops = 0;
    uint32_t tag = (uint32_t)(uintptr_t)arg * 1000;
    while (!atomic_load_explicit(&stop, memory_order_relaxed) && !atomic_load(&failed)) {
        uint64_t r = rnd(&seed);
        size_t i = r % SLOTS;
        hdr_t *h = slot[i];
        unsigned op = (unsigned)((r >> 20) % 8);
        if (h == NULL) {
            size_t size = pick_size(&seed);
            h = (op == 0) ? calloc(1, size) : malloc(size);
            if (h == NULL) { printf("FAIL: out of memory (%zu)\n", size); atomic_store(&failed, 1); break; }
            if (op == 0) {
                const unsigned char *z = (const unsigned char *)h;
                for (size_t k = 0; k < size && k < 512; k++)
                    if (z[k]) { printf("FAIL: calloc not zeroed\n"); atomic_store(&failed, 1); }
            }
            fill(h, size, ++tag);
            slot[i] = h;
        } else if (op < 2) { /* realloc */
            if (!check(h, "realloc")) break;
            size_t size = pick_size(&seed);
            size_t keep = h->size < size ? h->size : size;
            uint32_t t = h->tag;
            hdr_t *n = realloc(h, size);
            if (n == NULL) { printf("FAIL: realloc NULL\n"); atomic_store(&failed, 1); break; }
            /* the kept part must be intact */
            const unsigned char *p = (const unsigned char *)(n + 1);
            size_t body = keep - sizeof *n, lo = body > 128 ? 128 : body;
            for (size_t k = 0; k < lo; k++)
                if (p[k] != (unsigned char)(t & 0xff)) { printf("FAIL: realloc lost data\n"); atomic_store(&failed, 1); break; }
            fill(n, size, ++tag);
            slot[i] = n;
        } else if (op < 4) { /* pass it to another thread, take what is there */
            if (!check(h, "exchange")) break;
            hdr_t *other = atomic_exchange(&exchange[rnd(&seed) % EXCHANGE], h);
            slot[i] = NULL;
            if (other) {
                if (!check(other, "remote free")) break;
                free(other);
            }
        } else {
            if (!check(h, "free")) break;
            free(h);
            slot[i] = NULL;
        }
        ops++;
    }
    for (size_t i = 0; i < SLOTS; i++)
        if (slot[i]) {
            check(slot[i], "final free");
            free(slot[i]);
        }
    atomic_fetch_add(&total_ops, ops);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: stats_load STOPFILE [MAX_SECONDS]\n");
        return 2;
    }
    int max_s = argc > 2 ? atoi(argv[2]) : 60;
    pthread_t t[THREADS];
    for (uintptr_t i = 0; i < THREADS; i++)
        if (pthread_create(&t[i], NULL, worker, (void *)(i + 1)) != 0) {
            printf("FAIL: pthread_create\n");
            return 1;
        }
    printf("ready\n");
    fflush(stdout);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        if (access(argv[1], F_OK) == 0) break;
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - t0.tv_sec > max_s) break;
        if (atomic_load(&failed)) break;
        struct timespec nap = {0, 5 * 1000 * 1000};
        while (nanosleep(&nap, &nap) != 0 && errno == EINTR) {}
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    for (size_t i = 0; i < EXCHANGE; i++) {
        hdr_t *h = atomic_exchange(&exchange[i], NULL);
        if (h) {
            check(h, "final exchange free");
            free(h);
        }
    }
    if (atomic_load(&failed)) return 1;
    printf("ok %llu ops\n", (unsigned long long)atomic_load(&total_ops));
    return 0;
}
