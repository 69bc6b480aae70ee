/*
** seqlab data TASK [task options] [--batch B] [--seed S] -o data.safetensors
**
** Writes a batch of a synthetic task (analysis/tasks.h) as a data file: u
** [B, T, features], target and mask ([B, T], or [B, T, heads] for several
** heads), with the task's options (seqlab.task), its class count
** (seqlab.classes) and the seed (seqlab.seed) in the metadata. Any command
** that takes --input (tensor u) or --data reads these files, and user-made
** files with the same tensors alike. The same seed writes the same file.
*/
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_keys.h"
#include "tasks.h"
#include "train.h"
#include "util.h"

enum { O_OUT = 1, O_BATCH, O_SEED, O_HELP };

typedef struct data_ctx {
    const sl_cli *c;
    const char *out;
    long long batch, seed;
    int help;
} data_ctx;

static int on_fixed(void *vctx, int id, const char *val)
{
    data_ctx *x = vctx;
    switch (id) {
    case O_OUT: x->out = val; return 0;
    case O_BATCH: return cli_parse_int(x->c, "--batch", val, 1, 1LL << 24, &x->batch);
    case O_SEED: return cli_parse_int(x->c, "--seed", val, 0, 1LL << 62, &x->seed);
    case O_HELP: x->help = 1; return 0;
    }
    return 2;
}

static void data_help_extra(void)
{
    const char *names[] = { "parity", "dms", "copy", "selective_copy", "mqar", "modular", "regular" };
    for (size_t i = 0; i < SL_ARRAY_LEN(names); i++) {
        printf("\n  %s: %s\n", names[i], sl_task_summary(names[i]));
        cli_print_keys(sl_task_keys(names[i]), NULL);
    }
}

static int data_run(sl_cli *c, int argc, char **argv)
{
    static const cli_fixed fixed[] = {
        { "output", 'o', 1, O_OUT }, { "batch", 0, 1, O_BATCH }, { "seed", 0, 1, O_SEED }, { "help", 'h', 0, O_HELP },
        { 0, 0, 0, 0 },
    };
    data_ctx x = { .c = c, .batch = 64 };
    if (argc < 2 || argv[1][0] == '-') {
        if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
            printf("%s\n", sl_cli_find("data")->help);
            data_help_extra();
            return 0;
        }
        return cli_error(c, 2, "missing TASK (one of: %s)", sl_task_names());
    }
    const char *task_name = argv[1];
    if (!sl_task_known(task_name)) return cli_error(c, 2, "unknown task \"%s\" (tasks: %s)", task_name, sl_task_names());
    json_t *opts = json_object();
    cli_keyset sets[1] = { { "task", sl_task_keys(task_name), opts, NULL } };
    sets[0].what = task_name;
    const char *pos[1];
    int npos;
    int rc = cli_parse_keyed(c, argc, argv, 2, fixed, on_fixed, &x, sets, 1, pos, &npos, 0);
    if (rc || x.help) {
        if (x.help) { printf("%s\n", sl_cli_find("data")->help); data_help_extra(); }
        json_decref(opts);
        return rc;
    }
    if (!x.out) { json_decref(opts); return cli_error(c, 2, "missing -o FILE (where to write the data)"); }
    sl_err err = { 0 };
    sl_task *t = NULL;
    sl_batch b = { 0 };
    gsl_rng *r = NULL;
    if (sl_task_new(task_name, opts, &t, &err)) { rc = cli_fail(c, &err); goto done; }
    r = gsl_rng_alloc(gsl_rng_mt19937);
    if (!r) { rc = cli_error(c, 1, "out of memory"); goto done; }
    gsl_rng_set(r, (unsigned long)x.seed);
    if (sl_task_batch(t, r, x.batch, sl_task_length(t), &b, &err) ||
        sl_dataset_save(x.out, &b, t->config, t->C, (uint64_t)x.seed, &err)) {
        rc = cli_fail(c, &err);
        goto done;
    }
    if (b.K == 1)
        printf("wrote %s: task %s, u [%lld, %lld, %lld], target and mask [%lld, %lld], %lld classes (seed %lld)\n", x.out,
               t->name, (long long)b.B, (long long)b.T, (long long)b.F, (long long)b.B, (long long)b.T, (long long)t->C,
               x.seed);
    else
        printf("wrote %s: task %s, u [%lld, %lld, %lld], target and mask [%lld, %lld, %lld], %lld classes (seed %lld)\n",
               x.out, t->name, (long long)b.B, (long long)b.T, (long long)b.F, (long long)b.B, (long long)b.T,
               (long long)b.K, (long long)t->C, x.seed);
