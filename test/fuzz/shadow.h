/* The shadow model of test/fuzz/fuzz_api.c: what each live block must hold, and the checks.
 *
 * Every live block owns a seed. Byte i of the block must be pat(seed, i): a byte of a random
 * table, at an offset that depends on the seed and on which 64 KiB of the block i falls in, so
 * a block that is lost, shifted, handed out twice, or has pages swapped (mremap) reads wrong.
 * The harness writes the pattern over the whole usable size (um_malloc_usable_size promises all
 * of it is writable), so writing past the true end corrupts a neighbour and its next check
 * fails. Blocks up to FZ_FULL_MAX are written and checked whole; bigger ones (medium, large,
 * huge: up to several MiB) on their first and last FZ_EDGE bytes and FZ_STAMP bytes in every
 * 4 KiB or 64 KiB (see fz_visit), at a fraction of the cost.
 *
 * A failed check prints what failed and the last operations (the trace), then aborts, which
 * libFuzzer reports as a crash and saves the input for. Included once, by fuzz_api.c. */
#ifndef FUZZ_SHADOW_H
#define FUZZ_SHADOW_H

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "umalloc.h"

#define FZ_KiB ((size_t)1024)
#define FZ_MiB ((size_t)1024 * 1024)
#define FZ_FULL_MAX (16 * FZ_KiB)
#define FZ_EDGE ((size_t)4096)
#define FZ_STAMP ((size_t)32)
#define FZ_CHUNK ((size_t)65536) /* the pattern table's period */

/* The operations of an input, by name in the trace and in messages. */
enum {
    FZ_OP_MALLOC, FZ_OP_CALLOC, FZ_OP_REALLOC, FZ_OP_REALLOCARRAY, FZ_OP_FREE, FZ_OP_FREE_SIZED,
    FZ_OP_FREE_ALIGNED_SIZED, FZ_OP_POSIX_MEMALIGN, FZ_OP_ALIGNED_ALLOC, FZ_OP_MEMALIGN, FZ_OP_VALLOC,
    FZ_OP_PVALLOC, FZ_OP_USABLE, FZ_OP_CHECK_ALL, FZ_OP_TRIM, FZ_OP_IMPOSSIBLE, FZ_OP_BAD_ALIGN,
    FZ_OP_REMOTE_FREE, FZ_OP_THREAD_EXIT, FZ_OP_THREAD_DONE, FZ_OP_RUN_ALLOC, FZ_OP_RUN_FREE,
    FZ_OP_FLUSH, FZ_OP_COUNT
};
static const char *const fz_op_names[FZ_OP_COUNT] = {
    "malloc", "calloc", "realloc", "reallocarray", "free", "free_sized", "free_aligned_sz",
    "posix_memalign", "aligned_alloc", "memalign", "valloc", "pvalloc", "usable_size", "check_all",
    "trim", "impossible", "bad_alignment", "remote_free", "thread_exit", "thread_done", "run_alloc",
    "run_free", "flush"};
typedef struct {
    unsigned char *p; /* NULL: the slot is empty */
    size_t req;       /* bytes asked for */
    size_t usable;    /* um_malloc_usable_size(p) when it was made: all of it holds the pattern */
    size_t align;     /* alignment asked for (0: none), for um_free_aligned_sized */
    uint32_t seed;
    uint8_t how;      /* the op that made it (FZ_OP_*), for messages */
} fz_block_t;

/* ---- the trace: the last operations, printed with a failure -------------------------------- */
typedef struct {
    uint8_t op;
    uint8_t slot;
    uint8_t thread; /* 0 main, 1 helper, 2 exiting thread */
    size_t a, b;    /* the op's sizes or alignment, as decoded */
    const void *p;
} fz_trace_t;
#define FZ_TRACE 32
static fz_trace_t fz_trace_ring[FZ_TRACE];
static _Atomic unsigned fz_trace_n;
static int fz_trace_verbose;           /* FUZZ_TRACE=1: every op on stderr as it runs */

static void fz_note(unsigned op, unsigned slot, unsigned thread, size_t a, size_t b, const void *p)
{
    unsigned i = atomic_fetch_add_explicit(&fz_trace_n, 1, memory_order_relaxed) % FZ_TRACE;
    fz_trace_ring[i] = (fz_trace_t){(uint8_t)op, (uint8_t)slot, (uint8_t)thread, a, b, p};
    if (fz_trace_verbose)
        fprintf(stderr, "fuzz_api: t%u %-14s slot %3u a=%#zx b=%#zx p=%p\n", thread, fz_op_names[op], slot, a, b,
                p);
}

/* The failure: one message, the trace, and abort() so that libFuzzer keeps the input. Called from
 * any thread; the first to fail reports. */
