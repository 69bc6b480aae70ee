/*
** Figure files from the command line: default paths beside the run store,
** media types for the artifacts table.
*/
#ifndef SL_CLI_FIGURE_H
#define SL_CLI_FIGURE_H

/* "<dir of the database>/<model file name without extension>-<what><ext>":
** figures land beside the database the run is recorded in. Caller frees. */
char *cli_default_figure_path(const char *opt_db, const char *model_path, const char *what, const char *ext);

/* "image/png", "application/pdf", "image/svg+xml", else "application/octet-stream". */
const char *cli_media_type(const char *path);

/* The last path component (a folder's name for a model folder), borrowed. */
const char *cli_basename(const char *path);

/* Panel titles "layer l (kind)" for layers 0..n-1 (kinds[l] may be NULL:
** "layer l"), written into buf (n entries); returns a malloc'ed array of n
** pointers into buf (the caller frees the array), NULL when out of memory. */
const char **cli_layer_titles(int n, const char *const *kinds, char (*buf)[64]);

#endif
