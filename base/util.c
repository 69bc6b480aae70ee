/*
** Small shared utilities: see util.h. SHA-256 comes from libcrypto's EVP
** interface rather than a hand-written digest.
*/
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

int sl_mul_size(size_t n, size_t size, size_t *out)
{
    size_t r;
    if (__builtin_mul_overflow(n, size, &r)) return -1;
    *out = r;
    return 0;
}

char *sl_strdup(const char *s)
{
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

char *sl_strfmt(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return NULL;
    char *s = malloc((size_t)n + 1);
    if (!s) return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* ------------------------------------------------------------ SHA-256 */
struct sl_sha256 { EVP_MD_CTX *ctx; };

sl_sha256 *sl_sha256_new(void)
{
    sl_sha256 *h = malloc(sizeof *h);
    if (!h) return NULL;
    h->ctx = EVP_MD_CTX_new();
    if (!h->ctx || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(h->ctx);
        free(h);
        return NULL;
    }
    return h;
}

void sl_sha256_update(sl_sha256 *h, const void *data, size_t n)
{
    if (n) EVP_DigestUpdate(h->ctx, data, n);
}

void sl_sha256_final(sl_sha256 *h, char hex[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(h->ctx, md, &len);
    for (unsigned i = 0; i < len && i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
    hex[64] = '\0';
}

void sl_sha256_free(sl_sha256 *h)
{
    if (!h) return;
    EVP_MD_CTX_free(h->ctx);
    free(h);
}

void sl_sha256_buf(const void *data, size_t n, char hex[65])
{
    sl_sha256 *h = sl_sha256_new();
    if (!h) { memset(hex, '0', 64); hex[64] = '\0'; return; }
    sl_sha256_update(h, data, n);
    sl_sha256_final(h, hex);
    sl_sha256_free(h);
}

int sl_sha256_file(const char *path, char hex[65], sl_err *err)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return sl_err_set(err, SL_EIO, "%s: %s", path, strerror(errno));
    sl_sha256 *h = sl_sha256_new();
    if (!h) { fclose(fp); return sl_err_set(err, SL_ENOMEM, "out of memory"); }
    unsigned char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, fp)) > 0) sl_sha256_update(h, buf, n);
    int bad = ferror(fp);
    fclose(fp);
    sl_sha256_final(h, hex);
    sl_sha256_free(h);
    if (bad) return sl_err_set(err, SL_EIO, "%s: read error", path);
    return SL_OK;
}

/* ------------------------------------------------------------ atomic files */
char *sl_tmp_path_beside(const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t dirlen = slash ? (size_t)(slash - path + 1) : 0;
    const char *base = slash ? slash + 1 : path;
    return sl_strfmt("%.*s.%s.tmp.XXXXXX", (int)dirlen, path, base);
}

int sl_afile_open(sl_afile *f, const char *path, sl_err *err)
{
    memset(f, 0, sizeof *f);
    f->path = sl_strdup(path);
    f->tmp = sl_tmp_path_beside(path);
    if (!f->path || !f->tmp) {
        sl_afile_abort(f);
        return sl_err_set(err, SL_ENOMEM, "out of memory");
    }
    int fd = mkstemp(f->tmp);
    if (fd < 0) {
        int e = errno;
        free(f->tmp); f->tmp = NULL;
        sl_afile_abort(f);
        return sl_err_set(err, SL_EIO, "%s: cannot create: %s", path, strerror(e));
    }
    fchmod(fd, 0644);
    f->fp = fdopen(fd, "wb");
    if (!f->fp) {
        close(fd);
        sl_afile_abort(f);
        return sl_err_set(err, SL_EIO, "%s: cannot open for writing", path);
    }
    return SL_OK;
}

int sl_afile_commit(sl_afile *f, sl_err *err)
{
    int rc = SL_OK;
    if (fflush(f->fp) != 0 || ferror(f->fp) || fsync(fileno(f->fp)) != 0)
        rc = sl_err_set(err, SL_EIO, "%s: write failed: %s", f->path, strerror(errno));
    if (fclose(f->fp) != 0 && rc == SL_OK)
        rc = sl_err_set(err, SL_EIO, "%s: write failed: %s", f->path, strerror(errno));
    f->fp = NULL;
    if (rc == SL_OK) rc = sl_rename_into_place(f->tmp, f->path, err);
    else unlink(f->tmp);
    free(f->tmp);
    free(f->path);
    f->tmp = f->path = NULL;
    return rc;
}

void sl_afile_abort(sl_afile *f)
{
    if (f->fp) fclose(f->fp);
    if (f->tmp) unlink(f->tmp);
    free(f->tmp);
    free(f->path);
    memset(f, 0, sizeof *f);
}

int sl_rename_into_place(const char *tmp, const char *path, sl_err *err)
{
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return sl_err_set(err, SL_EIO, "%s: cannot write: %s", path, strerror(e));
    }
    return SL_OK;
}

/* ------------------------------------------------------------ string buffer */
void sl_buf_init(sl_buf *b) { memset(b, 0, sizeof *b); }

static int buf_reserve(sl_buf *b, size_t extra)
{
    if (b->oom) return -1;
    if (b->len + extra + 1 <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1) cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s) { b->oom = 1; return -1; }
    b->s = s;
    b->cap = cap;
    return 0;
}

void sl_buf_putn(sl_buf *b, const char *s, size_t n)
{
    if (buf_reserve(b, n)) return;
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

void sl_buf_puts(sl_buf *b, const char *s) { sl_buf_putn(b, s, strlen(s)); }

void sl_buf_printf(sl_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || buf_reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void sl_buf_free(sl_buf *b)
{
    free(b->s);
    sl_buf_init(b);
}

char *sl_buf_take(sl_buf *b)
{
    char *s = b->oom ? NULL : b->s;
    if (b->oom) free(b->s);
    if (s == NULL && !b->oom) s = sl_strdup("");
    sl_buf_init(b);
    return s;
}

/* ------------------------------------------------------------ misc */
double sl_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int sl_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}
