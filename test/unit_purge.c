/* The purge delay follows the program's cycles (core/purge_delay.c): memory the delay purged
 * and the program then wanted again makes it longer, up to UM_PURGE_DELAY_MAX_MS; unused, it
 * halves back; set in the environment, it is kept as it is. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sys/resource.h>

#include "base/options.h"
#include "core/internal.h"
#include "os/fault.h"
#include "os/os.h"
#include "os/region.h"
#include "test_util.h"

enum { BLOCKS = 4096, BLOCK = 4096 }; /* 16 MiB in small pages */

static void fill_and_free(char **v) {
    for (size_t i = 0; i < BLOCKS; i++) {
        v[i] = um_malloc(BLOCK);
        cr_assert_not_null(v[i]);
        memset(v[i], 0x3c, BLOCK);
    }
    for (size_t i = 0; i < BLOCKS; i++) um_free(v[i]);
}

/* A little allocation work for `ms`: pages run dry, and the slow path sweeps the emptied
 * pages and purges what has been free for longer than the delay. */
static void idle_work(unsigned ms) {
    double end = tu_now() + ms / 1000.0;
    void *w[512];
    while (tu_now() < end) {
        for (size_t i = 0; i < 512; i++) w[i] = um_malloc(1024);
        for (size_t i = 0; i < 512; i++) um_free(w[i]);
        tu_sleep_ms(5);
    }
}

static size_t purged(void) { return atomic_load_explicit(&umi_os_stats.purged_total, memory_order_relaxed); }

/* Two cycles of fill, free and 400 ms of other work: the purged bytes of each cycle, and the
 * delay after the first refill. */
static void two_cycles(size_t out_purged[2], uint64_t *delay_after_refill) {
    static char *v[BLOCKS];
    fill_and_free(v);
    size_t p0 = purged();
    idle_work(400);
    out_purged[0] = purged() - p0;
    fill_and_free(v);
    *delay_after_refill = umi_purge_delay();
    p0 = purged();
    idle_work(400);
    out_purged[1] = purged() - p0;
}

Test(purge, the_delay_grows_to_the_programs_cycle, .timeout = 60) {
    char *envp[] = {NULL};
    umi_options_load(envp, 0);
    um_free(um_malloc(16)); /* the core reads its options */
    cr_assert_eq(umi_purge_delay(), 100);
    size_t p[2];
    uint64_t delay;
    two_cycles(p, &delay);
    fprintf(stderr, "[purge/adaptive] purged %.1f MiB, delay then %llu ms, purged %.1f MiB\n", tu_mib(p[0]),
            (unsigned long long)delay, tu_mib(p[1]));
    cr_assert_geq(p[0], 8 * TU_MiB, "the first cycle's 16 MiB were not purged after 400 ms (%.1f MiB)", tu_mib(p[0]));
    cr_assert_geq(delay, 600, "refilling memory purged after ~400 ms left the delay at %llu ms", (unsigned long long)delay);
    cr_assert_leq(delay, UM_PURGE_DELAY_MAX_MS);
    cr_assert_lt(p[1], 2 * TU_MiB, "the second cycle's memory was purged again (%.1f MiB) with a %llu ms delay",
                 tu_mib(p[1]), (unsigned long long)delay);
}

/* An interpreter that builds one big string a cycle among much else takes back a piece or two
 * of all the delay purged: keeping everything resident for seconds would save it a few faults. */
Test(purge, a_little_taken_back_does_not_grow_the_delay, .timeout = 60) {
    char *envp[] = {NULL};
    umi_options_load(envp, 0);
    um_free(um_malloc(16)); /* the core reads its options */
    static char *v[BLOCKS];
    fill_and_free(v);
    size_t p0 = purged();
    idle_work(400);
    cr_assert_geq(purged() - p0, 8 * TU_MiB, "the 16 MiB were not purged after 400 ms (%.1f MiB)", tu_mib(purged() - p0));
    for (size_t i = 0; i < BLOCKS / 16; i++) v[i] = um_malloc(BLOCK); /* 1 MiB of the 16 */
    cr_assert_eq(umi_purge_delay(), 100, "taking back 1 MiB of 16 made the delay %llu ms", (unsigned long long)umi_purge_delay());
    for (size_t i = BLOCKS / 16; i < BLOCKS; i++) v[i] = um_malloc(BLOCK); /* all of it: the cycle */
    uint64_t delay = umi_purge_delay();
    cr_assert_geq(delay, 600, "taking all 16 MiB back after ~400 ms left the delay at %llu ms", (unsigned long long)delay);
    for (size_t i = 0; i < BLOCKS; i++) um_free(v[i]);
}

