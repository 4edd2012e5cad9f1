/* Large blocks: a 1 GiB block (RSS up and back down), a realloc growth loop from 1 KiB to
 * 256 MiB, repeated large allocations that must not accumulate, calloc of reused large blocks. */
#include <criterion/criterion.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "base/options.h"
#include "core/check.h"
#include "core/internal.h"
#include "test_util.h"

Test(large, one_gib_block_rss_up_and_down, .timeout = 120)
{
    const size_t N = tu_pick(TU_GiB, 256 * TU_MiB, 256 * TU_MiB);
    const size_t ps = tu_page_size();
    um_totals_t base = tu_totals();
    size_t rss0 = tu_rss_bytes();
    cr_assert_gt(rss0, 0, "cannot read /proc/self/statm");

    unsigned char *p = um_malloc(N);
    cr_assert_not_null(p, "um_malloc(%zu) returned NULL", N);
    cr_assert(tu_is_aligned(p, 16));
    cr_assert_geq(um_malloc_usable_size(p), N);
    cr_assert_eq(um_owns(p), 1);
    um_totals_t live = tu_totals();
    cr_assert_geq(live.live_bytes, base.live_bytes + N, "live_bytes did not grow by %zu", N);
    cr_assert_geq(live.large_bytes, base.large_bytes + N, "large_bytes did not grow by %zu", N);
    cr_assert_geq(live.mapped_bytes, live.live_bytes);

    memset(p, 0x5a, N); /* touch every page */
    size_t rss1 = tu_rss_bytes();
    fprintf(stderr, "[large/one_gib] block %.0f MiB: RSS %.1f -> %.1f MiB\n", tu_mib(N), tu_mib(rss0), tu_mib(rss1));
    cr_assert_geq(rss1, rss0 + N / 10 * 9, "RSS rose only from %.1f to %.1f MiB after touching %.0f MiB",
                  tu_mib(rss0), tu_mib(rss1), tu_mib(N));
    /* ~N: the allocator did not touch much more than the block (TSan's shadow memory is 4x) */
    size_t over = tu_is_tsan() ? 5 * N : N + N / 4;
    cr_assert_leq(rss1, rss0 + over + 64 * TU_MiB, "RSS rose from %.1f to %.1f MiB for a %.0f MiB block",
                  tu_mib(rss0), tu_mib(rss1), tu_mib(N));
    size_t bad_page = SIZE_MAX;
    for (size_t off = 0; off < N && bad_page == SIZE_MAX; off += ps)
        if (p[off] != 0x5a || p[off + ps - 1] != 0x5a)
            bad_page = off;
    cr_assert_eq(bad_page, SIZE_MAX, "page at offset %zu lost its content", bad_page);

    um_free(p);
    size_t rss2 = tu_rss_bytes();
    fprintf(stderr, "[large/one_gib] after um_free: RSS %.1f MiB\n", tu_mib(rss2));
    cr_assert_leq(rss2, rss0 + 64 * TU_MiB, "RSS %.1f MiB after freeing the block, %.1f MiB before it", tu_mib(rss2),
                  tu_mib(rss0));
    um_totals_t end = tu_totals();
    cr_assert_geq(live.live_bytes - end.live_bytes, N, "freeing the %zu-byte block took only %zu off live_bytes", N,
                  live.live_bytes - end.live_bytes);
    cr_assert_leq(end.committed_bytes, base.committed_bytes + 64 * TU_MiB,
                  "committed_bytes %.1f MiB after freeing the block (%.1f before)", tu_mib(end.committed_bytes),
                  tu_mib(base.committed_bytes));
    um_trim(0);
    end = tu_totals();
    cr_assert_leq(end.mapped_bytes, base.mapped_bytes + 64 * TU_MiB,
                  "mapped_bytes %.1f MiB after free + trim (%.1f before)", tu_mib(end.mapped_bytes),
                  tu_mib(base.mapped_bytes));
}

