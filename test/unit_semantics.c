/* Basic malloc-family semantics (glibc-compatible): alignment, malloc(0), usable size and
 * internal waste, free(NULL) and errno, calloc zeroing (also of reused dirty memory),
 * free_sized, um_owns, um_trim and um_get_totals. Realloc lives in unit_realloc.c, aligned
 * allocation in unit_align.c, failures and bad input in unit_errors.c. */
#include <criterion/criterion.h>
#include <malloc.h>

#include "core/internal.h"
#include "test_util.h"

static char static_buffer[256];

/* Sizes from 0 up: every size to 2 KiB, then growing by ~1/8 with odd offsets to 512 KiB. */
static size_t small_medium_sizes(size_t *out, size_t cap)
{
    size_t n = 0;
    for (size_t s = 0; s <= 2048 && n < cap; s++)
        out[n++] = s;
    for (size_t s = 2049; s <= 512 * TU_KiB && n + 3 <= cap; s += s / 8 + 7) {
        out[n++] = s;
        out[n++] = tu_round_up(s, 4096) - 1;
        out[n++] = tu_round_up(s, 4096);
    }
    if (n < cap)
        out[n++] = 512 * TU_KiB;
    return n;
}

Test(semantics, malloc_zero_is_unique_and_freeable)
{
    void *a = um_malloc(0);
    void *b = um_malloc(0);
    cr_assert_not_null(a, "um_malloc(0) returned NULL");
    cr_assert_not_null(b, "second um_malloc(0) returned NULL");
    cr_assert(a != b, "two um_malloc(0) returned the same pointer %p", a);
    cr_assert(tu_is_aligned(a, 16) && tu_is_aligned(b, 16), "um_malloc(0) not 16-aligned: %p %p", a, b);
    cr_assert_eq(um_owns(a), 1, "um_owns(um_malloc(0)) != 1");

    enum { N = 1000 };
    tu_block_t blk[N];
    for (size_t i = 0; i < N; i++) {
        blk[i].p = um_malloc(0);
        blk[i].size = 0;
        cr_assert_not_null(blk[i].p, "um_malloc(0) #%zu returned NULL", i);
    }
    long ov = tu_find_overlap(blk, N);
    cr_assert_eq(ov, -1, "um_malloc(0) returned a duplicate pointer %p", ov >= 0 ? blk[ov].p : NULL);
    for (size_t i = 0; i < N; i++)
        um_free(blk[i].p);
    um_free(a);
    um_free(b);
}

Test(semantics, every_result_is_16_aligned_and_disjoint)
{
    static size_t sizes[4096];
    size_t n = small_medium_sizes(sizes, 4096);
    const size_t big[] = {512 * TU_KiB + 1, TU_MiB - 1, TU_MiB, TU_MiB + 1, 3 * TU_MiB + 5, 16 * TU_MiB + 1, 64 * TU_MiB - 3};
    size_t total = n + sizeof big / sizeof big[0];
    tu_block_t *blk = calloc(total, sizeof *blk);
    cr_assert_not_null(blk);

    for (size_t i = 0; i < total; i++) {
        size_t req = i < n ? sizes[i] : big[i - n];
        void *p = um_malloc(req);
        cr_assert_not_null(p, "um_malloc(%zu) returned NULL", req);
        cr_assert(tu_is_aligned(p, 16), "um_malloc(%zu) = %p is not 16-byte aligned", req, p);
        size_t us = um_malloc_usable_size(p);
        cr_assert_geq(us, req, "um_malloc_usable_size(um_malloc(%zu)) = %zu < request", req, us);
        blk[i].p = p;
        blk[i].size = us;
        tu_fill(p, us, tu_seed(p, us)); /* every usable byte is written */
    }
    /* Writing all usable bytes of every block left every other block intact. */
    for (size_t i = 0; i < total; i++) {
        long bad = tu_check(blk[i].p, blk[i].size, tu_seed(blk[i].p, blk[i].size));
        cr_assert_eq(bad, -1, "block %p (usable %zu) corrupted at offset %ld by a neighbour", blk[i].p,
                     blk[i].size, bad);
    }
    long ov = tu_find_overlap(blk, total);
    cr_assert_eq(ov, -1, "blocks overlap: [%p, +%zu) and %p", ov >= 0 ? blk[ov].p : NULL,
                 ov >= 0 ? blk[ov].size : 0, ov >= 0 ? blk[ov + 1].p : NULL);
    for (size_t i = 0; i < total; i++)
        um_free(blk[i].p);
    free(blk);
}

Test(semantics, usable_size_waste_bound_small_and_medium)
{
    static size_t sizes[4096];
    size_t n = small_medium_sizes(sizes, 4096);
    for (size_t i = 0; i < n; i++) {
        size_t req = sizes[i];
        void *p = um_malloc(req);
        cr_assert_not_null(p, "um_malloc(%zu) returned NULL", req);
        size_t us = um_malloc_usable_size(p);
        cr_assert_geq(us, req, "usable %zu < requested %zu", us, req);
        /* 8 classes per doubling up to 4 KiB, 4 above */
        size_t slack = req <= 4 * TU_KiB ? req / 8 : req / 4;
        cr_assert_leq(us, req + slack + 16, "usable size %zu for a request of %zu wastes more than %s + 16", us,
                      req, req <= 4 * TU_KiB ? "1/8" : "1/4");
        um_free(p);
    }
}

