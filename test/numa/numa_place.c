/* numa_place: where an allocator's memory lands on a multi-node machine, measured with the
 * kernel's own answer (libnuma's numa_move_pages with no target nodes: the node of each page).
 * It calls only malloc and free, so the same binary measures any allocator under LD_PRELOAD;
 * the umalloc checks (migrate, stats) find um_* with dlsym. Run by scripts/test-numa.sh inside
 * a qemu guest with several nodes (scripts/vm-run.sh).
 *
 *   numa_place place MIB MIN_PCT    a thread on each node allocates MIB MiB in sizes 16 B..1 MiB,
 *                                   a thread on the next node writes them first; per allocating
 *                                   thread, the share of its pages on its own node
 *   numa_place interleave MIB MAX_DEV_PCT   one block of MIB MiB: each node's share of its pages
 *   numa_place bind NODE MIB        mixed blocks, every page on NODE
 *   numa_place preferred NODE MIB   node NODE filled up to all but MIB/2 MiB first (by mbind'ed
 *                                   filler), then MIB MiB of mixed blocks: nothing fails, and they
 *                                   fill NODE and spill to the others
 *   numa_place move MIB MIN_PCT     a thread on node 0 allocates, writes and frees MIB MiB, moves
 *                                   to node 1, allocates MIB MiB again: the share on node 1
 *   numa_place prodcons BLOCKS ROUNDS  a producer on node 0 allocates BLOCKS 64-byte blocks, a
 *                                   consumer on node 1 frees them; per round: share on node 0, RSS
 *   numa_place migrate MIB          um_numa_migrate of a MIB MiB block to node 1; um_numa_node_of
 *   numa_place stats MIB MAX_DIFF_PCT  per-node committed bytes of um_stats_get against the pages
 *                                   per node of /proc/self/numa_maps
 *   numa_place thread MIB           um_numa_set_thread_policy: bind to the last node, then local again
 *   numa_place assemble             a large block made of cached pieces is whole (the guest's kernel)
 * Prints "PASS: ..." or "FAIL: ..." per check and "RESULT: name value" lines; exits 1 if a check
 * failed, 2 if something could not be measured. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <malloc.h>
#include <numa.h>
#include <numaif.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "umalloc.h"

static int fails;
static long ps;
static int nodes;

#define CHECK(cond, ...) do { printf("%s: ", (cond) ? "PASS" : "FAIL"); printf(__VA_ARGS__); printf("\n"); fflush(stdout); if (!(cond)) fails++; } while (0)
static void die(const char *what) { perror(what); exit(2); }

/* ---- blocks and their pages ---- */
typedef struct { char **p; size_t *size; size_t n, cap, bytes; } blocks_t;

static uint64_t rng_next(uint64_t *s) { *s ^= *s << 13; *s ^= *s >> 7; *s ^= *s << 17; return *s; }
/* Sizes log-uniform over 16 B .. 1 MiB. */
static size_t mixed_size(uint64_t *s) { return (size_t)16 << (rng_next(s) % 17) | (rng_next(s) & 15); }

static void blocks_alloc(blocks_t *b, size_t bytes, uint64_t seed, int write) {
    memset(b, 0, sizeof *b);
    while (b->bytes < bytes) {
        if (b->n == b->cap) {
            b->cap = b->cap ? b->cap * 2 : 4096;
            b->p = realloc(b->p, b->cap * sizeof *b->p);
            b->size = realloc(b->size, b->cap * sizeof *b->size);
            if (!b->p || !b->size) die("realloc");
        }
        size_t sz = mixed_size(&seed);
        char *p = malloc(sz);
        if (!p) die("malloc");
        if (write) memset(p, 0x5a, sz);
        b->p[b->n] = p; b->size[b->n++] = sz; b->bytes += sz;
    }
}
static void blocks_write(blocks_t *b) { for (size_t i = 0; i < b->n; i++) memset(b->p[i], 0xa5, b->size[i]); }
static void blocks_free(blocks_t *b) { for (size_t i = 0; i < b->n; i++) free(b->p[i]); free(b->p); free(b->size); memset(b, 0, sizeof *b); }

