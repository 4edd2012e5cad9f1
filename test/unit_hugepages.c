/* Huge pages, prefaulting, locking (hugepages/): what can be checked without root and without a
 * hugetlb pool. A refused hugetlb mapping (os/fault.h makes the first mmap fail, whatever the
 * pool holds) falls back to smaller pages, is counted, and is not asked again on the next
 * mapping; a refused commit in the small-page region leaves the unit usable; a refused mlock
 * says one line and nothing is counted locked; um_map_file maps what the file holds and says why
 * when it cannot. The kernel's side (pools, smaps, VmLck, faults) is scripts/test-hugepages.sh's. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "base/options.h"
#include "core/internal.h"
#include "hugepages/pagesize.h"
#include "os/fault.h"
#include "os/os.h"
#include "os/region.h"
#include "test_util.h"

/* Options as the environment would give them, before umalloc starts in this test's process. */
static void start_with(const char *a, const char *b) {
    char *envp[3] = {(char *)a, (char *)b, NULL};
    umi_options_load(envp, 0);
    void *p = um_malloc(16); /* umi_process_init: reads them */
    um_free(p);
}

/* Start with 4 KiB pages (so that no pool was asked yet, and none is backing off), then take up
 * `mode` as the policy. */
static void switch_to(const char *mode) {
    start_with("UMALLOC_HUGEPAGES=none", NULL);
    char *envp[2] = {(char *)mode, NULL};
    umi_options_load(envp, 0);
    umi_pages_init();
}

static uint64_t fallbacks(void) { return atomic_load_explicit(&umi_pages_stats.fallbacks, memory_order_relaxed); }

Test(hugepages, refused_hugetlb_map_falls_back_and_backs_off) {
    switch_to("UMALLOC_HUGEPAGES=2M");
    uint64_t f0 = fallbacks();
    umi_fault_arm(UM_FAULT_NTH, UM_SYS_MMAP, 0, 0); /* the hugetlb mmap */
    unsigned kind = 99;
    char *p = umi_pages_map(4 * TU_MiB, 4 * TU_MiB, true, &kind);
    um_fault_stats_t s = umi_fault_disarm();
    cr_assert_not_null(p, "a refused hugetlb mapping must fall back, not fail");
    cr_assert_eq(s.calls[UM_SYS_MMAP], 2, "the hugetlb try, then 4 KiB pages");
    cr_assert_eq(s.failed[UM_SYS_MMAP], 1);
    cr_assert(kind == UM_PAGES_4K || kind == UM_PAGES_THP, "kind %u after a refusal", kind);
    cr_assert(tu_is_aligned(p, 4 * TU_MiB));
    memset(p, 0xab, 4 * TU_MiB);
    cr_assert_eq(fallbacks(), f0 + 1, "the fallback is counted");
    /* Backing off: the next mapping does not ask the pool again. */
    umi_fault_arm(UM_FAULT_FROM, UM_SYS_MMAP, UINT64_MAX, 0); /* count only */
    char *q = umi_pages_map(4 * TU_MiB, 4 * TU_MiB, true, &kind);
    s = umi_fault_disarm();
    cr_assert_not_null(q);
    cr_assert_eq(s.calls[UM_SYS_MMAP], 1, "%llu mmap calls: the empty pool was asked again", (unsigned long long)s.calls[UM_SYS_MMAP]);
    cr_assert_eq(fallbacks(), f0 + 2);
    umi_pages_unmap(p, 4 * TU_MiB);
    umi_pages_unmap(q, 4 * TU_MiB);
}

