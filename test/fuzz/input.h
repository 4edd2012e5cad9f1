/* Decoding test/fuzz/fuzz_api.c's input: bytes, sizes from every range of the allocator, sizes
 * that cannot be allocated, alignments. Reading past the end gives zeros, so every input is a
 * valid program. Included once, by fuzz_api.c. */
#ifndef FUZZ_INPUT_H
#define FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>

#include "shadow.h"

static size_t last_size; /* a size can repeat the one before, to fill a page of one class */

typedef struct {
    const uint8_t *d;
    size_t n, i;
} fz_in_t;

static unsigned in8(fz_in_t *in) { return in->i < in->n ? in->d[in->i++] : 0; }
static unsigned in16(fz_in_t *in) { return in8(in) | in8(in) << 8; }

/* A size that must succeed, from every range: sel picks the range, v the size in it. */
static size_t in_size(fz_in_t *in)
{
    static const size_t edges[8] = {16, 128, 1024, 8 * FZ_KiB, 64 * FZ_KiB, 512 * FZ_KiB, 2 * FZ_MiB, 4 * FZ_MiB};
    unsigned sel = in8(in), v = in16(in);
    size_t s;
    /* Out of 32: mapped blocks of MiBs (each page written costs a fault) 1 each, the rest the
     * pooled classes. */
    switch (sel % 32) {
    case 0: case 1: case 2: case 3: case 4: case 5: s = v % 129; break;       /* tiny */
    case 6: case 7: case 8: case 9: s = v % 1025; break;
    case 10: case 11: case 12: case 13: s = v % (8 * FZ_KiB + 1); break;       /* small classes */
    case 14: case 15: case 16: s = 8 * FZ_KiB + v % (56 * FZ_KiB + 1); break;  /* medium */
    case 17: case 18: s = 64 * FZ_KiB + (size_t)v * 7; break;                 /* large: to 512 KiB */
    case 19: case 20: case 21: { /* class and mapping thresholds, +- 128 */
        int d = (int8_t)(v & 0xff);
        s = edges[v >> 13];
        s = d < 0 && (size_t)-d > s ? 0 : s + (size_t)(ptrdiff_t)d;
        break;
    }
    case 22: s = 512 * FZ_KiB + (size_t)v * 56; break;                        /* mapped: to 4 MiB */
    case 23: s = 4 * FZ_MiB + (size_t)(v & 0x3fff) * 256; break;              /* a few MiB: to 8 MiB */
    case 24: case 25: case 26: case 27: s = last_size; break;                  /* the same again */
    default: s = (size_t)(v % 64) * 16; break;                                /* exact multiples of 16 */
    }
    return last_size = s;
}

/* A size that cannot be allocated: near SIZE_MAX, over 2^62, or beyond any address space. */
static size_t in_impossible(fz_in_t *in)
{
    unsigned sel = in8(in), v = in16(in);
    switch (sel % 5) {
    case 0: return SIZE_MAX - v;
    case 1: return ((size_t)1 << 62) + 1 + v;
    case 2: return (size_t)1 << (58 + sel / 5 % 6);
    case 3: return SIZE_MAX / 2 + 1 + v;
    default: return (size_t)PTRDIFF_MAX - v;
    }
}

/* A valid alignment: 1 .. 4 MiB, powers of two, small ones more often. */
static size_t in_align(fz_in_t *in)
{
    unsigned v = in8(in);
    return (size_t)1 << (v < 128 ? v % 8 : v % 23);
}

#endif /* FUZZ_INPUT_H */
