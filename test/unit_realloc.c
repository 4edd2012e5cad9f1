/* um_realloc / um_reallocarray semantics (failures are in unit_errors.c; the 1 KiB -> 256 MiB
 * growth loop is in unit_large.c): realloc(NULL, n) is malloc, realloc(p, 0) frees, contents
 * survive growth and shrink across every size range. */
#include <pthread.h>
#include <criterion/criterion.h>

#include "test_util.h"

/* One size per range: tiny, small, medium, large pages, huge pages, mapped on their own. */
static const size_t range_sizes[] = {16,           TU_KiB,       8 * TU_KiB,    64 * TU_KiB,
                                     512 * TU_KiB, TU_MiB,       16 * TU_MiB,   100 * TU_MiB};
#define N_RANGE (sizeof range_sizes / sizeof range_sizes[0])

static void check_block(void *p, size_t n, uint64_t seed, const char *what, size_t from, size_t to)
{
    long bad = tu_check(p, n, seed);
    cr_assert_eq(bad, -1, "%s %zu -> %zu: content lost at offset %ld of %zu", what, from, to, bad, n);
}

Test(realloc, null_is_malloc)
{
    const size_t sizes[] = {0, 1, 17, 100, 4000, 100000, 700 * TU_KiB, 4 * TU_MiB};
    um_totals_t base = tu_totals();
    void *v[sizeof sizes / sizeof sizes[0]];
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        v[i] = um_realloc(NULL, sizes[i]);
        cr_assert_not_null(v[i], "um_realloc(NULL, %zu) returned NULL", sizes[i]);
        cr_assert(tu_is_aligned(v[i], 16), "um_realloc(NULL, %zu) = %p not 16-aligned", sizes[i], v[i]);
        cr_assert_geq(um_malloc_usable_size(v[i]), sizes[i]);
        cr_assert_eq(um_owns(v[i]), 1, "um_owns(um_realloc(NULL, %zu)) != 1", sizes[i]);
        tu_fill(v[i], sizes[i], i);
    }
    um_totals_t mid = tu_totals();
    cr_assert_geq(mid.live_blocks, base.live_blocks + sizeof sizes / sizeof sizes[0],
                  "um_realloc(NULL, n) did not count as an allocation");
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        cr_assert_eq(tu_check(v[i], sizes[i], i), -1);
        um_free(v[i]);
    }
    um_totals_t end = tu_totals();
    cr_assert_eq(mid.live_blocks - end.live_blocks, sizeof sizes / sizeof sizes[0],
                 "freeing the blocks from um_realloc(NULL, n) changed live_blocks by %zu",
                 mid.live_blocks - end.live_blocks);
}

Test(realloc, zero_size_frees_and_returns_null)
{
    const size_t sizes[] = {1, 16, 1000, 64 * TU_KiB, 600 * TU_KiB, 8 * TU_MiB};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *p = um_malloc(sizes[i]);
        cr_assert_not_null(p);
        memset(p, 0x11, sizes[i]);
        size_t us = um_malloc_usable_size(p);
        um_totals_t before = tu_totals();
        void *r = um_realloc(p, 0);
        cr_assert_null(r, "um_realloc(p[%zu], 0) returned %p instead of NULL", sizes[i], r);
        um_totals_t after = tu_totals();
        cr_assert_eq(before.live_blocks - after.live_blocks, 1,
                     "um_realloc(p[%zu], 0) did not free p (live_blocks %zu -> %zu)", sizes[i], before.live_blocks,
                     after.live_blocks);
        cr_assert_eq(before.live_bytes - after.live_bytes, us,
                     "um_realloc(p[%zu], 0): live_bytes went down by %zu, usable size %zu", sizes[i],
                     before.live_bytes - after.live_bytes, us);
    }
}

/* Every ordered pair of range sizes: grow or shrink, the common prefix survives. */
Test(realloc, preserves_contents_across_all_ranges, .timeout = 120)
{
    for (size_t a = 0; a < N_RANGE; a++) {
        for (size_t b = 0; b < N_RANGE; b++) {
            if (a == b)
                continue;
            size_t from = range_sizes[a], to = range_sizes[b];
            uint64_t seed = a * 100 + b;
            void *p = um_malloc(from);
            cr_assert_not_null(p, "um_malloc(%zu) returned NULL", from);
            tu_fill(p, from, seed);
            void *q = um_realloc(p, to);
            cr_assert_not_null(q, "um_realloc(%zu -> %zu) returned NULL", from, to);
            cr_assert(tu_is_aligned(q, 16), "um_realloc result %p not 16-aligned", q);
            cr_assert_geq(um_malloc_usable_size(q), to, "usable size after realloc %zu -> %zu too small", from, to);
            check_block(q, from < to ? from : to, seed, "realloc", from, to);
            memset(q, 0xa7, to); /* the whole new size is writable */
            um_free(q);
        }
    }
}

