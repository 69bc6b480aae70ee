/*
** seqlab run MODEL --input u.safetensors [-o out.safetensors]: the forward pass.
** --device cuda runs it on the CUDA backend (kernels/cuda/) where the
** families have one; any reason it cannot (not built, a family without a
** CUDA path, no device) is an error with exit status 2.
**
** Reads u [B, T, input_size] (or [T, input_size]), runs the layer stack and
** writes y [B, T, output] and the final state of every layer: for each state
** block present in every layer with one size (h, c, ...), "<block>_n" stacked
** over layers [L, B, size] as PyTorch returns h_n and c_n; otherwise
** "<block>_l<k>" [B, size]. Without -o, prints a short summary.
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "input.h"
#include "layer.h"
#include "model.h"
#include "safetensors.h"
#include "util.h"

static int parse_algo(const sl_cli *c, const char *s, int *algo)
{
    static const char *const names[] = { "auto", "recurrent", "chunked", "conv", "reference" };
    for (int i = 0; i < 5; i++)
        if (strcmp(s, names[i]) == 0) { *algo = i; return 0; }
    return cli_error(c, 2, "--algo: unknown algorithm \"%s\" (auto, recurrent, chunked, conv, reference)", s);
}

/* Block b of every layer has the same name and size? */
static int block_uniform(const sl_model *m, int b)
{
    const sl_layer *L0 = m->layers[0];
    for (int l = 1; l < m->n_layers; l++) {
        const sl_layer *L = m->layers[l];
        if (L->n_blocks <= b || strcmp(L->blocks[b].name, L0->blocks[b].name) || L->blocks[b].size != L0->blocks[b].size)
            return 0;
    }
    return 1;
}

static int write_outputs(const sl_model *m, const char *path, int64_t B, int64_t T, const float *y, float **carries,
                         sl_err *err)
{
    /* At most one tensor per layer block plus y. */
    int cap = 1;
    for (int l = 0; l < m->n_layers; l++) cap += m->layers[l]->n_blocks;
    sl_st_tensor *ts = calloc((size_t)cap, sizeof *ts);
    char (*names)[64] = calloc((size_t)cap, sizeof *names);
    int64_t (*shapes)[6] = calloc((size_t)cap, sizeof *shapes);
    float **bufs = calloc((size_t)cap, sizeof *bufs);
    int n = 0, rc = SL_OK;
    if (!ts || !names || !shapes || !bufs) { rc = sl_err_set(err, SL_ENOMEM, "out of memory"); goto done; }
    shapes[0][0] = B; shapes[0][1] = T; shapes[0][2] = m->n_out;
    ts[n++] = (sl_st_tensor){ "y", SL_DT_F32, 3, shapes[0], y };
    const sl_layer *L0 = m->layers[0];
    for (int b = 0; b < L0->n_blocks; b++) {
        if (!block_uniform(m, b)) continue;
        const sl_state_block *blk = &L0->blocks[b];
        float *buf = malloc((size_t)(m->n_layers * B * blk->size) * sizeof *buf);
        if (!buf) { rc = sl_err_set(err, SL_ENOMEM, "out of memory"); goto done; }
        for (int l = 0; l < m->n_layers; l++)
            for (int64_t s = 0; s < B; s++)
                memcpy(buf + (l * B + s) * blk->size, carries[l] + s * m->layers[l]->n_carry + blk->offset,
                       (size_t)blk->size * sizeof *buf);
        bufs[n] = buf;
        snprintf(names[n], sizeof names[n], "%s_n", blk->name);
        shapes[n][0] = m->n_layers; shapes[n][1] = B;
        for (int d = 0; d < blk->ndim; d++) shapes[n][2 + d] = blk->shape[d];
        ts[n] = (sl_st_tensor){ names[n], SL_DT_F32, 2 + blk->ndim, shapes[n], buf };
        n++;
    }
    for (int l = 0; l < m->n_layers; l++) {
        const sl_layer *L = m->layers[l];
        for (int b = 0; b < L->n_blocks; b++) {
            if (b < L0->n_blocks && block_uniform(m, b)) continue;
            const sl_state_block *blk = &L->blocks[b];
            float *buf = malloc((size_t)(B * blk->size) * sizeof *buf);
            if (!buf) { rc = sl_err_set(err, SL_ENOMEM, "out of memory"); goto done; }
            for (int64_t s = 0; s < B; s++)
                memcpy(buf + s * blk->size, carries[l] + s * L->n_carry + blk->offset, (size_t)blk->size * sizeof *buf);
            bufs[n] = buf;
            snprintf(names[n], sizeof names[n], "%s_l%d", blk->name, l);
            shapes[n][0] = B;
            for (int d = 0; d < blk->ndim; d++) shapes[n][1 + d] = blk->shape[d];
            ts[n] = (sl_st_tensor){ names[n], SL_DT_F32, 1 + blk->ndim, shapes[n], buf };
            n++;
        }
    }
    json_t *meta = json_pack("{s:s, s:s}", "seqlab.producer", "seqlab run", "seqlab.model_sha256", m->sha256);
    rc = sl_st_write(path, ts, (size_t)n, meta, err);
    json_decref(meta);
done:
    for (int i = 0; bufs && i < cap; i++) free(bufs[i]);
    free(bufs);
    free(ts);
    free(names);
    free(shapes);
    return rc;
}

