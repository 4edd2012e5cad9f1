/* System tests of the statistics dumps (stats/dump.c, stats/signal.c, scripts/umalloc-stat):
 * programs from test/progs/stats_*.c run under LD_PRELOAD=build/libumalloc.so.
 *
 * Suites:
 *   stats_signal  1000 SIGUSR1 into a 4-thread program under allocation load: it finishes
 *                 correctly, and every dump is a JSON line; the dumps are accounted for.
 *   stats_exit    the at-exit dump of a program holding K known blocks shows them.
 *   stats_file    an unwritable UMALLOC_STATS_FILE: one clear line, the program unchanged.
 *   stats_text    the text dump: the summary adds up, the classes are listed.
 *   stats_script  scripts/umalloc-stat against running programs, with and without umalloc.
 *   stats_format  the formatter itself (linked from build/libumalloc.a): a dump that does not
 *                 fit its buffer is cut at a boundary and still parses; um_stats_print.
 *
 * The dumps are checked with a strict JSON parser (RFC 8259: no trailing commas, no bare
 * control characters in strings, numbers without leading zeros, nothing after the value).
 */
#include "sys_util.h"

#include <ctype.h>
#include <math.h>
#include <stdbool.h>

#include "umalloc.h"

/* ---- a strict JSON parser ------------------------------------------------------------------- */

enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };
typedef struct jv {
    int type;
    int b;
    double num;
    char *text; /* J_NUM: the number as written; J_STR: the string (escapes decoded, \u as '?') */
    size_t n;
    struct jv **items;
    char **keys; /* J_OBJ */
} jv;

typedef struct {
    const char *s, *err;
    size_t pos;
    int depth;
} jp;

static jv *jnew(int type) {
    jv *v = calloc(1, sizeof *v);
    v->type = type;
    return v;
}

static void jfree(jv *v) {
    if (!v) return;
    for (size_t i = 0; i < v->n; i++) {
        jfree(v->items[i]);
        if (v->keys) free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->text);
    free(v);
}

static void jws(jp *p) {
    while (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' || p->s[p->pos] == '\n' || p->s[p->pos] == '\r') p->pos++;
}

static jv *jvalue(jp *p);

static char *jstring(jp *p) {
    if (p->s[p->pos] != '"') { p->err = "expected a string"; return NULL; }
    p->pos++;
    size_t cap = 16, len = 0;
    char *out = malloc(cap);
    for (;;) {
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c == 0) { p->err = "unterminated string"; free(out); return NULL; }
        if (c < 0x20) { p->err = "control character in a string"; free(out); return NULL; }
        p->pos++;
        if (c == '"') break;
        if (c == '\\') {
            char e = p->s[p->pos++];
            switch (e) {
            case '"': case '\\': case '/': c = (unsigned char)e; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'n': c = '\n'; break;
            case 'r': c = '\r'; break;
            case 't': c = '\t'; break;
            case 'u':
                for (int i = 0; i < 4; i++)
                    if (!isxdigit((unsigned char)p->s[p->pos + i])) { p->err = "bad \\u escape"; free(out); return NULL; }
                p->pos += 4;
                c = '?';
                break;
            default: p->err = "bad escape"; free(out); return NULL;
            }
        }
        if (len + 2 > cap) out = realloc(out, cap *= 2);
        out[len++] = (char)c;
    }
    out[len] = 0;
    return out;
}

static jv *jnumber(jp *p) {
    size_t start = p->pos;
    const char *s = p->s;
    if (s[p->pos] == '-') p->pos++;
    if (s[p->pos] == '0') p->pos++;
    else if (s[p->pos] >= '1' && s[p->pos] <= '9') while (isdigit((unsigned char)s[p->pos])) p->pos++;
    else { p->err = "bad number"; return NULL; }
    if (s[p->pos] == '.') {
        p->pos++;
        if (!isdigit((unsigned char)s[p->pos])) { p->err = "bad fraction"; return NULL; }
        while (isdigit((unsigned char)s[p->pos])) p->pos++;
    }
    if (s[p->pos] == 'e' || s[p->pos] == 'E') {
        p->pos++;
        if (s[p->pos] == '+' || s[p->pos] == '-') p->pos++;
        if (!isdigit((unsigned char)s[p->pos])) { p->err = "bad exponent"; return NULL; }
        while (isdigit((unsigned char)s[p->pos])) p->pos++;
    }
    jv *v = jnew(J_NUM);
    v->text = strndup(s + start, p->pos - start);
    v->num = strtod(v->text, NULL);
    return v;
}

static void jpush(jv *v, char *key, jv *item) {
    v->items = realloc(v->items, (v->n + 1) * sizeof *v->items);
    if (v->type == J_OBJ) v->keys = realloc(v->keys, (v->n + 1) * sizeof *v->keys), v->keys[v->n] = key;
    v->items[v->n++] = item;
}

static jv *jvalue(jp *p) {
    jws(p);
    const char *s = p->s + p->pos;
    if (++p->depth > 64) { p->err = "nested too deep"; return NULL; }
    jv *v = NULL;
    if (*s == '{' || *s == '[') {
        int obj = *s == '{';
        char close = obj ? '}' : ']';
        v = jnew(obj ? J_OBJ : J_ARR);
        p->pos++;
        jws(p);
        if (p->s[p->pos] == close) {
            p->pos++;
        } else {
            for (;;) {
                char *key = NULL;
                jws(p);
                if (obj) {
                    if (!(key = jstring(p))) goto fail;
                    jws(p);
                    if (p->s[p->pos] != ':') { p->err = "expected ':'"; free(key); goto fail; }
                    p->pos++;
                }
                jv *item = jvalue(p);
                if (!item) { free(key); goto fail; }
                jpush(v, key, item);
                jws(p);
                if (p->s[p->pos] == ',') { p->pos++; continue; }
                if (p->s[p->pos] == close) { p->pos++; break; }
                p->err = obj ? "expected ',' or '}'" : "expected ',' or ']'";
                goto fail;
            }
        }
    } else if (*s == '"') {
        v = jnew(J_STR);
        if (!(v->text = jstring(p))) goto fail;
    } else if (strncmp(s, "true", 4) == 0 || strncmp(s, "false", 5) == 0) {
        v = jnew(J_BOOL);
        v->b = *s == 't';
        p->pos += v->b ? 4 : 5;
    } else if (strncmp(s, "null", 4) == 0) {
        v = jnew(J_NULL);
        p->pos += 4;
    } else {
        v = jnumber(p);
        if (!v) return NULL;
    }
    p->depth--;
    return v;
fail:
    jfree(v);
    return NULL;
}

