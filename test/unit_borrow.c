/* A size class's first blocks in a heap borrowed from a slightly larger class's page
 * (page_borrow in core/page.c): where they come from, that it stops, that aligned allocation
 * still gets its own class, and that a borrowing class never follows a page its lender gave up. */
#include <criterion/criterion.h>
#include <pthread.h>

#include "core/internal.h"
#include "test_util.h"

/* 150 bytes are a 160-byte block; the next class, 176 bytes, may lend to it. */
enum { SMALL = 150, SMALL_CLASS = 160, LENDER = 176, OTHER = 48 };

static void *in_fresh_thread(void *(*fn)(void *))
{
    pthread_t t;
    void *result = NULL;
    cr_assert_eq(pthread_create(&t, NULL, fn, NULL), 0);
    cr_assert_eq(pthread_join(t, &result), 0);
    return result;
}

static int same_page(const void *a, const void *b)
{
    um_segment_t *sa = umi_segment_of(a), *sb = umi_segment_of(b);
    return sa == sb && umi_page_of(sa, a) == umi_page_of(sb, b);
}

static void *borrow_and_stop(void *arg)
{
    (void)arg;
    cr_assert_eq(umi_bin_size(umi_bin_of(SMALL)), SMALL_CLASS);
    cr_assert_eq(umi_bin_size(umi_bin_of(SMALL_CLASS) + 1), LENDER);
    cr_assert(umi_bin_may_lend(umi_bin_of(SMALL), umi_bin_of(LENDER)));
    void *lender = um_malloc(LENDER);
    void *first = um_malloc(SMALL);
    cr_assert_not_null(first);
    cr_expect_eq(um_malloc_usable_size(first), LENDER, "a class's first block in a heap: %zu usable bytes, not the %d of "
                 "the larger class already in use", um_malloc_usable_size(first), LENDER);
    cr_expect(same_page(first, lender), "the first %d-byte block is not in the page of the %d-byte one", SMALL, LENDER);
    cr_expect_eq(um_check_heap(), 0, "the heap check rejects a class that borrows");

    /* a class in use gets its own page soon: at most UM_BORROW_MAX borrowings, each of the
     * lender page's free blocks and one carve of at most 4 KiB */
    enum { N = 600 };
    void *p[N];
    size_t own = 0;
    for (size_t i = 0; i < N; i++) {
        cr_assert_not_null(p[i] = um_malloc(SMALL));
        own += um_malloc_usable_size(p[i]) == SMALL_CLASS;
    }
    size_t borrowed_max = UM_BORROW_MAX * (4096 / LENDER + 1);
    cr_expect_geq(own, N - borrowed_max, "%zu of %d blocks of %d bytes in their own class: it borrowed more than %zu", own, N,
                  SMALL, borrowed_max);
    cr_expect_eq(um_check_heap(), 0);
    for (size_t i = 0; i < N; i++)
        um_free(p[i]);
    um_free(first);
    um_free(lender);
    return NULL;
}

Test(borrow, a_class_borrows_its_first_blocks_and_then_gets_its_own)
{
    in_fresh_thread(borrow_and_stop);
}

/* The borrowing class's mallocs point at its lender's first page. When that page stops being
 * first (it filled up), empties and is retired, its slot may be set up for blocks of another
 * size: a malloc of the borrowing class must not follow it there. */
