/* NUMA arenas (see numa/arena.h). Every mapping goes through three steps, in this order:
 *   1. map the range (read-write, never touched yet), with the pages hugepages/ chooses;
 *   2. bind it with mbind per the policy (numa/policy.c), before anything touches it, so that
 *      every page is placed at its first fault whichever thread writes it;
 *   3. only then whatever touches it: populating and locking (hugepages/: UMALLOC_PREFAULT,
 *      UMALLOC_MLOCK), then the callers' headers and blocks.
 * On a machine with one node step 2 is skipped without a system call. */
#include "numa/arena.h"

#include "hugepages/pagesize.h"
#include "os/os.h"
#include "os/region.h"

void *umi_arena_map(size_t size, size_t align, int node, um_pages_use_t use, int *node_out, unsigned *kind_out) {
    unsigned kind;
    void *p = umi_pages_map(size, align, use, &kind);                                       /* 1 */
    if (p == NULL) return NULL;
    int bound = umi_numa_on ? umi_numa_bind(p, size, node) : UMI_NUMA_UNBOUND;       /* 2 */
    kind = umi_pages_settle(p, size, kind);                                           /* 3 */
    if (node_out) *node_out = bound;
    if (kind_out) *kind_out = kind;
    return p;
}

void umi_arena_unmap(void *p, size_t size) { umi_pages_unmap(p, size); }

void *umi_arena_map_at(void *p, size_t size, int node) {
    if (umi_os_map_fixed(p, size) == NULL) return NULL;                                /* 1 */
    if (umi_numa_on) umi_numa_bind(p, size, node);                                     /* 2 */
    return p;                                                                          /* 3: the caller's */
}

void *umi_arena_commit(void *at, size_t size, int node, um_pages_use_t use, int *node_out, unsigned *kind_out) {
    unsigned kind;
    if (umi_pages_commit(at, size, use, &kind) != 0) return NULL;                           /* 1 */
    /* A commit maps the units afresh: the binding of their last use is gone with the old mapping. */
    int bound = umi_numa_on ? umi_numa_bind(at, size, node) : UMI_NUMA_UNBOUND;       /* 2 */
    kind = umi_pages_settle(at, size, kind);                                          /* 3 */
    if (node_out) *node_out = bound;
    if (kind_out) *kind_out = kind;
    return at;
}

void umi_arena_decommit(void *at, size_t size) { umi_pages_decommit(at, size); }