/* The same counted in bytes, without the clock: regrets grow the delay once they add up to a
 * quarter of what it purged. */
Test(purge, regrets_count_in_bytes_against_what_the_delay_purged) {
    char *envp[] = {NULL};
    umi_options_load(envp, 0);
    um_free(um_malloc(16)); /* the core reads its options */
    uint64_t now = umi_os_now_ms() + 1;
    umi_purge_delay_purged((size_t)16 << 20, now);
    umi_purge_regret(700, now, (size_t)3 << 20);
    cr_assert_eq(umi_purge_delay(), 100, "3 MiB back of 16 grew the delay to %llu ms", (unsigned long long)umi_purge_delay());
    umi_purge_regret(700, now, (size_t)1 << 20);
    cr_assert_eq(umi_purge_delay(), 1400);
    /* counted from the change on: the next verdict needs a quarter of what is purged after it,
     * in the window of the regret or the one before */
    umi_purge_delay_purged((size_t)16 << 20, now);
    umi_purge_regret(1500, now + UM_PURGE_WINDOW_MS, (size_t)1 << 20); /* free longer than the delay: its own purge */
    cr_assert_eq(umi_purge_delay(), 1400, "16 MiB purged a window before did not count");
    /* two windows on, what was purged then no longer outweighs the present */
    umi_purge_regret(1500, now + 3 * UM_PURGE_WINDOW_MS, (size_t)1 << 20);
    cr_assert_eq(umi_purge_delay(), UM_PURGE_DELAY_MAX_MS);
}

/* Memory the old delay purged comes back after the delay grew: the change answered it already.
 * Counted again (nothing purged since, so any regret is a quarter of that), each piece of a
 * burst of reuse would double the delay once more, to the maximum in a few milliseconds. */
Test(purge, regrets_of_purges_by_a_shorter_delay_are_answered_once) {
    char *envp[] = {NULL};
    umi_options_load(envp, 0);
    um_free(um_malloc(16)); /* the core reads its options */
    uint64_t now = umi_os_now_ms() + 1;
    umi_purge_delay_purged((size_t)16 << 20, now);
    umi_purge_regret(300, now, (size_t)4 << 20);
    cr_assert_eq(umi_purge_delay(), 600);
    for (int i = 0; i < 8; i++) umi_purge_regret(320 + 20 * (uint64_t)i, now + 1, (size_t)1 << 20);
    cr_assert_eq(umi_purge_delay(), 600, "pages purged under the 100 ms delay, taken back, made it %llu ms",
                 (unsigned long long)umi_purge_delay());
    /* one the 600 ms delay purged is a verdict on it */
    umi_purge_delay_purged((size_t)4 << 20, now + 2);
    umi_purge_regret(650, now + 2, (size_t)2 << 20);
    cr_assert_eq(umi_purge_delay(), 1300);
}

/* The same through the extent arenas, whose pages carry when the delay purged them, not when
 * they were freed: the time they were free is then when they were purged, less how long they
 * had been free at least (since the tick before). Blocks freed, purged by the delay after a
 * while of other work, taken back one by one: the delay becomes about twice that while. */
