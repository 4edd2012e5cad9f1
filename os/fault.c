/* Fault injection (see os/fault.h). Only in test builds: elsewhere os/sys.h's wrappers never
 * ask. The plan is read with relaxed atomics on every system call of the OS layer, which costs
 * nothing next to the call. */
#include "os/fault.h"

#include <stdatomic.h>

#if defined(UM_DEBUG) && UM_DEBUG

static _Atomic int plan_mode;       /* um_fault_mode_t */
static _Atomic int plan_call;       /* um_sys_call_t */
static _Atomic uint64_t plan_n, plan_seed;
static _Atomic uint64_t calls[UM_SYS_COUNT], failed[UM_SYS_COUNT], random_index;

static uint64_t mix(uint64_t x) { /* splitmix64's finaliser: index -> independent-looking bits */
    x += 0x9e3779b97f4a7c15u;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
    return x ^ (x >> 31);
}

bool umi_fault_now(um_sys_call_t call) {
    int mode = atomic_load_explicit(&plan_mode, memory_order_acquire);
    if (mode == UM_FAULT_OFF) return false;
    uint64_t i = atomic_fetch_add_explicit(&calls[call], 1, memory_order_relaxed);
    bool fail;
    if (mode == UM_FAULT_RANDOM) {
        uint64_t k = atomic_fetch_add_explicit(&random_index, 1, memory_order_relaxed);
        fail = mix(k ^ atomic_load_explicit(&plan_seed, memory_order_relaxed)) % 1000000u < atomic_load_explicit(&plan_n, memory_order_relaxed);
    } else {
        uint64_t n = atomic_load_explicit(&plan_n, memory_order_relaxed);
        fail = (int)call == atomic_load_explicit(&plan_call, memory_order_relaxed) && (mode == UM_FAULT_NTH ? i == n : i >= n);
    }
    if (fail) atomic_fetch_add_explicit(&failed[call], 1, memory_order_relaxed);
    return fail;
}

void umi_fault_arm(um_fault_mode_t mode, um_sys_call_t call, uint64_t n, uint64_t seed) {
    atomic_store_explicit(&plan_mode, UM_FAULT_OFF, memory_order_release);
    for (int k = 0; k < UM_SYS_COUNT; k++) {
        atomic_store_explicit(&calls[k], 0, memory_order_relaxed);
        atomic_store_explicit(&failed[k], 0, memory_order_relaxed);
    }
    atomic_store_explicit(&random_index, 0, memory_order_relaxed);
    atomic_store_explicit(&plan_call, (int)call, memory_order_relaxed);
    atomic_store_explicit(&plan_n, n, memory_order_relaxed);
    atomic_store_explicit(&plan_seed, seed, memory_order_relaxed);
    atomic_store_explicit(&plan_mode, (int)mode, memory_order_release);
}

um_fault_stats_t umi_fault_disarm(void) {
    atomic_store_explicit(&plan_mode, UM_FAULT_OFF, memory_order_release);
    um_fault_stats_t s;
    for (int k = 0; k < UM_SYS_COUNT; k++) {
        s.calls[k] = atomic_load_explicit(&calls[k], memory_order_relaxed);
        s.failed[k] = atomic_load_explicit(&failed[k], memory_order_relaxed);
    }
    return s;
}

uint64_t umi_fault_calls(um_sys_call_t call) { return atomic_load_explicit(&calls[call], memory_order_relaxed); }

const char *umi_fault_call_name(um_sys_call_t call) {
    static const char *const names[UM_SYS_COUNT] = {"mmap", "munmap", "madvise", "mremap", "mprotect", "mlock2"};
    return (unsigned)call < UM_SYS_COUNT ? names[call] : "?";
}

#endif