Test(large, realloc_growth_1k_to_256m, .timeout = 120)
{
    const size_t top = 256 * TU_MiB;
    const uint64_t seed = 0xfeed;
    size_t n = TU_KiB;
    unsigned char *p = um_malloc(n);
    cr_assert_not_null(p);
    tu_fill(p, n, seed);
    double t0 = tu_now();
    while (n < top) {
        size_t to = n * 2;
        unsigned char *q = um_realloc(p, to);
        cr_assert_not_null(q, "um_realloc(%zu -> %zu) returned NULL", n, to);
        cr_assert(tu_is_aligned(q, 16));
        cr_assert_geq(um_malloc_usable_size(q), to);
        long bad = tu_check(q, n, seed);
        cr_assert_eq(bad, -1, "growth %zu -> %zu: content lost at offset %ld", n, to, bad);
        tu_fill(q, to, seed); /* same pattern, now over the whole new size */
        p = q;
        n = to;
    }
    while (n > TU_KiB) {
        size_t to = n / 2;
        unsigned char *q = um_realloc(p, to);
        cr_assert_not_null(q, "um_realloc(%zu -> %zu) returned NULL", n, to);
        long bad = tu_check(q, to, seed);
        cr_assert_eq(bad, -1, "shrink %zu -> %zu: content lost at offset %ld", n, to, bad);
        p = q;
        n = to;
    }
    um_free(p);
    fprintf(stderr, "[large/realloc_growth] 1 KiB -> 256 MiB -> 1 KiB in %.2f s\n", tu_now() - t0);
}

/* Many large blocks allocated, touched and freed: memory does not pile up. */
Test(large, repeated_large_blocks_do_not_accumulate, .timeout = 120)
{
    const size_t sizes[] = {TU_MiB + 1, 2 * TU_MiB, 3 * TU_MiB + 4096, 8 * TU_MiB, 17 * TU_MiB, 32 * TU_MiB};
    const size_t ps = tu_page_size();
    const size_t iters = tu_pick(300, 150, 60);
    um_totals_t base = tu_totals();
    size_t rss0 = tu_rss_bytes();
    for (size_t it = 0; it < iters; it++) {
        size_t n = sizes[it % (sizeof sizes / sizeof sizes[0])];
        unsigned char *p = um_malloc(n);
        cr_assert_not_null(p, "iteration %zu: um_malloc(%zu) returned NULL", it, n);
        for (size_t off = 0; off < n; off += ps)
            p[off] = (unsigned char)(off / ps);
        p[n - 1] = 1;
        unsigned char *q = um_malloc(n / 3); /* a second, live at the same time */
        cr_assert_not_null(q);
        memset(q, 2, n / 3);
        cr_assert_eq(p[0], 0);
        cr_assert_eq(p[n - 1], 1);
        um_free(p);
        um_free(q);
    }
    um_totals_t end = tu_totals();
    size_t rss1 = tu_rss_bytes();
    fprintf(stderr, "[large/repeated] mapped %.1f -> %.1f MiB, RSS %.1f -> %.1f MiB\n", tu_mib(base.mapped_bytes),
            tu_mib(end.mapped_bytes), tu_mib(rss0), tu_mib(rss1));
    cr_assert_leq(end.mapped_bytes, base.mapped_bytes + 256 * TU_MiB, "mapped_bytes grew by %.1f MiB",
                  tu_mib(end.mapped_bytes - base.mapped_bytes));
    /* The allocator's own count of what may be resident: at most the huge-block cache's cap
     * (256 MiB, core/huge_cache.c) is kept for reuse until the purge delay. */
    cr_assert_leq(end.committed_bytes, base.committed_bytes + 256 * TU_MiB, "committed_bytes grew by %.1f MiB",
                  tu_mib(end.committed_bytes - base.committed_bytes));
    /* RSS: the same bound, times what the sanitizer adds per resident byte. TSan keeps 4 bytes
     * of shadow and some metadata per byte of application memory, so the 256 MiB a full cache
     * may keep resident show as up to ~1.4 GiB there (661 MiB measured with 128 MiB). */
    size_t rss_slack = tu_pick(256, 256, 6 * 256) * TU_MiB;
    cr_assert_leq(rss1, rss0 + rss_slack, "RSS grew by %.1f MiB (committed_bytes grew by %.1f MiB)",
                  tu_mib(rss1 - rss0), tu_mib(end.committed_bytes - base.committed_bytes));
}