Test(purge, extent_blocks_taken_back_grow_the_delay_to_their_cycle, .timeout = 60) {
    enum { BIG = 64, EXTENT = 128 << 10 };
    char *envp[] = {NULL};
    umi_options_load(envp, 0);
    um_free(um_malloc(16)); /* the core reads its options */
    if (!umi_extents_on) cr_skip_test("extent arenas are off here (several NUMA nodes, or OS pages other than 4 KiB)");
    static char *big[BIG];
    for (size_t i = 0; i < BIG; i++) {
        big[i] = um_malloc(EXTENT);
        cr_assert_not_null(big[i]);
        memset(big[i], 0x5a, EXTENT);
    }
    for (size_t i = 0; i < BIG; i++) um_free(big[i]);
    uint64_t freed_ms = umi_os_now_ms();
    size_t p0 = purged();
    /* 400 ms of other work, longer on a loaded machine (the ticks that purge run on the slow
     * paths of that work): the cycle is what it took, and the delay is checked against it */
    idle_work(400);
    for (int i = 0; i < 52 && purged() - p0 < (size_t)BIG * EXTENT / 2; i++) idle_work(50);
    cr_assert_geq(purged() - p0, (size_t)BIG * EXTENT / 2, "the 8 MiB were not purged after 3 s (%.1f MiB)", tu_mib(purged() - p0));
    uint64_t cycle = umi_os_now_ms() - freed_ms;
    for (size_t i = 0; i < BIG; i++) {
        big[i] = um_malloc(EXTENT);
        cr_assert_not_null(big[i]);
        memset(big[i], 0x5b, EXTENT);
    }
    uint64_t delay = umi_purge_delay();
    fprintf(stderr, "[purge/extent] taken back %llu ms after the free: delay %llu ms\n", (unsigned long long)cycle,
            (unsigned long long)delay);
    cr_assert_gt(delay, 100, "taking back all 8 MiB left the delay at %llu ms", (unsigned long long)delay);
    cr_assert_leq(delay, 2 * cycle + 20, "memory taken back %llu ms after its free made the delay %llu ms",
                  (unsigned long long)cycle, (unsigned long long)delay);
    for (size_t i = 0; i < BIG; i++) um_free(big[i]);
}

Test(purge, a_delay_set_in_the_environment_is_kept, .timeout = 60) {
    char *envp[] = {"UMALLOC_PURGE_DELAY_MS=100", NULL};
    umi_options_load(envp, 0);
    size_t p[2];
    uint64_t delay;
    two_cycles(p, &delay);
    cr_assert_eq(delay, 100, "UMALLOC_PURGE_DELAY_MS=100 became %llu ms", (unsigned long long)delay);
    cr_assert_geq(p[1], 8 * TU_MiB, "the second cycle was not purged (%.1f MiB)", tu_mib(p[1]));
    cr_assert(!umi_purge_delay_adaptive());
}

Test(purge, an_unneeded_delay_halves_back_to_the_option) {
    char *envp[] = {NULL};
    umi_options_load(envp, 0);
    um_free(um_malloc(16)); /* the core reads its options */
    uint64_t now = umi_os_now_ms();
    umi_purge_regret(700, now, 65536);
    cr_assert_eq(umi_purge_delay(), 1400);
    umi_purge_regret(5000, now, 65536); /* longer than any delay kept: no verdict */
    cr_assert_eq(umi_purge_delay(), 1400);
    umi_purge_delay_decay(now + UM_PURGE_DECAY_MS - 1);
    cr_assert_eq(umi_purge_delay(), 1400, "halved before UM_PURGE_DECAY_MS");
    umi_purge_delay_decay(now + UM_PURGE_DECAY_MS);
    cr_assert_eq(umi_purge_delay(), 700);
    umi_purge_delay_decay(now + UM_PURGE_DECAY_MS + 1); /* one halving a period */
    cr_assert_eq(umi_purge_delay(), 700);
    for (int i = 2; i < 8; i++) umi_purge_delay_decay(now + (uint64_t)i * UM_PURGE_DECAY_MS);
    cr_assert_eq(umi_purge_delay(), 100, "did not decay to the option's value: %llu", (unsigned long long)umi_purge_delay());
}

/* Dirty page slots that only clean free slots separate are purged with one madvise: with
 * several threads each call is a TLB shootdown on every CPU the process runs on. Small pages of
 * 4 KiB blocks (15 a page) side by side: the second emptied and purged first, then the first and
 * third emptied (the fourth keeps its blocks, so the class keeps a page). */
