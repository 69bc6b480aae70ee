/*
** Resumable training checkpoints (seqlab train --checkpoint-every, --resume).
**
** A run of 2K steps that writes a checkpoint at K, and a second run resumed
** from that checkpoint to 2K, must write the same model file byte for byte
** (tensors and metadata; the metadata carries no timestamps). Checked for an
** LSTM with gradient noise, weight decay, warm-up, cosine decay and a
** multi-head curriculum that moves N before and after K, and for mamba and
** delta_net through the trainer's input projection (encoder.*). The
** checkpoint itself: AdamW moments as optim.m./optim.v.* tensors (role
** optimizer, not parameters; the model still opens, evaluates and analyses),
** seqlab.train_state. The run store records the resumed run (resumed_from,
** its SHA-256, metrics from K+1). Refusals exit 2 with one line: a final
** model, options that change the run, --steps not beyond the checkpoint,
** truncated and hostile checkpoints (bad generator states, steps, tensors).
*/
#include "sl_test.h"
#include <jansson.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include "model.h"
#include "tensor.h"
#include "train.h"
#include "util.h"




/* Exit status 2 and exactly one line on stderr (printed); returns that line. */
static char *run_refused(const char *args)
{
    char *err = NULL;
    int st = sl_test_cli(args, NULL, &err);
    int lines = 0;
    for (char *p = err; p && *p; p++) lines += *p == '\n';
    fprintf(stderr, "seqlab %s\n  -> %d: %s", args, st, err ? err : "(no stderr)\n");
    assert_int_equal(st, 2);
    assert_int_equal(lines, 1);
    return err;
}

/* Every tensor of a and b: same names, shapes and bytes; and the whole files. */
static void assert_same_model(const char *a, const char *b)
{
    sl_model *ma = NULL, *mb = NULL;
    sl_err err = { 0 };
    assert_int_equal(sl_model_open(a, &ma, &err), SL_OK);
    assert_int_equal(sl_model_open(b, &mb, &err), SL_OK);
    assert_int_equal(ma->tensors->n, mb->tensors->n);
    size_t differ = 0;
    for (size_t i = 0; i < ma->tensors->n; i++) {
        const sl_tensor *ta = &ma->tensors->t[i], *tb = sl_tensors_find(mb->tensors, ta->name);
        assert_non_null(tb);
        assert_int_equal(ta->numel, tb->numel);
        if (memcmp(ta->data, tb->data, (size_t)ta->numel * sizeof(float))) {
            fprintf(stderr, "tensor %s differs\n", ta->name);
            differ++;
        }
    }
    assert_int_equal(differ, 0);
    const char *keys[] = { "seqlab.family", "seqlab.config", "seqlab.task", "seqlab.train" };
    for (size_t i = 0; i < SL_ARRAY_LEN(keys); i++) {
        const char *sa = json_string_value(json_object_get(ma->metadata, keys[i]));
        const char *sb = json_string_value(json_object_get(mb->metadata, keys[i]));
        assert_non_null(sa);
        assert_non_null(sb);
        assert_string_equal(sa, sb);
    }
    /* Nothing else differs either: the files are byte-identical. */
    assert_string_equal(ma->sha256, mb->sha256);
    fprintf(stderr, "%s == %s (%zu tensors, sha256 %.16s...)\n", a, b, ma->tensors->n, ma->sha256);
    sl_model_free(ma);
    sl_model_free(mb);
}

/* "<dir>/<stem>.ckpt-<k>.bin" for "<dir>/<stem>.bin". */
static char *ckpt_of(const char *model, int k)
{
    return sl_strfmt("%.*s.ckpt-%d.bin", (int)(strlen(model) - 4), model, k);
}

/* Straight run of 2K steps with a checkpoint at K, then --resume to 2K. */
static void straight_and_resumed(const char *opts, int K, const char *name, const char *db, char **ckpt_out,
                                 char **a_out, char **b_out)
{
    char an[64], bn[64], args[2048];
    snprintf(an, sizeof an, "%s-straight.bin", name);
    snprintf(bn, sizeof bn, "%s-resumed.bin", name);
    char *a = sl_test_path(an), *b = sl_test_path(bn), *ck = ckpt_of(a, K);
    snprintf(args, sizeof args, "train %s --steps %d --checkpoint-every %d --no-plot -q -t 2 -o %s --db %s", opts, 2 * K, K,
             a, db);
    sl_test_cli_ok(args, NULL);
    snprintf(args, sizeof args, "train --resume %s --no-plot -q -t 2 -o %s --db %s", ck, b, db);
    sl_test_cli_ok(args, NULL);
    assert_same_model(a, b);
    *ckpt_out = ck;
    *a_out = a;
    *b_out = b;
}

