/* umalloc: a tiny printf subset into a caller's buffer, and write(2) helpers. See base/fmt.h.
 * No malloc, no stdio, no static or global data: reentrant and async-signal-safe. */
#include "base/fmt.h"
#include "base/io.h"

#include <errno.h>
#include <stdint.h>
#include <unistd.h>

typedef struct {
    char *buf;
    size_t cap; /* usable bytes, NUL excluded */
    size_t len;
} um_out;

static inline void out_c(um_out *o, char c) {
    if (o->len < o->cap) o->buf[o->len++] = c;
}

static void out_pad(um_out *o, char c, long n) {
    while (n-- > 0) out_c(o, c);
}

/* Print s (n bytes) padded to width. */
static void out_field(um_out *o, const char *s, size_t n, int width, int left) {
    long pad = (width > 0 && (size_t)width > n) ? (long)((size_t)width - n) : 0;
    if (!left) out_pad(o, ' ', pad);
    for (size_t i = 0; i < n; i++) out_c(o, s[i]);
    if (left) out_pad(o, ' ', pad);
}

/* Print an unsigned number in base 10 or 16, with an optional sign or 0x prefix. */
static void out_num(um_out *o, unsigned long long v, unsigned base, int upper, int negative,
                    const char *prefix, int width, int left, int zero) {
    char tmp[24];
    size_t n = 0;
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    do {
        tmp[n++] = digits[v % base];
        v /= base;
    } while (v != 0);
    size_t plen = 0;
    while (prefix && prefix[plen]) plen++;
    size_t total = n + plen + (negative ? 1 : 0);
    long pad = (width > 0 && (size_t)width > total) ? (long)((size_t)width - total) : 0;
    if (!left && !zero) out_pad(o, ' ', pad);
    if (negative) out_c(o, '-');
    for (size_t i = 0; i < plen; i++) out_c(o, prefix[i]);
    if (!left && zero) out_pad(o, '0', pad);
    while (n > 0) out_c(o, tmp[--n]);
    if (left) out_pad(o, ' ', pad);
}

size_t umi_vfmt(char *buf, size_t cap, const char *fmt, va_list ap) {
    if (buf == NULL || cap == 0) return 0;
    um_out o = {buf, cap - 1, 0};
    for (const char *f = fmt; *f; f++) {
        if (*f != '%') {
            out_c(&o, *f);
            continue;
        }
        const char *start = f++;
        int left = 0, zero = 0, width = 0, prec = -1;
        for (;; f++) {
            if (*f == '-') left = 1;
            else if (*f == '0') zero = 1;
            else break;
        }
        if (*f == '*') {
            width = va_arg(ap, int);
            if (width < 0) {
                left = 1;
                width = -width;
            }
            f++;
        } else {
            while (*f >= '0' && *f <= '9') width = width * 10 + (*f++ - '0');
        }
        if (*f == '.') {
            f++;
            prec = 0;
            if (*f == '*') {
                prec = va_arg(ap, int);
                f++;
            } else {
                while (*f >= '0' && *f <= '9') prec = prec * 10 + (*f++ - '0');
            }
        }
        int lng = 0; /* 0 int, 1 long, 2 long long, 3 size_t, 4 ptrdiff_t */
        if (*f == 'l') {
            lng = 1;
            f++;
            if (*f == 'l') {
                lng = 2;
                f++;
            }
        } else if (*f == 'z') {
            lng = 3;
            f++;
        } else if (*f == 't') {
            lng = 4;
            f++;
        }
        switch (*f) {
        case 'd':
        case 'i': {
            long long v;
            if (lng == 0) v = va_arg(ap, int);
            else if (lng == 1) v = va_arg(ap, long);
            else if (lng == 2) v = va_arg(ap, long long);
            else if (lng == 3) v = (long long)va_arg(ap, size_t); /* %zd: ssize_t */
            else v = va_arg(ap, ptrdiff_t);
            unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
            out_num(&o, u, 10, 0, v < 0, NULL, width, left, zero);
            break;
        }
        case 'u':
        case 'x':
        case 'X': {
            unsigned long long v;
            if (lng == 0) v = va_arg(ap, unsigned);
            else if (lng == 1) v = va_arg(ap, unsigned long);
            else if (lng == 2) v = va_arg(ap, unsigned long long);
            else if (lng == 3) v = va_arg(ap, size_t);
            else v = (unsigned long long)va_arg(ap, ptrdiff_t);
            out_num(&o, v, *f == 'u' ? 10 : 16, *f == 'X', 0, NULL, width, left, zero);
            break;
        }
        case 'p': {
            void *p = va_arg(ap, void *);
            if (p == NULL) out_field(&o, "(nil)", 5, width, left);
            else out_num(&o, (uintptr_t)p, 16, 0, 0, "0x", width, left, zero);
            break;
        }
        case 's': {
            const char *s = va_arg(ap, const char *);
            if (s == NULL) s = "(null)";
            size_t n = 0;
            while ((prec < 0 || n < (size_t)prec) && s[n]) n++;
            out_field(&o, s, n, width, left);
            break;
        }
        case 'c': {
            char c = (char)va_arg(ap, int);
            out_field(&o, &c, 1, width, left);
            break;
        }
        case '%':
            out_c(&o, '%');
            break;
        default:
            /* Unknown conversion (or the format ended): copy it as is. */
            for (const char *c = start; c <= f && *c; c++) out_c(&o, *c);
            if (*f == '\0') f--;
            break;
        }
    }
    o.buf[o.len] = '\0';
    return o.len;
}

size_t umi_fmt(char *buf, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    size_t n = umi_vfmt(buf, cap, fmt, ap);
    va_end(ap);
    return n;
}

int umi_write_all(int fd, const char *s, size_t n) {
    int saved = errno;
    int rc = 0;
    while (n > 0) {
        ssize_t w = umi_io_write(fd, s, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            rc = -1;
            break;
        }
        if (w == 0) {
            rc = -1;
            break;
        }
        s += w;
        n -= (size_t)w;
    }
    errno = saved;
    return rc;
}

void umi_write_err(const char *s, size_t n) {
    (void)umi_write_all(2, s, n);
}

long umi_dprintf(int fd, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    size_t n = umi_vfmt(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return umi_write_all(fd, buf, n) == 0 ? (long)n : -1;
}
