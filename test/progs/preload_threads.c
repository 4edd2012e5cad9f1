/* preload_threads: run under LD_PRELOAD=libumalloc.so. 8 threads x 200k random operations
 * through the real malloc symbols (malloc, calloc, realloc, free, posix_memalign, aligned_alloc,
 * free_sized when exported), with every block filled with a pattern derived from (thread, slot,
 * size) and checked before it is freed or moved. A share of the blocks is passed to the next
 * thread through a mailbox and freed there (cross-thread free). Exit 0 on success. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { THREADS = 8, OPS = 200000, SLOTS = 2048, MAILBOX = 256 };

static int (*owns)(const void *);
static void (*free_sized_fn)(void *, size_t);
static _Atomic long errors, cross_freed, total_ops;

typedef struct {
    unsigned char *p;
    size_t n;
    unsigned char pat;
} blk_t;

typedef struct {
    pthread_mutex_t lock;
    blk_t items[MAILBOX];
    int count;
} mailbox_t;
static mailbox_t box[THREADS];

static uint64_t rnd(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static size_t pick_size(uint64_t r) {
    unsigned cls = (unsigned)(r % 100);
    r >>= 8;
    if (cls < 60) return 1 + r % 128;     /* tiny */
    if (cls < 85) return 129 + r % 2048;  /* small */
    if (cls < 98) return 2048 + r % 65536; /* medium */
    if (cls < 99 || r % 8) return 65536 + r % (1 << 20); /* large */
    return (1 << 20) + r % (4 << 20);     /* huge (1 in 800), mapped on its own */
}

static void fill(unsigned char *p, size_t n, unsigned char pat) {
    if (n <= 4096) {
        memset(p, pat, n);
    } else { /* ends and a stripe every 4 KiB: cheap but catches overlaps */
        memset(p, pat, 256);
        memset(p + n - 256, pat, 256);
        for (size_t i = 256; i < n - 256; i += 4096) p[i] = pat;
    }
}
/* The first limit bytes of a block of size n filled by fill(): checks the filled ones. */
static int verify_prefix(const unsigned char *p, size_t limit, size_t n, unsigned char pat) {
    for (size_t i = 0; i < limit; i++) {
        int filled = n <= 4096 || i < 256 || i >= n - 256 || (i - 256) % 4096 == 0;
        if (filled && p[i] != pat) return 0;
    }
    return 1;
}
static int verify(const unsigned char *p, size_t n, unsigned char pat) {
    if (n <= 4096) {
        for (size_t i = 0; i < n; i++)
            if (p[i] != pat) return 0;
        return 1;
    }
    for (size_t i = 0; i < 256; i++)
        if (p[i] != pat || p[n - 256 + i] != pat) return 0;
    for (size_t i = 256; i < n - 256; i += 4096)
        if (p[i] != pat) return 0;
    return 1;
}

static void bad(int t, const char *what, size_t n) {
    if (errors++ < 20) fprintf(stderr, "FAIL thread %d: %s (size %zu)\n", t, what, n);
}

static void release(int t, blk_t *b) {
    if (!verify(b->p, b->n, b->pat)) bad(t, "content corrupted before free", b->n);
    if (free_sized_fn && (b->pat & 3) == 0)
        free_sized_fn(b->p, b->n);
    else
        free(b->p);
    b->p = NULL;
}

