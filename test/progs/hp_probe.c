/* hp_probe: what scripts/test-hugepages.sh checks of huge pages, prefaulting and locking, run
 * under LD_PRELOAD=build/libumalloc.so. Prints "key=value" lines for the script to read.
 *
 *   hp_probe small MIB     allocate MIB MiB of 48-byte blocks and write them; print the pool's
 *                          free pages (HugePages_Free of the default size, and of 1 GiB pages)
 *                          before, while they are held, and after they are freed and the purge
 *                          delay has passed (the program goes on allocating a little meanwhile);
 *                          the VMAs of each kernel page size in /proc/self/smaps while held;
 *                          umalloc's statistics (fallbacks, bytes per page kind, locked)
 *   hp_probe touch MIB     malloc MIB MiB of 64 KiB blocks, then write one byte per 4 KiB of
 *                          them: the page faults (exceptions) and minor faults of it all
 *   hp_probe lock MIB      hold MIB MiB of small blocks; print VmLck and umalloc's committed
 *                          and locked bytes
 *   hp_probe mapfile PATH  um_map_file(PATH, read-only, prefaulted) after evicting it from the
 *                          page cache; random 8-byte reads; the major faults of the reads; then
 *                          the errors of bad calls
 *   hp_probe hugefile DIR  in DIR (a hugetlbfs mount), a file of 8 MiB written through a shared
 *                          mapping; then um_map_file(read-only, huge, prefaulted): its contents
 *                          and the kernel page size behind the mapping */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/perf_event.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "umalloc.h"

static long meminfo(const char *key) {
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    long v = -1;
    size_t n = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, key, n) == 0 && line[n] == ':') { v = atol(line + n + 1); break; }
    if (f) fclose(f);
    return v;
}

static long sysfs_free_1g(void) {
    FILE *f = fopen("/sys/kernel/mm/hugepages/hugepages-1048576kB/free_hugepages", "r");
    long v = -1;
    if (f) { if (fscanf(f, "%ld", &v) != 1) v = -1; fclose(f); }
    return v;
}

static void smaps_kernel_pages(void) {
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[256];
    long k4 = 0, k2m = 0, k1g = 0;
    while (f && fgets(line, sizeof line, f)) {
        long kb;
        if (sscanf(line, "KernelPageSize: %ld kB", &kb) != 1) continue;
        if (kb == 4) k4++; else if (kb == 2048) k2m++; else if (kb == 1048576) k1g++;
    }
    if (f) fclose(f);
    printf("smaps_vmas_4k=%ld\nsmaps_vmas_2m=%ld\nsmaps_vmas_1g=%ld\n", k4, k2m, k1g);
}

static long status_kb(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t n = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, key, n) == 0 && line[n] == ':') { v = atol(line + n + 1); break; }
    if (f) fclose(f);
    return v;
}

static void stats(void) {
    void (*get)(um_stats_t *, size_t) = (void (*)(um_stats_t *, size_t))dlsym(RTLD_DEFAULT, "um_stats_get_sized");
    if (!get) { printf("umalloc=no\n"); return; }
    um_stats_t s;
    get(&s, sizeof s);
    printf("fallbacks=%llu\nmapped_4k=%llu\nmapped_thp=%llu\nmapped_2m=%llu\nmapped_1g=%llu\nlocked_bytes=%llu\ncommitted_bytes=%llu\n",
           (unsigned long long)s.hugepage_fallbacks, (unsigned long long)s.page_kind_mapped_bytes[0],
           (unsigned long long)s.page_kind_mapped_bytes[1], (unsigned long long)s.page_kind_mapped_bytes[2],
           (unsigned long long)s.page_kind_mapped_bytes[3], (unsigned long long)s.locked_bytes,
           (unsigned long long)s.committed_bytes);
}

static long minflt(void) { struct rusage ru; getrusage(RUSAGE_SELF, &ru); return ru.ru_minflt; }
static long majflt(void) { struct rusage ru; getrusage(RUSAGE_SELF, &ru); return ru.ru_majflt; }

/* A program that goes on: small allocations for `ms`, so that umalloc's slow paths run. */
static void keep_going(int ms) {
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    static void *p[4096];
    do { /* 2 MiB of 512-byte blocks and back: pages run dry, and the slow path's housekeeping runs */
        for (int i = 0; i < 4096; i++) p[i] = malloc(512);
        for (int i = 0; i < 4096; i++) free(p[i]);
        usleep(1000);
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < ms);
}

