/* System tests of the hardening: the statistics file (never through a planted symbolic link,
 * created private) and the secure build (build/libumalloc-secure.so: a use-after-free write over
 * a freed block's link is stopped before a block is handed out twice; ordinary programs run).
 *
 *   stats_file_safety  a symlink at UMALLOC_STATS_FILE's path is refused in one line, its target
 *                      untouched; a file umalloc creates has mode 0600
 *   secure             the secure library aborts on a corrupted free list, with one line, and
 *                      runs the preload test programs like the normal one */
#include "sys_util.h"

static char *stats_idle_prog(void) { return su_prog("stats_idle"); }

/* stats_idle with a stop file that exists already: it allocates, prints, exits at once. */
static void run_stats_idle(const char *dir, const char *const *env, su_result *r) {
    char *prog = stats_idle_prog();
    char *stop = su_fmt("%s/stop", dir);
    su_write_str(stop, "");
    const char *argv[] = {prog, stop, NULL};
    su_opts o = {.argv = argv, .env = env, .preload = 1, .timeout = 30};
    su_run(&o, r);
    free(stop);
    free(prog);
}

Test(stats_file_safety, planted_symlink_is_refused, .timeout = 60) {
    char *dir = su_tmpdir("statslink");
    char *target = su_fmt("%s/precious", dir), *link = su_fmt("%s/stats", dir);
    su_write_str(target, "precious\n");
    cr_assert_eq(symlink(target, link), 0, "symlink: %s", strerror(errno));
    char *var = su_fmt("UMALLOC_STATS_FILE=%s", link);
    const char *env[] = {var, "UMALLOC_STATS_AT_EXIT=1", NULL};
    su_result r;
    run_stats_idle(dir, env, &r);
    SU_ASSERT_OK(&r, "stats_idle with UMALLOC_STATS_FILE at a symlink");
    size_t len;
    char *content = su_read_file(target, &len);
    cr_assert_not_null(content);
    cr_expect_str_eq(content, "precious\n", "the symlink's target was written: %s", su_tail(content, 500));
    int lines = 0;
    char *copy = su_fmt("%s", r.err), *save = NULL;
    for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
        if (strstr(l, "UMALLOC_STATS_FILE")) {
            lines++;
            cr_expect(strstr(l, "is a symbolic link, refused") != NULL, "the line should say why: %s", l);
            cr_log_info("%s", l);
        }
    cr_expect_eq(lines, 1, "want one line about UMALLOC_STATS_FILE, got %d:\n%s", lines, su_tail(r.err, 3000));
    cr_expect_eq(su_count(r.err, "end of umalloc statistics"), 1, "the dump should go to stderr instead:\n%s",
                 su_tail(r.err, 3000));
    su_result_free(&r);
    free(copy);
    free(content);
    free(var);
    free(link);
    free(target);
    su_rmtree(dir);
    free(dir);
}

Test(stats_file_safety, created_file_is_private, .timeout = 60) {
    char *dir = su_tmpdir("statsmode");
    char *path = su_fmt("%s/stats.txt", dir);
    char *var = su_fmt("UMALLOC_STATS_FILE=%s", path);
    const char *env[] = {var, "UMALLOC_STATS_AT_EXIT=1", NULL};
    mode_t old = umask(022); /* the child inherits it: 0644 would show as 0644 */
    su_result r;
    run_stats_idle(dir, env, &r);
    umask(old);
    SU_ASSERT_OK(&r, "stats_idle with UMALLOC_STATS_FILE");
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "no statistics file: %s\n%s", strerror(errno), su_tail(r.err, 2000));
    cr_expect_eq(st.st_mode & 0777, 0600, "the statistics file has mode %o, want 600", (unsigned)(st.st_mode & 0777));
    su_result_free(&r);
    free(var);
    free(path);
    su_rmtree(dir);
    free(dir);
}

/* ---- the secure build ------------------------------------------------------------------------- */

static char *secure_lib(void) {
    char *p = su_fmt("%s/build/libumalloc-secure.so", su_root());
    cr_assert(su_exists(p), "%s does not exist: run `make secure`", p);
    return p;
}

/* argv under build/libumalloc-secure.so (secure = 1) or build/libumalloc.so. */
static void run_under(int secure, const char *const *argv, double timeout, su_result *r) {
    char *lib = secure ? secure_lib() : su_fmt("%s/build/libumalloc.so", su_root());
    const char *env[] = {su_fmt("LD_PRELOAD=%s", lib), NULL}; /* su_spawn frees LD_PRELOAD entries */
    su_opts o = {.argv = argv, .env = env, .preload = 0, .timeout = timeout};
    su_run(&o, r);
    free(lib);
}