/* Parse a whole text (one JSON value, whitespace around it allowed). NULL and *err on error. */
static jv *jparse(const char *text, const char **err, size_t *errpos) {
    jp p = {text, NULL, 0, 0};
    jv *v = jvalue(&p);
    if (v) {
        jws(&p);
        if (p.s[p.pos] != 0) {
            p.err = "text after the value";
            jfree(v);
            v = NULL;
        }
    }
    if (!v) {
        if (err) *err = p.err ? p.err : "error";
        if (errpos) *errpos = p.pos;
    }
    return v;
}

/* Member by dotted path ("totals.live_blocks"); NULL if missing. */
static jv *jget(jv *v, const char *path) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    char *save = NULL;
    for (char *k = strtok_r(buf, ".", &save); k && v; k = strtok_r(NULL, ".", &save)) {
        if (v->type != J_OBJ) return NULL;
        jv *found = NULL;
        for (size_t i = 0; i < v->n; i++)
            if (strcmp(v->keys[i], k) == 0) found = v->items[i];
        v = found;
    }
    return v;
}

/* A member that must be a non-negative integer. */
static unsigned long long ju(jv *v, const char *path) {
    jv *x = jget(v, path);
    cr_assert(x && x->type == J_NUM, "JSON dump: \"%s\" missing or not a number", path);
    cr_assert(strspn(x->text, "0123456789") == strlen(x->text), "JSON dump: \"%s\" = %s is not a whole number", path, x->text);
    return strtoull(x->text, NULL, 10);
}

/* ---- helpers --------------------------------------------------------------------------------- */

/* Waits until the program printed `what` on stdout (su_spawn's capture file). */
static void wait_stdout(su_proc *p, const char *what, double secs) {
    double end = su_now() + secs;
    for (;;) {
        char *out = su_read_file(p->out_tmp, NULL);
        int found = out && strstr(out, what) != NULL;
        free(out);
        if (found) return;
        int st;
        cr_assert(waitpid(p->pid, &st, WNOHANG) == 0, "the program ended before printing \"%s\"", what);
        cr_assert(su_now() < end, "the program did not print \"%s\" within %.0f s", what, secs);
        usleep(2000);
    }
}

/* 1 if sig is pending for the process as a whole (sent with kill and not yet taken by a thread). */
static int shared_pending(pid_t pid, int sig) {
    char path[64], *st;
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    if (!(st = su_read_file(path, NULL))) return 0;
    const char *l = strstr(st, "\nShdPnd:");
    unsigned long long mask = l ? strtoull(l + 8, NULL, 16) : 0;
    free(st);
    return (mask >> (sig - 1)) & 1;
}

static void touch(const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT, 0644);
    cr_assert(fd >= 0, "cannot create %s", path);
    close(fd);
}

/* Lines of a file, each a malloc'd string without its newline. */
static char **read_lines(const char *path, size_t *count) {
    char *all = su_read_file(path, NULL);
    *count = 0;
    if (!all) return NULL;
    size_t cap = 64;
    char **lines = malloc(cap * sizeof *lines);
    char *save = NULL;
    for (char *l = strtok_r(all, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        if (*count == cap) lines = realloc(lines, (cap *= 2) * sizeof *lines);
        lines[(*count)++] = strdup(l);
    }
    free(all);
    return lines;
}

static void free_lines(char **lines, size_t n) {
    for (size_t i = 0; i < n; i++) free(lines[i]);
    free(lines);
}

/* The class of `size` in a JSON dump, or NULL. */
static jv *json_class(jv *d, size_t size) {
    jv *cl = jget(d, "size_classes");
    cr_assert(cl && cl->type == J_ARR, "JSON dump: no size_classes array");
    for (size_t i = 0; i < cl->n; i++)
        if (ju(cl->items[i], "size") == size) return cl->items[i];
    return NULL;
}

/* Every class: mallocs - frees = live_blocks, live_bytes = live_blocks * size, mallocs > 0; the
 * totals agree with the classes. Exact when the program is quiet (at exit, single thread). */
static void check_classes_consistent(jv *d, const char *who) {
    jv *cl = jget(d, "size_classes");
    cr_assert(cl && cl->type == J_ARR, "%s: no size_classes array", who);
    unsigned long long live = 0, mallocs = 0, frees = 0;
    for (size_t i = 0; i < cl->n; i++) {
        jv *c = cl->items[i];
        unsigned long long m = ju(c, "mallocs"), f = ju(c, "frees"), l = ju(c, "live_blocks"), s = ju(c, "size");
        cr_expect(m > 0, "%s: class of size %llu listed with mallocs = 0", who, s);
        cr_expect(m - f == l, "%s: class of size %llu: mallocs %llu - frees %llu != live_blocks %llu", who, s, m, f, l);
        cr_expect(ju(c, "live_bytes") == l * s, "%s: class of size %llu: live_bytes %llu != %llu blocks * %llu", who, s,
                  ju(c, "live_bytes"), l, s);
        live += l;
        mallocs += m;
        frees += f;
    }
    unsigned long long large = ju(d, "totals.large_blocks");
    cr_expect(ju(d, "totals.live_blocks") == live + large, "%s: totals.live_blocks %llu != classes %llu + large %llu",
              who, ju(d, "totals.live_blocks"), live, large);
    cr_expect(ju(d, "totals.mallocs") - ju(d, "totals.frees") == ju(d, "totals.live_blocks"),
              "%s: totals: mallocs %llu - frees %llu != live_blocks %llu", who, ju(d, "totals.mallocs"),
              ju(d, "totals.frees"), ju(d, "totals.live_blocks"));
    cr_expect(mallocs <= ju(d, "totals.mallocs") && frees <= ju(d, "totals.frees"),
              "%s: the classes count more than the totals", who);
}

/* The fields docs/stats.md promises in every JSON dump. */
static void check_json_shape(jv *d, const char *who) {
    static const char *const fields[] = {
        "version", "pid", "time", "threads", "totals.mallocs", "totals.frees", "totals.live_blocks",
        "totals.live_bytes", "totals.peak_live_bytes", "totals.mapped_bytes", "totals.committed_bytes",
        "totals.free_bytes", "totals.metadata_bytes", "totals.purged_bytes", "totals.usable_bytes",
        "totals.remote_frees", "totals.failed_allocs", "totals.invalid_frees", "totals.large_blocks",
        "totals.large_bytes", "totals.threads", "totals.threads_exited", "totals.pages", "totals.segments",
        "calls.malloc", "calls.free", "calls.calloc", "calls.realloc", "calls.aligned", "calls.usable_size",
        "calls.free_sized", "calls.trim", "page_sizes.4K", "page_sizes.THP", "page_sizes.2M", "page_sizes.1G",
        "dump.seq", "dump.signals", "dump.deferred", "dump.merged", "dump.skipped",
    };
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) (void)ju(d, fields[i]);
    cr_expect_eq(ju(d, "version"), UM_STATS_VERSION, "%s: version", who);
    jv *r = jget(d, "totals.requested_bytes");
    cr_expect(r && (r->type == J_NULL || r->type == J_NUM), "%s: totals.requested_bytes must be null or a number", who);
    jv *nodes = jget(d, "nodes");
    cr_expect(nodes && nodes->type == J_ARR && nodes->n >= 1, "%s: nodes must be a non-empty array", who);
    jv *reason = jget(d, "reason");
    cr_expect(reason && reason->type == J_STR, "%s: reason must be a string", who);
    jv *t = jget(d, "truncated");
    cr_expect(t && t->type == J_BOOL && !t->b, "%s: truncated must be false", who);
}