/* A dirty large block freed and calloc'ed again must read as zero (cached large blocks). */
Test(large, calloc_of_reused_large_block_is_zero, .timeout = 120)
{
    const size_t sizes[] = {700 * TU_KiB, 4 * TU_MiB, 64 * TU_MiB};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        for (int rep = 0; rep < 4; rep++) {
            void *p = um_malloc(n);
            cr_assert_not_null(p);
            memset(p, 0xff, um_malloc_usable_size(p));
            um_free(p);
            unsigned char *q = um_calloc(n / 16, 16);
            cr_assert_not_null(q, "um_calloc(%zu) returned NULL", n);
            long bad = tu_check_byte(q, n, 0);
            cr_assert_eq(bad, -1, "um_calloc(%zu) of reused memory: byte %ld not zero", n, bad);
            um_free(q);
        }
    }
}

/* calloc of a reused large block of which little is resident clears it without faulting the
 * rest in: a program that callocs a big table and writes a few bytes of it, again and again,
 * keeps a few pages resident, not the table (core/huge.c, umi_huge_zero). The bytes it wrote
 * last time read as zero, and so does every other page. */
static size_t resident_pages(const void *p, size_t n)
{
    size_t pages = n / 4096, count = 0;
    unsigned char *vec = malloc(pages);
    cr_assert_not_null(vec);
    cr_assert_eq(mincore((void *)p, pages * 4096, vec), 0, "mincore: %s", strerror(errno));
    for (size_t i = 0; i < pages; i++) count += vec[i] & 1;
    free(vec);
    return count;
}
Test(large, calloc_of_a_sparsely_used_reused_block_faults_in_only_what_is_written, .timeout = 120)
{
    const size_t n = 64 * TU_MiB, stride = 16 * TU_MiB;
    for (int rep = 0; rep < 4; rep++) {
        unsigned char *q = um_calloc(n / 16, 16);
        cr_assert_not_null(q);
        cr_assert_eq((uintptr_t)q % 4096, 0, "a large block starts on a page");
        for (size_t at = 0; at < n; at += stride)
            cr_assert_eq(q[at + 100], 0, "round %d: the byte written at %zu last round is not zero", rep, at + 100);
        for (size_t at = 0; at < n; at += 1 << 20)
            cr_assert_eq(q[at + 4000], 0, "round %d: byte %zu is not zero", rep, at + 4000);
        for (size_t at = 0; at < n; at += stride) q[at + 100] = 0xa5;
        size_t resident = resident_pages(q, n);
        cr_assert_lt(resident, n / 4096 / 8, "round %d: %zu of %zu pages resident after writing 4 bytes (and reading 64)",
                     rep, resident, n / 4096);
        um_free(q);
    }
}

/* Freed large blocks are reused by blocks of other sizes: split in place, assembled from several
 * freed ones by mremap, and such an assembled block grown by realloc (it is several kernel
 * mappings, so that realloc copies once). Contents must survive every step, and calloc must
 * still read zeros. */
Test(large, reuse_across_sizes_keeps_contents, .timeout = 120)
{
    const size_t a_n = 20 * TU_MiB, b_n = 12 * TU_MiB, c_n = 30 * TU_MiB, d_n = 5 * TU_MiB;
    unsigned char *a = um_malloc(a_n), *b = um_malloc(b_n);
    cr_assert(a != NULL && b != NULL);
    tu_fill(a, a_n, 1);
    tu_fill(b, b_n, 2);
    um_free(a);
    um_free(b);
    unsigned char *c = um_malloc(c_n); /* larger than either: assembled from both */
    cr_assert_not_null(c);
    tu_fill(c, c_n, 3);
    unsigned char *d = um_malloc(d_n); /* smaller: in place, from what is left */
    cr_assert_not_null(d);
    tu_fill(d, d_n, 4);
    cr_assert_eq(tu_check(c, c_n, 3), -1, "assembled block lost its contents");
    unsigned char *c2 = um_realloc(c, 2 * c_n);
    cr_assert_not_null(c2);
    cr_assert_eq(tu_check(c2, c_n, 3), -1, "assembled block lost its contents in realloc");
    tu_fill(c2, 2 * c_n, 5);
    cr_assert_eq(tu_check(d, d_n, 4), -1, "in-place block was overwritten");
    um_free(d);
    unsigned char *z = um_calloc(d_n / 16, 16);
    cr_assert_not_null(z);
    cr_assert_eq(tu_check_byte(z, d_n, 0), -1, "calloc of a reused piece is not zero");
    cr_assert_eq(tu_check(c2, 2 * c_n, 5), -1, "grown block lost its contents");
    um_free(z);
    um_free(c2);
}

