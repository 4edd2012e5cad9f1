/* NUMA topology from /sys/devices/system/node, read once (see numa/topology.h). Runs inside the
 * first malloc, before libc may be fully set up: open/read/close and the formatter only. */
#include "numa/topology.h"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include "base/base.h"
#include "base/fmt.h"
#include "base/io.h"

um_numa_topology_t umi_numa_topo = {.online = 1, .count = 1};
UM_BIG_BSS um_numa_tables_t umi_numa_tables;

/* The whole (small) file into buf, NUL-terminated; its length, or -1. */
static long read_file(const char *path, char *buf, size_t cap) {
    int fd = umi_io_open(path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0) return -1;
    size_t n = 0;
    while (n + 1 < cap) {
        ssize_t r = umi_io_read(fd, buf + n, cap - 1 - n);
        if (r <= 0) break;
        n += (size_t)r;
    }
    umi_io_close(fd);
    buf[n] = '\0';
    return (long)n;
}

static const char *parse_num(const char *s, unsigned long *out) {
    unsigned long v = 0;
    if (*s < '0' || *s > '9') return NULL;
    while (*s >= '0' && *s <= '9') v = v * 10 + (unsigned long)(*s++ - '0');
    *out = v;
    return s;
}

uint64_t umi_numa_parse_list(const char *s, void (*each)(unsigned v, void *arg), void *arg) {
    uint64_t mask = 0;
    while (*s) {
        unsigned long a, b;
        const char *e = parse_num(s, &a);
        if (e == NULL) break;
        b = a;
        if (*e == '-' && (e = parse_num(e + 1, &b)) == NULL) break;
        for (unsigned long v = a; v <= b && v < (1ul << 20); v++) {
            if (v < 64) mask |= (uint64_t)1 << v;
            if (each) each((unsigned)v, arg);
        }
        s = e;
        if (*s != ',') break;
        s++;
    }
    return mask;
}

static void set_cpu(unsigned cpu, void *arg) {
    if (cpu < UM_NUMA_MAX_CPUS) umi_numa_tables.cpu_node[cpu] = (uint8_t)(uintptr_t)arg;
}

void umi_numa_topology_read(void) {
    um_numa_topology_t *t = &umi_numa_topo;
    char buf[4096], path[96];
    if (read_file("/sys/devices/system/node/online", buf, sizeof buf) <= 0) return; /* one node */
    uint64_t online = umi_numa_parse_list(buf, NULL, NULL);
    if (online == 0) return;
    t->online = online;
    t->count = (unsigned)__builtin_popcountll(online);
    t->max_node = 63u - (unsigned)__builtin_clzll(online);
    if (t->count == 1) return; /* nothing else matters on one node */
    for (unsigned n = 0; n <= t->max_node; n++) {
        if (!(online >> n & 1)) continue;
        umi_fmt(path, sizeof path, "/sys/devices/system/node/node%u/cpulist", n);
        if (read_file(path, buf, sizeof buf) > 0) umi_numa_parse_list(buf, set_cpu, (void *)(uintptr_t)n);
        /* One number per online node, in node order. */
        umi_fmt(path, sizeof path, "/sys/devices/system/node/node%u/distance", n);
        for (unsigned m = 0; m < UM_NUMA_MAX_NODES; m++) umi_numa_tables.distance[n][m] = m == n ? 10 : 20;
        if (read_file(path, buf, sizeof buf) > 0) {
            const char *s = buf;
            for (unsigned m = 0; m <= t->max_node; m++) {
                if (!(online >> m & 1)) continue;
                while (*s == ' ') s++;
                unsigned long d;
                if ((s = parse_num(s, &d)) == NULL) break;
                umi_numa_tables.distance[n][m] = (uint8_t)(d > 255 ? 255 : d);
            }
        }
    }
}

int umi_numa_cpu_node(void) {
    /* glibc (2.35 and later) answers from the rseq area the kernel keeps current; older ones
     * from the vDSO's getcpu. Neither enters the kernel. */
    int cpu = sched_getcpu();
    return cpu >= 0 && cpu < UM_NUMA_MAX_CPUS ? umi_numa_tables.cpu_node[cpu] : 0;
}

int umi_numa_nearest(int node, uint64_t mask) {
    if (node < 0 || node >= UM_NUMA_MAX_NODES) node = 0;
    if (mask == 0 || (mask >> node & 1)) return node;
    int best = -1;
    for (int m = 0; m < UM_NUMA_MAX_NODES; m++)
        if ((mask >> m & 1) && (best < 0 || umi_numa_tables.distance[node][m] < umi_numa_tables.distance[node][best])) best = m;
    return best;
}
