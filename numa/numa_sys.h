/* The NUMA system calls, raw: libnuma is never called inside the library (its constructor and
 * helpers call malloc, and it would be one more library to load). Each is one syscall(2); none
 * runs on a machine with one node, nor under UMALLOC_NUMA_POLICY=none. */
#ifndef UM_NUMA_SYS_H
#define UM_NUMA_SYS_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The kernel's constants (linux/mempolicy.h), so that no libnuma header is needed to build. */
#define UMI_MPOL_DEFAULT 0
#define UMI_MPOL_PREFERRED 1
#define UMI_MPOL_BIND 2
#define UMI_MPOL_INTERLEAVE 3
#define UMI_MPOL_PREFERRED_MANY 5 /* Linux 5.15 */
#define UMI_MPOL_MF_STRICT (1u << 0)
#define UMI_MPOL_MF_MOVE (1u << 1)
#define UMI_MPOL_ONE_NODE_MASK_BITS 64 /* the masks here are one 64-bit word: nodes 0..63 */

/* mbind(2): policy `mode` over nodes `mask` for [p, p + len). 0 or -1 (errno). */
static inline int umi_sys_mbind(void *p, size_t len, int mode, uint64_t mask, unsigned flags) {
    /* maxnode is the number of bits the kernel reads, plus one (its historical off-by-one). */
    return (int)syscall(SYS_mbind, p, len, mode, mask ? &mask : NULL, mask ? UMI_MPOL_ONE_NODE_MASK_BITS + 1 : 0, flags);
}

/* get_mempolicy(2) with MPOL_F_MEMS_ALLOWED: the nodes this process may take memory from (its
 * cpuset's), into *mask. 0, or -1 when the kernel refuses or a node above 63 exists. */
#define UMI_MPOL_F_MEMS_ALLOWED (1u << 2)
static inline int umi_sys_mems_allowed(uint64_t *mask) {
    /* The kernel wants room for every node it could have (MAX_NUMNODES, 1024 at most on
     * x86-64): a smaller mask is EINVAL. */
    uint64_t words[1024 / 64] = {0};
    int saved = errno; /* asked inside the first malloc, which must leave errno alone */
    long rc = syscall(SYS_get_mempolicy, NULL, words, (unsigned long)1024, NULL, UMI_MPOL_F_MEMS_ALLOWED);
    errno = saved;
    if (rc != 0) return -1;
    for (size_t i = 1; i < sizeof words / sizeof words[0]; i++)
        if (words[i] != 0) return -1;
    *mask = words[0];
    return 0;
}

/* move_pages(2) for this process: with nodes NULL, status[i] gets the node of pages[i] (or a
 * negative errno: -ENOENT for a page not resident); with nodes, moves them there. */
static inline long umi_sys_move_pages(unsigned long count, void **pages, const int *nodes, int *status, int flags) {
    return syscall(SYS_move_pages, 0, count, pages, nodes, status, flags);
}

#endif
