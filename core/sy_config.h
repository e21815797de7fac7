/* sy_config: one declarative table of settings; file < environment < command line. */
#ifndef SY_CONFIG_H
#define SY_CONFIG_H

#include <stdbool.h>
#include <stdio.h>

#include "sy_err.h"

typedef enum sy_config_type {
    SY_CONF_STRING,
    SY_CONF_INT,
    SY_CONF_BOOL,
    SY_CONF_DURATION, /* "500ms", "30s", "5m", "2h", "1d" or plain milliseconds; read as ms */
} sy_config_type_t;

typedef struct sy_config_def {
    const char *key;
    sy_config_type_t type;
    const char *default_value; /* as text, parsed like any other value */
    bool secret;               /* never printed by sy_config_dump */
    const char *description;
} sy_config_def_t;

typedef struct sy_config sy_config_t;

/* A config holding every default. Returns NULL only on allocation failure. */
sy_config_t *sy_config_new(void);
void sy_config_destroy(sy_config_t *conf);

/* Sets one key. Keys are the table's, or "kafka.<librdkafka property>" (passed through as is).
 * Unknown keys and values that do not parse as the key's type fail with SY_ERR_CONFIG and a
 * message naming the key. */
sy_err_code_t sy_config_set(sy_config_t *conf, const char *key, const char *value, sy_err_t *err);

/* Reads "key = value" lines ('#' starts a comment; blank lines ignored) from the file at path
 * (at most 1 MiB), through sy_config_load_text. */
sy_err_code_t sy_config_load_file(sy_config_t *conf, const char *path, sy_err_t *err);

/* The parser of sy_config_load_file, on text in memory (len bytes, need not be NUL-terminated;
 * no I/O): one "key = value" per line, '\n' or "\r\n" endings, key and value trimmed, a line
 * whose first non-blank character is '#' ignored, lines of any length. origin names the text in
 * error messages ("config file <origin>:<line>: ..."). A line without '=', a NUL byte, or a key
 * that sy_config_set refuses fails with SY_ERR_CONFIG naming the line; the lines before it
 * stay applied. */
sy_err_code_t sy_config_load_text(sy_config_t *conf, const char *text, size_t len,
                                  const char *origin, sy_err_t *err);

/* Applies SWITCHYARD_<KEY> variables from envp (NULL-terminated "NAME=value" strings):
 * the key upper-cased with '.' and '-' as '_' (SWITCHYARD_BOOTSTRAP_SERVERS), and
 * SWITCHYARD_KAFKA_<PROP> → kafka.<prop> with '_' as '.'. SWITCHYARD_CONFIG is the file
 * path, not a key. An unknown SWITCHYARD_ variable is an error naming it. */
sy_err_code_t sy_config_load_env(sy_config_t *conf, char **envp, sy_err_t *err);

/* The usual precedence in one call: the file named by config_path (or by SWITCHYARD_CONFIG when
 * config_path is NULL; none if neither), then the environment, then "key=value" overrides. */
sy_err_code_t sy_config_load(sy_config_t *conf, const char *config_path, char **envp,
                             char *const *overrides, int n_overrides, sy_err_t *err);

/* Getters for table keys. The string is owned by conf and lives until the key is set again or
 * conf is destroyed. Asking for a key that is not in the table is a programming error: it
 * aborts. */
const char *sy_config_get(const sy_config_t *conf, const char *key);
long long sy_config_get_int(const sy_config_t *conf, const char *key);
bool sy_config_get_bool(const sy_config_t *conf, const char *key);

/* Calls cb for every kafka.* entry with the "kafka." prefix removed; stops at the first
 * non-zero return and returns it. */
int sy_config_kafka_foreach(const sy_config_t *conf,
                            int (*cb)(const char *prop, const char *value, void *opaque),
                            void *opaque);

/* Writes every key and its current value, secrets (and kafka.*password/secret) as "***". */
void sy_config_dump(const sy_config_t *conf, FILE *out);

/* The table, for documentation and tests. */
const sy_config_def_t *sy_config_table(size_t *n);

/* Parses a duration as above into milliseconds; -1 if it does not parse or is negative. */
long long sy_config_parse_duration_ms(const char *s);

#endif
