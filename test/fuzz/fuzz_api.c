/* libFuzzer harness for the whole um_* API (make fuzz; make test replays test/fuzz/corpus).
 *
 * The input is a program: each operation is one byte (which call) followed by the bytes it
 * decodes (slot, sizes, alignment), on a table of FZ_SLOTS blocks. Every call's result is checked
 * against the shadow model (shadow.h: contents, alignment, usable size) and against what
 * include/umalloc.h and docs/design.md ("Semantics") promise for errors: NULL with errno ENOMEM
 * for impossible sizes and overflowing products, EINVAL for bad alignments, posix_memalign's
 * return code with errno and *out untouched, free preserving errno, realloc(p, 0) freeing, a
 * failed realloc leaving the block intact. Sizes reach every range: tiny, the small, medium and
 * large classes, their thresholds, mapped blocks of a few MiB, and sizes near SIZE_MAX.
 *
 * Threads: a helper thread (one for the process) frees blocks the main thread hands it (remote
 * frees); an exiting thread allocates blocks, frees and reallocates some of the main thread's,
 * and exits with its blocks live, handing them back to the main thread, which frees them later;
 * um_thread_done gives the main thread's heap away with its blocks live.
 *
 * Left out on purpose: double frees, foreign pointers and free_sized with a wrong size. umalloc
 * reports those with a line on stderr and survives them (test/unit_errors.c tests that); here
 * they would only be noise, and a double free would make the model's "live" meaningless.
 *
 * At the end of each input everything is freed (nothing grows from one input to the next) and,
 * where the core has it, um_check_heap() must find the heap consistent. FUZZ_TRACE=1 prints
 * every operation (to see what a crash input does). */
#include <pthread.h>

#include "input.h"
#include "shadow.h"
#include "threads.h"

/* Which op each value of the op byte means: allocations and frees most often. */
static const uint8_t op_of_byte[32] = {
    FZ_OP_MALLOC, FZ_OP_MALLOC, FZ_OP_MALLOC, FZ_OP_MALLOC, FZ_OP_CALLOC, FZ_OP_REALLOC, FZ_OP_REALLOC,
    FZ_OP_REALLOCARRAY, FZ_OP_FREE, FZ_OP_FREE, FZ_OP_FREE, FZ_OP_FREE_SIZED, FZ_OP_FREE_ALIGNED_SIZED,
    FZ_OP_POSIX_MEMALIGN, FZ_OP_ALIGNED_ALLOC, FZ_OP_MEMALIGN, FZ_OP_VALLOC, FZ_OP_PVALLOC, FZ_OP_USABLE,
    FZ_OP_CHECK_ALL, FZ_OP_TRIM, FZ_OP_IMPOSSIBLE, FZ_OP_BAD_ALIGN, FZ_OP_REMOTE_FREE, FZ_OP_REMOTE_FREE,
    FZ_OP_THREAD_EXIT, FZ_OP_THREAD_DONE, FZ_OP_RUN_ALLOC, FZ_OP_RUN_ALLOC, FZ_OP_RUN_FREE, FZ_OP_FLUSH,
    FZ_OP_MALLOC};

#define FZ_SLOTS 256              /* a slot is one input byte */
#define FZ_LIVE_MAX (96 * FZ_MiB) /* requests that would take the live total over are skipped */
#define FZ_THREADS_MAX 6          /* thread_exit ops per input: a thread costs ~100 us under ASan */

static fz_block_t slots[FZ_SLOTS];
static size_t live_bytes;   /* sum of req over the slots */
static uint32_t seed_next;  /* a fresh seed for every block */
static unsigned threads_run;

static uint32_t new_seed(void) { return (uint32_t)fz_mix(++seed_next); }
static int fits(size_t req) { return live_bytes + req <= FZ_LIVE_MAX; }