Test(hugepages, refused_region_commit_leaves_the_unit_usable) {
    switch_to("UMALLOC_HUGEPAGES=2M");
    umi_lock(&umi_cache_lock);
    char *at = umi_region_take();
    umi_unlock(&umi_cache_lock);
    if (at == NULL) cr_skip_test("no small-page region in this build (%s)", UM_TEST_VARIANT);
    umi_fault_arm(UM_FAULT_NTH, UM_SYS_MMAP, 0, 0);
    unsigned kind = 99;
    int rc = umi_pages_commit(at, 4 * TU_MiB, true, &kind);
    um_fault_stats_t s = umi_fault_disarm();
    cr_assert_eq(rc, 0, "the unit must be committed with smaller pages");
    cr_assert_eq(s.failed[UM_SYS_MMAP], 1, "the hugetlb commit was not tried");
    cr_assert(kind < UM_PAGES_2M);
    memset(at, 0x5a, 4 * TU_MiB); /* mapped read-write: no hole left by the refused MAP_FIXED */
    umi_pages_decommit(at, 4 * TU_MiB);
    cr_assert_eq(((volatile char *)at)[12345], 0, "decommitted: read-only zeros again");
    umi_lock(&umi_cache_lock);
    umi_region_put(at);
    umi_unlock(&umi_cache_lock);
}

Test(hugepages, huge_blocks_and_segments_live_through_refusals) {
    start_with("UMALLOC_HUGEPAGES=2M", NULL);
    umi_fault_arm(UM_FAULT_RANDOM, UM_SYS_MMAP, 300000, 7); /* 30 % of every mmap */
    void *big[8], *small[4096];
    for (int i = 0; i < 8; i++) {
        big[i] = um_malloc((size_t)(i + 1) * 3 * TU_MiB);
        if (big[i]) memset(big[i], i, (size_t)(i + 1) * 3 * TU_MiB);
    }
    for (int i = 0; i < 4096; i++) {
        small[i] = um_malloc(1000);
        if (small[i]) memset(small[i], 1, 1000);
    }
    umi_fault_disarm();
    for (int i = 0; i < 8; i++) um_free(big[i]);
    for (int i = 0; i < 4096; i++) um_free(small[i]);
    um_stats_t s;
    um_stats_get(&s);
    cr_assert_gt(s.hugepage_fallbacks, 0, "no fallback counted (no pool here, or refused on purpose)");
    um_trim(0);
}

Test(hugepages, refused_mlock_says_one_line_and_goes_on) {
    start_with("UMALLOC_MLOCK=1", "UMALLOC_HUGEPAGES=none");
    um_stats_t st;
    um_stats_get(&st);
    uint64_t locked0 = st.locked_bytes; /* the first segment's, locked before the refusals */
    tu_capture_t c;
    tu_capture_begin(&c);
    umi_fault_arm(UM_FAULT_FROM, UM_SYS_MLOCK, 0, 0);
    void *p[64];
    for (int i = 0; i < 64; i++) { p[i] = um_malloc((size_t)(i % 4 + 1) * TU_MiB); cr_assert_not_null(p[i]); memset(p[i], 3, TU_MiB); }
    um_fault_stats_t s = umi_fault_disarm();
    char out[4096];
    tu_capture_end(&c, out, sizeof out);
    cr_assert_gt(s.failed[UM_SYS_MLOCK], 0);
    cr_assert_eq(tu_count_lines(out), 1, "expected one line, got: %s", out);
    cr_assert(strstr(out, "UMALLOC_MLOCK=1") && strstr(out, "RLIMIT_MEMLOCK"), "%s", out);
    cr_assert_eq(s.failed[UM_SYS_MLOCK], s.calls[UM_SYS_MLOCK]);
    cr_assert_eq(s.calls[UM_SYS_MLOCK], 1, "after a refusal nothing more is asked to be locked");
    um_stats_get(&st);
    cr_assert_eq(st.locked_bytes, locked0, "only what was locked before the refusal counts");
    for (int i = 0; i < 64; i++) um_free(p[i]);
}

