/* For the test programs that check what umalloc does at its start: has it started (made its
 * first allocation's set-up) already? */
#ifndef UM_TEST_PROGS_STARTED_H
#define UM_TEST_PROGS_STARTED_H

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Is umalloc's reservation (a 1 TiB PROT_NONE mapping) in /proc/self/maps already? 1 yes, 0 no,
 * -1 the file cannot be read. Read with open/read into a static buffer: nothing here may call
 * malloc. */
static int umalloc_started(void) {
    static char buf[1 << 20];
    int fd = open("/proc/self/maps", O_RDONLY);
    if (fd < 0) return -1;
    size_t n = 0;
    ssize_t r;
    while (n < sizeof buf - 1 && (r = read(fd, buf + n, sizeof buf - 1 - n)) > 0) n += (size_t)r;
    close(fd);
    buf[n] = '\0';
    for (char *line = buf; *line;) {
        unsigned long lo, hi;
        char perms[5];
        if (sscanf(line, "%lx-%lx %4s", &lo, &hi, perms) == 3 && hi - lo >= (1ul << 40) && strcmp(perms, "---p") == 0) return 1;
        char *nl = strchr(line, '\n');
        if (!nl) break;
        line = nl + 1;
    }
    return 0;
}

#endif
