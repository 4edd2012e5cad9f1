/* preload_startup: run under LD_PRELOAD=libumalloc.so, with no UMALLOC_NUMA_* option. Where
 * memory can come from one NUMA node only, umalloc's start-up (inside the first malloc) opens
 * no file: get_mempolicy says so in one system call, and /sys is not read. From just before
 * the first malloc on, every open is trapped (seccomp, SIGSYS), refused and counted.
 * Exit status: 0 none was made; 1 some was, or the block is not umalloc's; 77 the check does
 * not apply here (more than one node allowed, or umalloc started before main), with the
 * reason on stderr. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include "started.h"

static volatile sig_atomic_t opens;

static void say(int fd, const char *s) {
    ssize_t r = write(fd, s, strlen(s));
    (void)r;
}

/* The trapped open: counted, and answered EPERM. */
static void on_sigsys(int sig, siginfo_t *si, void *ctx) {
    (void)sig;
    (void)si;
    opens++;
    ((ucontext_t *)ctx)->uc_mcontext.gregs[REG_RAX] = -EPERM;
}

int main(void) {
    uint64_t allowed[1024 / 64] = {0};
    if (syscall(SYS_get_mempolicy, NULL, allowed, 1024ul, NULL, 4 /* MPOL_F_MEMS_ALLOWED */) != 0) {
        say(2, "preload_startup: get_mempolicy(MPOL_F_MEMS_ALLOWED) failed: not applicable\n");
        return 77;
    }
    int nodes = 0;
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++) nodes += __builtin_popcountll(allowed[i]);
    if (nodes != 1) {
        say(2, "preload_startup: more than one NUMA node allowed: umalloc reads /sys by design\n");
        return 77;
    }
    int (*owns)(const void *) = (int (*)(const void *))dlsym(RTLD_DEFAULT, "um_owns");
    if (owns == NULL) {
        say(2, "preload_startup: um_owns not found: not running under libumalloc.so\n");
        return 1;
    }
    int started = umalloc_started();
    if (started != 0) {
        say(2, started < 0 ? "preload_startup: cannot read /proc/self/maps: not applicable\n"
                           : "preload_startup: umalloc started before main: not applicable\n");
        return 77;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigsys;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSYS, &sa, NULL);
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_openat, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_open, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP),
    };
    struct sock_fprog prog = {.len = sizeof filter / sizeof filter[0], .filter = filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
        say(2, "preload_startup: seccomp refused: not applicable\n");
        return 77;
    }

    char *volatile p = malloc(100);
    if (p == NULL || !owns(p)) {
        say(2, "preload_startup: FAIL: malloc(100) did not return a block of umalloc's\n");
        return 1;
    }
    memset(p, 1, 100);
    free(p);
    if (opens != 0) {
        char line[128];
        snprintf(line, sizeof line, "preload_startup: FAIL: umalloc's start-up opened %d file(s)\n", (int)opens);
        say(2, line);
        return 1;
    }
    say(1, "preload_startup: the first malloc opened no file\n");
    return 0;
}