Test(hugepages, locked_memory_is_counted_and_never_purged_in_parts) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < 64 * TU_MiB && geteuid() != 0)
        cr_skip_test("RLIMIT_MEMLOCK is %llu KiB: too low to lock a few segments", (unsigned long long)rl.rlim_cur >> 10);
    start_with("UMALLOC_MLOCK=1", "UMALLOC_PURGE_DELAY_MS=0");
    char *p[2000];
    for (int i = 0; i < 2000; i++) { p[i] = um_malloc(4000); cr_assert_not_null(p[i]); p[i][0] = 1; }
    um_stats_t s;
    um_stats_get(&s);
    cr_assert_geq(s.locked_bytes, 8 * TU_MiB, "locked %llu B", (unsigned long long)s.locked_bytes);
    cr_assert_leq(s.locked_bytes, s.mapped_bytes);
    uint64_t purged0 = atomic_load_explicit(&umi_os_stats.purged_total, memory_order_relaxed);
    for (int i = 0; i < 2000; i++) um_free(p[i]); /* purge delay 0: a plain segment's slots would be purged now */
    cr_assert_eq(atomic_load_explicit(&umi_os_stats.purged_total, memory_order_relaxed), purged0,
                 "locked memory was purged in parts (the kernel refuses it: every try a wasted call)");
    um_trim(0);
    um_stats_get(&s);
    cr_assert_leq(s.locked_bytes, s.mapped_bytes);
}

Test(hugepages, what_can_be_purged_in_parts) {
    cr_assert(umi_pages_splittable(UM_PAGES_4K));
    cr_assert(umi_pages_splittable(UM_PAGES_THP));
    cr_assert_not(umi_pages_splittable(UM_PAGES_2M));
    cr_assert_not(umi_pages_splittable(UM_PAGES_1G));
    cr_assert_not(umi_pages_splittable(UM_PAGES_4K | UM_PAGES_LOCKED));
}

Test(hugepages, option_values) {
    long long v;
    char err[256];
    cr_assert_eq(umi_option_parse(UM_OPT_HUGEPAGES, "2m", &v, err, sizeof err), 0);
    cr_assert_eq(v, UM_HUGEPAGES_2M);
    cr_assert_eq(umi_option_parse(UM_OPT_HUGEPAGES, "1G", &v, err, sizeof err), 0);
    cr_assert_eq(v, UM_HUGEPAGES_1G);
    cr_assert_eq(umi_option_parse(UM_OPT_HUGEPAGES, "none", &v, err, sizeof err), 0);
    cr_assert_eq(v, UM_HUGEPAGES_NONE);
    cr_assert_eq(umi_option_parse(UM_OPT_HUGEPAGES, "3M", &v, err, sizeof err), -1);
    cr_assert(strstr(err, "none, thp, 2M, 1G"), "%s", err);
    cr_assert_eq(umi_option_parse(UM_OPT_RESERVE, "lots", &v, err, sizeof err), -1);
    cr_assert_eq(umi_option_parse(UM_OPT_RESERVE, "1G", &v, err, sizeof err), 0);
    cr_assert_eq(v, 1LL << 30);
    cr_assert_eq(umi_option_parse(UM_OPT_PREFAULT, "yes", &v, err, sizeof err), 0);
    cr_assert_eq(v, 1);
}

/* ---- um_map_file ---------------------------------------------------------------------------- */
static int open_fds(void) {
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    while (readdir(d)) n++;
    closedir(d);
    return n;
}

static void temp_file(char *path, size_t cap, size_t size) {
    snprintf(path, cap, "/tmp/umalloc-unit-map-%d-XXXXXX", (int)getpid());
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    char buf[4096];
    for (size_t off = 0; off < size; off += sizeof buf) {
        for (size_t i = 0; i < sizeof buf; i++) buf[i] = (char)((off + i) * 7 + 1);
        size_t n = size - off < sizeof buf ? size - off : sizeof buf;
        cr_assert_eq(write(fd, buf, n), (ssize_t)n);
    }
    close(fd);
}

