/* sy_codec: Avro encoding and decoding of Switchyard's record types — Confluent Schema Registry
 * framing or Avro single-object encoding, writer→reader schema resolution with defaults, and the
 * plain JSON form people read and write. */
#ifndef SY_CODEC_H
#define SY_CODEC_H

#include <avro.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sy_config.h"
#include "sy_err.h"
#include "sy_schemareg.h"

/* The record types on the bus. Each has one current schema (the newest schemas/<T>.v<N>.avsc);
 * older versions are still known as writer schemas. */
typedef enum sy_type {
    SY_TYPE_JOB_REQUEST,
    SY_TYPE_ROUTED_JOB,
    SY_TYPE_JOB_STATUS,
    SY_TYPE_JOB_LOG,
    SY_TYPE_JOB_CONTROL,
    SY_TYPE_COUNT
} sy_type_t;

/* "JobRequest", ...; "?" for an out-of-range value. Static strings. */
const char *sy_type_name(sy_type_t type);
/* "JobRequest" or "io.switchyard.JobRequest", case-insensitive; -1 if unknown. */
int sy_type_parse(const char *name);

typedef struct sy_codec sy_codec_t;

/* ---- Lifetime ---- */

/* A codec configured from conf:
 *   schema.registry.url            comma-separated registry URLs; empty = no registry, encode
 *                                  with single-object framing
 *   schema.registry.basic.auth     user:password (never logged)
 *   schema.registry.timeout.ms     per HTTP request
 *   schema.registry.auto.register  register our schema under <topic>-value on first encode
 *                                  (else only look it up and fail if it is not there)
 *   codec.max.string.bytes         longest string/bytes accepted (decode and from_json)
 *   codec.max.items                most array items / map entries accepted (idem)
 * Loads every embedded schema (schemas/ *.avsc), expanding references to types defined in other
 * files so each schema is self-contained. No network I/O happens here.
 * The codec is thread-safe: encode, decode, value_new and the JSON calls may run concurrently.
 * Returns NULL and fills err on failure (SY_ERR_SCHEMA for a bad embedded schema, SY_ERR_CONFIG).
 */
sy_codec_t *sy_codec_new(const sy_config_t *conf, sy_err_t *err);

/* As sy_codec_new, but talks to the registry through reg instead of one made from
 * schema.registry.* (reg NULL = no registry). Takes ownership of reg, also on failure.
 * Unit tests use this with a fake transport (sy_schemareg_set_transport). */
sy_codec_t *sy_codec_new_with_registry(const sy_config_t *conf, sy_schemareg_t *reg, sy_err_t *err);

/* NULL is a no-op. Values made by the codec may outlive it (they hold their own references). */
void sy_codec_destroy(sy_codec_t *codec);

/* True when records are framed for (and resolved through) a Schema Registry. */
bool sy_codec_has_registry(const sy_codec_t *codec);

/* ---- Schemas ---- */

/* The current schema of type as self-contained JSON text, compact (what is registered).
 * Owned by the codec; valid until it is destroyed or the type's schema is replaced. */
const char *sy_codec_schema_json(const sy_codec_t *codec, sy_type_t type);
/* Its Parsing Canonical Form and CRC-64-AVRO fingerprint (the single-object header's). */
const char *sy_codec_schema_canonical(const sy_codec_t *codec, sy_type_t type);
uint64_t sy_codec_schema_fingerprint(const sy_codec_t *codec, sy_type_t type);

/* Makes json (an Avro record schema; references to our other types are expanded) the current
 * schema of its type — the type is found from the record's name — for writing and reading.
 * The previous schema stays known as a writer schema. For tests and migrations: call it before
 * the codec is shared between threads, and make values with sy_codec_value_new afterwards.
 * SY_ERR_SCHEMA when json does not parse or a default does not fit its field;
 * SY_ERR_WRONG_TYPE when the record is not one of our types. */
sy_err_code_t sy_codec_set_schema(sy_codec_t *codec, const char *json, sy_type_t *type,
                                  sy_err_t *err);

/* Adds json as a known writer schema, so single-object records written with it (an older or
 * newer version of one of our types) decode. Sets *type (may be NULL) to its type, or -1 when
 * the record is not one of ours (it is still added; decoding it then fails with WRONG_TYPE). */
sy_err_code_t sy_codec_add_schema(sy_codec_t *codec, const char *json, int *type, sy_err_t *err);

/* Expands references to types defined in the embedded schema files (e.g. RoutedJob's
 * "io.switchyard.JobRequest") so json becomes self-contained. Returns malloc'd JSON text,
 * pretty-printed when pretty; NULL with err filled (SY_ERR_SCHEMA) when json is not a schema. */