/* ---- the slots ------------------------------------------------------------------------------- */
/* No live block may overlap a new one: caught here at once, even where patterns coincide. */
static void check_disjoint(const fz_block_t *b, unsigned except)
{
    for (unsigned i = 0; i < FZ_SLOTS; i++) {
        const fz_block_t *o = &slots[i];
        if (i == except || o->p == NULL)
            continue;
        if (b->p < o->p + o->usable && o->p < b->p + b->usable)
            fz_fail("%s gave %p (+%zu), overlapping the live block %p (+%zu) of slot %u (made by %s)",
                    fz_op_names[b->how], (void *)b->p, b->usable, (void *)o->p, o->usable, i, fz_op_names[o->how]);
    }
}

static void put(unsigned s, void *p, size_t req, size_t align, int plain, int zeroed, unsigned how)
{
    fz_adopt(&slots[s], p, req, align, plain, zeroed, new_seed(), how);
    check_disjoint(&slots[s], s);
    live_bytes += req;
}

static void clear(unsigned s)
{
    live_bytes -= slots[s].req;
    slots[s].p = NULL;
}

static void free_slot(unsigned s, unsigned mode, unsigned v)
{
    if (slots[s].p == NULL) { /* free(NULL): nothing, and errno as it was */
        int e = (int)(0x5a5a00 + (v & 0xff));
        errno = e;
        if (mode % 2)
            um_free_sized(NULL, v);
        else
            um_free(NULL);
        if (errno != e)
            fz_fail("freeing NULL changed errno from %d to %d", e, errno);
        return;
    }
    free_block(&slots[s], mode, v, fz_op_names[FZ_OP_FREE]);
    clear(s);
}

/* A call that must fail: NULL and errno `want`. */
static void expect_null(void *p, int want, const char *call, size_t a, size_t b)
{
    if (p != NULL)
        fz_fail("%s(%#zx, %#zx) = %p, want NULL (errno %d)", call, a, b, p, want);
    if (errno != want)
        fz_fail("%s(%#zx, %#zx) failed with errno %d, want %d", call, a, b, errno, want);
}

/* ---- the operations ----------------------------------------------------------------------------- */
static int is_pow2(size_t a) { return a != 0 && (a & (a - 1)) == 0; }

static void op_alloc(fz_in_t *in, unsigned op)
{
    unsigned s = in8(in);
    size_t n = in_size(in), a = 0, req = n;
    void *p;
    free_slot(s, 0, 0);
    if (!fits(n))
        return;
    switch (op) {
    case FZ_OP_MALLOC: p = um_malloc(n); break;
    case FZ_OP_CALLOC: {
        static const size_t unit[8] = {1, 2, 3, 8, 16, 24, 100, 4096};
        unsigned k = in8(in);
        size_t m = unit[k % 8], c = n / m;
        req = c * m;
        p = k & 8 ? um_calloc(m, c) : um_calloc(c, m);
        break;
    }
    case FZ_OP_POSIX_MEMALIGN: {
        a = in_align(in);
        void *out = &slots[s]; /* a sentinel: must stay as it is when the call fails */
        int e = 0x5a5a11;
        errno = e;
        int r = um_posix_memalign(&out, a, n);
        fz_note(op, s, 0, n, a, out);
        if (a < sizeof(void *)) { /* not a multiple of sizeof(void *) */
            if (r != EINVAL || out != &slots[s] || errno != e)
                fz_fail("um_posix_memalign(align %zu, %zu) = %d, errno %d, *out %p: want EINVAL, errno and *out "
                        "untouched", a, n, r, errno, out);
            return;
        }
        if (r != 0)
            fz_fail("um_posix_memalign(align %zu, %zu) returned %d", a, n, r);
        put(s, out, n, a, 0, 0, op);
        return;
    }
    case FZ_OP_ALIGNED_ALLOC: a = in_align(in); p = um_aligned_alloc(a, n); break;
    case FZ_OP_MEMALIGN: { /* any alignment: glibc rounds it up to a power of two */
        unsigned k = in8(in);
        a = k & 1 ? in_align(in) : in16(in) * (size_t)(1 + k / 4);
        p = um_memalign(a, n);
        size_t pow = 1;
        while (pow < a)
            pow <<= 1;
        a = pow;
        break;
    }
    case FZ_OP_VALLOC: a = 4096; p = um_valloc(n); break;
    default: /* pvalloc: the size rounded up to a page; 0 gives one */
        a = 4096;
        req = n == 0 ? 4096 : (n + 4095) & ~(size_t)4095;
        p = um_pvalloc(n);
    }
    fz_note(op, s, 0, n, a, p);
    put(s, p, req, a, op == FZ_OP_MALLOC || op == FZ_OP_CALLOC, op == FZ_OP_CALLOC, op);
}