Test(hugepages, map_file_reads_what_the_file_holds) {
    char path[128];
    size_t size = 5 * TU_MiB + 123, got = 0;
    temp_file(path, sizeof path, size);
    int fds = open_fds();
    const unsigned char *p = um_map_file(path, UM_MAP_READ | UM_MAP_PREFAULT | UM_MAP_HUGE, &got);
    cr_assert_not_null(p, "errno %d", errno);
    cr_assert_eq(got, tu_round_up(size, tu_page_size()));
    for (size_t i = 0; i < size; i += 4093) cr_assert_eq(p[i], (unsigned char)(i * 7 + 1), "byte %zu", i);
    cr_assert_eq(p[size], 0, "past the end of the file, in its last page: zeros");
    cr_assert_eq(open_fds(), fds, "the descriptor is not kept");
    cr_assert_eq(um_unmap_file((void *)p, got), 0);

    unsigned char *w = um_map_file(path, UM_MAP_SHARED, &got); /* shared: writes reach the file */
    cr_assert_not_null(w);
    w[100] = 0xee;
    cr_assert_eq(um_unmap_file(w, got), 0);
    int fd = open(path, O_RDONLY);
    unsigned char c = 0;
    cr_assert_eq(pread(fd, &c, 1, 100), 1);
    cr_assert_eq(c, 0xee);
    close(fd);
    unlink(path);
}

Test(hugepages, map_file_errors_say_why_and_leave_nothing) {
    char path[128];
    size_t got = 77;
    temp_file(path, sizeof path, 10000);
    int fds = open_fds();
    errno = 0; cr_assert_null(um_map_file(NULL, UM_MAP_READ, &got)); cr_assert_eq(errno, EINVAL);
    errno = 0; cr_assert_null(um_map_file(path, UM_MAP_READ, NULL)); cr_assert_eq(errno, EINVAL);
    errno = 0; cr_assert_null(um_map_file(path, 0, &got)); cr_assert_eq(errno, EINVAL);
    errno = 0; cr_assert_null(um_map_file(path, UM_MAP_READ | UM_MAP_SHARED, &got)); cr_assert_eq(errno, EINVAL);
    errno = 0; cr_assert_null(um_map_file(path, UM_MAP_READ | 0x100, &got)); cr_assert_eq(errno, EINVAL);
    errno = 0; cr_assert_null(um_map_file("/nonexistent/umalloc", UM_MAP_READ, &got)); cr_assert_eq(errno, ENOENT);
    errno = 0; cr_assert_null(um_map_file("/tmp", UM_MAP_READ, &got)); cr_assert_eq(errno, ENODEV);
    char empty[128];
    temp_file(empty, sizeof empty, 0);
    errno = 0; cr_assert_null(um_map_file(empty, UM_MAP_READ, &got)); cr_assert_eq(errno, EINVAL);
    umi_fault_arm(UM_FAULT_FROM, UM_SYS_MMAP, 0, 0);
    errno = 0; cr_assert_null(um_map_file(path, UM_MAP_READ | UM_MAP_HUGE, &got));
    umi_fault_disarm();
    cr_assert_eq(errno, ENOMEM);
    umi_fault_arm(UM_FAULT_FROM, UM_SYS_MLOCK, 0, 0);
    errno = 0; cr_assert_null(um_map_file(path, UM_MAP_READ | UM_MAP_LOCK, &got), "a lock refused fails the call");
    umi_fault_disarm();
    cr_assert_eq(errno, ENOMEM);
    cr_assert_eq(got, 77, "*size is left alone on failure");
    cr_assert_eq(open_fds(), fds, "a descriptor leaked");
    errno = 0; cr_assert_eq(um_unmap_file(NULL, 4096), -1); cr_assert_eq(errno, EINVAL);
    unlink(path);
    unlink(empty);
}

/* thp mode advises segments once umalloc *uses* 256 MiB: its huge blocks whole, of its segments
 * what is carved into blocks. Threads that each hold one 12 KiB block map a 4 MiB segment each
 * for it (a medium page of 512 KiB, 8 a segment): 72 of them hold 288 MiB of segments and use
 * under 6 MiB, and none may be advised (a 2 MiB page faulted in behind each block). A 260 MiB
 * huge block is in use whole: from then on a thread that fills segments gets advised ones (from
 * its fifth, core/segment.c), and one that holds a block still does not: a server's thousand
 * threads, each holding a little, would hold 2 MiB or more each. */
