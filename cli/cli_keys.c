/*
** Mixed fixed and typed key options, the progress bar and integer lists:
** see cli_keys.h.
*/
#include "cli_keys.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

static void to_key(const char *opt, size_t n, char *key, size_t cap)
{
    size_t i = 0;
    for (; i < n && i + 1 < cap; i++) key[i] = opt[i] == '-' ? '_' : opt[i];
    key[i] = '\0';
}

static const sl_config_key *find_key(const sl_config_key *keys, const char *name)
{
    for (const sl_config_key *k = keys; k && k->name; k++)
        if (strcmp(k->name, name) == 0) return k;
    return NULL;
}

static int reserved(const cli_keyset *s, const char *name)
{
    for (const char *const *r = s->reserved; r && *r; r++)
        if (strcmp(*r, name) == 0) return 1;
    return 0;
}

static int set_value(const sl_cli *c, const char *opt, const sl_config_key *k, json_t *obj, const char *val, int negated)
{
    json_t *v = NULL;
    if (strcmp(k->type, "bool") == 0) {
        if (negated && val) return cli_error(c, 2, "--no-%s takes no value", opt);
        if (!val) v = json_boolean(!negated);
        else if (!strcmp(val, "true") || !strcmp(val, "1")) v = json_true();
        else if (!strcmp(val, "false") || !strcmp(val, "0")) v = json_false();
        else return cli_error(c, 2, "--%s: \"%s\" is not true or false", opt, val);
    } else {
        char o[160];
        snprintf(o, sizeof o, "--%s", opt);
        if (negated) return cli_error(c, 2, "unknown option --no-%s (see seqlab help %s)", opt, c->cmd);
        if (!val) return cli_error(c, 2, "option %s needs a value", o);
        if (strcmp(k->type, "int") == 0) {
            long long x;
            if (cli_parse_int(c, o, val, -(1LL << 53), 1LL << 53, &x)) return 2;
            v = json_integer(x);
        } else if (strcmp(k->type, "float") == 0) {
            double x;
            if (cli_parse_double(c, o, val, &x)) return 2;
            v = json_real(x);
        } else {
            v = json_string(val);
        }
    }
    json_object_set_new(obj, k->name, v);
    return 0;
}

int cli_parse_keyed(const sl_cli *c, int argc, char **argv, int first, const cli_fixed *fixed,
                    int (*on_fixed)(void *ctx, int id, const char *val), void *ctx, cli_keyset *sets, int nsets,
                    const char **pos, int *npos, int npos_max)
{
    *npos = 0;
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || a[1] == '\0') {
            if (*npos >= npos_max) return cli_error(c, 2, "unexpected argument \"%s\" (see seqlab help %s)", a, c->cmd);
            pos[(*npos)++] = a;
            continue;
        }
        /* Short fixed option: -o FILE, -t N, -h. */
        if (a[1] != '-') {
            const cli_fixed *f = NULL;
            for (const cli_fixed *q = fixed; q->name; q++)
                if (q->shortname && q->shortname == a[1] && a[2] == '\0') f = q;
            if (!f) return cli_error(c, 2, "unknown option %s (see seqlab help %s)", a, c->cmd);
            const char *val = NULL;
            if (f->has_arg) {
                if (i + 1 >= argc) return cli_error(c, 2, "option %s needs a value", a);
                val = argv[++i];
            }
            int rc = on_fixed(ctx, f->id, val);
            if (rc) return rc;
            continue;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const char *val = eq ? eq + 1 : NULL;
        const cli_fixed *f = NULL;
        for (const cli_fixed *q = fixed; q->name; q++)
            if (strlen(q->name) == nlen && strncmp(q->name, name, nlen) == 0) f = q;
        if (f) {
            if (f->has_arg && !val) {
                if (i + 1 >= argc) return cli_error(c, 2, "option --%.*s needs a value", (int)nlen, name);
                val = argv[++i];
            } else if (!f->has_arg && val) {
                return cli_error(c, 2, "option --%.*s takes no value", (int)nlen, name);
            }
            int rc = on_fixed(ctx, f->id, val);
            if (rc) return rc;
            continue;
        }
        char opt[128], key[128];
        snprintf(opt, sizeof opt, "%.*s", (int)nlen, name);
        int negated = strncmp(opt, "no-", 3) == 0;
        const sl_config_key *k = NULL;
        cli_keyset *set = NULL;
        for (int pass = 0; pass < 2 && !k; pass++) {
            /* "--no-x" is the bool x cleared, unless a key is literally named no_x. */
            int neg = pass == 1 && negated;
            if (pass == 1 && !negated) break;
            to_key(opt + (neg ? 3 : 0), strlen(opt) - (neg ? 3 : 0), key, sizeof key);
            for (int s = 0; s < nsets && !k; s++)
                if ((k = find_key(sets[s].keys, key))) set = &sets[s];
            if (k && neg && strcmp(k->type, "bool") != 0) k = NULL;
            if (k) negated = neg;
        }
        if (!k) {
            sl_buf b;
            sl_buf_init(&b);
            for (int s = 0; s < nsets; s++) sl_buf_printf(&b, "%s%s", s ? ", " : "", sets[s].what);
            cli_error(c, 2, "unknown option --%s (not an option of %s; see seqlab help %s)", opt, b.s ? b.s : c->cmd,
                      c->cmd);
            sl_buf_free(&b);
            return 2;
        }
        if (reserved(set, k->name))
            return cli_error(c, 2, "--%s is set by seqlab %s itself and cannot be given", opt, c->cmd);
        /* Non-bool keys take the next argument as their value. */
        if (!val && strcmp(k->type, "bool") != 0 && !negated) {
            if (i + 1 >= argc) return cli_error(c, 2, "option --%s needs a value", opt);
            val = argv[++i];
        }
        int rc = set_value(c, negated ? opt + 3 : opt, k, set->obj, val, negated);
        if (rc) return rc;
    }
    return 0;
}

