/*
** A model: a stack of layers opened from a model file.
**
** sl_model_open reads a safetensors file or a Hugging Face model folder
** (config.json plus model.safetensors, or model.safetensors.index.json with its
** shards), finds the family (seqlab.family in the metadata, else config.json's
** model_type, else inference from tensor names and shapes where that is
** unambiguous), parses the config (seqlab.config or config.json) and lets the
** family build the layers. Tensors outside the recurrent core (embeddings,
** readouts, convolutional front ends) are kept and marked as such.
**
** The model owns everything reachable from it; sl_model_free releases it.
*/
#ifndef SL_MODEL_H
#define SL_MODEL_H

#include <jansson.h>
#include <stdint.h>

#include "err.h"
#include "layer.h"
#include "tensor.h"

struct sl_family;

/* Role of a tensor in the model. */
/* SL_ROLE_OPTIM: a training checkpoint's optimiser state (optim.*), not a
** parameter (not counted by sl_model_param_count). */
enum { SL_ROLE_OTHER = 0, SL_ROLE_CORE = 1, SL_ROLE_EMBED = 2, SL_ROLE_HEAD = 3, SL_ROLE_OPTIM = 4 };

#define SL_MODEL_MAX_NOTES 8

typedef struct sl_model {
    char       *path;
    char        sha256[65];     /* of the file; of config.json + shards for a folder */
    const struct sl_family *fam;
    json_t     *config;         /* family config (object) */
    json_t     *metadata;       /* __metadata__ of the (first) file */
    sl_tensors *tensors;
    unsigned char *role;        /* SL_ROLE_* per tensor (same order as tensors) */
    int         n_layers;
    sl_layer  **layers;
    int64_t     n_in;           /* features the first layer takes */
    int64_t     n_out;          /* features the last layer gives */
    const sl_tensor *embedding; /* token embedding [vocab, n_in], or NULL */
    char       *summary;        /* one line: "lstm, 1 layer, input 128, hidden 128" */
    int         n_notes;        /* assumptions made while opening, for info */
    char       *notes[SL_MODEL_MAX_NOTES];
    void       *impl;           /* family model-level data */
    void      (*impl_free)(void *impl);
} sl_model;

/* Open path (file or folder). On success *out is the caller's to free. */
int  sl_model_open(const char *path, sl_model **out, sl_err *err);
void sl_model_free(sl_model *m);

/* Build a model in memory from tensors (taken over, even on failure), a family
** name and a config (a new reference is taken). For seqlab init and training. */
int  sl_model_from_tensors(sl_tensors *ts, const char *family, json_t *config, sl_model **out, sl_err *err);

/* Save m's tensors with seqlab.family and seqlab.config (and any extra metadata
** strings in extra_meta, may be NULL) to path atomically. */
int  sl_model_save(const sl_model *m, const char *path, const json_t *extra_meta, sl_err *err);

/* Number of parameters (elements of every tensor but optimiser state), and of the core alone. */
int64_t sl_model_param_count(const sl_model *m);
int64_t sl_model_core_param_count(const sl_model *m);

/* Record an assumption made while opening (family builders). */
void sl_model_note(sl_model *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Mark a tensor's role by name (no-op when absent). */
void sl_model_set_role(sl_model *m, const char *name, int role);

/* Forward pass of the layer stack on features x [B, T, n_in] -> y [B, T, n_out].
** carries: NULL, or n_layers pointers, each [B, layer n_carry] holding the start
** state (a NULL entry starts from zeros) and receiving the final state.
** Intermediate activations are allocated here and freed before returning. */
int  sl_model_forward(const sl_model *m, int64_t B, int64_t T, const float *x, float *y, float **carries, int algo,
                      sl_err *err);
/* The same on a device (SL_DEVICE_*, device.h). For CUDA it first checks, in
** this order, that the build has CUDA, that every layer's family has a CUDA
** path (else an error naming the first that has none) and that a device is
** present, so nothing runs when any is missing. sl_model_forward is this with
** SL_DEVICE_CPU. */
int  sl_model_forward_dev(const sl_model *m, int64_t B, int64_t T, const float *x, float *y, float **carries,
                          int algo, int device, sl_err *err);

/* SL_EFORMAT naming the first tensor with a NaN or infinite value (analyses
** call this before they start; info and init do not, so a broken file can
** still be inspected). */
int  sl_model_check_finite(const sl_model *m, sl_err *err);

/* Config accessors with defaults; errors name the key and what was expected. */
int sl_config_int(const json_t *cfg, const char *key, int64_t dflt, int64_t *out, sl_err *err);
int sl_config_bool(const json_t *cfg, const char *key, int dflt, int *out, sl_err *err);
int sl_config_double(const json_t *cfg, const char *key, double dflt, double *out, sl_err *err);
/* *out borrows from cfg (or is dflt). */
int sl_config_str(const json_t *cfg, const char *key, const char *dflt, const char **out, sl_err *err);

#endif
