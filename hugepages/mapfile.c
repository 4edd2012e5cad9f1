/* um_map_file / um_unmap_file (include/umalloc.h): a file mapped for a latency-critical reader,
 * prefaulted, locked, on huge pages where its file system has them. The mapping is the
 * program's, not the heap's: the statistics do not count it. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "base/base.h"
#include "os/os.h"
#include "os/sys.h"
#include "umalloc.h"

#ifndef HUGETLBFS_MAGIC
#define HUGETLBFS_MAGIC 0x958458f6
#endif
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#define HUGE_ALIGN ((size_t)2 << 20)

/* Reserve `len` bytes aligned to `align` (PROT_NONE), for the file to be mapped over. */
static uint8_t *reserve_aligned(size_t len, size_t align) {
    uint8_t *raw = umi_sys_mmap(NULL, len + align, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (raw == MAP_FAILED) return NULL;
    uint8_t *at = (uint8_t *)(((uintptr_t)raw + align - 1) & ~(uintptr_t)(align - 1));
    if (at > raw) umi_sys_munmap(raw, (size_t)(at - raw));
    size_t tail = (size_t)(raw + len + align - (at + len));
    if (tail) umi_sys_munmap(at + len, tail);
    return at;
}

static void *fail(int fd, void *p, size_t len, int err) {
    if (p != NULL) umi_sys_munmap(p, len);
    if (fd >= 0) close(fd);
    errno = err;
    return NULL;
}

UM_API void *um_map_file(const char *path, int flags, size_t *size) {
    int kind = flags & (UM_MAP_READ | UM_MAP_SHARED);
    if (path == NULL || size == NULL || (flags & ~0x1f) != 0 || (kind != UM_MAP_READ && kind != UM_MAP_SHARED)) {
        errno = EINVAL;
        return NULL;
    }
    bool shared = kind == UM_MAP_SHARED;
    int fd = open(path, (shared ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) return NULL; /* errno from open */
    struct stat st;
    if (fstat(fd, &st) != 0) return fail(fd, NULL, 0, errno);
    if (!S_ISREG(st.st_mode)) return fail(fd, NULL, 0, ENODEV);
    if (st.st_size <= 0) return fail(fd, NULL, 0, EINVAL);
    struct statfs fs;
    bool hugetlbfs = fstatfs(fd, &fs) == 0 && (unsigned long)fs.f_type == HUGETLBFS_MAGIC;
    size_t page = hugetlbfs ? (size_t)fs.f_bsize : umi_os_page_size();
    size_t len = ((size_t)st.st_size + page - 1) & ~(page - 1);
    /* A huge mapping starts on a 2 MiB boundary, or no page of it can be huge. A hugetlbfs
     * file is aligned by the kernel. */
    bool align = (flags & UM_MAP_HUGE) && !hugetlbfs && len >= HUGE_ALIGN;
    uint8_t *at = align ? reserve_aligned(len, HUGE_ALIGN) : NULL;
    if (align && at == NULL) return fail(fd, NULL, 0, ENOMEM);
    int prot = PROT_READ | (shared ? PROT_WRITE : 0);
    /* A private hugetlbfs mapping would reserve pool pages for copies on write, which a
     * read-only mapping never makes. */
    int noreserve = hugetlbfs && !shared ? MAP_NORESERVE : 0;
    void *p = umi_sys_mmap(at, len, prot, (shared ? MAP_SHARED : MAP_PRIVATE) | noreserve | (at ? MAP_FIXED : 0), fd, 0);
    if (p == MAP_FAILED) return fail(fd, at, len, errno);
    if (align) umi_sys_madvise(p, len, MADV_HUGEPAGE); /* advice: the file system may not do it */
    if (flags & UM_MAP_PREFAULT) {
        /* Page cache and page tables, now: reads after this do not fault. */
        if (umi_sys_madvise(p, len, MADV_POPULATE_READ) != 0) {
            if (errno == EFAULT || errno == EIO) return fail(fd, p, len, EIO); /* a hole past EOF, a read error */
            for (size_t off = 0; off < len; off += umi_os_page_size()) (void)((volatile uint8_t *)p)[off];
        }
    }
    if ((flags & UM_MAP_LOCK) && umi_sys_mlock2(p, len, 0) != 0) return fail(fd, p, len, errno);
    close(fd); /* the mapping keeps the file */
    *size = len;
    return p;
}

UM_API int um_unmap_file(void *p, size_t size) {
    if (p == NULL || size == 0 || ((uintptr_t)p & (umi_os_page_size() - 1)) != 0) { errno = EINVAL; return -1; }
    return umi_sys_munmap(p, size) == 0 ? 0 : -1;
}