/* realloc and reallocarray of a slot: to 0 (frees), from NULL (allocates), or to a new size
 * (keeps the bytes below the smaller of the old usable size and the new size). */
static void op_realloc(fz_in_t *in, unsigned op)
{
    static const size_t unit[4] = {1, 2, 24, 4096};
    unsigned s = in8(in), k = in8(in);
    size_t n = k % 8 == 0 ? 0 : in_size(in), m = unit[k / 8 % 4], c = n / m;
    if (op == FZ_OP_REALLOCARRAY)
        n = c * m;
    fz_block_t old = slots[s];
    if (old.p != NULL && !fits(n > old.req ? n - old.req : 0))
        return;
    int e = 0x5a5a22;
    errno = e;
    void *q = op == FZ_OP_REALLOC ? um_realloc(old.p, n) : um_reallocarray(old.p, c, m);
    fz_note(op, s, 0, n, old.req, q);
    if (old.p == NULL) { /* realloc(NULL, n) is malloc(n) */
        put(s, q, n, 0, 1, 0, op);
        return;
    }
    if (n == 0) {
        if (q != NULL || errno != e)
            fz_fail("%s(%p, 0) = %p, errno %d: want NULL (the block freed), errno untouched", fz_op_names[op],
                    (void *)old.p, q, errno);
        clear(s);
        return;
    }
    if (q == NULL)
        fz_fail("%s(%p, %zu) returned NULL (errno %d)", fz_op_names[op], (void *)old.p, n, errno);
    if (n <= old.usable && n >= old.usable / 2 && q != old.p) /* docs/design.md, "Semantics" */
        fz_fail("%s(%p, %zu) of a block of %zu usable bytes moved it to %p: shrinking to half or more "
                "keeps the pointer", fz_op_names[op], (void *)old.p, n, old.usable, q);
    check_kept(&old, q, n, fz_op_names[op]);
    live_bytes -= old.req;
    slots[s].p = NULL;
    fz_adopt(&slots[s], q, n, 0, 0, 0, old.seed, op);
    check_disjoint(&slots[s], s);
    live_bytes += n;
}

/* Every call that must fail for its size: NULL (or ENOMEM returned) with errno ENOMEM, and a
 * block given to realloc left as it was. */
static void op_impossible(fz_in_t *in)
{
    unsigned s = in8(in), k = in8(in);
    size_t n = in_impossible(in), a = in_align(in);
    fz_note(FZ_OP_IMPOSSIBLE, s, 0, n, k % 8, slots[s].p);
    errno = 0;
    switch (k % 8) {
    case 0: expect_null(um_malloc(n), ENOMEM, "um_malloc", n, 0); break;
    case 1: expect_null(um_calloc(1, n), ENOMEM, "um_calloc", 1, n); break;
    case 2: { /* count * size overflows, or its product is beyond any address space */
        size_t c = (size_t)1 << (31 + k / 8 % 33), m = n >> (k / 8 % 40);
        m = m < 4 ? 4 : m;
        expect_null(um_calloc(c, m), ENOMEM, "um_calloc", c, m);
        break;
    }
    case 3: case 4: {
        void *q = k % 8 == 3 ? um_realloc(slots[s].p, n) : um_reallocarray(slots[s].p, n / 3 + 2, 3);
        expect_null(q, ENOMEM, k % 8 == 3 ? "um_realloc" : "um_reallocarray", (size_t)slots[s].p, n);
        if (slots[s].p != NULL) {
            fz_verify(&slots[s], slots[s].usable, "a block after a failed realloc");
            if (um_owns(slots[s].p) != 1)
                fz_fail("a failed realloc freed %p", (void *)slots[s].p);
        }
        break;
    }
    case 5: {
        void *out = &slots[s];
        int e = 0x5a5a33;
        errno = e;
        int r = um_posix_memalign(&out, a < 8 ? 8 : a, n);
        if (r != ENOMEM || out != &slots[s] || errno != e)
            fz_fail("um_posix_memalign(align %zu, %#zx) = %d, errno %d, *out %p: want ENOMEM, errno and *out "
                    "untouched", a, n, r, errno, out);
        break;
    }
    case 6:
        expect_null(um_aligned_alloc(a, n), ENOMEM, "um_aligned_alloc", a, n);
        errno = 0;
        expect_null(um_memalign(a, n), ENOMEM, "um_memalign", a, n);
        break;
    default:
        expect_null(um_valloc(n), ENOMEM, "um_valloc", n, 0);
        errno = 0;
        expect_null(um_pvalloc(n), ENOMEM, "um_pvalloc", n, 0);
    }
}

