/*
** Input sequences from safetensors files: the `u` [B, T, F] tensor that
** `seqlab run`, `--input` and `--data` take (task files from `seqlab data` and
** user-made files alike). A 2-D tensor [T, F] is one sequence (B = 1).
*/
#ifndef SL_INPUT_H
#define SL_INPUT_H

#include <stdint.h>

#include "err.h"

typedef struct sl_input {
    int64_t B, T, F;
    float  *u;           /* [B, T, F], owned */
} sl_input;

/* Load tensor `name` (NULL: "u") from path. Errors (SL_EFORMAT, naming the file
** and the tensor) for a missing tensor, a rank other than 2 or 3, an empty
** sequence, or a non-finite value (its position is named). */
int  sl_input_load(const char *path, const char *name, sl_input *in, sl_err *err);
void sl_input_free(sl_input *in);

#endif
