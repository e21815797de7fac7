/* sy_log: the one logging module — level-gated, text or JSON lines, secrets redacted. */
#ifndef SY_LOG_H
#define SY_LOG_H

#include <librdkafka/rdkafka.h>

typedef enum sy_log_level {
    SY_LOG_ERROR = 0,
    SY_LOG_WARN = 1,
    SY_LOG_INFO = 2,
    SY_LOG_DEBUG = 3,
} sy_log_level_t;

typedef enum sy_log_format { SY_LOG_TEXT = 0, SY_LOG_JSON = 1 } sy_log_format_t;

/* The current threshold; read by the macros so a disabled level costs one comparison. */
extern volatile sy_log_level_t sy_log_threshold;

void sy_log_set_level(sy_log_level_t level);
void sy_log_set_format(sy_log_format_t format);
/* Parses "error|warn|info|debug" / "text|json"; returns -1 if not recognised. */
int sy_log_level_parse(const char *s);
int sy_log_format_parse(const char *s);

/* Writes one line to stderr. Values of keys that look like secrets (password, secret, token,
 * Authorization, ... see sy_log_redact) are replaced by "***" before printing. Thread-safe. */
void sy_log_write(sy_log_level_t level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define sy_log(level, component, ...)                                                              \
    do {                                                                                           \
        if ((level) <= sy_log_threshold)                                                           \
            sy_log_write((level), (component), __VA_ARGS__);                                       \
    } while (0)
#define sy_error(component, ...) sy_log(SY_LOG_ERROR, component, __VA_ARGS__)
#define sy_warn(component, ...)  sy_log(SY_LOG_WARN, component, __VA_ARGS__)
#define sy_info(component, ...)  sy_log(SY_LOG_INFO, component, __VA_ARGS__)
#define sy_debug(component, ...) sy_log(SY_LOG_DEBUG, component, __VA_ARGS__)

/* Redacts secrets in place in a NUL-terminated string (same rules as sy_log_write): the value
 * after a key containing password, passwd, secret, token, authorization, credential,
 * access_key/accesskey or sasl.username (key=value, key: value, quoted values whole), and the
 * password of a URL's userinfo (scheme://user:pass@host). The string never gets longer. */
void sy_log_redact(char *s);

/* librdkafka log_cb: routes the client's logs through this module. */
void sy_log_rdkafka_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf);

#endif
