/*
 * cli - the commands of the greyspf program, one function each.
 *
 * main.c dispatches argv[1] to these. Each returns the process exit status:
 * 0 success, 1 failure at run time, 2 usage error. Commands print to
 * stdout/stderr as a command line tool does, except `policy`, which runs
 * under Postfix spawn(8) with the socket on stderr and therefore logs to
 * syslog only.
 */
#ifndef GREYSPF_CLI_CLI_H
#define GREYSPF_CLI_CLI_H

#include <stdbool.h>
#include <stddef.h>

struct conf;
struct store;
struct event_base;

int cmd_serve(int argc, char **argv);
int cmd_policy(int argc, char **argv);
int cmd_config(int argc, char **argv);
int cmd_db(int argc, char **argv);
int cmd_check(int argc, char **argv);

/* Shared by the commands. */

/* Loads -c FILE (or the default). Prints nothing; NULL + err on failure. */
struct conf *cli_load_conf(const char *file, char *err, size_t errsize);

/*
 * Opens the configured store backend. base NULL: synchronous use. readonly
 * for inspection while a daemon runs. NULL + err on failure.
 */
struct store *cli_open_store(const struct conf *c, struct event_base *base,
			     bool readonly, char *err, size_t errsize);

#endif