/* A chain of odd sizes up to 16 MiB and back down, content checked at every step. */
Test(realloc, chain_up_and_down_with_odd_sizes)
{
    const size_t chain[] = {1,      15,         17,          100,          1000,          1025,
                            5000,   8193,       40000,       65537,        300000,        524289,
                            TU_MiB + 1, 3 * TU_MiB + 7, 16 * TU_MiB + 1};
    const size_t n = sizeof chain / sizeof chain[0];
    const uint64_t seed = 99;
    void *p = um_malloc(chain[0]);
    cr_assert_not_null(p);
    tu_fill(p, chain[0], seed);
    size_t cur = chain[0];
    for (size_t i = 1; i < 2 * n - 1; i++) {
        size_t to = i < n ? chain[i] : chain[2 * n - 2 - i];
        void *q = um_realloc(p, to);
        cr_assert_not_null(q, "um_realloc(%zu -> %zu) returned NULL", cur, to);
        check_block(q, cur < to ? cur : to, seed, "chain", cur, to);
        tu_fill(q, to, seed); /* refill the full new size */
        p = q;
        cur = to;
    }
    um_free(p);
}

/* Growing by one byte at a time (mostly in place) and shrinking the same way. */
static unsigned char byte_at(size_t i) { return (unsigned char)(i * 7 + 1); }

static long first_bad_byte(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != byte_at(i))
            return (long)i;
    return -1;
}

Test(realloc, byte_by_byte_growth_and_shrink)
{
    size_t top = tu_pick(6000, 4000, 1500);
    unsigned char *p = um_malloc(1);
    cr_assert_not_null(p);
    p[0] = byte_at(0);
    for (size_t n = 2; n <= top; n++) {
        unsigned char *q = um_realloc(p, n);
        cr_assert_not_null(q, "um_realloc(%zu -> %zu) returned NULL", n - 1, n);
        long bad = first_bad_byte(q, n - 1);
        cr_assert_eq(bad, -1, "growth %zu -> %zu lost byte %ld", n - 1, n, bad);
        q[n - 1] = byte_at(n - 1);
        p = q;
    }
    for (size_t n = top - 1; n >= 1; n--) {
        unsigned char *q = um_realloc(p, n);
        cr_assert_not_null(q, "um_realloc(%zu -> %zu) returned NULL", n + 1, n);
        long bad = first_bad_byte(q, n);
        cr_assert_eq(bad, -1, "shrink %zu -> %zu lost byte %ld", n + 1, n, bad);
        p = q;
    }
    um_free(p);
}

Test(realloc, same_size_and_small_changes_keep_contents)
{
    const size_t sizes[] = {16, 100, 1000, 10000, 100000, TU_MiB, 5 * TU_MiB};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        void *p = um_malloc(n);
        cr_assert_not_null(p);
        tu_fill(p, n, n);
        p = um_realloc(p, n);
        cr_assert_not_null(p);
        cr_assert_eq(tu_check(p, n, n), -1, "same-size realloc of %zu lost content", n);
        p = um_realloc(p, n - 8);
        cr_assert_not_null(p);
        cr_assert_eq(tu_check(p, n - 8, n), -1, "realloc %zu -> %zu lost content", n, n - 8);
        p = um_realloc(p, n + 8);
        cr_assert_not_null(p);
        cr_assert_eq(tu_check(p, n - 8, n), -1, "realloc %zu -> %zu lost content", n - 8, n + 8);
        cr_assert_geq(um_malloc_usable_size(p), n + 8);
        um_free(p);
    }
}

/* A small block realloc'ed within its usable size (down to half of it) stays where it is, from
 * its own thread and from another (realloc finds the block from its address, as free() does),
 * and one size more moves it, contents kept. */
typedef struct {
    unsigned char *p;
    size_t n;
    void *got;
} realloc_arg_t;
static void *realloc_in_thread(void *arg)
{
    realloc_arg_t *a = arg;
    a->got = um_realloc(a->p, a->n);
    return NULL;
}

