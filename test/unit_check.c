/* The heap checker, um_check_heap(): clean on a heap that went through every path (threads
 * handing blocks to each other and exiting, huge blocks, trim), and each broken invariant of
 * a planted corruption found and named in one line. Also where every other unit test ends: a
 * destructor checks the heap in each test's process when the test is over (check_after_test).
 * UMALLOC_CHECK=1 is tested on a real program in test/sys_check.c. */
#include <criterion/criterion.h>
#include <sys/wait.h>

#include "core/block.h"
#include "core/internal.h"
#include "test_util.h"

/* Every test's process, when it exits normally: the heap the test leaves must be consistent.
 * Criterion runs each test in a process of its own, which ends through exit(), so this runs
 * once per test (and in the runner, where it finds an untouched heap). A broken heap aborts,
 * and Criterion reports the test as crashed, with the checker's lines above. */
__attribute__((destructor)) static void check_after_test(void) {
    if (um_check_heap() != 0) {
        fprintf(stderr, "unit tests: the heap is broken at the end of this test (lines above)\n");
        abort();
    }
}

/* Run um_check_heap with stderr captured; returns its result and what it printed. */
static size_t check_captured(char *out, size_t cap) {
    tu_capture_t capture;
    cr_assert_eq(tu_capture_begin(&capture), 0);
    size_t problems = um_check_heap();
    tu_capture_end(&capture, out, cap);
    return problems;
}

typedef struct {
    void **slots;
    size_t n;
    unsigned seed;
} churn_arg_t;

/* Allocate into and free from shared slots: blocks cross threads both ways. */
static void *churn_main(void *argp) {
    churn_arg_t *a = argp;
    tu_rng_t r = tu_rng(a->seed);
    for (size_t i = 0; i < 20000; i++) {
        size_t k = tu_range(&r, 0, a->n - 1);
        void *old = __atomic_exchange_n(&a->slots[k], NULL, __ATOMIC_ACQ_REL);
        um_free(old);
        size_t size = tu_range(&r, 0, 7) == 0 ? tu_range(&r, 8192, 300000) : tu_range(&r, 1, 600);
        void *p = um_malloc(size);
        if (p == NULL) abort(); /* no Criterion assertion off the main thread */
        memset(p, 0xab, size < 64 ? size : 64);
        void *prev = __atomic_exchange_n(&a->slots[k], p, __ATOMIC_ACQ_REL);
        um_free(prev);
    }
    return NULL;
}

Test(check, clean_after_threads_huge_blocks_and_trim) {
    size_t n = 512;
    void **slots = calloc(n, sizeof(void *));
    cr_assert_eq(um_check_heap(), 0);
    for (int round = 0; round < 3; round++) {
        pthread_t t[3];
        churn_arg_t args[3];
        for (int i = 0; i < 3; i++) {
            args[i] = (churn_arg_t){slots, n, (unsigned)(round * 3 + i + 1)};
            cr_assert_eq(pthread_create(&t[i], NULL, churn_main, &args[i]), 0);
        }
        for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
        /* the exited threads' heaps wait for a taker, or were abandoned: both are walked */
        cr_assert_eq(um_check_heap(), 0, "round %d: the heap checker found problems (stderr)", round);
    }
    void *huge = um_malloc(5 * TU_MiB), *grown = um_realloc(um_malloc(100 * TU_KiB), 3 * TU_MiB);
    cr_assert(huge != NULL && grown != NULL);
    cr_assert_eq(um_check_heap(), 0);
    um_free(huge);
    um_free(grown);
    for (size_t i = 0; i < n; i++) um_free(slots[i]);
    free(slots);
    um_trim(0);
    cr_assert_eq(um_check_heap(), 0);
}

/* Two blocks of one class, the first freed: its free-list link is the first word. */
static void *planted_pair(void **live) {
    void *keep_page = um_malloc(48); /* the page stays in use whatever happens to the two */
    void *a = um_malloc(48);
    *live = um_malloc(48);
    cr_assert(keep_page && a && *live);
    um_free(a);
    return a;
}

/* Check with freed's free-list link set to `link` (through the accessors ASan does not check:
 * the block is poisoned), then put it back; returns what the checker found and said. */