/* Every 16th size up to 512 KiB: the usable sizes are the classes, each class is its own usable
 * size, and each doubling above 128 B holds 8 classes up to 4 KiB and 4 above. */
Test(semantics, size_classes_per_doubling)
{
    size_t last = 0, in_doubling = 0, doubling_top = 256;
    for (size_t req = 144; req <= 512 * TU_KiB; req += 16) {
        void *p = um_malloc(req);
        cr_assert_not_null(p);
        size_t us = um_malloc_usable_size(p);
        um_free(p);
        cr_assert_geq(us, last, "usable size went down: %zu after %zu (request %zu)", us, last, req);
        if (us == last)
            continue;
        void *q = um_malloc(us); /* a class size is a fixed point */
        cr_assert_eq(um_malloc_usable_size(q), us, "request %zu: usable %zu", us, um_malloc_usable_size(q));
        um_free(q);
        last = us;
        if (us > doubling_top) {
            cr_expect_eq(in_doubling, doubling_top <= 4 * TU_KiB ? 8u : 4u, "classes in (%zu, %zu]: %zu",
                         doubling_top / 2, doubling_top, in_doubling);
            doubling_top *= 2;
            in_doubling = 0;
        }
        in_doubling++;
    }
    cr_expect_eq(last, 512 * TU_KiB);
    cr_expect_eq(in_doubling, 4u, "classes in (256 KiB, 512 KiB]: %zu", in_doubling);
}

/* malloc's table of classes for sizes above the direct table (core/bins.c) agrees with the
 * arithmetic of umi_bin_of at every size it serves, and a malloc of each of those sizes gets a
 * block of its class, whether a page of the class is ready (the table's path) or not. */
Test(semantics, the_class_table_agrees_with_the_class_arithmetic)
{
    for (size_t size = UM_DIRECT_MAX + 1; size <= UM_BIN_TABLE_MAX; size++)
        cr_assert_eq(umi_bin_of_mid(size), umi_bin_of(size), "size %zu: the table says bin %zu, the arithmetic %zu", size,
                     umi_bin_of_mid(size), umi_bin_of(size));
    for (size_t size = UM_DIRECT_MAX + 1; size <= UM_BIN_TABLE_MAX + 256; size += 61) {
        void *p = um_malloc(size), *q = um_malloc(size);
        cr_assert(p != NULL && q != NULL);
        cr_assert_eq(um_malloc_usable_size(q), umi_bin_size(umi_bin_of(size)), "malloc(%zu): usable %zu", size, um_malloc_usable_size(q));
        um_free(p);
        um_free(q);
    }
}

Test(semantics, usable_size_large_is_sane)
{
    const size_t sizes[] = {512 * TU_KiB + 1, 700 * TU_KiB, TU_MiB, 2 * TU_MiB + 3, 9 * TU_MiB, 33 * TU_MiB + 1};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *p = um_malloc(sizes[i]);
        cr_assert_not_null(p, "um_malloc(%zu) returned NULL", sizes[i]);
        size_t us = um_malloc_usable_size(p);
        cr_assert_geq(us, sizes[i], "usable %zu < requested %zu", us, sizes[i]);
        cr_assert_leq(us, sizes[i] + sizes[i] / 8 + 4 * TU_MiB, "usable size %zu absurd for request %zu", us,
                      sizes[i]);
        memset(p, 0x3c, us);
        cr_assert_eq(tu_check_byte(p, us, 0x3c), -1);
        um_free(p);
    }
}

Test(semantics, usable_size_of_null_is_zero)
{
    cr_assert_eq(um_malloc_usable_size(NULL), 0);
}

Test(semantics, free_null_is_noop_and_preserves_errno)
{
    um_totals_t before = tu_totals();
    errno = 1234;
    um_free(NULL);
    cr_assert_eq(errno, 1234, "um_free(NULL) changed errno to %d", errno);
    um_totals_t after = tu_totals();
    cr_assert_eq(after.live_blocks, before.live_blocks, "um_free(NULL) changed live_blocks");
    void *p = um_malloc(40);
    cr_assert_not_null(p);
    um_free(p);
}

Test(semantics, free_preserves_errno_all_sizes)
{
    const size_t sizes[] = {0, 8, 16, 100, 1000, 8 * TU_KiB, 64 * TU_KiB, 512 * TU_KiB, TU_MiB, 16 * TU_MiB, 100 * TU_MiB};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *p = um_malloc(sizes[i]);
        cr_assert_not_null(p, "um_malloc(%zu) returned NULL", sizes[i]);
        memset(p, 1, sizes[i]);
        errno = 1234;
        um_free(p);
        cr_assert_eq(errno, 1234, "um_free of a %zu-byte block changed errno to %d", sizes[i], errno);
    }
    /* also when the free empties a page / segment: many blocks of one size, freed in reverse */
    enum { N = 4096 };
    static void *v[N];
    for (size_t i = 0; i < N; i++) {
        v[i] = um_malloc(256);
        cr_assert_not_null(v[i]);
    }
    for (size_t i = N; i-- > 0;) {
        errno = 1234;
        um_free(v[i]);
        cr_assert_eq(errno, 1234, "um_free #%zu changed errno to %d", i, errno);
    }
}

