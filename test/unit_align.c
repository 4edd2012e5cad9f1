/* The aligned-allocation family: um_aligned_alloc, um_posix_memalign, um_memalign, um_valloc,
 * um_pvalloc (glibc semantics), and aligned blocks mixed with ordinary ones. */
#include <criterion/criterion.h>

#include "core/internal.h"
#include "test_util.h"

static size_t next_pow2(size_t a)
{
    size_t p = 1;
    while (p < a)
        p <<= 1;
    return p;
}

static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

#define MAX_ALIGN (4 * TU_MiB)

Test(align, aligned_alloc_every_power_of_two, .timeout = 120)
{
    enum { MAXB = 24 * 6 };
    static tu_block_t blk[MAXB];
    size_t nb = 0;
    for (size_t align = 1; align <= MAX_ALIGN; align <<= 1) {
        const size_t sizes[] = {1, align - 1, align, align + 1, 3 * align + 5, 100};
        for (size_t k = 0; k < 6; k++) {
            size_t n = sizes[k];
            void *p = um_aligned_alloc(align, n);
            cr_assert_not_null(p, "um_aligned_alloc(%zu, %zu) returned NULL", align, n);
            cr_assert(tu_is_aligned(p, max_sz(align, 16)), "um_aligned_alloc(%zu, %zu) = %p misaligned", align, n, p);
            size_t us = um_malloc_usable_size(p);
            cr_assert_geq(us, n, "um_aligned_alloc(%zu, %zu): usable %zu too small", align, n, us);
            cr_assert_eq(um_owns(p), 1, "um_owns(um_aligned_alloc(%zu, %zu)) != 1", align, n);
            tu_fill(p, us, tu_seed(p, us));
            cr_assert_lt(nb, (size_t)MAXB);
            blk[nb].p = p;
            blk[nb].size = us;
            nb++;
        }
    }
    for (size_t i = 0; i < nb; i++) {
        long bad = tu_check(blk[i].p, blk[i].size, tu_seed(blk[i].p, blk[i].size));
        cr_assert_eq(bad, -1, "aligned block %p (usable %zu) overwritten at %ld", blk[i].p, blk[i].size, bad);
    }
    long ov = tu_find_overlap(blk, nb);
    cr_assert_eq(ov, -1, "aligned blocks overlap: [%p, +%zu) and %p", ov >= 0 ? blk[ov].p : NULL,
                 ov >= 0 ? blk[ov].size : 0, ov >= 0 ? blk[ov + 1].p : NULL);
    for (size_t i = 0; i < nb; i++)
        um_free(blk[i].p);
}

Test(align, posix_memalign_valid_alignments)
{
    for (size_t align = sizeof(void *); align <= MAX_ALIGN; align <<= 1) {
        const size_t sizes[] = {0, 1, 100, 2 * align + 1};
        for (size_t k = 0; k < 4; k++) {
            void *p = (void *)0x1;
            errno = 0;
            int r = um_posix_memalign(&p, align, sizes[k]);
            cr_assert_eq(r, 0, "um_posix_memalign(%zu, %zu) returned %d", align, sizes[k], r);
            cr_assert_not_null(p);
            cr_assert(p != (void *)0x1, "um_posix_memalign succeeded without setting *out");
            cr_assert(tu_is_aligned(p, max_sz(align, 16)), "um_posix_memalign(%zu, %zu) = %p misaligned", align,
                      sizes[k], p);
            cr_assert_geq(um_malloc_usable_size(p), sizes[k]);
            memset(p, 0x5a, sizes[k]);
            um_free(p);
        }
    }
}

Test(align, posix_memalign_einval_leaves_out_untouched)
{
    const size_t bad[] = {0, 1, 2, 3, 4, 12, 24, 40, 48, 100, 1000, 4095, 3 * sizeof(void *), TU_MiB + 8, SIZE_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        void *sentinel = (void *)(uintptr_t)0xdeadbeef0;
        void *p = sentinel;
        int r = um_posix_memalign(&p, bad[i], 64);
        cr_assert_eq(r, EINVAL, "um_posix_memalign(alignment %zu) returned %d, want EINVAL", bad[i], r);
        cr_assert(p == sentinel, "um_posix_memalign(alignment %zu) failed but changed *out to %p", bad[i], p);
    }
}