/* Alignments that are not powers of two, not multiples of sizeof(void *), or too big: EINVAL or
 * ENOMEM as glibc gives them (docs/design.md), and memalign rounding up what it can. */
static void op_bad_align(fz_in_t *in)
{
    unsigned k = in8(in), v = in16(in);
    size_t a, n = in_size(in);
    switch (k % 6) {
    case 0: a = 0; break;
    case 1: a = v; while (is_pow2(a)) a += 3; break;
    case 2: a = SIZE_MAX - v; break;
    case 3: a = ((size_t)1 << 63) + 1 + v; break;
    case 4: a = (size_t)1 << (k / 6 % 3); break;   /* 1, 2, 4: powers of two under sizeof(void *) */
    default: a = (size_t)1 << (60 + k / 6 % 4); /* powers of two no mapping can be aligned to */
    }
    fz_note(FZ_OP_BAD_ALIGN, 0, 0, a, n, NULL);
    int huge = is_pow2(a) && a >= ((size_t)1 << 60);
    void *out = &slots[0];
    int e = 0x5a5a44;
    errno = e;
    int r = um_posix_memalign(&out, a, n), want = huge ? ENOMEM : EINVAL;
    if (r != want || out != &slots[0] || errno != e)
        fz_fail("um_posix_memalign(align %#zx, %zu) = %d, errno %d, *out %p: want %d, errno and *out untouched", a,
                n, r, errno, out, want);
    if (!fits(n))
        return;
    fz_block_t tmp;
    errno = 0;
    void *p = um_aligned_alloc(a, n);
    if (is_pow2(a) && !huge) { /* 1, 2, 4: fine for aligned_alloc */
        fz_adopt(&tmp, p, n, a, 0, 0, new_seed(), FZ_OP_ALIGNED_ALLOC);
        free_block(&tmp, v, v, "aligned_alloc with a small alignment");
    } else {
        expect_null(p, huge ? ENOMEM : EINVAL, "um_aligned_alloc", a, n);
    }
    errno = 0;
    p = um_memalign(a, n);
    if (!is_pow2(a) && a > ((size_t)1 << 62)) {
        expect_null(p, EINVAL, "um_memalign", a, n);
    } else if (huge || a > ((size_t)1 << 59)) { /* rounded up to a power of two too big to map */
        expect_null(p, ENOMEM, "um_memalign", a, n);
    } else {
        size_t pow = 1;
        while (pow < a)
            pow <<= 1;
        fz_adopt(&tmp, p, n, pow, 0, 0, new_seed(), FZ_OP_MEMALIGN);
        free_block(&tmp, v, v, "memalign with a rounded alignment");
    }
}

/* The block's usable size has not changed, and it is all writable: the tail is written again. */
static void op_usable(fz_in_t *in)
{
    unsigned s = in8(in);
    fz_block_t *b = &slots[s];
    fz_note(FZ_OP_USABLE, s, 0, b->req, b->usable, b->p);
    if (um_malloc_usable_size(NULL) != 0 || um_owns(NULL) != 0)
        fz_fail("um_malloc_usable_size(NULL) = %zu, um_owns(NULL) = %d: want 0, 0", um_malloc_usable_size(NULL),
                um_owns(NULL));
    if (b->p == NULL)
        return;
    fz_verify(b, b->usable, "usable_size");
    if (um_owns(b->p) != 1)
        fz_fail("um_owns(%p) = %d for a live block (made by %s)", (void *)b->p, um_owns(b->p), fz_op_names[b->how]);
    size_t from = b->usable > 64 ? b->usable - 64 : 0;
    fz_span(b->p, b->seed, from, b->usable, FZ_WRITE);
}