static int cmp_ptr(const void *a, const void *b) { uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b; return x < y ? -1 : x > y; }

/* Pages per node of the distinct OS pages the blocks span (per_node: nodes entries); returns the
 * pages counted (resident ones). */
static size_t pages_by_node(char **p, const size_t *size, size_t n, size_t *per_node) {
    size_t cap = 0, np = 0;
    for (size_t i = 0; i < n; i++) cap += size[i] / ps + 2;
    void **pages = malloc(cap * sizeof *pages);
    if (!pages) die("malloc pages");
    for (size_t i = 0; i < n; i++) {
        uintptr_t lo = (uintptr_t)p[i] & ~(uintptr_t)(ps - 1), hi = (uintptr_t)p[i] + size[i];
        for (uintptr_t a = lo; a < hi; a += ps) pages[np++] = (void *)a;
    }
    qsort(pages, np, sizeof *pages, cmp_ptr);
    size_t u = 0;
    for (size_t i = 0; i < np; i++) if (u == 0 || pages[u - 1] != pages[i]) pages[u++] = pages[i];
    int *status = malloc(u * sizeof *status);
    if (!status) die("malloc status");
    if (numa_move_pages(0, u, pages, NULL, status, 0) != 0) die("numa_move_pages");
    size_t counted = 0;
    memset(per_node, 0, nodes * sizeof *per_node);
    for (size_t i = 0; i < u; i++) if (status[i] >= 0 && status[i] < nodes) { per_node[status[i]]++; counted++; }
    free(pages); free(status);
    return counted;
}
static double pct_on(blocks_t *b, int node, size_t *total) {
    size_t per[64];
    size_t t = pages_by_node(b->p, b->size, b->n, per);
    if (total) *total = t;
    return t ? 100.0 * per[node] / t : 0;
}

static void pin(int node) { if (numa_run_on_node(node) != 0) die("numa_run_on_node"); }

/* ---- place ---- */
typedef struct { int node; size_t bytes; blocks_t b; } job_t;
static void *alloc_job(void *a) { job_t *j = a; pin(j->node); blocks_alloc(&j->b, j->bytes, 0x9e3779b97f4a7c15ull + j->node, 0); return NULL; }
static void *write_job(void *a) { job_t *j = a; pin((j->node + 1) % nodes); blocks_write(&j->b); return NULL; }

static void run_jobs(job_t *jobs, void *(*fn)(void *)) {
    pthread_t t[64];
    for (int n = 0; n < nodes; n++) if (pthread_create(&t[n], NULL, fn, &jobs[n])) die("pthread_create");
    for (int n = 0; n < nodes; n++) pthread_join(t[n], NULL);
}

static void test_place(size_t mib, double min_pct) {
    job_t jobs[64];
    for (int n = 0; n < nodes; n++) jobs[n] = (job_t){.node = n, .bytes = mib << 20};
    run_jobs(jobs, alloc_job);
    run_jobs(jobs, write_job);
    double worst = 100;
    for (int n = 0; n < nodes; n++) {
        size_t total;
        double pct = pct_on(&jobs[n].b, n, &total);
        printf("place: thread on node %d: %zu blocks, %.1f MiB, %zu pages: %.2f %% on node %d (written first from node %d)\n",
               n, jobs[n].b.n, jobs[n].b.bytes / 1048576.0, total, pct, n, (n + 1) % nodes);
        if (pct < worst) worst = pct;
    }
    printf("RESULT: place_min_pct %.2f\n", worst);
    if (min_pct > 0) CHECK(worst >= min_pct, "place: every allocating thread has >= %.0f %% of its pages on its node (worst %.2f %%)", min_pct, worst);
    for (int n = 0; n < nodes; n++) blocks_free(&jobs[n].b);
}

