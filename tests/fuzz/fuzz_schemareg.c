/* fuzz_schemareg: the Schema Registry client's answer parsers — what comes back over HTTP from
 * a registry (Confluent, Karapace, Apicurio), a proxy in front of one, or something that is not
 * a registry at all. The input is one answer body; it goes through every parser the client runs
 * on an answer: sy_schemareg_parse_id (register, lookup), sy_schemareg_parse_schema and
 * sy_schemareg_parse_schema_refs (GET /schemas/ids/N, /subjects/S/versions/V) and
 * sy_schemareg_parse_error under the statuses the client meets. Then the whole client path: a
 * registry whose transport answers with the input (as 200, then as 404 and 500) for register,
 * lookup, get_schema and get_schema_refs (every reference answered with the input again), and
 * sy_schemareg_redact_url of the input as a URL.
 * Invariants: outputs are set exactly when the call succeeds; ids are 0..2^31-1; every error
 * has a message and never the URL's password; a redacted URL is the URL with what came between
 * "://" and '@' replaced by "***". */
#include <jansson.h>

#include "fuzz.h"
#include "sy_schemareg.h"

typedef struct answer {
    const uint8_t *data;
    size_t size;
    long status;
} answer_t;

static sy_err_code_t transport(void *opaque, const char *method, const char *url, const char *body,
                               long *status, char **resp, size_t *resp_len, sy_err_t *err)
{
    const answer_t *a = opaque;
    *status = a->status;
    *resp = malloc(a->size + 1);
    if (!*resp)
        abort();
    memcpy(*resp, a->data, a->size);
    (*resp)[a->size] = '\0';
    *resp_len = a->size;
    return SY_OK;
}

static sy_schemareg_t *reg;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    sy_err_t err = SY_ERR_INIT;
    fuzz_quiet();
    /* two URLs (the client moves on after a 5xx), credentials that must never show in errors */
    if (!(reg = sy_schemareg_new("http://u:pw@a.invalid:8081/,http://b.invalid", "user:secret",
                                 1000, &err)))
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body = (const char *)data;
    sy_err_t err = SY_ERR_INIT;
    int32_t id = -7;
    if (sy_schemareg_parse_id(body, size, &id, &err) == SY_OK)
        FUZZ_ASSERT(id >= 0, "parse_id gave %d", (int)id);
    else
        FUZZ_ASSERT(id == -7 && err.msg[0], "parse_id failed but changed the id or said nothing");

    char *schema = (char *)"untouched";
    sy_err_code_t rc = sy_schemareg_parse_schema(body, size, &schema, &err);
    FUZZ_ASSERT((rc == SY_OK) == (schema != NULL), "parse_schema: rc %d, schema %p", rc,
                (void *)schema);
    free(schema);
    sy_schemareg_ref_t *refs = NULL;
    size_t n_refs = 7;
    rc = sy_schemareg_parse_schema_refs(body, size, &schema, &refs, &n_refs, &err);
    FUZZ_ASSERT((rc == SY_OK) == (schema != NULL) && (refs != NULL) == (n_refs > 0) &&
                    n_refs <= SY_SCHEMAREG_MAX_REFS,
                "parse_schema_refs: rc %d, schema %p, %zu refs", rc, (void *)schema, n_refs);
    for (size_t i = 0; i < n_refs; i++)
        FUZZ_ASSERT(refs[i].name[0] && refs[i].subject[0] && refs[i].version >= 1,
                    "reference %zu kept empty or invalid", i);
    sy_schemareg_refs_free(refs, n_refs);
    free(schema);

    static const long statuses[] = {400, 401, 403, 404, 408, 409, 415, 422, 429, 500, 503, 0, 999};
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        sy_err_t e = SY_ERR_INIT;
        rc = sy_schemareg_parse_error(statuses[i], body, size, "GET /schemas/ids/7", &e);
        FUZZ_ASSERT(rc != SY_OK && rc == e.code && !strncmp(e.msg, "GET /schemas/ids/7", 18),
                    "parse_error(%ld): rc %d, \"%s\"", statuses[i], rc, e.msg);
    }

    /* the client itself, answered with the input (one client for the whole run: making a
     * curl handle per input would be most of the work) */
    static const long client_statuses[] = {200, 404, 500};
    for (size_t i = 0; i < sizeof(client_statuses) / sizeof(client_statuses[0]); i++) {
        answer_t a = {data, size, client_statuses[i]};
        sy_schemareg_set_transport(reg, transport, &a);
        id = -7;
        if (sy_schemareg_register(reg, "t.requests-value", "\"string\"", &id, &err) == SY_OK)
            FUZZ_ASSERT(a.status == 200 && id >= 0, "register: status %ld, id %d", a.status,
                        (int)id);
        id = -7;
        if (sy_schemareg_lookup(reg, "t.requests-value", "\"string\"", &id, &err) == SY_OK)
            FUZZ_ASSERT(a.status == 200 && id >= 0, "lookup: status %ld, id %d", a.status, (int)id);
        schema = NULL;
        rc = sy_schemareg_get_schema(reg, 7, &schema, &err);
        FUZZ_ASSERT((rc == SY_OK) == (schema != NULL), "get_schema: rc %d", rc);
        /* (the answer is quoted in the message: only an input without it proves a leak) */
        FUZZ_ASSERT(rc == SY_OK || !strstr(err.msg, "u:pw@") || memmem(data, size, "u:pw@", 5),
                    "password in \"%s\"", err.msg);
        free(schema);
        char **texts = NULL;
        size_t n_texts = 0;
        rc = sy_schemareg_get_schema_refs(reg, 7, &schema, &texts, &n_texts, &err);
        FUZZ_ASSERT((rc == SY_OK) == (schema != NULL) && (texts != NULL) == (n_texts > 0) &&
                        n_texts <= SY_SCHEMAREG_MAX_REFS,
                    "get_schema_refs: rc %d, %zu referenced schemas", rc, n_texts);
        FUZZ_ASSERT(rc == SY_OK || !strstr(err.msg, "u:pw@") || memmem(data, size, "u:pw@", 5),
                    "password in \"%s\"", err.msg);
        for (size_t i = 0; i < n_texts; i++)
            free(texts[i]);
        free(texts);
        free(schema);
    }
    sy_schemareg_set_transport(reg, NULL, NULL);

    char *url = fuzz_cstr(data, size);
    char shown[512];
    sy_schemareg_redact_url(url, shown, sizeof(shown));
    const char *host = strstr(url, "://");
    host = host ? host + 3 : url;
    const char *at = strchr(host, '@'), *slash = strchr(host, '/');
    if (at && (!slash || at < slash)) { /* userinfo: replaced by "***" */
        size_t keep = (size_t)(host - url);
        /* (a prefix that leaves no room for all of "***@" in shown is cut, which is fine) */
        FUZZ_ASSERT(keep + 4 >= sizeof(shown) ||
                        (!strncmp(shown, url, keep) && !strncmp(shown + keep, "***@", 4)),
                    "\"%s\" redacted as \"%s\"", url, shown);
    } else {
        FUZZ_ASSERT(!strncmp(shown, url, sizeof(shown) - 1), "\"%s\" changed to \"%s\"", url,
                    shown);
    }
    free(url);
    return 0;
}
