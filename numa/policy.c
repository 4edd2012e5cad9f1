/* NUMA placement policies (see numa/policy.h, docs/numa.md).
 *
 * Memory is bound with mbind right after it is mapped and before anything touches it, so the
 * kernel puts each page where the policy says at its first fault, whichever thread writes it
 * first. `local` binds with MPOL_PREFERRED to the allocating thread's node: the kernel falls
 * back to other nodes when that one is full instead of failing. `bind` is MPOL_BIND (no
 * fallback: what the user asked for), `preferred` MPOL_PREFERRED (MPOL_PREFERRED_MANY for a
 * list, on kernels that have it), `interleave` MPOL_INTERLEAVE over the list. */
#include "numa/policy.h"

#include <errno.h>

#include "base/fmt.h"
#include "base/options.h"
#include "numa/numa_sys.h"
#include "numa/topology.h"

bool umi_numa_on;
static int process_policy = UMI_NUMA_NONE;
static uint64_t process_nodes; /* never 0 once umi_numa_init ran */
static bool preferred_many = true; /* until the kernel says EINVAL */

/* The per-thread override (initial-exec TLS: read on slow paths only). */
static __thread int8_t tl_policy __attribute__((tls_model("initial-exec"))) = -1;
static __thread uint64_t tl_nodes __attribute__((tls_model("initial-exec")));

/* True when memory can come from one node only (a machine with one node, or a cpuset that
 * confines the process to one): nothing to place, whatever the topology. One system call,
 * where a process's first open of a sysfs file is slow, and a short process would pay it in
 * its first malloc (docs/numa.md). Not when an option names a policy or nodes: those are
 * checked against the online nodes, which only /sys lists. */
static bool one_node_only(void) {
    if (umi_option_source(UM_OPT_NUMA_POLICY) == UM_SRC_ENV || umi_option_source(UM_OPT_NUMA_NODES) == UM_SRC_ENV) return false;
    uint64_t allowed;
    if (umi_sys_mems_allowed(&allowed) != 0 || allowed == 0 || (allowed & (allowed - 1)) != 0) return false;
    umi_numa_topo.online = allowed;
    umi_numa_topo.count = 1;
    umi_numa_topo.max_node = (unsigned)__builtin_ctzll(allowed);
    return true;
}

void umi_numa_init(void) {
    process_policy = (int)umi_option(UM_OPT_NUMA_POLICY);
    if (!one_node_only()) umi_numa_topology_read();
    uint64_t online = umi_numa_topo.online;
    /* 0-63 (the default) means the online nodes; any other list must name online ones only. */
    uint64_t want = (uint64_t)umi_option(UM_OPT_NUMA_NODES);
    if (umi_option_source(UM_OPT_NUMA_NODES) != UM_SRC_ENV || want == ~(uint64_t)0) want = 0;
    process_nodes = online;
    if (want != 0 && (want & ~online) != 0) {
        /* The usual one line of a bad option value (base/options.c), naming what is missing. */
        char got[256], missing[256], on[256];
        const um_option_desc *d = &umi_option_table[UM_OPT_NUMA_NODES];
        umi_option_format(d, (long long)want, NULL, got, sizeof got);
        umi_option_format(d, (long long)(want & ~online), NULL, missing, sizeof missing);
        umi_option_format(d, (long long)online, NULL, on, sizeof on);
        uint64_t gone = want & ~online;
        bool several = (gone & (gone - 1)) != 0;
        umi_dprintf(2, "umalloc: UMALLOC_NUMA_NODES=%s is not valid: %s %s %s not online (online: %s); using the default (all online nodes)\n",
                    got, several ? "nodes" : "node", missing, several ? "are" : "is", on);
    } else if (want != 0) {
        process_nodes = want;
    }
    umi_numa_on = umi_numa_topo.count > 1;
}

int umi_numa_process_policy(void) { return process_policy; }
uint64_t umi_numa_process_nodes(void) { return process_nodes ? process_nodes : umi_numa_topo.online; }

static inline void effective(int *policy, uint64_t *nodes) {
    if (tl_policy >= 0) { *policy = tl_policy; *nodes = tl_nodes ? tl_nodes : umi_numa_topo.online; }
    else { *policy = process_policy; *nodes = process_nodes; }
}

int umi_numa_key(void) {
    int policy;
    uint64_t nodes;
    effective(&policy, &nodes);
    switch (policy) {
    case UMI_NUMA_LOCAL: return umi_numa_nearest(umi_numa_cpu_node(), nodes);
    case UMI_NUMA_NONE: return UMI_NUMA_UNBOUND;
    default: /* a list of one node is that node's memory; a longer one is spread */
        return (nodes & (nodes - 1)) == 0 ? __builtin_ctzll(nodes) : UMI_NUMA_SPREAD;
    }
}

int umi_numa_bind(void *p, size_t len, int key) {
    int policy, mode;
    uint64_t nodes;
    effective(&policy, &nodes);
    if (key == UMI_NUMA_UNBOUND || (key < 0 && policy == UMI_NUMA_NONE)) return UMI_NUMA_UNBOUND;
    if (key >= 0) {
        mode = policy == UMI_NUMA_BIND ? UMI_MPOL_BIND : UMI_MPOL_PREFERRED;
        nodes = (uint64_t)1 << key;
    } else {
        mode = policy == UMI_NUMA_INTERLEAVE ? UMI_MPOL_INTERLEAVE
             : policy == UMI_NUMA_BIND ? UMI_MPOL_BIND
             : preferred_many ? UMI_MPOL_PREFERRED_MANY : UMI_MPOL_PREFERRED;
        if (mode == UMI_MPOL_PREFERRED) nodes &= -nodes; /* the first node of the list */
    }
    int saved = errno;
    int rc = umi_sys_mbind(p, len, mode, nodes, 0);
    if (rc != 0 && mode == UMI_MPOL_PREFERRED_MANY && errno == EINVAL) { /* before Linux 5.15 */
        preferred_many = false;
        rc = umi_sys_mbind(p, len, UMI_MPOL_PREFERRED, nodes & -nodes, 0);
    }
    errno = saved;
    return rc == 0 ? key : UMI_NUMA_UNBOUND;
}

int umi_numa_bind_move(void *p, size_t len, int node) {
    int saved = errno;
    int rc = umi_sys_mbind(p, len, UMI_MPOL_PREFERRED, (uint64_t)1 << node, UMI_MPOL_MF_MOVE);
    errno = saved;
    return rc;
}

int umi_numa_set_thread(int policy, uint64_t nodes) {
    if (policy < -1 || policy >= UMI_NUMA_POLICIES) return -1;
    if (policy >= 0 && nodes != 0 && (nodes & umi_numa_topo.online) == 0) return -1;
    tl_policy = (int8_t)policy;
    tl_nodes = nodes & umi_numa_topo.online;
    return 0;
}

void umi_numa_get_thread(int *policy, uint64_t *nodes) {
    *policy = tl_policy;
    *nodes = tl_nodes;
}