/* ---- 1. signals under load -------------------------------------------------------------------- */

#define N_SIGNALS 1000

Test(stats_signal, json_dumps_under_load, .timeout = 240) {
    char *dir = su_tmpdir("stats-load");
    char *stop = su_fmt("%s/stop", dir);
    char *file_opt = su_fmt("UMALLOC_STATS_FILE=%s/s.%%p", dir);
    char *prog = su_prog("stats_load");
    const char *argv[] = {prog, stop, "120", NULL};
    const char *env[] = {"UMALLOC_STATS_FORMAT=json", file_opt, NULL};
    su_opts o = {.argv = argv, .env = env, .preload = 1, .timeout = 180};
    su_proc p = su_spawn(&o);
    wait_stdout(&p, "ready\n", 30);

    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    int forced = 0;
    double t0 = su_now();
    for (int i = 0; i < N_SIGNALS; i++) {
        /* Two pending SIGUSR1 merge into one: wait (up to 1 s) until the last one was taken by a
         * thread of the program, so that every signal sent is delivered. */
        double until = su_now() + 1.0;
        while (shared_pending(p.pid, SIGUSR1) && su_now() < until) usleep(100);
        if (shared_pending(p.pid, SIGUSR1)) forced++;
        cr_assert_eq(kill(p.pid, SIGUSR1), 0, "kill: %s (the program died after %d signals?)", strerror(errno), i);
        struct timespec nap = {0, (long)(rand_r(&seed) % 2001) * 1000}; /* 0..2 ms */
        nanosleep(&nap, NULL);
    }
    double send_secs = su_now() - t0;
    /* Let the last one be taken before the program is told to stop. */
    double until = su_now() + 2.0;
    while (shared_pending(p.pid, SIGUSR1) && su_now() < until) usleep(200);
    touch(stop);
    su_result r;
    su_wait(&p, &r);
    SU_ASSERT_OK(&r, "stats_load under 1000 SIGUSR1");
    cr_assert(strstr(r.out, "ok ") != NULL && strstr(r.out, "FAIL") == NULL, "stats_load: %s", r.out);

    char *dump = su_fmt("%s/s.%d", dir, (int)p.pid);
    size_t n = 0;
    char **lines = read_lines(dump, &n);
    cr_assert_not_null(lines, "no dump file %s", dump);
    unsigned long long max_signals = 0, merged = 0, skipped = 0, deferred = 0, last_seq = 0;
    unsigned long long n_signal = 0, n_deferred = 0;
    for (size_t i = 0; i < n; i++) {
        const char *err = NULL;
        size_t pos = 0;
        jv *d = jparse(lines[i], &err, &pos);
        cr_assert_not_null(d, "dump line %zu of %zu is not valid JSON (%s at byte %zu): %.300s", i + 1, n, err, pos,
                           lines[i] + (pos > 100 ? pos - 100 : 0));
        if (i == 0) check_json_shape(d, "a dump under load");
        cr_assert_eq(ju(d, "pid"), (unsigned long long)p.pid);
        unsigned long long seq = ju(d, "dump.seq");
        cr_assert(seq > last_seq, "dump sequence numbers must grow: %llu after %llu", seq, last_seq);
        last_seq = seq;
        /* The bookkeeping only grows, so the last values are the totals. */
        if (ju(d, "dump.signals") > max_signals) max_signals = ju(d, "dump.signals");
        if (ju(d, "dump.merged") > merged) merged = ju(d, "dump.merged");
        if (ju(d, "dump.skipped") > skipped) skipped = ju(d, "dump.skipped");
        if (ju(d, "dump.deferred") > deferred) deferred = ju(d, "dump.deferred");
        jv *reason = jget(d, "reason");
        cr_assert(reason && reason->type == J_STR);
        if (strcmp(reason->text, "signal") == 0) n_signal++;
        else if (strcmp(reason->text, "deferred") == 0) n_deferred++;
        else cr_assert_fail("unexpected dump reason \"%s\"", reason->text);
        jfree(d);
    }
    cr_log_info("stats_load: %zu dumps (%llu on the signal, %llu deferred; %llu merged, %llu skipped) for %d "
                "signals sent in %.2f s (%d sent while one was still pending)",
                n, n_signal, n_deferred, merged, skipped, N_SIGNALS, send_secs, forced);
    /* Every signal sent was delivered, except (at most) the ones sent while another was still
     * pending, which the kernel merges: the sender waits for delivery, so that is `forced`,
     * normally 0. */
    cr_expect(max_signals >= (unsigned long long)(N_SIGNALS - forced) && max_signals <= N_SIGNALS,
              "the handler counted %llu signals, want %d - %d", max_signals, N_SIGNALS, forced);
    /* Every delivered signal gave a dump, unless its dump was deferred and then answered by
     * another dump (merged), or it arrived while its thread was writing a dump (skipped): the
     * accounting is exact. */
    cr_expect_eq(n + merged + skipped, max_signals,
                 "%zu dumps + %llu merged + %llu skipped != %llu signals handled", n, merged, skipped, max_signals);
    /* And those are rare: a signal is deferred only when it interrupts a thread holding an
     * umalloc lock (a slow path), merged only if a second comes before the first deferred dump
     * ran. 90% is a loose bound (in practice it is > 99%). */
    cr_expect(n >= N_SIGNALS * 9 / 10, "only %zu dumps for %d signals", n, N_SIGNALS);
    free_lines(lines, n);
    su_result_free(&r);
    su_rmtree(dir);
    free(dump);
    free(prog);
    free(file_opt);
    free(stop);
    free(dir);
}

