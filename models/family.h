/*
** The family registry. Adding a family = one file with an sl_family descriptor
** (its forward pass and linear system behind the layer interface) and one line
** in registry.c; every analysis then works on it.
*/
#ifndef SL_FAMILY_H
#define SL_FAMILY_H

#include <jansson.h>
#include <stdint.h>

#include "err.h"
#include "model.h"
#include "tensor.h"

/* A config key a family accepts (for seqlab init options and validation). */
typedef struct sl_config_key {
    const char *name;      /* "hidden_size"; the option is --hidden-size */
    const char *type;      /* "int", "float", "bool", "string" */
    const char *help;      /* one line, with the default */
} sl_config_key;

typedef struct sl_family {
    const char *name;                   /* "lstm" */
    const char *summary;                /* one line for help and info */
    const char *const *hf_model_types;  /* config.json model_type values (NULL-terminated) or NULL */
    /* Recognise a checkpoint without seqlab.family from tensor names and shapes.
    ** Returns 1 when unambiguous (and may set *config to a new object with what
    ** it inferred, or to NULL), 0 when not this family. */
    int (*detect)(const sl_tensors *ts, json_t **config);
    /* Validate m->config against m->tensors and build m->layers, m->n_in,
    ** m->n_out, m->summary and the tensor roles. May fill defaults into
    ** m->config. */
    int (*build)(sl_model *m, sl_err *err);
    /* Fresh parameters for `seqlab init`, as the reference implementation
    ** initialises them. cfg holds the command's options; init fills defaults in
    ** and adds the tensors to ts. */
    int (*init)(json_t *cfg, uint64_t seed, sl_tensors *ts, sl_err *err);
    /* The config keys init accepts, ending with {0}. */
    const sl_config_key *keys;
} sl_family;

/* The key named name in f's list, or NULL. */
const sl_config_key *sl_family_key(const sl_family *f, const char *name);

const sl_family *sl_family_find(const char *name);
const sl_family *sl_family_by_hf_type(const char *model_type);
size_t sl_family_count(void);
const sl_family *sl_family_at(size_t i);
/* "rnn, lstm, gru, ..." (static storage). */
const char *sl_family_names(void);

#endif
