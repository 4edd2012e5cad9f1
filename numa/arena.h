/* NUMA arenas: where segments come from. Every segment the core maps is asked for here with the
 * placement key it should have (numa/policy.h: a node, or spread, or unbound), so the NUMA
 * policies plug in without touching the core. No libnuma call: topology is read once, and the
 * binding is one raw mbind per mapping, only on a machine with several nodes.
 *
 * Every mapping is made in three steps: (1) map the range, with the pages hugepages/ chooses;
 * (2) bind it to its node, before anything touches it; (3) populate and lock it if asked
 * (hugepages/: UMALLOC_PREFAULT, UMALLOC_MLOCK), which touches it, so after the binding. */
#ifndef UM_ARENA_H
#define UM_ARENA_H

#include <stdbool.h>
#include <stddef.h>

#include "hugepages/pagesize.h"
#include "numa/policy.h"

/* Map `size` bytes aligned to `align` for placement key `node` (umi_arena_current_node()).
 * *node_out gets the key the memory was bound for (UMI_NUMA_UNBOUND when unbound); *kind_out
 * the kind of page behind it (UM_PAGES_*, with UM_PAGES_LOCKED: hugepages/pagesize.h). `use`:
 * what it is for (umi_pages_map: the advice for transparent huge pages). */
void *umi_arena_map(size_t size, size_t align, int node, um_pages_use_t use, int *node_out, unsigned *kind_out);
void umi_arena_unmap(void *p, size_t size);
/* Fresh memory exactly at [p, p + size) (replacing what is there), bound for placement key
 * `node` like umi_arena_map, of small pages. p, or NULL on failure. */
void *umi_arena_map_at(void *p, size_t size, int node);
/* The same for units taken from the small-page region (os/region.h), [at, at + size): make
 * them read-write (NULL on failure), and make them read-only zeros again. */
void *umi_arena_commit(void *at, size_t size, int node, um_pages_use_t use, int *node_out, unsigned *kind_out);
void umi_arena_decommit(void *at, size_t size);
/* The placement key of the memory the calling thread allocates now: its node under `local`
 * (UMI_NUMA_UNBOUND when the machine has one node, or under `none`). Slow paths only: on
 * several nodes it reads the running CPU (no system call). */
static inline int umi_arena_current_node(void) { return umi_numa_on ? umi_numa_key() : UMI_NUMA_UNBOUND; }

#endif
