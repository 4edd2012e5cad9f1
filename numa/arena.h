/* NUMA arenas: where segments come from. Every segment the core maps is asked for here with the
 * node it should live on, so NUMA policies (local, interleave, bind, preferred) plug in without
 * touching the core. No libnuma call runs inside an allocation path: topology is read once.
 *
 * Every mapping is made in three steps: (1) map the range, with the pages hugepages/ chooses;
 * (2) bind it to its node, before anything touches it; (3) populate and lock it if asked
 * (hugepages/: UMALLOC_PREFAULT, UMALLOC_MLOCK), which touches it, so after the binding. */
#ifndef UM_ARENA_H
#define UM_ARENA_H

#include <stddef.h>

/* Map `size` bytes aligned to `align` for `node` (-1: the policy decides). *node_out gets the
 * node the memory was bound to, or -1 when unbound; *kind_out the kind of page behind it
 * (UM_PAGES_*, with UM_PAGES_LOCKED: hugepages/pagesize.h). */
void *umi_arena_map(size_t size, size_t align, int node, int *node_out, unsigned *kind_out);
void umi_arena_unmap(void *p, size_t size);
/* The same for units taken from the small-page region (os/region.h), [at, at + size): make
 * them read-write (NULL on failure), and make them read-only zeros again. */
void *umi_arena_commit(void *at, size_t size, int node, int *node_out, unsigned *kind_out);
void umi_arena_decommit(void *at, size_t size);
/* The node the calling thread allocates for (-1 when the machine has one node or no policy). */
int umi_arena_current_node(void);

#endif
