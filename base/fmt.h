/* umalloc: a tiny formatter and writer that never allocate and never touch stdio.
 *
 * For messages printed by the allocator itself (option warnings, UMALLOC_VERBOSE, UMALLOC_HELP,
 * statistics dumps): everything here works before libc is initialised, inside malloc, and in a
 * signal handler. No function keeps state between calls (no static or global data), so all of
 * them are reentrant and async-signal-safe; the writers only call write(2) and preserve errno.
 *
 * umi_fmt understands a subset of printf:
 *   conversions  %d %i %u %x %X %p %s %c %%
 *   length       l ll z t  (e.g. %zu %zd %lld %llu %lx %llx %zx)
 *   flags        '-' (left-justify), '0' (zero-pad numbers)
 *   width        digits or '*' (an int argument)
 *   precision    for %s only: '.' digits or '.*' (an int argument): print at most that many bytes
 * %p prints 0x followed by lowercase hex ("(nil)" for NULL, as glibc); %s of NULL prints "(null)".
 * Anything else is copied as is.
 */
#ifndef UM_FMT_H
#define UM_FMT_H

#include <stdarg.h>
#include <stddef.h>

/* Format into buf (cap bytes). Always NUL-terminates when cap > 0; output that does not fit is
 * cut. Returns the number of bytes written, not counting the NUL (so at most cap - 1): the
 * result can be passed to a writer as is. */
size_t umi_fmt(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
size_t umi_vfmt(char *buf, size_t cap, const char *fmt, va_list ap);

/* Write all n bytes to fd, retrying on EINTR and short writes; errno is preserved.
 * Returns 0, or -1 if a write failed (the rest is dropped). */
int umi_write_all(int fd, const char *s, size_t n);
/* umi_write_all to stderr (fd 2). */
void umi_write_err(const char *s, size_t n);
/* Format (into a 1024-byte buffer on the stack: longer output is cut) and write to fd in a
 * single write, so that lines from different threads do not interleave. Returns the bytes
 * written or -1. */
long umi_dprintf(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif /* UM_FMT_H */