#define THP_THREADS 72
static pthread_barrier_t thp_taken, thp_checked;
static void *hold_one_large_block(void *arg) {
    (void)arg;
    char *p = um_malloc(12 << 10);
    cr_assert_not_null(p);
    p[0] = 1;
    pthread_barrier_wait(&thp_taken);
    pthread_barrier_wait(&thp_checked);
    um_free(p);
    return NULL;
}
enum { FILL_BLOCKS = 8 * 336 }; /* 12 KiB blocks: 8 medium segments' worth */
static void *fill_segments(void *arg) {
    (void)arg;
    static char *v[FILL_BLOCKS];
    for (int i = 0; i < FILL_BLOCKS; i++) {
        v[i] = um_malloc(12 << 10);
        cr_assert_not_null(v[i]);
        v[i][0] = 1;
    }
    pthread_barrier_wait(&thp_taken);
    pthread_barrier_wait(&thp_checked);
    for (int i = 0; i < FILL_BLOCKS; i++) um_free(v[i]);
    return NULL;
}
static void skip_without_thp(void) {
    void *probe = umi_os_map_aligned(UM_SEGMENT_SIZE, UM_SEGMENT_SIZE);
    cr_assert_not_null(probe);
    int advisable = umi_os_advise_huge(probe, UM_SEGMENT_SIZE);
    umi_os_unmap(probe, UM_SEGMENT_SIZE);
    if (!advisable) cr_skip_test("this kernel takes no MADV_HUGEPAGE (no transparent huge pages)");
}
static uint64_t thp_mapped(void) {
    um_stats_t s;
    um_stats_get(&s);
    return s.page_kind_mapped_bytes[UM_PAGES_THP];
}
static uint64_t mapped(void) {
    um_stats_t s;
    um_stats_get(&s);
    return s.mapped_bytes;
}
/* THP-mapped bytes while one thread running `holder` (hold_one_large_block, fill_segments)
 * holds its blocks. */
static uint64_t thp_while_one_thread(void *(*holder)(void *)) {
    pthread_barrier_init(&thp_taken, NULL, 2);
    pthread_barrier_init(&thp_checked, NULL, 2);
    pthread_t one;
    cr_assert_eq(pthread_create(&one, NULL, holder, NULL), 0);
    pthread_barrier_wait(&thp_taken);
    uint64_t thp = thp_mapped();
    pthread_barrier_wait(&thp_checked);
    pthread_join(one, NULL);
    return thp;
}

Test(hugepages, thp_advice_counts_what_segments_use_not_what_they_map) {
    start_with("UMALLOC_HUGEPAGES=thp", NULL);
    skip_without_thp();

    pthread_t t[THP_THREADS];
    pthread_barrier_init(&thp_taken, NULL, THP_THREADS + 1);
    pthread_barrier_init(&thp_checked, NULL, THP_THREADS + 1);
    for (int i = 0; i < THP_THREADS; i++) cr_assert_eq(pthread_create(&t[i], NULL, hold_one_large_block, NULL), 0);
    pthread_barrier_wait(&thp_taken);
    uint64_t held = mapped();
    uint64_t thp = thp_mapped();
    pthread_barrier_wait(&thp_checked);
    for (int i = 0; i < THP_THREADS; i++) pthread_join(t[i], NULL);
    cr_assert_geq(held, (uint64_t)THP_THREADS * UM_SEGMENT_SIZE, "the threads' blocks did not map a segment each: %llu B held",
                  (unsigned long long)held);
    cr_assert_eq(thp, 0, "%llu B of sparsely used segments advised for THP (%llu B held)", (unsigned long long)thp,
                 (unsigned long long)held);

    char *big = um_malloc((size_t)260 << 20); /* advised itself, from 2 MiB */
    cr_assert_not_null(big);
    uint64_t before = thp_mapped();
    uint64_t after_one = thp_while_one_thread(hold_one_large_block);
    cr_assert_eq(after_one, before, "a thread holding one block got a segment advised (THP %llu -> %llu B)",
                 (unsigned long long)before, (unsigned long long)after_one);
    uint64_t after_fill = thp_while_one_thread(fill_segments);
    um_free(big);
    cr_assert_geq(after_fill - before, UM_SEGMENT_SIZE, "no segment advised for a thread that filled 8 with a 260 MiB block in use (THP %llu -> %llu B)",
                  (unsigned long long)before, (unsigned long long)after_fill);
}

