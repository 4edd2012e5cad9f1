/* Failures and bad input: ENOMEM for impossible sizes and overflowing products (with the old
 * block left intact), and frees that must neither crash nor corrupt the heap: foreign pointers
 * and double frees. */
#include <criterion/criterion.h>
#include <malloc.h>

#include "test_util.h"

static unsigned char static_array[512];

/* After an error: the heap still hands out distinct, writable, non-overlapping blocks. */
static void assert_heap_still_works(size_t size, size_t count, const char *after)
{
    tu_block_t *blk = calloc(count, sizeof *blk);
    cr_assert_not_null(blk);
    for (size_t i = 0; i < count; i++) {
        size_t n = size ? size : 1 + (i * 131) % 3000;
        blk[i].p = um_malloc(n);
        blk[i].size = n;
        cr_assert_not_null(blk[i].p, "after %s: um_malloc(%zu) returned NULL", after, n);
        tu_fill(blk[i].p, n, tu_seed(blk[i].p, n));
    }
    for (size_t i = 0; i < count; i++) {
        long bad = tu_check(blk[i].p, blk[i].size, tu_seed(blk[i].p, blk[i].size));
        cr_assert_eq(bad, -1, "after %s: block %zu (%zu B) corrupted at %ld", after, i, blk[i].size, bad);
    }
    long ov = tu_find_overlap(blk, count);
    cr_assert_eq(ov, -1, "after %s: the heap handed out overlapping blocks %p (+%zu) and %p", after,
                 ov >= 0 ? blk[ov].p : NULL, ov >= 0 ? blk[ov].size : 0, ov >= 0 ? blk[ov + 1].p : NULL);
    for (size_t i = 0; i < count; i++)
        um_free(blk[i].p);
    free(blk);
}

Test(errors, malloc_impossible_sizes_enomem)
{
    const size_t sizes[] = {SIZE_MAX, SIZE_MAX / 2 + 1, SIZE_MAX - 4095, SIZE_MAX - 2 * TU_MiB, SIZE_MAX - 15,
                            (size_t)PTRDIFF_MAX + 1, (size_t)1 << 62};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        errno = 0;
        void *p = um_malloc(sizes[i]);
        cr_assert_null(p, "um_malloc(%#zx) returned %p", sizes[i], p);
        cr_assert_eq(errno, ENOMEM, "um_malloc(%#zx) failed with errno %d, want ENOMEM", sizes[i], errno);
    }
    assert_heap_still_works(0, 1000, "failed mallocs");
}

Test(errors, calloc_overflow_enomem)
{
    const struct {
        size_t n, m;
    } cases[] = {{SIZE_MAX / 2, 3},
                 {3, SIZE_MAX / 2},
                 {SIZE_MAX, SIZE_MAX},
                 {(size_t)1 << 32, (size_t)1 << 32},
                 {((size_t)1 << 32) + 1, (size_t)1 << 32},
                 {SIZE_MAX / 16 + 1, 16},
                 {SIZE_MAX, 1},
                 {1, SIZE_MAX / 2 + 1}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        errno = 0;
        void *p = um_calloc(cases[i].n, cases[i].m);
        cr_assert_null(p, "um_calloc(%#zx, %#zx) returned %p", cases[i].n, cases[i].m, p);
        cr_assert_eq(errno, ENOMEM, "um_calloc(%#zx, %#zx): errno %d, want ENOMEM", cases[i].n, cases[i].m, errno);
    }
    assert_heap_still_works(0, 1000, "failed callocs");
}

Test(errors, reallocarray_overflow_keeps_block)
{
    const size_t n = 100;
    void *p = um_malloc(n);
    cr_assert_not_null(p);
    tu_fill(p, n, 5);
    errno = 0;
    void *r = um_reallocarray(p, SIZE_MAX / 2, 3);
    cr_assert_null(r, "um_reallocarray(p, SIZE_MAX/2, 3) returned %p", r);
    cr_assert_eq(errno, ENOMEM, "um_reallocarray overflow: errno %d", errno);
    errno = 0;
    r = um_reallocarray(p, (size_t)1 << 33, (size_t)1 << 33);
    cr_assert_null(r);
    cr_assert_eq(errno, ENOMEM);
    cr_assert_eq(tu_check(p, n, 5), -1, "um_reallocarray overflow damaged the block");
    cr_assert_eq(um_owns(p), 1, "block no longer owned after a failed um_reallocarray");
    /* p is still a live, usable block */
    void *q = um_reallocarray(p, 1000, 10);
    cr_assert_not_null(q);
    cr_assert_eq(tu_check(q, n, 5), -1, "content lost when growing after a failed um_reallocarray");
    um_free(q);

    errno = 0;
    cr_assert_null(um_reallocarray(NULL, SIZE_MAX, 2));
    cr_assert_eq(errno, ENOMEM);
}

