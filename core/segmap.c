/* The segment map: which 4 MiB units of the address space are ours, and how. */
#include "core/internal.h"

UM_BIG_BSS _Atomic uint8_t umi_segmap[UM_SEGMAP_ENTRIES];

void umi_segmap_set(void *start, size_t size, unsigned first_kind) {
    uintptr_t first = (uintptr_t)start >> UM_SEGMENT_SHIFT;
    uintptr_t last = ((uintptr_t)start + size - 1) >> UM_SEGMENT_SHIFT;
    for (uintptr_t i = first + 1; i <= last; i++) atomic_store_explicit(&umi_segmap[i], UM_MAP_INTERIOR, UM_RELAXED);
    atomic_store_explicit(&umi_segmap[first], (uint8_t)first_kind, memory_order_release);
}

void umi_segmap_clear(void *start, size_t size) {
    uintptr_t first = (uintptr_t)start >> UM_SEGMENT_SHIFT;
    uintptr_t last = ((uintptr_t)start + size - 1) >> UM_SEGMENT_SHIFT;
    for (uintptr_t i = first; i <= last; i++) atomic_store_explicit(&umi_segmap[i], UM_MAP_NONE, UM_RELAXED);
}
