/* The public side (um_option_get, um_option_get_string) is declared in include/umalloc.h. */

/* umalloc: run-time options, internal interface.
 *
 * ONE table (UM_OPTIONS below) describes every option: the parser, UMALLOC_HELP, UMALLOC_VERBOSE,
 * the error messages and um_option_get all come from it, and test/sys_options.c checks that
 * docs/tuning.md lists the same names, types and defaults as UMALLOC_HELP prints.
 *
 * For the core:
 *  - call umi_options_init() once at process initialisation, before anything else reads an
 *    option. It never allocates, does not need libc to be initialised, is idempotent and
 *    thread-safe. It reads the environment, prints one warning line per bad value or unknown
 *    UMALLOC_* name, and prints the UMALLOC_HELP / UMALLOC_VERBOSE listings if asked.
 *  - read a value with umi_option(UM_OPT_X) (an array load: fine on slow paths, even hot ones)
 *    and a string with umi_option_str(UM_OPT_X). Before umi_options_init() they hold the defaults.
 */
#ifndef UM_OPTIONS_H
#define UM_OPTIONS_H

#include <signal.h>
#include <stddef.h>

#include "base/fmt.h"

#ifndef UM_OPTION_TEXT_MAX
#define UM_OPTION_TEXT_MAX 4096 /* a string option's value is at most UM_OPTION_TEXT_MAX-1 bytes */
#endif

/* The types an option can have. Parsing (case-insensitive everywhere):
 *  BOOL      1/0, true/false, yes/no, on/off
 *  INT       a decimal integer, optional sign, within [min, max]
 *  SIZE      bytes, or a number with suffix K, M, G, KiB, MiB, GiB, KB, MB, GB (all 1024-based),
 *            within [min, max]; overflow is an error
 *  DURATION  milliseconds: a plain number, or with suffix ms or s; within [min, max] (in ms)
 *  ENUM      one of the names in `extra` ("text,json"); the value is the name's index
 *  SIGNAL    a signal name (USR1, SIGUSR1, RTMIN+2, ...), a number 1..64 (except the
 *            uncatchable 9, 19 and glibc's internal 32, 33), or "none" (value 0)
 *  NODES     a NUMA node list like "0-3,6" (nodes 0..63, ascending ranges): a 64-bit mask
 *  STRING    a path: at most UM_OPTION_TEXT_MAX-1 bytes, no control characters, '%' only in
 *            %p (the pid, expanded by the user of the option) and %%; may be empty
 */
typedef enum um_option_type {
    UM_OT_BOOL,
    UM_OT_INT,
    UM_OT_SIZE,
    UM_OT_DURATION,
    UM_OT_ENUM,
    UM_OT_SIGNAL,
    UM_OT_NODES,
    UM_OT_STRING,
} um_option_type;

#define UM_KiB (1024LL)
#define UM_MiB (1024LL * 1024)
#define UM_GiB (1024LL * 1024 * 1024)

/* THE OPTIONS TABLE. One row per option:
 *   X(NAME, TYPE, DEFAULT, MIN, MAX, EXTRA, HELP)
 * NAME     the variable is UMALLOC_<NAME>; the id is UM_OPT_<NAME>
 * TYPE     one of um_option_type without the UM_OT_ prefix
 * DEFAULT  the default value as a number (bytes, ms, enum index, signal number, node mask);
 *          0 for STRING
 * MIN,MAX  the accepted range (INT, SIZE, DURATION); 0, 0 for other types
 * EXTRA    ENUM: the names, comma-separated, in index order ("text,json");
 *          STRING: the default string ("" for none); NULL otherwise
 * HELP     one line, shown by UMALLOC_HELP and docs/tuning.md (no '|' characters)
 * To add an option: add a row here, use umi_option(UM_OPT_<NAME>) where it has its effect, add
 * its row to the table in docs/tuning.md (test/sys_options.c fails until the two agree) and
 * its tests to test/sys_options.c. Only add rows for options that have an effect. */
#define UM_OPTIONS(X)                                                                            \
    /* ---- messages ---- */                                                                     \
    X(VERBOSE, BOOL, 0, 0, 0, NULL,                                                              \
      "print the version and every option's value and where it came from, at start")             \
    X(HELP, BOOL, 0, 0, 0, NULL, "print this list of options at start, then run the program")  \
    /* ---- core (core/) ---- */                                                                \
    X(PURGE_DELAY_MS, DURATION, 100, 0, 3600000, NULL,                                           \
      "delay before free pages are given back to the OS; 0 = at once; unset, it grows from "    \
      "100 ms to fit the program's cycles of reuse (2 s at most)")                                \
    X(LARGE_THRESHOLD, SIZE, 512 * UM_KiB, 4 * UM_KiB, 512 * UM_KiB, NULL,                       \
      "blocks of at least this size are mapped on their own")                                    \
    X(CHECK, BOOL, 0, 0, 0, NULL,                                                                \
      "verify the heap's invariants as the program runs and abort on a broken one (slow)")       \
    /* ---- NUMA (numa/) ---- */                                                                \
    X(NUMA_POLICY, ENUM, 0, 0, 0, "local,interleave,bind,preferred,none",                        \
      "where memory goes on a machine with several NUMA nodes (one node: no effect)")             \
    X(NUMA_NODES, NODES, -1, 0, 0, NULL,                                                         \
      "the nodes interleave, bind and preferred use, and local keeps to; 0-63 = all online")      \
    /* ---- huge pages, prefaulting, locking (hugepages/) ---- */                                \
    X(HUGEPAGES, ENUM, 1, 0, 0, "none,thp,2M,1G",                                                \
      "pages behind segments and large blocks: none (4 KiB), thp (advised), 2M or 1G (hugetlb pool)") \
    X(RESERVE, SIZE, 0, 0, 64 * UM_GiB, NULL,                                                    \
      "map this much at start (from the hugetlb pool with 2M or 1G); small segments come from it first") \
    X(PREFAULT, BOOL, 0, 0, 0, NULL, "populate memory when it is mapped, so that a first touch does not fault") \
    X(MLOCK, BOOL, 0, 0, 0, NULL, "lock umalloc's memory in RAM (mlock2; over RLIMIT_MEMLOCK: one line, unlocked)") \
    /* ---- statistics (stats/) ---- */                                                          \
    X(STATS_SIGNAL, SIGNAL, SIGUSR1, 0, 0, NULL,                                                 \
      "signal that makes umalloc dump its statistics; none = install no handler")                \
    X(STATS_AT_EXIT, BOOL, 0, 0, 0, NULL, "dump the statistics when the program exits")         \
    X(STATS_FILE, STRING, 0, 0, 0, "",                                                           \
      "file the statistics are written to (%p becomes the pid); empty = stderr")                 \
    X(STATS_FORMAT, ENUM, 0, 0, 0, "text,json", "format of the statistics dump")

