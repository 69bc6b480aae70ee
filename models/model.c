/*
** Opening models: see model.h.
**
** The order of decisions is fixed so behaviour is predictable: an explicit
** seqlab.family always wins; a Hugging Face folder's model_type comes next;
** inference from tensor names is the last resort and must be unambiguous
** (exactly one family recognises the tensors), else one error lists the known
** families. Every family's build() validates shapes before any layer exists.
*/
#include "model.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "family.h"
#include "util.h"

void sl_model_free(sl_model *m)
{
    if (!m) return;
    for (int i = 0; i < m->n_layers; i++) sl_layer_free(m->layers[i]);
    free(m->layers);
    if (m->impl_free) m->impl_free(m->impl);
    for (int i = 0; i < m->n_notes; i++) free(m->notes[i]);
    json_decref(m->config);
    json_decref(m->metadata);
    sl_tensors_free(m->tensors);
    free(m->role);
    free(m->summary);
    free(m->path);
    free(m);
}

void sl_model_note(sl_model *m, const char *fmt, ...)
{
    if (m->n_notes >= SL_MODEL_MAX_NOTES) return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    char *s = sl_strdup(buf);
    if (s) m->notes[m->n_notes++] = s;
}

void sl_model_set_role(sl_model *m, const char *name, int role)
{
    for (size_t i = 0; i < m->tensors->n; i++)
        if (strcmp(m->tensors->t[i].name, name) == 0) m->role[i] = (unsigned char)role;
}

int64_t sl_model_param_count(const sl_model *m)
{
    int64_t n = 0;
    for (size_t i = 0; i < m->tensors->n; i++)
        if (!m->role || m->role[i] != SL_ROLE_OPTIM) n += m->tensors->t[i].numel;
    return n;
}

int64_t sl_model_core_param_count(const sl_model *m)
{
    int64_t n = 0;
    for (size_t i = 0; i < m->tensors->n; i++)
        if (m->role[i] == SL_ROLE_CORE) n += m->tensors->t[i].numel;
    return n;
}

/* ------------------------------------------------------------ files and folders */
static int load_file(sl_model *m, const char *path, sl_sha256 *hash, sl_err *err)
{
    sl_stfile *f;
    int rc = sl_stfile_open(path, &f, err);
    if (rc) return rc;
    if (hash) sl_sha256_update(hash, f->map, f->size);
    if (!m->metadata) m->metadata = json_incref(f->metadata);
    rc = sl_tensors_load(m->tensors, f, err);
    if (rc) sl_err_prefix(err, "%s", path);
    sl_stfile_close(f);
    return rc;
}

static int read_whole(const char *path, char **buf, size_t *len, sl_err *err)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return sl_err_set(err, SL_EIO, "%s: %s", path, strerror(errno));
    sl_buf b;
    sl_buf_init(&b);
    char tmp[8192];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, fp)) > 0) sl_buf_putn(&b, tmp, n);
    int bad = ferror(fp);
    fclose(fp);
    if (bad) { sl_buf_free(&b); return sl_err_set(err, SL_EIO, "%s: read error", path); }
    *len = b.len;
    *buf = sl_buf_take(&b);
    return *buf ? SL_OK : sl_err_set(err, SL_ENOMEM, "out of memory");
}

/* Parse a JSON object from a file; the error names the file. */
static int load_json_object(const char *path, const char *data, size_t len, json_t **out, sl_err *err)
{
    json_error_t je;
    json_t *j = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
    if (!j) return sl_err_set(err, SL_EFORMAT, "%s: not valid JSON: %s (line %d)", path, je.text, je.line);
    if (!json_is_object(j)) {
        json_decref(j);
        return sl_err_set(err, SL_EFORMAT, "%s: not a JSON object", path);
    }
    *out = j;
    return SL_OK;
}