/* The checkpoint holds the moments of every trained tensor (role optimizer,
** not parameters) and a train state at step K; it opens as a model. */
static void check_checkpoint(const char *ck, int K, const char *expect_tensor)
{
    sl_model *m = NULL;
    sl_err err = { 0 };
    assert_int_equal(sl_model_open(ck, &m, &err), SL_OK);
    size_t n_optim = 0, n_param = 0;
    int64_t numel_param = 0;
    for (size_t i = 0; i < m->tensors->n; i++) {
        const char *nm = m->tensors->t[i].name;
        if (strncmp(nm, "optim.", 6) == 0) {
            assert_int_equal(m->role[i], SL_ROLE_OPTIM);
            assert_true(strncmp(nm, "optim.m.", 8) == 0 || strncmp(nm, "optim.v.", 8) == 0);
            const sl_tensor *p = sl_tensors_find(m->tensors, nm + 8);
            assert_non_null(p);
            assert_int_equal(p->numel, m->tensors->t[i].numel);
            n_optim++;
        } else {
            assert_int_not_equal(m->role[i], SL_ROLE_OPTIM);
            n_param++;
            numel_param += m->tensors->t[i].numel;
        }
    }
    assert_int_equal(n_optim, 2 * n_param); /* nothing frozen */
    assert_int_equal(sl_model_param_count(m), numel_param);
    char nm[256];
    snprintf(nm, sizeof nm, "optim.v.%s", expect_tensor);
    assert_non_null(sl_tensors_find(m->tensors, nm));
    json_t *st = NULL;
    assert_int_equal(sl_checkpoint_state(m, &st, &err), SL_OK);
    assert_int_equal(json_integer_value(json_object_get(st, "step")), K);
    assert_int_equal(json_integer_value(json_object_get(st, "adam_t")), K);
    assert_string_equal(json_string_value(json_object_get(st, "rng")), "mt19937");
    assert_true(strlen(json_string_value(json_object_get(st, "rng_noise"))) > 2 * 624 * 4);
    json_decref(st);
    /* A model like any other: the readout binds, an evaluation runs. */
    sl_readout ro;
    assert_int_equal(sl_readout_from_model(&ro, m, &err), SL_OK);
    sl_model_free(m);
}

static void test_resume_lstm_noise_curriculum(void **state)
{
    (void)state;
    char *db = sl_test_path("resume-lstm.db"), *ck, *a, *b;
    const int K = 40;
    /* A threshold of 0.5 moves N at the first evaluations: before and after K. */
    straight_and_resumed("--family lstm --hidden-size 12 --task parity --length 14 --curriculum multi --n-start 2 "
                         "--n-max 12 --threshold 0.5 --eval-every 5 --eval-batch 64 --batch 16 --lr 3e-3 --warmup 5 "
                         "--grad-noise 0.01 --weight-decay 0.01 --clip 0.5 --seed 7",
                         K, "lstm", db, &ck, &a, &b);
    check_checkpoint(ck, K, "weight_hh_l0");
    /* The curriculum moved in both halves of the straight run (run 1). */
    assert_true(sl_test_query_int(db, "SELECT max(value) FROM metrics WHERE run_id = 1 AND key = 'n' AND step <= 40") > 2);
    assert_true(sl_test_query_int(db, "SELECT max(value) FROM metrics WHERE run_id = 1 AND key = 'n' AND step > 40") >
                sl_test_query_int(db, "SELECT max(value) FROM metrics WHERE run_id = 1 AND key = 'n' AND step <= 40"));
    /* The resumed run (run 2): where it came from, metrics from K+1 to 2K. */
    char *abs = realpath(ck, NULL), sha[65];
    sl_err err = { 0 };
    assert_int_equal(sl_sha256_file(ck, sha, &err), SL_OK);
    char *from = sl_test_query_text(db, "SELECT value FROM params WHERE run_id = 2 AND key = 'resumed_from'");
    char *fsha = sl_test_query_text(db, "SELECT value FROM params WHERE run_id = 2 AND key = 'resumed_from_sha256'");
    assert_non_null(from);
    assert_non_null(fsha);
    assert_string_equal(from, abs);
    assert_string_equal(fsha, sha);
    assert_int_equal(sl_test_query_int(db, "SELECT value FROM params WHERE run_id = 2 AND key = 'resumed_step'"), K);
    assert_int_equal(sl_test_query_int(db, "SELECT min(step) FROM metrics WHERE run_id = 2 AND key = 'loss'"), K + 1);
    assert_int_equal(sl_test_query_int(db, "SELECT max(step) FROM metrics WHERE run_id = 2 AND key = 'loss'"), 2 * K);
    assert_int_equal(sl_test_query_int(db, "SELECT count(*) FROM metrics WHERE run_id = 2 AND key = 'loss'"), K);
    /* The same losses as the straight run's second half. */
    assert_int_equal(sl_test_query_int(db, "SELECT count(*) FROM metrics r JOIN metrics s ON s.run_id = 1 AND s.key = r.key "
                                   "AND s.step = r.step WHERE r.run_id = 2 AND r.key = 'loss' AND r.value = s.value"), K);
    assert_int_equal(sl_test_query_int(db, "SELECT count(*) FROM params WHERE run_id = 2 AND key = 'curriculum' "
                                   "AND value = 'multi'"), 1);
    assert_int_equal(sl_test_query_int(db, "SELECT count(*) FROM runs WHERE status = 'ok'"), 2);
    free(from); free(fsha); free(abs);
    free(ck); free(a); free(b); free(db);
}