typedef enum um_option_id {
#define UM_OPT_ENUM_ROW(NAME, TYPE, DEF, MIN, MAX, EXTRA, HELP) UM_OPT_##NAME,
    UM_OPTIONS(UM_OPT_ENUM_ROW)
#undef UM_OPT_ENUM_ROW
    UM_OPT__COUNT
} um_option_id;

/* Values of enum options, by index (keep in the order of EXTRA). */
enum { UM_STATS_FORMAT_TEXT = 0, UM_STATS_FORMAT_JSON = 1 };
/* UMALLOC_HUGEPAGES: the same numbers as include/umalloc.h's UM_PAGES_* kinds. */
enum { UM_HUGEPAGES_NONE = 0, UM_HUGEPAGES_THP = 1, UM_HUGEPAGES_2M = 2, UM_HUGEPAGES_1G = 3 };

/* One row of the table, as the code sees it. */
typedef struct um_option_desc {
    const char *name; /* "UMALLOC_VERBOSE" */
    um_option_type type;
    long long def;
    long long min, max;
    const char *extra; /* see EXTRA above */
    const char *help;
} um_option_desc;

/* Where an option's effective value came from. */
typedef enum um_option_source {
    UM_SRC_DEFAULT = 0,  /* not set */
    UM_SRC_ENV = 1,      /* from the environment */
    UM_SRC_REJECTED = 2, /* set, but not valid (or ignored in a setuid program): the default */
} um_option_source;

extern const um_option_desc umi_option_table[UM_OPT__COUNT];
/* Effective values, indexed by um_option_id; statically initialised to the defaults. */
extern long long umi_option_values[UM_OPT__COUNT];

static inline long long umi_option(um_option_id id) {
    return umi_option_values[id];
}

/* A STRING option's value (never NULL; "" if empty). Valid for the life of the process. */
const char *umi_option_str(um_option_id id);
um_option_source umi_option_source(um_option_id id);

/* Read the environment and set every option (see above). Idempotent and thread-safe: a second
 * caller waits until the first has finished. Preserves errno. */
void umi_options_init(void);
/* The listings UMALLOC_HELP=1 and UMALLOC_VERBOSE=1 print (umi_options_init prints them when
 * asked; these print them unconditionally, to stderr, with write(2) only). */
void umi_options_print_help(void);
void umi_options_print_verbose(void);

/* ---- for the tests ------------------------------------------------------------------------- */
/* Reset every option to its default, then read envp (NULL-terminated "NAME=VALUE" strings) as
 * umi_options_init reads the environment: warnings and listings are printed the same way. If
 * secure is non-zero, the process is treated as setuid: UMALLOC_* is ignored silently. Not
 * thread-safe against concurrent readers; marks the options as initialised. */
void umi_options_load(char *const *envp, int secure);
/* Nonzero if the process runs setuid/setgid (AT_SECURE), when options are ignored. */
int umi_options_secure(void);

/* Parse text (len bytes, need not be NUL-terminated) as option d would. On success returns 0
 * and sets *out (and for STRING copies the text into str, of strcap bytes, NUL-terminated; str
 * may be NULL to only validate). On failure returns -1. */
int umi_option_parse_desc(const um_option_desc *d, const char *text, size_t len, long long *out,
                         char *str, size_t strcap);
/* Same, by id, with a NUL-terminated text; on failure writes into err (errlen bytes) what is
 * accepted, as the warning shows it ("a duration in ms (0..3600000, suffix ms or s)"). */
int umi_option_parse(um_option_id id, const char *text, long long *out, char *err, size_t errlen);
/* What option d accepts, as in the warnings and UMALLOC_HELP. Returns the length written. */
size_t umi_option_accepted(const um_option_desc *d, char *buf, size_t cap);
/* value v of option d as text (str: the string, for STRING), as UMALLOC_VERBOSE shows it; the
 * parser accepts it back. Returns the length written (cut to cap-1). */
size_t umi_option_format(const um_option_desc *d, long long v, const char *str, char *buf,
                        size_t cap);
/* The closest known option to an unknown name (with or without the UMALLOC_ prefix, n bytes),
 * or NULL if none is close. */
const um_option_desc *umi_option_suggest(const char *name, size_t n);
/* The option with that name (with or without the UMALLOC_ prefix, any case), or NULL. */
const um_option_desc *umi_option_find(const char *name, size_t n);

#endif /* UM_OPTIONS_H */