static void *lender_page_retired(void *arg)
{
    (void)arg;
    enum { MAX = 20000 };
    static void *l[MAX], *o[MAX];
    l[0] = um_malloc(LENDER);
    void *borrowed = um_malloc(SMALL);
    cr_assert(same_page(borrowed, l[0]), "no borrowing to start from");
    um_segment_t *seg = umi_segment_of(l[0]);
    um_page_t *page = umi_page_of(seg, l[0]);
    size_t n = 1;
    while (n < MAX && same_page(l[n - 1], l[0])) /* until the lender's first page is full */
        cr_assert_not_null(l[n++] = um_malloc(LENDER));
    cr_assert_lt(n, MAX, "the lender's page never filled");
    for (size_t i = 0; i + 1 < n; i++) { /* the page's blocks (the last is in the next page) */
        um_free(l[i]);
        l[i] = NULL;
    }
    um_free(borrowed); /* the page is empty and not its class's first: the next slow path after
                        * um_trim retires it */
    um_trim(0);
    size_t m = 0;
    int reused = 0;
    while (m < MAX && !reused) { /* blocks of another size until one lies in the slot again */
        cr_assert_not_null(o[m] = um_malloc(OTHER));
        reused = umi_segment_of(o[m]) == seg && umi_page_of(seg, o[m]) == page;
        m++;
    }
    cr_assert(reused, "the retired slot was not reused in %d mallocs", MAX);
    void *q = um_malloc(SMALL);
    cr_assert_not_null(q);
    cr_expect_geq(um_malloc_usable_size(q), SMALL, "a %d-byte malloc got a block of %zu bytes: it followed its lender's old "
                  "page into a page of another class", SMALL, um_malloc_usable_size(q));
    cr_expect_eq(um_check_heap(), 0);
    um_free(q);
    for (size_t i = 0; i < m; i++)
        um_free(o[i]);
    for (size_t i = 0; i < n; i++)
        um_free(l[i]);
    return NULL;
}

Test(borrow, a_class_never_follows_its_lenders_page_into_another_class)
{
    in_fresh_thread(lender_page_retired);
}

/* memalign(64, 192) takes a block of the 192-byte class, whose blocks lie at multiples of 192
 * from a 64-aligned page start: the 208-byte class, which could lend to it, has blocks that do
 * not. */
static void *aligned_no_borrow(void *arg)
{
    (void)arg;
    cr_assert(umi_bin_may_lend(umi_bin_of(192), umi_bin_of(208)));
    void *lender = um_malloc(208);
    void *a = um_memalign(64, 192);
    cr_assert_not_null(a);
    cr_expect(tu_is_aligned(a, 64), "memalign(64, 192) = %p", a);
    cr_expect_eq(um_malloc_usable_size(a), 192);
    void *b = um_malloc(192);
    cr_expect_eq(um_malloc_usable_size(b), 192, "after an aligned block of its class, a malloc of it borrowed");
    um_free(b);
    um_free(a);
    um_free(lender);
    return NULL;
}

Test(borrow, an_aligned_block_comes_from_its_own_class)
{
    in_fresh_thread(aligned_no_borrow);
}

/* A class that has borrowed UM_BORROW_MAX times still has its mallocs pointed at its lender's
 * page (the last borrowing counts up to the limit and stops nothing): an aligned request of the
 * class must not pop a block there. 176-byte blocks lie at odd multiples of 16 from an aligned
 * page start every other block; the 160-byte class asked for at 32 bytes has every block
 * aligned. */
static void *aligned_after_the_last_borrowing(void *arg)
{
    (void)arg;
    enum { MAX = 1000 };
    static void *borrowed[MAX];
    size_t bin = umi_bin_of(SMALL), n = 0;
    void *lender = um_malloc(LENDER);
    /* each borrowing is a slow path; the fast path then takes the lender page's blocks */
    while (umi_tl_heap->borrows[bin] < UM_BORROW_MAX) {
        cr_assert_lt(n, MAX, "%d blocks of %d bytes and the class still borrows", MAX, SMALL);
        cr_assert_not_null(borrowed[n] = um_malloc(SMALL));
        cr_assert_eq(um_malloc_usable_size(borrowed[n]), LENDER, "block %zu of %d bytes is not borrowed", n, SMALL);
        n++;
    }
    void *a[8];
    for (size_t i = 0; i < 8; i++) {
        cr_assert_eq(um_posix_memalign(&a[i], 32, SMALL), 0);
        cr_assert(tu_is_aligned(a[i], 32), "posix_memalign(32, %d) number %zu after the last borrowing = %p", SMALL, i + 1, a[i]);
        cr_assert_eq(um_malloc_usable_size(a[i]), SMALL_CLASS, "posix_memalign(32, %d) took a %zu-byte block", SMALL,
                     um_malloc_usable_size(a[i]));
    }
    for (size_t i = 0; i < 8; i++)
        um_free(a[i]);
    for (size_t i = 0; i < n; i++)
        um_free(borrowed[i]);
    um_free(lender);
    return NULL;
}

Test(borrow, an_aligned_request_never_takes_a_lenders_block)
{
    in_fresh_thread(aligned_after_the_last_borrowing);
}