static void check_all(const char *what)
{
    for (unsigned i = 0; i < FZ_SLOTS; i++)
        if (slots[i].p != NULL)
            fz_verify(&slots[i], slots[i].usable, what);
}

static void op_remote_free(fz_in_t *in)
{
    unsigned s = in8(in), mode = in8(in);
    if (slots[s].p == NULL)
        return;
    fz_note(FZ_OP_REMOTE_FREE, s, 0, slots[s].req, mode, slots[s].p);
    fz_verify(&slots[s], slots[s].usable, "remote free (handing over)");
    helper_push(&slots[s], mode, mode >> 2);
    clear(s);
}

/* A thread that frees and reallocates some of the main thread's blocks, allocates its own, and
 * exits with them live; the main thread takes them into slots. */
static void op_thread_exit(fz_in_t *in)
{
    static fz_exit_plan_t pl;
    memset(&pl, 0, sizeof pl);
    unsigned k = in8(in);
    pl.n = 1 + k % FZ_EXIT_BLOCKS;
    pl.done_first = k / FZ_EXIT_BLOCKS % 2;
    pl.late = k / FZ_EXIT_BLOCKS / 2 % 2;
    size_t total = 0;
    for (unsigned i = 0; i < pl.n; i++) {
        pl.size[i] = in_size(in);
        pl.kind[i] = (uint8_t)in8(in);
        pl.target[i] = (uint8_t)in8(in);
        total += pl.size[i];
    }
    unsigned nf = in8(in) % 5, fs[4], g;
    for (unsigned i = 0; i < nf; i++)
        fs[i] = in8(in);
    g = in8(in);
    size_t grow = in_size(in) + 1;
    if (threads_run >= FZ_THREADS_MAX || !fits(total + grow))
        return;
    threads_run++;
    for (unsigned i = 0; i < nf; i++) {
        if (slots[fs[i]].p != NULL) {
            pl.to_free[pl.n_free++] = slots[fs[i]];
            clear(fs[i]);
        }
    }
    if (slots[g].p != NULL) {
        pl.to_grow = slots[g];
        pl.grow_to = grow;
        clear(g);
    }
    fz_note(FZ_OP_THREAD_EXIT, g, 0, pl.n, pl.n_free, NULL);
    pthread_t t;
    if (pthread_create(&t, NULL, exiting_main, &pl) != 0 || pthread_join(t, NULL) != 0)
        fz_fail("cannot run a thread");
    for (unsigned i = 0; i < pl.n_out; i++) { /* the blocks it left: where the plan says */
        unsigned s = pl.to_grow.p != NULL && i == 0 ? g : pl.target[(i - (pl.to_grow.p != NULL)) % FZ_EXIT_BLOCKS];
        free_slot(s, i, i);
        slots[s] = pl.out[i];
        check_disjoint(&slots[s], s);
        live_bytes += slots[s].req;
    }
}

/* k blocks of one size in consecutive slots: enough of a class to fill pages and empty them. */
static void op_run_alloc(fz_in_t *in)
{
    unsigned s = in8(in), k = 1 + in8(in) % 64, how = in8(in) % 3;
    size_t n = in_size(in);
    if (n > 64 * FZ_KiB && k > 4)
        k = 4;
    fz_note(FZ_OP_RUN_ALLOC, s, 0, n, k, NULL);
    for (unsigned i = 0; i < k; i++) {
        unsigned t = (s + i) % FZ_SLOTS;
        free_slot(t, 0, 0);
        if (!fits(n))
            return;
        if (how == 0)
            put(t, um_malloc(n), n, 0, 1, 0, FZ_OP_MALLOC);
        else if (how == 1)
            put(t, um_calloc(n, 1), n, 0, 1, 1, FZ_OP_CALLOC);
        else
            put(t, um_aligned_alloc(64, n), n, 64, 0, 0, FZ_OP_ALIGNED_ALLOC);
    }
}

