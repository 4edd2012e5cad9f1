/* umalloc's lock: a spin-then-yield flag for slow paths only (no fast path ever takes one), with
 * a rank. Locks are taken in increasing rank only; the hierarchy itself is the users' (core's is
 * in core/internal.h, "Locks"). A debug build (UM_DEBUG: the tests' builds) checks the order at
 * every acquisition and stops the program with one line naming both locks, so that an order
 * that could deadlock fails in a test the first time it is taken, not the day two threads meet.
 *
 * Why not a pthread mutex: the allocator runs before libc is initialised, inside fork handlers
 * and (for the statistics) inside a signal handler that must know whether the thread it
 * interrupted holds a lock; the per-thread set of held ranks answers that for free. */
#ifndef UM_LOCK_H
#define UM_LOCK_H

#include <stdatomic.h>
#include <stdbool.h>

typedef struct um_lock_s {
    _Atomic int held;  /* 1 while some thread holds it */
    unsigned rank;     /* position in the hierarchy: locks are taken in increasing rank */
    const char *name;  /* for the lock-order message */
} um_lock_t;
#define UM_LOCK_INIT(rank_, name_) { .held = 0, .rank = (rank_), .name = (name_) }
#define UM_LOCK_RANKS 32

void umi_lock(um_lock_t *l);
void umi_unlock(um_lock_t *l);
/* Take the lock if it is free, without waiting: true if taken. The order is checked as for
 * umi_lock (a try cannot deadlock, but the hierarchy stays one). */
bool umi_trylock(um_lock_t *l);
/* Nonzero while the calling thread holds or is acquiring a lock: a signal handler that
 * interrupted it must not take any, and the safe point must not run. */
int umi_locks_held_by_me(void);

#endif