static int small(size_t mib) {
    size_t n = (mib << 20) / 48;
    void **v = mmap(NULL, n * sizeof *v, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0); /* not umalloc's */
    if (v == MAP_FAILED) return 1;
    long free0 = meminfo("HugePages_Free"), rsvd0 = meminfo("HugePages_Rsvd"), free1g0 = sysfs_free_1g();
    for (size_t i = 0; i < n; i++) {
        if (!(v[i] = malloc(48))) return 1;
        memset(v[i], (int)i, 48);
    }
    printf("free_before=%ld\nrsvd_before=%ld\nfree_held=%ld\nfree1g_before=%ld\nfree1g_held=%ld\n", free0, rsvd0,
           meminfo("HugePages_Free"), free1g0, sysfs_free_1g());
    smaps_kernel_pages();
    stats();
    for (size_t i = 0; i < n; i++) free(v[i]);
    keep_going(600); /* the purge delay is 100 ms by default: this is well past it */
    printf("free_after=%ld\nfree1g_after=%ld\n", meminfo("HugePages_Free"), sysfs_free_1g());
    if (getenv("HP_PROBE_DUMP")) { void (*pr)(int, int) = (void (*)(int, int))dlsym(RTLD_DEFAULT, "um_stats_print"); if (pr) pr(1, 0); }
    munmap(v, n * sizeof *v);
    return 0;
}

/* Page faults the program takes as exceptions (the kernel's software event): unlike
 * getrusage's counts, not those the kernel makes itself to populate memory (MADV_POPULATE_WRITE,
 * MAP_POPULATE, mlock), which are not faults of the program's accesses. -1: no perf events. */
static int fault_counter(void) {
    struct perf_event_attr a;
    memset(&a, 0, sizeof a);
    a.type = PERF_TYPE_SOFTWARE;
    a.size = sizeof a;
    a.config = PERF_COUNT_SW_PAGE_FAULTS_MIN;
    a.exclude_hv = 1;
    return (int)syscall(SYS_perf_event_open, &a, 0, -1, -1, 0);
}
static long long counter_read(int fd) {
    long long v = -1;
    if (fd < 0 || read(fd, &v, sizeof v) != sizeof v) return -1;
    return v;
}

static int touch(size_t mib) {
    int pf = fault_counter();
    long long e0 = counter_read(pf);
    /* Blocks whose pages umalloc does not write itself: it faults in with one call the pages of
     * small blocks it carves, prefault or not (core/page.c, carve_fault_in). */
    const size_t block = 64 << 10;
    size_t n = (mib << 20) / block;
    char **v = calloc(n, sizeof *v);
    if (!v) return 1;
    long f0 = minflt();
    for (size_t i = 0; i < n; i++) if (!(v[i] = malloc(block))) return 1;
    long f1 = minflt();
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < block; k += 4096) v[i][k] = 1;
    long f2 = minflt();
    long long e2 = counter_read(pf);
    printf("touch_exceptions=%lld\n", pf < 0 ? -1 : e2 - e0);
    /* the faults of a first touch can come in malloc as well as in the program's write, so both
     * are counted */
    printf("malloc_minflt=%ld\nwrite_minflt=%ld\ntouch_minflt=%ld\n", f1 - f0, f2 - f1, f2 - f0);
    return 0;
}

static int lock(size_t mib) {
    size_t n = (mib << 20) / 256;
    for (size_t i = 0; i < n; i++) { char *p = malloc(256); if (!p) return 1; p[0] = 1; }
    printf("vmlck_kb=%ld\n", status_kb("VmLck"));
    stats();
    return 0;
}