/* Of a block bigger than an OS page, the thp threshold counts only the first page (carving
 * writes its link there): a program may carve hundreds of MiB of big blocks and write a few
 * bytes of each. 2000 blocks of 200 KiB carve 400 MiB of segments and touch 8 MiB: no segment
 * may be advised (each would fault a 2 MiB page in behind a few written bytes). */
Test(hugepages, thp_advice_counts_a_big_block_by_its_first_page) {
    start_with("UMALLOC_HUGEPAGES=thp", NULL);
    skip_without_thp();
    enum { N = 2000 };
    static char *v[N];
    for (int i = 0; i < N; i++) {
        v[i] = um_malloc(200 << 10);
        cr_assert_not_null(v[i]);
        memset(v[i], 1, 64);
    }
    uint64_t thp = thp_mapped();
    for (int i = 0; i < N; i++) um_free(v[i]);
    cr_assert_eq(thp, 0, "%llu B of segments advised for THP while 2000 big blocks had 64 bytes written each",
                 (unsigned long long)thp);
}

/* The threshold counts huge blocks by what is live, not by what was mapped: a block grown by
 * realloc moves to a bigger mapping with mremap (umi_huge_realloc), and a count of mapped bytes
 * that missed the move went below zero when the block was freed, and from then on every
 * segment of a heap that fills them was advised in a program using a few MiB. Here a buffer
 * doubled from 8 MiB to 512 MiB and freed, then a thread fills 8 segments: under 256 MiB in
 * use, none may be advised. */
Test(hugepages, thp_threshold_is_not_moved_by_a_huge_block_grown_and_freed) {
    start_with("UMALLOC_HUGEPAGES=thp", NULL);
    skip_without_thp();
    char *v = um_malloc((size_t)8 << 20);
    cr_assert_not_null(v);
    for (size_t size = (size_t)16 << 20; size <= ((size_t)512 << 20); size *= 2) {
        v = um_realloc(v, size);
        cr_assert_not_null(v);
        v[size - 1] = 1; /* one page of it resident: the doubling is mremap's, no copy of 512 MiB */
    }
    um_free(v);
    uint64_t before = thp_mapped();
    uint64_t after = thp_while_one_thread(fill_segments);
    cr_assert_eq(after, before, "segments advised with 8 segments of blocks in use, after a block grown to 512 MiB was freed (THP %llu -> %llu B)",
                 (unsigned long long)before, (unsigned long long)after);
}

/* A block aligned to 2 MiB of 2 MiB maps exactly a segment's 4 MiB; it is advised as the huge
 * block it is (once huge blocks are seen filled), not as a segment. 100 such blocks with a byte
 * written in each, freed and taken again three times, held 266 MiB where they use 400 KiB
 * (glibc 2.4 MiB, mimalloc 3.1, jemalloc 5.0): past 256 MiB of such mappings every new one was
 * advised, and its byte faulted in a 2 MiB page. */
Test(hugepages, a_2_mib_aligned_block_is_advised_as_a_huge_block_not_as_a_segment) {
    start_with(NULL, NULL);
    skip_without_thp();
    enum { N = 100, ROUNDS = 3 };
    const size_t two = (size_t)2 << 20;
    static void *v[N];
    uint64_t worst = 0;
    for (int r = 0; r < ROUNDS; r++) {
        for (int i = 0; i < N; i++) {
            cr_assert_eq(um_posix_memalign(&v[i], two, two), 0);
            ((char *)v[i])[0] = 1;
        }
        uint64_t thp = thp_mapped();
        if (thp > worst) worst = thp;
        for (int i = 0; i < N; i++) um_free(v[i]);
    }
    cr_assert_eq(worst, 0, "%llu B advised for THP for 2 MiB-aligned blocks with a byte written in each", (unsigned long long)worst);
}