static void *slots_apart(void *arg) {
    (void)arg;
    enum { SIZE = 4096, N = 64 };
    void *p[N];
    um_page_t *page_of[N], *pg[4] = {NULL};
    size_t pages = 0;
    for (size_t i = 0; i < N; i++) {
        cr_assert_not_null(p[i] = um_malloc(SIZE));
        page_of[i] = umi_page_of(umi_segment_of(p[i]), p[i]);
        if (pages < 4 && (pages == 0 || page_of[i] != pg[pages - 1])) pg[pages++] = page_of[i];
    }
    cr_assert_eq(pages, 4, "%d blocks of %d bytes filled %zu pages", N, SIZE, pages);
    cr_assert(pg[1]->index == pg[0]->index + 1 && pg[2]->index == pg[0]->index + 2, "the pages are not side by side");
    for (size_t i = 0; i < N; i++)
        if (page_of[i] == pg[1]) um_free(p[i]);
    um_trim(0); /* the second page: retired, its slot purged */
    cr_assert_eq(pg[1]->slot, UM_SLOT_CLEAN, "the emptied page's slot was not purged");
    for (size_t i = 0; i < N; i++)
        if (page_of[i] == pg[0] || page_of[i] == pg[2]) um_free(p[i]);
    umi_fault_arm(UM_FAULT_NTH, UM_SYS_MADVISE, UINT64_MAX, 0); /* fails none: counts */
    um_trim(0);
    uint64_t calls = umi_fault_calls(UM_SYS_MADVISE);
    umi_fault_disarm();
    cr_expect_eq(pg[0]->slot, UM_SLOT_CLEAN);
    cr_expect_eq(pg[2]->slot, UM_SLOT_CLEAN);
    cr_expect_eq(calls, 1, "%llu madvise calls to purge two slots a clean one apart", (unsigned long long)calls);
    for (size_t i = 0; i < N; i++)
        if (page_of[i] != pg[0] && page_of[i] != pg[1] && page_of[i] != pg[2]) um_free(p[i]);
    return NULL;
}

Test(purge, slots_apart_by_clean_slots_are_purged_in_one_call) {
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, slots_apart, NULL), 0);
    cr_assert_eq(pthread_join(t, NULL), 0);
}

/* A program drops a structure of small blocks and goes on with big ones only: the small slow
 * path, which sweeps and purges, never runs again. The big blocks' paths tend the heap where
 * they map memory (umi_heap_tend), so the emptied small pages do not stay resident beside the
 * big blocks: purged after the delay, or moved out of the region to serve the big blocks. */
static size_t committed(void) {
    um_stats_t st;
    um_stats_get(&st);
    return st.committed_bytes; /* not RSS: the sanitizers' shadow memory would count there */
}

static void big_blocks_only(size_t size, size_t count, unsigned ms) {
    static char *v[BLOCKS];
    size_t c0 = committed();
    fill_and_free(v);
    static char *big[512];
    cr_assert_leq(count, 512);
    for (size_t i = 0; i < count; i++) {
        big[i] = um_malloc(size); /* kept: each new one maps memory */
        cr_assert_not_null(big[i]);
        memset(big[i], 0x5a, size);
        tu_sleep_ms(ms / (unsigned)count);
    }
    size_t c = committed();
    fprintf(stderr, "[purge/big blocks] %zu blocks of %zu KiB over %u ms: committed %.1f -> %.1f MiB\n", count, size >> 10, ms,
            tu_mib(c0), tu_mib(c));
    cr_assert_lt(c, c0 + count * size + 8 * TU_MiB,
                 "the 16 MiB of emptied small pages stayed committed beside %.1f MiB of %zu KiB blocks (%.1f -> %.1f MiB)",
                 tu_mib(count * size), size >> 10, tu_mib(c0), tu_mib(c));
    for (size_t i = 0; i < count; i++) um_free(big[i]);
}

Test(purge, emptied_small_pages_go_back_while_extent_blocks_grow, .timeout = 60) {
    big_blocks_only(100 << 10, 400, 400); /* ~10 extent segments */
}

Test(purge, emptied_small_pages_go_back_while_huge_blocks_are_mapped, .timeout = 60) {
    big_blocks_only(1 << 20, 40, 400);
}

/* The pages of one class emptied, a structure of another class built at once: its pages take
 * the emptied slots, even those emptied moments ago, before any segment is mapped. */