static void run_corrupt(int secure, const char *mode, su_result *r) {
    char *prog = su_prog("secure_corrupt");
    const char *argv[] = {prog, mode, NULL};
    run_under(secure, argv, 30, r);
    free(prog);
}

/* A use-after-free write over a freed block's link is caught when the link is decoded, before
 * the block holding it is handed out (so before any block is handed out twice): one line, and
 * abort(). */
static void check_stopped(const char *mode) {
    su_result r;
    run_corrupt(1, mode, &r);
    cr_expect(r.signaled && r.sig == SIGABRT, "secure_corrupt %s: %s, want SIGABRT\n--- stderr ---\n%s\n--- stdout ---\n%s",
              mode, su_status(&r), su_tail(r.err, 2000), su_tail(r.out, 1000));
    cr_expect_null(strstr(r.out, "twice"), "secure_corrupt %s: a block was handed out twice:\n%s", mode, su_tail(r.out, 1000));
    cr_expect_null(strstr(r.out, "end"), "secure_corrupt %s ran to the end", mode);
    cr_expect_eq(su_count(r.err, "\n"), 1, "secure_corrupt %s: want one line on stderr:\n%s", mode, su_tail(r.err, 2000));
    cr_expect(strncmp(r.err, "umalloc: corrupted free list: ", 30) == 0, "secure_corrupt %s: %s", mode, r.err);
    cr_log_info("secure, %s: %s", mode, r.err);
    su_result_free(&r);
    /* The normal library, for comparison (not a requirement): it follows the link. */
    run_corrupt(0, mode, &r);
    const char *twice = strstr(r.out, "twice");
    cr_log_info("normal, %s: %s; %.*s", mode, su_status(&r), twice ? (int)strcspn(twice, "\n") : 0, twice ? twice : "");
    su_result_free(&r);
}

Test(secure, link_overwritten_with_a_live_block_aborts, .timeout = 60) { check_stopped("pointer"); }
Test(secure, link_overwritten_with_garbage_aborts, .timeout = 60) { check_stopped("garbage"); }

Test(secure, same_program_without_the_overwrite_runs, .timeout = 60) {
    su_result r;
    run_corrupt(1, "none", &r);
    SU_ASSERT_OK(&r, "secure_corrupt none under the secure library");
    cr_expect_str_eq(r.err, "", "stderr: %s", r.err);
    su_result_free(&r);
}

/* Fresh blocks come out in a random order (the normal build: in address order). */
Test(secure, fresh_blocks_in_random_order, .timeout = 60) {
    su_result r, n;
    run_corrupt(1, "order", &r);
    run_corrupt(0, "order", &n);
    SU_ASSERT_OK(&r, "secure_corrupt order (secure)");
    SU_ASSERT_OK(&n, "secure_corrupt order (normal)");
    int seq = -1, nseq = -1;
    cr_assert_eq(sscanf(r.out, "sequential %d", &seq), 1, "%s", r.out);
    cr_assert_eq(sscanf(n.out, "sequential %d", &nseq), 1, "%s", n.out);
    cr_expect_lt(seq, 250, "secure: %d of 999 fresh blocks follow the one before (about 1 in 8 expected)", seq);
    cr_expect_gt(nseq, 900, "normal: only %d of 999 fresh blocks follow the one before", nseq);
    cr_log_info("fresh blocks that follow the one before: secure %d, normal %d of 999", seq, nseq);
    su_result_free(&r);
    su_result_free(&n);
}

/* One byte past a huge block's usable size is its mapping's guard page. */
Test(secure, huge_block_overflow_hits_the_guard_page, .timeout = 60) {
    su_result r;
    run_corrupt(1, "guard", &r);
    cr_expect(r.signaled && r.sig == SIGSEGV, "secure_corrupt guard: %s, want SIGSEGV\n%s\n%s", su_status(&r),
              su_tail(r.out, 1000), su_tail(r.err, 1000));
    cr_expect_null(strstr(r.out, "end"), "the write past the block went through:\n%s", r.out);
    su_result_free(&r);
    run_corrupt(0, "guard", &r);
    cr_log_info("normal: %s; %s", su_status(&r), su_tail(r.out, 300));
    su_result_free(&r);
}

/* The secure library runs the preload test programs like the normal one. */
Test(secure, preload_programs_run, .timeout = 400) {
    static const char *const progs[] = {"preload_basic", "preload_fork", "preload_tls_dtor", "preload_threads"};
    for (size_t i = 0; i < sizeof progs / sizeof progs[0]; i++) {
        char *prog = su_prog(progs[i]);
        const char *argv[] = {prog, NULL};
        su_result r;
        run_under(1, argv, 300, &r);
        SU_ASSERT_OK(&r, progs[i]);
        cr_log_info("%s under the secure library: ok in %.1f s", progs[i], r.secs);
        su_result_free(&r);
        free(prog);
    }
}
