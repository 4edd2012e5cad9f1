/* The small-page region: one reservation of 2^40 bytes aligned to 2^40, from which the core
 * carves its small segments, so that free() tells a small block of ours by `p >> 40` alone
 * (docs/design.md, "Memory layout" and "Thread heaps and the fast path"). It is reserved
 * PROT_NONE; a unit is mapped read-write when a segment is carved from it and read-only (zeros,
 * no memory behind it) when given back, so every address we ever handed out stays readable and
 * free() may read a page's owner word for any such pointer, stale ones included. Units never
 * used stay PROT_NONE: only a made-up pointer reaches them, and mlockall(MCL_CURRENT) does not
 * populate them (a readable 1 TiB would have it map the zero page into all of it: 2 GiB of page
 * tables, minutes). */
#ifndef UM_REGION_H
#define UM_REGION_H

#include <stddef.h>
#include <stdint.h>

#define UM_REGION_BITS 40       /* log2 of its size and alignment: UM_REGION_SHIFT in core/types.h */
#define UM_REGION_UNIT_SHIFT 22 /* what it is carved in: segments (UM_SEGMENT_SHIFT) */

/* Reserve the region, once, at process start-up; `seed` picks among the candidate places.
 * Returns its base, or 0 when there is none: under ASan or TSan (they own fixed ranges of the
 * address space), with a finite RLIMIT_AS (1 TiB of it would go), or when no candidate is free. */
uintptr_t umi_region_reserve(uintptr_t seed);
int umi_region_contains(const void *p);
/* The address of a unit nobody uses (the lowest given back, else the next never used), or NULL
 * when the region is absent or full. No system call: the caller serialises umi_region_take and
 * umi_region_put (the core holds its segment cache lock). */
void *umi_region_take(void);
void umi_region_put(void *p);
/* Give the never-used rest of the reservation back to the OS, for a program whose address
 * space got tight (a lowered RLIMIT_AS): the region then ends after the last unit ever taken.
 * Its window is no longer ours alone, so the core must stop telling small blocks by address.
 * Returns the bytes released (0: nothing to release). The caller serialises it with
 * umi_region_take. */
size_t umi_region_shrink(void);
/* `units` never-used units in a row, aligned to `align_units` units (a 1 GiB page covers 256),
 * or NULL. Units skipped to align the run are given back (umi_region_put). Serialised as
 * umi_region_take. The run's units are given back one by one with umi_region_put. */
void *umi_region_take_run(size_t units, size_t align_units);
/* Map a taken unit read-write (zeros). 0 on success; -1 on failure, errno preserved. */
int umi_region_commit(void *p);
/* The same for `size` bytes of taken units, with more mmap flags (MAP_HUGETLB and its size):
 * 0 on success; -1 on failure with errno as mmap set it (ENOMEM: the pool is short). A
 * failed MAP_FIXED may leave the range unmapped: commit it again, or decommit it, at once. */
int umi_region_commit_flags(void *p, size_t size, int flags);
/* Map a unit read-only again: zeros, no memory behind it. Then umi_region_put it. */
void umi_region_decommit(void *p);
void umi_region_decommit_size(void *p, size_t size);
/* The index of the unit holding p (p in the region). */
size_t umi_region_unit_index(const void *p);

#endif