Test(realloc, a_small_block_stays_in_place_within_its_size)
{
    static const size_t sizes[] = {24, 100, 700, 3000, 8000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *p = um_malloc(sizes[i]);
        cr_assert_not_null(p);
        size_t u = um_malloc_usable_size(p);
        tu_fill(p, u, 7);
        for (size_t k = u / 2 + 1; k <= u; k += 1 + u / 64) {
            cr_assert_eq(um_realloc(p, k), p, "realloc(%p, %zu) of a block of %zu moved it", (void *)p, k, u);
            cr_assert_eq(um_realloc(p, u), p);
        }
        realloc_arg_t a = {p, u, NULL};
        pthread_t t;
        cr_assert_eq(pthread_create(&t, NULL, realloc_in_thread, &a), 0);
        pthread_join(t, NULL);
        cr_assert_eq(a.got, p, "realloc(%p, %zu) from another thread moved it", (void *)p, u);
        cr_assert_eq(tu_check(p, u, 7), -1, "in-place reallocs changed the block");
        unsigned char *q = um_realloc(p, u + 1);
        cr_assert(q != NULL && q != p, "realloc past the usable size (%zu) did not move the block", u);
        cr_assert_eq(tu_check(q, u, 7), -1, "the move lost the contents");
        um_free(q);
    }
}

Test(realloc, of_aligned_blocks_keeps_contents)
{
    const size_t aligns[] = {32, 256, 4096, 64 * TU_KiB, 2 * TU_MiB};
    for (size_t i = 0; i < sizeof aligns / sizeof aligns[0]; i++) {
        size_t n = 1000 + i;
        void *p = um_aligned_alloc(aligns[i], n);
        cr_assert_not_null(p);
        cr_assert(tu_is_aligned(p, aligns[i]));
        tu_fill(p, n, i);
        void *q = um_realloc(p, 300000);
        cr_assert_not_null(q);
        cr_assert_eq(tu_check(q, n, i), -1, "realloc of a %zu-aligned block lost content", aligns[i]);
        q = um_realloc(q, 10);
        cr_assert_not_null(q);
        cr_assert_eq(tu_check(q, 10, i), -1, "shrinking realloc of a %zu-aligned block lost content", aligns[i]);
        um_free(q);
    }
}

Test(realloc, reallocarray_normal_use)
{
    int *p = um_reallocarray(NULL, 10, sizeof(int));
    cr_assert_not_null(p, "um_reallocarray(NULL, 10, 4) returned NULL");
    cr_assert_geq(um_malloc_usable_size(p), 10 * sizeof(int));
    for (int i = 0; i < 10; i++)
        p[i] = i * i;
    int *q = um_reallocarray(p, 100000, sizeof(int));
    cr_assert_not_null(q);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(q[i], i * i, "um_reallocarray growth lost element %d", i);
    for (int i = 10; i < 100000; i++)
        q[i] = i;
    q = um_reallocarray(q, 20, sizeof(int));
    cr_assert_not_null(q);
    for (int i = 0; i < 20; i++)
        cr_assert_eq(q[i], i < 10 ? i * i : i, "um_reallocarray shrink lost element %d", i);
    um_free(q);
}

/* A list or vector that grows by an eighth at a time, as CPython's lists do, is a huge block
 * from 64 KiB on. Grown again after the last one was freed, it is taken from the front of the
 * cached piece that one left, and grows into the rest of it where it lies
 * (umi_huge_cache_take_after): resident memory, no system call. With mremap it grew into fresh
 * address space beside, and faulted in every page it gained, round after round, while the
 * resident piece went unused: mapped memory rose by the buffer's size each round. */
Test(realloc, a_growing_buffer_grows_into_the_cached_memory_after_it)
{
    size_t mapped[3] = {0};
    for (int round = 0; round < 3; round++) {
        size_t n = 48 * TU_KiB;
        char *p = um_malloc(n);
        cr_assert_not_null(p);
        tu_fill(p, n, 7);
        while (n < 8 * TU_MiB) {
            size_t grown = n + n / 8 + 64;
            char *q = um_realloc(p, grown);
            cr_assert_not_null(q, "um_realloc(%zu) returned NULL", grown);
            check_block(q, n, 7, "growth", n, grown);
            tu_fill(q, grown, 7);
            p = q;
            n = grown;
        }
        mapped[round] = tu_totals().mapped_bytes;
        um_free(p);
    }
    fprintf(stderr, "[realloc/grow into cache] mapped at 8 MiB, rounds 1-3: %.1f, %.1f, %.1f MiB\n", tu_mib(mapped[0]),
            tu_mib(mapped[1]), tu_mib(mapped[2]));
    cr_assert_leq(mapped[2], mapped[0] + TU_MiB, "round 3 mapped %.1f MiB more than round 1: it did not grow into the cached piece",
                  tu_mib(mapped[2] - mapped[0]));
}

