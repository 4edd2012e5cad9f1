/* man-options: prints the option list of umalloc(7), in roff, from the options table itself
 * (UM_OPTIONS in base/options.h), so the manual cannot disagree with UMALLOC_HELP=1.
 *
 * Built by the Makefile against build/libumalloc.a, whose umi_option_accepted and
 * umi_option_format give the same text as UMALLOC_HELP; the output replaces the line @OPTIONS@
 * of man/umalloc.7.in. One entry per option, in the table's order:
 *
 *   .TP
 *   \fBUMALLOC_NAME\fR=\fItype\fR (default \fBD\fR)
 *   help.
 *   .br
 *   Accepted: what the parser accepts.
 *
 * scripts/test-install.sh compares the names, types and defaults of the rendered page with the
 * UMALLOC_HELP=1 listing of the installed library.
 */
#include <stdio.h>

#include "base/options.h"

/* As UMALLOC_HELP names the types (base/options.c keeps its own copy private); the test
 * compares the two listings, types included. */
static const char *const type_names[] = {
    [UM_OT_BOOL] = "bool",         [UM_OT_INT] = "int",   [UM_OT_SIZE] = "size",
    [UM_OT_DURATION] = "duration", [UM_OT_ENUM] = "enum", [UM_OT_SIGNAL] = "signal",
    [UM_OT_NODES] = "nodes",       [UM_OT_STRING] = "string",
};

/* Text in roff: a backslash is \e, a minus sign \- (so that values copy and paste), and a
 * leading dot or quote must not start a request. */
static void roff(const char *s) {
    if (*s == '.' || *s == '\'') fputs("\\&", stdout);
    for (; *s; s++) {
        if (*s == '\\') fputs("\\e", stdout);
        else if (*s == '-') fputs("\\-", stdout);
        else putchar(*s);
    }
}

int main(void) {
    char buf[512];
    for (int i = 0; i < UM_OPT__COUNT; i++) {
        const um_option_desc *d = &umi_option_table[i];
        puts(".TP");
        printf("\\fB%s\\fR=\\fI%s\\fR (default \\fB", d->name, type_names[d->type]);
        /* The default as UMALLOC_HELP shows it: an empty string is "". */
        size_t n = umi_option_format(d, d->def, d->type == UM_OT_STRING ? d->extra : NULL, buf,
                                     sizeof buf);
        roff(n == 0 ? "\"\"" : buf);
        puts("\\fR)");
        roff(d->help);
        puts(".");
        puts(".br");
        umi_option_accepted(d, buf, sizeof buf);
        fputs("Accepted: ", stdout);
        roff(buf);
        puts(".");
    }
    return ferror(stdout) || fflush(stdout) != 0;
}