/* Free k consecutive slots: forwards, backwards, odd ones then even ones, or by the helper. */
static void op_run_free(fz_in_t *in)
{
    unsigned s = in8(in), k = 1 + in8(in) % 64, order = in8(in);
    fz_note(FZ_OP_RUN_FREE, s, 0, k, order % 4, NULL);
    for (unsigned i = 0; i < k; i++) {
        unsigned j = order % 4 == 1 ? k - 1 - i : order % 4 != 2 ? i : i < k / 2 ? 2 * i + 1 : 2 * (i - k / 2);
        unsigned t = (s + j) % FZ_SLOTS;
        if (order % 4 == 3 && slots[t].p != NULL) {
            helper_push(&slots[t], order / 4, i);
            clear(t);
        } else {
            free_slot(t, order / 4, i);
        }
    }
}

static void end_of_input(void)
{
    helper_flush();
    for (unsigned i = 0; i < FZ_SLOTS; i++)
        free_slot(i, i, i);
    if (um_check_heap() != 0) /* quiet: every thread of the input has been joined */
        fz_fail("um_check_heap() found the heap inconsistent after freeing everything");
    live_bytes = 0;
    last_size = 0;
    threads_run = 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_table_init();
    const char *t = getenv("FUZZ_TRACE");
    fz_trace_verbose = t != NULL && *t == '1';
    fz_threads_init();
    pthread_t h;
    if (pthread_create(&h, NULL, helper_main, NULL) != 0)
        fz_fail("cannot start the helper thread");
    pthread_detach(h);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in_t in = {data, size, 0};
    while (in.i < in.n) {
        unsigned op = op_of_byte[in8(&in) % 32];
        switch (op) {
        case FZ_OP_MALLOC: case FZ_OP_CALLOC: case FZ_OP_POSIX_MEMALIGN: case FZ_OP_ALIGNED_ALLOC:
        case FZ_OP_MEMALIGN: case FZ_OP_VALLOC: case FZ_OP_PVALLOC:
            op_alloc(&in, op);
            break;
        case FZ_OP_REALLOC: case FZ_OP_REALLOCARRAY: op_realloc(&in, op); break;
        case FZ_OP_FREE: case FZ_OP_FREE_SIZED: case FZ_OP_FREE_ALIGNED_SIZED: {
            unsigned s = in8(&in), v = in8(&in);
            fz_note(op, s, 0, slots[s].req, v, slots[s].p);
            free_slot(s, op - FZ_OP_FREE + (op == FZ_OP_FREE ? 3 * (v % 2) : 0), v);
            break;
        }
        case FZ_OP_USABLE: op_usable(&in); break;
        case FZ_OP_CHECK_ALL: fz_note(op, 0, 0, 0, 0, NULL); check_all("check_all"); break;
        case FZ_OP_TRIM: {
            size_t pad = (size_t)in8(&in) << 12;
            int r = um_trim(pad);
            fz_note(op, 0, 0, pad, (size_t)r, NULL);
            if (r != 0 && r != 1)
                fz_fail("um_trim(%zu) returned %d, want 0 or 1", pad, r);
            check_all("after um_trim");
            break;
        }
        case FZ_OP_IMPOSSIBLE: op_impossible(&in); break;
        case FZ_OP_BAD_ALIGN: op_bad_align(&in); break;
        case FZ_OP_REMOTE_FREE: op_remote_free(&in); break;
        case FZ_OP_THREAD_EXIT: op_thread_exit(&in); break;
        case FZ_OP_THREAD_DONE: fz_note(op, 0, 0, 0, 0, NULL); um_thread_done(); break;
        case FZ_OP_RUN_ALLOC: op_run_alloc(&in); break;
        case FZ_OP_RUN_FREE: op_run_free(&in); break;
        default: fz_note(op, 0, 0, 0, 0, NULL); helper_flush(); break;
        }
    }
    end_of_input();
    return 0;
}
