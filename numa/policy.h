/* NUMA placement policies (UMALLOC_NUMA_POLICY, UMALLOC_NUMA_NODES, and the per-thread override
 * of include/umalloc.h): which node a thread's memory belongs to, and the mbind that puts it
 * there before anything touches it. */
#ifndef UM_NUMA_POLICY_H
#define UM_NUMA_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Policies, in the order of UMALLOC_NUMA_POLICY's names (= UM_NUMA_* of include/umalloc.h). */
enum { UMI_NUMA_LOCAL, UMI_NUMA_INTERLEAVE, UMI_NUMA_BIND, UMI_NUMA_PREFERRED, UMI_NUMA_NONE, UMI_NUMA_POLICIES };

/* Placement keys: what a segment was bound for, and what a heap allocates for. A node number
 * (0..63) for memory on one node; these for the rest. Segment and huge-block caches hand memory
 * only to a caller with the same key. */
#define UMI_NUMA_UNBOUND (-1) /* left to the kernel (policy none, or mbind refused) */
#define UMI_NUMA_SPREAD (-2)  /* over several nodes: interleave, bind or preferred to a list */
#define UMI_NUMA_UNSET (-32768) /* a heap that has not placed anything yet */

/* More than one node online: placement runs. False on a machine with one node, where nothing
 * here is ever called (no system call, no CPU lookup). Set once at start. */
extern bool umi_numa_on;

/* Read the topology and the two options (once, at process start, under the init lock). Prints
 * one line for a node list that names nodes that are not online. */
void umi_numa_init(void);
/* The placement key for memory the calling thread allocates now (only when umi_numa_on). */
int umi_numa_key(void);
/* Bind [p, p + len), mapped but never touched, for `key` under the calling thread's policy.
 * Returns the key the memory is bound for (UMI_NUMA_UNBOUND if mbind refused). */
int umi_numa_bind(void *p, size_t len, int key);
/* Bind [p, p + len) to `node` and move its resident pages there (mbind with MPOL_MF_MOVE).
 * 0 or -1. */
int umi_numa_bind_move(void *p, size_t len, int node);
/* The calling thread's override: policy UMI_NUMA_* or -1 (the process's), and its node list
 * (0: all nodes). Returns 0, or -1 for a bad policy or a list without an online node. */
int umi_numa_set_thread(int policy, uint64_t nodes);
void umi_numa_get_thread(int *policy, uint64_t *nodes);
/* The process's policy and node list as set at start (nodes: the online nodes if none given). */
int umi_numa_process_policy(void);
uint64_t umi_numa_process_nodes(void);

#endif
