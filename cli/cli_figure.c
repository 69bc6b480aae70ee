/*
** Figure files from the command line: see cli_figure.h.
*/
#include "cli_figure.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"
#include "util.h"

const char *cli_basename(const char *path)
{
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;   /* "models/x/" names x */
    static char buf[4096];
    snprintf(buf, sizeof buf, "%.*s", (int)n, path);
    const char *s = strrchr(buf, '/');
    return s ? s + 1 : buf;
}

char *cli_default_figure_path(const char *opt_db, const char *model_path, const char *what, const char *ext)
{
    const char *db = cli_db_path(opt_db);
    const char *slash = strrchr(db, '/');
    int dirlen = slash ? (int)(slash - db + 1) : 0;
    char stem[1024];
    snprintf(stem, sizeof stem, "%s", cli_basename(model_path));
    char *dot = strrchr(stem, '.');
    if (dot && dot != stem) *dot = '\0';
    return sl_strfmt("%.*s%s-%s%s", dirlen, db, stem, what, ext);
}

const char *cli_media_type(const char *path)
{
    const char *dot = strrchr(path, '.');
    if (!dot) return "application/octet-stream";
    if (!strcasecmp(dot, ".png")) return "image/png";
    if (!strcasecmp(dot, ".pdf")) return "application/pdf";
    if (!strcasecmp(dot, ".svg")) return "image/svg+xml";
    return "application/octet-stream";
}

const char **cli_layer_titles(int n, const char *const *kinds, char (*buf)[64])
{
    const char **t = calloc((size_t)(n > 0 ? n : 1), sizeof *t);
    if (!t) return NULL;
    for (int l = 0; l < n; l++) {
        if (kinds && kinds[l]) snprintf(buf[l], 64, "layer %d (%s)", l, kinds[l]);
        else snprintf(buf[l], 64, "layer %d", l);
        t[l] = buf[l];
    }
    return t;
}
