/* The lock (see base/lock.h). */
#include "base/lock.h"

#include <sched.h>

#include "base/base.h"
#include "base/fmt.h"

/* Ranks this thread holds or is acquiring, one bit each: set before the attempt, so that a
 * signal handler interrupting the attempt itself knows to keep off. */
static __thread unsigned tl_held __attribute__((tls_model("initial-exec")));

int umi_locks_held_by_me(void) { return __atomic_load_n(&tl_held, __ATOMIC_RELAXED) != 0; }

#if defined(UM_DEBUG) && UM_DEBUG
static __thread const char *tl_names[UM_LOCK_RANKS];

static UM_COLD void order_violation(const um_lock_t *l) {
    unsigned top = 31u - (unsigned)__builtin_clz(tl_held);
    char msg[256];
    umi_fmt(msg, sizeof msg, "lock order violated: taking \"%s\" (rank %u) while holding \"%s\" (rank %u)",
            l->name, l->rank, tl_names[top] ? tl_names[top] : "?", top);
    umi_fatal_msg(msg);
}
#endif

/* Counted as held before the attempt, as a signal handler sees it; the order checked first. */
static inline void note_acquiring(const um_lock_t *l) {
#if defined(UM_DEBUG) && UM_DEBUG
    if (UM_UNLIKELY((tl_held >> l->rank) != 0)) order_violation(l);
    tl_names[l->rank] = l->name;
#endif
    __atomic_store_n(&tl_held, tl_held | (1u << l->rank), __ATOMIC_RELAXED);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
}

static inline bool try_take(um_lock_t *l) {
    return !atomic_load_explicit(&l->held, UM_RELAXED) && !atomic_exchange_explicit(&l->held, 1, memory_order_acquire);
}

void umi_lock(um_lock_t *l) {
    note_acquiring(l);
    for (unsigned spins = 0; !try_take(l); spins++) {
        if (spins < 64) __builtin_ia32_pause(); /* the holder is likely running: wait a little */
        else sched_yield();                      /* it isn't: let it run */
    }
}

bool umi_trylock(um_lock_t *l) {
    note_acquiring(l);
    if (try_take(l)) return true;
    __atomic_store_n(&tl_held, tl_held & ~(1u << l->rank), __ATOMIC_RELAXED);
    return false;
}

void umi_unlock(um_lock_t *l) {
    atomic_store_explicit(&l->held, 0, memory_order_release);
    __atomic_store_n(&tl_held, tl_held & ~(1u << l->rank), __ATOMIC_RELAXED);
}