char *sy_codec_expand_schema(const char *json, bool pretty, sy_err_t *err);

/* The Parsing Canonical Form of a self-contained schema (malloc'd), NULL with err on error. */
char *sy_codec_canonical_form(const char *json, sy_err_t *err);
/* CRC-64-AVRO (Rabin) fingerprint of len bytes, as used by single-object encoding. */
uint64_t sy_codec_crc64_avro(const void *data, size_t len);

/* ---- Values ---- */

/* A fresh value of type's current schema, every field with a default set to it (also inside
 * nested records), others zero/empty. The caller owns it: avro_value_decref(out).
 * Values are not thread-safe themselves: one value, one thread at a time. */
sy_err_code_t sy_codec_value_new(sy_codec_t *codec, sy_type_t type, avro_value_t *out,
                                 sy_err_t *err);

/* ---- Binary ---- */

/* Encodes value (made by sy_codec_value_new for type) into *buf / *len, malloc'd, the caller
 * frees it. With a registry: magic 0x00 + the big-endian schema id of our schema under subject
 * "<topic>-value" (registered or looked up on first use, then cached; topic is required).
 * Without: single-object encoding, 0xC3 0x01 + little-endian CRC-64-AVRO fingerprint of our
 * schema's canonical form (topic may be NULL). A union with no branch selected is written as
 * null when null is its first branch, otherwise it is an error naming the field.
 * Errors: SY_ERR_WRONG_TYPE (value of another schema), SY_ERR_INVALID_ARG (unset union, missing
 * topic), SY_ERR_REGISTRY (retriable when the registry is unreachable), SY_ERR_CONFLICT (the
 * registry rejects our schema as incompatible), SY_ERR_NOT_FOUND (not registered, with
 * auto.register off). */
sy_err_code_t sy_codec_encode(sy_codec_t *codec, sy_type_t type, const char *topic,
                              avro_value_t *value, void **buf, size_t *len, sy_err_t *err);

/* Decodes one framed record (either framing, whatever this codec encodes with) into out, which
 * must have been made by sy_codec_value_new(type); it is overwritten entirely, so one value can
 * be reused for every record in a loop. The writer schema (from the registry by id — fetched
 * once, then cached — or from the fingerprint among known schemas) is resolved into our current
 * schema: fields we do not know are skipped, fields the writer lacks get their defaults, ints
 * promote to longs etc. Errors, each with a message naming what is wrong (and the field path):
 *   SY_ERR_TRUNCATED       the record ends before its header or its data is complete
 *   SY_ERR_BAD_MAGIC       neither 0x00 nor 0xC3 0x01 at the start
 *   SY_ERR_UNKNOWN_SCHEMA  schema id / fingerprint unknown (or a registry-framed record when no
 *                          registry is configured)
 *   SY_ERR_WRONG_TYPE      the writer schema is another record type than type
 *   SY_ERR_TOO_LARGE       a string/bytes/array/map beyond codec.max.string.bytes / max.items
 *   SY_ERR_SCHEMA          the writer schema cannot be resolved into ours (incompatible), or the
 *                          record uses a union branch / enum symbol the reader lacks
 *   SY_ERR_INVALID_ARG     malformed data (bad varint, negative length, union index out of
 *                          range, trailing bytes after the record, a string or map key that is
 *                          not UTF-8 or holds a NUL byte), or out of the wrong type
 *   SY_ERR_REGISTRY        the registry is unreachable (retriable) or answers garbage
 * On error out holds a partial value (still valid to reuse or decref); nothing leaks. */
sy_err_code_t sy_codec_decode(sy_codec_t *codec, sy_type_t type, const void *data, size_t len,
                              avro_value_t *out, sy_err_t *err);

/* As sy_codec_decode; in addition, when the writer schema is exactly type's current schema (same
 * Parsing Canonical Form), *body / *body_len are the record's Avro binary body inside data
 * (what follows the framing), else NULL / 0. Such a body can be spliced unchanged into a record
 * that embeds the type (SY_FIELD_RAW, sy_codec_encode_fields) instead of being encoded again. */
sy_err_code_t sy_codec_decode_body(sy_codec_t *codec, sy_type_t type, const void *data, size_t len,
                                   avro_value_t *out, const void **body, size_t *body_len,
                                   sy_err_t *err);

