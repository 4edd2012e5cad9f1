/* Page-size policy (see hugepages/pagesize.h): the kind of page behind each mapping, the
 * fall-back when a hugetlb pool is empty, prefaulting and locking. */
#include "hugepages/pagesize.h"

#include <errno.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "base/fmt.h"
#include "base/options.h"
#include "os/os.h"
#include "os/region.h"

#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT 26
#endif

#define UM_2M ((size_t)2 << 20)
#define UM_1G ((size_t)1 << 30)
/* One transparent huge page: below it advice buys nothing. */
#define UM_THP_MIN UM_2M
/* With UMALLOC_HUGEPAGES=thp, segments are advised once umalloc uses this much (and then only
 * those of heaps that fill them, UM_USE_FILLED_SEGMENT): a heap that small fits in the TLB's
 * reach with 4 KiB pages, and a 2 MiB page faulted in for the first 64 KiB slot of a segment would
 * multiply its resident memory. What it uses is its huge blocks and runs whole, but of its
 * segments only what carving has surely touched (umi_pages_stats.touched), not what they map: a
 * thread maps a 4 MiB segment for the first block of each class of 64 KiB and more, so many
 * threads that each use many classes a little hold many times what they use; and of a big
 * block a program may write a few bytes only. */
#define UM_THP_SEGMENTS_FROM ((uint64_t)256 << 20)
/* After a pool refused a page, it is not asked again for this long: each refused mmap costs a
 * system call and the kernel's search of the pool. */
#define UM_BACKOFF_MS 1000

um_pages_stats_t umi_pages_stats;
#define UM_UNIT_BYTES ((size_t)1 << UM_REGION_UNIT_SHIFT)

static unsigned mode = UM_PAGES_THP; /* UMALLOC_HUGEPAGES */
static bool mode_set;                /* ... set in the environment (not the default) */
static bool prefault, lock_on;
static _Atomic bool lock_refused;     /* an mlock2 was refused: nothing is locked from then on */
static _Atomic uint64_t retry_at_ms[UM_PAGES_KINDS]; /* a pool of that kind refused: not before */
static _Atomic bool said_fallback;

void umi_pages_init(void) {
    mode = (unsigned)umi_option(UM_OPT_HUGEPAGES);
    mode_set = umi_option_source(UM_OPT_HUGEPAGES) == UM_SRC_ENV;
    prefault = umi_option(UM_OPT_PREFAULT) != 0;
    lock_on = umi_option(UM_OPT_MLOCK) != 0;
}

unsigned umi_pages_mode(void) { return mode; }

int umi_pages_hugetlb_flags(unsigned kind) {
    if (kind == UM_PAGES_2M) return MAP_HUGETLB | (21 << MAP_HUGE_SHIFT);
    if (kind == UM_PAGES_1G) return MAP_HUGETLB | (30 << MAP_HUGE_SHIFT);
    return 0;
}

static size_t kind_bytes(unsigned kind) { return kind == UM_PAGES_1G ? UM_1G : UM_2M; }

__thread bool umi_pages_exact;

static bool backing_off(unsigned kind) {
    uint64_t at = atomic_load_explicit(&retry_at_ms[kind], memory_order_relaxed);
    return at != 0 && umi_os_now_ms() < at;
}

bool umi_pages_backing_off(unsigned kind) { return kind < UM_PAGES_KINDS && backing_off(kind); }

static void refused(unsigned kind) {
    atomic_store_explicit(&retry_at_ms[kind], umi_os_now_ms() + UM_BACKOFF_MS, memory_order_relaxed);
}

static const char *kind_name(unsigned kind) {
    static const char *const names[UM_PAGES_KINDS] = {"4 KiB pages", "transparent huge pages", "2 MiB pages", "1 GiB pages"};
    return kind < UM_PAGES_KINDS ? names[kind] : "?";
}

void umi_pages_fallback(unsigned wanted, unsigned got) {
    atomic_fetch_add_explicit(&umi_pages_stats.fallbacks, 1, memory_order_relaxed);
    if (!umi_option(UM_OPT_VERBOSE) || atomic_exchange_explicit(&said_fallback, true, memory_order_relaxed)) return;
    int saved = errno;
    umi_dprintf(2, "umalloc: UMALLOC_HUGEPAGES: the pool has no %s to give; using %s instead, asking again "
                   "every %d ms (fallbacks are counted in the statistics; said once)\n",
                kind_name(wanted), kind_name(got), UM_BACKOFF_MS);
    errno = saved;
}

