/*
** seqlab info MODEL: what a model file holds — family, config, the recurrent
** core, every tensor (name, dtype, shape, role), parameter counts and the
** file's SHA-256.
*/
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "family.h"
#include "model.h"
#include "table.h"
#include "train.h"

static const char *role_name(int r)
{
    switch (r) {
    case SL_ROLE_CORE: return "core";
    case SL_ROLE_EMBED: return "embedding";
    case SL_ROLE_HEAD: return "head";
    case SL_ROLE_OPTIM: return "optimizer";
    default: return "other";
    }
}

static sl_table *tensor_table(const sl_model *m, int with_model_cols)
{
    const char *cols[] = { "family", "sha256", "name", "dtype", "shape", "numel", "role" };
    int off = with_model_cols ? 0 : 2;
    sl_table *t = sl_table_new(7 - off, cols + off);
    if (!t) return NULL;
    sl_table_numeric(t, 5 - off, 1);
    for (size_t i = 0; i < m->tensors->n; i++) {
        const sl_tensor *x = &m->tensors->t[i];
        char shp[128];
        sl_table_row(t);
        if (with_model_cols) {
            sl_table_set(t, 0, m->fam->name);
            sl_table_set(t, 1, m->sha256);
        }
        sl_table_set(t, 2 - off, x->name);
        sl_table_set(t, 3 - off, sl_dtype_name(x->dtype));
        sl_table_set(t, 4 - off, sl_shape_str(x->ndim, x->shape, shp, sizeof shp));
        sl_table_setf(t, 5 - off, "%lld", (long long)x->numel);
        sl_table_set(t, 6 - off, role_name(m->role[i]));
    }
    return t;
}

static void print_json(const sl_model *m)
{
    json_t *o = json_object(), *tens = json_array(), *notes = json_array();
    json_object_set_new(o, "path", json_string(m->path));
    json_object_set_new(o, "sha256", json_string(m->sha256));
    json_object_set_new(o, "family", json_string(m->fam->name));
    json_object_set_new(o, "summary", json_string(m->summary ? m->summary : ""));
    json_object_set(o, "config", m->config);
    json_object_set_new(o, "layers", json_integer(m->n_layers));
    json_object_set_new(o, "parameters", json_integer(sl_model_param_count(m)));
    json_object_set_new(o, "core_parameters", json_integer(sl_model_core_param_count(m)));
    for (size_t i = 0; i < m->tensors->n; i++) {
        const sl_tensor *x = &m->tensors->t[i];
        json_t *shape = json_array();
        for (int d = 0; d < x->ndim; d++) json_array_append_new(shape, json_integer(x->shape[d]));
        json_array_append_new(tens, json_pack("{s:s, s:s, s:o, s:I, s:s}", "name", x->name, "dtype",
                                              sl_dtype_name(x->dtype), "shape", shape, "numel", (json_int_t)x->numel,
                                              "role", role_name(m->role[i])));
    }
    json_object_set_new(o, "tensors", tens);
    for (int i = 0; i < m->n_notes; i++) json_array_append_new(notes, json_string(m->notes[i]));
    json_object_set_new(o, "notes", notes);
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s) puts(s);
    free(s);
    json_decref(o);
}

static int info_run(sl_cli *c, int argc, char **argv)
{
    static const struct option opts[] = {
        { "format", required_argument, 0, 'f' },
        { "help", no_argument, 0, 'h' },
        { 0, 0, 0, 0 },
    };
    sl_outfmt fmt = SL_FMT_TABLE;
    int ch;
    optind = 0;
    while ((ch = cli_getopt(c, argc, argv, "f:h", opts)) != -1) {
        switch (ch) {
        case 'f': if (cli_parse_format(c, optarg, &fmt)) return 2; break;
        case 'h': printf("%s\n", sl_cli_find("info")->help); return 0;
        default: return 2;
        }
    }
    if (cli_positional(c, argc, argv, 1, "MODEL (a model file or folder)")) return 2;
    sl_err err = { 0 };
    sl_model *m;
    if (sl_model_open(argv[optind], &m, &err)) return cli_fail(c, &err);
    /* A model seqlab train wrote: its readout (role head) and input projection
    ** (role embedding) are named by its seqlab.train metadata. A file whose
    ** metadata does not match its tensors still gets listed, roles as found. */
    if (json_object_get(m->metadata, "seqlab.train")) {
        sl_readout ro;
        sl_err ignored = { 0 };
        (void)sl_readout_from_model(&ro, m, &ignored);
    }
    if (fmt == SL_FMT_JSON) {
        print_json(m);
    } else if (fmt == SL_FMT_CSV) {
        sl_table *t = tensor_table(m, 1);
        if (t) sl_table_print(t, SL_FMT_CSV, stdout);
        sl_table_free(t);
    } else {
        char *cfg = json_dumps(m->config, JSON_COMPACT | JSON_SORT_KEYS);
        printf("model       %s\n", m->path);
        printf("sha256      %s\n", m->sha256);
        printf("family      %s\n", m->fam->name);
        printf("core        %s\n", m->summary ? m->summary : "(none)");
        printf("config      %s\n", cfg ? cfg : "{}");
        printf("parameters  %lld (core %lld, other %lld)\n", (long long)sl_model_param_count(m),
               (long long)sl_model_core_param_count(m),
               (long long)(sl_model_param_count(m) - sl_model_core_param_count(m)));
        for (int i = 0; i < m->n_notes; i++) printf("note        %s\n", m->notes[i]);
        free(cfg);
        printf("\n");
        sl_table *t = tensor_table(m, 0);
        if (t) sl_table_print(t, SL_FMT_TABLE, stdout);
        sl_table_free(t);
    }
    sl_model_free(m);
    return 0;
}

const sl_command sl_cmd_info = {
    .name = "info",
    .run = info_run,
    .summary = "describe a model file: family, config, tensors, parameter count, SHA-256",
    .help = "usage: seqlab info MODEL [--format table|csv|json]\n\n"
            "MODEL is a safetensors file or a Hugging Face model folder (config.json plus model.safetensors,\n"
            "or model.safetensors.index.json with its shards).\n\n"
            "Prints the family (from seqlab.family, config.json's model_type, or inferred from tensor names\n"
            "where unambiguous), the config in effect, the recurrent core, every tensor with its dtype, shape\n"
            "and role (core: used by the recurrent core; embedding and head: a trained model's input\n"
            "projection and readout, applied by seqlab eval; optimizer: a training checkpoint's AdamW moments\n"
            "optim.m.* and optim.v.*, not parameters, used only by seqlab train --resume; other: front ends,\n"
            "readouts of other tools, kept but unused), the parameter counts and the SHA-256 of the file.\n\n"
            "options:\n"
            "  -f, --format FMT   table (default), csv (one row per tensor), json (everything)\n",
};