Test(semantics, calloc_returns_zeroed_memory)
{
    const size_t sizes[] = {0, 1, 15, 16, 17, 100, 1000, 4096, 8 * TU_KiB + 1, 64 * TU_KiB, 300 * TU_KiB, TU_MiB + 3, 8 * TU_MiB};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        void *p[3];
        p[0] = um_calloc(1, n);
        p[1] = um_calloc(n, 1);
        p[2] = um_calloc(n / 8 + 1, 8);
        size_t len[3] = {n, n, (n / 8 + 1) * 8};
        for (int k = 0; k < 3; k++) {
            cr_assert_not_null(p[k], "um_calloc variant %d for %zu bytes returned NULL", k, n);
            cr_assert(tu_is_aligned(p[k], 16), "um_calloc result %p not 16-aligned", p[k]);
            cr_assert_geq(um_malloc_usable_size(p[k]), len[k]);
            long bad = tu_check_byte(p[k], len[k], 0);
            cr_assert_eq(bad, -1, "um_calloc(%zu bytes) not zero at offset %ld", len[k], bad);
        }
        for (int k = 0; k < 3; k++)
            um_free(p[k]);
    }
}

/* malloc, dirty every usable byte, free, calloc the same size: must be zero every time. */
Test(semantics, calloc_zeroes_reused_dirty_memory)
{
    const size_t sizes[] = {8, 16, 24, 48, 100, 512, 1000, 4096, 8000, 32 * TU_KiB, 70000, 300 * TU_KiB, 600 * TU_KiB, 2 * TU_MiB, 8 * TU_MiB};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        size_t reps = n <= 64 * TU_KiB ? 300 : n <= TU_MiB ? 60 : 12;
        for (size_t r = 0; r < reps; r++) {
            void *p = um_malloc(n);
            cr_assert_not_null(p);
            memset(p, 0xff, um_malloc_usable_size(p));
            um_free(p);
            void *q = (r & 1) ? um_calloc(n, 1) : um_calloc(1, n);
            cr_assert_not_null(q, "um_calloc(%zu) returned NULL", n);
            long bad = tu_check_byte(q, n, 0);
            cr_assert_eq(bad, -1, "um_calloc(%zu) after a dirty free: byte %ld not zero (rep %zu, %s)", n, bad, r,
                         q == p ? "same block" : "other block");
            memset(q, 0xff, um_malloc_usable_size(q));
            um_free(q);
        }
    }
    /* Batch: many dirty blocks freed, then calloc'ed back. */
    enum { N = 512 };
    static void *v[N];
    const size_t bsizes[] = {32, 160, 2000, 20000};
    for (size_t i = 0; i < sizeof bsizes / sizeof bsizes[0]; i++) {
        for (size_t k = 0; k < N; k++) {
            v[k] = um_malloc(bsizes[i]);
            cr_assert_not_null(v[k]);
            memset(v[k], 0xff, um_malloc_usable_size(v[k]));
        }
        for (size_t k = 0; k < N; k++)
            um_free(v[k]);
        for (size_t k = 0; k < N; k++) {
            v[k] = um_calloc(bsizes[i], 1);
            cr_assert_not_null(v[k]);
            long bad = tu_check_byte(v[k], bsizes[i], 0);
            cr_assert_eq(bad, -1, "batch um_calloc(%zu) #%zu: byte %ld not zero", bsizes[i], k, bad);
        }
        for (size_t k = 0; k < N; k++)
            um_free(v[k]);
    }
}

Test(semantics, free_sized_accepts_matching_sizes)
{
    const size_t sizes[] = {0, 1, 16, 33, 100, 1000, 4097, 64 * TU_KiB, 512 * TU_KiB, TU_MiB + 1, 16 * TU_MiB};
    const size_t aligns[] = {16, 32, 64, 256, 4096, 64 * TU_KiB, 2 * TU_MiB};
    enum { NS = sizeof sizes / sizeof sizes[0], NA = sizeof aligns / sizeof aligns[0] };
    void *p[NS], *q[NS], *a[NA];
    size_t an[NA];
    for (size_t i = 0; i < NS; i++) {
        p[i] = um_malloc(sizes[i]);
        q[i] = um_malloc(sizes[i]);
        cr_assert(p[i] && q[i], "um_malloc(%zu) returned NULL", sizes[i]);
        memset(p[i], 7, sizes[i]);
    }
    for (size_t i = 0; i < NA; i++) {
        an[i] = aligns[i] * 3 + 5;
        a[i] = um_aligned_alloc(aligns[i], an[i]);
        cr_assert_not_null(a[i], "um_aligned_alloc(%zu, %zu) returned NULL", aligns[i], an[i]);
        memset(a[i], 9, an[i]);
    }
    um_totals_t before = tu_totals();
    tu_capture_t cap;
    char out[4096];
    cr_assert_eq(tu_capture_begin(&cap), 0, "cannot capture stderr");
    for (size_t i = 0; i < NS; i++) {
        um_free_sized(p[i], sizes[i]);                   /* the size asked for */
        um_free_sized(q[i], um_malloc_usable_size(q[i])); /* or anything up to the usable size */
    }
    for (size_t i = 0; i < NA; i++)
        um_free_aligned_sized(a[i], aligns[i], an[i]);
    size_t len = tu_capture_end(&cap, out, sizeof out);
    cr_assert_eq(len, 0, "um_free_sized/um_free_aligned_sized complained about matching sizes: %s", out);
    um_totals_t after = tu_totals();
    cr_assert_eq(before.live_blocks - after.live_blocks, 2 * NS + NA,
                 "live_blocks %zu -> %zu after %d sized frees: a sized free did not free its block",
                 before.live_blocks, after.live_blocks, (int)(2 * NS + NA));
    /* the heap still works */
    void *x = um_malloc(100), *y = um_malloc(100);
    cr_assert(x && y && x != y);
    um_free(x);
    um_free(y);
}

