/* The NUMA calls of include/umalloc.h: blocks on a chosen node, where a block lives, moving it,
 * and the per-thread policy. The placement itself is numa/ (topology, policies, mbind); this
 * is the part that needs the core's blocks and segments. */
#include <errno.h>

#include "core/internal.h"
#include "core/counters.h"
#include "numa/numa_sys.h"
#include "numa/topology.h"
#include "os/os.h"
#include "umalloc.h"

static bool node_online(int node) {
    return node >= 0 && node < UM_NUMA_MAX_NODES && (umi_numa_topo.online >> node & 1);
}

UM_API int um_numa_node_count(void) {
    umi_process_init();
    return (int)umi_numa_topo.max_node + 1;
}

UM_API void *um_malloc_onnode(size_t size, int node) {
    umi_process_init();
    if (!node_online(node)) { errno = EINVAL; return NULL; }
    if (!umi_numa_on) return um_malloc(size);
    return umi_huge_alloc_onnode(size ? size : 1, node); /* a usable byte, as malloc(0) has */
}

UM_API int um_numa_node_of(const void *p) {
    void *page = (void *)((uintptr_t)p & ~(uintptr_t)(umi_os_page_size() - 1));
    int status = -ENOENT;
    if (umi_sys_move_pages(1, &page, NULL, &status, 0) != 0) {
        if (errno == ENOSYS) return 0; /* a kernel without NUMA: one node */
        return -1;
    }
    if (status < 0) { errno = -status; return -1; }
    return status;
}

enum { CHUNK = 256 }; /* pages per move_pages call: the arrays live on the stack */

/* Resident pages of [lo, hi) (page-aligned) on `node`; with move, first move the resident ones
 * that are elsewhere there (pages the kernel cannot move stay where they are). */
static long pages_on(uint8_t *lo, uint8_t *hi, int node, bool move) {
    void *pages[CHUNK], *want[CHUNK];
    int status[CHUNK], nodes[CHUNK];
    size_t ps = umi_os_page_size();
    long on = 0;
    while (lo < hi) {
        unsigned long n = 0, m = 0;
        for (; n < CHUNK && lo + n * ps < hi; n++) pages[n] = lo + n * ps;
        lo += n * ps;
        if (umi_sys_move_pages(n, pages, NULL, status, 0) != 0) return -1;
        for (unsigned long i = 0; i < n; i++) {
            on += status[i] == node;
            if (move && status[i] >= 0 && status[i] != node) { want[m] = pages[i]; nodes[m++] = node; }
        }
        if (m > 0) umi_sys_move_pages(m, want, nodes, status, UMI_MPOL_MF_MOVE);
    }
    return on;
}

UM_API long um_numa_migrate(void *p, int node) {
    umi_process_init();
    um_segment_t *seg = p != NULL ? umi_segment_lookup(p) : NULL;
    size_t usable = seg != NULL ? umi_usable_size(p) : 0;
    if (usable == 0 || !node_online(node)) { errno = EINVAL; return -1; }
    if (!umi_numa_on) return 0; /* one node: every page is on node 0 already */
    size_t ps = umi_os_page_size();
    bool huge = seg->kind == UM_KIND_HUGE;
    /* A block mapped on its own moves whole, header included; a pooled one, the pages it spans. */
    uint8_t *lo = huge ? seg->map_base : (uint8_t *)((uintptr_t)p & ~(uintptr_t)(ps - 1));
    uint8_t *hi = huge ? lo + seg->map_size : (uint8_t *)(((uintptr_t)p + usable + ps - 1) & ~(uintptr_t)(ps - 1));
    /* Moved = on the node after, less before: counted in passes of their own, not taken from
     * move_pages' status, since moving one page of a transparent huge page moves all 512
     * (pages the move pass meets later are then there already). */
    long before = pages_on(lo, hi, node, false);
    if (before < 0 || pages_on(lo, hi, node, true) < 0) return -1;
    if (huge) {
        /* Bound there for the pages not written yet (and whatever the pass above left); the
         * statistics move the mapping to that node. */
        umi_numa_bind_move(lo, seg->map_size, node);
        if (seg->node != node) {
            umi_count_mapped(seg, -1);
            seg->node = (int16_t)node;
            umi_count_mapped(seg, 1);
        }
    }
    long after = pages_on(lo, hi, node, false);
    long moved = after > before ? after - before : 0;
    if (moved > 0) umi_count_migrated(node, (uint64_t)moved);
    return moved;
}

UM_API int um_numa_set_thread_policy(int policy, uint64_t nodes) {
    umi_process_init();
    if (umi_numa_set_thread(policy, nodes) != 0) { errno = EINVAL; return -1; }
    /* The caller owns its heap: re-home it now rather than at its next slow path, so that not
     * even the blocks already on its free lists come from the old placement. */
    um_heap_t *heap = umi_tl_heap;
    if (umi_numa_on && !heap->is_backup && heap->numa_node != UMI_NUMA_UNSET) umi_heap_numa_check(heap);
    return 0;
}
