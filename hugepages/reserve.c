/* Runs: units of the small-page region mapped together, from which small segments are taken
 * before the region maps a unit of its own.
 *  - The reservation (UMALLOC_RESERVE): mapped at start-up, from the hugetlb pool with 2M or 1G
 *    (so that the pool's pages are the program's from the start), populated with
 *    UMALLOC_PREFAULT, locked with UMALLOC_MLOCK. Kept for the life of the process.
 *  - With UMALLOC_HUGEPAGES=1G, 1 GiB pages: one page covers 256 units, so it is mapped as a run
 *    when a segment is wanted and every run is full, and released whole (back to the pool) once
 *    none of its units has held a segment for the purge delay.
 * A unit given back stays mapped and resident (a hugetlb page cannot be split, and the
 * reservation is there to be used); it is zeroed when it is taken again.
 *
 * Everything here is serialised by the caller, as the region is (the core's segment cache
 * lock); the system calls of a new or released 1 GiB run are made under it, once per GiB. */
#include <string.h>

#include "base/base.h"
#include "base/fmt.h"
#include "base/options.h"
#include "hugepages/pagesize.h"
#include "numa/arena.h"
#include "os/os.h"
#include "os/region.h"

#define UNIT ((size_t)1 << UM_REGION_UNIT_SHIFT)
#define UNITS_1G ((size_t)1 << (30 - UM_REGION_UNIT_SHIFT)) /* 256 */
#define RUNS_MAX 32

typedef struct run_s {
    uint8_t *base;          /* its first unit; NULL: a free entry */
    size_t units;           /* how many */
    size_t used;            /* units holding a segment */
    size_t next;            /* where the search for a free unit starts */
    uint64_t idle_since_ms; /* when `used` last fell to 0 */
    uint8_t kind;           /* UM_PAGES_*, with UM_PAGES_LOCKED */
    uint8_t permanent;      /* the reservation: never released */
    uint8_t *state;         /* per unit: 0 free and zero, 1 in use, 2 free and dirty */
} run_t;

UM_BIG_BSS static run_t runs[RUNS_MAX];
static bool reserved; /* runs[] holds the reservation (UMALLOC_RESERVE) */
_Atomic size_t umi_pages_temp_runs;
/* Unit states of every run, side by side: the reservation's first (up to 64 GiB: 16 Ki units),
 * then 1 GiB runs. Static, so that it costs what is touched. */
#define STATE_BYTES (16384 + RUNS_MAX * UNITS_1G)
UM_BIG_BSS static uint8_t states[STATE_BYTES];
/* Which run a unit of the region belongs to (index + 1; 0: none). 256 KiB of bss, of which a
 * page per 4096 units (16 GiB) is ever touched. */
UM_BIG_BSS static uint8_t unit_run[(size_t)1 << (UM_REGION_BITS - UM_REGION_UNIT_SHIFT)];

static void idle_add(const run_t *r, size_t bytes, int sign) {
    uint64_t n = sign > 0 ? bytes : (uint64_t)0 - bytes;
    atomic_fetch_add_explicit(&umi_pages_stats.idle[UM_PAGES_KIND(r->kind)], n, memory_order_relaxed);
    if (r->kind & UM_PAGES_LOCKED) atomic_fetch_add_explicit(&umi_pages_stats.idle_locked, n, memory_order_relaxed);
}

/* Map `units` units of the region as one run of `kind` pages at most; NULL if that fails. */
static run_t *run_map(size_t units, size_t align_units, bool permanent) {
    run_t *r = NULL;
    for (size_t i = 0; i < RUNS_MAX && r == NULL; i++) if (runs[i].base == NULL) r = &runs[i];
    if (r == NULL) return NULL;
    uint8_t *state;
    if (permanent) {
        if (units > 16384) units = 16384;
        state = states;
    } else {
        /* Entries of released runs are not reused: RUNS_MAX 1 GiB runs fit at once, and the
         * array is searched from the start for a free stretch. */
        size_t at = 16384;
        for (; at + units <= STATE_BYTES; at += UNITS_1G) {
            bool taken = false;
            for (size_t i = 0; i < RUNS_MAX; i++) if (runs[i].base && runs[i].state == states + at) taken = true;
            if (!taken) break;
        }
        if (at + units > STATE_BYTES) return NULL;
        state = states + at;
    }
    uint8_t *base = umi_region_take_run(units, align_units);
    if (base == NULL) return NULL;
    size_t size = units * UNIT;
    int node;
    unsigned kind;
    umi_pages_exact = !permanent; /* a 1 GiB run is of 1 GiB pages or nothing */
    umi_pages_whole_add((int64_t)size); /* counted in use whole, before the advice looks */
    void *got = umi_arena_commit(base, size, -1, UM_USE_FILLED_SEGMENT, &node, &kind);
    umi_pages_exact = false;
    if (got == NULL) {
        umi_pages_whole_add(-(int64_t)size);
        for (size_t u = 0; u < units; u++) umi_region_put(base + u * UNIT);
        return NULL;
    }
    *r = (run_t){.base = base, .units = units, .kind = (uint8_t)kind, .permanent = permanent, .state = state,
                 .idle_since_ms = umi_os_now_ms()};
    memset(state, 0, units);
    size_t first = umi_region_unit_index(base);
    for (size_t u = 0; u < units; u++) unit_run[first + u] = (uint8_t)(r - runs + 1);
    idle_add(r, size, 1);
    if (!permanent) atomic_fetch_add_explicit(&umi_pages_temp_runs, 1, memory_order_relaxed);
    return r;
}

