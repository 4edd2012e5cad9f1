/* System tests of the options (UMALLOC_* environment variables): each test spawns a fresh
 * process (a program from test/progs/ or /bin/true) under LD_PRELOAD=build/libumalloc.so with a
 * given environment, and checks its stderr, stdout and exit status.
 *
 * Suites:
 *   options        the options module with the preload library: listings, warnings, the
 *                  effect of UMALLOC_PURGE_DELAY_MS and UMALLOC_LARGE_THRESHOLD (through
 *                  um_get_totals / um_malloc_usable_size), setuid programs, docs/tuning.md.
 *   options_stats  the effect of the UMALLOC_STATS_* options: these need the statistics module
 *                  (stats/); they are written against its expected behaviour:
 *                  - a dump is some non-empty text on stderr that mentions "umalloc";
 *                  - with UMALLOC_STATS_FORMAT=json, the dump contains a line that is a JSON
 *                    object ('{' ... '}'); in text format no line starts with '{';
 *                  - UMALLOC_STATS_FILE=PATH writes the dump to PATH (%p = pid), not stderr;
 *                  - UMALLOC_STATS_SIGNAL=SIG: the signal makes a dump and the program goes on;
 *                    with none the signal keeps its default action (USR1 kills).
 *
 * Paths: the repository root is found from this binary's path (ROOT/build/test/system), or is
 * the current directory. UM_TEST_PRELOAD_LIB, UM_TEST_STATIC_LIB and UM_TEST_PROGS_DIR may point
 * the tests at another build.
 */
#include <criterion/criterion.h>

#include "base/options.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "umalloc.h"

extern char **environ;

/* ---- paths ---------------------------------------------------------------------------------- */

static char so_root[PATH_MAX];

static const char *so_root_dir(void) {
    if (so_root[0]) return so_root;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    const char *suffix = "/build/test/system";
    size_t sl = strlen(suffix);
    if (n > 0) {
        exe[n] = '\0';
        if ((size_t)n > sl && strcmp(exe + n - sl, suffix) == 0) {
            exe[n - sl] = '\0';
            snprintf(so_root, sizeof so_root, "%s", exe);
            return so_root;
        }
    }
    if (!getcwd(so_root, sizeof so_root)) strcpy(so_root, ".");
    return so_root;
}

static void so_path(char *buf, size_t cap, const char *env, const char *rel) {
    const char *o = env ? getenv(env) : NULL;
    if (o && *o) snprintf(buf, cap, "%s", o);
    else snprintf(buf, cap, "%s/%s", so_root_dir(), rel);
}

static void so_prog(char *buf, size_t cap, const char *name) {
    const char *dir = getenv("UM_TEST_PROGS_DIR");
    if (dir && *dir) snprintf(buf, cap, "%s/%s", dir, name);
    else snprintf(buf, cap, "%s/build/test/progs/%s", so_root_dir(), name);
}

/* ---- running programs ----------------------------------------------------------------------- */

typedef struct {
    pid_t pid;
    int in, out, err; /* our ends of the child's stdin, stdout, stderr (-1 when closed) */
    char *outbuf, *errbuf;
    size_t outlen, errlen, outcap, errcap;
    int status; /* wait status */
} so_proc;

static void so_append(char **buf, size_t *len, size_t *cap, const char *data, size_t n) {
    if (*len + n + 1 > *cap) {
        size_t c = *cap ? *cap : 4096;
        while (c < *len + n + 1) c *= 2;
        *buf = realloc(*buf, c);
        cr_assert_not_null(*buf);
        *cap = c;
    }
    memcpy(*buf + *len, data, n);
    *len += n;
    (*buf)[*len] = '\0';
}

/* The environment for a child: ours without UMALLOC_* and LD_PRELOAD, then LD_PRELOAD if
 * preload, then extra (NULL-terminated "NAME=VALUE"; may repeat a name). */
static char **so_env(int preload, const char *const *extra) {
    size_t n = 0, k = 0;
    while (environ[n]) n++;
    size_t m = 0;
    while (extra && extra[m]) m++;
    char **env = calloc(n + m + 2, sizeof *env);
    for (size_t i = 0; i < n; i++) {
        if (strncmp(environ[i], "UMALLOC_", 8) == 0 || strncmp(environ[i], "LD_PRELOAD=", 11) == 0)
            continue;
        env[k++] = environ[i];
    }
    if (preload) {
        static char e[PATH_MAX + 16];
        char lib[PATH_MAX];
        so_path(lib, sizeof lib, "UM_TEST_PRELOAD_LIB", "build/libumalloc.so");
        snprintf(e, sizeof e, "LD_PRELOAD=%s", lib);
        env[k++] = e;
    }
    for (size_t i = 0; i < m; i++) env[k++] = (char *)extra[i];
    env[k] = NULL;
    return env;
}

static void so_spawn(so_proc *p, const char *const *argv, int preload, const char *const *extra) {
    int in[2], out[2], err[2];
    memset(p, 0, sizeof *p);
    cr_assert(pipe2(in, O_CLOEXEC) == 0 && pipe2(out, O_CLOEXEC) == 0 && pipe2(err, O_CLOEXEC) == 0);
    char **env = so_env(preload, extra);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        dup2(err[1], 2);
        execve(argv[0], (char *const *)argv, env);
        dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    close(err[1]);
    p->pid = pid;
    p->in = in[1];
    p->out = out[0];
    p->err = err[0];
    free(env); /* the strings are environ's, the caller's, or static */
}

/* Read what the child wrote, for at most ms milliseconds (-1: until both pipes close). Returns
 * once `until` (if not NULL) appears in stdout. */
static void so_pump(so_proc *p, int ms, const char *until) {
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        if (until && p->outbuf && strstr(p->outbuf, until)) return;
        struct pollfd fds[2];
        int nf = 0;
        if (p->out >= 0) fds[nf++] = (struct pollfd){.fd = p->out, .events = POLLIN};
        if (p->err >= 0) fds[nf++] = (struct pollfd){.fd = p->err, .events = POLLIN};
        if (nf == 0) return;
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        long el = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
        int left = ms < 0 ? 30000 : ms - (int)el; /* 30 s is a hung child */
        if (ms < 0 && el > 30000) left = 0;
        if (left <= 0) {
            if (ms < 0) {
                kill(p->pid, SIGKILL);
                cr_log_error("child %d hung: killed", (int)p->pid);
            }
            return;
        }
        int r = poll(fds, (nfds_t)nf, left);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) continue;
        for (int i = 0; i < nf; i++) {
            if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            char buf[8192];
            ssize_t n = read(fds[i].fd, buf, sizeof buf);
            int is_out = fds[i].fd == p->out;
            if (n <= 0) {
                close(fds[i].fd);
                if (is_out) p->out = -1;
                else p->err = -1;
                continue;
            }
            if (is_out) so_append(&p->outbuf, &p->outlen, &p->outcap, buf, (size_t)n);
            else so_append(&p->errbuf, &p->errlen, &p->errcap, buf, (size_t)n);
        }
    }
}