static void test_resume_encoder_families(void **state)
{
    (void)state;
    char *db = sl_test_path("resume-enc.db");
    const char *opts[][3] = {
        { "--family mamba --d-model 8 --task modular --m 3 --length 10 --eval-every 7 --batch 8 --seed 3 "
          "--grad-noise 0.01", "mamba", "backbone.layers.0.mixer.A_log" },
        { "--family delta_net --hidden-size 8 --task selective_copy --vocab 3 --tokens 2 --length 10 --eval-every 7 "
          "--batch 8 --seed 4", "delta_net", "encoder.weight" },
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(opts); i++) {
        char *ck, *a, *b;
        straight_and_resumed(opts[i][0], 12, opts[i][1], db, &ck, &a, &b);
        check_checkpoint(ck, 12, "encoder.weight");
        char nm[256];
        snprintf(nm, sizeof nm, "optim.m.%s", opts[i][2]);
        sl_model *m = NULL;
        sl_err err = { 0 };
        assert_int_equal(sl_model_open(ck, &m, &err), SL_OK);
        assert_non_null(sl_tensors_find(m->tensors, nm));
        sl_readout ro;
        assert_int_equal(sl_readout_from_model(&ro, m, &err), SL_OK);
        assert_non_null(ro.we);
        assert_int_equal(m->role[sl_tensors_find(m->tensors, "encoder.weight") - m->tensors->t], SL_ROLE_EMBED);
        sl_model_free(m);
        /* info lists the moments; eval and spectrum open the checkpoint. */
        char args[1024], *out = NULL;
        snprintf(args, sizeof args, "info %s --format csv", ck);
        sl_test_cli_ok(args, &out);
        assert_non_null(strstr(out, "optim.v.encoder.weight,F32,"));
        assert_non_null(strstr(out, ",optimizer\n"));
        free(out);
        snprintf(args, sizeof args, "eval %s --lengths 10 --batch 8 --no-plot --db %s", ck, db);
        sl_test_cli_ok(args, NULL);
        snprintf(args, sizeof args, "spectrum %s --samples 4 --no-plot --db %s", ck, db);
        sl_test_cli_ok(args, NULL);
        free(ck); free(a); free(b);
    }
    free(db);
}

/* Save the checkpoint's tensors (minus drop, when given) with its metadata,
** seqlab.train_state replaced by state when given. */
static void write_variant(const char *ck, const char *path, const char *state, const char *drop)
{
    sl_model *m = NULL;
    sl_err err = { 0 };
    assert_int_equal(sl_model_open(ck, &m, &err), SL_OK);
    sl_tensors *ts = sl_tensors_new();
    for (size_t i = 0; i < m->tensors->n; i++) {
        const sl_tensor *t = &m->tensors->t[i];
        if (drop && !strcmp(t->name, drop)) continue;
        assert_int_equal(sl_tensors_add(ts, t->name, t->ndim, t->shape, t->data, NULL, &err), SL_OK);
    }
    json_t *meta = json_deep_copy(m->metadata);
    if (state) json_object_set_new(meta, "seqlab.train_state", json_string(state));
    assert_int_equal(sl_tensors_save(ts, path, meta, &err), SL_OK);
    json_decref(meta);
    sl_tensors_free(ts);
    sl_model_free(m);
}