/* ---- 2. at exit: K known blocks -------------------------------------------------------------- */

Test(stats_exit, held_blocks_are_live, .timeout = 60) {
    enum { K = 1000, SIZE = 200, CLASS = 208, LIBC_SLACK = 64 };
    char *dir = su_tmpdir("stats-exit");
    char *file_opt = su_fmt("UMALLOC_STATS_FILE=%s/s.%%p", dir);
    char *prog = su_prog("stats_hold");
    const char *argv[] = {prog, "1000", "200", NULL};
    const char *env[] = {"UMALLOC_STATS_AT_EXIT=1", "UMALLOC_STATS_FORMAT=json", file_opt, NULL};
    su_opts o = {.argv = argv, .env = env, .preload = 1, .timeout = 30};
    su_proc p = su_spawn(&o);
    su_result r;
    su_wait(&p, &r);
    SU_ASSERT_OK(&r, "stats_hold");
    cr_assert_str_eq(r.out, "held 1000 blocks of 200 bytes\n");
    cr_assert_str_empty(r.err, "stderr: %s", r.err);
    char *dump = su_fmt("%s/s.%d", dir, (int)p.pid);
    size_t n = 0;
    char **lines = read_lines(dump, &n);
    cr_assert(lines && n == 1, "want exactly one dump (at exit) in %s, got %zu", dump, n);
    const char *err = NULL;
    size_t pos = 0;
    jv *d = jparse(lines[0], &err, &pos);
    cr_assert_not_null(d, "the at-exit dump is not valid JSON (%s at byte %zu): %s", err, pos, lines[0]);
    check_json_shape(d, "at-exit dump");
    jv *reason = jget(d, "reason");
    cr_expect(reason && strcmp(reason->text, "exit") == 0, "reason should be \"exit\"");
    jv *c = json_class(d, CLASS);
    cr_assert_not_null(c, "no class of size %d in the at-exit dump: %s", CLASS, lines[0]);
    /* Live blocks of the class: our K, plus whatever the C library itself holds in that class
     * at exit (stdio, locale and loader data are a handful of blocks of other sizes; 64 is a
     * generous bound). Never fewer than K: they are all still allocated. */
    unsigned long long live = ju(c, "live_blocks");
    cr_expect(live >= K && live <= K + LIBC_SLACK, "class %d: %llu live blocks, want %d..%d", CLASS, live, K,
              K + LIBC_SLACK);
    /* The 1 MiB block is mapped on its own. */
    cr_expect(ju(d, "totals.large_blocks") >= 1 && ju(d, "totals.large_bytes") >= (1u << 20),
              "the 1 MiB block is not among the large blocks");
    cr_expect(ju(d, "totals.live_bytes") >= (unsigned long long)K * CLASS + (1u << 20));
    cr_expect(ju(d, "totals.peak_live_bytes") >= ju(d, "totals.live_bytes"), "peak below live");
    check_classes_consistent(d, "at-exit dump");
    jfree(d);
    free_lines(lines, n);
    su_result_free(&r);
    su_rmtree(dir);
    free(dump);
    free(prog);
    free(file_opt);
    free(dir);
}

/* ---- 3. an unwritable file --------------------------------------------------------------------- */

/* stats_idle under env, two SIGUSR1 while it runs, then the at-exit dump: three dumps. */
static void run_idle(const char *const *env, su_result *r, pid_t *pid) {
    char *dir = su_tmpdir("stats-idle");
    char *stop = su_fmt("%s/stop", dir);
    char *prog = su_prog("stats_idle");
    const char *argv[] = {prog, stop, NULL};
    su_opts o = {.argv = argv, .env = env, .preload = 1, .timeout = 60};
    su_proc p = su_spawn(&o);
    wait_stdout(&p, "ready\n", 30);
    for (int i = 0; i < 2; i++) {
        kill(p.pid, SIGUSR1);
        usleep(100 * 1000);
    }
    touch(stop);
    su_wait(&p, r);
    if (pid) *pid = p.pid;
    su_rmtree(dir);
    free(prog);
    free(stop);
    free(dir);
}

static void check_unwritable(const char *path_opt) {
    su_result base, r;
    const char *base_env[] = {"UMALLOC_STATS_SIGNAL=none", NULL};
    char *prog = su_prog("stats_idle");
    (void)prog;
    /* The baseline: the same program with no dump at all (USR1 would kill it: not sent). */
    {
        char *dir = su_tmpdir("stats-base");
        char *stop = su_fmt("%s/stop", dir);
        touch(stop);
        const char *argv[] = {prog, stop, NULL};
        su_opts o = {.argv = argv, .env = base_env, .preload = 1, .timeout = 30};
        su_run(&o, &base);
        su_rmtree(dir);
        free(stop);
        free(dir);
    }
    SU_ASSERT_OK(&base, "stats_idle (baseline)");
    char *var = su_fmt("UMALLOC_STATS_FILE=%s", path_opt);
    const char *env[] = {var, "UMALLOC_STATS_AT_EXIT=1", NULL};
    run_idle(env, &r, NULL);
    SU_ASSERT_OK(&r, "stats_idle with an unwritable UMALLOC_STATS_FILE");
    cr_expect_str_eq(r.out, base.out, "stdout changed: \"%s\" vs \"%s\"", r.out, base.out);
    /* Exactly one line names the variable, however many dumps there were. */
    int lines = 0;
    char *copy = su_fmt("%s", r.err), *save = NULL;
    const char *msg = NULL;
    for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
        if (strstr(l, "UMALLOC_STATS_FILE")) {
            lines++;
            msg = l;
        }
    cr_expect_eq(lines, 1, "want one line about UMALLOC_STATS_FILE, got %d:\n%s", lines, su_tail(r.err, 3000));
    if (msg) {
        cr_expect(strncmp(msg, "umalloc: ", 9) == 0, "the message should start with \"umalloc: \": %s", msg);
        /* /nonexistent-dir/x cannot be opened; root can open /proc/version, but not write it */
        cr_expect(strstr(msg, "cannot open ") != NULL || strstr(msg, "cannot write ") != NULL,
                  "the message should say what failed: %s", msg);
        cr_expect(strstr(msg, " (") != NULL && strstr(msg, "); the statistics go to stderr instead") != NULL,
                  "the message should give the reason and what happens instead: %s", msg);
        cr_log_info("%s", msg);
    }
    /* The three dumps went to stderr instead. */
    cr_expect_eq(su_count(r.err, "end of umalloc statistics"), 3, "want 3 dumps on stderr:\n%s", su_tail(r.err, 3000));
    free(copy);
    free(var);
    free(prog);
    su_result_free(&r);
    su_result_free(&base);
}

