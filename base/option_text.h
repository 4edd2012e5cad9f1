/* umalloc: tiny string helpers shared by base/options.c and base/option_values.c (private to
 * those two files). No libc: nothing here may depend on libc being initialised. */
#ifndef UM_OPTION_TEXT_H
#define UM_OPTION_TEXT_H

#include <stddef.h>

static inline size_t o_strlen(const char *s) {
    size_t n = 0;
    while (s[n]) n++;
    return n;
}

static inline char o_lower(char c) {
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* a (n bytes) equals the NUL-terminated b, ignoring ASCII case. */
static inline int o_ieq(const char *a, size_t n, const char *b) {
    size_t i = 0;
    for (; i < n; i++) {
        if (b[i] == '\0' || o_lower(a[i]) != o_lower(b[i])) return 0;
    }
    return b[i] == '\0';
}

#endif /* UM_OPTION_TEXT_H */