static void so_close_stdin(so_proc *p) {
    if (p->in >= 0) close(p->in);
    p->in = -1;
}

static void so_finish(so_proc *p) {
    so_close_stdin(p);
    so_pump(p, -1, NULL);
    while (waitpid(p->pid, &p->status, 0) < 0 && errno == EINTR) {
    }
    if (!p->outbuf) so_append(&p->outbuf, &p->outlen, &p->outcap, "", 0);
    if (!p->errbuf) so_append(&p->errbuf, &p->errlen, &p->errcap, "", 0);
}

static void so_free(so_proc *p) {
    free(p->outbuf);
    free(p->errbuf);
    p->outbuf = p->errbuf = NULL;
}

static void so_run(so_proc *p, const char *const *argv, int preload, const char *const *extra) {
    so_spawn(p, argv, preload, extra);
    so_finish(p);
}

static int so_exit_code(const so_proc *p) {
    return WIFEXITED(p->status) ? WEXITSTATUS(p->status) : 128 + WTERMSIG(p->status);
}

/* Run opt_probe under the preload with extra env; the probe exits with 7. */
static void so_probe(so_proc *p, const char *const *extra, const char *name) {
    char prog[PATH_MAX];
    so_prog(prog, sizeof prog, "opt_probe");
    const char *argv[] = {prog, "--exit", "7", name, NULL};
    so_run(p, argv, 1, extra);
}

static int so_count_lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

/* ---- the option list, from docs/tuning.md and from UMALLOC_HELP ------------------------------- */

#define SO_MAX_OPTS 64

typedef struct {
    char name[64], type[32], def[128], help[512], accepted[512];
} so_opt;

static char *so_trim(char *s) {
    while (*s == ' ') s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\n')) s[--n] = '\0';
    if (n >= 2 && s[0] == '`' && s[n - 1] == '`') {
        s[n - 1] = '\0';
        s++;
    }
    return s;
}

/* Rows of the options table in docs/tuning.md: "| `UMALLOC_X` | type | `default` | help |
 * accepted |". */
static int so_docs_options(so_opt *opts) {
    char path[PATH_MAX];
    so_path(path, sizeof path, NULL, "docs/tuning.md");
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "cannot open %s", path);
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "| `UMALLOC_", 11) != 0) continue;
        char *cells[6];
        int c = 0;
        char *s = line + 1;
        while (c < 6) {
            char *bar = strchr(s, '|');
            if (!bar) break;
            *bar = '\0';
            cells[c++] = so_trim(s);
            s = bar + 1;
        }
        cr_assert_eq(c, 5, "docs/tuning.md: a row of the options table has %d cells, not 5", c);
        cr_assert_lt(n, SO_MAX_OPTS);
        snprintf(opts[n].name, sizeof opts[n].name, "%s", cells[0]);
        snprintf(opts[n].type, sizeof opts[n].type, "%s", cells[1]);
        snprintf(opts[n].def, sizeof opts[n].def, "%s", cells[2]);
        snprintf(opts[n].help, sizeof opts[n].help, "%s", cells[3]);
        snprintf(opts[n].accepted, sizeof opts[n].accepted, "%s", cells[4]);
        n++;
    }
    fclose(f);
    return n;
}

/* Options as the UMALLOC_HELP listing shows them:
 *   "umalloc:   UMALLOC_X   type   default D" / "umalloc:       help" /
 *   "umalloc:       accepted: A". */
static int so_help_options(const char *err, so_opt *opts) {
    int n = -1;
    const char *l = err;
    while (*l) {
        const char *e = strchr(l, '\n');
        size_t len = e ? (size_t)(e - l) : strlen(l);
        char line[1024];
        snprintf(line, sizeof line, "%.*s", (int)len, l);
        l = e ? e + 1 : l + len;
        if (strncmp(line, "umalloc:   UMALLOC_", 19) == 0) {
            cr_assert_lt(n + 1, SO_MAX_OPTS);
            n++;
            char word[32];
            memset(&opts[n], 0, sizeof opts[n]);
            int k = sscanf(line + 9, "%63s %31s %31s %127s", opts[n].name, opts[n].type, word,
                           opts[n].def);
            cr_expect_eq(k, 4, "bad help line: %s", line);
            cr_expect_str_eq(word, "default", "bad help line: %s", line);
        } else if (n >= 0 && strncmp(line, "umalloc:       accepted: ", 25) == 0) {
            snprintf(opts[n].accepted, sizeof opts[n].accepted, "%.511s", line + 25);
        } else if (n >= 0 && strncmp(line, "umalloc:       ", 15) == 0) {
            snprintf(opts[n].help, sizeof opts[n].help, "%.511s", line + 15);
        }
    }
    return n + 1;
}

static const so_opt *so_find(const so_opt *opts, int n, const char *name) {
    for (int i = 0; i < n; i++) {
        if (strcmp(opts[i].name, name) == 0) return &opts[i];
    }
    return NULL;
}

/* What the warnings show of a value: control bytes as \xNN, cut after 200 bytes. */
static void so_shown(char *buf, size_t cap, const char *v) {
    size_t n = 0;
    for (size_t i = 0; v[i] && n + 8 < cap; i++) {
        if (i == 200) {
            n += (size_t)snprintf(buf + n, cap - n, "...");
            break;
        }
        unsigned char c = (unsigned char)v[i];
        if (c < 0x20 || c == 0x7f) n += (size_t)snprintf(buf + n, cap - n, "\\x%02x", c);
        else buf[n++] = (char)c;
    }
    buf[n] = '\0';
}

/* ---- listings and docs -------------------------------------------------------------------- */