Test(purge, a_new_class_takes_the_slots_another_one_emptied) {
    enum { N = 16384, FIRST = 1024, SECOND = 768 }; /* 16 MiB, then 12 MiB in small pages */
    static char *v[N];
    for (size_t i = 0; i < N; i++) {
        v[i] = um_malloc(FIRST);
        cr_assert_not_null(v[i]);
        memset(v[i], 1, FIRST);
    }
    for (size_t i = 0; i < N; i++) um_free(v[i]);
    um_stats_t before, after;
    um_stats_get(&before);
    for (size_t i = 0; i < N; i++) {
        v[i] = um_malloc(SECOND);
        cr_assert_not_null(v[i]);
        memset(v[i], 2, SECOND);
    }
    um_stats_get(&after);
    fprintf(stderr, "[purge/new class] mapped %.1f -> %.1f MiB\n", tu_mib(before.mapped_bytes), tu_mib(after.mapped_bytes));
    cr_assert_lt(after.mapped_bytes, before.mapped_bytes + 4 * TU_MiB, /* not one segment more */
                 "12 MiB of a new class mapped %.1f MiB more beside 16 MiB of emptied pages",
                 tu_mib(after.mapped_bytes - before.mapped_bytes));
    for (size_t i = 0; i < N; i++) um_free(v[i]);
}

/* The pages of small segments a program emptied serve the extent and medium blocks it asks for
 * next: moved out of the region with their page tables (core/segment.c), not faulted in afresh.
 * What they held is old bytes, which calloc must not hand out. */
static long minor_faults(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt;
}

/* 16 MiB of small blocks of 1 KiB written with 0xab, then freed: emptied small segments for
 * the bigger blocks that come next. Skips the test where nothing can move out of the region. */
static void empty_16_mib_of_small_pages(void) {
    enum { N = 16384, SMALL = 1024 };
    static char *v[N];
    for (size_t i = 0; i < N; i++) {
        v[i] = um_malloc(SMALL);
        cr_assert_not_null(v[i]);
        memset(v[i], 0xab, SMALL);
    }
    if (!umi_region_contains(v[0])) {
        for (size_t i = 0; i < N; i++) um_free(v[i]);
        cr_skip_test("no small-page region in this build (sanitizers own its addresses): nothing to move out of it");
    }
    if (!umi_extents_on) cr_skip_test("extent arenas are off here (several NUMA nodes, or OS pages other than 4 KiB)");
    for (size_t i = 0; i < N; i++) um_free(v[i]);
}

Test(purge, bigger_blocks_take_the_pages_of_emptied_small_segments) {
    enum { EXTENT = 100 << 10, MEDIUM = 12 << 10, BIG = 80 };
    empty_16_mib_of_small_pages();
    static char *big[BIG], *mid[BIG];
    long f0 = minor_faults();
    for (size_t i = 0; i < BIG; i++) { /* 8 MiB of extent blocks */
        big[i] = um_calloc(1, EXTENT);
        cr_assert_not_null(big[i]);
        for (size_t j = 0; j < EXTENT; j += 512) cr_assert_eq(big[i][j], 0, "calloc'ed extent block %zu holds old bytes at %zu", i, j);
        memset(big[i], 0x5c, EXTENT);
    }
    long faults = minor_faults() - f0;
    for (size_t i = 0; i < BIG; i++) { /* and medium blocks */
        mid[i] = um_calloc(1, MEDIUM);
        cr_assert_not_null(mid[i]);
        for (size_t j = 0; j < MEDIUM; j += 256) cr_assert_eq(mid[i][j], 0, "calloc'ed medium block %zu holds old bytes at %zu", i, j);
    }
    fprintf(stderr, "[purge/moved out] 8 MiB of extent blocks after 16 MiB of emptied small pages: %ld page faults\n", faults);
    cr_assert_lt(faults, 512, "8 MiB of extent blocks faulted %ld pages in beside 16 MiB of emptied small pages", faults);
    cr_assert(!umi_region_contains(big[0]) && !umi_region_contains(mid[0]));
    for (size_t i = 0; i < BIG; i++) {
        um_free(big[i]);
        um_free(mid[i]);
    }
}

