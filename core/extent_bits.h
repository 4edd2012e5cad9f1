/* The extent segments' page maps (um_extent_map_t): bit operations on maps of
 * UM_EXTENT_PAGES bits, for core/extent.c alone. */
#ifndef UM_EXTENT_BITS_H
#define UM_EXTENT_BITS_H

#include "core/internal.h"

/* Written under the arena's lock, read by the statistics and um_owns without it: every store
 * is an atomic (relaxed) one, so those racy reads are well defined. */
static inline bool bit_get(const uint64_t *m, size_t i) { return UM_SHARED_READ(m[i >> 6]) >> (i & 63) & 1; }

/* The set bits of x, inline: the baseline x86-64 has no popcnt instruction, and the builtin
 * then calls libgcc's, a tenth of the instructions of a program that takes and gives back big
 * blocks in a loop. */
static inline size_t bits_count(uint64_t x) {
    x = x - ((x >> 1) & 0x5555555555555555u);
    x = (x & 0x3333333333333333u) + ((x >> 2) & 0x3333333333333333u);
    x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0fu;
    return (size_t)((x * 0x0101010101010101u) >> 56);
}

/* The bits [from, from + n) of m: set (set = true) or cleared; returns how many changed. */
static inline size_t bits_put(uint64_t *m, size_t from, size_t n, bool set) {
    size_t changed = 0;
    while (n != 0) {
        size_t w = from >> 6, b = from & 63, k = 64 - b < n ? 64 - b : n;
        uint64_t mask = (k == 64 ? ~(uint64_t)0 : (((uint64_t)1 << k) - 1)) << b;
        uint64_t old = m[w], now = set ? old | mask : old & ~mask, diff = old ^ now;
        changed += diff == 0 ? 0 : diff == mask ? k : bits_count(diff); /* mostly none or all of them */
        if (now != old) UM_SHARED_WRITE(m[w], now);
        from += k;
        n -= k;
    }
    return changed;
}

/* Bits [from, from + n) of m, as a 128-bit mask in out[0..1] (n <= 128), a word at a time. */
static inline void bits_copy(const uint64_t *m, size_t from, size_t n, uint64_t out[2]) {
    out[0] = out[1] = 0;
    for (size_t j = 0; j < n; j += 64) {
        size_t at = from + j, w = at >> 6, b = at & 63, k = n - j < 64 ? n - j : 64;
        uint64_t v = m[w] >> b;
        if (b != 0 && b + k > 64) v |= m[w + 1] << (64 - b); /* the rest from the next word */
        out[j >> 6] = k == 64 ? v : v & (((uint64_t)1 << k) - 1);
    }
}

/* The first bit in [from, limit) that is set (want = true) or clear in m, or limit (at most
 * UM_EXTENT_END_PAGE) when there is none: a search for a run of n pages looks no further than
 * n pages, however long the free run it is in. */
static inline size_t bit_next_before(const uint64_t *m, size_t from, bool want, size_t limit) {
    if (limit > UM_EXTENT_END_PAGE) limit = UM_EXTENT_END_PAGE;
    while (from < limit) {
        uint64_t w = (want ? m[from >> 6] : ~m[from >> 6]) >> (from & 63);
        if (w != 0) {
            size_t at = from + (size_t)__builtin_ctzll(w);
            return at < limit ? at : limit;
        }
        from = (from | 63) + 1;
    }
    return limit;
}

/* The first bit at or after `from` that is set (want = true) or clear in m, or UM_EXTENT_END_PAGE. */
static inline size_t bit_next(const uint64_t *m, size_t from, bool want) { return bit_next_before(m, from, want, UM_EXTENT_END_PAGE); }

/* The first bit below `from` that is clear in m, + 1: where the run of set bits that ends at
 * `from` starts (UM_EXTENT_FIRST_PAGE at the least: the header's pages are never free). */
static inline size_t run_start(const uint64_t *m, size_t from) {
    while (from > UM_EXTENT_FIRST_PAGE) {
        size_t w = (from - 1) >> 6, b = (from - 1) & 63;
        uint64_t clear = ~m[w] & (b == 63 ? ~(uint64_t)0 : (((uint64_t)1 << (b + 1)) - 1));
        if (clear != 0) {
            size_t at = (w << 6) + 63 - (size_t)__builtin_clzll(clear) + 1;
            return at > UM_EXTENT_FIRST_PAGE ? at : UM_EXTENT_FIRST_PAGE;
        }
        from = w << 6;
    }
    return UM_EXTENT_FIRST_PAGE;
}

#endif /* UM_EXTENT_BITS_H */
