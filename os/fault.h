/* Fault injection (test builds only, UM_DEBUG): make the OS layer's system calls fail, to drive
 * every path that handles a refusal (test/unit_faults.c). One plan at a time, process-wide. */
#ifndef UM_OS_FAULT_H
#define UM_OS_FAULT_H

#include <stddef.h>
#include <stdint.h>

#include "os/sys.h"

typedef enum um_fault_mode_e {
    UM_FAULT_OFF,    /* every call goes through */
    UM_FAULT_NTH,    /* the nth call of the kind (counting from 0 when armed) fails, only it */
    UM_FAULT_FROM,   /* every call of the kind from the nth on fails */
    UM_FAULT_RANDOM, /* each call of any kind fails with probability ppm / 10^6, picked from the seed */
} um_fault_mode_t;

typedef struct um_fault_stats_s {
    uint64_t calls[UM_SYS_COUNT];  /* calls seen since armed */
    uint64_t failed[UM_SYS_COUNT]; /* of them, failed on purpose */
} um_fault_stats_t;

/* Arm a plan (resetting the counts). For NTH and FROM, `call` is the kind; `n` the index. For
 * RANDOM, `call` is ignored, `n` is the probability in parts per million, `seed` picks which
 * calls fail (the same seed fails the same calls of the same run). */
void umi_fault_arm(um_fault_mode_t mode, um_sys_call_t call, uint64_t n, uint64_t seed);
/* Stop failing; returns what happened since armed. */
um_fault_stats_t umi_fault_disarm(void);
/* Calls of the kind seen since armed (0 when no plan is armed). */
uint64_t umi_fault_calls(um_sys_call_t call);
/* The name of a kind ("mmap"...), for messages. */
const char *umi_fault_call_name(um_sys_call_t call);

#endif