Test(semantics, owns_live_blocks_of_every_kind)
{
    const size_t sizes[] = {0, 1, 16, 100, 1000, 8 * TU_KiB, 64 * TU_KiB, 512 * TU_KiB, TU_MiB, 16 * TU_MiB};
    enum { NS = sizeof sizes / sizeof sizes[0] };
    void *v[NS];
    for (size_t i = 0; i < NS; i++) {
        v[i] = um_malloc(sizes[i]);
        cr_assert_not_null(v[i]);
        cr_assert_eq(um_owns(v[i]), 1, "um_owns(um_malloc(%zu)) != 1", sizes[i]);
    }
    void *c = um_calloc(10, 10);
    cr_assert_eq(um_owns(c), 1, "um_owns(um_calloc) != 1");
    void *r = um_realloc(NULL, 3000);
    cr_assert_eq(um_owns(r), 1, "um_owns(um_realloc(NULL, 3000)) != 1");
    r = um_realloc(r, 300000);
    cr_assert_eq(um_owns(r), 1, "um_owns(um_realloc(.., 300000)) != 1");

    const struct {
        size_t align, size;
    } al[] = {{64, 100}, {4096, 10000}, {4096, 1}, {64 * TU_KiB, 100}, {TU_MiB, 100}, {2 * TU_MiB, 5 * TU_MiB}};
    enum { NA = sizeof al / sizeof al[0] };
    void *a[NA + 3];
    for (size_t i = 0; i < NA; i++) {
        a[i] = um_aligned_alloc(al[i].align, al[i].size);
        cr_assert_not_null(a[i]);
        cr_assert_eq(um_owns(a[i]), 1, "um_owns(um_aligned_alloc(%zu, %zu)) != 1", al[i].align, al[i].size);
    }
    cr_assert_eq(um_posix_memalign(&a[NA], 256 * TU_KiB, 1000), 0);
    cr_assert_eq(um_owns(a[NA]), 1, "um_owns(posix_memalign(256K, 1000)) != 1");
    a[NA + 1] = um_valloc(5000);
    cr_assert_eq(um_owns(a[NA + 1]), 1, "um_owns(um_valloc) != 1");
    a[NA + 2] = um_pvalloc(5000);
    cr_assert_eq(um_owns(a[NA + 2]), 1, "um_owns(um_pvalloc) != 1");

    /* foreign memory */
    int stack_var = 42;
    char stack_buf[64];
    void *libc_small = malloc(100);
    void *libc_large = malloc(4 * TU_MiB); /* glibc mmaps this one */
    cr_assert(libc_small && libc_large);
    cr_assert_eq(um_owns(NULL), 0, "um_owns(NULL) != 0");
    cr_assert_eq(um_owns(&stack_var), 0, "um_owns(stack address) != 0");
    cr_assert_eq(um_owns(stack_buf + 16), 0, "um_owns(stack buffer) != 0");
    cr_assert_eq(um_owns(static_buffer), 0, "um_owns(static variable) != 0");
    cr_assert_eq(um_owns(libc_small), 0, "um_owns(libc malloc(100)) != 0");
    cr_assert_eq(um_owns(libc_large), 0, "um_owns(libc malloc(4 MiB)) != 0");
    cr_assert_eq(um_owns("a string literal"), 0, "um_owns(string literal) != 0");
    free(libc_small);
    free(libc_large);

    for (size_t i = 0; i < NS; i++)
        um_free(v[i]);
    for (size_t i = 0; i < NA + 3; i++)
        um_free(a[i]);
    um_free(c);
    um_free(r);
}