/* The largest kind the policy uses for `size` bytes at `at` (NULL: anywhere): 1 GiB pages only
 * for whole 1 GiB pages, and hugetlb pages only for whole pages. */
static unsigned policy_kind(size_t size, uintptr_t at) {
    unsigned k = mode;
    if (k == UM_PAGES_1G && (size % UM_1G != 0 || at % UM_1G != 0)) k = UM_PAGES_2M;
    if (k == UM_PAGES_2M && (size % UM_2M != 0 || at % UM_2M != 0)) k = UM_PAGES_THP;
    return k;
}

/* Huge blocks in the default mode: advised once the program has shown that it fills them. A
 * transparent huge page faults in 2 MiB at the first write anywhere in it, and a program that
 * allocates big buffers and writes a little of each (a hash table sized for the worst case, a
 * buffer per connection) would hold up to 512 times what it uses. So the first huge block is
 * not advised; each new one looks at the one before it (its first 2 MiB, with mincore), and
 * from the first that is at least half resident on, huge blocks are advised. A program that
 * fills its blocks pays 4 KiB faults for one block; one that does not never pays the 2 MiB
 * ones. UMALLOC_HUGEPAGES=thp set in the environment advises every huge block at once. */
static _Atomic bool huge_blocks_filled;
static _Atomic uintptr_t huge_block_last; /* the probe: the huge block mapped before */
static bool huge_blocks_dense(void *p) {
    if (mode_set || atomic_load_explicit(&huge_blocks_filled, memory_order_relaxed)) return true;
    uintptr_t last = atomic_exchange_explicit(&huge_block_last, (uintptr_t)p, memory_order_relaxed);
    /* freed and unmapped since: mincore finds nothing resident, and the next block is probed */
    if (last == 0 || umi_os_resident_pages((void *)last, UM_THP_MIN) * 2 < UM_THP_MIN / umi_os_page_size()) return false;
    atomic_store_explicit(&huge_blocks_filled, true, memory_order_relaxed);
    return true;
}

/* What umalloc uses, for the segments' threshold: huge blocks and runs whole, of segments what
 * carving touched (um_pages_stats_t). */
static uint64_t in_use(void) {
    return atomic_load_explicit(&umi_pages_stats.whole, memory_order_relaxed) +
           atomic_load_explicit(&umi_pages_stats.touched, memory_order_relaxed);
}

/* THP advice for a mapping the policy backs with 4 KiB pages in thp mode, or after a hugetlb
 * fall-back. In thp mode a segment is advised if its user fills it and umalloc uses
 * UM_THP_SEGMENTS_FROM; a huge block from 2 MiB up once huge blocks are seen filled (above).
 * A fall-back from 2M or 1G is advised at once: the program asked for huge pages. */
static unsigned advise(void *p, size_t size, um_pages_use_t use) {
    if (mode == UM_PAGES_4K || size < UM_THP_MIN) return UM_PAGES_4K;
    if (mode == UM_PAGES_THP) {
        if (use == UM_USE_SEGMENT) return UM_PAGES_4K;
        if (use == UM_USE_FILLED_SEGMENT && in_use() < UM_THP_SEGMENTS_FROM) return UM_PAGES_4K;
        if (use == UM_USE_BLOCK && !huge_blocks_dense(p)) return UM_PAGES_4K;
    }
    return umi_os_advise_huge(p, size) ? UM_PAGES_THP : UM_PAGES_4K;
}

void *umi_pages_map(size_t size, size_t align, um_pages_use_t use, unsigned *kind) {
    unsigned want = policy_kind(size, 0), k = want;
    for (; k >= UM_PAGES_2M; k--) {
        if (backing_off(k)) continue;
        size_t a = align > kind_bytes(k) ? align : kind_bytes(k);
        void *p = umi_os_map_aligned_flags(size, a, umi_pages_hugetlb_flags(k));
        if (p != NULL) {
            if (k != want) umi_pages_fallback(want, k);
            *kind = k;
            return p;
        }
        refused(k);
    }
    void *p = umi_os_map_aligned(size, align);
    if (p == NULL) return NULL;
    *kind = advise(p, size, use);
    if (want >= UM_PAGES_2M) umi_pages_fallback(want, *kind);
    return p;
}