/* Writing a record without avro-c values (a router's hot path): one sy_field_t per top-level
 * field, in schema order (sy_codec_field_index, sy_codec_field_count), checked against the
 * schema as it is written:
 *   SY_FIELD_NULL    a null field, or the null branch of a union
 *   SY_FIELD_STRING  s/len into a string or bytes field (or branch), or an enum by symbol
 *   SY_FIELD_LONG    l into a long or int field (or branch; an int must fit)
 *   SY_FIELD_RAW     s/len, the Avro binary body of a raw_type record (sy_codec_decode_body),
 *                    into a record field of exactly raw_type's current schema
 * A union takes the first branch the value fits. Strings are written as given (not checked for
 * UTF-8). */
typedef enum sy_field_kind {
    SY_FIELD_NULL,
    SY_FIELD_STRING,
    SY_FIELD_LONG,
    SY_FIELD_RAW
} sy_field_kind_t;
typedef struct sy_field {
    sy_field_kind_t kind;
    const char *s;
    size_t len;
    int64_t l;
    sy_type_t raw_type;
} sy_field_t;

/* The index of type's top-level field name in its current schema, -1 when there is none. */
int sy_codec_field_index(const sy_codec_t *codec, sy_type_t type, const char *name);
/* The number of top-level fields of type's current schema. */
size_t sy_codec_field_count(const sy_codec_t *codec, sy_type_t type);
/* Encodes (and frames, as sy_codec_encode) a type record from fields[n_fields], n_fields being
 * its field count. SY_ERR_INVALID_ARG naming the field when a value does not fit it,
 * SY_ERR_WRONG_TYPE when n_fields is not the record's field count; else as sy_codec_encode. */
sy_err_code_t sy_codec_encode_fields(sy_codec_t *codec, sy_type_t type, const char *topic,
                                     const sy_field_t *fields, size_t n_fields, void **buf,
                                     size_t *len, sy_err_t *err);
/* As sy_codec_encode_fields, written into the caller's dst (cap bytes) when the record fits
 * there: then *buf is dst. A larger record goes into a new buffer as there (*buf != dst; the
 * caller frees it). Nothing is written past dst + cap. */
sy_err_code_t sy_codec_encode_fields_into(sy_codec_t *codec, sy_type_t type, const char *topic,
                                          const sy_field_t *fields, size_t n_fields, void *dst,
                                          size_t cap, void **buf, size_t *len, sy_err_t *err);

/* As sy_codec_decode, for a record of any of our types: the type comes from the writer schema's
 * record name. On success *type is set and *out is a new value (caller decrefs); on failure
 * *out is left untouched (nothing to decref). */
sy_err_code_t sy_codec_decode_any(sy_codec_t *codec, const void *data, size_t len, sy_type_t *type,
                                  avro_value_t *out, sy_err_t *err);

/* What the framing header says, without decoding (for diagnostics and dead-letter headers). */
typedef struct sy_codec_frame {
    bool registry; /* true: Confluent framing, schema_id valid; false: single-object */
    int32_t schema_id;
    uint64_t fingerprint;
    size_t header_len; /* 5 or 10 */
} sy_codec_frame_t;
sy_err_code_t sy_codec_peek(const void *data, size_t len, sy_codec_frame_t *frame, sy_err_t *err);

/* ---- JSON, the plain form ----
 * A record is an object with a member per field; a union value is given bare ("timeout_ms": 60
 * or null) — on input also Avro's wrapped form {"long": 60} is accepted; timestamps are epoch
 * milliseconds (on input also an RFC 3339 string such as "2024-05-01T12:00:00Z"); maps are
 * objects; enums are symbol strings; bytes are a string of the bytes' UTF-8 text, or
 * {"base64": "..."} when they are not valid UTF-8 (both accepted on input). */

/* Fills out (made by sy_codec_value_new(type)) from json. Missing fields take their default;
 * a missing field without one, an unknown member, or a value of the wrong JSON type is an
 * SY_ERR_JSON naming the field path (e.g. "JobRequest.cluster_criteria[1].tags[0]");
 * strings/arrays beyond the codec's limits are SY_ERR_TOO_LARGE. json is borrowed. */
sy_err_code_t sy_codec_from_json(sy_codec_t *codec, sy_type_t type, json_t *json, avro_value_t *out,
                                 sy_err_t *err);

/* The plain JSON form of value (any avro value; the caller owns the result, json_decref).
 * NULL with err filled (SY_ERR_JSON) for what JSON cannot hold: a string that is not UTF-8,
 * a NaN or infinite double, a union with no branch selected whose first branch is not null. */
json_t *sy_codec_to_json(const avro_value_t *value, sy_err_t *err);

#endif