/* ---- interleave, bind, preferred ---- */
static void test_interleave(size_t mib, double max_dev) {
    size_t size = mib << 20, per[64];
    char *p = malloc(size);
    if (!p) die("malloc");
    memset(p, 1, size);
    size_t t = pages_by_node(&p, &size, 1, per);
    double worst = 0;
    for (int n = 0; n < nodes; n++) {
        double share = 100.0 * per[n] / t, dev = 100.0 * (per[n] - (double)t / nodes) / ((double)t / nodes);
        printf("interleave: node %d holds %zu of %zu pages (%.2f %%, %+.2f %% off its share)\n", n, per[n], t, share, dev);
        if (dev < 0) dev = -dev;
        if (dev > worst) worst = dev;
    }
    printf("RESULT: interleave_max_dev_pct %.2f\n", worst);
    CHECK(worst <= max_dev, "interleave: every node holds its share of a %zu MiB block within %.0f %% (worst %.2f %%)", mib, max_dev, worst);
    free(p);
}

static void test_bind(int node, size_t mib) {
    blocks_t b;
    pin((node + 1) % nodes); /* from another node: binding, not first touch, must place it */
    blocks_alloc(&b, mib << 20, 42, 1);
    size_t total;
    double pct = pct_on(&b, node, &total);
    printf("RESULT: bind_pct %.2f\n", pct);
    CHECK(pct == 100.0, "bind to node %d: %.2f %% of %zu pages of %zu blocks on node %d", node, pct, total, b.n, node);
    blocks_free(&b);
}

static long node_free_mib(int node) {
    long long fr;
    numa_node_size64(node, &fr);
    return (long)(fr >> 20);
}

static void test_preferred(int node, size_t mib) {
    /* Fill the preferred node until mib/2 MiB are left, with memory bound there strictly. */
    long left = node_free_mib(node);
    size_t fill = left > (long)(mib / 2) + 16 ? (size_t)(left - (long)(mib / 2)) << 20 : 0;
    char *filler = fill ? mmap(NULL, fill, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) : NULL;
    if (filler == MAP_FAILED) die("mmap filler");
    if (filler) {
        unsigned long mask = 1ul << node;
        if (mbind(filler, fill, MPOL_BIND, &mask, 64, 0) != 0) die("mbind filler");
        for (size_t o = 0; o < fill; o += ps) filler[o] = 1;
    }
    printf("preferred: node %d had %ld MiB free, filled with %zu MiB, %ld MiB free now\n", node, left, fill >> 20, node_free_mib(node));
    blocks_t b;
    pin((node + 1) % nodes);
    blocks_alloc(&b, mib << 20, 7, 1); /* dies on a failed malloc */
    size_t per[64], t = pages_by_node(b.p, b.size, b.n, per);
    double on = 100.0 * per[node] / t;
    printf("RESULT: preferred_on_node_pct %.2f\n", on);
    CHECK(t > 0 && per[node] > 0 && per[node] < t, "preferred node %d nearly full: all %zu blocks allocated and written; %.1f %% of %zu pages on node %d, the rest spilled to other nodes",
          node, b.n, on, t, node);
    blocks_free(&b);
    if (filler) munmap(filler, fill);
}

/* ---- move ---- */
static void test_move(size_t mib, double min_pct) {
    blocks_t b;
    pin(0);
    blocks_alloc(&b, mib << 20, 1, 1);
    double before = pct_on(&b, 0, NULL);
    blocks_free(&b);
    pin(1);
    blocks_alloc(&b, mib << 20, 2, 1);
    size_t total;
    double pct = pct_on(&b, 1, &total);
    printf("move: before the move %.2f %% on node 0; after it %zu blocks, %zu pages: %.2f %% on node 1\n", before, b.n, total, pct);
    printf("RESULT: move_pct %.2f\n", pct);
    if (min_pct > 0) CHECK(pct >= min_pct, "move: >= %.0f %% of what a thread allocates after moving from node 0 to node 1 is on node 1 (%.2f %%)", min_pct, pct);
    blocks_free(&b);
}