__attribute__((noreturn, format(printf, 1, 2))) static void fz_fail(const char *fmt, ...)
{
    static atomic_flag once = ATOMIC_FLAG_INIT;
    if (atomic_flag_test_and_set(&once))
        for (;;)
            pause();
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "\nfuzz_api: FAIL: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    unsigned n = atomic_load(&fz_trace_n);
    fprintf(stderr, "\nfuzz_api: the last %u operations (t0 main, t1 helper, t2 exiting thread):\n",
            n < FZ_TRACE ? n : FZ_TRACE);
    for (unsigned k = n > FZ_TRACE ? n - FZ_TRACE : 0; k < n; k++) {
        const fz_trace_t *t = &fz_trace_ring[k % FZ_TRACE];
        fprintf(stderr, "  #%u t%u %-14s slot %3u a=%#zx b=%#zx p=%p\n", k, t->thread, fz_op_names[t->op],
                t->slot, t->a, t->b, t->p);
    }
    fflush(stderr);
    abort();
}

/* ---- the pattern ---------------------------------------------------------------------------- */
static uint8_t fz_table[2 * FZ_CHUNK]; /* doubled: a run of up to FZ_CHUNK bytes never wraps */
static const uint8_t fz_zeros[FZ_CHUNK];

static uint64_t fz_mix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

static void fz_table_init(void)
{
    for (size_t i = 0; i < FZ_CHUNK; i += 8) {
        uint64_t v = fz_mix(i);
        memcpy(&fz_table[i], &v, 8);
    }
    memcpy(fz_table + FZ_CHUNK, fz_table, FZ_CHUNK);
}

/* Where in the table the 64 KiB chunk k of a block with this seed starts. */
static size_t fz_chunk_origin(uint32_t seed, size_t k)
{
    return (size_t)(fz_mix(((uint64_t)seed << 32) ^ k) % FZ_CHUNK);
}

enum { FZ_WRITE, FZ_CHECK, FZ_ZERO };

/* Byte range [a, b) of block p: write the pattern, check it, or check that it is zero.
 * Returns the first offset that differs, or -1. */
static long fz_span(unsigned char *p, uint32_t seed, size_t a, size_t b, int mode)
{
    while (a < b) {
        size_t in = a % FZ_CHUNK, n = FZ_CHUNK - in;
        if (n > b - a)
            n = b - a;
        const uint8_t *want = mode == FZ_ZERO ? fz_zeros : fz_table + fz_chunk_origin(seed, a / FZ_CHUNK) + in;
        if (mode == FZ_WRITE)
            memcpy(p + a, want, n);
        else if (memcmp(p + a, want, n) != 0)
            for (size_t i = 0; i < n; i++)
                if (p[a + i] != want[i])
                    return (long)(a + i);
        a += n;
    }
    return -1;
}

/* The bytes of a block of `usable` bytes that hold the pattern (see the top), those below
 * `limit` only: write, check or check zero. Returns the first offset that differs, or -1. */
static long fz_visit(unsigned char *p, uint32_t seed, size_t usable, size_t limit, int mode)
{
    if (limit > usable)
        limit = usable;
    if (usable <= FZ_FULL_MAX)
        return fz_span(p, seed, 0, limit, mode);
    long r = fz_span(p, seed, 0, limit < FZ_EDGE ? limit : FZ_EDGE, mode);
    /* A stamp in every 4 KiB page for a quarter of the blocks, every 64 KiB for the others:
     * touching each page of every block of MiBs (faulting it in) halved the executions per
     * second, and a bug that loses or moves pages does so in any block, stamped densely or not. */
    size_t tail = usable - FZ_EDGE, in_page = (seed >> 4) % (4096 / FZ_STAMP) * FZ_STAMP;
    size_t stride = seed % 4 == 0 ? 4096 : FZ_CHUNK;
    for (size_t o = FZ_EDGE + in_page; r < 0 && o + FZ_STAMP <= tail && o < limit; o += stride)
        r = fz_span(p, seed, o, o + FZ_STAMP < limit ? o + FZ_STAMP : limit, mode);
    if (r < 0 && tail < limit)
        r = fz_span(p, seed, tail, limit, mode);
    return r;
}

static void fz_block_fail(const fz_block_t *b, const char *what, long off, int mode)
{
    fz_fail("%s: block %p (made by %s, asked %zu, usable %zu, align %zu, seed %#x): byte %ld is %#x, want %#x",
            what, (void *)b->p, fz_op_names[b->how], b->req, b->usable, b->align, b->seed, off, b->p[off],
            mode == FZ_ZERO ? 0 : fz_table[fz_chunk_origin(b->seed, (size_t)off / FZ_CHUNK) + (size_t)off % FZ_CHUNK]);
}