Test(options, help_lists_every_option_as_docs_tuning_md_does) {
    so_opt docs[SO_MAX_OPTS], help[SO_MAX_OPTS];
    int nd = so_docs_options(docs);
    cr_assert_geq(nd, 8, "docs/tuning.md lists %d options", nd);

    so_proc p;
    const char *argv[] = {"/bin/true", NULL};
    const char *env[] = {"UMALLOC_HELP=1", NULL};
    so_run(&p, argv, 1, env);
    cr_expect_eq(so_exit_code(&p), 0);
    cr_expect_str_empty(p.outbuf);
    cr_expect(strstr(p.errbuf, "umalloc " UMALLOC_VERSION) != NULL, "no version in: %s", p.errbuf);
    int nh = so_help_options(p.errbuf, help);
    cr_expect_eq(nh, nd, "UMALLOC_HELP lists %d options, docs/tuning.md %d", nh, nd);
    for (int i = 0; i < nh && i < nd; i++) {
        const so_opt *h = &help[i], *d = so_find(docs, nd, h->name);
        cr_expect_not_null(d, "%s is in UMALLOC_HELP, not in docs/tuning.md; expected row:\n"
                              "| `%s` | %s | `%s` | %s | %s |",
                           h->name, h->name, h->type, h->def, h->help, h->accepted);
        if (!d) continue;
        cr_expect_str_eq(d->type, h->type, "%s: type", h->name);
        cr_expect_str_eq(d->def, h->def, "%s: default", h->name);
        cr_expect_str_eq(d->help, h->help, "%s: description", h->name);
        cr_expect_str_eq(d->accepted, h->accepted, "%s: accepted values", h->name);
        cr_expect_str_eq(docs[i].name, h->name, "docs/tuning.md: row %d is not in HELP's order", i);
    }
    for (int i = 0; i < nd; i++)
        cr_expect_not_null(so_find(help, nh, docs[i].name), "%s is in docs/tuning.md, not in HELP",
                           docs[i].name);
    so_free(&p);
}

Test(options, verbose_lists_every_option_with_value_and_source) {
    so_opt docs[SO_MAX_OPTS];
    int nd = so_docs_options(docs);
    so_proc p;
    const char *argv[] = {"/bin/true", NULL};
    const char *env[] = {"UMALLOC_VERBOSE=1", "UMALLOC_PURGE_DELAY_MS=2s", NULL};
    so_run(&p, argv, 1, env);
    cr_expect_eq(so_exit_code(&p), 0);
    cr_expect(strstr(p.errbuf, "umalloc " UMALLOC_VERSION) != NULL, "no version in: %s", p.errbuf);
    int listed = 0;
    for (int i = 0; i < nd; i++) {
        char want[512];
        if (strcmp(docs[i].name, "UMALLOC_VERBOSE") == 0)
            snprintf(want, sizeof want, "umalloc:   UMALLOC_VERBOSE=1 (environment)\n");
        else if (strcmp(docs[i].name, "UMALLOC_PURGE_DELAY_MS") == 0)
            snprintf(want, sizeof want, "umalloc:   UMALLOC_PURGE_DELAY_MS=2000 (environment)\n");
        else
            snprintf(want, sizeof want, "umalloc:   %.63s=%.127s (default)\n", docs[i].name,
                     strcmp(docs[i].def, "\"\"") == 0 ? "" : docs[i].def);
        cr_expect(strstr(p.errbuf, want) != NULL, "VERBOSE lacks \"%s\" in:\n%s", want, p.errbuf);
        listed++;
    }
    cr_expect_eq(so_count_lines(p.errbuf), listed + 1, "VERBOSE printed:\n%s", p.errbuf);
    so_free(&p);
}

Test(options, nothing_printed_when_all_is_well) {
    so_proc base, p;
    so_probe(&base, NULL, "UMALLOC_VERBOSE");
    cr_expect_eq(so_exit_code(&base), 7);
    cr_expect_str_empty(base.errbuf);
    cr_expect(strstr(base.outbuf, "UMALLOC_VERBOSE=0 (0)\n") != NULL, "probe: %s", base.outbuf);
    const char *env[] = {"UMALLOC_VERBOSE=0",       "UMALLOC_HELP=off",
                         "UMALLOC_PURGE_DELAY_MS=5", "UMALLOC_LARGE_THRESHOLD=256K",
                         "UMALLOC_STATS_SIGNAL=USR2", "UMALLOC_STATS_FORMAT=json",
                         NULL};
    so_probe(&p, env, "UMALLOC_VERBOSE");
    cr_expect_eq(so_exit_code(&p), 7);
    cr_expect_str_empty(p.errbuf);
    cr_expect_str_eq(p.outbuf, base.outbuf);
    so_free(&base);
    so_free(&p);
}

Test(options, help_and_verbose_leave_the_program_alone) {
    so_proc base, p;
    so_probe(&base, NULL, "UMALLOC_HELP");
    const char *env[] = {"UMALLOC_HELP=yes", "UMALLOC_VERBOSE=TRUE", NULL};
    so_probe(&p, env, "UMALLOC_STATS_FORMAT");
    cr_expect_eq(so_exit_code(&p), 7);
    cr_expect(strstr(p.errbuf, "umalloc:   UMALLOC_HELP=1 (environment)") != NULL, "%s", p.errbuf);
    cr_expect(strstr(p.errbuf, "accepted: ") != NULL, "%s", p.errbuf);
    /* The program's output is what it is without the listings. */
    so_proc q;
    so_probe(&q, NULL, "UMALLOC_STATS_FORMAT");
    cr_expect_str_eq(p.outbuf, q.outbuf);
    so_free(&base);
    so_free(&p);
    so_free(&q);
}

/* ---- every option: good values are taken, bad ones reported --------------------------------- */

typedef struct {
    const char *value, *text; /* given, and as um_option_get_string shows it */
    long long number;
} so_good;

/* Check good values (taken, silently) and bad ones (one line each, default used, program
 * untouched) of option name. */