Test(align, posix_memalign_enomem_leaves_out_untouched)
{
    const struct {
        size_t align, size;
    } cases[] = {{64, SIZE_MAX},           {64, SIZE_MAX / 2 + 1},  {4096, SIZE_MAX - 4096},
                 {TU_MiB, SIZE_MAX / 2},   {16, SIZE_MAX - 15},     {(size_t)1 << 62, 16},
                 {(size_t)1 << 63, 16},    {2 * TU_MiB, SIZE_MAX - 2 * TU_MiB + 1}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        void *sentinel = (void *)(uintptr_t)0xdeadbeef0;
        void *p = sentinel;
        int r = um_posix_memalign(&p, cases[i].align, cases[i].size);
        cr_assert_eq(r, ENOMEM, "um_posix_memalign(%zu, %zu) returned %d, want ENOMEM", cases[i].align,
                     cases[i].size, r);
        cr_assert(p == sentinel, "um_posix_memalign(%zu, %zu) failed but changed *out to %p", cases[i].align,
                  cases[i].size, p);
    }
    /* still works afterwards */
    void *p = NULL;
    cr_assert_eq(um_posix_memalign(&p, 4096, 4096), 0);
    cr_assert(tu_is_aligned(p, 4096));
    um_free(p);
}

Test(align, aligned_alloc_and_memalign_huge_fail_with_enomem)
{
    const struct {
        size_t align, size;
    } cases[] = {{16, SIZE_MAX}, {4096, SIZE_MAX}, {64, SIZE_MAX / 2 + 1}, {TU_MiB, SIZE_MAX - TU_MiB}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        errno = 0;
        void *p = um_aligned_alloc(cases[i].align, cases[i].size);
        cr_assert_null(p, "um_aligned_alloc(%zu, %zu) did not fail", cases[i].align, cases[i].size);
        cr_assert_eq(errno, ENOMEM, "um_aligned_alloc(%zu, %zu): errno %d", cases[i].align, cases[i].size, errno);
        errno = 0;
        p = um_memalign(cases[i].align, cases[i].size);
        cr_assert_null(p, "um_memalign(%zu, %zu) did not fail", cases[i].align, cases[i].size);
        cr_assert_eq(errno, ENOMEM, "um_memalign(%zu, %zu): errno %d", cases[i].align, cases[i].size, errno);
    }
    errno = 0;
    cr_assert_null(um_valloc(SIZE_MAX), "um_valloc(SIZE_MAX) did not fail");
    cr_assert_eq(errno, ENOMEM);
    errno = 0;
    cr_assert_null(um_pvalloc(SIZE_MAX - 100), "um_pvalloc(SIZE_MAX - 100) did not fail");
    cr_assert_eq(errno, ENOMEM);
}

Test(align, memalign_powers_of_two)
{
    for (size_t align = 1; align <= MAX_ALIGN; align <<= 1) {
        void *p = um_memalign(align, 3 * align + 1);
        cr_assert_not_null(p, "um_memalign(%zu) returned NULL", align);
        cr_assert(tu_is_aligned(p, max_sz(align, 16)), "um_memalign(%zu) = %p misaligned", align, p);
        memset(p, 1, 3 * align + 1);
        um_free(p);
    }
}

