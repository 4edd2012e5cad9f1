/* File I/O for umalloc's own messages, options and dumps: the raw system calls, never a
 * cancellation point.
 *
 * libc's open, read, write, close and nanosleep are cancellation points: a thread with a
 * cancel pending (pthread_cancel, deferred) is unwound at the first of them it calls. umalloc
 * calls them inside malloc and free (a report of a bad free, a deferred statistics dump at a
 * safe point, the options read by the first allocation) and in its statistics signal handler;
 * unwound there, a free would stop half done and a dump would leave its busy flag set, so that
 * no later dump in the process is ever made. glibc's own malloc uses its internal
 * non-cancelling calls for the same reason; syscall(2) is not a cancellation point.
 * Each returns what the system call returns, -1 with errno set on failure. */
#ifndef UM_BASE_IO_H
#define UM_BASE_IO_H

#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

static inline int umi_io_open(const char *path, int flags, mode_t mode) {
    return (int)syscall(SYS_openat, AT_FDCWD, path, flags, mode);
}
static inline ssize_t umi_io_read(int fd, void *buf, size_t n) { return (ssize_t)syscall(SYS_read, fd, buf, n); }
static inline ssize_t umi_io_write(int fd, const void *buf, size_t n) {
    return (ssize_t)syscall(SYS_write, fd, buf, n);
}
static inline int umi_io_close(int fd) { return (int)syscall(SYS_close, fd); }
static inline int umi_io_nanosleep(const struct timespec *t) { return (int)syscall(SYS_nanosleep, t, NULL); }

#endif