static void so_check_option(const char *name, const so_good *good, const char *const *bad) {
    so_opt docs[SO_MAX_OPTS];
    int nd = so_docs_options(docs);
    const so_opt *d = so_find(docs, nd, name);
    cr_assert_not_null(d, "%s not in docs/tuning.md", name);

    so_proc base;
    so_probe(&base, NULL, name);
    cr_assert_eq(so_exit_code(&base), 7, "probe: %s %s", base.outbuf, base.errbuf);
    cr_assert_str_empty(base.errbuf);
    cr_assert(strstr(base.outbuf, "\ndone\n") != NULL, "probe output: %s", base.outbuf);
    cr_assert(strstr(base.outbuf, "no-umalloc") == NULL, "um_option_get is not exported");

    for (int i = 0; good && good[i].value; i++) {
        char var[8192], want[8192];
        snprintf(var, sizeof var, "%s=%s", name, good[i].value);
        const char *env[] = {var, NULL};
        so_proc p;
        so_probe(&p, env, name);
        cr_expect_eq(so_exit_code(&p), 7, "%s", var);
        snprintf(want, sizeof want, "%s=%s (%lld)\n", name, good[i].text, good[i].number);
        cr_expect(strstr(p.outbuf, want) != NULL, "%s: expected \"%s\" in:\n%s", var, want, p.outbuf);
        if (strcmp(name, "UMALLOC_HELP") != 0 && strcmp(name, "UMALLOC_VERBOSE") != 0 &&
            strcmp(name, "UMALLOC_STATS_AT_EXIT") != 0)
            cr_expect_str_empty(p.errbuf, "%s printed: %s", var, p.errbuf);
        so_free(&p);
    }

    int nbad = 0;
    for (int i = 0; bad[i]; i++, nbad++) {
        char var[8192], shown[1024], want[2048];
        snprintf(var, sizeof var, "%s=%s", name, bad[i]);
        const char *env[] = {var, NULL};
        so_proc p;
        so_probe(&p, env, name);
        so_shown(shown, sizeof shown, bad[i]);
        snprintf(want, sizeof want, "umalloc: %s=%s is not valid: expected %s; using the default %s\n",
                 name, shown, d->accepted, d->def);
        cr_expect_str_eq(p.errbuf, want, "%s", var);
        cr_expect_eq(so_count_lines(p.errbuf), 1, "%s: %d lines", var, so_count_lines(p.errbuf));
        cr_expect_eq(so_exit_code(&p), 7, "%s: exit status %d", var, so_exit_code(&p));
        cr_expect_str_eq(p.outbuf, base.outbuf, "%s: stdout (and so the value) differs", var);
        so_free(&p);
    }
    cr_expect_geq(nbad, 3);
    so_free(&base);
}

Test(options, verbose_values) {
    static const so_good good[] = {{"1", "1", 1}, {"true", "1", 1}, {"YES", "1", 1},
                                   {"On", "1", 1}, {"0", "0", 0},   {"False", "0", 0},
                                   {"no", "0", 0}, {" off ", "0", 0}, {NULL, NULL, 0}};
    static const char *const bad[] = {"2", "yess", "", "enable", "-1", NULL};
    so_check_option("UMALLOC_VERBOSE", good, bad);
}

Test(options, verbose_takes_effect) {
    const char *on[] = {"1", "true", "yes", "ON"};
    for (int i = 0; i < 4; i++) {
        char var[64];
        snprintf(var, sizeof var, "UMALLOC_VERBOSE=%s", on[i]);
        const char *env[] = {var, NULL};
        so_proc p;
        so_probe(&p, env, "UMALLOC_VERBOSE");
        cr_expect(strstr(p.errbuf, "options in effect") != NULL, "%s: %s", var, p.errbuf);
        cr_expect(strstr(p.errbuf, "umalloc:   UMALLOC_VERBOSE=1 (environment)\n") != NULL, "%s", var);
        so_free(&p);
    }
    const char *env[] = {"UMALLOC_VERBOSE=off", NULL};
    so_proc p;
    so_probe(&p, env, "UMALLOC_VERBOSE");
    cr_expect_str_empty(p.errbuf);
    so_free(&p);
}

Test(options, help_values) {
    static const so_good good[] = {{"1", "1", 1}, {"TRUE", "1", 1}, {"yes", "1", 1},
                                   {"on", "1", 1}, {"0", "0", 0},   {"off", "0", 0},
                                   {NULL, NULL, 0}};
    static const char *const bad[] = {"maybe", "10", "y", "help", NULL};
    so_check_option("UMALLOC_HELP", good, bad);
}

Test(options, help_takes_effect) {
    so_opt docs[SO_MAX_OPTS];
    int nd = so_docs_options(docs);
    const char *env[] = {"UMALLOC_HELP=on", NULL};
    so_proc p;
    so_probe(&p, env, "UMALLOC_HELP");
    cr_expect_eq(so_exit_code(&p), 7);
    for (int i = 0; i < nd; i++) {
        char want[128];
        snprintf(want, sizeof want, "umalloc:   %.63s ", docs[i].name);
        cr_expect(strstr(p.errbuf, want) != NULL, "HELP lacks %s", docs[i].name);
    }
    so_free(&p);
}

Test(options, purge_delay_values) {
    static const so_good good[] = {{"0", "0", 0},         {"250", "250", 250},
                                   {"250ms", "250", 250}, {"250 MS", "250", 250},
                                   {"2s", "2000", 2000},  {"3600000", "3600000", 3600000},
                                   {"3600s", "3600000", 3600000}, {NULL, NULL, 0}};
    static const char *const bad[] = {"abc",  "-5",    "3600001", "3601s",
                                      "1h",   "1.5s",  "",        "99999999999999999999999",
                                      "10 m", "0x10", NULL};
    so_check_option("UMALLOC_PURGE_DELAY_MS", good, bad);
}

/* opt_purge WAIT with UMALLOC_PURGE_DELAY_MS=value (NULL: unset): how much of the 32 MiB it
 * freed went back to the OS (committed_bytes went down) when the frees returned (*at_free) and
 * by the end of the wait (the result). */
static long long so_released_after(const char *value, const char *wait_ms, long long *at_free) {
    char prog[PATH_MAX], var[128];
    so_prog(prog, sizeof prog, "opt_purge");
    snprintf(var, sizeof var, "UMALLOC_PURGE_DELAY_MS=%s", value ? value : "");
    const char *argv[] = {prog, wait_ms, NULL};
    const char *env[] = {var, NULL};
    so_proc p;
    so_run(&p, argv, 1, value ? env : NULL);
    cr_expect_eq(so_exit_code(&p), 0, "opt_purge: %s %s", p.outbuf, p.errbuf);
    long long freed = -1, after = -1;
    unsigned long long purged = 0;
    int k = sscanf(p.outbuf, "released_at_free=%lld released_after_wait=%lld purged_after_wait=%llu",
                   &freed, &after, &purged);
    cr_expect_eq(k, 3, "opt_purge printed: %s", p.outbuf);
    cr_log_info("UMALLOC_PURGE_DELAY_MS=%s, %s ms: %s", value ? value : "(unset)", wait_ms, p.outbuf);
    so_free(&p);
    if (at_free) *at_free = freed;
    return after;
}

