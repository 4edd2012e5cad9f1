/* NUMA arenas. For now every segment is left to the kernel's default (first-touch, local) policy;
 * the NUMA issue binds memory here with mbind according to UMALLOC_NUMA_*. */
#include "numa/arena.h"

#include "hugepages/pagesize.h"
#include "os/os.h"
#include "os/region.h"

void *umi_arena_map(size_t size, size_t align, int node, int *node_out, unsigned *kind_out) {
    (void)node;
    if (node_out) *node_out = -1;
    unsigned kind;
    void *p = umi_pages_map(size, align, &kind);          /* (1) map */
    if (p == NULL) return NULL;
    /* (2) bind: nothing yet */
    kind = umi_pages_settle(p, size, kind);               /* (3) populate, lock */
    if (kind_out) *kind_out = kind;
    return p;
}

void umi_arena_unmap(void *p, size_t size) { umi_pages_unmap(p, size); }

int umi_arena_current_node(void) { return -1; }

void *umi_arena_commit(void *at, size_t size, int node, int *node_out, unsigned *kind_out) {
    (void)node;
    if (node_out) *node_out = -1;
    unsigned kind;
    if (umi_pages_commit(at, size, &kind) != 0) return NULL; /* (1) map */
    /* (2) bind: nothing yet */
    kind = umi_pages_settle(at, size, kind);                  /* (3) populate, lock */
    if (kind_out) *kind_out = kind;
    return at;
}

void umi_arena_decommit(void *at, size_t size) { umi_pages_decommit(at, size); }