/* ---- producer / consumer ---- */
static long rss_kib(void) {
    long pages = 0, res = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f || fscanf(f, "%ld %ld", &pages, &res) != 2) die("statm");
    fclose(f);
    return res * (ps / 1024);
}
typedef struct { char **p; size_t n; } batch_t;
static void *consume(void *a) { batch_t *b = a; pin(1); for (size_t i = 0; i < b->n; i++) free(b->p[i]); return NULL; }

static void test_prodcons(size_t count, int rounds) {
    pin(0);
    batch_t b = {malloc(count * sizeof(char *)), count};
    size_t *sizes = malloc(count * sizeof *sizes);
    if (!b.p || !sizes) die("malloc");
    long rss[16] = {0};
    if (rounds < 1) rounds = 1;
    if (rounds > 16) rounds = 16;
    double worst = 100;
    for (int r = 0; r < rounds && r < 16; r++) {
        for (size_t i = 0; i < count; i++) { b.p[i] = malloc(64); if (!b.p[i]) die("malloc"); memset(b.p[i], r, 64); sizes[i] = 64; }
        size_t per[64], t = pages_by_node(b.p, sizes, count, per);
        double pct = 100.0 * per[0] / t;
        if (pct < worst) worst = pct;
        pthread_t th;
        if (pthread_create(&th, NULL, consume, &b)) die("pthread_create");
        pthread_join(th, NULL);
        /* What the allocator keeps for reuse by policy goes first: the page list pages_by_node
         * builds each round (32 MiB) is freed and taken again every round, and umalloc's purge
         * delay, which follows such cycles, keeps it resident between them. A leak stays. */
        malloc_trim(0);
        rss[r] = rss_kib();
        printf("prodcons: round %d: %zu blocks of 64 B from node 0, freed on node 1: %.2f %% of %zu pages on node 0; RSS %ld KiB\n", r + 1, count, pct, t, rss[r]);
    }
    double growth = 100.0 * (rss[rounds - 1] - rss[0]) / rss[0];
    printf("RESULT: prodcons_min_pct %.2f\nRESULT: prodcons_rss_growth_pct %.2f\n", worst, growth);
    CHECK(worst >= 99.0, "prodcons: the blocks' memory stays on node 0 (worst round %.2f %%)", worst);
    CHECK(rss[rounds - 1] <= rss[0] + rss[0] / 20 + 1024, "prodcons: no growth between rounds (RSS %ld KiB after round 1, %ld KiB after round %d)", rss[0], rss[rounds - 1], rounds);
    free(b.p); free(sizes);
}

/* ---- umalloc's API ---- */
static void *um(const char *name) {
    void *f = dlsym(RTLD_DEFAULT, name);
    if (!f) { printf("FAIL: %s not found: run under LD_PRELOAD=libumalloc.so\n", name); exit(1); }
    return f;
}