Test(semantics, trim_keeps_live_blocks)
{
    enum { N = 3000 };
    static tu_block_t blk[N];
    tu_rng_t rng = tu_rng(7);
    for (size_t i = 0; i < N; i++) {
        size_t pick = tu_next(&rng) % 100;
        size_t n = pick < 80 ? tu_range(&rng, 1, 1024) : pick < 97 ? tu_range(&rng, 1025, 64 * TU_KiB)
                                                                     : tu_range(&rng, 64 * TU_KiB, 2 * TU_MiB);
        blk[i].p = um_malloc(n);
        blk[i].size = n;
        cr_assert_not_null(blk[i].p);
        tu_fill(blk[i].p, n, tu_seed(blk[i].p, n));
    }
    for (size_t i = 0; i < N; i += 2) {
        um_free(blk[i].p);
        blk[i].p = NULL;
    }
    um_totals_t t0 = tu_totals();
    int r = um_trim(0);
    cr_assert(r == 0 || r == 1, "um_trim(0) returned %d", r);
    um_totals_t t1 = tu_totals();
    cr_assert_leq(t1.committed_bytes, t0.committed_bytes, "um_trim grew committed bytes");
    cr_assert_leq(t1.mapped_bytes, t0.mapped_bytes, "um_trim grew mapped bytes");
    cr_assert_eq(t1.live_blocks, t0.live_blocks, "um_trim changed live_blocks");
    for (size_t i = 1; i < N; i += 2) {
        long bad = tu_check(blk[i].p, blk[i].size, tu_seed(blk[i].p, blk[i].size));
        cr_assert_eq(bad, -1, "live block %p (%zu B) damaged by um_trim(0) at %ld", blk[i].p, blk[i].size, bad);
    }
    r = um_trim(TU_MiB);
    cr_assert(r == 0 || r == 1, "um_trim(1 MiB) returned %d", r);
    /* allocate again over the trimmed memory */
    for (size_t i = 0; i < N; i += 2) {
        size_t n = 1 + (i * 37) % 5000;
        blk[i].p = um_malloc(n);
        blk[i].size = n;
        cr_assert_not_null(blk[i].p);
        tu_fill(blk[i].p, n, tu_seed(blk[i].p, n));
    }
    for (size_t i = 0; i < N; i++) {
        long bad = tu_check(blk[i].p, blk[i].size, tu_seed(blk[i].p, blk[i].size));
        cr_assert_eq(bad, -1, "block %zu damaged after trim + reallocation at %ld", i, bad);
        um_free(blk[i].p);
    }
    r = um_trim(0);
    cr_assert(r == 0 || r == 1, "um_trim(0) returned %d", r);
}

static int totals_field_sane(size_t v) { return v < ((size_t)1 << 46); }

enum { TOT_N = 1000, TOT_SZ = 1000 };

/* Allocates TOT_N small blocks and one 10 MiB block; returns requested and usable byte counts. */
static void *totals_alloc(void **v, size_t *req, size_t *usable)
{
    *req = *usable = 0;
    for (size_t i = 0; i < TOT_N; i++) {
        v[i] = um_malloc(TOT_SZ);
        cr_assert_not_null(v[i]);
        *req += TOT_SZ;
        *usable += um_malloc_usable_size(v[i]);
    }
    void *big = um_malloc(10 * TU_MiB);
    cr_assert_not_null(big);
    memset(big, 1, 10 * TU_MiB);
    *req += 10 * TU_MiB;
    *usable += um_malloc_usable_size(big);
    return big;
}

Test(semantics, totals_are_sane)
{
    static void *v[TOT_N];
    size_t req, usable;
    um_totals_t base = tu_totals();
    void *big = totals_alloc(v, &req, &usable);

    um_totals_t t = tu_totals();
    const size_t *fields = (const size_t *)&t;
    for (size_t i = 0; i < sizeof t / sizeof(size_t); i++)
        cr_assert(totals_field_sane(fields[i]), "um_totals_t field #%zu is garbage: %#zx", i, fields[i]);
    cr_assert_geq(t.live_bytes, base.live_bytes + req, "live_bytes grew by %zu after allocating %zu bytes",
                  t.live_bytes - base.live_bytes, req);
    cr_assert_geq(t.live_blocks, base.live_blocks + TOT_N + 1, "live_blocks %zu -> %zu after %d allocations",
                  base.live_blocks, t.live_blocks, TOT_N + 1);
    cr_assert_geq(t.mapped_bytes, t.live_bytes, "mapped_bytes %zu < live_bytes %zu", t.mapped_bytes, t.live_bytes);
    cr_assert_leq(t.committed_bytes, t.mapped_bytes, "committed %zu > mapped %zu", t.committed_bytes, t.mapped_bytes);
    cr_assert_geq(t.committed_bytes, t.live_bytes, "committed %zu < live %zu", t.committed_bytes, t.live_bytes);
    cr_assert_geq(t.large_bytes, base.large_bytes + 10 * TU_MiB, "large_bytes does not include the 10 MiB block");
    cr_assert_leq(t.large_bytes, t.live_bytes, "large_bytes %zu > live_bytes %zu", t.large_bytes, t.live_bytes);
    cr_assert_leq(t.free_bytes, t.mapped_bytes, "free_bytes %zu > mapped %zu", t.free_bytes, t.mapped_bytes);
    cr_assert_geq(t.threads, 1, "threads == 0 while this thread allocates");
    cr_assert_geq(t.segments, 1, "segments == 0 with 1000 small blocks live");

    for (size_t i = 0; i < TOT_N; i++)
        um_free(v[i]);
    um_free(big);
    um_totals_t e = tu_totals();
    /* every free takes exactly its block out of the live counts */
    cr_assert_eq(t.live_blocks - e.live_blocks, TOT_N + 1, "freeing %d blocks took %zu off live_blocks", TOT_N + 1,
                 t.live_blocks - e.live_blocks);
    cr_assert_eq(t.live_bytes - e.live_bytes, usable, "freeing %zu usable bytes took %zu off live_bytes", usable,
                 t.live_bytes - e.live_bytes);
    cr_assert_geq(e.purged_bytes, t.purged_bytes, "purged_bytes (cumulative) went down");
    cr_assert_geq(e.mapped_bytes, e.live_bytes);
}

