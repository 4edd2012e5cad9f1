/* NUMA arenas: where segments come from. Every segment the core maps is asked for here with the
 * node it should live on, so NUMA policies (local, interleave, bind, preferred) plug in without
 * touching the core. No libnuma call runs inside an allocation path: topology is read once. */
#ifndef UM_ARENA_H
#define UM_ARENA_H

#include <stddef.h>

/* Map `size` bytes aligned to `align` for `node` (-1: the policy decides). *node_out gets the
 * node the memory was bound to, or -1 when unbound. */
void *umi_arena_map(size_t size, size_t align, int node, int *node_out);
void umi_arena_unmap(void *p, size_t size);
/* The same for a segment at an address taken from the small-page region (os/region.h):
 * make it read-write (NULL on failure), and make it read-only zeros again. */
void *umi_arena_commit(void *at, int node, int *node_out);
void umi_arena_decommit(void *at);
/* The node the calling thread allocates for (-1 when the machine has one node or no policy). */
int umi_arena_current_node(void);

#endif