static void test_migrate(size_t mib) {
    long (*migrate)(void *, int) = (long (*)(void *, int))um("um_numa_migrate");
    int (*node_of)(const void *) = (int (*)(const void *))um("um_numa_node_of");
    void *(*onnode)(size_t, int) = (void *(*)(size_t, int))um("um_malloc_onnode");
    pin(0);
    size_t size = mib << 20, per[64];
    char *p = malloc(size);
    if (!p) die("malloc");
    memset(p, 3, size);
    size_t t = pages_by_node(&p, &size, 1, per);
    printf("migrate: %zu MiB block, %zu pages, %zu on node 0 before\n", mib, t, per[0]);
    long moved = migrate(p, 1);
    t = pages_by_node(&p, &size, 1, per);
    printf("RESULT: migrate_moved %ld\nRESULT: migrate_on_node1 %zu/%zu\n", moved, per[1], t);
    CHECK(per[1] == t && moved >= (long)(size / ps), "migrate: um_numa_migrate moved %ld pages; %zu of %zu pages of the block on node 1 now", moved, per[1], t);
    CHECK(migrate(p, 1) == 0, "migrate: a second um_numa_migrate to the same node moves nothing");
    /* um_numa_node_of against the kernel, on a few pages of several kinds of block */
    char *small = malloc(100), *onn = onnode(3000, 1);
    if (!small || !onn) die("malloc");
    small[0] = 1; onn[0] = 1;
    char *probe[] = {p, p + size / 2, p + size - 1, small, onn};
    int agree = 1;
    for (size_t i = 0; i < sizeof probe / sizeof *probe; i++) {
        void *pg = (void *)((uintptr_t)probe[i] & ~(uintptr_t)(ps - 1));
        int st = -1;
        numa_move_pages(0, 1, &pg, NULL, &st, 0);
        int mine = node_of(probe[i]);
        printf("migrate: um_numa_node_of(%p) = %d, numa_move_pages says %d\n", (void *)probe[i], mine, st);
        agree &= mine == st;
    }
    CHECK(agree, "migrate: um_numa_node_of agrees with libnuma on 5 pages");
    CHECK(node_of(onn) == 1, "um_malloc_onnode(3000, 1) from a thread on node 0: its page is on node 1");
    free(p); free(small); free(onn);
}

/* Written through their usable size, as a program that uses all of its blocks: the pages a
 * block's class rounding adds count as committed, and the kernel then has them too. */
/* um_numa_set_thread_policy: a thread on node 0 binds itself to the last node, then goes back to
 * the process's policy (local). */
static void test_thread_policy(size_t mib) {
    int (*set)(int, uint64_t) = (int (*)(int, uint64_t))um("um_numa_set_thread_policy");
    int last = nodes - 1;
    pin(0);
    blocks_t b, c;
    blocks_alloc(&b, mib << 20, 5, 1);
    CHECK(set(UM_NUMA_BIND, (uint64_t)1 << last) == 0, "thread: um_numa_set_thread_policy(UM_NUMA_BIND, node %d)", last);
    blocks_alloc(&c, mib << 20, 6, 1);
    double bound = pct_on(&c, last, NULL);
    blocks_free(&b);
    CHECK(set(UM_NUMA_PROCESS, 0) == 0, "thread: back to the process's policy");
    blocks_alloc(&b, mib << 20, 7, 1);
    double local = pct_on(&b, 0, NULL);
    printf("RESULT: thread_bound_pct %.2f\nRESULT: thread_local_again_pct %.2f\n", bound, local);
    CHECK(bound == 100.0, "thread: after binding itself to node %d, %.2f %% of the next %zu MiB is there", last, bound, mib);
    CHECK(local >= 99.0, "thread: back to local, %.2f %% of the next %zu MiB is on node 0", local, mib);
    blocks_free(&b);
    blocks_free(&c);
}

static void *stats_job(void *a) {
    job_t *j = a;
    pin(j->node);
    blocks_alloc(&j->b, j->bytes, 11 + j->node, 0);
    for (size_t i = 0; i < j->b.n; i++) memset(j->b.p[i], 1, malloc_usable_size(j->b.p[i]));
    return NULL;
}

