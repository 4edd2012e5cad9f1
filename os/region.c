/* The small-page region (see os/region.h): the reservation, and which of its 4 MiB units
 * are in use. */
#include "base/base.h"
#include "os/region.h"

#include <errno.h>
#include <stdatomic.h>
#include "os/sys.h"
#include <sys/resource.h>

#include "os/os.h"

/* The sanitizers own fixed ranges of the low address space (ASan's shadow covers the first
 * 16 TiB); there the core maps small segments like the others and free() takes its slow path. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define UM_USE_REGION 0
#else
#define UM_USE_REGION 1
#endif

#define REGION_SIZE ((uintptr_t)1 << UM_REGION_BITS)
#define UNIT_SIZE ((size_t)1 << UM_REGION_UNIT_SHIFT)
#define UNITS (REGION_SIZE >> UM_REGION_UNIT_SHIFT) /* 262144 */
#define WORDS (UNITS / 64)

static uintptr_t region_base;        /* 0: no region */
static size_t bump;                  /* units [0, bump) have been handed out at least once */
static size_t limit = UNITS;         /* units [0, limit) are reserved (umi_region_shrink) */
UM_BIG_BSS static uint64_t given_back[WORDS];   /* bit set: a unit below bump that is free again (32 KiB) */
static size_t given_back_count;
static size_t given_back_hint;       /* no word below this has a bit set */

/* Candidates: k << 40 for k = 2..7. That is below os/os.c's hint area (8 TiB and up), far
 * from the kernel's top-down mappings near 128 TiB and from executables near 85 TiB, and leaves
 * the first 2 TiB to brk and to programs that map at fixed low addresses. */
#define FIRST_K 2
#define CANDIDATES 6

uintptr_t umi_region_reserve(uintptr_t seed) {
    if (!UM_USE_REGION || region_base != 0) return region_base;
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) return 0;
    int saved = errno;
    for (unsigned i = 0; i < CANDIDATES; i++) {
        uintptr_t at = (uintptr_t)(FIRST_K + (seed + i) % CANDIDATES) << UM_REGION_BITS;
        void *p = umi_sys_mmap((void *)at, REGION_SIZE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
        if (p == (void *)at) {
            region_base = at;
            /* Not in core dumps: released units read as zeros and would help nobody there.
             * Segments in use are mappings of their own and are dumped. */
            umi_sys_madvise(p, REGION_SIZE, MADV_DONTDUMP);
            break;
        }
        if (p != MAP_FAILED) umi_sys_munmap(p, REGION_SIZE); /* a kernel that ignored the flag put it elsewhere */
    }
    errno = saved;
    return region_base;
}

int umi_region_contains(const void *p) {
    return region_base != 0 && (uintptr_t)p >= region_base && (uintptr_t)p - region_base < ((uintptr_t)limit << UM_REGION_UNIT_SHIFT);
}

size_t umi_region_shrink(void) {
    if (region_base == 0 || bump == limit) return 0;
    size_t bytes = (limit - bump) << UM_REGION_UNIT_SHIFT;
    int saved = errno;
    if (umi_sys_munmap((void *)(region_base + (bump << UM_REGION_UNIT_SHIFT)), bytes) != 0) bytes = 0;
    else limit = bump;
    errno = saved;
    return bytes;
}

void *umi_region_take(void) {
    if (region_base == 0) return NULL;
    if (given_back_count > 0) {
        for (size_t w = given_back_hint; w < WORDS; w++) {
            if (given_back[w] == 0) continue;
            unsigned b = (unsigned)__builtin_ctzll(given_back[w]);
            given_back[w] &= given_back[w] - 1;
            given_back_count--;
            given_back_hint = w;
            return (void *)(region_base + ((w * 64 + b) << UM_REGION_UNIT_SHIFT));
        }
    }
    if (bump == limit) return NULL;
    return (void *)(region_base + (bump++ << UM_REGION_UNIT_SHIFT));
}

void umi_region_put(void *p) {
    size_t i = ((uintptr_t)p - region_base) >> UM_REGION_UNIT_SHIFT;
    given_back[i / 64] |= (uint64_t)1 << (i % 64);
    given_back_count++;
    if (i / 64 < given_back_hint) given_back_hint = i / 64;
}

void *umi_region_take_run(size_t units, size_t align_units) {
    if (region_base == 0 || units == 0 || align_units == 0) return NULL;
    size_t first = (bump + align_units - 1) / align_units * align_units;
    if (first + units > limit || first + units < first) return NULL;
    while (bump < first) umi_region_put((void *)(region_base + (bump++ << UM_REGION_UNIT_SHIFT))); /* the gap stays usable */
    bump = first + units;
    return (void *)(region_base + (first << UM_REGION_UNIT_SHIFT));
}

int umi_region_commit(void *p) { return umi_region_commit_flags(p, UNIT_SIZE, 0); }

int umi_region_commit_flags(void *p, size_t size, int flags) {
    int saved = errno;
    /* A hugetlb mapping takes its pages from the pool now (no MAP_NORESERVE): an empty pool
     * refuses it here rather than with SIGBUS at a later fault. */
    int noreserve = (flags & MAP_HUGETLB) ? 0 : MAP_NORESERVE;
    void *q = umi_sys_mmap(p, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | noreserve | MAP_FIXED | flags, -1, 0);
    int err = errno;
    errno = q == p ? saved : err;
    return q == p ? 0 : -1;
}

void umi_region_decommit(void *p) { umi_region_decommit_size(p, UNIT_SIZE); }

void umi_region_decommit_size(void *p, size_t size) {
    int saved = errno;
    /* Replacing the mapping releases hugetlb pages whole, back to their pool. */
    void *q = umi_sys_mmap(p, size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
    if (q == p) umi_sys_madvise(p, size, MADV_DONTDUMP); /* as the rest of the reservation */
    /* Out of mappings (vm.max_map_count)? Then it stays writable, but reads zero all the same. */
    else umi_sys_madvise(p, size, MADV_DONTNEED);
    atomic_fetch_add_explicit(&umi_os_stats.unmaps, 1, memory_order_relaxed);
    errno = saved;
}

size_t umi_region_unit_index(const void *p) { return ((uintptr_t)p - region_base) >> UM_REGION_UNIT_SHIFT; }
