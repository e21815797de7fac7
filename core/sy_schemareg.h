/* sy_schemareg: a Confluent Schema Registry client (register, look up, fetch by id) over libcurl,
 * with the response parsers exposed so they can be tested on captured bytes without HTTP. */
#ifndef SY_SCHEMAREG_H
#define SY_SCHEMAREG_H

#include <stddef.h>
#include <stdint.h>

#include "sy_err.h"

typedef struct sy_schemareg sy_schemareg_t;

/* One HTTP exchange, as the client sees it. A transport performs `method url` with `body`
 * (NULL for GET; otherwise a JSON document sent as application/vnd.schemaregistry.v1+json) and
 * fills *status and *resp / *resp_len (malloc'd, NUL-terminated, the caller frees it).
 * It returns SY_OK when an HTTP answer arrived (whatever its status), or an error (with err
 * filled) when none did: connection refused, DNS failure, timeout. */
typedef sy_err_code_t (*sy_schemareg_transport_fn)(void *opaque, const char *method,
                                                   const char *url, const char *body, long *status,
                                                   char **resp, size_t *resp_len, sy_err_t *err);

/* A client of the registry at `urls`: one or more base URLs separated by commas
 * ("http://a:8081,http://b:8081"), tried in order — a request moves on to the next URL when
 * one cannot be reached or answers 5xx, and later requests start at the last URL that answered.
 * basic_auth is "user:password" or NULL/""; it is sent as HTTP basic auth and never logged.
 * timeout_ms bounds each HTTP request (connect + transfer), per URL tried.
 * Fails with SY_ERR_CONFIG when urls holds no URL. Destroy with sy_schemareg_destroy. */
sy_schemareg_t *sy_schemareg_new(const char *urls, const char *basic_auth, long timeout_ms,
                                 sy_err_t *err);
void sy_schemareg_destroy(sy_schemareg_t *reg);

/* Replaces the HTTP transport (the default is libcurl): unit tests plug in a fake registry. */
void sy_schemareg_set_transport(sy_schemareg_t *reg, sy_schemareg_transport_fn fn, void *opaque);

/* The calls below are thread-safe (requests are serialized over one reused connection).
 * Errors: SY_ERR_REGISTRY with retriable=true when no URL could be reached or all answered 5xx;
 * otherwise the code the registry's answer maps to (see sy_schemareg_parse_error). */

/* POST /subjects/<subject>/versions: registers schema_json (an Avro schema as JSON text) under
 * subject, or finds it if already registered; sets *id to its global schema id. */
sy_err_code_t sy_schemareg_register(sy_schemareg_t *reg, const char *subject,
                                    const char *schema_json, int32_t *id, sy_err_t *err);

/* POST /subjects/<subject>: the id of schema_json if it is registered under subject; fails with
 * SY_ERR_NOT_FOUND when the subject or the schema is not there. Registers nothing. */
sy_err_code_t sy_schemareg_lookup(sy_schemareg_t *reg, const char *subject, const char *schema_json,
                                  int32_t *id, sy_err_t *err);

/* GET /schemas/ids/<id>: the schema's JSON text in *schema_json (malloc'd, caller frees).
 * SY_ERR_UNKNOWN_SCHEMA when the registry does not know the id, or when the schema is not an
 * Avro schema or uses schema references (see sy_schemareg_get_schema_refs). */
sy_err_code_t sy_schemareg_get_schema(sy_schemareg_t *reg, int32_t id, char **schema_json,
                                      sy_err_t *err);

/* At most this many schema references per schema, and per schema with all of theirs. */
#define SY_SCHEMAREG_MAX_REFS 64

/* As sy_schemareg_get_schema, for a schema that may use schema references (Apicurio's
 * serializers register a nested record as one): also fetches every schema it references,
 * directly or through another (GET /subjects/<subject>/versions/<version>, each once), into
 * (*ref_schemas)[*n_ref_schemas] (malloc'd texts in a malloc'd array; the caller frees both).
 * SY_ERR_UNKNOWN_SCHEMA when a reference is missing or there are more than
 * SY_SCHEMAREG_MAX_REFS. */
sy_err_code_t sy_schemareg_get_schema_refs(sy_schemareg_t *reg, int32_t id, char **schema_json,
                                           char ***ref_schemas, size_t *n_ref_schemas,
                                           sy_err_t *err);

/* ---- Pure parsers and builders (no I/O), the shapes Confluent and Karapace use ---- */

/* The body of a register / lookup request: {"schema": "<schema_json as a JSON string>"}.
 * malloc'd; NULL only when out of memory. */
char *sy_schemareg_request_body(const char *schema_json);

/* A 200 answer carrying an id: {"id": 42} (register) or {"subject":..,"version":..,"id":42,
 * "schema":..} (lookup). SY_ERR_REGISTRY when the body is not JSON or has no valid id. */
sy_err_code_t sy_schemareg_parse_id(const char *body, size_t len, int32_t *id, sy_err_t *err);

/* A 200 answer of GET /schemas/ids/<id>: {"schema": "..."} with optional "schemaType"
 * (absent or "AVRO" for Avro) and "references". *schema_json is malloc'd (caller frees).
 * SY_ERR_REGISTRY for garbage, SY_ERR_UNKNOWN_SCHEMA for a non-Avro schema or references. */
sy_err_code_t sy_schemareg_parse_schema(const char *body, size_t len, char **schema_json,
                                        sy_err_t *err);

/* A schema reference: the named type `name` is the schema of `subject` version `version`. */
typedef struct sy_schemareg_ref {
    char *name, *subject;
    int version;
} sy_schemareg_ref_t;

/* As sy_schemareg_parse_schema, also for an answer (of GET /schemas/ids/<id> or
 * /subjects/<s>/versions/<v>) with "references": they are returned in (*refs)[*n_refs] (free
 * with sy_schemareg_refs_free; NULL and 0 when there are none). SY_ERR_REGISTRY for a malformed
 * reference, SY_ERR_UNKNOWN_SCHEMA for more than SY_SCHEMAREG_MAX_REFS. */
sy_err_code_t sy_schemareg_parse_schema_refs(const char *body, size_t len, char **schema_json,
                                             sy_schemareg_ref_t **refs, size_t *n_refs,
                                             sy_err_t *err);
void sy_schemareg_refs_free(sy_schemareg_ref_t *refs, size_t n);

/* Turns a non-2xx answer ({"error_code": 40403, "message": "Schema 7 not found"} or any body)
 * into an error whose message starts with `what` (e.g. "GET /schemas/ids/7") and quotes the
 * registry's message. Codes: 40401/40402/40403 (and other 404s) → SY_ERR_NOT_FOUND;
 * 409 (incompatible) → SY_ERR_CONFLICT; 422xx (invalid schema) → SY_ERR_SCHEMA;
 * 401/403 → SY_ERR_REGISTRY (not retriable: check schema.registry.basic.auth);
 * 5xx and 429 → SY_ERR_REGISTRY, retriable; anything else → SY_ERR_REGISTRY. Returns the code. */
sy_err_code_t sy_schemareg_parse_error(long status, const char *body, size_t len, const char *what,
                                       sy_err_t *err);

/* Copies url into out (size bytes) with any "user:password@" removed, for log messages. */
void sy_schemareg_redact_url(const char *url, char *out, size_t size);

#endif
