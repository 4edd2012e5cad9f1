/* The machine's NUMA topology, read once at start from /sys (no malloc, no libnuma): the online
 * nodes, the node of every CPU and the distances between nodes. The node of the running CPU
 * then costs a read of the rseq area glibc registers (sched_getcpu), and a table load: no
 * system call. */
#ifndef UM_NUMA_TOPOLOGY_H
#define UM_NUMA_TOPOLOGY_H

#include <stdint.h>

#define UM_NUMA_MAX_NODES 64    /* node masks are one 64-bit word */
#define UM_NUMA_MAX_CPUS 4096   /* CPUs above this are taken to be on node 0 */

typedef struct um_numa_topology_s {
    uint64_t online;            /* bit n: node n is online */
    unsigned count;             /* online nodes */
    unsigned max_node;          /* highest online node */
} um_numa_topology_t;
extern um_numa_topology_t umi_numa_topo;
/* Set and read only when there are several nodes. In the library's big .bss (UM_BIG_BSS), so
 * that on one node their 8 KiB are never touched: beside the words above, which every process
 * writes, they would make it copy two more pages of the library. */
typedef struct um_numa_tables_s {
    uint8_t cpu_node[UM_NUMA_MAX_CPUS];           /* node of each CPU */
    uint8_t distance[UM_NUMA_MAX_NODES][UM_NUMA_MAX_NODES]; /* SLIT: 10 local, 20 one hop... */
} um_numa_tables_t;
extern um_numa_tables_t umi_numa_tables;

/* Read /sys/devices/system/node once. Without that directory (no NUMA in the kernel) the
 * machine has one node, 0. Idempotent; called under the init lock. */
void umi_numa_topology_read(void);
/* The node of the CPU the caller runs on (may be stale by the time it returns: the kernel can
 * move the thread at any moment; callers use it for placement, never for correctness). */
int umi_numa_cpu_node(void);
/* Of the nodes in mask, the nearest to `node` (by distance; the lowest number on a tie). */
int umi_numa_nearest(int node, uint64_t mask);
/* Parse a kernel list ("0-3,6\n") into a mask of the values below 64 (cpulists: into *cpus
 * when not NULL, as a callback per value). Returns the mask. */
uint64_t umi_numa_parse_list(const char *s, void (*each)(unsigned v, void *arg), void *arg);

#endif
