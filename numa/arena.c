/* NUMA arenas (see numa/arena.h). Every mapping goes through three steps, in this order:
 *   1. map the range (read-write, never touched yet);
 *   2. bind it with mbind per the policy (numa/policy.c), before anything touches it, so that
 *      every page is placed at its first fault whichever thread writes it;
 *   3. only then whatever touches or populates it (the callers: headers, blocks).
 * On a machine with one node step 2 is skipped without a system call. */
#include "numa/arena.h"

#include "os/os.h"
#include "os/region.h"

void *umi_arena_map(size_t size, size_t align, int node, int *node_out) {
    void *p = umi_os_map_aligned(size, align);                                        /* 1 */
    int bound = p != NULL && umi_numa_on ? umi_numa_bind(p, size, node) : UMI_NUMA_UNBOUND; /* 2 */
    if (node_out) *node_out = bound;
    return p;                                                                         /* 3: the caller's */
}

void umi_arena_unmap(void *p, size_t size) { umi_os_unmap(p, size); }

void *umi_arena_map_at(void *p, size_t size, int node) {
    if (umi_os_map_fixed(p, size) == NULL) return NULL;                                /* 1 */
    if (umi_numa_on) umi_numa_bind(p, size, node);                                     /* 2 */
    return p;                                                                          /* 3: the caller's */
}

void *umi_arena_commit(void *at, int node, int *node_out) {
    if (umi_region_commit(at) != 0) return NULL;                                      /* 1 */
    /* A commit maps the unit afresh: the binding of its last use is gone with the old mapping. */
    int bound = umi_numa_on ? umi_numa_bind(at, (size_t)1 << UM_REGION_UNIT_SHIFT, node) : UMI_NUMA_UNBOUND; /* 2 */
    if (node_out) *node_out = bound;
    return at;                                                                        /* 3: the caller's */
}

void umi_arena_decommit(void *at) { umi_region_decommit(at); }