void umi_pages_reserve_init(void) {
    size_t want = (size_t)umi_option(UM_OPT_RESERVE);
    if (want == 0) return;
    bool giga = umi_pages_mode() == UM_PAGES_1G;
    size_t units = (want + UNIT - 1) / UNIT;
    if (giga) units = (units + UNITS_1G - 1) / UNITS_1G * UNITS_1G;
    run_t *r = run_map(units, giga ? UNITS_1G : 1, true);
    if (r == NULL) {
        umi_dprintf(2, "umalloc: UMALLOC_RESERVE=%zu: could not map it (out of memory, or no small-page region in "
                       "this process: see docs/design.md); going on without a reservation\n", want);
        return;
    }
    reserved = true;
    if (umi_option(UM_OPT_VERBOSE)) {
        static const char *const names[UM_PAGES_KINDS] = {"4 KiB", "THP", "2 MiB", "1 GiB"};
        umi_dprintf(2, "umalloc: reserved %zu MiB of %s pages%s at start\n", (r->units * UNIT) >> 20,
                    names[UM_PAGES_KIND(r->kind)], (r->kind & UM_PAGES_LOCKED) ? ", locked" : "");
    }
}

static void *unit_take(run_t *r, unsigned *kind, bool *dirty) {
    for (size_t n = 0; n < r->units; n++) {
        size_t u = (r->next + n) % r->units;
        if (r->state[u] == 1) continue;
        *dirty = r->state[u] == 2;
        r->state[u] = 1;
        r->used++;
        r->next = u + 1;
        *kind = r->kind;
        idle_add(r, UNIT, -1);
        return r->base + u * UNIT;
    }
    return NULL;
}

void *umi_pages_run_take(unsigned *kind, bool *dirty) {
    /* The reservation first, then the fullest run: emptier runs get a chance to be released.
     * With no run at all (the usual case) runs[] is not read, and its page of the big .bss,
     * which a first read would map, stays out of the process. */
    run_t *best = NULL;
    bool any = reserved || atomic_load_explicit(&umi_pages_temp_runs, memory_order_relaxed) != 0;
    for (size_t i = 0; any && i < RUNS_MAX; i++) {
        run_t *r = &runs[i];
        if (r->base == NULL || r->used == r->units) continue;
        if (best == NULL || r->permanent > best->permanent || (r->permanent == best->permanent && r->used > best->used)) best = r;
    }
    if (best != NULL) return unit_take(best, kind, dirty);
    if (umi_pages_mode() != UM_PAGES_1G) return NULL;
    /* A new 1 GiB run, unless that pool refused a page less than a second ago. */
    run_t *r = umi_pages_backing_off(UM_PAGES_1G) ? NULL : run_map(UNITS_1G, UNITS_1G, false);
    if (r == NULL) {
        umi_pages_fallback(UM_PAGES_1G, UM_PAGES_2M); /* the caller maps the unit on its own */
        return NULL;
    }
    return unit_take(r, kind, dirty);
}

bool umi_pages_run_owns(const void *unit) { return umi_region_contains(unit) && unit_run[umi_region_unit_index(unit)] != 0; }

bool umi_pages_run_put(void *unit) {
    if (!umi_region_contains(unit)) return false;
    size_t idx = umi_region_unit_index(unit);
    if (unit_run[idx] == 0) return false;
    run_t *r = &runs[unit_run[idx] - 1];
    size_t u = (size_t)((uint8_t *)unit - r->base) / UNIT;
    if (r->state[u] != 1) umi_fatal_msg("a unit of a reserved run given back twice");
    r->state[u] = 2;
    if (--r->used == 0) r->idle_since_ms = umi_os_now_ms();
    if (u < r->next) r->next = u; /* reuse the lowest first */
    idle_add(r, UNIT, 1);
    return true;
}

void umi_pages_runs_trim(uint64_t now_ms, uint64_t delay_ms, bool force) {
    for (size_t i = 0; i < RUNS_MAX; i++) {
        run_t *r = &runs[i];
        if (r->base == NULL || r->permanent || r->used != 0) continue;
        if (!force && now_ms - r->idle_since_ms < delay_ms) continue;
        size_t size = r->units * UNIT;
        umi_arena_decommit(r->base, size);
        umi_pages_whole_add(-(int64_t)size);
        idle_add(r, size, -1);
        memset(unit_run + umi_region_unit_index(r->base), 0, r->units);
        for (size_t u = 0; u < r->units; u++) umi_region_put(r->base + u * UNIT);
        r->base = NULL;
        atomic_fetch_sub_explicit(&umi_pages_temp_runs, 1, memory_order_relaxed);
    }
}