#define SO_MiB (1024LL * 1024)

Test(options, purge_delay_takes_effect) {
    long long at_free;
    /* 0: the freed memory goes back to the OS at once. */
    long long r = so_released_after("0", "20", &at_free);
    cr_expect_geq(at_free, 16 * SO_MiB, "UMALLOC_PURGE_DELAY_MS=0: %lld bytes released at free", at_free);
    cr_expect_geq(r, 16 * SO_MiB, "UMALLOC_PURGE_DELAY_MS=0: %lld bytes released", r);
    /* An hour: it stays during a 300 ms run. */
    r = so_released_after("3600s", "300", &at_free);
    cr_expect_lt(r, 4 * SO_MiB, "UMALLOC_PURGE_DELAY_MS=3600s: %lld bytes released in 300 ms", r);
    cr_expect_lt(at_free, 4 * SO_MiB, "UMALLOC_PURGE_DELAY_MS=3600s: %lld bytes released at free", at_free);
    /* The default (100 ms), and the default after a bad value: kept at free, back within 300 ms. */
    r = so_released_after(NULL, "300", &at_free);
    cr_expect_lt(at_free, 4 * SO_MiB, "default delay: %lld bytes released at free", at_free);
    cr_expect_geq(r, 16 * SO_MiB, "default delay: only %lld bytes released in 300 ms", r);
    r = so_released_after("abc", "300", &at_free);
    cr_expect_geq(r, 16 * SO_MiB, "a bad value did not leave the default: %lld bytes released", r);
    /* 1 s: kept at 300 ms, back by 1.5 s. */
    r = so_released_after("1s", "300", NULL);
    cr_expect_lt(r, 4 * SO_MiB, "UMALLOC_PURGE_DELAY_MS=1s: %lld bytes released at 300 ms", r);
    r = so_released_after("1000", "1500", NULL);
    cr_expect_geq(r, 16 * SO_MiB, "UMALLOC_PURGE_DELAY_MS=1000: only %lld bytes released at 1.5 s", r);
}

Test(options, large_threshold_values) {
    static const so_good good[] = {{"4096", "4KiB", 4096},         {"64K", "64KiB", 65536},
                                   {"64k", "64KiB", 65536},        {"64KiB", "64KiB", 65536},
                                   {"128kib", "128KiB", 131072},   {"100000", "100000", 100000},
                                   {"512K", "512KiB", 524288},     {" 256 KB ", "256KiB", 262144},
                                   {"524288", "512KiB", 524288},   {NULL, NULL, 0}};
    static const char *const bad[] = {"1K",   "1M",  "4095", "12Q", "18446744073709551616",
                                      "9999999999999G", "-4K", "4.5K", "K", "", "1T", NULL};
    so_check_option("UMALLOC_LARGE_THRESHOLD", good, bad);
}

typedef struct {
    size_t size, usable;
    long long large_delta;
} so_large;

/* opt_large with UMALLOC_LARGE_THRESHOLD=value (NULL: unset) on sizes. */
static int so_run_large(const char *value, const char *const *sizes, so_large *res) {
    char prog[PATH_MAX], var[128];
    so_prog(prog, sizeof prog, "opt_large");
    snprintf(var, sizeof var, "UMALLOC_LARGE_THRESHOLD=%s", value ? value : "");
    const char *argv[16] = {prog};
    int n = 0;
    while (sizes[n] && n < 14) {
        argv[n + 1] = sizes[n];
        n++;
    }
    argv[n + 1] = NULL;
    const char *env[] = {var, NULL};
    so_proc p;
    so_run(&p, argv, 1, value ? env : NULL);
    cr_expect_eq(so_exit_code(&p), 0, "opt_large: %s %s", p.outbuf, p.errbuf);
    const char *l = p.outbuf;
    int got = 0;
    for (int i = 0; i < n && l; i++) {
        if (sscanf(l, "%zu usable=%zu large_delta=%lld", &res[i].size, &res[i].usable,
                   &res[i].large_delta) == 3)
            got++;
        l = strchr(l, '\n');
        if (l) l++;
    }
    cr_expect_eq(got, n, "opt_large printed: %s", p.outbuf);
    so_free(&p);
    return got;
}

static void so_expect_large(const so_large *r, int large, const char *value) {
    if (large) {
        cr_expect_geq(r->large_delta, (long long)r->size,
                      "threshold %s: %zu bytes should be mapped on its own (large_bytes +%lld)",
                      value ? value : "default", r->size, r->large_delta);
        cr_expect_eq(r->usable % 4096, 0, "threshold %s: a large block of %zu has usable size %zu",
                     value ? value : "default", r->size, r->usable);
    } else {
        cr_expect_eq(r->large_delta, 0,
                     "threshold %s: %zu bytes should come from a page (large_bytes +%lld)",
                     value ? value : "default", r->size, r->large_delta);
    }
    cr_expect_geq(r->usable, r->size);
}

Test(options, large_threshold_takes_effect) {
    const char *sizes[] = {"5000", "100000", "300000", "600000", NULL};
    so_large r[4];
    /* The default, 512 KiB: only the 600000-byte block is large. A bad value leaves it. */
    const char *defaults[] = {NULL, "abc"};
    for (int k = 0; k < 2; k++) {
        if (so_run_large(defaults[k], sizes, r) == 4) {
            so_expect_large(&r[0], 0, defaults[k]);
            so_expect_large(&r[1], 0, defaults[k]);
            so_expect_large(&r[2], 0, defaults[k]);
            so_expect_large(&r[3], 1, defaults[k]);
        }
    }
    if (so_run_large("64K", sizes, r) == 4) {
        so_expect_large(&r[0], 0, "64K");
        so_expect_large(&r[1], 1, "64K");
        so_expect_large(&r[2], 1, "64K");
        so_expect_large(&r[3], 1, "64K");
    }
    if (so_run_large("4K", sizes, r) == 4) {
        for (int i = 0; i < 4; i++) so_expect_large(&r[i], 1, "4K");
    }
    /* At the threshold exactly: large. */
    const char *at[] = {"65536", "65535", NULL};
    if (so_run_large("64KiB", at, r) == 2) {
        so_expect_large(&r[0], 1, "64KiB");
        so_expect_large(&r[1], 0, "64KiB");
    }
}

