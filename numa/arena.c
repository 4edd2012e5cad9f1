/* NUMA arenas. For now every segment is left to the kernel's default (first-touch, local) policy;
 * the NUMA issue binds memory here with mbind according to UMALLOC_NUMA_*. */
#include "numa/arena.h"

#include "hugepages/os.h"
#include "hugepages/region.h"

void *_x_arena_map(size_t size, size_t align, int node, int *node_out) {
    (void)node;
    if (node_out) *node_out = -1;
    return _x_os_map_aligned(size, align);
}

void _x_arena_unmap(void *p, size_t size) { _x_os_unmap(p, size); }

int _x_arena_current_node(void) { return -1; }

void *_x_arena_commit(void *at, int node, int *node_out) {
    (void)node;
    if (node_out) *node_out = -1;
    return _x_region_commit(at) == 0 ? at : NULL;
}

void _x_arena_decommit(void *at) { _x_region_decommit(at); }