Test(stats_file, missing_directory, .timeout = 90) {
    check_unwritable("/nonexistent-umalloc-dir/s.%p");
}

Test(stats_file, read_only_proc_file, .timeout = 90) {
    /* Not even root may create or write /proc/version. */
    check_unwritable("/proc/version");
}

Test(stats_file, message_names_reason, .timeout = 60) {
    su_result r;
    const char *env[] = {"UMALLOC_STATS_FILE=/nonexistent-umalloc-dir/x", "UMALLOC_STATS_AT_EXIT=1", NULL};
    run_idle(env, &r, NULL);
    SU_ASSERT_OK(&r, "stats_idle");
    cr_expect(strstr(r.err, "umalloc: UMALLOC_STATS_FILE=/nonexistent-umalloc-dir/x: cannot open "
                            "/nonexistent-umalloc-dir/x (No such file or directory)") != NULL,
              "%s", su_tail(r.err, 2000));
    su_result_free(&r);
}

/* ---- 4. the text dump ---------------------------------------------------------------------------- */

/* The exact byte count of a summary row ("  + metadata        20.0 KiB    20480 B   ..."): the
 * operator, the name padded to 15, the human value (number and unit), the bytes. */
static long long text_row_bytes(const char *text, const char *label) {
    for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        if (strncmp(l, "  ", 2) != 0 || (l[2] != ' ' && l[2] != '+' && l[2] != '=') || l[3] != ' ') continue;
        const char *name = l + 4;
        size_t ll = strlen(label);
        if (strncmp(name, label, ll) != 0 || name[ll] != ' ') continue;
        long long v;
        char b[4];
        cr_assert(sscanf(name + 15, " %*s %*s %lld %3s", &v, b) == 2 && strcmp(b, "B") == 0,
                  "summary row \"%s\" has no exact byte count: %.120s", label, l);
        return v;
    }
    cr_assert_fail("no summary row \"%s\" in the text dump:\n%s", label, text);
    return 0;
}

/* s with every run of spaces made one space (malloc'd). */
static char *squeeze(const char *s) {
    char *o = malloc(strlen(s) + 1), *w = o;
    for (; *s; s++)
        if (!(*s == ' ' && w > o && w[-1] == ' ')) *w++ = *s;
    *w = 0;
    return o;
}

static char *text_dump_of_hold(su_result *r) {
    char *dir = su_tmpdir("stats-text");
    char *file_opt = su_fmt("UMALLOC_STATS_FILE=%s/s.%%p", dir);
    char *prog = su_prog("stats_hold");
    const char *argv[] = {prog, NULL};
    const char *env[] = {"UMALLOC_STATS_AT_EXIT=1", file_opt, NULL}; /* text: the default */
    su_opts o = {.argv = argv, .env = env, .preload = 1, .timeout = 30};
    su_proc p = su_spawn(&o);
    su_wait(&p, r);
    SU_ASSERT_OK(r, "stats_hold");
    char *path = su_fmt("%s/s.%d", dir, (int)p.pid);
    char *text = su_read_file(path, NULL);
    cr_assert_not_null(text, "no dump in %s", path);
    su_rmtree(dir);
    free(path);
    free(prog);
    free(file_opt);
    free(dir);
    return text;
}

Test(stats_text, summary_adds_up, .timeout = 60) {
    su_result r;
    char *text = text_dump_of_hold(&r);
    cr_expect(strncmp(text, "umalloc " UMALLOC_VERSION " statistics: pid ", 28) == 0, "header: %.200s", text);
    cr_expect(strstr(text, "(exit)") != NULL, "the header should say the dump is the at-exit one");
    const char *eq = strstr(text, "\n  mapped = live + free + metadata + idle + not committed: ");
    cr_assert_not_null(eq, "no equation line in the text dump:\n%s", text);
    eq = strchr(eq, ':') + 1;
    long long v[6];
    int got = sscanf(eq, " %lld = %lld + %lld + %lld + %lld + %lld bytes", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]);
    cr_assert_eq(got, 6, "cannot read the equation: %.200s", eq);
    cr_expect_eq(v[0], v[1] + v[2] + v[3] + v[4] + v[5], "the summary does not add up: %lld != %lld + %lld + %lld + %lld + %lld",
                 v[0], v[1], v[2], v[3], v[4], v[5]);
    /* The rows above say the same numbers. */
    static const char *const rows[] = {"mapped", "live", "free in pages", "metadata", "idle committed", "not committed"};
    for (int i = 0; i < 6; i++)
        cr_expect_eq(text_row_bytes(text, rows[i]), v[i], "row \"%s\": %lld, equation: %lld", rows[i],
                     text_row_bytes(text, rows[i]), v[i]);
    cr_expect(v[0] > 0 && v[1] >= 1000 * 208 + (1 << 20), "live %lld, mapped %lld", v[1], v[0]);
    /* Classes: the header, and the 208-byte class with our 1000 blocks (plus libc's few). */
    cr_expect(strstr(text, "\nsize classes (those with mallocs > 0):\n") != NULL, "no class table:\n%s", text);
    int found = 0;
    for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        int cls;
        unsigned long long size, mallocs, frees, live;
        if (sscanf(l, "%d %llu %llu %llu %llu", &cls, &size, &mallocs, &frees, &live) != 5 || size != 208) continue;
        found = 1;
        cr_expect(live >= 1000 && live <= 1064 && mallocs - frees == live, "row: %.100s", l);
    }
    cr_expect(found, "no row for the 208-byte class:\n%s", text);
    /* Human units with one decimal. */
    cr_expect(strstr(text, " KiB ") != NULL && strstr(text, " MiB ") != NULL, "human units missing:\n%s", text);
    static const char *const parts[] = {"\nNUMA nodes (", "\n  node 0 ", "\npage sizes (mapped): 4K ", "\ncalls: malloc ",
                                        "\nthreads: ", "\nremote frees: ", "failed allocs: ", "invalid frees: ",
                                        "\nend of umalloc statistics (pid "};
    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++)
        cr_expect(strstr(text, parts[i]) != NULL, "the text dump lacks \"%s\":\n%s", parts[i], text);
    for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        cr_expect(*l != '{', "a text dump line starts with '{'");
    free(text);
    su_result_free(&r);
}