done:
    if (r) gsl_rng_free(r);
    sl_batch_free(&b);
    sl_task_free(t);
    json_decref(opts);
    return rc;
}

const sl_command sl_cmd_data = {
    .name = "data",
    .run = data_run,
    .summary = "write a batch of a synthetic task (parity, dms, copy, mqar, ...) as a data file",
    .help_extra = data_help_extra,
    .help =
        "usage: seqlab data TASK [task options] [--batch B] [--seed S] -o data.safetensors\n\n"
        "Writes B sequences of TASK as a safetensors data file:\n"
        "  u       [B, T, features]  float inputs\n"
        "  target  [B, T]            class index per step (as float), or [B, T, heads] with several heads\n"
        "  mask    like target       1 where the target counts, 0 elsewhere\n"
        "with metadata seqlab.task (the options in effect, JSON), seqlab.classes and seqlab.seed. Every\n"
        "command that takes --input or --data reads these files, and user-made ones with the same tensors.\n"
        "The same seed writes the same file (GSL's MT19937 draws, in a fixed order).\n\n"
        "Encodings (every step t = 0..T-1):\n"
        "  parity          u_t in {0, 1} (--encoding bit: one feature; onehot: two). n = 0: target_t =\n"
        "                  u_0 xor ... xor u_t (running parity, every step). n = N: xor of the last N bits,\n"
        "                  from t = N-1 on; --n-min M adds heads for N' = M..N (multi-head). Default length\n"
        "                  64 (running) or ceil(2.5 N) + 2 (the longest training sequence of \"Emergent\n"
        "                  mechanisms for long timescales...\", whose N-parity labels are at every prefix)\n"
        "  dms             u_t in {0, 1} with p = 1/2; target_t = 1 if u_t = u_{t-N+1} (the first and the\n"
        "                  last of the last N bits, as that paper's code defines N-DMS), from t = N-1 on\n"
        "  copy            one-hot over V data symbols, blank (index V), marker (V+1): K tokens at t < K,\n"
        "                  blanks, then K markers at the last K steps, whose targets are the tokens in order\n"
        "                  (default length 4K)\n"
        "  selective_copy  the same, with the K tokens at random places (in order) among blanks in the\n"
        "                  first T-K steps (Mamba's selective copying; default length 8K)\n"
        "  mqar            one-hot over keys, values and a blank: pairs k_i v_i at t = 0..2P-1 (distinct\n"
        "                  keys), then queries (a key of the pairs; target its value) at every later step,\n"
        "                  or at --queries random ones among blanks (Zoology's MQAR; default length 8P)\n"
        "  modular         one-hot symbols x_t in 0..m-1; target_t = (x_0 + ... + x_t) mod m (default 32)\n"
        "  regular         one-hot symbols in 0..k-1; target_t = 1 if the prefix x_0..x_t is accepted by\n"
        "                  the DFA (default length 32). DFA syntax \"ROWS/ACCEPT\": one row per state,\n"
        "                  rows separated by ';', each the next state for symbols 0..k-1 separated by ',';\n"
        "                  state 0 starts; ACCEPT lists the accepting states. \"0,1;1,0/1\" accepts an odd\n"
        "                  number of 1s. Presets: parity (that one), mod3 (number of 1s divisible by 3),\n"
        "                  tomita1 (1*), tomita2 ((10)*), tomita4 (no 000).\n"
        "Every task takes --length T and --last (targets only at the last step).\n\n"
        "options:\n"
        "  --batch B          sequences (default 64)\n"
        "  --seed S           random seed (default 0)\n"
        "  -o, --output FILE  where to write (required; written atomically)\n\n"
        "task options:",
};
