/* Statistics: where every allocation path puts its counter. Counters are kept per thread by
 * their owner and summed only when read; the dumps (text, JSON, on a signal, at exit) come with
 * the statistics issue. */
#ifndef UM_STATS_H
#define UM_STATS_H

#include "core/types.h"

void _x_stats_init(void);

/* A segment (or huge block) was mapped / is about to be unmapped: per node and page size. */
#define UM_STAT_SEGMENT_MAPPED(seg) ((void)(seg))
#define UM_STAT_SEGMENT_UNMAPPED(seg) ((void)(seg))

#endif
