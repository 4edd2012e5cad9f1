/* Pages fresh from the OS that umalloc writes itself are faulted in with one call
 * (umi_os_fault_in: MADV_POPULATE_WRITE), not a page fault each: the links of the blocks a
 * page carves, and the bytes realloc copies into a moved block. And only those: the pages a
 * page has not carved into stay untouched, and pages resident already cost no call. A refusal
 * for good (an old kernel, a sandbox) stops the calls. */
#include <criterion/criterion.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include "core/internal.h"
#include "os/fault.h"
#include "os/os.h"
#include "test_util.h"

static size_t faulted_in(void) { return atomic_load(&umi_os_stats.faulted_in); }

/* The kernel may lack MADV_POPULATE_WRITE (before Linux 5.14): then nothing is faulted in
 * ahead, and these tests say so and skip. */
static void need_populate(void) {
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(p, MAP_FAILED);
    int ok = umi_os_populate(p, 4096);
    munmap(p, 4096);
    if (!ok) cr_skip_test("this kernel has no MADV_POPULATE_WRITE: pages fault in as they are written");
}

typedef struct {
    size_t size, count;
    void *blocks[400];
    size_t faulted;   /* out: bytes faulted in while the blocks were allocated */
    size_t resident;  /* out: resident OS pages of the first block's page */
    size_t carved;    /* out: OS pages the page's carves and hot words cover */
} carve_arg_t;

/* In a thread of its own, so that its heap and its pages are new: allocate, measure, free. */
static void *carve_in_thread(void *argp) {
    carve_arg_t *a = argp;
    size_t before = faulted_in();
    for (size_t i = 0; i < a->count; i++) a->blocks[i] = um_malloc(a->size);
    a->faulted = faulted_in() - before;
    um_segment_t *seg = umi_segment_lookup(a->blocks[0]);
    um_page_t *page = umi_page_of(seg, a->blocks[0]);
    size_t area_size;
    uint8_t *area = umi_page_area(seg, page, &area_size);
    a->resident = umi_os_resident_pages(area, area_size + umi_page_tail(seg));
    /* the pages any carved block starts or ends in, and the hot words' */
    uint8_t *hot_page = (uint8_t *)((uintptr_t)umi_page_hot(page) & ~(uintptr_t)4095);
    size_t pages = (area_size + umi_page_tail(seg) + 4095) / 4096, covered = 0;
    for (size_t k = 0; k < pages; k++) {
        uint8_t *lo = area + k * 4096, *hi = lo + 4096;
        bool used = lo == hot_page;
        for (size_t pos = 0; pos < page->reserved && !used; pos++) {
            uint8_t *b = page->start + pos * page->block_size;
            used = umi_block_carved(page, pos) && b < hi && b + page->block_size > lo;
        }
        covered += used;
    }
    a->carved = covered;
    for (size_t i = 0; i < a->count; i++) um_free(a->blocks[i]);
    return a;
}

static void run_carve(carve_arg_t *a) {
    pthread_t t;
    void *ret = NULL;
    cr_assert_eq(pthread_create(&t, NULL, carve_in_thread, a), 0);
    pthread_join(t, &ret);
    cr_assert_not_null(ret);
    for (size_t i = 0; i < a->count; i++) cr_assert_not_null(a->blocks[i], "um_malloc(%zu) failed", a->size);
}

Test(fault_in, a_new_page_faults_in_what_it_carves_with_calls) {
    need_populate();
    /* 48 B: the first carve fills the last OS page beside the hot words, the next ones go on
     * from the page's start, 4 KiB at a time */
    carve_arg_t a = {.size = 48, .count = 300};
    run_carve(&a);
    cr_expect_geq(a.faulted, 3 * 4096, "only %zu bytes faulted in ahead for %zu blocks of %zu B in a new page", a.faulted, a.count, a.size);
}

Test(fault_in, a_new_page_touches_no_page_it_has_not_carved_into) {
    need_populate();
    carve_arg_t a = {.size = 1000, .count = 10};
    run_carve(&a);
    cr_expect_gt(a.faulted, 0, "nothing faulted in ahead");
    cr_expect_eq(a.resident, a.carved, "%zu OS pages of the page resident, but its carves cover %zu", a.resident, a.carved);
}

/* A buffer realloc grows past 8 KiB moves into the extent arenas: the bytes it copies land in
 * fresh pages, faulted in with one call; a move into pages a block left dirty makes none. */
