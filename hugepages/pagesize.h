/* Page-size policy: which kind of page backs a mapping the core asks for (UMALLOC_HUGEPAGES),
 * whether it is populated and locked when mapped (UMALLOC_PREFAULT, UMALLOC_MLOCK), and the
 * reservation made at start (UMALLOC_RESERVE, hugepages/reserve.c). The core states what a
 * mapping is for; this layer decides how it is backed and reports what it got, as one of
 * include/umalloc.h's UM_PAGES_* kinds, which the statistics count. The system calls themselves
 * are the OS layer's (os/os.h).
 *
 * A mapping is made in three steps, in numa/arena.c: (1) map it with the pages chosen here
 * (umi_pages_map, umi_pages_commit), (2) bind it to its NUMA node, (3) populate and lock it
 * (umi_pages_settle). Nothing touches the memory before step 3, so the binding decides where
 * every page lands. */
#ifndef UM_PAGESIZE_H
#define UM_PAGESIZE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "umalloc.h"

/* A page kind as the core stores it (um_segment_t.page_kind): UM_PAGES_4K..UM_PAGES_1G, with
 * this bit set when the memory is locked (mlock), so that the statistics count locked bytes
 * wherever they count mapped ones. */
#define UM_PAGES_LOCKED 0x80u
#define UM_PAGES_KIND(k) ((unsigned)(k) & 0x7fu)
/* A transparent huge page (x86-64): the kernel backs an aligned 2 MiB range of an eligible
 * mapping with one at its first fault there. */
#define UM_THP_BYTES ((size_t)2 << 20)

/* What a mapping is for. In thp mode (the default) the advice for transparent huge pages
 * depends on it (advise in hugepages/pagesize.c): told by the caller, never guessed from the
 * mapping's size (a huge block aligned to 2 MiB maps exactly a segment's 4 MiB). */
typedef enum um_pages_use_e {
    UM_USE_SEGMENT,        /* a segment of a heap that holds a little: never advised */
    UM_USE_FILLED_SEGMENT, /* a segment of a heap that fills them or of an extent arena, a
                            * reserved run: advised once umalloc uses UM_THP_SEGMENTS_FROM */
    UM_USE_BLOCK,          /* a huge block: advised once huge blocks are seen filled */
} um_pages_use_t;

/* What this layer counts itself (relaxed atomics, slow paths only; stats/ reads them). */
typedef struct um_pages_stats_s {
    _Atomic uint64_t fallbacks;                 /* mappings that got a smaller page than the policy asked */
    _Atomic uint64_t idle[UM_PAGES_KINDS];      /* bytes of reserved runs held by no segment, by kind */
    _Atomic uint64_t idle_locked;               /* of those, locked */
    /* Bytes of segments the core has carved into blocks now, counting of a block bigger than an
     * OS page only that first page, which carving writes (the free-list link): what segments
     * surely have resident, as against what they hold (a segment is mapped whole, 4 MiB) and
     * what is carved (a program may touch a few bytes of each big block). Told by the core
     * (umi_pages_touched_add); read for the thp threshold. */
    _Atomic uint64_t touched;
    /* Bytes in use whole: the usable bytes of the huge blocks handed out now (told by the core,
     * umi_pages_whole_add) and the reservation's runs; read for the thp threshold. Counted by
     * what is in use, not by what is mapped: a huge block's mapping is grown, moved, cut and
     * pieced together in the core's cache by mremap, and a count of mapped bytes kept here
     * would have to follow every one of those moves. */
    _Atomic uint64_t whole;
} um_pages_stats_t;
extern um_pages_stats_t umi_pages_stats;
/* The core carved (count > 0) or forgot (count < 0) `count` blocks of `block_size` bytes. */
static inline void umi_pages_touched_add(int64_t count, size_t block_size) {
    int64_t per_block = block_size < 4096 ? (int64_t)block_size : 4096;
    atomic_fetch_add_explicit(&umi_pages_stats.touched, (uint64_t)(count * per_block), memory_order_relaxed);
}
/* The core handed out (bytes > 0) or took back (bytes < 0) that many usable bytes of huge blocks. */
static inline void umi_pages_whole_add(int64_t bytes) {
    atomic_fetch_add_explicit(&umi_pages_stats.whole, (uint64_t)bytes, memory_order_relaxed);
}

/* Read the options (once, at process start-up, after base/options). */
void umi_pages_init(void);
/* The policy's kind for segments (UMALLOC_HUGEPAGES as a UM_PAGES_* kind). */
unsigned umi_pages_mode(void);

