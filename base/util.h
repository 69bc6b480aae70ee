/*
** Small shared utilities: checked allocation sizes, SHA-256 of files and
** buffers (through OpenSSL's libcrypto), files written atomically (temporary
** file in the same folder, then rename), and a growable string buffer.
*/
#ifndef SL_UTIL_H
#define SL_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stddef.h>

#include "err.h"

#define SL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define SL_MIN(a, b) ((a) < (b) ? (a) : (b))
#define SL_MAX(a, b) ((a) > (b) ? (a) : (b))

/* n * size without overflow: returns 0 and sets *out, or -1 on overflow. */
int sl_mul_size(size_t n, size_t size, size_t *out);

/* malloc'ed copy of s (NULL when s is NULL or on failure). Caller frees. */
char *sl_strdup(const char *s);

/* malloc'ed printf result; NULL on failure. Caller frees. */
char *sl_strfmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ------------------------------------------------------------ SHA-256 */
typedef struct sl_sha256 sl_sha256;     /* opaque incremental hasher */
sl_sha256 *sl_sha256_new(void);         /* NULL on failure; free with _free */
void sl_sha256_update(sl_sha256 *h, const void *data, size_t n);
void sl_sha256_final(sl_sha256 *h, char hex[65]);  /* lowercase hex, NUL-terminated */
void sl_sha256_free(sl_sha256 *h);
void sl_sha256_buf(const void *data, size_t n, char hex[65]);
int  sl_sha256_file(const char *path, char hex[65], sl_err *err);

/* ------------------------------------------------------------ atomic files
** Write to "<dir>/.<base>.tmp.XXXXXX" then rename over path on commit, so a
** reader never sees a half-written file and a failure leaves nothing behind.
**   sl_afile f; if (sl_afile_open(&f, path, err)) return ...;
**   fwrite(..., f.fp); ... return sl_afile_commit(&f, err);   (or sl_afile_abort)
** The struct owns tmp and path copies; commit and abort both release them. */
typedef struct sl_afile {
    FILE *fp;
    char *path;
    char *tmp;
} sl_afile;

int  sl_afile_open(sl_afile *f, const char *path, sl_err *err);
int  sl_afile_commit(sl_afile *f, sl_err *err);
void sl_afile_abort(sl_afile *f);

/* A temporary path beside path (same folder, so rename is atomic); caller
** frees. For writers that take a file name (Cairo's PNG writer). */
char *sl_tmp_path_beside(const char *path);
/* rename(tmp, path) with an error naming path; unlinks tmp on failure. */
int  sl_rename_into_place(const char *tmp, const char *path, sl_err *err);

/* ------------------------------------------------------------ string buffer */
typedef struct sl_buf {
    char  *s;       /* NUL-terminated; owned */
    size_t len, cap;
    int    oom;     /* set once an append failed; later appends are no-ops */
} sl_buf;

void sl_buf_init(sl_buf *b);
void sl_buf_puts(sl_buf *b, const char *s);
void sl_buf_putn(sl_buf *b, const char *s, size_t n);
void sl_buf_printf(sl_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sl_buf_free(sl_buf *b);
/* Give the string to the caller (who frees it) and reset b. NULL on oom. */
char *sl_buf_take(sl_buf *b);

/* ------------------------------------------------------------ misc */
/* Monotonic seconds, for progress and benchmarks (never asserted in tests). */
double sl_now(void);

/* 1 if path is an existing directory. */
int sl_is_dir(const char *path);

#endif