Test(options, stats_signal_values) {
    static const so_good good[] = {{"USR2", "USR2", SIGUSR2},     {"SIGUSR2", "USR2", SIGUSR2},
                                   {"usr1", "USR1", SIGUSR1},     {"12", "USR2", 12},
                                   {"none", "none", 0},           {"NONE", "none", 0},
                                   {"SIGHUP", "HUP", SIGHUP},     {"RTMIN", "RTMIN", 34},
                                   {"RTMIN+2", "RTMIN+2", 36},    {"SIGRTMAX-1", "RTMAX-1", 63},
                                   {"64", "RTMAX", 64},           {NULL, NULL, 0}};
    static const char *const bad[] = {"FOO", "0",  "65",        "9",    "KILL", "SIGSTOP",
                                      "19",  "32", "RTMIN+99",  "USR1x", "",    "-10",
                                      NULL};
    so_check_option("UMALLOC_STATS_SIGNAL", good, bad);
}

Test(options, stats_at_exit_values) {
    static const so_good good[] = {{"0", "0", 0}, {"no", "0", 0}, {"1", "1", 1},
                                   {"yes", "1", 1}, {NULL, NULL, 0}};
    static const char *const bad[] = {"2", "nope", "on1", "", NULL};
    so_check_option("UMALLOC_STATS_AT_EXIT", good, bad);
}

Test(options, stats_file_values) {
    static const so_good good[] = {{"/tmp/umalloc-stats.%p", "/tmp/umalloc-stats.%p", 21},
                                   {"stats 100%%.txt", "stats 100%%.txt", 15},
                                   {"", "", 0},
                                   {NULL, NULL, 0}};
    static char toolong[5001];
    memset(toolong, 'a', 5000);
    const char *bad[] = {"/tmp/x.%d", "/tmp/dir/", "a\tb", "/tmp/x\n", "100%", toolong, NULL};
    so_check_option("UMALLOC_STATS_FILE", good, bad);
}

Test(options, stats_format_values) {
    static const so_good good[] = {{"text", "text", 0}, {"json", "json", 1}, {"JSON", "json", 1},
                                   {"Text", "text", 0}, {NULL, NULL, 0}};
    static const char *const bad[] = {"xml", "JSONL", "1", "", "text,json", NULL};
    so_check_option("UMALLOC_STATS_FORMAT", good, bad);
}

/* ---- unknown names -------------------------------------------------------------------------- */

Test(options, unknown_names_get_one_line_with_a_suggestion) {
    static const struct {
        const char *var, *suggest;
    } cases[] = {
        {"UMALLOC_PURGE_DELAY=5", "UMALLOC_PURGE_DELAY_MS"},
        {"UMALLOC_VERBOS=1", "UMALLOC_VERBOSE"},
        {"UMALLOC_verbose=1", "UMALLOC_VERBOSE"},
        {"UMALLOC_LARGE_TRESHOLD=64K", "UMALLOC_LARGE_THRESHOLD"},
        {"UMALLOC_STATS_FROMAT=json", "UMALLOC_STATS_FORMAT"},
        {"UMALLOC_XYZZY=1", NULL},
    };
    so_proc base;
    so_probe(&base, NULL, "UMALLOC_VERBOSE");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *env[] = {cases[i].var, NULL};
        so_proc p;
        so_probe(&p, env, "UMALLOC_VERBOSE");
        char want[512];
        if (cases[i].suggest)
            snprintf(want, sizeof want,
                     "umalloc: %s is not a known option: did you mean %s? (UMALLOC_HELP=1 lists "
                     "all options); ignored\n",
                     cases[i].var, cases[i].suggest);
        else
            snprintf(want, sizeof want,
                     "umalloc: %s is not a known option (UMALLOC_HELP=1 lists all options); "
                     "ignored\n",
                     cases[i].var);
        cr_expect_str_eq(p.errbuf, want);
        cr_expect_eq(so_exit_code(&p), 7);
        cr_expect_str_eq(p.outbuf, base.outbuf);
        so_free(&p);
    }
    so_free(&base);
}

Test(options, several_mistakes_one_line_each_and_first_definition_wins) {
    const char *env[] = {"UMALLOC_PURGE_DELAY_MS=5", "UMALLOC_PURGE_DELAY_MS=abc",
                         "UMALLOC_STATS_FORMAT=xml", "UMALLOC_HELLO=1",
                         "UMALLOC_LARGE_THRESHOLD=1G", NULL};
    so_proc p;
    so_probe(&p, env, "UMALLOC_PURGE_DELAY_MS");
    cr_expect_eq(so_count_lines(p.errbuf), 3, "%s", p.errbuf);
    cr_expect(strstr(p.outbuf, "UMALLOC_PURGE_DELAY_MS=5 (5)\n") != NULL, "%s", p.outbuf);
    cr_expect(strstr(p.errbuf, "UMALLOC_STATS_FORMAT=xml is not valid") != NULL);
    cr_expect(strstr(p.errbuf, "UMALLOC_HELLO=1 is not a known option") != NULL);
    cr_expect(strstr(p.errbuf, "UMALLOC_LARGE_THRESHOLD=1G is not valid") != NULL);
    so_free(&p);
}

/* ---- setuid programs, and environ == NULL ----------------------------------------------------- */

/* opt_probe linked with build/libumalloc.a, built into dir. Why not the preloaded probe: ld.so
 * ignores LD_PRELOAD paths (and LD_LIBRARY_PATH) in a setuid program, and an rpath would need
 * the library in a trusted place; linking the static archive makes umalloc's option code part
 * of the setuid program itself, as it would be in a program linked with umalloc. */
static int so_build_linked_probe(const char *dir, char *out, size_t cap) {
    char src[PATH_MAX], lib[PATH_MAX], inc[PATH_MAX], cmd[4 * PATH_MAX];
    so_path(src, sizeof src, NULL, "test/progs/opt_probe.c");
    so_path(lib, sizeof lib, "UM_TEST_STATIC_LIB", "build/libumalloc.a");
    so_path(inc, sizeof inc, NULL, "include");
    snprintf(out, cap, "%s/opt_probe_linked", dir);
    snprintf(cmd, sizeof cmd,
             "${CC:-cc} -std=gnu11 -O1 -g -I'%s' -D_GNU_SOURCE -DOPT_PROBE_LINKED -o '%s' '%s' '%s' "
             "-pthread -ldl -lm",
             inc, out, src, lib);
    int rc = system(cmd);
    cr_assert_eq(rc, 0, "could not build the linked probe: %s", cmd);
    return 0;
}