/* Assembly moves a cached piece into a new block only to an offset it keeps within 2 MiB
 * (core/huge_cache.c, piece_congruent). a and b, freed, are cached pieces that each start on a
 * 4 MiB boundary, as fresh huge mappings do; c, bigger than both, takes a at its front, where
 * a lands at its own offset, with a's bytes; b, whole, would land a's mapping further on, its
 * header's page past a 2 MiB boundary: it stays cached, and c's rest is fresh memory. Moved
 * there, each of b's pages would cost half a fresh fault at its next touch under a hypervisor
 * that traps page-table changes. */
Test(large, assembly_moves_pieces_only_to_their_own_offset_within_2_mib, .timeout = 60)
{
    const size_t a_n = 6 * TU_MiB, b_n = 5 * TU_MiB, c_n = 11 * TU_MiB + TU_MiB / 2;
    unsigned char *a = um_malloc(a_n), *b = um_malloc(b_n);
    cr_assert(a != NULL && b != NULL);
    tu_fill(a, a_n, 1);
    tu_fill(b, b_n, 2);
    um_free(a); /* more than a thread keeps (core/huge.c): both go to the shared cache */
    um_free(b);
    cr_assert_geq(atomic_load(&umi_huge_cached_bytes), a_n + b_n, "the freed blocks are not in the cache");
    unsigned char *c = um_malloc(c_n);
    cr_assert_not_null(c);
    size_t left = atomic_load(&umi_huge_cached_bytes);
    cr_assert_eq(tu_check(c, a_n, 1), -1, "a's piece is not c's front");
    cr_assert_geq(left, b_n, "b's piece was moved into c to another offset within 2 MiB (%zu B left cached)", left);
    tu_fill(c, c_n, 3);
    cr_assert_eq(tu_check(c, c_n, 3), -1);
    um_free(c);
}

/* A heap of small blocks bigger than the segment cache used to hold (64 segments, 256 MiB), all
 * freed, then allocated again: the second round finds its segments in the cache, resident
 * (the purge delay has not passed), instead of mapping fresh ones and faulting every page in
 * again. The cache dropped what it could not hold at once, unmapped. */
static long minor_faults(void)
{
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return r.ru_minflt;
}

Test(large, a_big_heap_freed_and_taken_again_reuses_its_segments, .timeout = 120)
{
    char *envp[] = {"UMALLOC_PURGE_DELAY_MS=60000", NULL};
    umi_options_load(envp, 0);
    enum { N = 72000, SIZE = 4096 }; /* 15 blocks a 64 KiB page: 4800 pages, 76 segments */
    char **v = calloc(N, sizeof *v);
    cr_assert_not_null(v);
    long faults[2];
    for (int round = 0; round < 2; round++) {
        long f0 = minor_faults();
        for (size_t i = 0; i < N; i++) {
            v[i] = um_malloc(SIZE);
            cr_assert_not_null(v[i]);
            v[i][0] = (char)i;
        }
        faults[round] = minor_faults() - f0;
        for (size_t i = 0; i < N; i++) {
            cr_assert_eq(v[i][0], (char)i);
            um_free(v[i]);
        }
    }
    free(v);
    fprintf(stderr, "[large/segments reused] minor faults: %ld, then %ld\n", faults[0], faults[1]);
    cr_assert_gt(faults[0], N / 2, "the first round faulted only %ld times: nothing measured", faults[0]);
    cr_assert_lt(faults[1], faults[0] / 50, "the second round faulted %ld times (the first %ld)", faults[1], faults[0]);
}