static void *thread_main(void *arg) {
    int t = (int)(uintptr_t)arg;
    uint64_t seed = 0xD1B54A32D192ED03ull * (uint64_t)(t + 1);
    blk_t *slot = calloc(SLOTS, sizeof *slot);
    for (int op = 0; op < OPS; op++) {
        uint64_t r = rnd(&seed);
        int i = (int)(r % SLOTS);
        blk_t *b = &slot[i];
        r = rnd(&seed);
        if (b->p) {
            unsigned what = (unsigned)(r % 10);
            if (what < 6) {
                release(t, b);
            } else if (what < 8) { /* realloc */
                size_t nn = pick_size(r >> 8);
                if (!verify(b->p, b->n, b->pat)) bad(t, "content corrupted before realloc", b->n);
                unsigned char *np = realloc(b->p, nn);
                if (!np) {
                    bad(t, "realloc returned NULL", nn);
                    continue;
                }
                size_t keep = nn < b->n ? nn : b->n;
                if (!(keep == b->n ? verify(np, keep, b->pat)
                                   : verify_prefix(np, keep, b->n, b->pat)))
                    bad(t, "realloc lost content", nn);
                b->p = np;
                b->n = nn;
                b->pat = (unsigned char)(t * 31 + i + nn);
                fill(b->p, b->n, b->pat);
            } else { /* hand it to the next thread */
                mailbox_t *m = &box[(t + 1) % THREADS];
                pthread_mutex_lock(&m->lock);
                if (m->count < MAILBOX) {
                    m->items[m->count++] = *b;
                    b->p = NULL;
                }
                pthread_mutex_unlock(&m->lock);
                if (b->p) release(t, b);
            }
        } else {
            size_t n = pick_size(r);
            unsigned kind = (unsigned)((r >> 40) % 16);
            unsigned char *p;
            size_t align = 16;
            if (kind == 0) {
                p = calloc(1, n);
                if (p)
                    for (size_t k = 0; k < n; k += (n > 4096 ? 512 : 1))
                        if (p[k]) {
                            bad(t, "calloc memory not zeroed", n);
                            break;
                        }
            } else if (kind == 1) {
                align = (size_t)64 << ((r >> 50) % 7); /* 64 .. 4096 */
                if (posix_memalign((void **)&p, align, n) != 0) p = NULL;
            } else if (kind == 2) {
                align = (size_t)32 << ((r >> 50) % 5);
                p = aligned_alloc(align, (n + align - 1) / align * align);
            } else {
                p = malloc(n);
            }
            if (!p) {
                bad(t, "allocation returned NULL", n);
                continue;
            }
            if ((uintptr_t)p % align) bad(t, "misaligned block", n);
            if ((op & 255) == 0 && owns && !owns(p)) bad(t, "block not owned by umalloc", n);
            b->p = p;
            b->n = n;
            b->pat = (unsigned char)(t * 31 + i + n);
            fill(p, n, b->pat);
        }
        if ((op & 63) == 0) { /* drain own mailbox: blocks from the previous thread */
            mailbox_t *m = &box[t];
            blk_t local[MAILBOX];
            int cnt;
            pthread_mutex_lock(&m->lock);
            cnt = m->count;
            memcpy(local, m->items, (size_t)cnt * sizeof *local);
            m->count = 0;
            pthread_mutex_unlock(&m->lock);
            for (int k = 0; k < cnt; k++) release(t, &local[k]);
            cross_freed += cnt;
        }
    }
    for (int i = 0; i < SLOTS; i++)
        if (slot[i].p) release(t, &slot[i]);
    free(slot);
    total_ops += OPS;
    return NULL;
}

int main(void) {
    owns = (int (*)(const void *))dlsym(RTLD_DEFAULT, "um_owns");
    if (!owns) {
        fprintf(stderr, "FAIL: dlsym(um_owns) = NULL: not running under libumalloc.so\n");
        return 2;
    }
    free_sized_fn = (void (*)(void *, size_t))dlsym(RTLD_DEFAULT, "free_sized");
    for (int i = 0; i < THREADS; i++) pthread_mutex_init(&box[i].lock, NULL);
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        if (pthread_create(&th[i], NULL, thread_main, (void *)(uintptr_t)i) != 0) {
            fprintf(stderr, "FAIL: pthread_create\n");
            return 1;
        }
    for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
    long left = 0;
    for (int i = 0; i < THREADS; i++) { /* leftovers in the mailboxes: freed by main */
        for (int k = 0; k < box[i].count; k++) release(-1, &box[i].items[k]);
        left += box[i].count;
    }
    printf("threads %d x ops %d = %ld ops, %ld blocks freed by another thread, %ld by main; "
           "free_sized %s\n",
           THREADS, OPS, (long)total_ops, (long)cross_freed, left,
           free_sized_fn ? "used" : "not exported");
    if (errors) {
        fprintf(stderr, "preload_threads: %ld errors\n", (long)errors);
        return 1;
    }
    printf("preload_threads: all checks passed\n");
    return 0;
}
