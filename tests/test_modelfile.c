/*
** Model files: the safetensors container, dtype conversions, hostile files,
** PyTorch-written fixtures, Hugging Face folders, family inference, and
** `seqlab info` on all of them.
*/
#include "sl_test.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "dtype.h"
#include "family.h"
#include "model.h"
#include "safetensors.h"
#include "util.h"

/* ------------------------------------------------------------ helpers */

/* Write a raw safetensors image: declared header length hlen_decl (or the real
** length when -1), header text, then ndata bytes of data (pattern). */
static char *write_raw(const char *name, const char *header, long long hlen_decl, size_t ndata, size_t truncate_to)
{
    char *path = sl_test_path(name);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    size_t hl = strlen(header);
    uint64_t decl = hlen_decl < 0 ? hl : (uint64_t)hlen_decl;
    unsigned char *img = malloc(8 + hl + ndata);
    memcpy(img, &decl, 8);
    memcpy(img + 8, header, hl);
    for (size_t i = 0; i < ndata; i++) img[8 + hl + i] = (unsigned char)i;
    size_t total = 8 + hl + ndata;
    if (truncate_to && truncate_to < total) total = truncate_to;
    fwrite(img, 1, total, fp);
    fclose(fp);
    free(img);
    return path;
}

static void expect_bad(const char *name, const char *header, long long hlen, size_t ndata, size_t trunc,
                       const char *needle)
{
    char *path = write_raw(name, header, hlen, ndata, trunc);
    sl_stfile *f = NULL;
    sl_err err = { 0 };
    int rc = sl_stfile_open(path, &f, &err);
    if (rc == SL_OK || !strstr(err.msg, needle))
        fprintf(stderr, "%s: rc=%d msg='%s' (wanted '%s')\n", name, rc, err.msg, needle);
    assert_int_not_equal(rc, SL_OK);
    assert_null(f);
    assert_non_null(strstr(err.msg, needle));
    assert_non_null(strstr(err.msg, path));   /* the message names the file */
    /* The command line: exit 2 and exactly one line on stderr naming the problem. */
    char args[600], *out = NULL, *errs = NULL;
    snprintf(args, sizeof args, "info '%s'", path);
    int st = sl_test_cli(args, &out, &errs);
    assert_int_equal(st, 2);
    assert_non_null(errs);
    assert_non_null(strstr(errs, needle));
    size_t nl = 0;
    for (char *p = errs; *p; p++) nl += *p == '\n';
    assert_int_equal(nl, 1);
    assert_string_equal(out, "");
    free(out);
    free(errs);
    free(path);
}

/* ------------------------------------------------------------ dtypes */

static void test_f16_known_bits(void **state)
{
    (void)state;
    struct { uint16_t h; double v; } cases[] = {
        { 0x3c00, 1.0 }, { 0xc000, -2.0 }, { 0x7bff, 65504.0 }, { 0x0001, 5.9604644775390625e-08 },
        { 0x03ff, 6.097555160522461e-05 }, { 0x0400, 6.103515625e-05 }, { 0x3555, 0.333251953125 },
        { 0x8000, -0.0 }, { 0x0000, 0.0 }, { 0x7c00, INFINITY }, { 0xfc00, -INFINITY },
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
        float f = sl_f16_to_f32(cases[i].h);
        assert_true(f == (float)cases[i].v);
        assert_int_equal(signbit(f) != 0, signbit(cases[i].v) != 0);
        assert_int_equal(sl_f32_to_f16(f), cases[i].h);   /* exact values round-trip */
    }
    assert_true(isnan(sl_f16_to_f32(0x7e00)));
    assert_true(isnan(sl_f16_to_f32(0x7c01)));            /* signalling NaN stays NaN */
    assert_true(isnan(sl_f16_to_f32(sl_f32_to_f16(NAN))));
    /* Rounding to nearest, ties to even. */
    assert_int_equal(sl_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);          /* tie -> even */
    assert_int_equal(sl_f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);      /* tie -> even (up) */
    assert_int_equal(sl_f32_to_f16(1.0f + 0x1p-11f + 0x1p-20f), 0x3c01);
    assert_int_equal(sl_f32_to_f16(65519.0f), 0x7bff);
    assert_int_equal(sl_f32_to_f16(65520.0f), 0x7c00);                 /* overflow -> inf */
    assert_int_equal(sl_f32_to_f16(-1e6f), 0xfc00);
    assert_int_equal(sl_f32_to_f16(0x1p-25f), 0x0000);                 /* tie with 0 -> 0 */
    assert_int_equal(sl_f32_to_f16(0x1.8p-25f), 0x0001);
    assert_int_equal(sl_f32_to_f16(0x1p-24f * 2.5f), 0x0002);          /* subnormal tie -> even */
    assert_int_equal(sl_f32_to_f16(0x1p-24f * 3.5f), 0x0004);
    assert_int_equal(sl_f32_to_f16(0x1.ffcp-15f), 0x0400);             /* tie rounds up into the normals */
    assert_int_equal(sl_f32_to_f16(0x1.ffap-15f), 0x03ff);
}