/* The header: live_blocks = "blocks handed out and not yet freed", live_bytes = their usable
 * bytes. So allocating adds exactly the blocks handed out, and freeing them all gets back to the
 * baseline. */
Test(semantics, totals_live_counts_are_exact)
{
    static void *v[TOT_N];
    size_t req, usable;
    um_totals_t base = tu_totals();
    void *big = totals_alloc(v, &req, &usable);
    um_totals_t t = tu_totals();
    for (size_t i = 0; i < TOT_N; i++)
        um_free(v[i]);
    um_free(big);
    um_totals_t e = tu_totals();
    cr_assert_eq(t.live_blocks, base.live_blocks + TOT_N + 1,
                 "live_blocks %zu -> %zu after handing out %d blocks (blocks not handed out counted as live?)",
                 base.live_blocks, t.live_blocks, TOT_N + 1);
    cr_assert_leq(t.live_bytes, base.live_bytes + usable,
                  "live_bytes grew by %zu, more than the %zu usable bytes handed out", t.live_bytes - base.live_bytes,
                  usable);
    cr_assert_eq(e.live_blocks, base.live_blocks, "live_blocks %zu after freeing everything, %zu before",
                 e.live_blocks, base.live_blocks);
    cr_assert_eq(e.live_bytes, base.live_bytes, "live_bytes %zu after freeing everything, %zu before", e.live_bytes,
                 base.live_bytes);
}

/* The block a thread freed last is the next one of its class it gets: it is the one still in
 * cache (um_page_hot_t in core/types.h). The statistics must count it handed out again. */
Test(semantics, last_freed_block_goes_out_first_and_counts)
{
    static const size_t sizes[] = {32, 500, 1100, 1500, 3000, 6000, 20000, 50000, 200000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t s = sizes[i];
        void *keep = um_malloc(s); /* the class's page stays in use throughout */
        um_totals_t base = tu_totals();
        void *x = um_malloc(s);
        cr_assert_not_null(x);
        memset(x, 0x5a, s);
        um_free(x);
        void *y = um_malloc(s);
        cr_assert_eq(y, x, "size %zu: got %p after freeing %p, not the block freed last", s, y, x);
        um_totals_t t = tu_totals();
        cr_assert_eq(t.live_blocks, base.live_blocks + 1, "size %zu: live_blocks %zu -> %zu with one block out", s,
                     base.live_blocks, t.live_blocks);
        um_free(y);
        um_free(keep);
    }
}

/* Blocks go out in address order: fresh ones as they are carved, and those of a page that emptied
 * (freed in no order) once its free list is dropped and the page carved again. A page carves the
 * blocks beside its hot words, at its end, first (um_page_t.rotation): going on from its last
 * block to its first is that order, not a descent. */
static size_t descents_within_pages(void **p, size_t n)
{
    size_t d = 0;
    for (size_t i = 1; i < n; i++) {
        if (((uintptr_t)p[i] >> 16) != ((uintptr_t)p[i - 1] >> 16) || p[i] > p[i - 1]) continue;
        um_page_t *page = umi_page_of(umi_segment_of(p[i]), p[i]);
        size_t prev = (size_t)((uint8_t *)p[i - 1] - page->start) / page->block_size;
        if (p[i] == (void *)page->start && prev == page->reserved - 1u && page->rotation != 0) continue; /* the wrap */
        d++;
    }
    return d;
}

Test(semantics, blocks_go_out_in_address_order)
{
    enum { N = 400, SIZE = 1000 }; /* ~65 blocks a 64 KiB page: about 6 pages */
    void *p[N];
    for (size_t i = 0; i < N; i++)
        cr_assert_not_null(p[i] = um_malloc(SIZE));
    size_t fresh = descents_within_pages(p, N);
    cr_assert_eq(fresh, 0, "fresh blocks: %zu times a block came from lower in the same page than the one before",
                 fresh);

    uint64_t r = 12345; /* free them in a shuffled order */
    for (size_t i = N - 1; i > 0; i--) {
        r = r * 6364136223846793005u + 1442695040888963407u;
        size_t j = (size_t)(r >> 33) % (i + 1);
        void *t = p[i];
        p[i] = p[j];
        p[j] = t;
    }
    for (size_t i = 0; i < N; i++)
        um_free(p[i]);
    for (size_t i = 0; i < N; i++)
        cr_assert_not_null(p[i] = um_malloc(SIZE));
    /* The class's first page hands out its free list as it stands (last freed first: ~half
     * the pairs of one page descend); every other page was emptied and is carved again. */
    size_t again = descents_within_pages(p, N);
    fprintf(stderr, "[semantics/address_order] descents within a page: fresh %zu, after a shuffled free %zu of %d\n",
            fresh, again, N);
    cr_assert_leq(again, N / 6, "after freeing all in a shuffled order, %zu of %d blocks came from lower in the same "
                  "page than the one before: emptied pages are not handed out in address order", again, N);
    for (size_t i = 0; i < N; i++)
        um_free(p[i]);
}