Test(errors, realloc_impossible_size_keeps_block)
{
    const size_t sizes[] = {100, 5000, 100000, 4 * TU_MiB};
    const size_t huge[] = {SIZE_MAX, SIZE_MAX / 2 + 1, SIZE_MAX - 16, SIZE_MAX - 2 * TU_MiB};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        void *p = um_malloc(n);
        cr_assert_not_null(p);
        tu_fill(p, n, i);
        um_totals_t before = tu_totals();
        for (size_t k = 0; k < sizeof huge / sizeof huge[0]; k++) {
            errno = 0;
            void *r = um_realloc(p, huge[k]);
            cr_assert_null(r, "um_realloc(%zu-byte block, %#zx) returned %p", n, huge[k], r);
            cr_assert_eq(errno, ENOMEM, "um_realloc(.., %#zx): errno %d, want ENOMEM", huge[k], errno);
            long bad = tu_check(p, n, i);
            cr_assert_eq(bad, -1, "failed um_realloc(.., %#zx) changed the %zu-byte block at %ld", huge[k], n, bad);
        }
        cr_assert_geq(um_malloc_usable_size(p), n);
        um_totals_t after = tu_totals();
        cr_assert_eq(after.live_blocks, before.live_blocks, "failed reallocs changed live_blocks %zu -> %zu",
                     before.live_blocks, after.live_blocks);
        um_free(p); /* still freeable */
        cr_assert_eq(after.live_blocks - tu_totals().live_blocks, 1, "freeing the block after failed reallocs");
    }
    errno = 0;
    cr_assert_null(um_realloc(NULL, SIZE_MAX), "um_realloc(NULL, SIZE_MAX) did not fail");
    cr_assert_eq(errno, ENOMEM);
    assert_heap_still_works(0, 1000, "failed reallocs");
}

Test(errors, usable_size_of_foreign_pointer_is_zero)
{
    int stack_var = 1;
    void *libc_ptr = malloc(64);
    cr_assert_not_null(libc_ptr);
    cr_assert_eq(um_malloc_usable_size(&stack_var), 0, "usable size of a stack address != 0");
    cr_assert_eq(um_malloc_usable_size(static_array), 0, "usable size of a static array != 0");
    cr_assert_eq(um_malloc_usable_size(libc_ptr), 0, "usable size of a libc malloc pointer != 0");
    free(libc_ptr);
}

Test(errors, free_foreign_pointers_neither_crashes_nor_corrupts)
{
    unsigned char stack_buf[256];
    memset(stack_buf, 0x42, sizeof stack_buf);
    memset(static_array, 0x43, sizeof static_array);
    unsigned char *libc_small = malloc(200);
    unsigned char *libc_large = malloc(3 * TU_MiB); /* mmapped by glibc */
    cr_assert(libc_small && libc_large);
    memset(libc_small, 0x44, 200);
    memset(libc_large, 0x45, 3 * TU_MiB);

    /* some live umalloc blocks that must survive */
    enum { LIVE = 300 };
    tu_block_t live[LIVE];
    for (size_t i = 0; i < LIVE; i++) {
        live[i].size = 1 + (i * 97) % 4000;
        live[i].p = um_malloc(live[i].size);
        cr_assert_not_null(live[i].p);
        tu_fill(live[i].p, live[i].size, tu_seed(live[i].p, live[i].size));
    }
    um_totals_t before = tu_totals();

    tu_capture_t cap;
    char out[8192];
    cr_assert_eq(tu_capture_begin(&cap), 0);
    um_free(stack_buf + 64);
    um_free(static_array + 16);
    um_free(libc_small);
    um_free(libc_large);
    size_t len = tu_capture_end(&cap, out, sizeof out);
    cr_assert_gt(len, 0, "freeing foreign pointers printed nothing on stderr");

    um_totals_t after = tu_totals();
    cr_assert_eq(after.live_blocks, before.live_blocks, "foreign frees changed live_blocks %zu -> %zu",
                 before.live_blocks, after.live_blocks);
    cr_assert_eq(tu_check_byte(stack_buf, sizeof stack_buf, 0x42), -1, "um_free wrote into the stack buffer");
    cr_assert_eq(tu_check_byte(static_array, sizeof static_array, 0x43), -1, "um_free wrote into the static array");
    cr_assert_eq(tu_check_byte(libc_small, 200, 0x44), -1, "um_free wrote into a libc block");
    cr_assert_eq(tu_check_byte(libc_large, 3 * TU_MiB, 0x45), -1, "um_free changed a libc mmapped block");
    free(libc_small); /* libc's heap is intact too */
    free(libc_large);
    for (size_t i = 0; i < LIVE; i++) {
        long bad = tu_check(live[i].p, live[i].size, tu_seed(live[i].p, live[i].size));
        cr_assert_eq(bad, -1, "live block %zu damaged by foreign frees at %ld", i, bad);
        um_free(live[i].p);
    }
    assert_heap_still_works(0, 5000, "foreign frees");
    assert_heap_still_works(100000, 50, "foreign frees");
}