static void test_bf16_known_bits(void **state)
{
    (void)state;
    assert_true(sl_bf16_to_f32(0x3f80) == 1.0f);
    assert_true(sl_bf16_to_f32(0x4049) == 3.140625f);
    assert_true(sl_bf16_to_f32(0xc2f7) == -123.5f);
    assert_true(sl_bf16_to_f32(0x0001) == 0x1p-133f);                  /* subnormal */
    assert_true(sl_bf16_to_f32(0x7f80) == INFINITY);
    assert_true(sl_bf16_to_f32(0xff80) == -INFINITY);
    assert_true(isnan(sl_bf16_to_f32(0x7fc0)));
    assert_true(isnan(sl_bf16_to_f32(0x7f81)));
    assert_int_equal(sl_f32_to_bf16(3.14159265f), 0x4049);
    assert_int_equal(sl_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);          /* tie -> even */
    assert_int_equal(sl_f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82);
    assert_int_equal(sl_f32_to_bf16(0x1p-133f), 0x0001);
    assert_int_equal(sl_f32_to_bf16(INFINITY), 0x7f80);
    assert_true(isnan(sl_bf16_to_f32(sl_f32_to_bf16(NAN))));
    assert_int_equal(sl_f32_to_bf16(3.4e38f), 0x7f80);                 /* rounds up to inf */
}

