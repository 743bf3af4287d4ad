/*
 * greyspf - a Postfix policy daemon that checks SPF and greylists.
 *
 * This file only dispatches the command word; each command lives in
 * src/cli/.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static const struct {
	const char *name;
	int (*fn)(int, char **);
	const char *summary;
} commands[] = {
	{"serve", cmd_serve, "run the daemon with the configured listeners"},
	{"policy", cmd_policy,
	 "serve one connection on stdin/stdout (Postfix spawn)"},
	{"check", cmd_check, "check SPF for one IP, sender and HELO"},
	{"config", cmd_config, "validate and print the effective configuration"},
	{"db", cmd_db, "inspect and manage the greylist store"},
};

static void usage(FILE *out)
{
	fprintf(out, "usage: greyspf COMMAND [OPTIONS]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-8s %s\n", commands[i].name,
			commands[i].summary);
	fprintf(out, "  %-8s %s\n", "version", "print the version");
	fprintf(out, "\n`greyspf COMMAND --help` describes each command.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	const char *cmd = argv[1];
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 ||
	    strcmp(cmd, "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
		printf("greyspf %s\n", GREYSPF_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(cmd, commands[i].name) == 0)
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "greyspf: unknown command \"%s\"\n", cmd);
	usage(stderr);
	return 2;
}
