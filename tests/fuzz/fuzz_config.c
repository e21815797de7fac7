/* fuzz_config: the configuration parsers every binary runs at start — the config file
 * (sy_config_load_text, what sy_config_load_file reads), SWITCHYARD_* environment variables
 * (sy_config_load_env) and -X key=value overrides (sy_config_load), in that order of
 * precedence. The input is "<file text>\0<environment, one NAME=value per line>\0<overrides,
 * one key=value per line>".
 * Invariants: every failure has a message naming where (file line, variable, key); after any
 * outcome every table key still reads (int keys as numbers, durations >= 0); the dump never
 * prints the value of a secret (database.url, basic auth, kafka.*password*) of 8 bytes or more. */
#include "fuzz.h"
#include "sy_config.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet();
    return 0;
}

/* Splits s at '\n' into a NULL-terminated vector of pointers into s (s is modified). */
static char **lines(char *s, int *n)
{
    int cap = 8;
    char **v = malloc(cap * sizeof(*v));
    *n = 0;
    for (char *save = NULL, *l = strtok_r(s, "\n", &save); v && l;
         l = strtok_r(NULL, "\n", &save)) {
        if (*n + 1 >= cap) {
            char **nv = realloc(v, (cap *= 2) * sizeof(*v));
            if (!nv)
                abort();
            v = nv;
        }
        v[(*n)++] = l;
    }
    if (!v)
        abort();
    v[*n] = NULL;
    return v;
}

static void check_conf(const sy_config_t *conf)
{
    size_t n;
    const sy_config_def_t *t = sy_config_table(&n);
    for (size_t i = 0; i < n; i++) {
        FUZZ_ASSERT(sy_config_get(conf, t[i].key), "%s unreadable", t[i].key);
        if (t[i].type == SY_CONF_DURATION)
            FUZZ_ASSERT(sy_config_get_int(conf, t[i].key) >= 0, "%s negative", t[i].key);
        else if (t[i].type == SY_CONF_INT || t[i].type == SY_CONF_BOOL)
            (void)(t[i].type == SY_CONF_INT ? sy_config_get_int(conf, t[i].key)
                                            : sy_config_get_bool(conf, t[i].key));
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        abort();
    sy_config_dump(conf, f);
    fclose(f);
    for (size_t i = 0; i < n; i++) {
        const char *v = sy_config_get(conf, t[i].key);
        if (t[i].secret && strlen(v) >= 8) {
            /* its own line in the dump reads "key = ***" */
            char want[128];
            snprintf(want, sizeof(want), "\n%s = ", t[i].key);
            const char *line = strstr(buf, want);
            if (!strncmp(buf, want + 1, strlen(want + 1)))
                line = buf;
            else if (line)
                line++;
            FUZZ_ASSERT(line && !strncmp(line + strlen(want) - 1, "***\n", 4), "secret %s printed",
                        t[i].key);
        }
    }
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sy_err_t err = SY_ERR_INIT;
    char *file;
    const uint8_t *rest, *rest2;
    size_t rest_len, rest2_len;
    fuzz_split(data, size, "", 1, &file, &rest, &rest_len);
    char *env_text, *over_text;
    fuzz_split(rest, rest_len, "", 1, &env_text, &rest2, &rest2_len);
    over_text = fuzz_cstr(rest2, rest2_len);

    sy_config_t *conf = sy_config_new();
    if (!conf)
        abort();
    /* the file part as bytes (NULs after the first are impossible here: it was split there) */
    sy_err_code_t rc =
        sy_config_load_text(conf, (const char *)data, strlen(file), "fuzz.conf", &err);
    FUZZ_ASSERT(rc == SY_OK || strstr(err.msg, "fuzz.conf:"), "file error without a place: %s",
                err.msg);
    check_conf(conf);

    int n_env, n_over;
    char **envp = lines(env_text, &n_env);
    /* SWITCHYARD_CONFIG names a file sy_config_load would read: no I/O here */
    for (int i = 0; i < n_env; i++)
        if (!strncmp(envp[i], "SWITCHYARD_CONFIG=", 18))
            envp[i] = (char *)"SWITCHYARD_CONFIG=";
    char **over = lines(over_text, &n_over);
    rc = sy_config_load_env(conf, envp, &err);
    FUZZ_ASSERT(rc == SY_OK || err.msg[0], "env error without a message");
    check_conf(conf);
    rc = sy_config_load(conf, NULL, envp, over, n_over, &err);
    FUZZ_ASSERT(rc == SY_OK || err.msg[0], "load error without a message");
    check_conf(conf);

    char *dur = fuzz_cstr(data, size < 32 ? size : 32);
    long long ms = sy_config_parse_duration_ms(dur);
    FUZZ_ASSERT(ms >= -1, "duration %lld", ms);
    free(dur);

    free(envp);
    free(over);
    sy_config_destroy(conf);
    free(over_text);
    free(env_text);
    free(file);
    return 0;
}
