/* The OS layer: every system call umalloc makes for memory goes through here, so the rest of
 * the allocator never names mmap or madvise. Which page size backs what is hugepages/' policy. */
#ifndef UM_OS_H
#define UM_OS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Map `size` bytes of zeroed, read-write memory aligned to `align` (a power of two, at least the
 * OS page size). NULL on failure (errno as mmap left it). */
void *umi_os_map_aligned(size_t size, size_t align);
/* The same with more mmap flags: MAP_HUGETLB and its page-size flag (hugepages/ decides). Both
 * size and align must then be multiples of that page size. A hugetlb mapping reserves its pages
 * from the pool at once: NULL with errno ENOMEM when the pool is short. */
void *umi_os_map_aligned_flags(size_t size, size_t align, int flags);
void umi_os_unmap(void *p, size_t size);
/* Map `size` bytes of zeroed read-write memory wherever the kernel puts it (beside the
 * libraries, whose page tables exist), reserving nothing: for a table touched a page at a
 * time. NULL on failure. */
void *umi_os_map_table(size_t size);
/* Map fresh zeroed read-write memory exactly at [p, p + size), replacing whatever is there.
 * p on success, NULL on failure. */
void *umi_os_map_fixed(void *p, size_t size);
/* Give the memory back to the OS; it reads as zero afterwards and costs no RSS. false if the
 * kernel refused: then the memory is as it was, contents included (nothing may assume zeros). */
bool umi_os_purge(void *p, size_t size);
/* Resize a mapping where it is: p, or NULL when the address space after it is taken (the
 * mapping is then untouched). */
void *umi_os_resize(void *p, size_t old_size, size_t new_size);
/* Move [p, p + old_size) onto dst, a mapping of new_size bytes the caller made, resizing it on
 * the way: page tables move, no byte is copied. dst, or NULL when the kernel refused (p is
 * then untouched; dst may be unmapped: the caller unmaps it). */
void *umi_os_move_resize(void *p, size_t old_size, size_t new_size, void *dst);
/* Move the pages of [from, from + size) to dst (replacing what is mapped there): page tables
 * move, no byte is copied or cleared. 0 on success, -1 if the kernel refused (nothing moved). */
int umi_os_move(void *from, size_t size, void *dst);
/* The same, leaving [from, from + size) mapped behind, empty (MREMAP_DONTUNMAP, Linux 5.7; 5.13
 * for all private mappings): for a range whose addresses must never be left unmapped. -1 if
 * the kernel refused (nothing moved); after a refusal for good (a kernel without the flag) it
 * makes no more calls. */
int umi_os_move_keep(void *from, size_t size, void *dst);
/* Grow [p, p + old_size) to new_size bytes at an `align`-aligned address: in place if p is
 * aligned and the space after it is free, else moved by page tables (no byte copied). Returns
 * the new address, or NULL (the old mapping is then untouched). */
void *umi_os_grow_aligned(void *p, size_t old_size, size_t new_size, size_t align);
size_t umi_os_page_size(void);
/* Make [p, p + size) inaccessible (on) or read-write again (off): the secure build's guard
 * pages. Best effort: a failure (out of kernel mappings) leaves the page as it was. */
void umi_os_guard(void *p, size_t size, bool on);
/* Ask for transparent huge pages on [p, p + size) (MADV_HUGEPAGE); whether to is
 * hugepages/pagesize.c's call. Returns 1 if the kernel took the advice. */
int umi_os_advise_huge(void *p, size_t size);
/* The opposite (MADV_NOHUGEPAGE): no transparent huge page over [p, p + size), even with THP
 * "always"; the kernel makes the range a mapping of its own. Best effort. */
void umi_os_advise_no_huge(void *p, size_t size);
/* Fault [p, p + size) in now, writable (MADV_POPULATE_WRITE, Linux 5.14): 1 on success, 0 if
 * the kernel refused or does not know the advice (the caller may touch the pages instead).
 * After a refusal for good (EINVAL, EPERM) it makes no more calls. */
int umi_os_populate(void *p, size_t size);
/* The OS pages of [lo, hi) are fresh (not resident) and about to be written (a segment's
 * header, a heap, blocks umalloc carves, realloc's copy): fault them in with one call, not one
 * page fault each. A page fault is an exception taken and returned from for every 4 KiB; the
 * call pays that once. Under a hypervisor that traps guest page faults (shadow paging, nested
 * guests) a fault costs 10 us and more, the call 0.6 us a page for a run and 2.4 for one page
 * (docs/design.md, "Faulting in what umalloc writes"); on bare metal both cost about the same.
 * Best effort: a refusal leaves the pages to fault. */
void umi_os_fault_in(void *lo, void *hi);
/* umi_os_fault_in for the library's own .bss as it is loaded (preload/start.c): it reads no
 * variable of umalloc's, each of which lies on one of the pages it is to fault in (a read there
 * first would map the zero page, which the populate then replaces: two faults for one page). */
void umi_os_fault_in_bss(void *lo, void *hi);
/* How many of the OS pages of [p, p + size) are resident (mincore; size at most 2 MiB);
 * 0 if the range is not mapped. */
size_t umi_os_resident_pages(const void *p, size_t size);
/* mlock2 [p, p + size) (on_fault: MLOCK_ONFAULT, pages are locked as they are touched).
 * Returns 0, or the errno of the refusal (ENOMEM or EAGAIN over RLIMIT_MEMLOCK). */
int umi_os_lock(void *p, size_t size, bool on_fault);
/* CLOCK_MONOTONIC_COARSE in milliseconds, from the vDSO (os/clock.c). */
uint64_t umi_os_now_ms(void);
/* Whether umi_os_now_ms found the vDSO's clock (else it calls libc's clock_gettime). */
bool umi_os_clock_from_vdso(void);
/* CPUs this process may run on (sched_getaffinity), at least 1. */
unsigned umi_os_cpu_count(void);
/* Milliseconds from `then` to `now`, 0 if `then` is later: a walk that read the clock once may
 * meet a stamp another thread wrote after that read, and the plain difference would wrap to
 * an age of 584 million years. */
static inline uint64_t umi_os_ms_since(uint64_t then, uint64_t now) { return now > then ? now - then : 0; }

/* Process-wide counters of what went back to the OS (relaxed atomics, slow paths only). What is
 * mapped is counted per segment by the statistics walk (stats/snapshot.c). */
typedef struct um_os_stats_s {
    _Atomic size_t purged_total; /* bytes purged since start */
    _Atomic size_t unmaps;       /* munmap calls (um_trim reports whether it released anything) */
    _Atomic size_t faulted_in;   /* bytes populated ahead of umalloc's own writes (umi_os_fault_in) */
} um_os_stats_t;
extern um_os_stats_t umi_os_stats;

#endif
