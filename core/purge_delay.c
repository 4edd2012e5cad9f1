/* The purge delay in effect, and how it follows the program (see core/internal.h).
 *
 * A purge gives a free page slot's memory back to the OS; a page carved there again faults in
 * every OS page it touches, which costs many times what the purge saved. The delay keeps freed
 * memory resident for a while in case the program wants it back.
 * Which while is right depends on the program: one that builds and drops its data in cycles
 * (an interpreter between collections, a batch job, a server between bursts) wants it back
 * after a cycle, however long that is.
 *
 * So, unless UMALLOC_PURGE_DELAY_MS is set, the delay learns the cycle: a page carved in a
 * slot that the delay purged after it had been free for T ms is a purge that cost faults, and
 * the delay becomes 2T (UM_PURGE_DELAY_MAX_MS at most), so that the next cycle's memory stays.
 * A delay that has not had to grow for UM_PURGE_DECAY_MS halves, back down to the option's
 * value: a program that has moved on from its cycles gets its memory purged promptly again.
 * Only purges the delay made count: those a thread's exit or um_trim forces are no verdict on
 * the delay. A value set in the environment is the user's choice and is kept as it is. */
#include "core/internal.h"
#include "base/options.h"

/* In effect; read and written with relaxed atomics (umi_purge_delay()). */
uint64_t umi_purge_delay_ms = 10;
static uint64_t base_ms;    /* UMALLOC_PURGE_DELAY_MS: where the delay starts and decays to */
static bool adaptive;       /* the option was not set in the environment */
static uint64_t changed_ms; /* when the delay last grew or halved (relaxed atomic) */

void umi_purge_delay_init(void) {
    base_ms = (uint64_t)umi_option(UM_OPT_PURGE_DELAY_MS);
    adaptive = base_ms != 0 && base_ms < UM_PURGE_DELAY_MAX_MS && umi_option_source(UM_OPT_PURGE_DELAY_MS) != UM_SRC_ENV;
    __atomic_store_n(&umi_purge_delay_ms, base_ms, __ATOMIC_RELAXED);
}

bool umi_purge_delay_adaptive(void) { return adaptive; }

void umi_purge_regret(uint64_t free_for_ms, uint64_t now_ms) {
    /* Free for longer than any delay we would keep: no delay would have saved it. */
    if (!adaptive || free_for_ms >= UM_PURGE_DELAY_MAX_MS) return;
    uint64_t want = free_for_ms >= UM_PURGE_DELAY_MAX_MS / 2 ? UM_PURGE_DELAY_MAX_MS : 2 * free_for_ms;
    uint64_t cur = __atomic_load_n(&umi_purge_delay_ms, __ATOMIC_RELAXED);
    while (want > cur && !__atomic_compare_exchange_n(&umi_purge_delay_ms, &cur, want, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {}
    __atomic_store_n(&changed_ms, now_ms, __ATOMIC_RELAXED); /* needed now: the decay starts over */
}

void umi_purge_delay_decay(uint64_t now_ms) {
    if (!adaptive) return;
    uint64_t cur = __atomic_load_n(&umi_purge_delay_ms, __ATOMIC_RELAXED);
    if (cur <= base_ms) return;
    uint64_t at = __atomic_load_n(&changed_ms, __ATOMIC_RELAXED);
    if (now_ms - at < UM_PURGE_DECAY_MS) return;
    /* one thread halves it per period; a regret meanwhile wins (compare-exchange on the value) */
    if (!__atomic_compare_exchange_n(&changed_ms, &at, now_ms, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) return;
    uint64_t half = cur / 2 > base_ms ? cur / 2 : base_ms;
    __atomic_compare_exchange_n(&umi_purge_delay_ms, &cur, half, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
}
