/* sy_err: error objects shared by every module. */
#include "sy_err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

sy_err_code_t sy_err_set(sy_err_t *err, sy_err_code_t code, bool retriable, const char *fmt, ...)
{
    if (!err)
        return code;
    err->code = code;
    err->retriable = retriable;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    sy_utf8_scrub(err->msg);
    return code;
}

void sy_err_prefix(sy_err_t *err, const char *fmt, ...)
{
    if (!err)
        return;
    char prefix[256], old[sizeof(err->msg)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof(old));
    int n = snprintf(err->msg, sizeof(err->msg), "%.255s: ", prefix);
    snprintf(err->msg + n, sizeof(err->msg) - (size_t)n, "%.*s",
             (int)(sizeof(err->msg) - (size_t)n - 1), old);
    sy_utf8_scrub(err->msg);
}

/* The length a UTF-8 lead byte announces (1-4); 0 for a byte that cannot start a character. */
static size_t utf8_need(unsigned char c)
{
    return c < 0x80                 ? 1
           : c >= 0xC2 && c <= 0xDF ? 2
           : c >= 0xE0 && c <= 0xEF ? 3
           : c >= 0xF0 && c <= 0xF4 ? 4
                                    : 0;
}

size_t sy_utf8_char_len(const void *str, size_t avail)
{
    const unsigned char *s = str;
    size_t need = avail ? utf8_need(s[0]) : 0;
    if (!need || need > avail)
        return 0;
    for (size_t k = 1; k < need; k++)
        if ((s[k] & 0xC0) != 0x80)
            return 0;
    if ((s[0] == 0xE0 && s[1] < 0xA0) || (s[0] == 0xED && s[1] > 0x9F) ||
        (s[0] == 0xF0 && s[1] < 0x90) || (s[0] == 0xF4 && s[1] > 0x8F))
        return 0; /* overlong, a surrogate, beyond U+10FFFF */
    return need;
}

size_t sy_utf8_scrub(char *str)
{
    unsigned char *r = (unsigned char *)str, *w = r;
    while (*r) {
        size_t n = sy_utf8_char_len(r, 4); /* stops at the NUL, a non-continuation byte */
        if (n) {
            memmove(w, r, n);
            w += n;
            r += n;
            continue;
        }
        size_t need = utf8_need(*r), k = 1;
        while (k < need && (r[k] & 0xC0) == 0x80)
            k++;
        if (need > 1 && k < need) { /* a character cut short: dropped */
            r += k;
        } else {
            *w++ = '?'; /* not UTF-8: a stray byte, an overlong form, a surrogate, > U+10FFFF */
            r++;
        }
    }
    *w = 0;
    return (size_t)(w - (unsigned char *)str);
}

void sy_err_clear(sy_err_t *err)
{
    if (!err)
        return;
    err->code = SY_OK;
    err->retriable = false;
    err->msg[0] = '\0';
}

const char *sy_err_code_name(sy_err_code_t code)
{
    switch (code) {
    case SY_OK:
        return "ok";
    case SY_ERR_INVALID_ARG:
        return "invalid_argument";
    case SY_ERR_CONFIG:
        return "config";
    case SY_ERR_IO:
        return "io";
    case SY_ERR_NOMEM:
        return "out_of_memory";
    case SY_ERR_TRUNCATED:
        return "truncated";
    case SY_ERR_BAD_MAGIC:
        return "bad_magic";
    case SY_ERR_UNKNOWN_SCHEMA:
        return "unknown_schema";
    case SY_ERR_WRONG_TYPE:
        return "wrong_type";
    case SY_ERR_TOO_LARGE:
        return "too_large";
    case SY_ERR_SCHEMA:
        return "schema";
    case SY_ERR_JSON:
        return "json";
    case SY_ERR_REGISTRY:
        return "registry";
    case SY_ERR_KAFKA:
        return "kafka";
    case SY_ERR_DATABASE:
        return "database";
    case SY_ERR_HTTP:
        return "http";
    case SY_ERR_AWS:
        return "aws";
    case SY_ERR_TIMEOUT:
        return "timeout";
    case SY_ERR_AUTH:
        return "auth";
    case SY_ERR_NOT_FOUND:
        return "not_found";
    case SY_ERR_CONFLICT:
        return "conflict";
    case SY_ERR_INTERNAL:
        return "internal";
    }
    return "unknown";
}