/* The parts of the summary are quantities: none may be negative in a quiet program. A negative
 * "idle committed" means live + free + metadata count bytes that mapped/committed do not (see
 * docs/stats.md, "Exact and approximate"). */
Test(stats_text, summary_parts_not_negative, .timeout = 60) {
    su_result r;
    char *text = text_dump_of_hold(&r);
    static const char *const rows[] = {"live", "free in pages", "metadata", "idle committed", "not committed"};
    for (int i = 0; i < 5; i++)
        cr_expect(text_row_bytes(text, rows[i]) >= 0, "summary row \"%s\" is negative (%lld) in a quiet program:\n%s",
                  rows[i], text_row_bytes(text, rows[i]), text);
    free(text);
    su_result_free(&r);
}

/* ---- 5. scripts/umalloc-stat --------------------------------------------------------------------- */

typedef struct {
    su_proc p;
    char *dir, *stop, *prog;
} idle_proc;

static void idle_start(idle_proc *ip, int preload, const char *const *env, const char *extra_arg) {
    ip->dir = su_tmpdir("stats-script");
    ip->stop = su_fmt("%s/stop", ip->dir);
    ip->prog = su_prog("stats_idle");
    const char *argv[] = {ip->prog, ip->stop, extra_arg, NULL};
    su_opts o = {.argv = argv, .env = env, .preload = preload, .timeout = 60};
    ip->p = su_spawn(&o);
    wait_stdout(&ip->p, "ready\n", 30);
}

static void idle_stop(idle_proc *ip, su_result *r) {
    touch(ip->stop);
    su_wait(&ip->p, r);
    su_rmtree(ip->dir);
    free(ip->dir);
    free(ip->stop);
    free(ip->prog);
}

/* Runs scripts/umalloc-stat with args (NULL-terminated, the pid among them). */
static void run_script(const char *const *args, su_result *r) {
    const char *argv[12];
    char *script = su_fmt("%s/scripts/umalloc-stat", su_root());
    cr_assert(access(script, X_OK) == 0, "%s is not executable", script);
    argv[0] = su_need("python3", "python3");
    argv[1] = script;
    size_t i = 2;
    for (; args[i - 2] && i < 11; i++) argv[i] = args[i - 2];
    argv[i] = NULL;
    su_opts o = {.argv = argv, .preload = 0, .timeout = 30};
    su_run(&o, r);
    free((char *)argv[0]);
    free(script);
}

Test(stats_script, summary_of_a_running_program, .timeout = 120) {
    idle_proc ip;
    idle_start(&ip, 1, NULL, NULL);
    char *pid = su_fmt("%d", (int)ip.p.pid);
    su_result r;
    const char *args[] = {pid, NULL};
    run_script(args, &r);
    SU_ASSERT_OK(&r, "umalloc-stat PID");
    static const char *const parts[] = {"statistics of process ", "  live ", "MiB", "  threads     1 alive",
                                        "top size classes by live bytes:", "        3072          200 ",
                                        "         112          500 ", "NUMA nodes: node 0 "};
    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++)
        cr_expect(strstr(r.out, parts[i]) != NULL, "umalloc-stat output lacks \"%s\":\n%s\nstderr: %s", parts[i], r.out, r.err);
    cr_log_info("umalloc-stat %s:\n%s", pid, r.out);
    su_result_free(&r);

    /* --json: one line, the dump. */
    const char *jargs[] = {"--json", pid, NULL};
    run_script(jargs, &r);
    SU_ASSERT_OK(&r, "umalloc-stat --json PID");
    cr_expect_eq(su_count(r.out, "\n"), 1, "--json: want one line:\n%s", r.out);
    const char *err = NULL;
    size_t pos;
    jv *d = jparse(r.out, &err, &pos);
    cr_assert_not_null(d, "--json output is not JSON (%s at %zu): %s", err, pos, r.out);
    check_json_shape(d, "umalloc-stat --json");
    cr_expect_eq(ju(d, "pid"), (unsigned long long)ip.p.pid);
    jv *reason = jget(d, "reason");
    cr_expect(reason && strcmp(reason->text, "request") == 0, "reason should be \"request\"");
    cr_expect_eq(ju(d, "totals.large_blocks"), 1);
    jfree(d);
    su_result_free(&r);

    /* --watch: three dumps. */
    const char *wargs[] = {"--json", "--watch", "0.1", "--count", "3", pid, NULL};
    run_script(wargs, &r);
    SU_ASSERT_OK(&r, "umalloc-stat --json --watch 0.1 --count 3 PID");
    cr_expect_eq(su_count(r.out, "\n"), 3, "--watch --count 3: want 3 lines:\n%s", r.out);
    su_result_free(&r);

    /* The program noticed nothing; the requests are gone, and nothing went to its stderr. */
    idle_stop(&ip, &r);
    SU_ASSERT_OK(&r, "stats_idle");
    cr_expect_str_eq(r.out, "ready\nbye\n");
    cr_expect_str_empty(r.err, "the program's stderr: %s", r.err);
    char *req = su_fmt("/tmp/umalloc-stat.%s.req", pid);
    cr_expect(!su_exists(req), "%s was left behind", req);
    free(req);
    su_result_free(&r);
    free(pid);
}

Test(stats_script, program_without_umalloc, .timeout = 60) {
    idle_proc ip;
    idle_start(&ip, 0, NULL, NULL);
    char *pid = su_fmt("%d", (int)ip.p.pid);
    su_result r;
    const char *args[] = {pid, NULL};
    run_script(args, &r);
    cr_expect(r.exited && r.code != 0, "umalloc-stat on a process without umalloc: %s", su_status(&r));
    cr_expect(strstr(r.err, "does not use umalloc") != NULL, "stderr: %s", r.err);
    cr_expect_str_empty(r.out);
    su_result_free(&r);
    /* It was not sent the signal (which would have killed it). */
    idle_stop(&ip, &r);
    SU_ASSERT_OK(&r, "stats_idle without umalloc");
    su_result_free(&r);
    free(pid);
}