/* Memory a program freed in blocks of one kind serves what it allocates next, of another kind,
 * without faulting it in again: 24 MiB of `first`-byte blocks written and freed, then 24 MiB of
 * `next`-byte ones written. Returns the minor faults of the second part. */
static long freed_then(size_t first, size_t next)
{
    if (tu_is_tsan())
        cr_skip("SKIPPED under TSan: its shadow memory takes page faults of its own for the bytes "
                "written, which the process's fault count measured here cannot tell apart");
    char *envp[] = {"UMALLOC_PURGE_DELAY_MS=60000", NULL};
    umi_options_load(envp, 0);
    enum { BYTES = 24 << 20 };
    size_t n = BYTES / first, m = BYTES / next;
    char **v = calloc(n > m ? n : m, sizeof *v);
    cr_assert_not_null(v);
    for (size_t i = 0; i < n; i++) {
        cr_assert_not_null(v[i] = um_malloc(first));
        memset(v[i], 0x5a, first);
    }
    for (size_t i = 0; i < n; i++) um_free(v[i]);
    long f0 = minor_faults();
    for (size_t i = 0; i < m; i++) {
        cr_assert_not_null(v[i] = um_malloc(next));
        memset(v[i], 0xa5, next);
    }
    long faults = minor_faults() - f0;
    for (size_t i = 0; i < m; i++) um_free(v[i]);
    free(v);
    cr_expect_eq(um_check_heap(), 0);
    return faults;
}

/* Blocks of 4..16 KiB (medium pages, in segments outside the small-page region), then small
 * blocks (the segments move into the region) or big ones (an extent arena takes them in
 * another layout). */
Test(large, memory_freed_by_medium_blocks_serves_small_ones_without_faults, .timeout = 60)
{
    long faults = freed_then(6000, 1000);
    fprintf(stderr, "[large/medium then small] minor faults: %ld for 24 MiB\n", faults);
    cr_expect_lt(faults, (24 << 20) / 4096 / 4, "24 MiB of small blocks after 24 MiB of medium ones freed: %ld faults", faults);
}

Test(large, memory_freed_by_medium_blocks_serves_big_ones_without_faults, .timeout = 60)
{
    long faults = freed_then(6000, 100000);
    fprintf(stderr, "[large/medium then big] minor faults: %ld for 24 MiB\n", faults);
    cr_expect_lt(faults, (24 << 20) / 4096 / 4, "24 MiB of 100 KB blocks after 24 MiB of medium ones freed: %ld faults", faults);
}

/* The other way: blocks of 20 KiB and more (the extent arenas' segments), then medium blocks:
 * a wholly free segment of an arena (not its first) is taken for medium pages where it is.
 * Before, the arena kept it until its tick purged it, and the medium pages faulted in fresh
 * segments beside it (6000+ faults for 24 MiB). */
Test(large, memory_freed_by_extent_blocks_serves_medium_ones_without_faults, .timeout = 60)
{
    char *envp[] = {"UMALLOC_PURGE_DELAY_MS=60000", NULL}; /* as freed_then sets it, before the core reads it */
    umi_options_load(envp, 0);
    um_free(um_malloc(16)); /* the core reads its options and sets the arenas up */
    if (!umi_extents_on) cr_skip("SKIPPED: extent arenas are off here (several NUMA nodes, or OS pages other than 4 KiB)");
    long faults = freed_then(40000, 10000);
    fprintf(stderr, "[large/extent then medium] minor faults: %ld for 24 MiB\n", faults);
    cr_expect_lt(faults, (24 << 20) / 4096 / 4, "24 MiB of 10 KB blocks after 24 MiB of 40 KB ones freed: %ld faults", faults);
}

/* A freed huge block's memory serves the next huge blocks wherever they fit in it, not only at
 * a 4 MiB boundary: blocks find their header through the huge index, one page before them.
 * And blocks cut from it and freed again make it whole again (the cache merges neighbours), so
 * that a block as large as the first fits there once more. Before, the second 1 MiB block and
 * the 2.5 MiB one were fresh mappings, a page fault per page, while the freed memory waited. */
