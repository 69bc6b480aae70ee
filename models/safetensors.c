/*
** safetensors reading and writing: see safetensors.h.
**
** The reader is the first thing a hostile file meets, so it validates the whole
** header and the tiling of the data area before returning anything: a caller
** that holds an sl_stfile can copy any entry without further checks. Errors name
** the file, the tensor and the rule broken, in one line.
*/
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

static int owns_map(const sl_stfile *f) { return f->path != NULL; }

void sl_stfile_close(sl_stfile *f)
{
    if (!f) return;
    if (f->map && owns_map(f) && f->size) munmap((void *)f->map, f->size);
    for (size_t i = 0; i < f->n; i++) free(f->entries[i].name);
    free(f->entries);
    json_decref(f->metadata);
    free(f->path);
    free(f);
}

static int cmp_begin(const void *a, const void *b)
{
    const sl_st_entry *x = *(const sl_st_entry *const *)a, *y = *(const sl_st_entry *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* Parse one tensor entry; returns SL_OK or SL_EFORMAT with the reason. */
static int parse_entry(const char *name, json_t *v, sl_st_entry *e, sl_err *err)
{
    if (!json_is_object(v))
        return sl_err_set(err, SL_EFORMAT, "tensor %s: entry is not a JSON object", name);
    const char *key;
    json_t *val;
    json_object_foreach(v, key, val) {
        if (strcmp(key, "dtype") && strcmp(key, "shape") && strcmp(key, "data_offsets"))
            return sl_err_set(err, SL_EFORMAT, "tensor %s: unknown field \"%s\"", name, key);
    }
    json_t *dt = json_object_get(v, "dtype"), *shape = json_object_get(v, "shape"),
           *offs = json_object_get(v, "data_offsets");
    if (!json_is_string(dt)) return sl_err_set(err, SL_EFORMAT, "tensor %s: dtype missing or not a string", name);
    if (sl_dtype_parse(json_string_value(dt), &e->dtype))
        return sl_err_set(err, SL_EUNSUP, "tensor %s: unsupported dtype %s (seqlab reads F32, F64, F16, BF16)",
                          name, json_string_value(dt));
    if (!json_is_array(shape)) return sl_err_set(err, SL_EFORMAT, "tensor %s: shape missing or not an array", name);
    size_t nd = json_array_size(shape);
    if (nd > SL_MAX_DIMS)
        return sl_err_set(err, SL_EFORMAT, "tensor %s: %zu dimensions (at most %d)", name, nd, SL_MAX_DIMS);
    e->ndim = (int)nd;
    uint64_t numel = 1;
    for (size_t i = 0; i < nd; i++) {
        json_t *d = json_array_get(shape, i);
        if (!json_is_integer(d))
            return sl_err_set(err, SL_EFORMAT, "tensor %s: shape[%zu] is not an integer", name, i);
        json_int_t di = json_integer_value(d);
        if (di < 0)
            return sl_err_set(err, SL_EFORMAT, "tensor %s: negative dimension %lld in shape", name, (long long)di);
        e->shape[i] = di;
        if (__builtin_mul_overflow(numel, (uint64_t)di, &numel) || numel > (uint64_t)INT64_MAX)
            return sl_err_set(err, SL_EFORMAT, "tensor %s: shape product overflows 64 bits", name);
    }
    e->numel = (int64_t)numel;
    uint64_t nbytes;
    if (__builtin_mul_overflow(numel, (uint64_t)sl_dtype_size(e->dtype), &nbytes))
        return sl_err_set(err, SL_EFORMAT, "tensor %s: byte size overflows 64 bits", name);
    if (!json_is_array(offs) || json_array_size(offs) != 2 || !json_is_integer(json_array_get(offs, 0)) ||
        !json_is_integer(json_array_get(offs, 1)))
        return sl_err_set(err, SL_EFORMAT, "tensor %s: data_offsets must be two integers", name);
    json_int_t b = json_integer_value(json_array_get(offs, 0)), en = json_integer_value(json_array_get(offs, 1));
    if (b < 0 || en < 0) return sl_err_set(err, SL_EFORMAT, "tensor %s: negative data offset", name);
    if (b > en) return sl_err_set(err, SL_EFORMAT, "tensor %s: data_offsets begin %lld > end %lld", name,
                                  (long long)b, (long long)en);
    e->begin = (uint64_t)b;
    e->end = (uint64_t)en;
    if (e->end - e->begin != nbytes)
        return sl_err_set(err, SL_EFORMAT,
                          "tensor %s: data_offsets span %llu bytes but shape x dtype needs %llu", name,
                          (unsigned long long)(e->end - e->begin), (unsigned long long)nbytes);
    return SL_OK;
}

static int parse_metadata(json_t *v, sl_err *err)
{
    if (!json_is_object(v)) return sl_err_set(err, SL_EFORMAT, "__metadata__ is not a JSON object");
    const char *k;
    json_t *x;
    json_object_foreach(v, k, x) {
        if (!json_is_string(x)) return sl_err_set(err, SL_EFORMAT, "__metadata__ value of \"%s\" is not a string", k);
    }
    return SL_OK;
}

int sl_stfile_parse(const uint8_t *buf, size_t size, const char *label, sl_stfile **out, sl_err *err)
{
    *out = NULL;
    if (size < 8) return sl_err_set(err, SL_EFORMAT, "truncated header: file has %zu bytes, needs at least 8", size);
    uint64_t hlen;
    memcpy(&hlen, buf, 8);
    if (hlen > SL_ST_MAX_HEADER)
        return sl_err_set(err, SL_EFORMAT, "header length %llu exceeds the 100 MB limit", (unsigned long long)hlen);
    if (hlen > size - 8)
        return sl_err_set(err, SL_EFORMAT, "header length %llu runs past the end of the file (%zu bytes)",
                          (unsigned long long)hlen, size);
    json_error_t jerr;
    json_t *root = json_loadb((const char *)buf + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        if (strstr(jerr.text, "duplicate"))
            return sl_err_set(err, SL_EFORMAT, "duplicate tensor name in header: %s", jerr.text);
        return sl_err_set(err, SL_EFORMAT, "header is not valid JSON: %s at byte %d", jerr.text, jerr.position);
    }
    int rc = SL_OK;
    sl_stfile *f = calloc(1, sizeof *f);
    sl_st_entry **sorted = NULL;
    if (!f) { rc = sl_err_set(err, SL_ENOMEM, "out of memory"); goto done; }
    f->map = buf;
    f->size = size;
    f->data = buf + 8 + hlen;
    f->data_size = size - 8 - (size_t)hlen;
    if (!json_is_object(root)) { rc = sl_err_set(err, SL_EFORMAT, "header JSON is not an object"); goto done; }
    size_t cap = json_object_size(root);
    f->entries = calloc(cap ? cap : 1, sizeof *f->entries);
    if (!f->entries) { rc = sl_err_set(err, SL_ENOMEM, "out of memory"); goto done; }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0) {
            if ((rc = parse_metadata(val, err))) goto done;
            f->metadata = json_incref(val);
            continue;
        }
        sl_st_entry *e = &f->entries[f->n];
        if ((rc = parse_entry(key, val, e, err))) goto done;
        if (!(e->name = sl_strdup(key))) { rc = sl_err_set(err, SL_ENOMEM, "out of memory"); goto done; }
        f->n++;
    }
    if (!f->metadata && !(f->metadata = json_object())) { rc = sl_err_set(err, SL_ENOMEM, "out of memory"); goto done; }
    /* The data area must be tiled exactly: sort by begin and walk. */
    sorted = malloc((f->n ? f->n : 1) * sizeof *sorted);
    if (!sorted) { rc = sl_err_set(err, SL_ENOMEM, "out of memory"); goto done; }
    for (size_t i = 0; i < f->n; i++) sorted[i] = &f->entries[i];
    qsort(sorted, f->n, sizeof *sorted, cmp_begin);
    uint64_t pos = 0;
    for (size_t i = 0; i < f->n; i++) {
        const sl_st_entry *e = sorted[i];
        if (e->end > f->data_size) {
            rc = sl_err_set(err, SL_EFORMAT, "tensor %s: data_offsets [%llu, %llu] run past the end of the file "
                            "(data area has %zu bytes)", e->name, (unsigned long long)e->begin,
                            (unsigned long long)e->end, f->data_size);
            goto done;
        }
        if (e->begin < pos) {
            rc = sl_err_set(err, SL_EFORMAT, "tensor %s overlaps tensor %s (data_offsets %llu < %llu)", e->name,
                            sorted[i - 1]->name, (unsigned long long)e->begin, (unsigned long long)pos);
            goto done;
        }
        if (e->begin > pos) {
            rc = sl_err_set(err, SL_EFORMAT, "hole in the data area: bytes %llu..%llu belong to no tensor (before %s)",
                            (unsigned long long)pos, (unsigned long long)e->begin, e->name);
            goto done;
        }
        pos = e->end;
    }
    if (pos != f->data_size) {
        rc = sl_err_set(err, SL_EFORMAT, "data area has %zu bytes but the tensors cover %llu "
                        "(trailing bytes or truncated file)", f->data_size, (unsigned long long)pos);
        goto done;
    }
    (void)label;
done:
    free(sorted);
    json_decref(root);
    if (rc) { if (f) f->path = NULL, sl_stfile_close(f); return rc; }
    *out = f;
    return SL_OK;
}

