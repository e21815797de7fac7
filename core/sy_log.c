/* sy_log: the one logging module — level-gated, text or JSON lines, secrets redacted. */
#include "sy_log.h"

#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

volatile sy_log_level_t sy_log_threshold = SY_LOG_INFO;
static sy_log_format_t log_format = SY_LOG_TEXT;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *level_names[] = {"error", "warn", "info", "debug"};

void sy_log_set_level(sy_log_level_t level)
{
    sy_log_threshold = level;
}

void sy_log_set_format(sy_log_format_t format)
{
    log_format = format;
}

int sy_log_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (!strcasecmp(s, level_names[i]))
            return i;
    if (!strcasecmp(s, "warning"))
        return SY_LOG_WARN;
    return -1;
}

int sy_log_format_parse(const char *s)
{
    if (!strcasecmp(s, "text"))
        return SY_LOG_TEXT;
    if (!strcasecmp(s, "json"))
        return SY_LOG_JSON;
    return -1;
}

/* Words that mark the value after them as secret: key=value, key: value, "key": "value". An
 * unquoted value ends at the next space, comma, quote, '&', ';' or newline; a value in single or
 * double quotes (libpq's password='a b', JSON) at its closing quote, backslash escapes
 * included. */
static const char *secret_markers[] = {"password",      "passwd",     "secret",     "token",
                                       "authorization", "credential", "access_key", "accesskey",
                                       "sasl.username", NULL};

/* Replaces [from, to) by "***", or by as many '*' as it had characters when fewer than three:
 * the string never grows, so a buffer filled to its end stays in bounds. Returns the end of the
 * stars. */
static char *mask(char *from, char *to)
{
    size_t n = (size_t)(to - from), stars = n < 3 ? n : 3;
    memset(from, '*', stars);
    memmove(from + stars, to, strlen(to) + 1);
    return from + stars;
}

void sy_log_redact(char *s)
{
    for (const char **m = secret_markers; *m; m++) {
        size_t mlen = strlen(*m);
        for (char *p = s; *p; p++) {
            if (strncasecmp(p, *m, mlen) != 0)
                continue;
            char *q = p + mlen;
            /* skip the rest of the key (e.g. "password_file", "token\":") up to a separator */
            while (*q && (isalnum((unsigned char)*q) || *q == '_' || *q == '.' || *q == '-'))
                q++;
            while (*q == '"' || *q == '\'' || *q == ' ')
                q++;
            if (*q != '=' && *q != ':')
                continue;
            q++;
            while (*q == ' ')
                q++;
            char quote = 0;
            if (*q == '"' || *q == '\'') {
                quote = *q;
                q++;
            }
            /* Basic/Bearer schemes: keep the scheme word, hide what follows */
            if (!strncasecmp(q, "Basic ", 6) || !strncasecmp(q, "Bearer ", 7))
                q = strchr(q, ' ') + 1;
            char *end = q;
            if (quote) {
                while (*end && *end != quote)
                    end += end[0] == '\\' && end[1] ? 2 : 1;
            } else {
                while (*end && *end != ' ' && *end != ',' && *end != '"' && *end != '\'' &&
                       *end != '&' && *end != '\n' && *end != ';')
                    end++;
            }
            if (end == q)
                continue;
            p = mask(q, end) - 1;
        }
    }
    /* URLs with userinfo: scheme://user:pass@host → scheme://user:***@host */
    for (char *p = strstr(s, "://"); p; p = strstr(p + 3, "://")) {
        char *at = strchr(p + 3, '@');
        char *slash = strchr(p + 3, '/');
        char *colon = strchr(p + 3, ':');
        if (!at || (slash && slash < at) || !colon || colon > at)
            continue;
        mask(colon + 1, at);
    }
}

static void json_escape(FILE *f, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", f);
        else if (c == '\t')
            fputs("\\t", f);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
}

void sy_log_write(sy_log_level_t level, const char *component, const char *fmt, ...)
{
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    sy_log_redact(msg);

    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char ts[40];
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);

    pthread_mutex_lock(&log_lock);
    if (log_format == SY_LOG_JSON) {
        fprintf(stderr, "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"component\":\"", ts,
                (long)tv.tv_usec / 1000, level_names[level]);
        json_escape(stderr, component);
        fputs("\",\"msg\":\"", stderr);
        json_escape(stderr, msg);
        fputs("\"}\n", stderr);
    } else {
        fprintf(stderr, "%s.%03ldZ %-5s [%s] %s\n", ts, (long)tv.tv_usec / 1000, level_names[level],
                component, msg);
    }
    fflush(stderr);
    pthread_mutex_unlock(&log_lock);
}

void sy_log_rdkafka_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    /* syslog levels: 0-3 error, 4 warning, 5-6 info, 7 debug */
    sy_log_level_t l = level <= 3   ? SY_LOG_ERROR
                       : level == 4 ? SY_LOG_WARN
                       : level <= 6 ? SY_LOG_INFO
                                    : SY_LOG_DEBUG;
    sy_log(l, "rdkafka", "%s: %s: %s", rk ? rd_kafka_name(rk) : "-", fac, buf);
}