static bool inside(const void *p, size_t n, const unsigned char *lo, size_t span)
{
    return (const unsigned char *)p >= lo && (const unsigned char *)p + n <= lo + span;
}

Test(large, freed_huge_memory_serves_blocks_anywhere_in_it_and_merges_again, .timeout = 120)
{
    const size_t n = 3 * TU_MiB, small = TU_MiB, big = 5 * TU_MiB / 2;
    unsigned char *a = um_malloc(n);
    cr_assert_not_null(a);
    tu_fill(a, n, 1);
    um_free(a);
    unsigned char *b1 = um_malloc(small), *b2 = um_malloc(small);
    cr_assert(b1 != NULL && b2 != NULL);
    cr_assert(inside(b1, small, a, n) && inside(b2, small, a, n),
              "blocks of 1 MiB at %p and %p, not in the freed 3 MiB at %p", (void *)b1, (void *)b2, (void *)a);
    tu_fill(b1, small, 2);
    tu_fill(b2, small, 3);
    cr_assert_eq(tu_check(b1, small, 2), -1);
    /* Only block starts are ours: a pointer a page into a block, and one just past it, are not
     * (and looking them up must not fault, whatever lies there). */
    cr_assert_eq(um_owns(b1), 1);
    cr_assert_eq(um_owns(b1 + 4096), 0);
    cr_assert_eq(um_owns(b2 + um_malloc_usable_size(b2)), 0);
    cr_assert_eq(um_malloc_usable_size(b1 + 4096), 0);
    um_free(b1);
    um_free(b2);
    unsigned char *c = um_malloc(big);
    cr_assert_not_null(c);
    cr_assert(inside(c, big, a, n), "a block of 2.5 MiB at %p, not in the freed 3 MiB at %p", (void *)c, (void *)a);
    tu_fill(c, big, 4);
    cr_assert_eq(tu_check(c, big, 4), -1);
    um_free(c);
}

/* A huge block aligned beyond a page is served from freed huge memory too, at an aligned place
 * inside it, not from a fresh mapping (each of whose pages the program would fault in again):
 * twice from the same freed 8 MiB, the second time beside the first block, from what the first
 * left cached around it. */
Test(large, aligned_huge_blocks_reuse_freed_memory, .timeout = 120)
{
    const size_t big = 8 * TU_MiB, n = 3 * TU_MiB, align = 2 * TU_MiB;
    unsigned char *a = um_malloc(big);
    cr_assert_not_null(a);
    tu_fill(a, big, 1);
    um_free(a);
    unsigned char *b = um_aligned_alloc(align, n);
    cr_assert(b != NULL && ((uintptr_t)b & (align - 1)) == 0, "aligned_alloc(%zu, %zu) = %p", align, n, (void *)b);
    cr_assert(inside(b, n, a, big), "an aligned block of 3 MiB at %p, not in the freed 8 MiB at %p", (void *)b, (void *)a);
    unsigned char *c = um_aligned_alloc(align, TU_MiB);
    cr_assert(c != NULL && ((uintptr_t)c & (align - 1)) == 0, "aligned_alloc(%zu, 1 MiB) = %p", align, (void *)c);
    cr_assert(inside(c, TU_MiB, a, big), "a second aligned block at %p, not in the freed 8 MiB at %p", (void *)c, (void *)a);
    tu_fill(b, n, 2);
    tu_fill(c, TU_MiB, 3);
    cr_assert_eq(tu_check(b, n, 2), -1);
    cr_assert_eq(tu_check(c, TU_MiB, 3), -1);
    cr_assert_geq(um_malloc_usable_size(b), n);
    um_free(b);
    um_free(c);
}

/* The huge index under two threads: huge blocks (600 KiB and more: none pooled) of every
 * alignment made, grown, freed by their thread or by the other one, in pieces of each other's
 * freed memory. Every block start is found (um_owns, usable size); a pointer a page into a
 * block never is (a pooled page that hands out aligned blocks takes inner pointers, so this
 * holds for huge blocks only); contents survive. */