Test(fault_in, realloc_faults_in_fresh_pages_it_copies_into_but_not_dirty_ones) {
    need_populate();
    um_free(um_malloc(1));
    if (!umi_extents_on) cr_skip_test("extent arenas are off here");
    const size_t from = 9 * TU_KiB, to = 11 * TU_KiB;
    char *p = um_malloc(from);
    cr_assert_not_null(p);
    tu_fill(p, from, 1);
    size_t before = faulted_in();
    char *q = um_realloc(p, to);
    cr_assert_not_null(q);
    size_t faulted = faulted_in() - before;
    cr_assert_eq(umi_segment_lookup(q)->kind, UM_KIND_EXTENT, "the grown buffer is not in an extent");
    cr_expect_geq(faulted, from, "%zu bytes faulted in for a copy of %zu into fresh pages", faulted, from);
    cr_expect_eq(tu_check(q, from, 1), -1, "the copy lost bytes");
    um_free(q); /* its pages: free and dirty, the lowest the arena has */
    char *r = um_malloc(from);
    cr_assert_not_null(r);
    tu_fill(r, from, 2);
    before = faulted_in();
    char *s = um_realloc(r, to);
    cr_assert_not_null(s);
    cr_expect_eq(s, q, "the second buffer did not take the first one's pages");
    cr_expect_eq(faulted_in() - before, 0, "%zu bytes faulted in for a copy into dirty pages", faulted_in() - before);
    cr_expect_eq(tu_check(s, from, 2), -1, "the copy lost bytes");
    um_free(s);
}

/* A big buffer that grows out of the extents moves into a mapping of its own: fresh, so its
 * copy is faulted in at once. */
Test(fault_in, realloc_into_a_new_mapping_faults_in_the_copy) {
    need_populate();
    const size_t from = 300000, to = 500000;
    char *p = um_malloc(from);
    cr_assert_not_null(p);
    tu_fill(p, from, 3);
    size_t before = faulted_in();
    char *q = um_realloc(p, to);
    cr_assert_not_null(q);
    um_segment_t *seg = umi_segment_lookup(q);
    if (seg->kind != UM_KIND_HUGE || seg->page_kind != UM_PAGES_4K) cr_skip_test("the buffer did not move to a mapping of 4 KiB pages");
    size_t faulted = faulted_in() - before;
    cr_expect_geq(faulted, from, "%zu bytes faulted in for a copy of %zu into a new mapping", faulted, from);
    cr_expect_eq(tu_check(q, from, 3), -1, "the copy lost bytes");
    um_free(q);
}

/* Two new pages in one thread, the calls of each counted. */
typedef struct {
    uint64_t calls[2];
} two_pages_arg_t;

static void *two_pages(void *argp) {
    two_pages_arg_t *a = argp;
    static void *blocks[2][400];
    const size_t size[2] = {32, 64};
    for (int k = 0; k < 2; k++) {
        uint64_t calls = umi_fault_calls(UM_SYS_MADVISE);
        for (size_t i = 0; i < 400; i++) blocks[k][i] = um_malloc(size[k]);
        a->calls[k] = umi_fault_calls(UM_SYS_MADVISE) - calls;
    }
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < 400; i++) um_free(blocks[k][i]);
    return a;
}

/* A seccomp filter that refuses the advice (EPERM, as sandboxes that allow only some madvise
 * advice do) is asked once: the carves after it make no call. */
Test(fault_in, a_refusal_by_a_sandbox_stops_the_calls) {
    need_populate();
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_madvise, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[2])),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, MADV_POPULATE_WRITE, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof filter / sizeof filter[0], .filter = filter};
    cr_assert_eq(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
    cr_assert_eq(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog), 0, "seccomp: %s", strerror(errno));
    umi_fault_arm(UM_FAULT_NTH, UM_SYS_MADVISE, UINT64_MAX, 0); /* fails none: counts */
    size_t before = faulted_in();
    two_pages_arg_t a = {{0, 0}};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, two_pages, &a), 0);
    pthread_join(t, NULL);
    umi_fault_disarm();
    cr_expect_eq(faulted_in(), before, "pages faulted in through a filter that refuses it");
    cr_expect_geq(a.calls[0], 1, "no call to refuse");
    cr_expect_eq(a.calls[1], 0, "%llu madvise calls for a new page's carves after the filter refused one", (unsigned long long)a.calls[1]);
}