static size_t check_with_link(um_block_t *freed, uintptr_t link, char *out, size_t cap) {
    uintptr_t saved = umi_link_load(freed);
    umi_link_store(freed, link);
    size_t problems = check_captured(out, cap);
    umi_link_store(freed, saved);
    return problems;
}

Test(check, finds_a_free_list_link_into_a_live_block) {
    void *live;
    um_block_t *freed = planted_pair(&live);
    char out[2048]; /* a use-after-free write: malloc would hand `live` out twice */
    size_t problems = check_with_link(freed, (uintptr_t)live, out, sizeof out);
    cr_assert_geq(problems, 1, "not found; checker said: %s", out);
    cr_assert(strstr(out, "umalloc: heap check: ") != NULL, "no line: %s", out);
    cr_assert(strstr(out, "free and used blocks do not add up") != NULL || strstr(out, "twice") != NULL, "checker said: %s", out);
    cr_assert_eq(um_check_heap(), 0, "the repaired heap must check clean");
}

Test(check, finds_a_free_list_link_out_of_its_page) {
    void *live;
    um_block_t *freed = planted_pair(&live);
    char out[2048];
    size_t problems = check_with_link(freed, (uintptr_t)freed + 3 * UM_SMALL_PAGE_SIZE, out, sizeof out);
    cr_assert_geq(problems, 1);
    cr_assert(strstr(out, "free-list block outside the carved blocks of its page") != NULL, "checker said: %s", out);
    char where[32];
    snprintf(where, sizeof where, "%p", (void *)((uintptr_t)freed + 3 * UM_SMALL_PAGE_SIZE));
    cr_assert(strstr(out, where) != NULL, "the line must say where (%s): %s", where, out);
}

Test(check, finds_a_free_list_cycle) {
    void *live;
    um_block_t *freed = planted_pair(&live);
    char out[2048]; /* a cycle: malloc would hand the same block out forever */
    size_t problems = check_with_link(freed, (uintptr_t)freed, out, sizeof out);
    cr_assert_geq(problems, 1);
    cr_assert(strstr(out, "block twice on the free lists of its page") != NULL, "checker said: %s", out);
}

Test(check, finds_overwritten_page_guard_words) {
    void *p = um_malloc(64);
    cr_assert_not_null(p);
    um_page_hot_t *hot = umi_page_hot(umi_page_of(umi_segment_of(p), p));
    uintptr_t saved = hot->guard[1];
    hot->guard[1] = 0x4141414141414141u; /* an overflow off the page's last block */
    char out[2048];
    size_t problems = check_captured(out, sizeof out);
    hot->guard[1] = saved;
    um_free(p);
    cr_assert_geq(problems, 1);
    cr_assert(strstr(out, "guard words were overwritten") != NULL, "checker said: %s", out);
}

Test(check, finds_a_bin_queue_that_malloc_does_not_see) {
    void *p = um_malloc(200);
    cr_assert_not_null(p);
    um_heap_t *heap = umi_tl_heap;
    size_t bin = umi_bin_of(200);
    um_page_hot_t *saved = heap->bin_hot[bin];
    heap->bin_hot[bin] = &umi_hot_empty;
    char out[2048];
    size_t problems = check_captured(out, sizeof out);
    heap->bin_hot[bin] = saved;
    um_free(p);
    cr_assert_geq(problems, 1);
    cr_assert(strstr(out, "bin_hot[] not at the bin's first page") != NULL, "checker said: %s", out);
}

Test(check, finds_statistics_that_do_not_add_up) {
    void *p = um_malloc(100);
    cr_assert_not_null(p);
    um_page_t *page = umi_page_of(umi_segment_of(p), p);
    uint32_t saved = page->capacity;
    page->capacity = saved - 1; /* carved bytes no longer what the counters say, counts broken */
    char out[4096];
    size_t problems = check_captured(out, sizeof out);
    page->capacity = saved;
    um_free(p);
    cr_assert_geq(problems, 1);
    cr_assert(strstr(out, "statistics of carved bytes differ") != NULL, "checker said: %s", out);
}