/* By default a huge block is advised for THP only once the program has filled one: 20 blocks of
 * 3 MB with 64 bytes written in each stay on 4 KiB pages (advised, each would fault a 2 MiB page
 * in behind those bytes: 40 MiB for 1.3 KiB written); a block filled whole makes the next ones
 * advised. UMALLOC_HUGEPAGES=thp set in the environment advises every one at once. */
Test(hugepages, default_mode_advises_huge_blocks_once_one_is_filled) {
    start_with(NULL, NULL);
    skip_without_thp();
    enum { N = 20, SIZE = 3000000 };
    static char *v[N];
    for (int i = 0; i < N; i++) {
        v[i] = um_malloc(SIZE);
        cr_assert_not_null(v[i]);
        memset(v[i], 1, 64);
    }
    uint64_t sparse = thp_mapped();
    char *full = um_malloc(SIZE);
    cr_assert_not_null(full);
    memset(full, 2, SIZE);
    char *next = um_malloc(SIZE);
    cr_assert_not_null(next);
    uint64_t after = thp_mapped();
    for (int i = 0; i < N; i++) um_free(v[i]);
    um_free(full);
    um_free(next);
    cr_assert_eq(sparse, 0, "%llu B of huge blocks with 64 bytes written each advised for THP", (unsigned long long)sparse);
    cr_assert_geq(after, (uint64_t)SIZE, "a huge block after one filled whole was not advised (THP %llu B)", (unsigned long long)after);
}

Test(hugepages, thp_set_in_the_environment_advises_every_huge_block) {
    start_with("UMALLOC_HUGEPAGES=thp", NULL);
    skip_without_thp();
    char *p = um_malloc(3000000);
    cr_assert_not_null(p);
    memset(p, 1, 64);
    uint64_t thp = thp_mapped();
    um_free(p);
    cr_assert_geq(thp, (uint64_t)3000000, "the first huge block was not advised with UMALLOC_HUGEPAGES=thp (%llu B)", (unsigned long long)thp);
}

/* A block aligned to 2 MiB has its header page alone in the 2 MiB before it (core/huge.c): that
 * page must not be backed by a transparent huge page, or each such block holds twice its size
 * (a program that asks for 2 MiB-aligned buffers to get huge pages, a database's page pool).
 * Counted as the resident pages of the 2 MiB before each block, which holds nothing else of
 * ours here. */
Test(hugepages, the_header_of_a_2_mib_aligned_block_gets_no_huge_page) {
    start_with("UMALLOC_HUGEPAGES=thp", NULL);
    skip_without_thp();
    enum { N = 8 };
    const size_t two = (size_t)2 << 20;
    void *v[N]; /* advised, as every huge block is with UMALLOC_HUGEPAGES=thp set */
    for (int i = 0; i < N; i++) {
        cr_assert_eq(um_posix_memalign(&v[i], two, two), 0);
        cr_assert_eq((uintptr_t)v[i] % two, 0);
        memset(v[i], 1, two);
    }
    unsigned char vec[512];
    size_t worst = 0;
    for (int i = 0; i < N; i++) {
        cr_assert_eq(mincore((char *)v[i] - two, two, vec), 0, "mincore: %s", strerror(errno));
        size_t resident = 0;
        for (size_t k = 0; k < sizeof vec; k++) resident += vec[k] & 1;
        if (resident > worst) worst = resident;
    }
    for (int i = 0; i < N; i++) um_free(v[i]);
    cr_assert_leq(worst, 16, "%zu of the 512 pages before a 2 MiB-aligned block are resident (its header's, backed by a huge page)", worst);
}