static int open_folder(sl_model *m, const char *dir, json_t **hf_config, sl_err *err)
{
    int rc;
    char *cfg_path = sl_strfmt("%s/config.json", dir), *idx_path = sl_strfmt("%s/model.safetensors.index.json", dir),
         *one_path = sl_strfmt("%s/model.safetensors", dir);
    char *data = NULL;
    size_t len = 0;
    json_t *index = NULL;
    sl_sha256 *hash = sl_sha256_new();
    if (!cfg_path || !idx_path || !one_path || !hash) { rc = sl_err_set(err, SL_ENOMEM, "out of memory"); goto done; }
    if ((rc = read_whole(cfg_path, &data, &len, err))) {
        sl_err_set(err, SL_EIO, "%s: a model folder needs config.json (%s)", dir, strerror(errno));
        goto done;
    }
    if ((rc = load_json_object(cfg_path, data, len, hf_config, err))) goto done;
    sl_sha256_update(hash, data, len);
    free(data);
    data = NULL;
    FILE *probe = fopen(idx_path, "rb");
    if (probe) {
        fclose(probe);
        if ((rc = read_whole(idx_path, &data, &len, err))) goto done;
        if ((rc = load_json_object(idx_path, data, len, &index, err))) goto done;
        json_t *wm = json_object_get(index, "weight_map");
        if (!json_is_object(wm) || json_object_size(wm) == 0) {
            rc = sl_err_set(err, SL_EFORMAT, "%s: weight_map missing or empty", idx_path);
            goto done;
        }
        /* Shards in order of first appearance; each loaded once. */
        json_t *seen = json_object();
        const char *name;
        json_t *file;
        json_object_foreach(wm, name, file) {
            const char *fn = json_string_value(file);
            if (!fn || strchr(fn, '/') || strcmp(fn, "..") == 0) {
                rc = sl_err_set(err, SL_EFORMAT, "%s: weight_map entry for %s is not a file name in the folder",
                                idx_path, name);
                break;
            }
            if (json_object_get(seen, fn)) continue;
            json_object_set_new(seen, fn, json_true());
            char *shard = sl_strfmt("%s/%s", dir, fn);
            if (!shard) { rc = sl_err_set(err, SL_ENOMEM, "out of memory"); break; }
            rc = load_file(m, shard, hash, err);
            free(shard);
            if (rc) break;
        }
        json_decref(seen);
        if (rc) goto done;
        json_object_foreach(wm, name, file) {
            if (!sl_tensors_find(m->tensors, name)) {
                rc = sl_err_set(err, SL_EFORMAT, "%s: tensor %s is listed in weight_map but not in shard %s",
                                idx_path, name, json_string_value(file));
                goto done;
            }
        }
    } else {
        if ((rc = load_file(m, one_path, hash, err))) goto done;
    }
    sl_sha256_final(hash, m->sha256);
done:
    sl_sha256_free(hash);
    json_decref(index);
    free(data);
    free(cfg_path);
    free(idx_path);
    free(one_path);
    return rc;
}

/* ------------------------------------------------------------ family */
static int pick_family(sl_model *m, json_t *hf_config, json_t **inferred, sl_err *err)
{
    const char *fam = json_string_value(json_object_get(m->metadata, "seqlab.family"));
    if (fam) {
        m->fam = sl_family_find(fam);
        if (!m->fam)
            return sl_err_set(err, SL_EUNSUP, "unknown family \"%s\" in seqlab.family (known families: %s)", fam,
                              sl_family_names());
        return SL_OK;
    }
    if (hf_config) {
        const char *mt = json_string_value(json_object_get(hf_config, "model_type"));
        if (mt) {
            m->fam = sl_family_by_hf_type(mt);
            if (!m->fam)
                return sl_err_set(err, SL_EUNSUP, "config.json model_type \"%s\" is not a family seqlab knows "
                                  "(known families: %s)", mt, sl_family_names());
            return SL_OK;
        }
    }
    const sl_family *hit = NULL;
    int hits = 0;
    for (size_t i = 0; i < sl_family_count(); i++) {
        const sl_family *f = sl_family_at(i);
        json_t *cfg = NULL;
        if (f->detect && f->detect(m->tensors, &cfg) == 1) {
            hits++;
            hit = f;
            json_decref(*inferred);
            *inferred = cfg;
        } else {
            json_decref(cfg);
        }
    }
    if (hits == 1) {
        m->fam = hit;
        sl_model_note(m, "family %s inferred from tensor names and shapes (no seqlab.family in the metadata)",
                      hit->name);
        return SL_OK;
    }
    return sl_err_set(err, SL_EUNSUP, "%s: no seqlab.family in the metadata and the family cannot be told from "
                      "the tensor names (%s); set seqlab.family to one of the known families: %s",
                      hits ? "ambiguous" : "unknown", hits ? "several families match" : "no family matches",
                      sl_family_names());
}

