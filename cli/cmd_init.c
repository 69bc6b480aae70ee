/*
** seqlab init --family F [family options] [--seed S] -o model.bin
**
** A fresh model initialised as the family's reference implementation does,
** with seqlab.family and seqlab.config set. Family options come from the
** family's key list (sl_family.keys): --hidden-size 32 sets "hidden_size";
** a bool key is set by --key, cleared by --no-key, or given as --key=false.
*/
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "family.h"
#include "model.h"
#include "util.h"

static int set_key(const sl_cli *c, const sl_family *fam, json_t *cfg, const char *opt, const char *val, int negated)
{
    char key[128];
    snprintf(key, sizeof key, "%s", opt);
    for (char *p = key; *p; p++) if (*p == '-') *p = '_';
    const sl_config_key *k = sl_family_key(fam, key);
    if (!k) {
        sl_buf b;
        sl_buf_init(&b);
        for (const sl_config_key *q = fam->keys; q && q->name; q++) {
            sl_buf_printf(&b, "%s--", b.len ? ", " : "");
            for (const char *p = q->name; *p; p++) sl_buf_putn(&b, *p == '_' ? "-" : p, 1);
        }
        cli_error(c, 2, "unknown option --%s%s for family %s (its options: %s)", negated ? "no-" : "", opt, fam->name,
                  b.s ? b.s : "none");
        sl_buf_free(&b);
        return 2;
    }
    json_t *v = NULL;
    char optname[160];
    snprintf(optname, sizeof optname, "--%s", opt);
    if (strcmp(k->type, "bool") == 0) {
        if (negated && val) return cli_error(c, 2, "--no-%s takes no value", opt);
        if (!val) v = json_boolean(!negated);
        else if (!strcmp(val, "true") || !strcmp(val, "1")) v = json_true();
        else if (!strcmp(val, "false") || !strcmp(val, "0")) v = json_false();
        else return cli_error(c, 2, "%s: \"%s\" is not true or false", optname, val);
    } else {
        if (negated) return cli_error(c, 2, "unknown option --no-%s", opt);
        if (!val) return cli_error(c, 2, "option %s needs a value", optname);
        if (strcmp(k->type, "int") == 0) {
            long long x;
            if (cli_parse_int(c, optname, val, -(1LL << 53), 1LL << 53, &x)) return 2;
            v = json_integer(x);
        } else if (strcmp(k->type, "float") == 0) {
            double x;
            if (cli_parse_double(c, optname, val, &x)) return 2;
            v = json_real(x);
        } else {
            v = json_string(val);
        }
    }
    json_object_set_new(cfg, key, v);
    return 0;
}

static void family_options_help(void)
{
    for (size_t i = 0; i < sl_family_count(); i++) {
        const sl_family *f = sl_family_at(i);
        printf("\n  --family %s: %s\n", f->name, f->summary);
        for (const sl_config_key *k = f->keys; k && k->name; k++) {
            char opt[128];
            size_t n = 0;
            for (const char *p = k->name; *p && n + 1 < sizeof opt; p++) opt[n++] = *p == '_' ? '-' : *p;
            opt[n] = '\0';
            printf("    --%-22s %s (%s)\n", opt, k->help, k->type);
        }
    }
}