enum { IDX_SLOTS = 64 };
static _Atomic(unsigned char *) idx_shared[IDX_SLOTS];

static void idx_check(const unsigned char *p, size_t n, size_t align)
{
    cr_assert(p != NULL && ((uintptr_t)p & (align - 1)) == 0, "block %p not aligned to %zu", (const void *)p, align);
    cr_assert_eq(um_owns(p), 1, "block %p of %zu bytes not found", (const void *)p, n);
    cr_assert_geq(um_malloc_usable_size((void *)p), n);
    cr_assert_eq(um_owns(p + 4096), 0, "a page into block %p counted as a block", (const void *)p);
}

static void *idx_worker(void *arg)
{
    tu_rng_t r = tu_rng((uint64_t)(uintptr_t)arg);
    static const size_t aligns[] = {16, 4096, 64 * 1024, 2 * 1024 * 1024, 4 * 1024 * 1024};
    unsigned char *mine[8] = {0};
    size_t size[8] = {0};
    for (size_t it = 0; it < tu_pick(400, 200, 100); it++) {
        size_t k = tu_range(&r, 0, 7);
        if (mine[k] != NULL) { /* grow it, or give it away, or free it */
            cr_assert_eq(mine[k][0], (unsigned char)k);
            cr_assert_eq(mine[k][size[k] - 1], (unsigned char)(k + 1));
            uint64_t what = tu_next(&r) % 3;
            if (what == 0) {
                size_t n = size[k] + size[k] / 4 + 4096;
                unsigned char *q = um_realloc(mine[k], n);
                cr_assert_not_null(q);
                cr_assert(q[0] == (unsigned char)k && q[size[k] - 1] == (unsigned char)(k + 1), "realloc lost the contents");
                mine[k] = q;
                size[k] = n;
                idx_check(q, n, 16);
                q[n - 1] = (unsigned char)(k + 1);
                continue;
            }
            if (what == 1) mine[k] = atomic_exchange(&idx_shared[tu_range(&r, 0, IDX_SLOTS - 1)], mine[k]);
            um_free(mine[k]); /* ours, or the one the other thread left in the slot (NULL too) */
            mine[k] = NULL;
            continue;
        }
        size_t align = aligns[tu_range(&r, 0, 4)], n = tu_range(&r, 600 * 1024, 3 * 1024 * 1024);
        unsigned char *p = align == 16 ? um_malloc(n) : um_aligned_alloc(align, n);
        idx_check(p, n, align);
        p[0] = (unsigned char)k;
        p[n - 1] = (unsigned char)(k + 1);
        mine[k] = p;
        size[k] = n;
    }
    for (int k = 0; k < 8; k++) um_free(mine[k]);
    return NULL;
}

Test(large, huge_blocks_made_and_freed_by_two_threads_are_always_found, .timeout = 120)
{
    pthread_t t[2];
    for (uintptr_t i = 0; i < 2; i++) cr_assert_eq(pthread_create(&t[i], NULL, idx_worker, (void *)(i + 1)), 0);
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < IDX_SLOTS; i++) um_free(atomic_exchange(&idx_shared[i], NULL));
}

/* A thread keeps the huge block it freed for its next huge malloc that the block fits (core/huge.c):
 * not through the shared cache, whose lock and counters two threads cycling buffers would trade
 * on every call. The kept block is free for the statistics and the checker, a second free of it
 * is refused, and a malloc it does not fit sends it to the shared cache. */