/* Step 1. Map `size` bytes aligned to `align` outside the small-page region, backed as the
 * policy says; *kind gets what backs it. An empty hugetlb pool falls back to the next smaller
 * kind (counted; said once under UMALLOC_VERBOSE) and is not asked again for a while. `use`:
 * what the mapping is for, which decides the advice for transparent huge pages in thp mode. */
void *umi_pages_map(size_t size, size_t align, um_pages_use_t use, unsigned *kind);
/* The same for [at, at + size), units taken from the small-page region (MAP_FIXED). 0 on
 * success, -1 on failure (the range is then the region's read-only zeros or PROT_NONE). */
int umi_pages_commit(void *at, size_t size, um_pages_use_t use, unsigned *kind);
/* The way back: unmap, or make the region's units read-only zeros again. Hugetlb pages go back
 * to their pool whole. */
void umi_pages_unmap(void *p, size_t size);
void umi_pages_decommit(void *at, size_t size);

/* Step 3, after any NUMA binding: populate [p, p + size) when UMALLOC_PREFAULT is set, lock it
 * when UMALLOC_MLOCK is. Returns `kind`, with UM_PAGES_LOCKED if it is now locked. Over
 * RLIMIT_MEMLOCK: one line on stderr, and nothing is locked from then on. */
unsigned umi_pages_settle(void *p, size_t size, unsigned kind);

/* The size to map for a huge block that needs `map_size` bytes: rounded up to the hugetlb page
 * the policy would use for it, so that the mapping is made of whole pages. */
size_t umi_pages_block_size(size_t map_size);
/* Whether memory of this kind may be purged in parts (MADV_DONTNEED of a 64 KiB slot): not a
 * hugetlb page (it cannot be split: an idle one is kept, or released whole), not locked memory
 * (the kernel refuses it). */
static inline bool umi_pages_splittable(unsigned kind) {
    return (kind & UM_PAGES_LOCKED) == 0 && UM_PAGES_KIND(kind) < UM_PAGES_2M;
}

/* A segment-sized unit mapped earlier with 4 KiB pages (`was`), taken again from a cache for a
 * segment of that `use` (see umi_pages_map): in thp mode, advised now if umalloc uses enough
 * memory by now. Returns the kind that backs it. */
unsigned umi_pages_for_reused_unit(void *p, unsigned was, um_pages_use_t use);

/* A huge block's mapping [p, p + size) assembled or grown from cached memory: advise
 * transparent huge pages where the policy does (from 2 MiB up). Returns the kind that backs
 * it now, given what backed it (`was`). */
unsigned umi_pages_for_huge_block(void *p, size_t size, unsigned was);

/* ---- runs: the reservation, and 1 GiB pages carved into segments (hugepages/reserve.c) ---- */
/* Map UMALLOC_RESERVE at start-up (after the small-page region is reserved). */
void umi_pages_reserve_init(void);
/* A 4 MiB unit of the small-page region from a run, for a small segment, or NULL. *kind gets
 * its page kind; *dirty is true if it held a segment before (the caller zeroes it: a fresh
 * segment must read as zeros). With UMALLOC_HUGEPAGES=1G, a new 1 GiB run is mapped when every
 * run is full. The caller serialises every run function, as umi_region_take (the core holds
 * its segment cache lock). */
void *umi_pages_run_take(unsigned *kind, bool *dirty);
/* Give a unit back to its run: true if it belongs to one (then it stays mapped, resident, and
 * the caller must not decommit it), false if it is the caller's to decommit. */
bool umi_pages_run_put(void *unit);
/* Whether the unit belongs to a run (it must stay where it is, mapped as the run is). */
bool umi_pages_run_owns(const void *unit);
/* Release runs other than the reservation that have held no segment for `delay_ms` (all idle
 * ones when forced): their units go back to the region whole, their pages to the pool. */
void umi_pages_runs_trim(uint64_t now_ms, uint64_t delay_ms, bool force);
/* Runs that umi_pages_runs_trim may release (1 GiB runs), readable without the lock: the
 * caller need not take its lock when there is none. */
extern _Atomic size_t umi_pages_temp_runs;

/* ---- shared by the files of this layer ---- */
int umi_pages_hugetlb_flags(unsigned kind); /* MAP_HUGETLB | its size flag (0 for 4K and THP) */
bool umi_pages_backing_off(unsigned kind);  /* that pool refused a page less than a second ago */
/* Set by the calling thread around the commit of a 1 GiB run: the commit gets the policy's
 * kind or fails, with no fallback (a 1 GiB run of smaller pages would only be given back). */
extern __thread bool umi_pages_exact;
void umi_pages_fallback(unsigned wanted, unsigned got); /* count a fallback; say it once */

#endif