static int init_run(sl_cli *c, int argc, char **argv)
{
    const char *family = NULL, *out = NULL, *cfg_json = NULL;
    long long seed = 0;
    /* First pass: the fixed options; family keys are resolved once the family is known. */
    const char **keys = calloc((size_t)argc, sizeof *keys), **vals = calloc((size_t)argc, sizeof *vals);
    int *neg = calloc((size_t)argc, sizeof *neg), nk = 0, rc = 0;
    json_t *cfg = NULL;
    sl_tensors *ts = NULL;
    if (!keys || !vals || !neg) { rc = cli_error(c, 1, "out of memory"); goto done; }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *eq = strchr(a, '=');
        char name[128];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            printf("%s\n", sl_cli_find("init")->help);
            family_options_help();
            goto done;
        }
        if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0 || strcmp(a, "--family") == 0 ||
            strcmp(a, "--seed") == 0 || strcmp(a, "--config") == 0) {
            if (i + 1 >= argc) { rc = cli_error(c, 2, "option %s needs a value", a); goto done; }
            const char *v = argv[++i];
            if (a[1] == 'o' || a[2] == 'o') out = v;
            else if (a[2] == 'f') family = v;
            else if (a[2] == 'c') cfg_json = v;
            else if (cli_parse_int(c, "--seed", v, 0, (1LL << 62), &seed)) { rc = 2; goto done; }
            continue;
        }
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            rc = cli_error(c, 2, "unexpected argument \"%s\" (see seqlab help init)", a);
            goto done;
        }
        snprintf(name, sizeof name, "%.*s", eq ? (int)(eq - a - 2) : (int)strlen(a + 2), a + 2);
        keys[nk] = argv[i] + 2;
        neg[nk] = strncmp(name, "no-", 3) == 0;
        vals[nk] = eq ? eq + 1 : NULL;
        /* A value may follow as the next argument unless it looks like an option. */
        if (!eq && i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0 && strcmp(argv[i + 1], "-o") != 0)
            vals[nk] = argv[++i];
        nk++;
    }
    if (!family) { rc = cli_error(c, 2, "missing --family (one of: %s)", sl_family_names()); goto done; }
    if (!out) { rc = cli_error(c, 2, "missing -o FILE (where to write the model)"); goto done; }
    const sl_family *fam = sl_family_find(family);
    if (!fam) { rc = cli_error(c, 2, "unknown family \"%s\" (known families: %s)", family, sl_family_names()); goto done; }
    if (!fam->init) { rc = cli_error(c, 2, "family %s cannot be initialised by seqlab init", family); goto done; }
    if (cfg_json) {
        json_error_t je;
        cfg = json_loads(cfg_json, 0, &je);
        if (!json_is_object(cfg)) { rc = cli_error(c, 2, "--config: not a JSON object (%s)", je.text); goto done; }
    } else {
        cfg = json_object();
    }
    for (int i = 0; i < nk; i++) {
        char opt[128];
        const char *k = keys[i];
        const char *eq = strchr(k, '=');
        snprintf(opt, sizeof opt, "%.*s", eq ? (int)(eq - k) : (int)strlen(k), k);
        /* A bool key given as "--leaky" with a following non-option word is not a value. */
        const sl_config_key *ck;
        char keyname[128];
        snprintf(keyname, sizeof keyname, "%s", neg[i] ? opt + 3 : opt);
        for (char *p = keyname; *p; p++) if (*p == '-') *p = '_';
        ck = sl_family_key(fam, keyname);
        if (ck && strcmp(ck->type, "bool") == 0 && vals[i] && !eq) {
            rc = cli_error(c, 2, "unexpected argument \"%s\" after --%s (see seqlab help init)", vals[i], opt);
            goto done;
        }
        if ((rc = set_key(c, fam, cfg, neg[i] ? opt + 3 : opt, vals[i], neg[i]))) goto done;
    }
    ts = sl_tensors_new();
    sl_err err = { 0 };
    sl_model *m = NULL;
    if (!ts) { rc = cli_error(c, 1, "out of memory"); goto done; }
    if (fam->init(cfg, (uint64_t)seed, ts, &err)) { rc = cli_fail(c, &err); goto done; }
    json_t *built_cfg = json_deep_copy(cfg);
    int brc = sl_model_from_tensors(ts, fam->name, built_cfg, &m, &err);
    json_decref(built_cfg);
    ts = NULL;   /* taken over */
    if (brc) { rc = cli_fail(c, &err); goto done; }
    if (sl_model_save(m, out, NULL, &err)) { rc = cli_fail(c, &err); sl_model_free(m); goto done; }
    printf("wrote %s: %s; %lld parameters (seed %lld)\n", out, m->summary, (long long)sl_model_param_count(m), seed);
    sl_model_free(m);
done:
    sl_tensors_free(ts);
    json_decref(cfg);
    free(keys);
    free(vals);
    free(neg);
    return rc;
}

const sl_command sl_cmd_init = {
    .name = "init",
    .run = init_run,
    .summary = "create a freshly initialised model of any family",
    .help = "usage: seqlab init --family F [family options] [--seed S] [--config JSON] -o model.bin\n\n"
            "Writes a model initialised as the family's reference implementation does (PyTorch's\n"
            "uniform(-1/sqrt(H), 1/sqrt(H)) for rnn, lstm, gru), with seqlab.family and seqlab.config set.\n"
            "The same seed gives a bit-identical file.\n\n"
            "options:\n"
            "  --family F        the family (required)\n"
            "  --seed S          random seed (default 0)\n"
            "  --config JSON     a config object; family options below override its keys\n"
            "  -o, --output FILE where to write the model (required; written atomically)\n\n"
            "family options (a bool option is set by --name, cleared by --no-name):",
    .help_extra = family_options_help,
};