int sl_stfile_open(const char *path, sl_stfile **out, sl_err *err)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return sl_err_set(err, SL_EIO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) { close(fd); return sl_err_set(err, SL_EIO, "%s: %s", path, strerror(errno)); }
    if (!S_ISREG(st.st_mode)) { close(fd); return sl_err_set(err, SL_EIO, "%s: not a regular file", path); }
    size_t size = (size_t)st.st_size;
    const uint8_t *map = NULL;
    if (size > 0) {
        void *m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) { close(fd); return sl_err_set(err, SL_EIO, "%s: cannot map: %s", path, strerror(errno)); }
        map = m;
    }
    close(fd);
    static const uint8_t empty[1];
    sl_stfile *f;
    int rc = sl_stfile_parse(map ? map : empty, size, path, &f, err);
    if (rc) {
        if (map) munmap((void *)map, size);
        return sl_err_prefix(err, "%s", path);
    }
    f->path = sl_strdup(path);
    if (!f->path) {
        if (map) munmap((void *)map, size);
        f->map = NULL;
        sl_stfile_close(f);
        return sl_err_set(err, SL_ENOMEM, "out of memory");
    }
    if (!map) f->size = 0;
    *out = f;
    return SL_OK;
}

const sl_st_entry *sl_stfile_find(const sl_stfile *f, const char *name)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->entries[i].name, name) == 0) return &f->entries[i];
    return NULL;
}

