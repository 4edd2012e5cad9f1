/* Statistics: the snapshot that sums what the core counts (core/counters.h), and the dumps
 * (text, JSON, on a signal, at exit: stats/dump.c, stats/signal.c). Statistics read the core;
 * the core never runs them: work that cannot be done where it is asked for waits for the
 * core's safe point. docs/stats.md describes every field. */
#ifndef UM_STATS_H
#define UM_STATS_H

#include <stddef.h>

#include "core/counters.h"
#include "umalloc.h"

/* Fill *out. Never allocates. With in_signal set it refuses (returns -1, touching nothing) when
 * the calling thread holds, or is acquiring, an umalloc lock: the interrupted code would never
 * release it. The caller then asks the core's safe point for the dump (UM_SAFE_DUMP). Returns
 * 0 on success.
 *
 * peak_live_bytes is exact live bytes at sampled moments: every snapshot, and every time the
 * bytes carved into pooled blocks (a bound on live bytes that only slow paths move) pass 9/8 of
 * what they were at the last sample, and 1 MiB more at least (the sample is taken at the next
 * safe point); a huge block, whose bytes are counted exactly, raises it to the pooled live bytes
 * of the last sample plus the huge bytes live now. Live bytes can only reach a new high by
 * carving new blocks or by reusing ones carved before, so the true peak is at most 9/8 of the
 * reported one plus what was reused between samples. */
int umi_stats_snapshot(um_stats_t *out, int in_signal);

#endif