/* A small block's free leaves its mark in the block's second word, where an extent block that
 * starts on the same 4 KiB boundary keeps its own mark while it is free. A malloc'ed extent
 * block over emptied small pages is the program's: its one free is not a second one. The
 * program writes only its first and last words, as a program that reads into a buffer from the
 * start and never fills it. */
Test(purge, an_extent_block_on_freed_small_blocks_frees_once) {
    enum { EXTENT = 100 << 10, BIG = 80 };
    static char *big[BIG];
    empty_16_mib_of_small_pages();
    um_stats_t before, after;
    um_stats_get(&before);
    size_t on_old_bytes = 0;
    for (size_t i = 0; i < BIG; i++) {
        big[i] = um_malloc(EXTENT);
        cr_assert_not_null(big[i]);
        memcpy(&big[i][0], &i, sizeof i);
        memcpy(&big[i][EXTENT - sizeof i], &i, sizeof i);
        on_old_bytes += umi_segment_of(big[i])->kind == UM_KIND_EXTENT && (unsigned char)big[i][4096 + 64] == 0xab;
    }
    for (size_t i = 0; i < BIG; i++) um_free(big[i]);
    um_stats_get(&after);
    fprintf(stderr, "[purge/moved out] %zu of %d extent blocks on old small blocks; %llu frees refused\n", on_old_bytes, BIG,
            (unsigned long long)(after.invalid_frees - before.invalid_frees));
    cr_assert_gt(on_old_bytes, BIG / 2, "the extent blocks did not take the emptied small pages (%zu of %d)", on_old_bytes, BIG);
    cr_assert_eq(after.invalid_frees, before.invalid_frees, "%llu of %d frees of live extent blocks were refused as double frees",
                 (unsigned long long)(after.invalid_frees - before.invalid_frees), BIG);
}

/* And the other way: the extent segments whose blocks a program freed serve its small blocks,
 * moved into the region. `big` blocks of 100 KiB are written and freed, in allocation order,
 * or (`last_one_a_segment`) with the last block of each segment freed last, so that those wait
 * in the arena's quick list; then `small` blocks of 128 bytes are calloc'ed (they must read
 * zero) and written. Returns the page faults of the last `counted` of them; the heap checks out. */
static long small_block_faults_after_freed_extents(size_t big, bool last_one_a_segment, size_t small, size_t counted) {
    enum { EXTENT = 100 << 10, SMALL = 128 };
    static char *b[160], *v[131072];
    cr_assert(big <= sizeof b / sizeof b[0] && small <= sizeof v / sizeof v[0] && counted <= small);
    char *first = um_malloc(SMALL); /* the heap and its first segment: its clean slots serve first */
    cr_assert_not_null(first);
    bool in_region = umi_region_contains(first);
    um_free(first);
    if (!in_region) cr_skip_test("no small-page region in this build (sanitizers own its addresses): nothing to move into it");
    if (!umi_extents_on) cr_skip_test("extent arenas are off here (several NUMA nodes, or OS pages other than 4 KiB)");
    for (size_t i = 0; i < big; i++) {
        b[i] = um_malloc(EXTENT);
        cr_assert_not_null(b[i]);
        memset(b[i], 0xcd, EXTENT);
    }
    static bool later[160]; /* freed after all the others */
    for (size_t i = 0; i < big; i++)
        later[i] = last_one_a_segment && (i + 1 == big || umi_segment_of(b[i + 1]) != umi_segment_of(b[i]));
    for (size_t i = 0; i < big; i++)
        if (!later[i]) um_free(b[i]);
    for (size_t i = 0; i < big; i++)
        if (later[i]) um_free(b[i]);
    long f0 = minor_faults();
    for (size_t i = 0; i < small; i++) {
        if (i == small - counted) f0 = minor_faults();
        v[i] = um_calloc(1, SMALL);
        cr_assert_not_null(v[i]);
        for (size_t j = 0; j < SMALL; j += 8) cr_assert_eq(v[i][j], 0, "calloc'ed small block %zu holds old bytes at %zu", i, j);
        memset(v[i], 0x11, SMALL);
    }
    long faults = minor_faults() - f0;
    cr_assert_eq(um_check_heap(), 0);
    for (size_t i = 0; i < small; i++) um_free(v[i]);
    return faults;
}