static int finish(sl_model *m, json_t *hf_config, sl_err *err)
{
    int rc;
    json_t *inferred = NULL;
    if (!m->metadata) m->metadata = json_object();
    if ((rc = pick_family(m, hf_config, &inferred, err))) { json_decref(inferred); return rc; }
    const char *cs = json_string_value(json_object_get(m->metadata, "seqlab.config"));
    if (cs) {
        json_error_t je;
        m->config = json_loads(cs, JSON_REJECT_DUPLICATES, &je);
        if (!m->config) { json_decref(inferred); return sl_err_set(err, SL_EFORMAT, "seqlab.config is not valid JSON: %s", je.text); }
        if (!json_is_object(m->config)) {
            json_decref(inferred);
            return sl_err_set(err, SL_EFORMAT, "seqlab.config is not a JSON object");
        }
        json_decref(inferred);
    } else if (hf_config) {
        m->config = json_incref(hf_config);
        json_decref(inferred);
    } else {
        m->config = inferred ? inferred : json_object();
    }
    m->role = calloc(m->tensors->n ? m->tensors->n : 1, 1);
    if (!m->role || !m->config) return sl_err_set(err, SL_ENOMEM, "out of memory");
    if (m->fam->build && (rc = m->fam->build(m, err))) return rc;
    /* The readout `seqlab train` adds (readout.weight, readout.0.bias, ...) is a
    ** head whatever the family; families leave those tensors alone. */
    for (size_t i = 0; i < m->tensors->n; i++)
        if (m->role[i] == SL_ROLE_OTHER && strncmp(m->tensors->t[i].name, "readout.", 8) == 0) m->role[i] = SL_ROLE_HEAD;
    /* A training checkpoint's AdamW moments (optim.m.*, optim.v.*). */
    for (size_t i = 0; i < m->tensors->n; i++)
        if (m->role[i] == SL_ROLE_OTHER && strncmp(m->tensors->t[i].name, "optim.", 6) == 0) m->role[i] = SL_ROLE_OPTIM;
    return SL_OK;
}

int sl_model_open(const char *path, sl_model **out, sl_err *err)
{
    *out = NULL;
    sl_model *m = calloc(1, sizeof *m);
    json_t *hf = NULL;
    int rc;
    if (!m || !(m->path = sl_strdup(path)) || !(m->tensors = sl_tensors_new())) {
        sl_model_free(m);
        return sl_err_set(err, SL_ENOMEM, "out of memory");
    }
    if (sl_is_dir(path)) {
        rc = open_folder(m, path, &hf, err);
    } else {
        sl_stfile *f;
        rc = sl_stfile_open(path, &f, err);
        if (!rc) {
            sl_sha256_buf(f->map, f->size, m->sha256);
            m->metadata = json_incref(f->metadata);
            rc = sl_tensors_load(m->tensors, f, err);
            sl_stfile_close(f);
        }
    }
    if (!rc) rc = finish(m, hf, err);
    json_decref(hf);
    if (rc) {
        if (strncmp(err ? err->msg : "", path, strlen(path)) != 0) sl_err_prefix(err, "%s", path);
        sl_model_free(m);
        return rc;
    }
    *out = m;
    return SL_OK;
}

int sl_model_from_tensors(sl_tensors *ts, const char *family, json_t *config, sl_model **out, sl_err *err)
{
    *out = NULL;
    sl_model *m = calloc(1, sizeof *m);
    if (!m) { sl_tensors_free(ts); return sl_err_set(err, SL_ENOMEM, "out of memory"); }
    m->tensors = ts;
    m->path = sl_strdup("(memory)");
    m->metadata = json_object();
    json_object_set_new(m->metadata, "seqlab.family", json_string(family));
    char *cs = json_dumps(config, JSON_COMPACT | JSON_SORT_KEYS);
    if (cs) json_object_set_new(m->metadata, "seqlab.config", json_string(cs));
    free(cs);
    int rc = finish(m, NULL, err);
    if (rc) { sl_model_free(m); return rc; }
    *out = m;
    return SL_OK;
}

int sl_model_save(const sl_model *m, const char *path, const json_t *extra_meta, sl_err *err)
{
    json_t *meta = json_object();
    if (!meta) return sl_err_set(err, SL_ENOMEM, "out of memory");
    if (extra_meta) json_object_update(meta, (json_t *)extra_meta);
    json_object_set_new(meta, "seqlab.family", json_string(m->fam->name));
    char *cs = json_dumps(m->config, JSON_COMPACT | JSON_SORT_KEYS);
    if (!cs) { json_decref(meta); return sl_err_set(err, SL_ENOMEM, "out of memory"); }
    json_object_set_new(meta, "seqlab.config", json_string(cs));
    free(cs);
    int rc = sl_tensors_save(m->tensors, path, meta, err);
    json_decref(meta);
    return rc;
}

/* ------------------------------------------------------------ forward */
int sl_model_forward(const sl_model *m, int64_t B, int64_t T, const float *x, float *y, float **carries, int algo,
                     sl_err *err)
{
    return sl_model_forward_dev(m, B, T, x, y, carries, algo, SL_DEVICE_CPU, err);
}

