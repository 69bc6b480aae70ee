/*
** Status codes and error messages.
**
** Every library function that can fail returns an int status: SL_OK (0) or a
** negative SL_E* code, and, when given a non-NULL sl_err, fills it with one
** human-readable line naming what went wrong ("tensor weight_hh_l0 has shape
** [3,4], expected [96,24]"). Library code never prints and never exits; only
** cli/ turns an sl_err into a message on stderr and an exit status
** (sl_exit_status: 2 for bad input or usage, 1 for failed work).
*/
#ifndef SL_ERR_H
#define SL_ERR_H

#include <stddef.h>

enum sl_status {
    SL_OK        =  0,
    SL_EINVAL    = -1,  /* bad argument or option value */
    SL_EIO       = -2,  /* file missing, unreadable, unwritable */
    SL_EFORMAT   = -3,  /* malformed or hostile input file */
    SL_ENOMEM    = -4,  /* allocation failed */
    SL_EUNSUP    = -5,  /* valid but unsupported (unknown family, dtype) */
    SL_EDB       = -6,  /* run store failure */
    SL_ENUMERIC  = -7,  /* numerical failure (no convergence, NaN produced) */
    SL_EINTERNAL = -8   /* a bug: an invariant was broken */
};

#define SL_ERR_MSG_MAX 1024

typedef struct sl_err {
    int  code;
    char msg[SL_ERR_MSG_MAX];
} sl_err;

/* Record code and a printf-style message in e (e may be NULL); returns code. */
int sl_err_set(sl_err *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepend "context: " to e's message, e.g. the file name; returns e->code.
** Use on the way out of a call that already set e. */
int sl_err_prefix(sl_err *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Reset e to SL_OK with an empty message. */
void sl_err_clear(sl_err *e);

/* A static name for a status code ("bad input file", ...). */
const char *sl_strerror(int code);

/* Exit status for a status code: 0 ok, 2 bad input/usage, 1 failed work. */
int sl_exit_status(int code);

#endif