Test(align, memalign_rounds_non_power_of_two_up)
{
    const size_t aligns[] = {3, 5, 24, 48, 100, 1000, 3000, 5000, 40000, 100000, 3 * TU_MiB};
    const size_t sizes[] = {1, 100, 5000};
    for (size_t i = 0; i < sizeof aligns / sizeof aligns[0]; i++) {
        for (size_t k = 0; k < 3; k++) {
            void *p = um_memalign(aligns[i], sizes[k]);
            size_t want = max_sz(next_pow2(aligns[i]), 16);
            cr_assert_not_null(p, "um_memalign(%zu, %zu) returned NULL", aligns[i], sizes[k]);
            cr_assert(tu_is_aligned(p, want), "um_memalign(%zu, %zu) = %p is not %zu-aligned", aligns[i], sizes[k],
                      p, want);
            cr_assert_geq(um_malloc_usable_size(p), sizes[k]);
            memset(p, 2, sizes[k]);
            um_free(p);
        }
    }
    void *p = um_memalign(0, 100); /* glibc: alignment 0 behaves like malloc */
    cr_assert_not_null(p, "um_memalign(0, 100) returned NULL");
    cr_assert(tu_is_aligned(p, 16));
    um_free(p);
}

Test(align, valloc_is_page_aligned)
{
    const size_t ps = tu_page_size();
    const size_t sizes[] = {0, 1, 100, 4095, 4096, 5000, 70000, TU_MiB + 1};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *p = um_valloc(sizes[i]);
        cr_assert_not_null(p, "um_valloc(%zu) returned NULL", sizes[i]);
        cr_assert(tu_is_aligned(p, ps), "um_valloc(%zu) = %p not page-aligned", sizes[i], p);
        cr_assert_geq(um_malloc_usable_size(p), sizes[i]);
        memset(p, 3, sizes[i]);
        um_free(p);
    }
}

Test(align, pvalloc_rounds_size_to_pages)
{
    const size_t ps = tu_page_size();
    const size_t sizes[] = {0, 1, 100, ps - 1, ps, ps + 1, 3 * ps + 17, 100000, TU_MiB + 1};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t want = sizes[i] == 0 ? ps : tu_round_up(sizes[i], ps);
        void *p = um_pvalloc(sizes[i]);
        cr_assert_not_null(p, "um_pvalloc(%zu) returned NULL", sizes[i]);
        cr_assert(tu_is_aligned(p, ps), "um_pvalloc(%zu) = %p not page-aligned", sizes[i], p);
        size_t us = um_malloc_usable_size(p);
        cr_assert_geq(us, want, "um_pvalloc(%zu): usable %zu < %zu (size rounded to pages)", sizes[i], us, want);
        memset(p, 4, want); /* the whole rounded size is ours */
        um_free(p);
    }
}

/* Random mix of ordinary and aligned allocations with random alignments; all patterns intact. */
Test(align, aligned_mixed_with_plain_blocks)
{
    enum { SLOTS = 512 };
    static tu_block_t slot[SLOTS];
    static size_t slot_align[SLOTS], slot_kind[SLOTS];
    size_t ops = tu_pick(40000, 15000, 4000);
    tu_rng_t rng = tu_rng(1234);
    memset(slot, 0, sizeof slot);
    for (size_t op = 0; op < ops; op++) {
        size_t i = tu_next(&rng) % SLOTS;
        if (slot[i].p) {
            long bad = tu_check(slot[i].p, slot[i].size, tu_seed(slot[i].p, slot[i].size));
            cr_assert_eq(bad, -1, "block %p (%zu B, align %zu) corrupted at %ld", slot[i].p, slot[i].size,
                         slot_align[i], bad);
            if ((op & 1) && slot_kind[i] == 1)
                um_free_aligned_sized(slot[i].p, slot_align[i], slot[i].size);
            else if ((op & 1) && slot_kind[i] == 0)
                um_free_sized(slot[i].p, slot[i].size);
            else
                um_free(slot[i].p);
            slot[i].p = NULL;
            continue;
        }
        size_t kind = tu_next(&rng) % 4;
        size_t n = tu_next(&rng) % 8 == 0 ? tu_range(&rng, 1, 200000) : tu_range(&rng, 1, 2000);
        size_t align = (size_t)1 << tu_range(&rng, 3, 16);
        void *p = NULL;
        if (kind == 0) {
            p = um_malloc(n);
            align = 16;
        } else if (kind == 1) {
            p = um_aligned_alloc(align, n);
        } else if (kind == 2) {
            cr_assert_eq(um_posix_memalign(&p, align, n), 0);
        } else {
            p = um_memalign(align, n);
        }
        cr_assert_not_null(p, "allocation kind %zu (align %zu, size %zu) returned NULL", kind, align, n);
        cr_assert(tu_is_aligned(p, max_sz(align, 16)), "kind %zu: %p not %zu-aligned", kind, p, align);
        tu_fill(p, n, tu_seed(p, n));
        slot[i].p = p;
        slot[i].size = n;
        slot_align[i] = align;
        slot_kind[i] = kind;
    }
    for (size_t i = 0; i < SLOTS; i++) {
        if (!slot[i].p)
            continue;
        long bad = tu_check(slot[i].p, slot[i].size, tu_seed(slot[i].p, slot[i].size));
        cr_assert_eq(bad, -1, "block %p corrupted at %ld", slot[i].p, bad);
        um_free(slot[i].p);
    }
}

