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
 * slot that the delay purged after it had been free for T ms is a purge that cost faults (a
 * regret), and the delay becomes 2T (UM_PURGE_DELAY_MAX_MS at most; the longest T of the
 * regrets that make the verdict), so that the next cycle's memory stays. Only when the regrets
 * add up to a quarter of what the delay purged, though: a
 * longer delay keeps *everything* freed resident for longer, and a program that takes back a
 * block or two of all it dropped (an interpreter that builds one big string per cycle among
 * much else) would hold its whole garbage for seconds to save a few faults. What the delay
 * purged and what came back are counted over the last second or two (UM_PURGE_WINDOW_MS) and
 * since the delay last changed: a program's start or distant past must not outweigh its cycles.
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
/* What the delay purged (bytes of page slots, cached segments and huge pieces), the bytes of
 * those taken again, and the longest they had been free: in the window that started at
 * window_ms and in the one before, so that the verdict weighs the last one or two of them. All
 * relaxed atomics: a count lost to a race only delays a verdict. */
static uint64_t purged_now, purged_before, regret_now, regret_before, regret_max_ms, window_ms;

static void window_start(uint64_t now_ms) {
    __atomic_store_n(&purged_now, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&purged_before, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&regret_now, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&regret_before, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&regret_max_ms, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&window_ms, now_ms, __ATOMIC_RELAXED);
}

static void window_roll(uint64_t now_ms) {
    uint64_t at = __atomic_load_n(&window_ms, __ATOMIC_RELAXED);
    if (now_ms < at + UM_PURGE_WINDOW_MS) return;
    if (now_ms >= at + 2 * UM_PURGE_WINDOW_MS) { window_start(now_ms); return; } /* both are past */
    if (!__atomic_compare_exchange_n(&window_ms, &at, now_ms, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) return;
    __atomic_store_n(&purged_before, __atomic_exchange_n(&purged_now, 0, __ATOMIC_RELAXED), __ATOMIC_RELAXED);
    __atomic_store_n(&regret_before, __atomic_exchange_n(&regret_now, 0, __ATOMIC_RELAXED), __ATOMIC_RELAXED);
}

void umi_purge_delay_init(void) {
    base_ms = (uint64_t)umi_option(UM_OPT_PURGE_DELAY_MS);
    adaptive = base_ms != 0 && base_ms < UM_PURGE_DELAY_MAX_MS && umi_option_source(UM_OPT_PURGE_DELAY_MS) != UM_SRC_ENV;
    __atomic_store_n(&umi_purge_delay_ms, base_ms, __ATOMIC_RELAXED);
    window_start(0);
}

bool umi_purge_delay_adaptive(void) { return adaptive; }

void umi_purge_delay_purged(size_t bytes, uint64_t now_ms) {
    if (!adaptive || bytes == 0) return;
    window_roll(now_ms);
    __atomic_fetch_add(&purged_now, bytes, __ATOMIC_RELAXED);
}

void umi_purge_regret(uint64_t free_for_ms, uint64_t now_ms, size_t bytes) {
    /* Free for longer than any delay we would keep: no delay would have saved it. */
    if (!adaptive || free_for_ms >= UM_PURGE_DELAY_MAX_MS) return;
    /* Free for less than the delay now in effect: a shorter delay of the past purged it, and
     * the change since answers this regret already. Counted again, the regrets of the purges
     * made before a change would double the delay again and again in a burst of reuse. */
    if (free_for_ms < __atomic_load_n(&umi_purge_delay_ms, __ATOMIC_RELAXED)) return;
    window_roll(now_ms);
    uint64_t regretted = __atomic_add_fetch(&regret_now, bytes, __ATOMIC_RELAXED) + __atomic_load_n(&regret_before, __ATOMIC_RELAXED);
    uint64_t purged = __atomic_load_n(&purged_now, __ATOMIC_RELAXED) + __atomic_load_n(&purged_before, __ATOMIC_RELAXED);
    uint64_t longest = __atomic_load_n(&regret_max_ms, __ATOMIC_RELAXED);
    while (free_for_ms > longest && !__atomic_compare_exchange_n(&regret_max_ms, &longest, free_for_ms, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {}
    if (regretted < purged / 4) return;
    /* The cycle is as long as the longest of the regrets that add up to the verdict. */
    if (longest > free_for_ms) free_for_ms = longest;
    uint64_t want = free_for_ms >= UM_PURGE_DELAY_MAX_MS / 2 ? UM_PURGE_DELAY_MAX_MS : 2 * free_for_ms;
    uint64_t cur = __atomic_load_n(&umi_purge_delay_ms, __ATOMIC_RELAXED);
    while (want > cur && !__atomic_compare_exchange_n(&umi_purge_delay_ms, &cur, want, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {}
    __atomic_store_n(&changed_ms, now_ms, __ATOMIC_RELAXED); /* needed now: the decay starts over */
    window_start(now_ms);
}

uint64_t umi_purge_delay_base(void) { return base_ms; }

void umi_purge_delay_decay(uint64_t now_ms) {
    if (!adaptive) return;
    uint64_t cur = __atomic_load_n(&umi_purge_delay_ms, __ATOMIC_RELAXED);
    if (cur <= base_ms) return;
    uint64_t at = __atomic_load_n(&changed_ms, __ATOMIC_RELAXED);
    if (now_ms - at < UM_PURGE_DECAY_MS) return;
    /* one thread halves it per period; a regret meanwhile wins (compare-exchange on the value) */
    if (!__atomic_compare_exchange_n(&changed_ms, &at, now_ms, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) return;
    uint64_t half = cur / 2 > base_ms ? cur / 2 : base_ms;
    if (__atomic_compare_exchange_n(&umi_purge_delay_ms, &cur, half, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) window_start(now_ms);
}