const char *cli_scan_opt(int argc, char **argv, const char *name)
{
    size_t n = strlen(name);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || a[1] != '-' || strncmp(a + 2, name, n) != 0) continue;
        if (a[2 + n] == '=') return a + 3 + n;
        if (a[2 + n] == '\0' && i + 1 < argc) return argv[i + 1];
    }
    return NULL;
}

void cli_print_keys(const sl_config_key *keys, const char *const *skip)
{
    for (const sl_config_key *k = keys; k && k->name; k++) {
        int s = 0;
        for (const char *const *q = skip; q && *q && !s; q++) s = strcmp(*q, k->name) == 0;
        if (s) continue;
        char opt[128];
        size_t n = 0;
        for (const char *p = k->name; *p && n + 1 < sizeof opt; p++) opt[n++] = *p == '_' ? '-' : *p;
        opt[n] = '\0';
        if (strcmp(k->type, "bool") == 0) printf("    --%-20s %s\n", opt, k->help);
        else printf("    --%-20s %s (%s)\n", opt, k->help, k->type);
    }
}

/* ------------------------------------------------------------ progress */
void cli_progress_start(cli_progress *p, int64_t total, int quiet)
{
    p->on = !quiet && isatty(2);
    p->t0 = sl_now();
    p->last = 0;
    p->total = total;
}

void cli_progress_update(cli_progress *p, int64_t done, const char *text)
{
    if (!p->on) return;
    double now = sl_now();
    if (done != p->total && now - p->last < 0.1) return;
    p->last = now;
    const int W = 24;
    int fill = p->total > 0 ? (int)((double)W * (double)done / (double)p->total) : W;
    char bar[32];
    for (int i = 0; i < W; i++) bar[i] = i < fill ? '#' : '.';
    bar[W] = '\0';
    fprintf(stderr, "\r[%s] %lld/%lld %s\033[K", bar, (long long)done, (long long)p->total, text ? text : "");
    fflush(stderr);
}

void cli_progress_end(cli_progress *p)
{
    if (!p->on) return;
    fputc('\n', stderr);
    p->on = 0;
}

int cli_parse_int_list(const sl_cli *c, const char *opt, const char *s, long long lo, long long hi, long long **out,
                       int *n)
{
    *out = NULL;
    *n = 0;
    int cap = 1;
    for (const char *p = s; *p; p++) cap += *p == ',';
    long long *v = malloc((size_t)cap * sizeof *v);
    if (!v) return cli_error(c, 1, "out of memory");
    char *dup = sl_strdup(s), *save = NULL;
    for (char *tok = strtok_r(dup, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (cli_parse_int(c, opt, tok, lo, hi, &v[*n])) { free(v); free(dup); *n = 0; return 2; }
        (*n)++;
    }
    free(dup);
    if (*n == 0) { free(v); return cli_error(c, 2, "%s: expected a comma-separated list of integers", opt); }
    *out = v;
    return 0;
}
