/* preload_bss: run under LD_PRELOAD=libumalloc.so. The library faults in the pages of its .bss
 * that every process writes (its small variables and the first heap structure) with one system
 * call as it is loaded (preload/start.c), and its first malloc then finds them resident: it
 * takes no page fault in the library's .bss and makes no page of it resident that was not. A
 * page fault costs a short process more than the call that faults in several pages at once.
 *
 * Before any malloc (umalloc's 1 TiB reservation not yet in /proc/self/maps), the program
 * records which pages of the library's .bss (the anonymous part of its writable segment, found
 * with dl_iterate_phdr) are resident (/proc/self/pagemap), calls malloc once, and looks again.
 * Prints "bss pages: N resident before the first malloc, M made resident by it".
 * Exit status: 0 M is 0 and N at least 3 (the first heap is 3 pages); 1 otherwise; 77 the
 * check does not apply here (umalloc started before main, no MADV_POPULATE_WRITE in this
 * kernel, no pagemap), with the reason on stderr. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "started.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#define PAGE 4096ul
#define MAX_PAGES 1024

static uintptr_t bss_lo, bss_hi; /* the library's .bss, whole pages past its file-backed data */

static void say(int fd, const char *s) {
    ssize_t r = write(fd, s, strlen(s));
    (void)r;
}

static int find_bss(struct dl_phdr_info *info, size_t size, void *arg) {
    (void)size;
    (void)arg;
    if (info->dlpi_name == NULL || strstr(info->dlpi_name, "libumalloc") == NULL) return 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || ph->p_memsz <= ph->p_filesz) continue;
        uintptr_t file_end = info->dlpi_addr + ph->p_vaddr + ph->p_filesz;
        bss_lo = (file_end + PAGE - 1) & ~(PAGE - 1);
        bss_hi = (info->dlpi_addr + ph->p_vaddr + ph->p_memsz + PAGE - 1) & ~(PAGE - 1);
    }
    return 1;
}

/* Which of the first MAX_PAGES pages of the .bss are resident: 1 byte each. */
static int resident(uint8_t *out, size_t pages) {
    int fd = open("/proc/self/pagemap", O_RDONLY);
    if (fd < 0) return -1;
    static uint64_t entries[MAX_PAGES];
    ssize_t r = pread(fd, entries, pages * 8, (off_t)(bss_lo / PAGE * 8));
    close(fd);
    if (r != (ssize_t)(pages * 8)) return -1;
    for (size_t i = 0; i < pages; i++) out[i] = (uint8_t)(entries[i] >> 63);
    return 0;
}

int main(void) {
    int (*owns)(const void *) = (int (*)(const void *))dlsym(RTLD_DEFAULT, "um_owns");
    if (owns == NULL) {
        say(2, "preload_bss: um_owns not found: not running under libumalloc.so\n");
        return 1;
    }
    int started = umalloc_started();
    if (started != 0) {
        say(2, started < 0 ? "preload_bss: cannot read /proc/self/maps: not applicable\n"
                           : "preload_bss: umalloc started before main: not applicable\n");
        return 77;
    }
    void *probe = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (probe == MAP_FAILED || madvise(probe, PAGE, MADV_POPULATE_WRITE) != 0) {
        say(2, "preload_bss: no MADV_POPULATE_WRITE in this kernel (before 5.14): not applicable\n");
        return 77;
    }
    munmap(probe, PAGE);
    dl_iterate_phdr(find_bss, NULL);
    if (bss_hi <= bss_lo) {
        say(2, "preload_bss: FAIL: found no .bss of libumalloc.so\n");
        return 1;
    }
    size_t pages = (bss_hi - bss_lo) / PAGE;
    if (pages > MAX_PAGES) pages = MAX_PAGES;
    static uint8_t before[MAX_PAGES], after[MAX_PAGES];
    if (resident(before, pages) != 0) {
        say(2, "preload_bss: cannot read /proc/self/pagemap: not applicable\n");
        return 77;
    }

    char *volatile p = malloc(100);
    if (p == NULL || !owns(p)) {
        say(2, "preload_bss: FAIL: malloc(100) did not return a block of umalloc's\n");
        return 1;
    }
    memset(p, 1, 100);
    free(p);
    if (resident(after, pages) != 0) return 1;

    int n_before = 0, n_new = 0;
    char line[256], *w = line;
    for (size_t i = 0; i < pages; i++) {
        n_before += before[i];
        if (after[i] && !before[i]) {
            n_new++;
            if (w < line + sizeof line - 32) w += snprintf(w, (size_t)(line + sizeof line - w), " +%#zx", i * PAGE);
        }
    }
    char out[512];
    snprintf(out, sizeof out, "preload_bss: bss pages: %d resident before the first malloc, %d made resident by it%s\n",
             n_before, n_new, n_new ? line : "");
    say(1, out);
    return n_new == 0 && n_before >= 3 ? 0 : 1;
}