/* The block still holds its pattern (below limit), and um_malloc_usable_size has not changed. */
static void fz_verify(const fz_block_t *b, size_t limit, const char *what)
{
    long off = fz_visit(b->p, b->seed, b->usable, limit, FZ_CHECK);
    if (off >= 0)
        fz_block_fail(b, what, off, FZ_CHECK);
    size_t us = um_malloc_usable_size(b->p);
    if (us != b->usable)
        fz_fail("%s: um_malloc_usable_size(%p) = %zu, was %zu when made (asked %zu by %s)", what, (void *)b->p, us,
                b->usable, b->req, fz_op_names[b->how]);
}

/* A block just handed out: aligned (16, or the alignment asked for), usable size at least what
 * was asked and, for plain requests below 512 KiB, within the size-class bound (test/unit_semantics.c:
 * 1/8 over up to 4 KiB, 1/4 above, + 16), owned, and zero if it came from calloc. Then the
 * pattern goes over all of its usable bytes (after a realloc, the caller has checked the bytes
 * that were kept: writing them again changes nothing, and a block that was checked sparsely and
 * is now small enough to be checked whole needs the bytes between the stamps written). */
static void fz_adopt(fz_block_t *b, void *p, size_t req, size_t align, int plain, int zeroed, uint32_t seed,
                     unsigned how)
{
    const char *name = fz_op_names[how];
    if (p == NULL)
        fz_fail("%s(%zu, align %zu) returned NULL (errno %d) for a size that must succeed", name, req, align, errno);
    size_t want = align > 16 ? align : 16;
    if ((uintptr_t)p % want != 0)
        fz_fail("%s(%zu, align %zu) = %p: not %zu-aligned", name, req, align, p, want);
    size_t us = um_malloc_usable_size(p);
    if (us < req)
        fz_fail("%s(%zu, align %zu) = %p: um_malloc_usable_size %zu < %zu asked", name, req, align, p, us, req);
    /* 8 classes a doubling up to 4 KiB, 4 above; but a class's first blocks in a heap may be
     * borrowed from a larger class (umi_bin_may_lend): at most a quarter more at any size */
    if (plain && req <= 512 * FZ_KiB && us > req + req / 4 + 16)
        fz_fail("%s(%zu) = %p: usable size %zu wastes more than the size classes allow", name, req, p, us);
    if (us < 16) /* malloc(0) included: "a unique pointer to a 16-byte block" */
        fz_fail("%s(%zu, align %zu) = %p: usable size %zu, under 16", name, req, align, p, us);
    if (um_owns(p) != 1)
        fz_fail("%s(%zu, align %zu) = %p: um_owns says it is not a live block", name, req, align, p);
    *b = (fz_block_t){p, req, us, align, seed, (uint8_t)how};
    if (zeroed) {
        long off = fz_visit(b->p, seed, us, req, FZ_ZERO);
        if (off >= 0)
            fz_block_fail(b, "calloc memory not zero", off, FZ_ZERO);
    }
    fz_visit(b->p, seed, us, us, FZ_WRITE);
}

/* After a realloc of old to q with n bytes: the bytes below the old usable size and n are kept. */
static void check_kept(const fz_block_t *old, void *q, size_t n, const char *what)
{
    fz_block_t nb = *old;
    nb.p = q;
    long off = fz_visit(nb.p, nb.seed, nb.usable, n, FZ_CHECK);
    if (off >= 0)
        fz_block_fail(&nb, what, off, FZ_CHECK);
}

/* Free b in one of the ways the API has (mode), checking that errno survives. */
static void free_block(const fz_block_t *b, unsigned mode, unsigned v, const char *who)
{
    fz_verify(b, b->usable, who);
    int e = (int)(0x5a5a00 + (v & 0xff));
    errno = e;
    switch (mode % 4) {
    case 0: um_free(b->p); break;
    case 1: um_free_sized(b->p, b->req + v % (b->usable - b->req + 1)); break; /* any size up to usable */
    case 2:
        if (b->align) { um_free_aligned_sized(b->p, b->align, b->req); break; }
        um_free_sized(b->p, b->req);
        break;
    default:
        if (um_realloc(b->p, 0) != NULL) /* glibc's realloc(p, 0): frees, returns NULL */
            fz_fail("%s: um_realloc(%p, 0) did not return NULL", who, (void *)b->p);
    }
    if (errno != e)
        fz_fail("%s: freeing %p (mode %u) changed errno from %d to %d", who, (void *)b->p, mode % 4, e, errno);
}

#endif /* FUZZ_SHADOW_H */
