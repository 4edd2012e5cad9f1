/* Messages to stderr, with no stdio and no malloc: they are printed from inside free(). */
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "hugepages/os.h"
#include "stats/stats.h"

static size_t put_str(char *buf, size_t at, size_t cap, const char *s) {
    while (*s && at < cap) buf[at++] = *s++;
    return at;
}

static size_t put_hex(char *buf, size_t at, size_t cap, uintptr_t v) {
    char tmp[2 + 16];
    size_t n = 0;
    do { tmp[n++] = "0123456789abcdef"[v & 15]; v >>= 4; } while (v && n < 16);
    at = put_str(buf, at, cap, "0x");
    while (n > 0 && at < cap) buf[at++] = tmp[--n];
    return at;
}

void _x_warn_ptr(const char *what, const void *p) {
    _x_stats_invalid();
    char buf[256];
    size_t n = put_str(buf, 0, sizeof buf - 1, "umalloc: ");
    n = put_str(buf, n, sizeof buf - 1, what);
    n = put_str(buf, n, sizeof buf - 1, " ");
    n = put_hex(buf, n, sizeof buf - 1, (uintptr_t)p);
    n = put_str(buf, n, sizeof buf - 1, ": ignored, the heap is left as it was\n");
    _x_os_write_err(buf, n);
}

void _x_fatal(const char *file, int line, const char *what) {
    char buf[512], num[16];
    size_t k = 0;
    unsigned v = (unsigned)line;
    do { num[k++] = (char)('0' + v % 10); v /= 10; } while (v && k < sizeof num);
    size_t n = put_str(buf, 0, sizeof buf - 1, "umalloc: heap corruption detected (");
    n = put_str(buf, n, sizeof buf - 1, what);
    n = put_str(buf, n, sizeof buf - 1, ") at ");
    n = put_str(buf, n, sizeof buf - 1, file);
    n = put_str(buf, n, sizeof buf - 1, ":");
    while (k > 0 && n < sizeof buf - 1) buf[n++] = num[--k];
    buf[n++] = '\n';
    _x_os_write_err(buf, n);
    abort();
}
