/* NUMA arenas. For now every segment is left to the kernel's default (first-touch, local) policy;
 * the NUMA issue binds memory here with mbind according to UMALLOC_NUMA_*. */
#include "numa/arena.h"

#include "os/os.h"
#include "os/region.h"

void *umi_arena_map(size_t size, size_t align, int node, int *node_out) {
    (void)node;
    if (node_out) *node_out = -1;
    return umi_os_map_aligned(size, align);
}

void umi_arena_unmap(void *p, size_t size) { umi_os_unmap(p, size); }

int umi_arena_current_node(void) { return -1; }

void *umi_arena_commit(void *at, int node, int *node_out) {
    (void)node;
    if (node_out) *node_out = -1;
    return umi_region_commit(at) == 0 ? at : NULL;
}

void umi_arena_decommit(void *at) { umi_region_decommit(at); }
