/* The heap checker (core/check.c): um_check_heap() and UMALLOC_CHECK=1. */
#ifndef UM_CHECK_H
#define UM_CHECK_H

#include <stdbool.h>
#include <stddef.h>

#include "core/internal.h"

/* Verify the invariants of the calling thread's heap and, with quiet_program, of every heap,
 * segment and shared list (no other thread may allocate or free meanwhile: their heaps would
 * change under the walk). Prints one line per broken invariant; returns how many there were. */
size_t umi_check_heap(bool quiet_program);

/* UMALLOC_CHECK=1: umi_check_heap, and abort() after printing if anything is broken. */
extern bool umi_check_enabled;
void umi_check_or_abort(bool quiet_program);

#endif