Test(large, a_thread_keeps_the_huge_block_it_freed_for_its_next_one, .timeout = 60)
{
    const size_t mib = TU_MiB;
    unsigned char *p = um_malloc(mib);
    cr_assert_not_null(p);
    memset(p, 0x5a, mib);
    size_t cached = atomic_load(&umi_huge_cached_bytes);
    um_free(p);
    cr_assert_eq(atomic_load(&umi_huge_cached_bytes), cached, "the freed block went to the shared cache, not kept");
    um_stats_t s;
    um_stats_get(&s);
    cr_assert_eq(s.large_blocks, 0, "a kept block counted as live (%llu large blocks)", (unsigned long long)s.large_blocks);
    cr_assert_eq(umi_check_heap(true), 0, "the heap check failed with a block kept");

    unsigned char *q = um_malloc(mib - 8192); /* fits the kept block */
    cr_assert_eq(q, p, "the next huge malloc of the thread did not get its kept block");
    cr_assert_geq(um_malloc_usable_size(q), mib);
    um_free(q);
    if (!tu_is_asan()) um_free(q); /* a double free of the kept block: refused (ASan stops the program there, by design) */
    unsigned char *a = um_malloc(mib), *b = um_malloc(mib);
    cr_assert(a != NULL && b != NULL && a != b, "the block freed twice was handed out twice (%p, %p)", (void *)a, (void *)b);
    um_free(b);
    cached = atomic_load(&umi_huge_cached_bytes);
    unsigned char *big = um_malloc(8 * mib); /* the kept block does not fit: to the shared cache */
    cr_assert_not_null(big);
    cr_assert_geq(atomic_load(&umi_huge_cached_bytes) + 8 * mib, cached + mib, "the kept block was not given to the shared cache");
    um_free(big);
    um_free(a);
    um_stats_get(&s);
    cr_assert_eq(s.large_blocks, 0);
    cr_assert_eq(s.mallocs - s.frees, s.live_blocks, "mallocs %llu - frees %llu != live %llu", (unsigned long long)s.mallocs,
                 (unsigned long long)s.frees, (unsigned long long)s.live_blocks);
    cr_assert_eq(umi_check_heap(true), 0);
}

/* ...and gives it back when it exits: the next thread's block of that size is the same memory. */
static void *free_one_huge_block(void *arg)
{
    unsigned char *p = um_malloc(TU_MiB);
    cr_assert_not_null(p);
    memset(p, 1, TU_MiB);
    um_free(p);
    *(void **)arg = p;
    return NULL;
}
Test(large, a_kept_huge_block_goes_to_the_shared_cache_when_its_thread_exits, .timeout = 60)
{
    void *freed = NULL;
    size_t cached = atomic_load(&umi_huge_cached_bytes);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, free_one_huge_block, &freed), 0);
    pthread_join(t, NULL);
    cr_assert_geq(atomic_load(&umi_huge_cached_bytes), cached + TU_MiB, "the exited thread's kept block is not in the shared cache");
    void *p = um_malloc(TU_MiB);
    cr_assert_eq(p, freed, "the exited thread's block was not reused");
    um_free(p);
}

/* A huge block's range needs a leaf of the huge index, a mapping of its own (64 KiB), made after
 * the block's. When the OS refuses it (RLIMIT_AS, with umalloc's cached memory or its region
 * filling the limit), what umalloc keeps for reuse goes back and the leaf is asked for again,
 * as for the block's own mapping; before, malloc gave up at once: Python filling memory under
 * `ulimit -v` got MemoryError for 1 MiB buffers with 150 MiB freed and kept (test/sys_programs.c).
 * Here the process lowers its limit to what it maps plus the block: the block's mapping fits,
 * the leaf's does not until the small-page region's unused rest is given back. */
Test(large, huge_index_leaf_refused_then_made_after_a_release, .timeout = 60) {
    if (!tu_is_plain()) cr_skip("SKIPPED in the sanitizer builds: they have no small-page region to give back (os/region.c)");
    void *first = um_malloc(64);
    cr_assert_not_null(first);
    size_t vm = tu_vm_size_bytes();
    if (vm < ((size_t)1 << 40)) cr_skip("SKIPPED: the small-page region is not reserved here (a finite RLIMIT_AS at start?)");
    const size_t N = 8 * TU_MiB;
    struct rlimit rl = {(rlim_t)(vm + N + 16 * 1024), RLIM_INFINITY};
    cr_assert_eq(setrlimit(RLIMIT_AS, &rl), 0);
    void *p = um_malloc(N);
    cr_assert_not_null(p, "malloc(%zu) failed when only the huge index's leaf did not fit under RLIMIT_AS (errno %d)", N, errno);
    memset(p, 1, N);
    cr_assert_eq(um_owns(p), 1);
    um_free(p);
    um_free(first);
}
