/* NUMA arenas: where segments come from. Every segment the core maps is asked for here with the
 * placement key it should have (numa/policy.h: a node, or spread, or unbound), so the NUMA
 * policies plug in without touching the core. No libnuma call: topology is read once, and the
 * binding is one raw mbind per mapping, only on a machine with several nodes. */
#ifndef UM_ARENA_H
#define UM_ARENA_H

#include <stdbool.h>
#include <stddef.h>

#include "numa/policy.h"

/* Map `size` bytes aligned to `align` for placement key `node` (umi_arena_current_node()).
 * *node_out gets the key the memory was bound for (UMI_NUMA_UNBOUND when unbound). */
void *umi_arena_map(size_t size, size_t align, int node, int *node_out);
void umi_arena_unmap(void *p, size_t size);
/* Fresh memory exactly at [p, p + size) (replacing what is there), bound for placement key
 * `node` like umi_arena_map. p, or NULL on failure. */
void *umi_arena_map_at(void *p, size_t size, int node);
/* The same for a segment at an address taken from the small-page region (os/region.h):
 * make it read-write (NULL on failure), and make it read-only zeros again. */
void *umi_arena_commit(void *at, int node, int *node_out);
void umi_arena_decommit(void *at);
/* The placement key of the memory the calling thread allocates now: its node under `local`
 * (UMI_NUMA_UNBOUND when the machine has one node, or under `none`). Slow paths only: on
 * several nodes it reads the running CPU (no system call). */
static inline int umi_arena_current_node(void) { return umi_numa_on ? umi_numa_key() : UMI_NUMA_UNBOUND; }

#endif