static void test_roundtrip_every_dtype(void **state)
{
    (void)state;
    /* Values exact in every dtype, plus specials. */
    const float vals[] = { 0.0f, -0.0f, 1.0f, -2.5f, 0.15625f, 1024.0f, 6.103515625e-05f, 5.9604644775390625e-08f,
                           INFINITY, -INFINITY, 3.0f, -0.75f };
    const size_t n = SL_ARRAY_LEN(vals);
    unsigned char raw[SL_DT_COUNT][12 * 8];
    int64_t shp[SL_DT_COUNT][2] = { { 3, 4 }, { 12, 1 }, { 2, 6 }, { 1, 12 } };
    sl_st_tensor ts[SL_DT_COUNT];
    const char *names[SL_DT_COUNT] = { "a.f32", "b.f64", "c.f16", "d.bf16" };
    for (int d = 0; d < SL_DT_COUNT; d++) {
        sl_dtype_from_f32((sl_dtype)d, vals, raw[d], n);
        ts[d] = (sl_st_tensor){ names[d], (sl_dtype)d, 2, shp[d], raw[d] };
    }
    /* An empty tensor and a scalar too. */
    int64_t zshape[1] = { 0 };
    float scalar = 42.0f;
    sl_st_tensor all[SL_DT_COUNT + 2];
    memcpy(all, ts, sizeof ts);
    all[SL_DT_COUNT] = (sl_st_tensor){ "empty", SL_DT_F32, 1, zshape, NULL };
    all[SL_DT_COUNT + 1] = (sl_st_tensor){ "scalar", SL_DT_F32, 0, NULL, &scalar };
    json_t *meta = json_pack("{s:s, s:s}", "seqlab.family", "lstm", "note", "round trip");
    char *path = sl_test_path("roundtrip.safetensors");
    sl_err err = { 0 };
    assert_int_equal(sl_st_write(path, all, SL_DT_COUNT + 2, meta, &err), SL_OK);
    json_decref(meta);
    sl_stfile *f;
    assert_int_equal(sl_stfile_open(path, &f, &err), SL_OK);
    assert_int_equal(f->n, SL_DT_COUNT + 2);
    /* Header padded with spaces to a multiple of 8, as the safetensors library writes. */
    uint64_t hl;
    memcpy(&hl, f->map, 8);
    assert_int_equal(hl % 8, 0);
    assert_true(f->map[8 + hl - 1] == ' ' || f->map[8 + hl - 1] == '}');
    assert_string_equal(sl_stfile_meta(f, "note"), "round trip");
    for (int d = 0; d < SL_DT_COUNT; d++) {
        const sl_st_entry *e = sl_stfile_find(f, names[d]);
        assert_non_null(e);
        assert_int_equal(e->dtype, d);
        assert_int_equal(e->shape[0], shp[d][0]);
        assert_int_equal(e->shape[1], shp[d][1]);
        float got[12];
        double got64[12];
        sl_stfile_read_f32(f, e, got);
        sl_stfile_read_f64(f, e, got64);
        for (size_t i = 0; i < n; i++) {
            assert_memory_equal(&got[i], &vals[i], 4);   /* bit-identical, signed zero included */
            assert_true(got64[i] == (double)vals[i]);
        }
    }
    const sl_st_entry *ez = sl_stfile_find(f, "empty"), *es = sl_stfile_find(f, "scalar");
    assert_non_null(ez);
    assert_int_equal(ez->numel, 0);
    assert_int_equal(es->ndim, 0);
    assert_int_equal(es->numel, 1);
    float sv;
    sl_stfile_read_f32(f, es, &sv);
    assert_true(sv == 42.0f);
    sl_stfile_close(f);
    free(path);
}

static void test_nan_roundtrip(void **state)
{
    (void)state;
    float v[2] = { NAN, -NAN };
    int64_t shp[1] = { 2 };
    for (int d = 0; d < SL_DT_COUNT; d++) {
        unsigned char raw[16];
        sl_dtype_from_f32((sl_dtype)d, v, raw, 2);
        float back[2];
        sl_dtype_to_f32((sl_dtype)d, raw, back, 2);
        assert_true(isnan(back[0]) && isnan(back[1]));
    }
    (void)shp;
}

/* ------------------------------------------------------------ hostile files */

#define E1BODY "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}"
#define E1 "{" E1BODY