int sl_model_forward_dev(const sl_model *m, int64_t B, int64_t T, const float *x, float *y, float **carries,
                         int algo, int device, sl_err *err)
{
    if (m->n_layers == 0) return sl_err_set(err, SL_EUNSUP, "model has no layers");
    if (device != SL_DEVICE_CPU) {
        if (!sl_device_built(device)) return sl_device_check(device, err);
        for (int l = 0; l < m->n_layers; l++)
            if (!(m->layers[l]->flags & SL_LAYER_CUDA))
                return sl_err_set(err, SL_EUNSUP, "the %s family has no CUDA path (layer %d; use --device cpu)",
                                  m->layers[l]->kind, l);
        int rc = sl_device_check(device, err);
        if (rc) return rc;
    }
    float *bufs[2] = { NULL, NULL };
    int rc = SL_OK;
    const float *in = x;
    for (int l = 0; l < m->n_layers; l++) {
        const sl_layer *L = m->layers[l];
        float *outp;
        if (l == m->n_layers - 1) {
            outp = y;
        } else {
            size_t n;
            if (sl_mul_size((size_t)(B * T), (size_t)L->n_out, &n)) return sl_err_set(err, SL_ENOMEM, "too large");
            float *b = realloc(bufs[l & 1], (n ? n : 1) * sizeof(float));
            if (!b) { rc = sl_err_set(err, SL_ENOMEM, "out of memory"); break; }
            bufs[l & 1] = b;
            outp = b;
        }
        sl_fwd f = { .B = B, .T = T, .x = in, .y = outp, .carry = carries ? carries[l] : NULL, .algo = algo,
                     .device = device };
        if ((rc = sl_layer_forward(L, &f, err))) break;
        in = outp;
    }
    free(bufs[0]);
    free(bufs[1]);
    return rc;
}

int sl_model_check_finite(const sl_model *m, sl_err *err)
{
    for (size_t i = 0; i < m->tensors->n; i++) {
        const sl_tensor *t = &m->tensors->t[i];
        for (int64_t k = 0; k < t->numel; k++)
            if (!isfinite(t->data[k]))
                return sl_err_set(err, SL_EFORMAT, "%s: tensor %s has a non-finite value (%g) at flat index %lld",
                                  m->path, t->name, (double)t->data[k], (long long)k);
    }
    return SL_OK;
}

/* ------------------------------------------------------------ config */
int sl_config_int(const json_t *cfg, const char *key, int64_t dflt, int64_t *out, sl_err *err)
{
    json_t *v = json_object_get(cfg, key);
    if (!v || json_is_null(v)) { *out = dflt; return SL_OK; }
    if (json_is_integer(v)) { *out = json_integer_value(v); return SL_OK; }
    if (json_is_real(v) && json_real_value(v) == (double)(int64_t)json_real_value(v)) {
        *out = (int64_t)json_real_value(v);
        return SL_OK;
    }
    return sl_err_set(err, SL_EFORMAT, "config key \"%s\" must be an integer", key);
}

int sl_config_bool(const json_t *cfg, const char *key, int dflt, int *out, sl_err *err)
{
    json_t *v = json_object_get(cfg, key);
    if (!v || json_is_null(v)) { *out = dflt; return SL_OK; }
    if (json_is_boolean(v)) { *out = json_is_true(v); return SL_OK; }
    if (json_is_integer(v) && (json_integer_value(v) == 0 || json_integer_value(v) == 1)) {
        *out = (int)json_integer_value(v);
        return SL_OK;
    }
    return sl_err_set(err, SL_EFORMAT, "config key \"%s\" must be true or false", key);
}

int sl_config_double(const json_t *cfg, const char *key, double dflt, double *out, sl_err *err)
{
    json_t *v = json_object_get(cfg, key);
    if (!v || json_is_null(v)) { *out = dflt; return SL_OK; }
    if (json_is_number(v)) { *out = json_number_value(v); return SL_OK; }
    return sl_err_set(err, SL_EFORMAT, "config key \"%s\" must be a number", key);
}

int sl_config_str(const json_t *cfg, const char *key, const char *dflt, const char **out, sl_err *err)
{
    json_t *v = json_object_get(cfg, key);
    if (!v || json_is_null(v)) { *out = dflt; return SL_OK; }
    if (json_is_string(v)) { *out = json_string_value(v); return SL_OK; }
    return sl_err_set(err, SL_EFORMAT, "config key \"%s\" must be a string", key);
}