int umi_pages_commit(void *at, size_t size, um_pages_use_t use, unsigned *kind) {
    unsigned want = policy_kind(size, (uintptr_t)at), k = want;
    if (umi_pages_exact && (want < UM_PAGES_2M || backing_off(want))) return -1; /* nothing mapped yet */
    for (; k >= UM_PAGES_2M; k--) {
        if (backing_off(k)) continue;
        if (umi_region_commit_flags(at, size, umi_pages_hugetlb_flags(k)) == 0) {
            if (k != want) umi_pages_fallback(want, k);
            *kind = k;
            return 0;
        }
        refused(k); /* the range may be unmapped now: the next commit maps it again at once */
        if (umi_pages_exact) { /* no fallback: leave no hole in the region, and fail */
            umi_region_decommit_size(at, size);
            return -1;
        }
    }
    if (umi_region_commit_flags(at, size, 0) != 0) {
        if (want >= UM_PAGES_2M) umi_region_decommit_size(at, size); /* no hole left in the region */
        return -1;
    }
    *kind = advise(at, size, use);
    if (want >= UM_PAGES_2M) umi_pages_fallback(want, *kind);
    return 0;
}

void umi_pages_unmap(void *p, size_t size) { umi_os_unmap(p, size); }

void umi_pages_decommit(void *at, size_t size) { umi_region_decommit_size(at, size); }

/* Without MADV_POPULATE_WRITE (before Linux 5.14), one write per page does it. The memory is
 * fresh, so it reads zero, and writing zero changes nothing. */
static void touch(void *p, size_t size, unsigned kind) {
    size_t step = kind == UM_PAGES_1G ? UM_1G : kind == UM_PAGES_2M ? UM_2M : umi_os_page_size();
    for (size_t off = 0; off < size; off += step) ((volatile char *)p)[off] = 0;
}

unsigned umi_pages_settle(void *p, size_t size, unsigned kind) {
    if (prefault && !umi_os_populate(p, size)) touch(p, size, kind);
    if (!lock_on || atomic_load_explicit(&lock_refused, memory_order_relaxed)) return kind;
    int saved = errno;
    /* Populated already (prefault, hugetlb): lock it all now. Else lock pages as they fault in,
     * so that locking costs no memory the program never touches. */
    int err = umi_os_lock(p, size, !prefault && UM_PAGES_KIND(kind) < UM_PAGES_2M);
    if (err == 0) { errno = saved; return kind | UM_PAGES_LOCKED; }
    if (!atomic_exchange_explicit(&lock_refused, true, memory_order_relaxed)) {
        struct rlimit rl;
        char lim[32] = "unlimited";
        if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) umi_fmt(lim, sizeof lim, "%llu KiB", (unsigned long long)rl.rlim_cur >> 10);
        umi_dprintf(2, "umalloc: UMALLOC_MLOCK=1: the kernel refused to lock %zu KiB (errno %d; RLIMIT_MEMLOCK is %s): "
                       "going on without locking\n", size >> 10, err, lim);
    }
    errno = saved;
    return kind;
}

size_t umi_pages_block_size(size_t map_size) {
    if (mode < UM_PAGES_2M) return map_size;
    size_t page = mode == UM_PAGES_1G && map_size >= UM_1G ? UM_1G : UM_2M;
    size_t rounded = (map_size + page - 1) & ~(page - 1);
    return rounded < map_size ? map_size : rounded;
}

unsigned umi_pages_for_reused_unit(void *p, unsigned was, um_pages_use_t use) {
    if (was != UM_PAGES_4K || mode != UM_PAGES_THP) return was;
    return advise(p, UM_UNIT_BYTES, use);
}

unsigned umi_pages_for_huge_block(void *p, size_t size, unsigned was) {
    if (UM_PAGES_KIND(was) >= UM_PAGES_2M) return was;
    unsigned got = advise(p, size, UM_USE_BLOCK);
    return got == UM_PAGES_THP ? (UM_PAGES_THP | (was & UM_PAGES_LOCKED)) : was;
}