/* The checkpoint's train state with key set to value (JSON text). */
static char *state_with(const char *ck, const char *key, const char *value)
{
    sl_model *m = NULL;
    sl_err err = { 0 };
    assert_int_equal(sl_model_open(ck, &m, &err), SL_OK);
    json_t *st = NULL;
    assert_int_equal(sl_checkpoint_state(m, &st, &err), SL_OK);
    json_object_set_new(st, key, json_loads(value, JSON_DECODE_ANY, NULL));
    char *s = json_dumps(st, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(st);
    sl_model_free(m);
    return s;
}

static void test_resume_refusals(void **state)
{
    (void)state;
    char *db = sl_test_path("resume-bad.db"), *a = sl_test_path("bad.bin"), *ck = ckpt_of(a, 10),
         *bad = sl_test_path("bad-variant.bin"), *out = sl_test_path("bad-out.bin");
    char args[2048];
    snprintf(args, sizeof args, "train --family gru --hidden-size 8 --task modular --m 3 --length 8 --steps 20 "
             "--checkpoint-every 10 --batch 4 --seed 2 --no-plot -q -o %s --db %s", a, db);
    sl_test_cli_ok(args, NULL);
    const char *opts[] = {
        "--family lstm", "--family gru", "--hidden-size 16", "--task parity", "--m 4", "--lr 0.1", "--seed 3",
        "--freeze bias_hh_l0", "--steps 10", "--steps 5", "--batch 8", "--data x.st",
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(opts); i++) {
        snprintf(args, sizeof args, "train --resume %s %s --no-plot -o %s --db %s", ck, opts[i], out, db);
        free(run_refused(args));
    }
    /* A final model has no trainer state. */
    snprintf(args, sizeof args, "train --resume %s --no-plot -o %s --db %s", a, out, db);
    char *e = run_refused(args);
    assert_non_null(strstr(e, "no trainer state"));
    free(e);
    /* Truncated, missing. */
    FILE *f = fopen(ck, "rb"), *g = fopen(bad, "wb");
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf, f);
    fwrite(buf, 1, n / 2, g);
    fclose(f);
    fclose(g);
    snprintf(args, sizeof args, "train --resume %s --no-plot -o %s --db %s", bad, out, db);
    free(run_refused(args));
    snprintf(args, sizeof args, "train --resume %s/nonexistent.bin --no-plot -o %s --db %s", sl_test_tmpdir(), out, db);
    free(run_refused(args));
    /* Hostile train states and tensors. */
    char *mti_bad = NULL;
    {
        sl_model *m = NULL;
        sl_err err = { 0 };
        assert_int_equal(sl_model_open(ck, &m, &err), SL_OK);
        json_t *st = NULL;
        assert_int_equal(sl_checkpoint_state(m, &st, &err), SL_OK);
        char *hx = sl_strdup(json_string_value(json_object_get(st, "rng_eval")));
        /* The position (an int after 624 unsigned longs) set to 0x7fffffff. */
        memcpy(hx + 2 * 624 * sizeof(unsigned long), "ffffff7f", 8);
        mti_bad = sl_strfmt("\"%s\"", hx);
        free(hx);
        json_decref(st);
        sl_model_free(m);
    }
    const char *cases[][2] = {
        { "rng_batch", "\"00ff\"" }, { "rng_noise", "17" }, { "rng_eval", NULL }, { "step", "-1" },
        { "step", "\"ten\"" }, { "step", "0" }, { "step", "1000000" }, { "adam_t", "99" }, { "n_cur", "3" },
        { "rng", "\"taus\"" }, { "freeze", "[1]" }, { "version", "2" }, { "data", "\"/nonexistent.st\"" },
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
        char *s = state_with(ck, cases[i][0], cases[i][1] ? cases[i][1] : mti_bad);
        write_variant(ck, bad, s, NULL);
        free(s);
        snprintf(args, sizeof args, "train --resume %s --no-plot -o %s --db %s", bad, out, db);
        free(run_refused(args));
    }
    const char *states[] = { "not json", "[1,2]", "{}" };
    for (size_t i = 0; i < SL_ARRAY_LEN(states); i++) {
        write_variant(ck, bad, states[i], NULL);
        snprintf(args, sizeof args, "train --resume %s --no-plot -o %s --db %s", bad, out, db);
        free(run_refused(args));
    }
    const char *drops[] = { "optim.v.weight_hh_l0", "readout.bias" };
    for (size_t i = 0; i < SL_ARRAY_LEN(drops); i++) {
        write_variant(ck, bad, NULL, drops[i]);
        snprintf(args, sizeof args, "train --resume %s --no-plot -o %s --db %s", bad, out, db);
        free(run_refused(args));
    }
    free(mti_bad);
    /* seqlab help train documents it. */
    char *help = NULL;
    assert_int_equal(sl_test_cli("help train", &help, NULL), 0);
    assert_non_null(strstr(help, "--resume CKPT"));
    assert_non_null(strstr(help, "optim.m.<name>"));
    free(help);
    /* And a good resume still works after all that. */
    snprintf(args, sizeof args, "train --resume %s --no-plot -q -o %s --db %s", ck, out, db);
    sl_test_cli_ok(args, NULL);
    assert_same_model(a, out);
    free(db); free(a); free(ck); free(bad); free(out);
}