/* A page whose free list was forgotten (as above) is resident up to what it had carved: it is
 * carved again in one step, not 4 KiB at a time, so a program that fills and empties its pages
 * round after round does not take the slow path every few blocks. */
Test(semantics, a_page_carved_again_is_carved_in_one_step)
{
    enum { N = 40, SIZE = 1000 }; /* in one 64 KiB page (55 blocks), 3 blocks per 4 KiB */
    void *p[N];
    for (size_t i = 0; i < N; i++)
        cr_assert_not_null(p[i] = um_malloc(SIZE));
    for (size_t i = 0; i < N; i++)
        um_free(p[i]);
    umi_page_sweep(umi_tl_heap, true); /* the bin's only page: kept, its free list forgotten */
    uint32_t refills = umi_tl_heap->refills;
    for (size_t i = 0; i < N; i++)
        cr_assert_not_null(p[i] = um_malloc(SIZE));
    refills = umi_tl_heap->refills - refills;
    fprintf(stderr, "[semantics/recarve] %u refills for %d blocks of %d bytes in a page carved again\n", refills, N,
            SIZE);
    cr_assert_leq(refills, 2, "%u refills for %d blocks of %d bytes: a page is carved again a chunk at a time",
                  refills, N, SIZE);
    for (size_t i = 0; i < N; i++)
        um_free(p[i]);
}

/* A fresh small page carves first the blocks beside its hot words, in its last OS page, which
 * the page's set-up writes anyway: a thread or a short process that uses a class a little
 * touches one OS page for it, not two. Then from the page's start, in address order; a tiny
 * class carves as much again as it has, from 4 KiB up to 16 KiB at a time (bulk allocation soon
 * takes the slow path once per 128 blocks or more, while a class that outgrows its first carve by
 * a few blocks touches one OS page more, not four). */
Test(semantics, a_fresh_pages_first_blocks_share_the_hot_words_os_page)
{
    enum { SIZE = 48, MAX = 200000 };
    static void *p[MAX];
    size_t n = 0, found = MAX;
    for (; n < MAX && found == MAX; n++) { /* until a block is the first out of a fresh page */
        cr_assert_not_null(p[n] = um_malloc(SIZE));
        um_page_t *page = umi_page_of(umi_segment_of(p[n]), p[n]);
        if (page->is_zero && umi_page_hot(page)->allocs == 1)
            found = n;
    }
    cr_assert_lt(found, MAX, "no fresh page of %d-byte blocks in %d mallocs", SIZE, MAX);
    um_page_t *page = umi_page_of(umi_segment_of(p[found]), p[found]);
    uintptr_t hot = (uintptr_t)umi_page_hot(page), hot_os_page = hot & ~(uintptr_t)4095;
    size_t first = page->capacity;
    cr_assert_geq(first, (4096 - UM_PAGE_HOT_SIZE) / SIZE - 1, "a fresh page of %d-byte blocks carved %zu blocks first", SIZE, first);
    for (size_t i = 1; i < first; i++) /* the rest of its first carve */
        cr_assert_not_null(p[n++] = um_malloc(SIZE));
    for (size_t i = 0; i < first; i++) {
        uintptr_t b = (uintptr_t)p[found + i];
        cr_assert(b >= hot_os_page && b + SIZE <= hot, "block %zu of a fresh page's first carve (%p) is not beside its hot words (%p)",
                  i, (void *)b, (void *)hot);
        cr_assert(i == 0 || p[found + i] > p[found + i - 1], "the first carve's blocks go out in address order");
    }
    cr_assert(hot_os_page - SIZE < (uintptr_t)page->start || (uintptr_t)p[found] - SIZE < hot_os_page,
              "a block below the first carve's would have fit beside the hot words");
    cr_assert_not_null(p[n++] = um_malloc(SIZE)); /* the next carve: from the page's start */
    cr_assert_eq(p[n - 1], (void *)page->start, "after the blocks beside the hot words, %p and not the page's first block %p",
                 p[n - 1], (void *)page->start);
    cr_assert_eq(page->capacity, first + 4096 / SIZE, "the second carve of a %d-byte page: %zu blocks, not 4 KiB", SIZE,
                 (size_t)page->capacity - first);
    /* then as much again as is carved, up to 16 KiB */
    for (size_t carve = 3; carve <= 5; carve++) {
        size_t before = page->capacity, want = before * SIZE > 16384 ? 16384 / SIZE : before;
        while (page->capacity == before && n < MAX)
            cr_assert_not_null(p[n++] = um_malloc(SIZE));
        cr_assert_eq(page->capacity - before, want, "carve %zu of a %d-byte page, %zu blocks carved before: %zu blocks, not %zu",
                     carve, SIZE, before, (size_t)page->capacity - before, want);
    }
    for (size_t i = 0; i < n; i++)
        um_free(p[i]);
}