/* With no cached piece right after it, a growing huge block that would gain fresh pages by
 * mremap is copied into a resident cached piece instead, when one has room: the copy costs
 * less than a page fault per page gained. */
Test(realloc, a_growing_buffer_moves_into_resident_cached_memory)
{
    size_t n = 48 * TU_KiB;
    char *b = um_malloc(n);
    cr_assert_not_null(b);
    while (n < 200 * TU_KiB) { /* grown step by step: from 64 KiB on a huge block of its own */
        n += n / 8;
        b = um_realloc(b, n);
        cr_assert_not_null(b);
    }
    tu_fill(b, n, 11);
    char *spacer = um_malloc(TU_MiB); /* live: whatever comes next is not right after b */
    cr_assert_not_null(spacer);
    char *c = um_malloc(8 * TU_MiB); /* freed: a resident 8 MiB piece in the cache */
    cr_assert_not_null(c);
    memset(c, 0x33, 8 * TU_MiB);
    um_free(c);
    size_t before = tu_totals().mapped_bytes;
    char *q = b;
    while (n < 4 * TU_MiB) { /* by an eighth at a time */
        size_t grown = n + n / 8;
        q = um_realloc(b, grown);
        cr_assert_not_null(q);
        check_block(q, n, 11, "growth", n, grown);
        tu_fill(q, grown, 11);
        b = q;
        n = grown;
    }
    size_t after = tu_totals().mapped_bytes;
    cr_assert(q >= c - 4096 && q < c + 8 * TU_MiB, "grown to %zu at %p, not in the cached piece at %p", n, (void *)q, (void *)c);
    cr_assert_leq(after, before + TU_MiB, "mapped went from %.1f to %.1f MiB", tu_mib(before), tu_mib(after));
    um_free(q);
    um_free(spacer);
}

/* Two buffers growing in turn, each from 64 KiB on a huge block of its own, with two freed
 * 3 MiB blocks in the cache: the second buffer starts in the other piece, not right behind
 * the first, so that both grow in place to 2 MiB, never copied. When the second took the rest
 * of the first one's piece (the smallest fit), the first could not grow any more, was copied
 * elsewhere, and left its old block behind in the cache. */
static char *grow_step(char *p, size_t *n, uint64_t seed)
{
    size_t grown = *n + *n / 8;
    char *q = um_realloc(p, grown);
    cr_assert_not_null(q, "um_realloc(%zu) returned NULL", grown);
    check_block(q, *n, seed, "growth", *n, grown);
    tu_fill(q, grown, seed);
    *n = grown;
    return q;
}

Test(realloc, buffers_growing_side_by_side_grow_in_place)
{
    const size_t piece = 3 * TU_MiB;
    char *a = um_malloc(piece), *spacer = um_malloc(piece), *b = um_malloc(piece);
    cr_assert(a != NULL && spacer != NULL && b != NULL);
    memset(a, 1, piece);
    memset(b, 2, piece);
    um_free(a);
    um_free(b);
    size_t n1 = 48 * TU_KiB, n2 = 48 * TU_KiB;
    char *v1 = um_malloc(n1), *v2 = um_malloc(n2);
    cr_assert(v1 != NULL && v2 != NULL);
    tu_fill(v1, n1, 21);
    tu_fill(v2, n2, 22);
    while (n1 < 80 * TU_KiB) { /* both become huge blocks, one after the other */
        v1 = grow_step(v1, &n1, 21);
        v2 = grow_step(v2, &n2, 22);
    }
    char *start1 = v1, *start2 = v2;
    while (n1 < 2 * TU_MiB) {
        v1 = grow_step(v1, &n1, 21);
        v2 = grow_step(v2, &n2, 22);
        cr_assert(v1 == start1 && v2 == start2, "at %zu bytes the buffers moved: %p -> %p, %p -> %p", n1, (void *)start1,
                  (void *)v1, (void *)start2, (void *)v2);
    }
    um_free(v1);
    um_free(v2);
    um_free(spacer);
}
