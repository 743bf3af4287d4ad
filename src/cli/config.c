/*
 * config - `greyspf config`: validate, then print the effective settings.
 */
#include "cli/cli.h"
#include "conf/conf.h"
#include "engine/engine.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

int cmd_config(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *file = NULL;
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			file = optarg;
			break;
		case 'h':
			printf("usage: greyspf config [-c FILE]\n\n"
			       "Validates the configuration and the whitelist "
			       "files it names, then prints\nevery option's "
			       "effective value. Exits 1 with FILE:LINE: "
			       "message on error.\n");
			return 0;
		default:
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "greyspf config: unexpected argument \"%s\"\n",
			argv[optind]);
		return 2;
	}
	char err[1024];
	struct conf *c = cli_load_conf(file, err, sizeof(err));
	if (c == NULL) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	struct engine_lists *l = engine_lists_load(c, err, sizeof(err));
	if (l == NULL) {
		fprintf(stderr, "%s\n", err);
		conf_unref(c);
		return 1;
	}
	engine_lists_free(l);
	printf("# %s\n", c->file);
	conf_print(c, stdout);
	conf_unref(c);
	return 0;
}