/* Blocks freed into a full page are reused before blocks freed earlier into other full pages:
 * the page rejoins its class's queue (once it has a batch of free blocks, see unit_full.c)
 * right behind the page malloc is serving, not at the end. */
Test(semantics, blocks_freed_last_into_full_pages_go_out_first)
{
    enum { N = 300, SIZE = 1000 }; /* ~65 blocks a 64 KiB page: the first pages fill up */
    void *p[N];
    for (size_t i = 0; i < N; i++)
        cr_assert_not_null(p[i] = um_malloc(SIZE));
    /* two full pages of the class: past the first blocks, which may lie in a larger class's
     * page (unit_borrow.c), and before the page still being carved */
    uintptr_t first_page = (uintptr_t)p[N / 3] >> 16, last_page = (uintptr_t)p[N - 1] >> 16, second_page = 0;
    for (size_t i = N / 3; i < N && second_page == 0; i++)
        if ((uintptr_t)p[i] >> 16 != first_page && (uintptr_t)p[i] >> 16 != last_page) second_page = (uintptr_t)p[i] >> 16;
    cr_assert_neq(second_page, 0, "no second full page among %d blocks of %d bytes", N, SIZE);
    um_page_t *page = umi_page_of(umi_segment_of(p[N / 3]), p[N / 3]);
    cr_assert_eq(umi_bin_size(page->bin), um_malloc_usable_size(p[N - 1]), "block %d is not in a page of its class", N / 3);
    size_t batch = page->reserved - umi_page_hot(page)->requeue_used; /* what puts a full page back in its queue */
    size_t freed_a = 0, freed_b = 0;
    for (size_t i = 0; i < N && freed_a < batch; i++) /* freed first, into a full page */
        if ((uintptr_t)p[i] >> 16 == first_page) { um_free(p[i]); p[i] = NULL; freed_a++; }
    for (size_t i = 0; i < N && freed_b < batch; i++) /* freed last, into another full page */
        if ((uintptr_t)p[i] >> 16 == second_page) { um_free(p[i]); p[i] = NULL; freed_b++; }
    cr_assert(freed_a == batch && freed_b == batch);
    uintptr_t got = 0;
    void *q[200];
    size_t nq = 0;
    while (nq < 200 && got == 0) {
        cr_assert_not_null(q[nq] = um_malloc(SIZE));
        uintptr_t pg = (uintptr_t)q[nq++] >> 16;
        if (pg == first_page || pg == second_page) got = pg;
    }
    cr_assert_eq(got, second_page, "the blocks freed last into a full page (page %#lx) should go out before those freed "
                 "earlier (page %#lx); got page %#lx", (unsigned long)second_page, (unsigned long)first_page, (unsigned long)got);
    for (size_t i = 0; i < nq; i++)
        um_free(q[i]);
    for (size_t i = 0; i < N; i++)
        um_free(p[i]);
}

Test(semantics, version_string)
{
    cr_assert_not_null(um_version());
    cr_assert_str_eq(um_version(), UMALLOC_VERSION);
}

/* A program built against an older umalloc.h has a shorter um_stats_t: the library must not
 * write past it. The function um_stats_get is what version 2 programs call; the macro of this
 * header passes the full size. */
Test(semantics, stats_get_writes_no_further_than_the_callers_struct)
{
    enum { CANARY = 0x5c };
    /* the fields version 2 programs know stay where they were: 81 entries of classes, whatever
     * the number of size classes (76 since version 4) */
    cr_assert_eq(sizeof(((um_stats_t *)0)->classes) / sizeof(um_stats_class_t), 81);
    static um_stats_t all;
    um_stats_get(&all);
    for (size_t c = UM_BIN_COUNT; c < UM_STATS_CLASSES; c++)
        cr_assert_eq(all.classes[c].size, 0, "entry %zu after the last class has a size", c);
    size_t v2 = offsetof(um_stats_t, node_committed_bytes);
    unsigned char *buf = malloc(sizeof(um_stats_t) + 64); /* the C library's: not the heap under test */
    cr_assert_not_null(buf);
    void *p = um_malloc(100); /* something to count */
    memset(buf, CANARY, sizeof(um_stats_t) + 64);
    (um_stats_get)((um_stats_t *)buf);
    for (size_t i = v2; i < sizeof(um_stats_t) + 64; i++)
        cr_assert_eq(buf[i], CANARY, "byte %zu of a version-2 caller's memory (its struct is %zu bytes) was written", i, v2);
    um_stats_t *s = (um_stats_t *)buf;
    cr_assert_eq(s->version, 2);
    cr_assert_geq(s->live_blocks, 1);

    memset(buf, CANARY, sizeof(um_stats_t) + 64);
    um_stats_get((um_stats_t *)buf);
    for (size_t i = sizeof(um_stats_t); i < sizeof(um_stats_t) + 64; i++) cr_assert_eq(buf[i], CANARY, "byte %zu past um_stats_t was written", i);
    cr_assert_eq(s->version, UM_STATS_VERSION);
    cr_assert_geq(s->live_blocks, 1);
    um_free(p);
    free(buf);
}