static int run_run(sl_cli *c, int argc, char **argv)
{
    static const struct option opts[] = {
        { "input", required_argument, 0, 'i' }, { "output", required_argument, 0, 'o' },
        { "threads", required_argument, 0, 't' }, { "algo", required_argument, 0, 'a' },
        { "device", required_argument, 0, 'd' }, { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
    };
    const char *input = NULL, *output = NULL;
    int algo = 0, device = SL_DEVICE_CPU, ch;
    sl_err derr = { 0 };
    long long threads = 0;
    optind = 0;
    while ((ch = cli_getopt(c, argc, argv, "i:o:t:a:d:h", opts)) != -1) {
        switch (ch) {
        case 'i': input = optarg; break;
        case 'o': output = optarg; break;
        case 't': if (cli_parse_int(c, "--threads", optarg, 1, 1024, &threads)) return 2; break;
        case 'a': if (parse_algo(c, optarg, &algo)) return 2; break;
        case 'd':
            if (sl_device_parse(optarg, &device, &derr)) return cli_error(c, 2, "--device: %s", derr.msg);
            break;
        case 'h': printf("%s\n", sl_cli_find("run")->help); return 0;
        default: return 2;
        }
    }
    if (cli_positional(c, argc, argv, 1, "MODEL")) return 2;
    if (!input) return cli_error(c, 2, "missing --input u.safetensors");
    if (threads) cli_set_threads((int)threads);
    /* A build without the backend fails before any file is read; whether the
    ** model's families have a CUDA path and a device is present is checked
    ** by the forward pass, in that order, before it runs anything. */
    if (!sl_device_built(device)) {
        sl_device_check(device, &derr);
        return cli_error(c, 2, "--device %s: %s", sl_device_name(device), derr.msg);
    }
    sl_err err = { 0 };
    sl_model *m = NULL;
    sl_input in = { 0 };
    float *y = NULL, **carries = NULL;
    int rc = 0;
    if (sl_model_open(argv[optind], &m, &err)) return cli_fail(c, &err);
    if (m->n_layers == 0) { rc = cli_error(c, 2, "%s: the model has no layers to run", argv[optind]); goto done; }
    if (sl_input_load(input, "u", &in, &err)) { rc = cli_fail(c, &err); goto done; }
    if (in.F != m->n_in) {
        rc = cli_error(c, 2, "%s: u has %lld features per step, the model takes %lld", input, (long long)in.F,
                       (long long)m->n_in);
        goto done;
    }
    y = malloc((size_t)(in.B * in.T * m->n_out) * sizeof *y);
    carries = calloc((size_t)m->n_layers, sizeof *carries);
    if (!y || !carries) { rc = cli_error(c, 1, "out of memory"); goto done; }
    for (int l = 0; l < m->n_layers; l++)
        if (!(carries[l] = calloc((size_t)(in.B * m->layers[l]->n_carry), sizeof(float)))) {
            rc = cli_error(c, 1, "out of memory");
            goto done;
        }
    double t0 = sl_now();
    if (sl_model_forward_dev(m, in.B, in.T, in.u, y, carries, algo, device, &err)) {
        rc = cli_fail(c, &err);
        goto done;
    }
    double dt = sl_now() - t0;
    if (output) {
        if (write_outputs(m, output, in.B, in.T, y, carries, &err)) { rc = cli_fail(c, &err); goto done; }
        printf("wrote %s: y [%lld, %lld, %lld] and final states of %d layer%s\n", output, (long long)in.B,
               (long long)in.T, (long long)m->n_out, m->n_layers, m->n_layers == 1 ? "" : "s");
    } else {
        const int64_t n = in.B * in.T * m->n_out;
        double sum = 0, sq = 0, lo = INFINITY, hi = -INFINITY;
        for (int64_t i = 0; i < n; i++) {
            sum += y[i];
            sq += (double)y[i] * y[i];
            lo = fmin(lo, y[i]);
            hi = fmax(hi, y[i]);
        }
        double mean = sum / (double)n;
        printf("model   %s (%s)\n", m->path, m->summary);
        printf("input   u [%lld, %lld, %lld]\n", (long long)in.B, (long long)in.T, (long long)in.F);
        printf("output  y [%lld, %lld, %lld]: mean %.6g, std %.6g, min %.6g, max %.6g\n", (long long)in.B,
               (long long)in.T, (long long)m->n_out, mean, sqrt(fmax(0.0, sq / (double)n - mean * mean)), lo, hi);
        for (int l = 0; l < m->n_layers; l++) {
            const sl_layer *L = m->layers[l];
            printf("layer %d final state:", l);
            for (int b = 0; b < L->n_blocks; b++) {
                double nrm = 0;
                for (int64_t s = 0; s < in.B; s++)
                    for (int64_t k = 0; k < L->blocks[b].size; k++) {
                        double v = carries[l][s * L->n_carry + L->blocks[b].offset + k];
                        nrm += v * v;
                    }
                printf(" |%s| = %.6g", L->blocks[b].name, sqrt(nrm / (double)in.B));
            }
            printf("\n");
        }
        printf("time    %.3f ms\n", 1e3 * dt);
    }
done:
    for (int l = 0; carries && l < m->n_layers; l++) free(carries[l]);
    free(carries);
    free(y);
    sl_input_free(&in);
    sl_model_free(m);
    return rc;
}

const sl_command sl_cmd_run = {
    .name = "run",
    .run = run_run,
    .summary = "run a model's forward pass on an input file",
    .help = "usage: seqlab run MODEL --input u.safetensors [-o out.safetensors] [--threads N] [--algo A]\n"
            "                 [--device cpu|cuda]\n\n"
            "Reads tensor u [B, T, input_size] (or [T, input_size]) and runs every layer. With -o, writes\n"
            "y [B, T, output] and the final states (h_n, c_n, ... stacked over layers as PyTorch returns\n"
            "them); without -o, prints a summary of the output and the final states.\n\n"
            "options:\n"
            "  -i, --input FILE    safetensors file with tensor u (required)\n"
            "  -o, --output FILE   where to write y and the final states\n"
            "  -t, --threads N     threads for OpenMP and BLAS (default: OMP_NUM_THREADS or all cores)\n"
            "  -a, --algo A        auto (default), recurrent, chunked, conv, or reference (plain loops)\n"
            "  -d, --device D      cpu (default) or cuda: the recurrent kernels of rnn, lstm and gru, and\n"
            "                      the scans of mamba and the matrix-state families, on the GPU (a build\n"
            "                      with make CUDA=1 and a CUDA device; auto / recurrent algorithms only)\n",
};
