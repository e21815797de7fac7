/* sy_app: what every binary's main does first — global options, config precedence, logging. */
#include "sy_app.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sy_log.h"

extern char **environ;

int sy_app_is_global_option(const char *a)
{
    if (!strcmp(a, "-c") || !strcmp(a, "--config") || !strcmp(a, "-X") || !strcmp(a, "--set"))
        return 1;
    if (!strcmp(a, "-v") || !strcmp(a, "--verbose") || !strcmp(a, "-q") || !strcmp(a, "--quiet"))
        return 2;
    return 0;
}

int sy_app_init(int argc, char **argv, sy_config_t **conf_out, int *next)
{
    const char *config_path = NULL;
    char **overrides = calloc((size_t)argc + 1, sizeof(char *));
    int n_overrides = 0, i = 1, rc = 2;
    sy_config_t *conf = NULL;
    sy_err_t err = SY_ERR_INIT;
    if (!overrides)
        goto out;
    for (; i < argc; i++) {
        const char *a = argv[i];
        int kind = sy_app_is_global_option(a);
        if (!kind)
            break;
        if (kind == 1 && i + 1 >= argc) {
            fprintf(stderr, "%s: option %s needs a value\n", argv[0], a);
            goto out;
        }
        if (!strcmp(a, "-c") || !strcmp(a, "--config"))
            config_path = argv[++i];
        else if (!strcmp(a, "-X") || !strcmp(a, "--set"))
            overrides[n_overrides++] = argv[++i];
        else if (!strcmp(a, "-v") || !strcmp(a, "--verbose"))
            overrides[n_overrides++] = "log.level=debug";
        else
            overrides[n_overrides++] = "log.level=warn";
    }
    conf = sy_config_new();
    if (!conf) {
        fprintf(stderr, "%s: out of memory\n", argv[0]);
        goto out;
    }
    if (sy_config_load(conf, config_path, environ, overrides, n_overrides, &err) != SY_OK) {
        fprintf(stderr, "%s: %s\n", argv[0], err.msg);
        goto out;
    }
    sy_log_set_level((sy_log_level_t)sy_log_level_parse(sy_config_get(conf, "log.level")));
    sy_log_set_format((sy_log_format_t)sy_log_format_parse(sy_config_get(conf, "log.format")));
    *conf_out = conf;
    conf = NULL; /* now owned by the caller */
    *next = i;
    rc = 0;
out:
    sy_config_destroy(conf);
    free(overrides);
    return rc;
}