/* A directory for a setuid binary: not on a nosuid filesystem. */
static int so_suid_dir(char *dir, size_t cap) {
    const char *bases[2] = {"/tmp", NULL};
    char build[PATH_MAX];
    so_path(build, sizeof build, NULL, "build/test");
    bases[1] = build;
    for (int i = 0; i < 2; i++) {
        struct statvfs sv;
        if (statvfs(bases[i], &sv) != 0 || (sv.f_flag & ST_NOSUID)) continue;
        snprintf(dir, cap, "%s/umalloc-suid-XXXXXX", bases[i]);
        if (mkdtemp(dir) == NULL) continue;
        chmod(dir, 0755);
        return 0;
    }
    return -1;
}

static void so_rm_dir(const char *dir) {
    char cmd[PATH_MAX + 32];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) cr_log_warn("could not remove %s", dir);
}

Test(options, setuid_program_ignores_umalloc_variables) {
    if (geteuid() != 0) cr_skip_test("needs root to make a setuid-nobody program");
    char dir[PATH_MAX], probe[PATH_MAX];
    if (so_suid_dir(dir, sizeof dir) != 0) cr_skip_test("no filesystem without nosuid");
    so_build_linked_probe(dir, probe, sizeof probe);
    const char *argv[] = {probe, "--exit", "5", "UMALLOC_PURGE_DELAY_MS", "UMALLOC_VERBOSE",
                          "UMALLOC_STATS_FORMAT", NULL};
    const char *env[] = {"UMALLOC_VERBOSE=1", "UMALLOC_PURGE_DELAY_MS=77",
                         "UMALLOC_STATS_FORMAT=bogus", "UMALLOC_NOPE=1", NULL};

    /* As a control, not setuid: the options are read (and the mistakes reported). */
    so_proc p;
    so_run(&p, argv, 0, env);
    cr_expect_eq(so_exit_code(&p), 5, "%s %s", p.outbuf, p.errbuf);
    cr_expect(strstr(p.outbuf, "secure=0\n") != NULL, "%s", p.outbuf);
    cr_expect(strstr(p.outbuf, "UMALLOC_PURGE_DELAY_MS=77 (77)\n") != NULL, "%s", p.outbuf);
    cr_expect(strstr(p.outbuf, "UMALLOC_VERBOSE=1 (1)\n") != NULL, "%s", p.outbuf);
    cr_expect(strstr(p.errbuf, "options in effect") != NULL, "%s", p.errbuf);
    cr_expect(strstr(p.errbuf, "UMALLOC_STATS_FORMAT=bogus is not valid") != NULL, "%s", p.errbuf);
    cr_expect(strstr(p.errbuf, "UMALLOC_NOPE=1 is not a known option") != NULL, "%s", p.errbuf);
    so_free(&p);

    /* setuid nobody, run by root: euid != ruid, so the kernel sets AT_SECURE. */
    struct passwd *pw = getpwnam("nobody");
    uid_t nobody = pw ? pw->pw_uid : 65534;
    cr_assert_eq(chown(probe, nobody, (gid_t)-1), 0, "chown: %s", strerror(errno));
    cr_assert_eq(chmod(probe, 04755), 0, "chmod: %s", strerror(errno));
    so_run(&p, argv, 0, env);
    cr_expect_eq(so_exit_code(&p), 5, "%s %s", p.outbuf, p.errbuf);
    cr_expect(strstr(p.outbuf, "secure=1\n") != NULL, "AT_SECURE is not set: %s", p.outbuf);
    char want_default[64]; /* the table's default, whatever it is */
    long long def = umi_option_table[UM_OPT_PURGE_DELAY_MS].def;
    snprintf(want_default, sizeof want_default, "UMALLOC_PURGE_DELAY_MS=%lld (%lld)\n", def, def);
    cr_expect(strstr(p.outbuf, want_default) != NULL, "%s", p.outbuf);
    cr_expect(strstr(p.outbuf, "UMALLOC_VERBOSE=0 (0)\n") != NULL, "%s", p.outbuf);
    cr_expect(strstr(p.outbuf, "UMALLOC_STATS_FORMAT=text (0)\n") != NULL, "%s", p.outbuf);
    cr_expect_str_empty(p.errbuf, "a setuid program printed: %s", p.errbuf);
    so_free(&p);

    /* With UMALLOC_HELP too: still nothing. */
    const char *env2[] = {"UMALLOC_HELP=1", "UMALLOC_LARGE_THRESHOLD=abc", NULL};
    so_run(&p, argv, 0, env2);
    cr_expect(strstr(p.outbuf, "secure=1\n") != NULL, "%s", p.outbuf);
    cr_expect_str_empty(p.errbuf, "a setuid program printed: %s", p.errbuf);
    so_free(&p);
    so_rm_dir(dir);
}

Test(options, environ_null_falls_back_to_proc_self_environ) {
    char dir[PATH_MAX], probe[PATH_MAX];
    snprintf(dir, sizeof dir, "/tmp/umalloc-probe-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    so_build_linked_probe(dir, probe, sizeof probe);
    /* Big variables around ours, so that they straddle the 4 KiB chunks /proc is read in. */
    static char big[3][6000];
    for (int i = 0; i < 3; i++) {
        snprintf(big[i], sizeof big[i], "UM_FILLER_%d=", i);
        size_t n = strlen(big[i]);
        memset(big[i] + n, 'x', 4093 + (size_t)i * 7 - n);
    }
    static char longpath[4300];
    strcpy(longpath, "UMALLOC_STATS_FILE=/");
    memset(longpath + strlen(longpath), 'p', 4200); /* too long: rejected */
    const char *env[] = {big[0], "UMALLOC_PURGE_DELAY_MS=77", big[1], "UMALLOC_STATS_FORMAT=json",
                         big[2], "UMALLOC_LARGE_THRESHOLD=abc", longpath, "UMALLOC_VERBOSE=yes",
                         NULL};
    const char *argv[] = {probe, "--null-environ", "UMALLOC_PURGE_DELAY_MS", "UMALLOC_STATS_FORMAT",
                          "UMALLOC_LARGE_THRESHOLD", "UMALLOC_STATS_FILE", NULL};
    so_proc p;
    so_run(&p, argv, 0, env);
    cr_expect_eq(so_exit_code(&p), 0, "%s %s", p.outbuf, p.errbuf);
    cr_expect(strstr(p.outbuf, "UMALLOC_PURGE_DELAY_MS=77 (77)\n") != NULL, "%s", p.outbuf);
    cr_expect(strstr(p.outbuf, "UMALLOC_STATS_FORMAT=json (1)\n") != NULL, "%s", p.outbuf);
    cr_expect(strstr(p.outbuf, "UMALLOC_LARGE_THRESHOLD=512KiB (524288)\n") != NULL, "%s", p.outbuf);
    cr_expect(strstr(p.outbuf, "UMALLOC_STATS_FILE= (0)\n") != NULL, "%s", p.outbuf);
    cr_expect(strstr(p.errbuf, "UMALLOC_LARGE_THRESHOLD=abc is not valid") != NULL, "%s", p.errbuf);
    cr_expect(strstr(p.errbuf, "UMALLOC_STATS_FILE=/ppp") != NULL, "%s", p.errbuf);
    cr_expect(strstr(p.errbuf, "umalloc:   UMALLOC_VERBOSE=1 (environment)") != NULL, "%s", p.errbuf);
    so_free(&p);
    so_rm_dir(dir);
}

/* ---- the statistics options: need stats/ ------------------------------------------------------ */

static int so_has_json_line(const char *s) {
    while (*s) {
        const char *e = strchr(s, '\n');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n >= 2 && s[0] == '{' && s[n - 1] == '}') return 1;
        s = e ? e + 1 : s + n;
    }
    return 0;
}

