/* The OS layer: anonymous mappings, aligned by over-mapping and trimming, purge with
 * MADV_DONTNEED (not MADV_FREE: RSS must drop now, not under memory pressure, or users who
 * watch RSS see no difference). The clock and the CPU count are os/clock.c's. */
#include "os/os.h"
#include "base/sanitize.h"

#include <errno.h>
#include <stdatomic.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include "os/sys.h"
#include <unistd.h>

um_os_stats_t umi_os_stats;

static _Atomic size_t os_page_size; /* 0 until first asked; threads may race to set it (same value) */

size_t umi_os_page_size(void) {
    size_t ps = atomic_load_explicit(&os_page_size, memory_order_relaxed);
    if (ps == 0) {
        ps = (size_t)getauxval(AT_PAGESZ);
        if (ps == 0) ps = 4096;
        atomic_store_explicit(&os_page_size, ps, memory_order_relaxed);
    }
    return ps;
}

/* Segments are asked for in 4 MiB-aligned units. Mapping exactly `size` at a hint that is
 * aligned already costs one syscall instead of three (map size + align, unmap head, unmap tail).
 * The hints climb through a region of their own, from 8 TiB plus a random offset: the kernel
 * maps top-down from near 128 TiB and puts executables and brk near 85 TiB, so the region is
 * free in practice, and MAP_FIXED_NOREPLACE makes sure we never clobber anything if it is not.
 * The sanitizers own fixed address ranges, so there the kernel chooses. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define UM_USE_HINT 0
#else
#define UM_USE_HINT 1
#endif
#define UM_HINT_BASE ((uintptr_t)8 << 40)
#define UM_HINT_END ((uintptr_t)64 << 40)
static _Atomic uintptr_t os_hint;

/* `extra` may carry MAP_HUGETLB and its size flag: such a mapping is made without
 * MAP_NORESERVE, so that an empty pool refuses it now instead of killing the program with SIGBUS
 * at a fault later. */
