/* TLB-bound workloads (issue 13): a working set of gigabytes of small blocks, read at random, so
 * that nearly every access misses the TLB and the page size behind the heap decides the time.
 *
 *   tlb [mib=2048] [steps=20000000]
 *       malloc(64) nodes until `mib` MiB of them, link them into one cycle in random order
 *       (Sattolo's shuffle), then follow the cycle `steps` times.
 *   tlb hash=1 [entries=20000000] [lookups=20000000]
 *       a chained hash table of `entries` malloc'd entries (32 bytes: key, value, next) over a
 *       malloc'd bucket array, then `lookups` lookups of random present keys.
 *
 * Prints "tlb-MODE ok checksum=HEX time=S build=S rss_kb=K minflt=N majflt=N": time is the
 * timed random phase (the chase, the lookups), build the set-up before it; rss_kb the peak RSS
 * with hugetlb pages counted (see sample_peak);
 * the faults are the whole process's. The checksum depends on the parameters only. */
#include <sys/resource.h>
#include <time.h>

#include "common.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Resident memory now, hugetlb pages included: getrusage's peak RSS leaves them out (they are
 * not in the kernel's RSS counters), so the peak of a hugetlb-backed run is taken here, at the
 * workload's peak (everything allocated, nothing freed yet). */
static long status_kb(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = 0;
    size_t n = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, key, n) == 0 && line[n] == ':') { v = atol(line + n + 1); break; }
    if (f) fclose(f);
    return v;
}
static long peak_kb;
static void sample_peak(void) {
    long kb = status_kb("VmRSS") + status_kb("HugetlbPages");
    if (kb > peak_kb) peak_kb = kb;
}

typedef struct node_s {
    struct node_s *next;
    uint64_t payload[7]; /* 64 bytes in all */
} node_t;

static uint64_t chase(long long mib, long long steps, double *build, double *timed) {
    double t0 = now_s();
    size_t n = (size_t)mib * 1024 * 1024 / sizeof(node_t);
    node_t **v = malloc(n * sizeof *v);
    if (!v) fail("out of memory (%zu pointers)", n);
    for (size_t i = 0; i < n; i++) {
        v[i] = malloc(sizeof(node_t));
        if (!v[i]) fail("out of memory at node %zu", i);
        v[i]->payload[0] = i;
    }
    /* One cycle through every node in a random order: position i of the cycle holds node
     * perm(i), perm a bijection of [0, n) (n a power of two). Node j's successor is then
     * perm(perm^-1(j) + 1): the nodes are linked in address order, each write next to the last,
     * and only the reads of v[] are random (a shuffle would write 2 GiB at random too). */
    unsigned bits = 0;
    while (((size_t)2 << bits) <= n) bits++;
    n = (size_t)1 << bits; /* the nodes past it are allocated but not on the cycle */
    uint64_t mask = n - 1, a = 0x9E3779B97F4A7C15ull, b = 0xD6E8FEB86659FD93ull, ai = a, bi = b;
    for (int k = 0; k < 6; k++) { ai *= 2 - a * ai; bi *= 2 - b * bi; } /* inverses mod 2^64 */
    unsigned sh = (bits + 1) / 2; /* x ^= x >> sh undoes itself: 2 sh >= bits */
#define PERM(x) ((((((x) * a) & mask) ^ ((((x) * a) & mask) >> sh)) * b) & mask)
    for (size_t j = 0; j < n; j++) {
        uint64_t y = (j * bi) & mask;
        y ^= y >> sh;
        uint64_t i = (y * ai) & mask; /* perm^-1(j) */
        v[j]->next = v[PERM((i + 1) & mask)];
    }
    node_t *p = v[0];
    *build = now_s() - t0;
    uint64_t sum = 0;
    double t1 = now_s();
    for (long long s = 0; s < steps; s++) {
        sum += p->payload[0];
        p = p->next;
    }
    *timed = now_s() - t1;
    sample_peak();
    for (size_t i = 0; i < (size_t)mib * 1024 * 1024 / sizeof(node_t); i++) free(v[i]);
    free(v);
    return sum;
}

typedef struct entry_s {
    uint64_t key, value;
    struct entry_s *next;
} entry_t;

static uint64_t hash(long long entries, long long lookups, double *build, double *timed) {
    double t0 = now_s();
    size_t buckets = 1;
    while (buckets < (size_t)entries) buckets <<= 1;
    entry_t **table = calloc(buckets, sizeof *table);
    if (!table) fail("out of memory (%zu buckets)", buckets);
    for (long long i = 0; i < entries; i++) {
        entry_t *e = malloc(sizeof *e);
        if (!e) fail("out of memory at entry %lld", i);
        e->key = mix64((uint64_t)i);
        e->value = (uint64_t)i;
        size_t b = e->key & (buckets - 1);
        e->next = table[b];
        table[b] = e;
    }
    *build = now_s() - t0;
    rng_t r = rng_seed(2, 13);
    uint64_t sum = 0;
    double t1 = now_s();
    for (long long l = 0; l < lookups; l++) {
        uint64_t k = mix64(rng_range(&r, 0, (uint64_t)entries - 1));
        entry_t *e = table[k & (buckets - 1)];
        while (e && e->key != k) e = e->next;
        if (!e) fail("key lost");
        sum += e->value;
    }
    *timed = now_s() - t1;
    sample_peak();
    for (size_t b = 0; b < buckets; b++) {
        entry_t *e = table[b];
        while (e) { entry_t *n = e->next; free(e); e = n; }
    }
    free(table);
    return sum;
}

int main(int argc, char **argv) {
    opts_init("tlb", argc, argv);
    long long mode = opt("hash", 0); /* hash=1: the hash table; else the chase */
    long long mib = opt("mib", 2048), steps = opt("steps", 20000000);
    long long entries = opt("entries", 20000000), lookups = opt("lookups", 20000000);
    opts_done();
    double build = 0, timed = 0;
    uint64_t sum = mode ? hash(entries, lookups, &build, &timed) : chase(mib, steps, &build, &timed);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    long rss_kb = ru.ru_maxrss > peak_kb ? ru.ru_maxrss : peak_kb;
    printf("tlb-%s ok checksum=%016llx time=%.3f build=%.3f rss_kb=%ld minflt=%ld majflt=%ld\n", mode ? "hash" : "chase",
           (unsigned long long)sum, timed, build, rss_kb, ru.ru_minflt, ru.ru_majflt);
    return 0;
}
