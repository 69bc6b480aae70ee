/*
** The family registry: every family seqlab knows, in the order `seqlab help`
** and error messages list them.
*/
#include "family.h"

#include <stdio.h>
#include <string.h>

extern const sl_family sl_family_rnn, sl_family_lstm, sl_family_gru;
extern const sl_family sl_family_lssl, sl_family_s4d, sl_family_lru, sl_family_lmu,
    sl_family_mamba;
extern const sl_family sl_family_linear_attn, sl_family_retnet, sl_family_gla, sl_family_delta_net,
    sl_family_gated_delta_net, sl_family_mlstm;

static const sl_family *const families[] = {
    &sl_family_rnn,
    &sl_family_lstm,
    &sl_family_gru,
    &sl_family_lssl,
    &sl_family_s4d,
    &sl_family_lru,
    &sl_family_lmu,
    &sl_family_mamba,
    &sl_family_linear_attn,
    &sl_family_retnet,
    &sl_family_gla,
    &sl_family_delta_net,
    &sl_family_gated_delta_net,
    &sl_family_mlstm,
};

size_t sl_family_count(void) { return sizeof families / sizeof families[0]; }

const sl_family *sl_family_at(size_t i) { return i < sl_family_count() ? families[i] : NULL; }

const sl_family *sl_family_find(const char *name)
{
    for (size_t i = 0; i < sl_family_count(); i++)
        if (strcmp(families[i]->name, name) == 0) return families[i];
    return NULL;
}

const sl_family *sl_family_by_hf_type(const char *model_type)
{
    for (size_t i = 0; i < sl_family_count(); i++) {
        const char *const *t = families[i]->hf_model_types;
        for (; t && *t; t++)
            if (strcmp(*t, model_type) == 0) return families[i];
    }
    return NULL;
}

const char *sl_family_names(void)
{
    static char buf[512];
    if (buf[0]) return buf;
    size_t pos = 0;
    for (size_t i = 0; i < sl_family_count() && pos < sizeof buf; i++)
        pos += (size_t)snprintf(buf + pos, sizeof buf - pos, "%s%s", i ? ", " : "", families[i]->name);
    return buf;
}

const sl_config_key *sl_family_key(const sl_family *f, const char *name)
{
    for (const sl_config_key *k = f->keys; k && k->name; k++)
        if (strcmp(k->name, name) == 0) return k;
    return NULL;
}
