/*
** The gru family: GRU (torch.nn.GRU / GRUCell; gates r, z, n).
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "family.h"
#include "torch_rnn.h"
#include "util.h"

static int gru_detect(const sl_tensors *ts, json_t **config)
{
    return sl_torch_rnn_detect(ts, 3, config);
}

static int gru_build(sl_model *m, sl_err *err)
{
    sl_torch_rnn s;
    int rc = sl_torch_rnn_parse(m, 3, 0, &s, err);
    if (rc) return rc;
    m->summary = sl_strfmt("gru, %lld layer%s, input %lld, hidden %lld%s", (long long)s.num_layers,
                           s.num_layers == 1 ? "" : "s", (long long)s.input_size, (long long)s.hidden_size,
                           s.cell ? " (cell)" : "");
    return m->summary ? SL_OK : sl_err_set(err, SL_ENOMEM, "out of memory");
}

const sl_family sl_family_gru = {
    .name = "gru",
    .summary = "GRU (torch.nn.GRU / GRUCell; gates r, z, n)",
    .detect = gru_detect,
    .build = gru_build,
};