/* A block aligned to 4 MiB or more has its header in the 4 MiB unit below it. Growing it by
 * realloc once lost that (its map entry became "interior"), so freeing the result was refused
 * and the block leaked. */
Test(align, realloc_of_over_aligned_huge_blocks_then_free, .timeout = 60)
{
    const size_t aligns[] = {(size_t)4 << 20, (size_t)8 << 20, (size_t)64 << 20};
    um_totals_t base = tu_totals();
    for (size_t i = 0; i < sizeof aligns / sizeof *aligns; i++) {
        void *p = NULL;
        cr_assert_eq(um_posix_memalign(&p, aligns[i], 1000), 0);
        cr_assert_eq((uintptr_t)p & (aligns[i] - 1), 0, "alignment %zu", aligns[i]);
        memset(p, 0x5a, 1000);
        unsigned char *q = um_realloc(p, (size_t)5 << 20);
        cr_assert_not_null(q);
        cr_assert_eq(tu_check_byte(q, 1000, 0x5a), -1, "contents lost growing an over-aligned block");
        cr_assert_eq(um_owns(q), 1, "the grown block is not recognised as ours");
        um_free(q);
    }
    um_totals_t end = tu_totals();
    cr_assert_eq(end.live_blocks, base.live_blocks, "blocks leaked: %zu -> %zu", base.live_blocks, end.live_blocks);
    cr_assert_eq(end.large_bytes, base.large_bytes, "large bytes leaked");
}

/* Size 0 with an alignment that takes the mapped path (256 KiB and up) once made a block of no
 * bytes at the very end of its mapping: usable size 0, and from 4 MiB up its address was outside
 * the mapping, so um_owns said 0 and um_free refused it ("did not allocate") and leaked it.
 * Found by the fuzzer (test/fuzz/corpus/crash-aligned-zero-size). */
Test(align, zero_size_with_any_alignment_is_a_real_block, .timeout = 60)
{
    um_totals_t base = tu_totals();
    for (size_t align = 16; align <= (size_t)16 << 20; align <<= 1) {
        void *v[4] = {um_aligned_alloc(align, 0), um_memalign(align, 0), NULL, um_aligned_alloc(align, 0)};
        cr_assert_eq(um_posix_memalign(&v[2], align, 0), 0, "um_posix_memalign(%zu, 0) failed", align);
        for (size_t k = 0; k < 4; k++) {
            cr_assert_not_null(v[k], "alignment %zu, size 0, call %zu: NULL", align, k);
            cr_assert(tu_is_aligned(v[k], align), "alignment %zu, size 0: %p", align, v[k]);
            cr_assert_eq(um_owns(v[k]), 1, "alignment %zu, size 0: um_owns(%p) = 0", align, v[k]);
            cr_assert_geq(um_malloc_usable_size(v[k]), 16, "alignment %zu, size 0: usable size %zu", align,
                          um_malloc_usable_size(v[k]));
        }
        cr_assert(v[0] != v[3], "alignment %zu, size 0: the same pointer twice", align);
        tu_capture_t cap;
        char out[1024];
        cr_assert_eq(tu_capture_begin(&cap), 0);
        for (size_t k = 0; k < 4; k++)
            um_free(v[k]);
        size_t len = tu_capture_end(&cap, out, sizeof out);
        cr_assert_eq(len, 0, "alignment %zu, size 0: um_free complained: %s", align, out);
    }
    um_totals_t end = tu_totals();
    cr_assert_eq(end.live_blocks, base.live_blocks, "blocks leaked: %zu -> %zu", base.live_blocks, end.live_blocks);
}

