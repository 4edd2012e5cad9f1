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