static int mapfile(const char *path) {
    void *(*um_map_file)(const char *, int, size_t *) = (void *(*)(const char *, int, size_t *))dlsym(RTLD_DEFAULT, "um_map_file");
    int (*um_unmap_file)(void *, size_t) = (int (*)(void *, size_t))dlsym(RTLD_DEFAULT, "um_unmap_file");
    if (!um_map_file || !um_unmap_file) { printf("umalloc=no\n"); return 1; }
    int fd = open(path, O_RDONLY);
    if (fd < 0) return 1;
    fdatasync(fd);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED); /* out of the page cache: the map must read it */
    close(fd);
    size_t size = 0;
    long m0 = majflt();
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    const unsigned char *p = um_map_file(path, UM_MAP_READ | UM_MAP_PREFAULT, &size);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (!p) { printf("map_errno=%d\n", errno); return 1; }
    long m1 = majflt();
    unsigned long long sum = 0, x = 88172645463325252ull;
    for (int i = 0; i < 1000000; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        sum += p[x % size];
    }
    long m2 = majflt();
    printf("map_size=%zu\nmap_seconds=%.3f\nmajflt_in_call=%ld\nmajflt_after_call=%ld\nsum=%llu\n", size,
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9, m1 - m0, m2 - m1, sum);
    printf("unmap=%d\n", um_unmap_file((void *)p, size));
    errno = 0; size_t s2;
    printf("err_missing=%d %s\n", um_map_file("/nonexistent/file", UM_MAP_READ, &s2) == NULL ? errno : 0, "ENOENT");
    errno = 0;
    printf("err_flags=%d %s\n", um_map_file(path, UM_MAP_READ | UM_MAP_SHARED, &s2) == NULL ? errno : 0, "EINVAL");
    errno = 0;
    printf("err_dir=%d %s\n", um_map_file("/tmp", UM_MAP_READ, &s2) == NULL ? errno : 0, "ENODEV");
    return 0;
}

/* The KernelPageSize of the mapping that holds p, in kB (0: not found). */
static long kernel_page_kb(const void *p) {
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512];
    long kb = 0;
    int in = 0;
    while (f && fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) in = (unsigned long)p >= lo && (unsigned long)p < hi;
        else if (in && sscanf(line, "KernelPageSize: %ld kB", &kb) == 1) break;
    }
    if (f) fclose(f);
    return in ? kb : 0;
}

static int hugefile(const char *dir) {
    void *(*um_map_file)(const char *, int, size_t *) = (void *(*)(const char *, int, size_t *))dlsym(RTLD_DEFAULT, "um_map_file");
    int (*um_unmap_file)(void *, size_t) = (int (*)(void *, size_t))dlsym(RTLD_DEFAULT, "um_unmap_file");
    if (!um_map_file || !um_unmap_file) { printf("umalloc=no\n"); return 1; }
    char path[512];
    snprintf(path, sizeof path, "%s/probe", dir);
    size_t size = (size_t)8 << 20;
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || ftruncate(fd, (off_t)size) != 0) { printf("create_errno=%d\n", errno); return 1; }
    unsigned char *w = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0); /* hugetlbfs: no write(2) */
    if (w == MAP_FAILED) { printf("create_errno=%d\n", errno); return 1; }
    for (size_t i = 0; i < size; i += 4096) w[i] = (unsigned char)(i >> 12);
    munmap(w, size);
    close(fd);
    size_t got = 0;
    const unsigned char *p = um_map_file(path, UM_MAP_READ | UM_MAP_HUGE | UM_MAP_PREFAULT, &got);
    if (!p) { printf("map_errno=%d\n", errno); unlink(path); return 1; }
    size_t bad = 0;
    for (size_t i = 0; i < size; i += 4096) bad += p[i] != (unsigned char)(i >> 12);
    printf("huge_map_size=%zu\nhuge_kernel_page_kb=%ld\nhuge_bad_bytes=%zu\n", got, kernel_page_kb(p), bad);
    printf("huge_unmap=%d\n", um_unmap_file((void *)p, got));
    unlink(path);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 3) { fprintf(stderr, "usage: hp_probe small|touch|lock|mapfile ARG\n"); return 2; }
    if (strcmp(argv[1], "small") == 0) return small((size_t)atol(argv[2]));
    if (strcmp(argv[1], "touch") == 0) return touch((size_t)atol(argv[2]));
    if (strcmp(argv[1], "lock") == 0) return lock((size_t)atol(argv[2]));
    if (strcmp(argv[1], "mapfile") == 0) return mapfile(argv[2]);
    if (strcmp(argv[1], "hugefile") == 0) return hugefile(argv[2]);
    return 2;
}