static void *map_plain(void *hint, size_t size, int extra) {
    int noreserve = (extra & MAP_HUGETLB) ? 0 : MAP_NORESERVE;
    void *p = umi_sys_mmap(hint, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | noreserve | extra, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* Try the hint region: claim [hint, hint + size) and map it exactly there. */
static void *map_at_hint(size_t size, size_t align, int extra) {
    uintptr_t hint = atomic_load_explicit(&os_hint, memory_order_relaxed);
    if (hint == 0) {
        uintptr_t start = UM_HINT_BASE + ((((uintptr_t)&hint >> 12) ^ umi_os_now_ms()) & 0xff) * ((uintptr_t)1 << 30);
        atomic_compare_exchange_strong(&os_hint, &hint, start);
        hint = atomic_load_explicit(&os_hint, memory_order_relaxed);
    }
    for (int tries = 0; tries < 2; tries++) {
        uintptr_t at = (hint + align - 1) & ~(uintptr_t)(align - 1);
        uintptr_t next = at + ((size + align - 1) & ~(uintptr_t)(align - 1));
        if (next > UM_HINT_END) return NULL;
        if (!atomic_compare_exchange_strong(&os_hint, &hint, next)) continue; /* another thread took it */
        void *p = map_plain((void *)at, size, MAP_FIXED_NOREPLACE | extra);
        if (p == (void *)at) return p;
        if (p != NULL) umi_sys_munmap(p, size); /* a kernel that ignored the flag put it elsewhere */
        if (p == NULL && (extra & MAP_HUGETLB) && errno != EEXIST) return NULL; /* the pool is short: not a matter of place */
        /* Something lives there: jump ahead a GiB and try once more. */
        uintptr_t skip = next + ((uintptr_t)1 << 30);
        atomic_compare_exchange_strong(&os_hint, &next, skip);
        hint = atomic_load_explicit(&os_hint, memory_order_relaxed);
    }
    return NULL;
}

void *umi_os_map_aligned(size_t size, size_t align) { return umi_os_map_aligned_flags(size, align, 0); }

void *umi_os_map_aligned_flags(size_t size, size_t align, int flags) {
    size_t ps = umi_os_page_size();
    if (align < ps) align = ps;
    size = (size + ps - 1) & ~(ps - 1);
    void *p = UM_USE_HINT ? map_at_hint(size, align, flags) : NULL;
    if (p == NULL && (flags & MAP_HUGETLB) && errno == ENOMEM) return NULL; /* the pool is short: no retry */
    if (p == NULL) {
        if (size + align < size) { errno = ENOMEM; return NULL; }
        uint8_t *raw = map_plain(NULL, size + align, flags);
        if (raw == NULL) return NULL;
        uint8_t *aligned = (uint8_t *)(((uintptr_t)raw + align - 1) & ~(uintptr_t)(align - 1));
        size_t head = (size_t)(aligned - raw), tail = align - head;
        if (head) umi_sys_munmap(raw, head);
        if (tail) umi_sys_munmap(aligned + size, tail);
        p = aligned;
    }
    return p;
}

void *umi_os_map_table(size_t size) {
    size_t ps = umi_os_page_size();
    return map_plain(NULL, (size + ps - 1) & ~(ps - 1), 0);
}

void *umi_os_map_fixed(void *p, size_t size) {
    int saved = errno;
    void *q = map_plain(p, size, MAP_FIXED);
    errno = saved;
    return q == p ? p : NULL;
}

void umi_os_unmap(void *p, size_t size) {
    size_t ps = umi_os_page_size();
    size = (size + ps - 1) & ~(ps - 1);
    UM_SAN_UNPOISON(p, size); /* ASan: whoever maps these addresses next starts clean */
    if (umi_sys_munmap(p, size) == 0) {
        atomic_fetch_add_explicit(&umi_os_stats.unmaps, 1, memory_order_relaxed);
    }
}

void umi_os_guard(void *p, size_t size, bool on) {
    int saved = errno;
    umi_sys_mprotect(p, size, on ? PROT_NONE : PROT_READ | PROT_WRITE);
    errno = saved;
}

size_t umi_os_resident_pages(const void *p, size_t size) {
    unsigned char vec[512];
    size_t ps = umi_os_page_size(), pages = size / ps, resident = 0;
    if (pages > sizeof vec) pages = sizeof vec;
    int saved = errno;
    if (pages != 0 && mincore((void *)((uintptr_t)p & ~(uintptr_t)(ps - 1)), pages * ps, vec) == 0)
        for (size_t i = 0; i < pages; i++) resident += vec[i] & 1;
    errno = saved;
    return resident;
}

/* Set once the advice was refused for good: by a kernel without MADV_POPULATE_WRITE (before
 * 5.14, EINVAL) or by a seccomp filter that allows only some advice (EPERM). From then on
 * umi_os_populate costs nothing, and the pages fault in as they are written. */
static _Atomic bool populate_refused;

int umi_os_populate(void *p, size_t size) {
    if (atomic_load_explicit(&populate_refused, memory_order_relaxed)) return 0;
    int saved = errno;
    int ok = umi_sys_madvise(p, size, MADV_POPULATE_WRITE) == 0;
    if (!ok && (errno == EINVAL || errno == EPERM)) atomic_store_explicit(&populate_refused, true, memory_order_relaxed);
    errno = saved;
    return ok;
}

void umi_os_fault_in(void *lo, void *hi) {
    uintptr_t mask = (uintptr_t)umi_os_page_size() - 1;
    uintptr_t a = (uintptr_t)lo & ~mask, b = ((uintptr_t)hi + mask) & ~mask;
    if (b > a && umi_os_populate((void *)a, b - a)) atomic_fetch_add_explicit(&umi_os_stats.faulted_in, b - a, memory_order_relaxed);
}

void umi_os_fault_in_bss(void *lo, void *hi) {
    uintptr_t ps = (uintptr_t)getauxval(AT_PAGESZ);
    if (ps == 0) ps = 4096;
    uintptr_t a = (uintptr_t)lo & ~(ps - 1), b = ((uintptr_t)hi + ps - 1) & ~(ps - 1);
    if (b <= a) return;
    int saved = errno;
    /* On a kernel without MADV_POPULATE_WRITE (before 5.14) it fails, and the pages fault in as
     * they are written; umi_os_populate learns that on its own. */
    if (umi_sys_madvise((void *)a, b - a, MADV_POPULATE_WRITE) == 0)
        atomic_fetch_add_explicit(&umi_os_stats.faulted_in, b - a, memory_order_relaxed);
    errno = saved;
}

int umi_os_lock(void *p, size_t size, bool on_fault) {
    int ok = umi_sys_mlock2(p, size, on_fault ? MLOCK_ONFAULT : 0) == 0;
    return ok ? 0 : errno;
}

int umi_os_advise_huge(void *p, size_t size) {
    int saved = errno;
    int ok = umi_sys_madvise(p, size, MADV_HUGEPAGE) == 0;
    errno = saved;
    return ok;
}

void umi_os_advise_no_huge(void *p, size_t size) {
    int saved = errno;
    umi_sys_madvise(p, size, MADV_NOHUGEPAGE);
    errno = saved;
}

bool umi_os_purge(void *p, size_t size) {
    if (size == 0) return true;
    int saved = errno; /* purge runs inside free(), which must preserve errno */
    bool ok = umi_sys_madvise(p, size, MADV_DONTNEED) == 0;
    if (ok) atomic_fetch_add_explicit(&umi_os_stats.purged_total, size, memory_order_relaxed);
    errno = saved;
    return ok;
}

/* Reserve an aligned destination, then let the kernel move the page tables there (growing or
 * shrinking on the way): no byte is copied, whatever the size. */
static void *move_to_aligned(void *p, size_t old_size, size_t new_size, size_t align) {
    void *dst = umi_os_map_aligned(new_size, align);
    if (dst == NULL) return NULL;
    void *q = umi_sys_mremap(p, old_size, new_size, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
    if (q == MAP_FAILED) {
        umi_os_unmap(dst, new_size);
        return NULL;
    }
    return q;
}

void *umi_os_resize(void *p, size_t old_size, size_t new_size) {
    size_t ps = umi_os_page_size();
    old_size = (old_size + ps - 1) & ~(ps - 1);
    new_size = (new_size + ps - 1) & ~(ps - 1);
    UM_SAN_UNPOISON(p, old_size); /* ASan: a shrink unmaps the tail, which must not stay poisoned */
    int saved = errno; /* realloc may still succeed another way: a failed attempt leaves no trace */
    void *q = umi_sys_mremap(p, old_size, new_size, 0, NULL);
    errno = saved;
    return q == MAP_FAILED ? NULL : q;
}

void *umi_os_move_resize(void *p, size_t old_size, size_t new_size, void *dst) {
    size_t ps = umi_os_page_size();
    old_size = (old_size + ps - 1) & ~(ps - 1);
    new_size = (new_size + ps - 1) & ~(ps - 1);
    UM_SAN_UNPOISON(p, old_size); /* ASan: the shadow stays behind when the pages move */
    int saved = errno;
    void *q = umi_sys_mremap(p, old_size, new_size, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
    errno = saved;
    return q == dst ? q : NULL;
}

int umi_os_move(void *from, size_t size, void *dst) {
    UM_SAN_UNPOISON(from, size);
    int saved = errno;
    void *q = umi_sys_mremap(from, size, size, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
    errno = saved;
    return q == dst ? 0 : -1;
}

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif
static _Atomic bool move_keep_refused;

int umi_os_move_keep(void *from, size_t size, void *dst) {
    if (atomic_load_explicit(&move_keep_refused, memory_order_relaxed)) return -1;
    UM_SAN_UNPOISON(from, size);
    int saved = errno;
    void *q = umi_sys_mremap(from, size, size, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, dst);
    if (q == MAP_FAILED && errno == EINVAL) atomic_store_explicit(&move_keep_refused, true, memory_order_relaxed);
    errno = saved;
    return q == dst ? 0 : -1;
}

void *umi_os_grow_aligned(void *p, size_t old_size, size_t new_size, size_t align) {
    void *q = ((uintptr_t)p & (align - 1)) == 0 ? umi_os_resize(p, old_size, new_size) : NULL;
    if (q != NULL) return q;
    UM_SAN_UNPOISON(p, old_size); /* ASan: the shadow stays behind when the pages move */
    int saved = errno;
    q = move_to_aligned(p, old_size, new_size, align); /* in place it would stay unaligned */
    errno = saved;
    return q;
}

