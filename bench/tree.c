/* tree: a pointer-heavy structure built and torn down over and over.
 *
 * Each round builds an unbalanced binary search tree of `nodes` random keys; every node is one
 * malloc'ed struct plus a malloc'ed payload string of pmin..pmax bytes. The round then walks the
 * tree in order twice (checking that keys ascend, the count and every payload) -- the walk chases
 * pointers, so it is fast only if the allocator placed the nodes well -- and tears it down in
 * post-order, which frees in an order unrelated to the allocation order.
 *
 *   tree threads=1 rounds=10 nodes=100000 pmin=8 pmax=64 seed=1
 * rounds is the total, shared by the threads.
 */
#include "common.h"

typedef struct node {
    uint64_t key;
    struct node *left, *right;
    char *payload;
    uint32_t plen;
} node_t;

typedef struct {
    long long rounds;
    uint64_t seed;
    uint64_t sum;
    long long bad;
    char pad[64];
} arg_t;

static long long g_nodes, g_pmin, g_pmax;

static inline char pchar(uint64_t key, uint32_t i)
{
    return (char)('a' + (key >> (i % 48)) % 26);
}

static void *worker(void *argp)
{
    arg_t *a = argp;
    node_t **stack = xmalloc(sizeof(node_t *) * (size_t)(g_nodes + 1));
    uint64_t sum = 0;
    long long bad = 0;
    for (long long rd = 0; rd < a->rounds; rd++) {
        rng_t r = rng_seed(a->seed, (uint64_t)rd);
        node_t *root = NULL;
        long long count = 0;
        uint64_t keysum = 0;
        for (long long i = 0; i < g_nodes; i++) {
            uint64_t key = rng_next(&r) >> 16;
            node_t **at = &root;
            while (*at && (*at)->key != key)
                at = key < (*at)->key ? &(*at)->left : &(*at)->right;
            if (*at)
                continue; /* duplicate */
            node_t *n = xmalloc(sizeof(node_t));
            n->key = key;
            n->left = n->right = NULL;
            n->plen = (uint32_t)rng_range(&r, (uint64_t)g_pmin, (uint64_t)g_pmax);
            n->payload = xmalloc(n->plen + 1);
            for (uint32_t k = 0; k < n->plen; k++)
                n->payload[k] = pchar(key, k);
            n->payload[n->plen] = 0;
            *at = n;
            count++;
            keysum += key;
        }
        for (int pass = 0; pass < 2; pass++) {
            /* in-order walk with an explicit stack */
            long long sp = 0, seen = 0;
            uint64_t prev = 0, ks = 0;
            node_t *n = root;
            while (n || sp) {
                while (n) {
                    stack[sp++] = n;
                    n = n->left;
                }
                n = stack[--sp];
                if (seen && n->key <= prev)
                    bad++;
                prev = n->key;
                ks += n->key;
                seen++;
                if (pass == 0) {
                    for (uint32_t k = 0; k < n->plen; k++)
                        if (n->payload[k] != pchar(n->key, k))
                            bad++;
                } else if (n->payload[n->plen] != 0 || n->payload[0] != pchar(n->key, 0)) {
                    bad++;
                }
                n = n->right;
            }
            if (seen != count || ks != keysum)
                bad++;
        }
        /* post-order teardown: push root; a node is freed after both children */
        long long sp = 0;
        if (root)
            stack[sp++] = root;
        while (sp) {
            node_t *n = stack[--sp];
            if (n->left)
                stack[sp++] = n->left;
            if (n->right)
                stack[sp++] = n->right;
            free(n->payload);
            free(n);
        }
        sum += keysum + (uint64_t)count;
    }
    free(stack);
    a->sum = sum;
    a->bad = bad;
    return NULL;
}

int main(int argc, char **argv)
{
    opts_init("tree", argc, argv);
    int threads = (int)opt("threads", 1);
    long long rounds = opt("rounds", 10);
    g_nodes = opt("nodes", 100000);
    g_pmin = opt("pmin", 8);
    g_pmax = opt("pmax", 64);
    uint64_t seed = (uint64_t)opt("seed", 1);
    opts_done();
    if (threads < 1 || g_nodes < 1 || g_pmin < 1 || g_pmax < g_pmin)
        fail("bad parameters");
    arg_t *args = xmalloc(sizeof(arg_t) * (size_t)threads);
    for (int t = 0; t < threads; t++)
        args[t] = (arg_t){ .rounds = share(rounds, threads, t), .seed = mix64(seed + (uint64_t)t) };
    run_threads(threads, worker, args, sizeof(arg_t));
    uint64_t sum = 0;
    long long bad = 0;
    for (int t = 0; t < threads; t++) {
        sum += args[t].sum;
        bad += args[t].bad;
    }
    free(args);
    if (bad)
        fail("%lld checks failed", bad);
    printf("tree ok checksum=%016" PRIx64 " rounds=%lld nodes=%lld\n", sum, rounds, g_nodes);
    return 0;
}
