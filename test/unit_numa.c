/* NUMA, on whatever machine the tests run on (usually one node; the placement itself is measured
 * in multi-node qemu guests by scripts/test-numa.sh): the kernel's list format, the nearest node
 * of a list, the option that names nodes that are not online, the API's answers on this machine,
 * and a heap that changes placement: its next refill takes no page of the old placement. */
#include <criterion/criterion.h>

#include "base/options.h"
#include "core/internal.h"
#include "numa/policy.h"
#include "numa/topology.h"
#include "test_util.h"

static void collect_cpu(unsigned v, void *arg) { ((uint64_t *)arg)[0] += v; ((uint64_t *)arg)[1]++; }

Test(numa, kernel_lists_parse)
{
    cr_expect_eq(umi_numa_parse_list("0\n", NULL, NULL), 1);
    cr_expect_eq(umi_numa_parse_list("0-3,6\n", NULL, NULL), 0x4f);
    cr_expect_eq(umi_numa_parse_list("1,3-4", NULL, NULL), 0x1a);
    cr_expect_eq(umi_numa_parse_list("", NULL, NULL), 0);
    uint64_t acc[2] = {0, 0}; /* sum and count of the values, CPUs above 63 included */
    umi_numa_parse_list("2-3,100-101\n", collect_cpu, acc);
    cr_expect_eq(acc[0], 2 + 3 + 100 + 101);
    cr_expect_eq(acc[1], 4);
}

Test(numa, nearest_node_of_a_list_by_distance)
{
    /* A made-up 4-node machine: 0-1 and 2-3 are pairs (distance 20), the pairs 30 apart. */
    static const uint8_t d[4][4] = {{10, 20, 30, 30}, {20, 10, 30, 30}, {30, 30, 10, 20}, {30, 30, 20, 10}};
    for (int i = 0; i < 4; i++) for (int j = 0; j < 4; j++) umi_numa_tables.distance[i][j] = d[i][j];
    cr_expect_eq(umi_numa_nearest(0, 0xf), 0, "in the list: itself");
    cr_expect_eq(umi_numa_nearest(0, 0xc), 2, "lowest of the nearest on a tie");
    cr_expect_eq(umi_numa_nearest(3, 0x3), 0);
    cr_expect_eq(umi_numa_nearest(3, 0x6), 2);
    cr_expect_eq(umi_numa_nearest(1, 0), 1, "no list: itself");
}

Test(numa, node_list_with_nodes_not_online_gets_one_line)
{
    char *env[] = {"UMALLOC_NUMA_NODES=0,62-63", NULL};
    umi_options_load(env, 0);
    tu_capture_t c;
    char out[512], online[128];
    cr_assert_eq(tu_capture_begin(&c), 0);
    umi_numa_init();
    tu_capture_end(&c, out, sizeof out);
    umi_option_format(&umi_option_table[UM_OPT_NUMA_NODES], (long long)umi_numa_topo.online, NULL, online, sizeof online);
    char want[512];
    snprintf(want, sizeof want, "umalloc: UMALLOC_NUMA_NODES=0,62-63 is not valid: nodes 62-63 are not online "
                                "(online: %s); using the default (all online nodes)\n", online);
    cr_expect_str_eq(out, want);
    cr_expect_eq(umi_numa_process_nodes(), umi_numa_topo.online, "the default: all online nodes");
    char *env1[] = {NULL};
    umi_options_load(env1, 0);
}

Test(numa, api_answers_on_this_machine)
{
    int nodes = um_numa_node_count();
    cr_assert_geq(nodes, 1);
    errno = 0;
    cr_expect_null(um_malloc_onnode(100, 64));
    cr_expect_eq(errno, EINVAL);
    cr_expect_null(um_malloc_onnode(100, -1));
    char *p = um_malloc_onnode(5000, 0);
    cr_assert_not_null(p);
    cr_expect_geq(um_malloc_usable_size(p), 5000);
    memset(p, 1, 5000);
    int node = um_numa_node_of(p);
    cr_expect(node >= 0 && node < nodes, "um_numa_node_of of a written block: %d (errno %d)", node, errno);
    if (nodes == 1) cr_expect_eq(um_numa_migrate(p, 0), 0, "one node: nothing to move");
    errno = 0;
    cr_expect_eq(um_numa_migrate(p, 64), -1);
    cr_expect_eq(errno, EINVAL);
    int x;
    cr_expect_eq(um_numa_migrate(&x, 0), -1, "not a block of ours");
    um_free(p);

    cr_expect_eq(um_numa_set_thread_policy(UM_NUMA_NONE + 1, 0), -1);
    cr_expect_eq(um_numa_set_thread_policy(UM_NUMA_INTERLEAVE, (uint64_t)1 << 63), -1, "no online node in the list");
    cr_expect_eq(um_numa_set_thread_policy(UM_NUMA_BIND, 1), 0);
    cr_expect_eq(um_numa_set_thread_policy(UM_NUMA_PROCESS, 0), 0);
}

static int segment_node(const void *p) { return umi_segment_lookup(p)->node; }

/* The heap of a thread whose placement changes gives up its pages of the old placement at its
 * next slow path (here a huge block's), and its next small blocks come from elsewhere: made up
 * on one node by pretending there are two and switching the thread from `local` (its segments
 * bound for node 0) to `none` (unbound). */
Test(numa, heap_follows_a_change_of_placement)
{
    um_free(um_malloc(16)); /* initialized */
    bool was_on = umi_numa_on;
    uint64_t was_online = umi_numa_topo.online;
    if (!was_on) {
        umi_numa_topo.online = 3;
        umi_numa_on = true;
    }
    enum { N = 2000 };
    static void *b[N];
    cr_assert_eq(um_numa_set_thread_policy(UM_NUMA_LOCAL, 1), 0);
    for (int i = 0; i < N; i++) b[i] = um_malloc(64);
    void *huge = um_malloc(1 << 20); /* a slow path: the heap takes the new placement */
    int first = segment_node(b[0]);
    cr_assert_geq(first, 0, "local: bound for node %d", first);
    for (int i = 0; i < N; i++) um_free(b[i]);
    um_free(huge);

    cr_assert_eq(um_numa_set_thread_policy(UM_NUMA_NONE, 0), 0);
    huge = um_malloc(1 << 20);
    int stale = 0;
    for (int i = 0; i < N; i++) {
        b[i] = um_malloc(64);
        stale += segment_node(b[i]) != UMI_NUMA_UNBOUND;
    }
    cr_expect_eq(stale, 0, "%d of %d blocks still from the old placement", stale, N);
    for (int i = 0; i < N; i++) um_free(b[i]);
    um_free(huge);
    um_numa_set_thread_policy(UM_NUMA_PROCESS, 0);
    umi_numa_on = was_on;
    umi_numa_topo.online = was_online;
}