Test(purge, small_blocks_take_the_pages_of_emptied_extent_segments) {
    long faults = small_block_faults_after_freed_extents(160, false, 65536, 32768); /* 16 MiB, then 8 MiB */
    fprintf(stderr, "[purge/moved in] the last 4 MiB of small blocks after 16 MiB of freed extent blocks: %ld page faults\n", faults);
    cr_assert_lt(faults, 256, "4 MiB of small blocks faulted %ld pages in beside 16 MiB of freed extent blocks", faults);
}

/* The last few blocks a program frees wait whole in the arena's quick list, one in each segment
 * here, as when a program frees its big blocks in random order and moves on to small ones (a
 * compiler's next pass). A heap that has filled a segment and is about to fault in a fresh one
 * gives them back to the arena first, and takes the arena's first segment too: the 8 MiB of
 * extent blocks fill it and one more, and the last 6 MiB of 10 MiB of small blocks need both
 * (1536 OS pages; moved in, about 40 faults a MiB remain, as in the test above). Before, no
 * segment was free while the quick list held a block in it, and the first was never taken:
 * 1634 faults. */
Test(purge, small_blocks_take_extent_segments_whose_last_blocks_wait_in_the_quick_list) {
    long faults = small_block_faults_after_freed_extents(80, true, 81920, 49152); /* 8 MiB, then 10 MiB */
    fprintf(stderr, "[purge/moved in] the last 6 MiB of small blocks after 8 MiB of extent blocks freed last one a segment: %ld page faults\n", faults);
    cr_assert_lt(faults, 512, "6 MiB of small blocks faulted %ld pages in beside 8 MiB of freed extent blocks", faults);
}

/* Sizes that move from small pages to medium ones (buffers that realloc grows past 4 KiB, all
 * at once), while a few small blocks stay: the small segments keep a page in use here and
 * there, so they can't go to the cache for the medium pages, and their emptied slots would
 * stay resident beside the medium pages until the purge delay (2 s here: it never expires in
 * this test). Each fresh medium slot gives back as much of them (core/slots.c,
 * purge_stranded). Before, the 17 MiB emptied stayed committed. */
Test(purge, fresh_medium_pages_give_back_the_small_slots_left_empty, .timeout = 60) {
    char *envp[] = {"UMALLOC_PURGE_DELAY_MS=2000", NULL};
    umi_options_load(envp, 0);
    enum { N = 6144, SMALL = 3000, MEDIUM = 6000, KEEP_EVERY = 64 }; /* 18 MiB, then 36 MiB */
    static char *v[N];
    for (size_t i = 0; i < N; i++) {
        v[i] = um_malloc(SMALL);
        cr_assert_not_null(v[i]);
        memset(v[i], 0x11, SMALL);
    }
    for (size_t i = 0; i < N; i++)
        if (i % KEEP_EVERY != 0) um_free(v[i]);
    idle_work(30); /* the sweep retires the emptied pages: their slots are dirty, idle from now */
    tu_sleep_ms(20);
    size_t c0 = committed();
    static char *m[N];
    for (size_t i = 0; i < N; i++) {
        m[i] = um_malloc(MEDIUM);
        cr_assert_not_null(m[i]);
        memset(m[i], 0x22, MEDIUM);
    }
    size_t c = committed();
    fprintf(stderr, "[purge/small to medium] committed %.1f -> %.1f MiB for %.1f MiB of medium blocks\n", tu_mib(c0), tu_mib(c),
            tu_mib((size_t)N * MEDIUM));
    cr_assert_lt(c, c0 + (size_t)N * MEDIUM - 8 * TU_MiB,
                 "the emptied small slots stayed committed beside %.1f MiB of medium blocks (%.1f -> %.1f MiB)",
                 tu_mib((size_t)N * MEDIUM), tu_mib(c0), tu_mib(c));
    for (size_t i = 0; i < N; i++) um_free(m[i]);
    for (size_t i = 0; i < N; i += KEEP_EVERY) um_free(v[i]);
}
