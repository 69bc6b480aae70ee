/*
** Status codes and error messages: see err.h. Messages are formatted into the
** caller's sl_err so nothing here allocates, and sl_err_prefix lets each layer
** of the call stack add its context on the way out.
*/
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int sl_err_set(sl_err *e, int code, const char *fmt, ...)
{
    if (!e) return code;
    e->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return code;
}

int sl_err_prefix(sl_err *e, const char *fmt, ...)
{
    if (!e) return SL_EINTERNAL;
    char head[SL_ERR_MSG_MAX], old[SL_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    memcpy(old, e->msg, sizeof old);
    snprintf(e->msg, sizeof e->msg, "%s: %s", head, old);
    return e->code;
}

void sl_err_clear(sl_err *e)
{
    if (!e) return;
    e->code = SL_OK;
    e->msg[0] = '\0';
}

const char *sl_strerror(int code)
{
    switch (code) {
    case SL_OK:        return "ok";
    case SL_EINVAL:    return "invalid argument";
    case SL_EIO:       return "input/output error";
    case SL_EFORMAT:   return "invalid file format";
    case SL_ENOMEM:    return "out of memory";
    case SL_EUNSUP:    return "unsupported";
    case SL_EDB:       return "run store error";
    case SL_ENUMERIC:  return "numerical failure";
    case SL_EINTERNAL: return "internal error";
    default:           return "unknown error";
    }
}

int sl_exit_status(int code)
{
    switch (code) {
    case SL_OK:      return 0;
    case SL_EINVAL:
    case SL_EIO:
    case SL_EFORMAT:
    case SL_EUNSUP:  return 2;
    default:         return 1;
    }
}