const char *sl_stfile_meta(const sl_stfile *f, const char *key)
{
    return json_string_value(json_object_get(f->metadata, key));
}

void sl_stfile_read_f32(const sl_stfile *f, const sl_st_entry *e, float *out)
{
    sl_dtype_to_f32(e->dtype, f->data + e->begin, out, (size_t)e->numel);
}

void sl_stfile_read_f64(const sl_stfile *f, const sl_st_entry *e, double *out)
{
    const uint8_t *p = f->data + e->begin;
    if (e->dtype == SL_DT_F64) {
        memcpy(out, p, (size_t)e->numel * 8);
        return;
    }
    /* Convert through float in pieces: every F32/F16/BF16 value is a float. */
    float tmp[256];
    size_t esz = sl_dtype_size(e->dtype);
    for (int64_t i = 0; i < e->numel; i += 256) {
        size_t k = (size_t)SL_MIN(256, e->numel - i);
        sl_dtype_to_f32(e->dtype, p + (size_t)i * esz, tmp, k);
        for (size_t j = 0; j < k; j++) out[i + (int64_t)j] = tmp[j];
    }
}

/* ------------------------------------------------------------ writing */
int sl_st_write(const char *path, const sl_st_tensor *ts, size_t n, const json_t *metadata, sl_err *err)
{
    int rc = SL_OK;
    json_t *root = json_object();
    char *hdr = NULL;
    if (!root) return sl_err_set(err, SL_ENOMEM, "out of memory");
    if (metadata && json_object_size(metadata) > 0) {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)metadata, k, v) {
            if (!json_is_string(v)) { rc = sl_err_set(err, SL_EINVAL, "metadata value of \"%s\" is not a string", k); goto done; }
        }
        json_object_set(root, "__metadata__", (json_t *)metadata);
    }
    uint64_t off = 0;
    for (size_t i = 0; i < n; i++) {
        const sl_st_tensor *t = &ts[i];
        if (json_object_get(root, t->name)) { rc = sl_err_set(err, SL_EINVAL, "duplicate tensor name %s", t->name); goto done; }
        uint64_t numel = 1;
        json_t *shape = json_array();
        for (int d = 0; d < t->ndim; d++) {
            json_array_append_new(shape, json_integer(t->shape[d]));
            numel *= (uint64_t)t->shape[d];
        }
        uint64_t nbytes = numel * sl_dtype_size(t->dtype);
        json_t *e = json_pack("{s:s, s:o, s:[I,I]}", "dtype", sl_dtype_name(t->dtype), "shape", shape,
                              "data_offsets", (json_int_t)off, (json_int_t)(off + nbytes));
        if (!e || json_object_set_new(root, t->name, e)) { rc = sl_err_set(err, SL_ENOMEM, "out of memory"); goto done; }
        off += nbytes;
    }
    hdr = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!hdr) { rc = sl_err_set(err, SL_ENOMEM, "out of memory"); goto done; }
    size_t hlen = strlen(hdr), padded = (hlen + 7) & ~(size_t)7;
    sl_afile af;
    if ((rc = sl_afile_open(&af, path, err))) goto done;
    uint64_t h64 = padded;
    fwrite(&h64, 8, 1, af.fp);
    fwrite(hdr, 1, hlen, af.fp);
    for (size_t i = hlen; i < padded; i++) fputc(' ', af.fp);
    for (size_t i = 0; i < n; i++) {
        uint64_t numel = 1;
        for (int d = 0; d < ts[i].ndim; d++) numel *= (uint64_t)ts[i].shape[d];
        size_t nbytes = (size_t)numel * sl_dtype_size(ts[i].dtype);
        if (nbytes && fwrite(ts[i].data, 1, nbytes, af.fp) != nbytes) break;
    }
    rc = sl_afile_commit(&af, err);
done:
    free(hdr);
    json_decref(root);
    return rc;
}