Test(stats_script, no_such_process, .timeout = 60) {
    su_result r;
    /* A pid that cannot be running: above the kernel's pid_max (a reaped child's pid could be
     * reused meanwhile by another test's process). */
    char *pm = su_read_file("/proc/sys/kernel/pid_max", NULL);
    long max = pm ? atol(pm) : 4194304;
    free(pm);
    char *pid = su_fmt("%ld", max + 1);
    const char *args[] = {pid, NULL};
    run_script(args, &r);
    cr_expect(r.exited && r.code == 1, "%s", su_status(&r));
    cr_expect(strstr(r.err, "no such process") != NULL, "stderr: %s", r.err);
    su_result_free(&r);
    const char *bad[] = {"notapid", NULL};
    run_script(bad, &r);
    cr_expect(r.exited && r.code == 2, "bad usage: %s", su_status(&r));
    su_result_free(&r);
    free(pid);
}

Test(stats_script, handler_not_installed, .timeout = 60) {
    /* The program replaced umalloc's handler with its own: a timeout, saying why. */
    idle_proc ip;
    idle_start(&ip, 1, NULL, "--own-handler");
    char *pid = su_fmt("%d", (int)ip.p.pid);
    su_result r;
    const char *args[] = {"--timeout", "1", pid, NULL};
    run_script(args, &r);
    cr_expect(r.exited && r.code == 1, "%s", su_status(&r));
    cr_expect(strstr(r.err, "no answer from process") != NULL && strstr(r.err, "handler") != NULL, "stderr: %s", r.err);
    su_result_free(&r);
    idle_stop(&ip, &r);
    SU_ASSERT_OK(&r, "stats_idle --own-handler");
    cr_expect_str_eq(r.out, "ready\nbye (own handler ran)\n");
    char *req = su_fmt("/tmp/umalloc-stat.%s.req", pid);
    cr_expect(!su_exists(req), "%s was left behind", req);
    free(req);
    su_result_free(&r);
    free(pid);

    /* UMALLOC_STATS_SIGNAL=none: no handler; the script says so and does not send USR1. */
    const char *env[] = {"UMALLOC_STATS_SIGNAL=none", NULL};
    idle_start(&ip, 1, env, NULL);
    pid = su_fmt("%d", (int)ip.p.pid);
    const char *args2[] = {pid, NULL};
    run_script(args2, &r);
    cr_expect(r.exited && r.code == 1, "%s", su_status(&r));
    cr_expect(strstr(r.err, "UMALLOC_STATS_SIGNAL=none") != NULL, "stderr: %s", r.err);
    su_result_free(&r);
    idle_stop(&ip, &r);
    SU_ASSERT_OK(&r, "stats_idle with UMALLOC_STATS_SIGNAL=none");
    su_result_free(&r);
    free(pid);
}

Test(stats_script, other_signal, .timeout = 60) {
    const char *env[] = {"UMALLOC_STATS_SIGNAL=RTMIN+3", NULL};
    idle_proc ip;
    idle_start(&ip, 1, env, NULL);
    char *pid = su_fmt("%d", (int)ip.p.pid);
    su_result r;
    const char *args[] = {"--json", pid, NULL};
    run_script(args, &r);
    SU_ASSERT_OK(&r, "umalloc-stat --json PID (RTMIN+3)");
    jv *d = jparse(r.out, NULL, NULL);
    cr_expect(d && ju(d, "signal") == (unsigned long long)(SIGRTMIN + 3), "%s", r.out);
    jfree(d);
    su_result_free(&r);
    idle_stop(&ip, &r);
    SU_ASSERT_OK(&r, "stats_idle");
    su_result_free(&r);
    free(pid);
}

/* ---- the formatter, in this process (build/libumalloc.a) ---------------------------------------- */

size_t umi_stats_render(char *buf, size_t cap, int fd, const um_stats_t *s, int format, const char *reason, int sig,
                       const uint64_t meta[5], int *failed);

static void fake_stats(um_stats_t *s) {
    memset(s, 0, sizeof *s);
    s->version = UM_STATS_VERSION;
    for (int c = 1; c < UM_STATS_CLASSES; c++) {
        s->classes[c].size = (size_t)c * 16;
        s->classes[c].mallocs = 1000000000000ull + (uint64_t)c;
        s->classes[c].frees = 999999999999ull;
        s->classes[c].live_blocks = s->classes[c].mallocs - s->classes[c].frees;
        s->classes[c].live_bytes = s->classes[c].live_blocks * s->classes[c].size;
    }
    s->node_count = UM_STATS_NODES;
    for (int n = 0; n < UM_STATS_NODES; n++) s->node_mapped_bytes[n] = (uint64_t)n << 40;
    s->mapped_bytes = UINT64_MAX / 2;
    s->live_bytes = 12345;
}

/* A JSON dump's "time" (unix seconds, read by each render) as zeros. */
static void blank_time(char *json)
{
    char *t = strstr(json, "\"time\":");
    if (t == NULL) return;
    for (t += 7; *t >= '0' && *t <= '9'; t++) *t = '0';
}

