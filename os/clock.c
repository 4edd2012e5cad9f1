/* The clock and the CPU count without libc's wrappers.
 *
 * Why: the kernel maps a file's text 64 KiB at a time around the page that faults
 * (fault-around), so the first call of a libc function whose code lies away from everything
 * else the process ran costs a page fault and up to 64 KiB of RSS. A thread-per-request server
 * or a short command pays that on every process for clock_gettime's wrapper and for
 * sched_getaffinity, which nothing else in a small process calls: together 128 KiB of a
 * 2 MiB process. So the clock comes straight from the vDSO, the code the kernel maps into
 * every process (found once, in its ELF symbol table: getauxval(AT_SYSINFO_EHDR)), and the CPU
 * count from the raw system call. If the vDSO is missing or has no such symbol, the libc call
 * is used. */
#include <elf.h>
#include <stdatomic.h>
#include <sched.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "os/os.h"

typedef int (*um_clock_fn)(clockid_t, struct timespec *);

/* strcmp(a, b) == 0 without libc's (its code may lie in a 64 KiB of text of its own: see above) */
static bool same(const char *a, const char *b) {
    while (*a != '\0' && *a == *b) a++, b++;
    return *a == *b;
}

/* The vDSO's clock_gettime (__vdso_clock_gettime on x86-64, __kernel_clock_gettime on arm64),
 * found through its DT_HASH table (the kernel builds the vDSO with both hash styles; musl looks
 * it up the same way). NULL when there is none. */
static um_clock_fn vdso_lookup(void) {
#if __SIZEOF_POINTER__ != 8
    return NULL; /* the walk reads 64-bit ELF */
#else
    uintptr_t base = (uintptr_t)getauxval(AT_SYSINFO_EHDR);
    if (base == 0) return NULL;
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)base;
    if (eh->e_ident[EI_MAG0] != ELFMAG0 || eh->e_ident[EI_MAG1] != ELFMAG1 || eh->e_ident[EI_MAG2] != ELFMAG2 ||
        eh->e_ident[EI_MAG3] != ELFMAG3 || eh->e_ident[EI_CLASS] != ELFCLASS64)
        return NULL;
    const Elf64_Phdr *ph = (const Elf64_Phdr *)(base + eh->e_phoff);
    const Elf64_Dyn *dyn = NULL;
    uintptr_t bias = 0;
    bool loaded = false;
    for (size_t i = 0; i < eh->e_phnum; i++) {
        if (ph[i].p_type == PT_LOAD && !loaded) { bias = base + ph[i].p_offset - ph[i].p_vaddr; loaded = true; }
        if (ph[i].p_type == PT_DYNAMIC) dyn = (const Elf64_Dyn *)(base + ph[i].p_offset);
    }
    if (dyn == NULL || !loaded) return NULL;
    const Elf64_Sym *syms = NULL;
    const char *strs = NULL;
    const Elf32_Word *hash = NULL;
    for (; dyn->d_tag != DT_NULL; dyn++) {
        if (dyn->d_tag == DT_SYMTAB) syms = (const Elf64_Sym *)(bias + dyn->d_un.d_ptr);
        if (dyn->d_tag == DT_STRTAB) strs = (const char *)(bias + dyn->d_un.d_ptr);
        if (dyn->d_tag == DT_HASH) hash = (const Elf32_Word *)(bias + dyn->d_un.d_ptr);
    }
    if (syms == NULL || strs == NULL || hash == NULL) return NULL;
    for (Elf32_Word i = 0; i < hash[1]; i++) { /* hash[1]: the number of symbols */
        const Elf64_Sym *s = &syms[i];
        if (ELF64_ST_TYPE(s->st_info) != STT_FUNC || s->st_shndx == SHN_UNDEF) continue;
        const char *name = strs + s->st_name;
        if (same(name, "__vdso_clock_gettime") || same(name, "__kernel_clock_gettime"))
            return (um_clock_fn)(bias + s->st_value);
    }
    return NULL;
#endif
}

/* Looked up at the first read; two threads that race to it find the same function. */
static _Atomic(um_clock_fn) clock_fn;

static um_clock_fn clock_get(void) {
    um_clock_fn fn = atomic_load_explicit(&clock_fn, memory_order_relaxed);
    if (fn != NULL) return fn;
    fn = vdso_lookup();
    if (fn == NULL) fn = clock_gettime;
    atomic_store_explicit(&clock_fn, fn, memory_order_relaxed);
    return fn;
}

uint64_t umi_os_now_ms(void) {
    struct timespec ts;
    /* the coarse clock: the vDSO reads it from the data page the kernel updates at each tick,
     * no system call, no TSC read; millisecond resolution is all the delays need */
    if (clock_get()(CLOCK_MONOTONIC_COARSE, &ts) != 0) return 0;
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

bool umi_os_clock_from_vdso(void) { return clock_get() != clock_gettime; }

unsigned umi_os_cpu_count(void) {
    uint64_t mask[CPU_SETSIZE / 64] = {0}; /* as many CPUs as glibc's cpu_set_t holds */
    long bytes = syscall(SYS_sched_getaffinity, 0, sizeof mask, mask); /* the bytes it wrote */
    if (bytes <= 0) return 1;
    size_t words = (size_t)bytes / sizeof mask[0];
    unsigned n = 0;
    for (size_t i = 0; i < words && i < CPU_SETSIZE / 64; i++) n += (unsigned)__builtin_popcountll(mask[i]);
    return n != 0 ? n : 1;
}