/* Up to 4 KiB, an alignment is met by a size class that is a multiple of it (every page's block
 * area starts on an OS page): the block is the class's own, not an inner pointer into a bigger
 * one, so it wastes no more than the class and its page keeps free()'s plain paths. */
Test(align, small_alignments_come_from_aligned_classes)
{
    static const struct { size_t align, size, usable; } cases[] = {
        {64, 100, 128}, {256, 1000, 1024}, {512, 700, 1024}, {4096, 4112, 8192}, {4096, 4096, 4096}, {4096, 9000, 12288},
        /* the class is above size + align - 16 but is the one over-allocating would take */
        {128, 1030, 1152}, {64, 1090, 1152},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        void *p = NULL;
        cr_assert_eq(um_posix_memalign(&p, cases[i].align, cases[i].size), 0);
        cr_assert_eq((uintptr_t)p % cases[i].align, 0);
        size_t usable = um_malloc_usable_size(p);
        cr_assert_eq(usable, cases[i].usable, "posix_memalign(%zu, %zu): %zu usable bytes, expected the class of %zu",
                     cases[i].align, cases[i].size, usable, cases[i].usable);
        um_segment_t *seg = umi_segment_of(p);
        um_page_t *page = umi_page_of(seg, p);
        cr_assert_eq(atomic_load(&umi_page_hot_in(seg, page)->owner) & UM_PAGE_HAS_ALIGNED, 0,
                     "posix_memalign(%zu, %zu) handed out an inner pointer", cases[i].align, cases[i].size);
        memset(p, 0x5a, cases[i].size);
        um_free(p);
    }
}

/* Every alignment up to 4 KiB and sizes up to 9 KiB, twice over (the second time the classes have
 * pages with free blocks, which aligned requests pop directly: core/alloc.c, aligned_pop): each
 * block aligned, holding the size asked for, and no larger than the class of size + align - 16
 * (what over-allocating would take). */
Test(align, aligned_blocks_fit_and_never_exceed_the_over_allocation_class, .timeout = 120)
{
    enum { N = 1300 };
    static void *p[N];
    for (int round = 0; round < 2; round++) {
        for (size_t align = 32; align <= 4096; align <<= 1) {
            size_t n = 0;
            for (size_t size = 1; size <= 9100 && n < N; size += 7, n++) {
                cr_assert_eq(um_posix_memalign(&p[n], align, size), 0);
                cr_assert_eq((uintptr_t)p[n] % align, 0, "posix_memalign(%zu, %zu) = %p", align, size, p[n]);
                size_t usable = um_malloc_usable_size(p[n]), bound = umi_bin_size(umi_bin_of(size + align - 16));
                cr_assert_geq(usable, size);
                cr_assert_leq(usable, bound, "posix_memalign(%zu, %zu): %zu usable bytes, above the %zu of over-allocating",
                              align, size, usable, bound);
                memset(p[n], 0x5a, size);
            }
            for (size_t i = 0; i < n; i++)
                um_free(p[i]);
        }
    }
    cr_expect_eq(um_check_heap(), 0);
}