static int so_has_brace_line(const char *s) {
    if (*s == '{') return 1;
    return strstr(s, "\n{") != NULL;
}

Test(options_stats, at_exit_dumps_to_stderr) {
    so_proc base, p;
    so_probe(&base, NULL, "UMALLOC_STATS_AT_EXIT");
    cr_expect_str_empty(base.errbuf, "a dump without UMALLOC_STATS_AT_EXIT: %s", base.errbuf);
    const char *env[] = {"UMALLOC_STATS_AT_EXIT=1", NULL};
    so_probe(&p, env, "UMALLOC_STATS_AT_EXIT");
    cr_expect_eq(so_exit_code(&p), 7);
    cr_expect(strstr(p.errbuf, "umalloc") != NULL, "no dump at exit: \"%s\"", p.errbuf);
    cr_expect(!so_has_brace_line(p.errbuf), "the text dump looks like JSON: %s", p.errbuf);
    /* stdout is the program's: only the value of the option differs. */
    cr_expect(strstr(p.outbuf, "UMALLOC_STATS_AT_EXIT=1 (1)\n") != NULL, "%s", p.outbuf);
    cr_expect(strstr(p.outbuf, "\ndone\n") != NULL);
    so_free(&base);
    so_free(&p);
}

Test(options_stats, json_format_dumps_a_json_line) {
    const char *env[] = {"UMALLOC_STATS_AT_EXIT=yes", "UMALLOC_STATS_FORMAT=json", NULL};
    so_proc p;
    so_probe(&p, env, "UMALLOC_STATS_FORMAT");
    cr_expect_eq(so_exit_code(&p), 7);
    cr_expect(so_has_json_line(p.errbuf), "no JSON line in the dump: \"%s\"", p.errbuf);
    so_free(&p);
}

Test(options_stats, file_receives_the_dump_with_pid) {
    char dir[PATH_MAX], var[PATH_MAX + 64], path[PATH_MAX + 64];
    snprintf(dir, sizeof dir, "/tmp/umalloc-stats-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(var, sizeof var, "UMALLOC_STATS_FILE=%s/x.%%p", dir);
    const char *env[] = {"UMALLOC_STATS_AT_EXIT=1", var, NULL};
    char prog[PATH_MAX];
    so_prog(prog, sizeof prog, "opt_probe");
    const char *argv[] = {prog, "--exit", "7", "UMALLOC_STATS_FILE", NULL};
    so_proc p;
    so_spawn(&p, argv, 1, env);
    pid_t pid = p.pid;
    so_finish(&p);
    cr_expect_eq(so_exit_code(&p), 7);
    cr_expect_str_empty(p.errbuf, "the dump went to stderr: %s", p.errbuf);
    snprintf(path, sizeof path, "%s/x.%d", dir, (int)pid);
    struct stat st;
    cr_expect(stat(path, &st) == 0 && st.st_size > 0, "no dump in %s", path);
    so_free(&p);
    so_rm_dir(dir);
}

/* opt_wait under env: send sig once it runs; its exit status and stderr. */
static void so_signal_run(so_proc *p, const char *const *env, int sig) {
    char prog[PATH_MAX];
    so_prog(prog, sizeof prog, "opt_wait");
    const char *argv[] = {prog, NULL};
    so_spawn(p, argv, 1, env);
    so_pump(p, 10000, "ready\n");
    cr_expect(p->outbuf && strstr(p->outbuf, "ready\n"), "opt_wait did not start");
    kill(p->pid, sig);
    so_pump(p, 300, NULL);
    so_finish(p);
}

Test(options_stats, signal_makes_a_dump) {
    so_proc p;
    so_signal_run(&p, NULL, SIGUSR1); /* the default: USR1 */
    cr_expect_eq(so_exit_code(&p), 0, "SIGUSR1 (the default) was not handled");
    cr_expect(strstr(p.errbuf, "umalloc") != NULL, "no dump on SIGUSR1: \"%s\"", p.errbuf);
    so_free(&p);

    const char *env[] = {"UMALLOC_STATS_SIGNAL=SIGUSR2", NULL};
    so_signal_run(&p, env, SIGUSR2);
    cr_expect_eq(so_exit_code(&p), 0, "SIGUSR2 was not handled");
    cr_expect(strstr(p.errbuf, "umalloc") != NULL, "no dump on SIGUSR2: \"%s\"", p.errbuf);
    so_free(&p);

    /* USR2 chosen: USR1 is left alone, and kills. */
    so_signal_run(&p, env, SIGUSR1);
    cr_expect_eq(so_exit_code(&p), 128 + SIGUSR1, "SIGUSR1 was handled with STATS_SIGNAL=USR2");
    so_free(&p);

    const char *none[] = {"UMALLOC_STATS_SIGNAL=none", NULL};
    so_signal_run(&p, none, SIGUSR1);
    cr_expect_eq(so_exit_code(&p), 128 + SIGUSR1, "SIGUSR1 was handled with STATS_SIGNAL=none");
    so_free(&p);
}