/* A data file, a frozen tensor, and a chain: a resumed run writes its own
** checkpoints, and resuming from one of those gives the same model again. */
static void test_resume_data_freeze_chain(void **state)
{
    (void)state;
    char *db = sl_test_path("resume-data.db"), *data = sl_test_path("resume-data.st"), *a = sl_test_path("gd.bin"),
         *b = sl_test_path("gd-b.bin"), *c = sl_test_path("gd-c.bin"), *ck = ckpt_of(a, 8), *ckb = ckpt_of(b, 16);
    char args[2048];
    snprintf(args, sizeof args, "data modular --m 3 --length 10 --batch 20 --seed 2 -o %s", data);
    sl_test_cli_ok(args, NULL);
    snprintf(args, sizeof args, "train --family gru --hidden-size 8 --data %s --steps 24 --batch 4 --eval-every 5 "
             "--grad-noise 0.02 --freeze bias_hh_l0 --checkpoint-every 8 --seed 9 --no-plot -q -t 2 -o %s --db %s",
             data, a, db);
    sl_test_cli_ok(args, NULL);
    sl_model *m = NULL;
    sl_err err = { 0 };
    assert_int_equal(sl_model_open(ck, &m, &err), SL_OK);
    assert_null(sl_tensors_find(m->tensors, "optim.m.bias_hh_l0"));
    assert_non_null(sl_tensors_find(m->tensors, "optim.m.bias_ih_l0"));
    json_t *st = NULL;
    assert_int_equal(sl_checkpoint_state(m, &st, &err), SL_OK);
    assert_string_equal(json_string_value(json_array_get(json_object_get(st, "freeze"), 0)), "bias_hh_l0");
    assert_string_equal(json_string_value(json_object_get(st, "data")), data);
    json_decref(st);
    sl_model_free(m);
    /* Resume at 8 (data path from the checkpoint), writing checkpoints at 16. */
    snprintf(args, sizeof args, "train --resume %s --checkpoint-every 8 --no-plot -q -t 2 -o %s --db %s", ck, b, db);
    sl_test_cli_ok(args, NULL);
    assert_same_model(a, b);
    /* Resume that run's checkpoint at 16, the data file given again. */
    snprintf(args, sizeof args, "train --resume %s --data %s --no-plot -q -t 2 -o %s --db %s", ckb, data, c, db);
    sl_test_cli_ok(args, NULL);
    assert_same_model(a, c);
    assert_int_equal(sl_test_query_int(db, "SELECT min(step) FROM metrics WHERE run_id = 3 AND key = 'loss'"), 17);
    assert_int_equal(sl_test_query_int(db, "SELECT count(*) FROM params WHERE run_id = 3 AND key = 'freeze' "
                                   "AND value = 'bias_hh_l0'"), 1);
    free(db); free(data); free(a); free(b); free(c); free(ck); free(ckb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resume_lstm_noise_curriculum),
        cmocka_unit_test(test_resume_encoder_families),
        cmocka_unit_test(test_resume_data_freeze_chain),
        cmocka_unit_test(test_resume_refusals),
    };
    return cmocka_run_group_tests_name("train_resume", tests, NULL, NULL);
}