static void test_stats(size_t mib, double max_diff) {
    void (*get)(um_stats_t *, size_t) = (void (*)(um_stats_t *, size_t))um("um_stats_get_sized");
    job_t jobs[64];
    for (int n = 0; n < nodes; n++) jobs[n] = (job_t){.node = n, .bytes = mib << 20};
    run_jobs(jobs, stats_job);
    static um_stats_t s;
    get(&s, sizeof s);
    /* The kernel's count: pages per node of every anonymous mapping of the process. */
    unsigned long long kern[64] = {0};
    FILE *f = fopen("/proc/self/numa_maps", "r");
    if (!f) die("numa_maps");
    char line[4096];
    int verbose = getenv("NUMA_PLACE_VERBOSE") != NULL;
    while (fgets(line, sizeof line, f)) {
        if (strstr(line, "file=")) continue;
        if (verbose) fputs(line, stdout);
        for (char *q = strstr(line, " N"); q; q = strstr(q + 1, " N")) {
            int nd; unsigned long long pg;
            if (sscanf(q, " N%d=%llu", &nd, &pg) == 2 && nd >= 0 && nd < 64) kern[nd] += pg;
        }
    }
    fclose(f);
    double worst = 0;
    for (int n = 0; n < nodes; n++) {
        double k = kern[n] * (double)ps, u = (double)s.node_committed_bytes[n];
        double diff = k > 0 ? 100.0 * (u - k) / k : 100;
        printf("stats: node %d: umalloc committed %.2f MiB (mapped %.2f, live %.2f), kernel (numa_maps, anonymous) %.2f MiB: %+.2f %%\n",
               n, u / 1048576, s.node_mapped_bytes[n] / 1048576.0, s.node_live_bytes[n] / 1048576.0, k / 1048576, diff);
        if (diff < 0) diff = -diff;
        if (diff > worst) worst = diff;
    }
    printf("RESULT: stats_max_diff_pct %.2f\n", worst);
    CHECK(worst <= max_diff, "stats: per-node committed bytes agree with /proc/self/numa_maps within %.0f %% (worst %.2f %%)", max_diff, worst);
    for (int n = 0; n < nodes; n++) blocks_free(&jobs[n].b);
}

/* Not NUMA: a large block assembled from cached pieces, one of which spans two kernel mappings.
 * Kernels before 6.17 refuse to mremap such a range after unmapping the target, and umalloc
 * once left that hole in the block (the write below faulted). Run with a long
 * UMALLOC_PURGE_DELAY_MS, so that the pieces stay resident, hence movable. */
static void test_assemble(void) {
    char *a = malloc(3 << 20), *b = malloc(2 << 20);
    if (!a || !b) die("malloc");
    memset(a, 1, 3 << 20); memset(b, 1, 2 << 20);
    free(a); free(b);
    char *c = malloc(5 << 20); /* from the two pieces: several kernel mappings */
    if (!c) die("malloc");
    memset(c, 2, 5 << 20);
    free(c);
    char *d = malloc(9 << 20); /* the piece of c spans mappings */
    if (!d) die("malloc");
    memset(d, 3, 9 << 20);
    CHECK(d[0] == 3 && d[(9 << 20) - 1] == 3, "assemble: a block made of cached pieces that span several mappings is all there");
    free(d);
}

int main(int argc, char **argv) {
    ps = sysconf(_SC_PAGESIZE);
    if (numa_available() < 0) { printf("SKIP: no NUMA\n"); return 2; }
    nodes = numa_max_node() + 1;
    if (argc == 2 && !strcmp(argv[1], "assemble")) { test_assemble(); return fails ? 1 : 0; }
    if (argc < 3) { fprintf(stderr, "usage: see the comment at the top of %s\n", __FILE__); return 2; }
    const char *t = argv[1];
    double a = atof(argv[2]), b = argc > 3 ? atof(argv[3]) : 0;
    if (nodes < 2 && !getenv("NUMA_PLACE_ONE_NODE")) { printf("SKIP: one node\n"); return 2; }
    if (!strcmp(t, "place")) test_place((size_t)a, b);
    else if (!strcmp(t, "interleave")) test_interleave((size_t)a, b);
    else if (!strcmp(t, "bind")) test_bind((int)a, (size_t)b);
    else if (!strcmp(t, "preferred")) test_preferred((int)a, (size_t)b);
    else if (!strcmp(t, "move")) test_move((size_t)a, b);
    else if (!strcmp(t, "prodcons")) test_prodcons((size_t)a, (int)b);
    else if (!strcmp(t, "migrate")) test_migrate((size_t)a);
    else if (!strcmp(t, "stats")) test_stats((size_t)a, b);
    else if (!strcmp(t, "thread")) test_thread_policy((size_t)a);
    else { fprintf(stderr, "numa_place: unknown test %s\n", t); return 2; }
    return fails ? 1 : 0;
}