Test(stats_format, cut_at_a_boundary_and_still_valid) {
    um_stats_t s;
    fake_stats(&s);
    uint64_t meta[5] = {1, 2, 3, 4, 5};
    static char buf[65536];
    /* The whole thing fits 64 KiB. */
    size_t full = umi_stats_render(buf, sizeof buf, -1, &s, UM_STATS_JSON, "api", 0, meta, NULL);
    cr_assert(full > 0 && full < sizeof buf - 1 && buf[full - 1] == '\n', "JSON dump of %zu bytes", full);
    buf[full] = 0;
    jv *d = jparse(buf, NULL, NULL);
    cr_assert_not_null(d, "full fake dump is not JSON: %s", buf);
    cr_expect_eq(jget(d, "size_classes")->n, UM_STATS_CLASSES - 1);
    cr_expect_eq(jget(d, "nodes")->n, UM_STATS_NODES);
    jfree(d);
    static char text[65536];
    size_t text_full = umi_stats_render(text, sizeof text, -1, &s, UM_STATS_TEXT, "api", 0, meta, NULL);
    cr_assert(text_full > 0 && text_full < sizeof text - 1);
    /* Smaller buffers: cut, closed properly, and marked. */
    for (size_t cap = 1024; cap <= full; cap += 397) {
        static char small[65536];
        size_t n = umi_stats_render(small, cap, -1, &s, UM_STATS_JSON, "api", 0, meta, NULL);
        cr_assert(n < cap, "wrote %zu bytes into %zu", n, cap);
        small[n] = 0;
        const char *err = NULL;
        size_t pos = 0;
        d = jparse(small, &err, &pos);
        cr_assert_not_null(d, "JSON cut to %zu bytes is not valid (%s at %zu): %s", cap, err, pos, small);
        jv *t = jget(d, "truncated");
        cr_expect(t && t->type == J_BOOL && t->b, "cut JSON (cap %zu) not marked truncated", cap);
        cr_expect(small[n - 1] == '\n');
        jfree(d);
        if (cap > text_full) continue;
        n = umi_stats_render(small, cap, -1, &s, UM_STATS_TEXT, "api", 0, meta, NULL);
        small[n] = 0;
        cr_expect(n < cap && strstr(small, "\numalloc: dump cut here: ") != NULL && small[n - 1] == '\n',
                  "cut text (cap %zu) does not say so: %s", cap, su_tail(small, 300));
    }
    /* Streaming to a descriptor never cuts, whatever the staging buffer. */
    char *dir = su_tmpdir("stats-format");
    char *path = su_fmt("%s/stream", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert(fd >= 0);
    static char stage[1024];
    int failed = 1;
    size_t w = umi_stats_render(stage, sizeof stage, fd, &s, UM_STATS_JSON, "api", 0, meta, &failed);
    close(fd);
    cr_expect(!failed && w == full, "streamed %zu bytes, want %zu", w, full);
    char *got = su_read_file(path, NULL);
    /* Each render reads the clock for its "time": the renders above may have crossed a second. */
    if (got != NULL) { blank_time(got); blank_time(buf); }
    cr_expect(got && strcmp(got, buf) == 0, "streamed dump differs from the buffered one");
    free(got);
    su_rmtree(dir);
    free(path);
    free(dir);
}

Test(stats_format, extreme_values_stay_valid) {
    /* Every counter at its maximum: the longest numbers, in every record. */
    static um_stats_t s;
    memset(&s, 0xff, sizeof s);
    s.node_count = UM_STATS_NODES;
    uint64_t meta[5] = {UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX};
    static char buf[65536];
    size_t n = umi_stats_render(buf, sizeof buf, -1, &s, UM_STATS_JSON, "deferred", 64, meta, NULL);
    buf[n] = 0;
    const char *err = NULL;
    size_t pos = 0;
    jv *d = jparse(buf, &err, &pos);
    cr_assert_not_null(d, "JSON with maximal values is not valid (%s at %zu): %.400s", err, pos, buf + (pos > 200 ? pos - 200 : 0));
    cr_expect_eq(ju(d, "totals.live_bytes"), UINT64_MAX);
    cr_expect_eq(ju(d, "totals.requested_bytes"), UINT64_MAX);
    cr_expect_eq(jget(d, "size_classes")->n, UM_STATS_CLASSES - 1);
    jv *t = jget(d, "truncated");
    cr_expect(t && !t->b, "a maximal dump must still fit 64 KiB");
    jfree(d);
    n = umi_stats_render(buf, sizeof buf, -1, &s, UM_STATS_TEXT, "deferred", 64, meta, NULL);
    buf[n] = 0;
    cr_expect(strstr(buf, "\nend of umalloc statistics (pid ") != NULL, "text with maximal values: %s", su_tail(buf, 500));
    cr_expect(strstr(buf, "16.0 EiB") != NULL, "UINT64_MAX bytes should read 16.0 EiB");
}

Test(stats_format, human_units) {
    um_stats_t s;
    memset(&s, 0, sizeof s);
    s.mapped_bytes = 4ull << 20;                  /* 4.0 MiB */
    s.committed_bytes = 1536;                     /* 1.5 KiB */
    s.live_bytes = 1000;                          /* 1000 B */
    s.peak_live_bytes = (1ull << 30) * 3 / 2;     /* 1.5 GiB */
    s.purged_bytes = 1024 * 1024 - 1;             /* 1023.999 KiB: 1.0 MiB */
    s.node_count = 1;
    uint64_t meta[5] = {0};
    static char buf[65536];
    size_t n = umi_stats_render(buf, sizeof buf, -1, &s, UM_STATS_TEXT, "api", 0, meta, NULL);
    buf[n] = 0;
    char *q = squeeze(buf);
    cr_expect(strstr(q, "= mapped 4.0 MiB 4194304 B") != NULL, "%s", buf);
    cr_expect(strstr(q, "committed 1.5 KiB (1536 B)") != NULL, "%s", buf);
    cr_expect(strstr(q, "peak live 1.5 GiB (1610612736 B)") != NULL, "%s", buf);
    cr_expect(strstr(q, "purged since start 1.0 MiB (1048575 B)") != NULL, "%s", buf);
    cr_expect(strstr(q, " live 1000 B 1000 B ") != NULL, "%s", buf);
    free(q);
}

Test(stats_format, um_stats_print_json) {
    void *p = um_malloc(300);
    cr_assert_not_null(p);
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    cr_assert_eq(um_stats_print(fds[1], UM_STATS_JSON), 0);
    close(fds[1]);
    static char buf[65536];
    size_t len = 0;
    ssize_t r;
    while ((r = read(fds[0], buf + len, sizeof buf - 1 - len)) > 0) len += (size_t)r;
    close(fds[0]);
    buf[len] = 0;
    cr_assert(len > 0 && buf[len - 1] == '\n' && strchr(buf, '\n') == buf + len - 1, "one line: %s", buf);
    jv *d = jparse(buf, NULL, NULL);
    cr_assert_not_null(d, "um_stats_print JSON: %s", buf);
    jv *reason = jget(d, "reason");
    cr_expect(reason && strcmp(reason->text, "api") == 0);
    size_t usable = um_malloc_usable_size(p); /* the class size: 320 */
    jv *c = json_class(d, usable);
    cr_expect(c && ju(c, "live_blocks") >= 1, "the 300-byte block is not live in class %zu", usable);
    jfree(d);
    um_free(p);
    cr_expect_eq(um_stats_print(-1, UM_STATS_TEXT), -1);
    cr_expect_eq(um_stats_print(2, 7), -1);
    cr_expect_eq(errno, EINVAL);
}