/* A thread with a cancel pending (pthread_cancel, deferred) frees a pointer that is not ours.
 * The report must be written and free must return: libc's write(2) is a cancellation point,
 * and the thread was once unwound inside free, the report unwritten. The cancel still acts at
 * the thread's next cancellation point. */
static _Atomic int bad_free_returned;

static void *free_with_a_cancel_pending(void *bad)
{
    pthread_cancel(pthread_self());
    um_free(bad);
    atomic_store(&bad_free_returned, 1);
    pthread_testcancel();
    return NULL;
}

Test(errors, bad_free_with_a_cancel_pending_is_reported_and_returns)
{
    unsigned char stack_buf[64];
    tu_capture_t cap;
    char out[4096];
    cr_assert_eq(tu_capture_begin(&cap), 0);
    pthread_t t;
    void *result = NULL;
    cr_assert_eq(pthread_create(&t, NULL, free_with_a_cancel_pending, stack_buf + 16), 0);
    cr_assert_eq(pthread_join(t, &result), 0);
    size_t len = tu_capture_end(&cap, out, sizeof out);
    cr_assert_eq(atomic_load(&bad_free_returned), 1, "the thread was cancelled inside um_free");
    cr_assert_gt(len, 0, "the bad free was not reported");
    cr_assert_eq(result, PTHREAD_CANCELED, "the pending cancel was lost");
    assert_heap_still_works(0, 1000, "a bad free with a cancel pending");
}

/* free()'s fast path compares bits 40..55 of a pointer with the small-page region's number
 * (core/fastpath.h, umi_in_small_region). Addresses that share a small block's other bits but
 * lie in another TiB, or above 2^47 (5-level paging's user space), are not ours: each must be
 * reported without being read (a compare of fewer bits would load their owner word, unmapped
 * here, and crash). */
Test(errors, free_of_addresses_beside_the_small_region_is_reported)
{
    unsigned char *block = um_malloc(48);
    cr_assert_not_null(block);
    tu_fill(block, 48, tu_seed(block, 48));
    const unsigned flip[] = {40, 46, 47, 48, 54, 55};
    um_totals_t before = tu_totals();
    tu_capture_t cap;
    char out[8192];
    for (size_t i = 0; i < sizeof flip / sizeof flip[0]; i++) {
        void *beside = (void *)((uintptr_t)block ^ ((uintptr_t)1 << flip[i]));
        cr_assert_eq(tu_capture_begin(&cap), 0);
        um_free(beside);
        size_t len = tu_capture_end(&cap, out, sizeof out);
        cr_assert_gt(len, 0, "um_free(%p), the block %p with bit %u flipped, printed nothing", beside, (void *)block, flip[i]);
    }
    um_totals_t after = tu_totals();
    cr_assert_eq(after.live_blocks, before.live_blocks, "frees beside the region changed live_blocks %zu -> %zu",
                 before.live_blocks, after.live_blocks);
    cr_assert_eq(tu_check(block, 48, tu_seed(block, 48)), -1, "the block changed");
    um_free(block);
    assert_heap_still_works(48, 1000, "frees beside the region");
}

static const size_t small_sizes[] = {16, 32, 48, 100, 256, 1024};