static void test_hostile_files(void **state)
{
    (void)state;
    expect_bad("trunc_header.st", E1, -1, 8, 5, "truncated header");
    expect_bad("empty_header.st", "", -1, 0, 0, "not valid JSON");
    {   /* a zero-byte file */
        char *p0 = sl_test_path("zero.st");
        FILE *fp = fopen(p0, "wb");
        fclose(fp);
        sl_stfile *f = NULL;
        sl_err err = { 0 };
        assert_int_equal(sl_stfile_open(p0, &f, &err), SL_EFORMAT);
        assert_non_null(strstr(err.msg, "truncated header"));
        free(p0);
    }
    expect_bad("hlen_past_eof.st", E1, 100000, 8, 0, "past the end of the file");
    expect_bad("hlen_huge.st", E1, 200000000, 8, 0, "100 MB");
    expect_bad("offsets_past_eof.st",
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", -1, 8, 0, "past the end of the file");
    expect_bad("overlap.st",
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", -1, 12, 0, "overlaps");
    expect_bad("shape_mismatch.st",
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", -1, 8, 0, "shape x dtype needs 12");
    expect_bad("overflow.st",
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", -1, 8, 0,
               "overflows 64 bits");
    expect_bad("overflow_bytes.st",
               "{\"a\":{\"dtype\":\"F64\",\"shape\":[4611686018427387904],\"data_offsets\":[0,8]}}", -1, 8, 0,
               "overflows 64 bits");
    expect_bad("bad_json.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],", -1, 8, 0, "not valid JSON");
    expect_bad("not_object.st", "[1,2,3]", -1, 0, 0, "not an object");
    expect_bad("unknown_dtype.st",
               "{\"a\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", -1, 8, 0, "unsupported dtype I64");
    expect_bad("duplicate.st",
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", -1, 8, 0, "duplicate");
    expect_bad("negative_dim.st",
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", -1, 8, 0, "negative dimension");
    expect_bad("meta_not_string.st",
               "{\"__metadata__\":{\"seqlab.family\":3}," E1BODY, -1, 8, 0, "is not a string");
    expect_bad("meta_not_object.st", "{\"__metadata__\":[\"x\"]," E1BODY, -1, 8, 0, "__metadata__ is not a JSON object");
    expect_bad("hole.st",
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", -1, 12, 0, "hole in the data area");
    expect_bad("trailing.st", E1, -1, 16, 0, "trailing bytes");
    expect_bad("begin_gt_end.st",
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", -1, 8, 0, "begin 8 > end 0");
    expect_bad("offsets_not_ints.st",
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0.0,8]}}", -1, 8, 0, "two integers");
    expect_bad("shape_not_int.st",
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", -1, 8, 0, "not an integer");
    expect_bad("entry_not_object.st", "{\"a\":7}", -1, 0, 0, "not a JSON object");
    expect_bad("too_many_dims.st",
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", -1, 4, 0, "dimensions");
}

static void test_unaligned_data(void **state)
{
    (void)state;
    /* Header of odd length: the data area starts at an odd address. */
    const char *hdr = "{\"x\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,16]}}";
    char *path = sl_test_path("unaligned.st");
    FILE *fp = fopen(path, "wb");
    uint64_t hl = strlen(hdr);
    fwrite(&hl, 8, 1, fp);
    fwrite(hdr, 1, hl, fp);
    double v[2] = { 1.25, -3.5e-300 };
    fwrite(v, 8, 2, fp);
    fclose(fp);
    assert_int_equal(hl % 8 != 0, 1);
    sl_stfile *f;
    sl_err err = { 0 };
    assert_int_equal(sl_stfile_open(path, &f, &err), SL_OK);
    double got[2];
    sl_stfile_read_f64(f, sl_stfile_find(f, "x"), got);
    assert_true(got[0] == 1.25 && got[1] == -3.5e-300);
    sl_stfile_close(f);
    free(path);
}

/* ------------------------------------------------------------ PyTorch fixture */

static void test_torch_fixture_values(void **state)
{
    (void)state;
    json_error_t je;
    json_t *ref = json_load_file("tests/fixtures/torch_lstm_values.json", 0, &je);
    assert_non_null(ref);
    sl_model *m;
    sl_err err = { 0 };
    int rc = sl_model_open("tests/fixtures/torch_lstm.safetensors", &m, &err);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, SL_OK);
    assert_string_equal(m->fam->name, "lstm");      /* inferred: no metadata in the fixture */
    json_t *vals = json_object_get(ref, "values"), *shapes = json_object_get(ref, "shapes");
    assert_int_equal(json_object_size(vals), m->tensors->n);
    const char *name;
    json_t *arr;
    json_object_foreach(vals, name, arr) {
        sl_tensor *t = sl_tensors_find(m->tensors, name);
        assert_non_null(t);
        json_t *shp = json_object_get(shapes, name);
        assert_int_equal((size_t)t->ndim, json_array_size(shp));
        for (int d = 0; d < t->ndim; d++) assert_int_equal(t->shape[d], json_integer_value(json_array_get(shp, (size_t)d)));
        assert_int_equal((size_t)t->numel, json_array_size(arr));
        for (int64_t i = 0; i < t->numel; i++)
            assert_true(t->data[i] == (float)json_real_value(json_array_get(arr, (size_t)i)));
    }
    assert_int_equal(json_integer_value(json_object_get(m->config, "hidden_size")), 4);
    assert_int_equal(json_integer_value(json_object_get(m->config, "num_layers")), 2);
    assert_int_equal(json_integer_value(json_object_get(m->config, "input_size")), 3);
    sl_model_free(m);
    json_decref(ref);
}

static void test_info_torch_fixture(void **state)
{
    (void)state;
    char *out = NULL;
    int st = sl_test_cli("info tests/fixtures/torch_lstm.safetensors --format csv", &out, NULL);
    assert_int_equal(st, 0);
    /* PyTorch's names with the right shapes. */
    assert_non_null(strstr(out, "weight_ih_l0,F32,\"[16,3]\""));
    assert_non_null(strstr(out, "weight_hh_l0,F32,\"[16,4]\""));
    assert_non_null(strstr(out, "bias_ih_l1,F32,[16]"));
    assert_non_null(strstr(out, "weight_ih_l1,F32,\"[16,4]\""));
    free(out);
    st = sl_test_cli("info tests/fixtures/torch_lstm.safetensors --format json", &out, NULL);
    assert_int_equal(st, 0);
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "family")), "lstm");
    assert_int_equal(json_integer_value(json_object_get(j, "parameters")), 4 * 4 * (3 + 4 + 2) + 4 * 4 * (4 + 4 + 2));
    assert_int_equal(strlen(json_string_value(json_object_get(j, "sha256"))), 64);
    json_decref(j);
    free(out);
}

static void test_silero(void **state)
{
    (void)state;
    char path[256];
    if (!sl_test_shared_model("silero_vad_16k.safetensors", path, sizeof path)) { skip(); return; }
    sl_model *m;
    sl_err err = { 0 };
    assert_int_equal(sl_model_open(path, &m, &err), SL_OK);
    assert_string_equal(m->fam->name, "lstm");
    assert_int_equal(json_integer_value(json_object_get(m->config, "hidden_size")), 128);
    assert_int_equal(json_integer_value(json_object_get(m->config, "num_layers")), 1);
    assert_true(json_is_true(json_object_get(m->config, "cell")));
    /* The front end is kept and listed, not an error. */
    assert_non_null(sl_tensors_find(m->tensors, "stft_conv.weight"));
    assert_int_equal(m->tensors->n, 15);
    assert_int_equal(sl_model_core_param_count(m), 4 * 128 * (128 + 128 + 2));
    sl_model_free(m);
    char args[300], *out = NULL;
    snprintf(args, sizeof args, "info %s", path);
    assert_int_equal(sl_test_cli(args, &out, NULL), 0);
    assert_non_null(strstr(out, "lstm, 1 layer, input 128, hidden 128"));
    assert_non_null(strstr(out, "conv1.weight"));
    free(out);
}

/* ------------------------------------------------------------ folders and inference */

static void write_lstm_tensors(const char *path, const char *prefix, int cell, int H, int in, const json_t *meta)
{
    char n1[128], n2[128], n3[128], n4[128];
    snprintf(n1, sizeof n1, cell ? "%sweight_ih" : "%sweight_ih_l0", prefix);
    snprintf(n2, sizeof n2, cell ? "%sweight_hh" : "%sweight_hh_l0", prefix);
    snprintf(n3, sizeof n3, cell ? "%sbias_ih" : "%sbias_ih_l0", prefix);
    snprintf(n4, sizeof n4, cell ? "%sbias_hh" : "%sbias_hh_l0", prefix);
    int64_t s1[2] = { 4 * H, in }, s2[2] = { 4 * H, H }, s3[1] = { 4 * H };
    float *buf = calloc((size_t)(4 * H * (in + H + 2)), sizeof(float));
    for (int i = 0; i < 4 * H * (in + H + 2); i++) buf[i] = (float)i / 100.0f;
    sl_st_tensor ts[4] = {
        { n1, SL_DT_F32, 2, s1, buf },
        { n2, SL_DT_F32, 2, s2, buf + 4 * H * in },
        { n3, SL_DT_F32, 1, s3, buf + 4 * H * (in + H) },
        { n4, SL_DT_F32, 1, s3, buf + 4 * H * (in + H + 1) },
    };
    sl_err err = { 0 };
    assert_int_equal(sl_st_write(path, ts, 4, meta, &err), SL_OK);
    free(buf);
}

static void test_hf_folder(void **state)
{
    (void)state;
    char *dir = sl_test_path("hf_single");
    char cmd[600];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    assert_int_equal(system(cmd), 0);
    char p[700];
    snprintf(p, sizeof p, "%s/config.json", dir);
    FILE *fp = fopen(p, "w");
    fputs("{\"input_size\": 3, \"hidden_size\": 2, \"num_layers\": 1}", fp);
    fclose(fp);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    write_lstm_tensors(p, "", 0, 2, 3, NULL);
    sl_model *m;
    sl_err err = { 0 };
    int rc = sl_model_open(dir, &m, &err);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, SL_OK);
    assert_string_equal(m->fam->name, "lstm");
    assert_int_equal(m->tensors->n, 4);
    sl_model_free(m);

    /* Sharded: two files and an index. */
    char *sdir = sl_test_path("hf_sharded");
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", sdir);
    assert_int_equal(system(cmd), 0);
    snprintf(p, sizeof p, "%s/config.json", sdir);
    fp = fopen(p, "w");
    fputs("{\"input_size\": 3, \"hidden_size\": 2}", fp);
    fclose(fp);
    int64_t s1[2] = { 8, 3 }, s2[2] = { 8, 2 };
    float w1[24] = { 0 }, w2[16] = { 0 };
    w1[5] = 1.5f;
    w2[3] = -2.0f;
    sl_st_tensor a = { "weight_ih_l0", SL_DT_F32, 2, s1, w1 }, b = { "weight_hh_l0", SL_DT_F32, 2, s2, w2 };
    snprintf(p, sizeof p, "%s/model-00001-of-00002.safetensors", sdir);
    assert_int_equal(sl_st_write(p, &a, 1, NULL, &err), SL_OK);
    snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", sdir);
    assert_int_equal(sl_st_write(p, &b, 1, NULL, &err), SL_OK);
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", sdir);
    fp = fopen(p, "w");
    fputs("{\"metadata\": {}, \"weight_map\": {\"weight_ih_l0\": \"model-00001-of-00002.safetensors\", "
          "\"weight_hh_l0\": \"model-00002-of-00002.safetensors\"}}", fp);
    fclose(fp);
    rc = sl_model_open(sdir, &m, &err);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, SL_OK);
    assert_int_equal(m->tensors->n, 2);
    assert_true(sl_tensors_find(m->tensors, "weight_ih_l0")->data[5] == 1.5f);
    assert_true(sl_tensors_find(m->tensors, "weight_hh_l0")->data[3] == -2.0f);
    assert_int_equal(json_is_false(json_object_get(m->config, "bias")), 1);
    sl_model_free(m);
    /* An index naming a tensor its shard lacks is an error. */
    fp = fopen(p, "w");
    fputs("{\"weight_map\": {\"weight_ih_l0\": \"model-00002-of-00002.safetensors\", "
          "\"weight_hh_l0\": \"model-00002-of-00002.safetensors\"}}", fp);
    fclose(fp);
    assert_int_not_equal(sl_model_open(sdir, &m, &err), SL_OK);
    assert_non_null(strstr(err.msg, "weight_ih_l0"));
    free(dir);
    free(sdir);
}

static void test_family_inference(void **state)
{
    (void)state;
    sl_model *m;
    sl_err err = { 0 };
    /* LSTMCell under an arbitrary prefix. */
    char *p = sl_test_path("cell.st");
    write_lstm_tensors(p, "encoder.rnn_cell.", 1, 3, 2, NULL);
    assert_int_equal(sl_model_open(p, &m, &err), SL_OK);
    assert_string_equal(m->fam->name, "lstm");
    assert_string_equal(json_string_value(json_object_get(m->config, "tensor_prefix")), "encoder.rnn_cell.");
    sl_model_free(m);
    free(p);
    /* Unrelated tensors: one error listing the known families. */
    p = sl_test_path("unknown.st");
    int64_t s[1] = { 2 };
    float v[2] = { 1, 2 };
    sl_st_tensor t = { "fc.weight", SL_DT_F32, 1, s, v };
    assert_int_equal(sl_st_write(p, &t, 1, NULL, &err), SL_OK);
    assert_int_not_equal(sl_model_open(p, &m, &err), SL_OK);
    assert_non_null(strstr(err.msg, sl_family_names()));
    char args[400], *errs = NULL;
    snprintf(args, sizeof args, "info '%s'", p);
    assert_int_equal(sl_test_cli(args, NULL, &errs), 2);
    assert_non_null(strstr(errs, "lstm"));
    free(errs);
    free(p);
    /* Unknown family named in the metadata. */
    p = sl_test_path("badfam.st");
    json_t *meta = json_pack("{s:s}", "seqlab.family", "transformerxl");
    write_lstm_tensors(p, "", 0, 2, 2, meta);
    json_decref(meta);
    assert_int_equal(sl_model_open(p, &m, &err), SL_EUNSUP);
    assert_non_null(strstr(err.msg, "transformerxl"));
    free(p);
    /* A config that contradicts the tensors names both shapes. */
    p = sl_test_path("badshape.st");
    meta = json_pack("{s:s, s:s}", "seqlab.family", "lstm", "seqlab.config", "{\"hidden_size\": 3, \"input_size\": 2}");
    write_lstm_tensors(p, "", 0, 2, 2, meta);
    json_decref(meta);
    assert_int_equal(sl_model_open(p, &m, &err), SL_EFORMAT);
    assert_non_null(strstr(err.msg, "weight_ih_l0 has shape [8,2], expected [12,2]"));
    free(p);
    /* seqlab.config that is not JSON. */
    p = sl_test_path("badcfg.st");
    meta = json_pack("{s:s, s:s}", "seqlab.family", "lstm", "seqlab.config", "{hidden");
    write_lstm_tensors(p, "", 0, 2, 2, meta);
    json_decref(meta);
    assert_int_equal(sl_model_open(p, &m, &err), SL_EFORMAT);
    assert_non_null(strstr(err.msg, "seqlab.config"));
    free(p);
}

static void test_cli_usage_errors(void **state)
{
    (void)state;
    char *errs = NULL;
    assert_int_equal(sl_test_cli("frobnicate", NULL, &errs), 2);
    assert_non_null(strstr(errs, "unknown command"));
    free(errs);
    assert_int_equal(sl_test_cli("info --nope tests/fixtures/torch_lstm.safetensors", NULL, &errs), 2);
    assert_non_null(strstr(errs, "unknown option --nope"));
    free(errs);
    assert_int_equal(sl_test_cli("info", NULL, &errs), 2);
    assert_non_null(strstr(errs, "missing MODEL"));
    free(errs);
    assert_int_equal(sl_test_cli("info /no/such/file", NULL, &errs), 2);
    assert_non_null(strstr(errs, "No such file"));
    free(errs);
    assert_int_equal(sl_test_cli("info --format xml tests/fixtures/torch_lstm.safetensors", NULL, &errs), 2);
    assert_non_null(strstr(errs, "xml"));
    free(errs);
    char *out = NULL;
    assert_int_equal(sl_test_cli("--version", &out, NULL), 0);
    assert_non_null(strstr(out, "seqlab "));
    free(out);
    assert_int_equal(sl_test_cli("help info", &out, NULL), 0);
    assert_non_null(strstr(out, "--format"));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_f16_known_bits),
        cmocka_unit_test(test_bf16_known_bits),
        cmocka_unit_test(test_roundtrip_every_dtype),
        cmocka_unit_test(test_nan_roundtrip),
        cmocka_unit_test(test_hostile_files),
        cmocka_unit_test(test_unaligned_data),
        cmocka_unit_test(test_torch_fixture_values),
        cmocka_unit_test(test_info_torch_fixture),
        cmocka_unit_test(test_silero),
        cmocka_unit_test(test_hf_folder),
        cmocka_unit_test(test_family_inference),
        cmocka_unit_test(test_cli_usage_errors),
    };
    return cmocka_run_group_tests_name("modelfile", tests, NULL, NULL);
}
