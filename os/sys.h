/* The system calls of the OS layer, one wrapper each: os/os.c and os/region.c call these and
 * nothing else, so that one place can make any of them fail.
 *
 * Test builds (UM_DEBUG) can fail each kind of call on demand (os/fault.c): the Nth call, every
 * call from the Nth on, or calls picked at random, so that tests drive every path that handles
 * a refusal. Elsewhere the wrappers are the bare calls. */
#ifndef UM_OS_SYS_H
#define UM_OS_SYS_H

#include <errno.h>
#include <stdbool.h>
#include <sys/mman.h>

/* The kinds of call that can be failed (the order of um_fault_stats_t's arrays). */
typedef enum um_sys_call_e { UM_SYS_MMAP, UM_SYS_MUNMAP, UM_SYS_MADVISE, UM_SYS_MREMAP, UM_SYS_MPROTECT, UM_SYS_MLOCK, UM_SYS_COUNT } um_sys_call_t;

#if defined(UM_DEBUG) && UM_DEBUG
bool umi_fault_now(um_sys_call_t call); /* counts the call; true: fail it */
#else
static inline bool umi_fault_now(um_sys_call_t call) { (void)call; return false; }
#endif

/* The errno each kind of call sets when the kernel refuses it for want of memory (or, for
 * madvise, of a free lock: EAGAIN). */
static inline void *umi_sys_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
    if (umi_fault_now(UM_SYS_MMAP)) { errno = ENOMEM; return MAP_FAILED; }
    return mmap(addr, len, prot, flags, fd, off);
}
static inline int umi_sys_munmap(void *addr, size_t len) {
    if (umi_fault_now(UM_SYS_MUNMAP)) { errno = ENOMEM; return -1; }
    return munmap(addr, len);
}
static inline int umi_sys_madvise(void *addr, size_t len, int advice) {
    if (umi_fault_now(UM_SYS_MADVISE)) { errno = EAGAIN; return -1; }
    return madvise(addr, len, advice);
}
static inline void *umi_sys_mremap(void *old, size_t old_len, size_t new_len, int flags, void *new_addr) {
    if (umi_fault_now(UM_SYS_MREMAP)) { errno = ENOMEM; return MAP_FAILED; }
    return mremap(old, old_len, new_len, flags, new_addr);
}
static inline int umi_sys_mprotect(void *addr, size_t len, int prot) {
    if (umi_fault_now(UM_SYS_MPROTECT)) { errno = ENOMEM; return -1; }
    return mprotect(addr, len, prot);
}
/* mlock2 (flags 0 or MLOCK_ONFAULT); a refusal over RLIMIT_MEMLOCK is ENOMEM (or EAGAIN). */
static inline int umi_sys_mlock2(const void *addr, size_t len, unsigned flags) {
    if (umi_fault_now(UM_SYS_MLOCK)) { errno = ENOMEM; return -1; }
    return mlock2(addr, len, flags);
}

#endif