Test(errors, double_free_of_small_block_is_detected)
{
    if (tu_is_asan()) /* ASan stops the program at a double free: asan::double_free_is_reported */
        cr_skip_test("under ASan a double free is reported and fatal; asan::double_free_is_reported checks it");
    for (size_t i = 0; i < sizeof small_sizes / sizeof small_sizes[0]; i++) {
        size_t n = small_sizes[i];
        void *keep = um_malloc(n); /* so the page is not empty */
        void *p = um_malloc(n);
        cr_assert(keep && p);
        um_free(p);
        tu_capture_t cap;
        char out[4096];
        cr_assert_eq(tu_capture_begin(&cap), 0);
        um_free(p);
        size_t len = tu_capture_end(&cap, out, sizeof out);
        cr_assert_gt(len, 0, "double free of a %zu-byte block printed nothing", n);
        cr_assert_not_null(strstr(out, "double free"), "double free of a %zu-byte block not reported as such: %s", n,
                           out);
        cr_assert_eq(tu_count_lines(out), 1, "double free report should be one line, got: %s", out);
        void *a = um_malloc(n);
        void *b = um_malloc(n);
        cr_assert(a && b);
        cr_assert(a != b, "after a double free of %p, two um_malloc(%zu) both returned %p", p, n, a);
        um_free(a);
        um_free(b);
        um_free(keep);
        assert_heap_still_works(n, 2000, "a double free");
    }
}

/* The double free comes after another free of the same size, so the block is not the most
 * recently freed one. */
Test(errors, double_free_after_other_frees_is_detected)
{
    if (tu_is_asan()) /* ASan stops the program at a double free: asan::double_free_is_reported */
        cr_skip_test("under ASan a double free is reported and fatal; asan::double_free_is_reported checks it");
    for (size_t i = 0; i < sizeof small_sizes / sizeof small_sizes[0]; i++) {
        size_t n = small_sizes[i];
        void *keep = um_malloc(n);
        void *p = um_malloc(n);
        void *q = um_malloc(n);
        cr_assert(keep && p && q);
        um_free(p);
        um_free(q);
        tu_capture_t cap;
        char out[4096];
        cr_assert_eq(tu_capture_begin(&cap), 0);
        um_free(p);
        size_t len = tu_capture_end(&cap, out, sizeof out);
        cr_assert_gt(len, 0, "double free of a %zu-byte block (after another free) printed nothing", n);
        cr_assert_not_null(strstr(out, "double free"), "not reported as a double free: %s", out);
        void *a = um_malloc(n), *b = um_malloc(n), *c = um_malloc(n);
        cr_assert(a && b && c);
        cr_assert(a != b && b != c && a != c, "after a double free, um_malloc(%zu) x3 returned %p %p %p", n, a, b, c);
        um_free(a);
        um_free(b);
        um_free(c);
        um_free(keep);
        assert_heap_still_works(n, 2000, "a double free after other frees");
    }
}

/* A pointer into the middle of a block, 16-byte aligned, freed by a thread that does not own
 * the block's page (every such free takes the checked path) or, for a medium block, by its
 * owner: reported, and the block stays in use, intact. */
static void *free_from_thread(void *p)
{
    um_free(p);
    return NULL;
}

Test(errors, free_of_a_pointer_inside_a_block_is_reported)
{
    static const size_t sizes[] = {48, 112, 1000, 20000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        unsigned char *p = um_malloc(n);
        cr_assert_not_null(p);
        tu_fill(p, n, tu_seed(p, n));
        for (int remote = 0; remote <= 1; remote++) {
            if (!remote && n <= 4096) continue; /* the owner's free of a small block (up to 4 KiB) is the unchecked fast path */
            um_totals_t before = tu_totals();
            tu_capture_t cap;
            char out[4096];
            cr_assert_eq(tu_capture_begin(&cap), 0);
            if (remote) {
                pthread_t t;
                cr_assert_eq(pthread_create(&t, NULL, free_from_thread, p + 32), 0);
                pthread_join(t, NULL);
            } else {
                um_free(p + 32);
            }
            size_t len = tu_capture_end(&cap, out, sizeof out);
            cr_assert_gt(len, 0, "free(p + 32) of a %zu-byte block (%s) printed nothing", n, remote ? "other thread" : "owner");
            cr_assert(strstr(out, "middle of a block") != NULL, "%zu-byte block: stderr said: %s", n, out);
            um_totals_t after = tu_totals();
            cr_assert_eq(after.live_blocks, before.live_blocks, "%zu-byte block: live blocks %zu -> %zu", n,
                         before.live_blocks, after.live_blocks);
        }
        cr_assert_eq(tu_check(p, n, tu_seed(p, n)), -1, "%zu-byte block changed by the bad free", n);
        um_free(p);
    }
    assert_heap_still_works(0, 2000, "frees inside blocks");
}