/* The common aligned request pops a block straight from its class's page (aligned_pop): each
 * call still counts once as an aligned call and once as an allocation, and a successful
 * posix_memalign leaves errno as it was, on that path and on the slow one. */
Test(align, the_fast_path_counts_each_call_once_and_leaves_errno_alone)
{
    enum { N = 2000 };
    static void *p[N];
    um_free(um_malloc(1)); /* the thread's heap */
    um_stats_t before, after;
    um_stats_get(&before);
    for (size_t i = 0; i < N; i++) {
        size_t align = (size_t)32 << (i % 4), size = 16 + (i * 37) % 1500;
        errno = EDOM;
        if (i % 2 == 0) {
            cr_assert_eq(um_posix_memalign(&p[i], align, size), 0, "um_posix_memalign(%zu, %zu)", align, size);
            cr_assert_eq(errno, EDOM, "um_posix_memalign(%zu, %zu) set errno to %d", align, size, errno);
        } else {
            p[i] = um_aligned_alloc(align, size);
            cr_assert_not_null(p[i], "um_aligned_alloc(%zu, %zu)", align, size);
        }
        cr_assert(tu_is_aligned(p[i], align), "%p is not %zu-aligned", p[i], align);
        memset(p[i], (int)i, size);
    }
    um_stats_get(&after);
    cr_expect_eq(after.calls[UM_CALL_ALIGNED] - before.calls[UM_CALL_ALIGNED], N, "%llu aligned calls counted for %d",
                 (unsigned long long)(after.calls[UM_CALL_ALIGNED] - before.calls[UM_CALL_ALIGNED]), N);
    uint64_t m0 = 0, m1 = 0;
    for (size_t c = 1; c < UM_STATS_CLASSES; c++) {
        m0 += before.classes[c].mallocs;
        m1 += after.classes[c].mallocs;
    }
    cr_expect_eq(m1 - m0, N, "%llu blocks counted handed out for %d calls", (unsigned long long)(m1 - m0), N);
    for (size_t i = 0; i < N; i++) um_free(p[i]);
}

/* The class table of aligned requests is filled as requests need it (core/alloc.c,
 * aligned_learn): threads that meet the same empty entries at the same time each see a whole
 * entry or none, and every block they get is aligned and within the over-allocation bound.
 * (Under TSan, a plain store racing a plain load of an entry is reported.) */
typedef struct {
    pthread_barrier_t *start;
    unsigned seed;
    int bad;
} learn_arg_t;

static void *learn_aligned_classes(void *argp)
{
    learn_arg_t *a = argp;
    pthread_barrier_wait(a->start);
    for (int round = 0; round < 2; round++)
        for (size_t i = 0; i < 8 * 700; i++) {
            size_t k = (i * 7 + a->seed) % 8, align = (size_t)32 << k, size = 1 + (i / 8 * 13 + a->seed * 5) % 9000;
            void *p = NULL;
            if (um_posix_memalign(&p, align, size) != 0) { a->bad++; continue; }
            size_t usable = um_malloc_usable_size(p), bound = umi_bin_size(umi_bin_of(size + align - 16));
            if ((uintptr_t)p % align != 0 || usable < size || usable > bound) a->bad++;
            um_free(p);
        }
    return NULL;
}

Test(align, threads_fill_the_class_table_together, .timeout = 120)
{
    enum { T = 4 };
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, T);
    pthread_t th[T];
    learn_arg_t args[T];
    for (int t = 0; t < T; t++) {
        args[t] = (learn_arg_t){.start = &start, .seed = (unsigned)t, .bad = 0};
        cr_assert_eq(pthread_create(&th[t], NULL, learn_aligned_classes, &args[t]), 0);
    }
    for (int t = 0; t < T; t++) {
        pthread_join(th[t], NULL);
        cr_expect_eq(args[t].bad, 0, "thread %d: %d aligned blocks misaligned, short or above the bound", t, args[t].bad);
    }
    pthread_barrier_destroy(&start);
    cr_expect_eq(um_check_heap(), 0);
}
