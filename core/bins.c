/* The size-class table of umi_bin_of_mid, built by the compiler from umi_bin_of's arithmetic. */
#include "core/internal.h"

/* umi_bin_of of the size 128 * i, as a constant expression, for i from 9 (1152 bytes) up */
#define UM_BIN_W(i) ((size_t)(i) * 128 - 1)
#define UM_BIN_B(i) (63u - (unsigned)__builtin_clzl(UM_BIN_W(i)))
#define UM_BIN_E(i) ((UM_BIN_W(i) >> (UM_BIN_B(i) - 3u)) & 7u)
#define UM_BIN_AT(i) ((i) < 9 ? 0 : UM_BIN_B(i) < UM_FINE_SHIFT ? 8u * (UM_BIN_B(i) - 6u) + UM_BIN_E(i) + 1u \
                                   : UM_BIN_FINE_LAST + 4u * (UM_BIN_B(i) - UM_FINE_SHIFT) + (UM_BIN_E(i) >> 1) + 1u)
#define UM_BIN_4(i) UM_BIN_AT(i), UM_BIN_AT(i + 1), UM_BIN_AT(i + 2), UM_BIN_AT(i + 3)
#define UM_BIN_16(i) UM_BIN_4(i), UM_BIN_4(i + 4), UM_BIN_4(i + 8), UM_BIN_4(i + 12)
#define UM_BIN_64(i) UM_BIN_16(i), UM_BIN_16(i + 16), UM_BIN_16(i + 32), UM_BIN_16(i + 48)
#define UM_BIN_256(i) UM_BIN_64(i), UM_BIN_64(i + 64), UM_BIN_64(i + 128), UM_BIN_64(i + 192)

_Static_assert(UM_BIN_TABLE_MAX / 128 == 512, "the table below has 513 entries");
const uint8_t umi_bin_by_128[UM_BIN_TABLE_MAX / 128 + 1] = {UM_BIN_256(0), UM_BIN_256(256), UM_BIN_AT(512)};
