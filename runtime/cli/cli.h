/* cli.h — private to runtime/cli: what the command files share. */
#ifndef TRL_CLI_H
#define TRL_CLI_H

#include "core/core.h"

#include <stdbool.h>

/* Prints d's message and field errors to stderr. */
void trl_cli_print_diag(const struct trl_diag *d);

/* hooks_cmd.c: `trellis hooks test|lint APP_DIR` (pos: the words after "hooks"). */
int trl_cli_hooks(int npos, const char *const *pos, bool help, const char *filter);

#endif
