/* sy_avro: read and write fields of avro-c values by name, with ["null", T] unions handled
 * transparently, so application code never touches union branches or avro-c's string sizes.
 *
 * Conventions, for every function below:
 *  - rec is a record value (usually made by sy_codec_value_new); path names a field, or a field
 *    of a nested record with dots: "request.job_id", "command_criterion.name".
 *  - A nullable field (["null", T]) reads as absent when null (or never set), and writing NULL /
 *    calling sy_avro_set_null selects its null branch; writing a value selects the T branch.
 *    Nested records inside ["null", R] are passed through on reads only when set, and selected
 *    (created) on writes.
 *  - Setters return 0, or an errno value with the reason in avro_strerror():
 *    ENOENT no such field, EINVAL the field has another type (or NULL for a non-nullable field,
 *    or an unknown enum symbol), ENOMEM.
 *  - Returned strings and values are borrowed from rec: valid until that field is written again,
 *    rec is reset, or rec is released. Nothing returned needs freeing.
 *  - avro_value_reset(rec) empties strings, arrays and maps but keeps each union's selected
 *    branch (a nullable string that held "x" then reads as "", not as null): after a reset,
 *    set every nullable field explicitly.
 *  - A value is not thread-safe: one value, one thread at a time. */
#ifndef SY_AVRO_H
#define SY_AVRO_H

#include <avro.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The field's value itself (a union stays a union). 0, ENOENT or EINVAL. */
int sy_avro_field(avro_value_t *rec, const char *path, avro_value_t *out);

/* True when the field is null, a union with no branch selected, or missing. */
bool sy_avro_is_null(avro_value_t *rec, const char *path);
/* Selects the null branch of a nullable field (EINVAL when it is not nullable). */
int sy_avro_set_null(avro_value_t *rec, const char *path);

/* ---- Strings and bytes ---- */

/* The string, or NULL when null, missing or not a string. */
const char *sy_avro_get_string(avro_value_t *rec, const char *path);
/* As above, also giving its length in bytes (strings may hold NUL bytes). */
const char *sy_avro_get_string_len(avro_value_t *rec, const char *path, size_t *len);
/* Sets a string field; s NULL sets null (EINVAL when the field is not nullable). */
int sy_avro_set_string(avro_value_t *rec, const char *path, const char *s);
/* Sets a string field to len bytes of s (need not be NUL-terminated). */
int sy_avro_set_string_len(avro_value_t *rec, const char *path, const char *s, size_t len);

/* A bytes field: true and *data / *len when set (non-null), false otherwise. */
bool sy_avro_get_bytes(avro_value_t *rec, const char *path, const void **data, size_t *len);
/* Sets a bytes field (data NULL with len 0 is the empty value; use set_null for null). */
int sy_avro_set_bytes(avro_value_t *rec, const char *path, const void *data, size_t len);

/* ---- Numbers and booleans (int and long fields are interchangeable when the value fits) ---- */

/* True and *out when the field holds a number; false when null or missing (out untouched). */
bool sy_avro_get_long_opt(avro_value_t *rec, const char *path, int64_t *out);
/* The number, or dflt when null or missing. */
int64_t sy_avro_get_long(avro_value_t *rec, const char *path, int64_t dflt);
/* Sets a long field, or an int field when v fits in 32 bits (EINVAL otherwise). */
int sy_avro_set_long(avro_value_t *rec, const char *path, int64_t v);

bool sy_avro_get_int_opt(avro_value_t *rec, const char *path, int32_t *out);
int32_t sy_avro_get_int(avro_value_t *rec, const char *path, int32_t dflt);
/* Sets an int field, or a long field. */
int sy_avro_set_int(avro_value_t *rec, const char *path, int32_t v);

bool sy_avro_get_bool_opt(avro_value_t *rec, const char *path, bool *out);
int sy_avro_set_bool(avro_value_t *rec, const char *path, bool v);

/* ---- Enums, by symbol name ---- */

/* The symbol ("RUNNING"), or NULL when null or missing. Static for the schema's lifetime. */
const char *sy_avro_get_enum(avro_value_t *rec, const char *path);
/* EINVAL (naming the symbol) when symbol is not one of the enum's. symbol NULL sets null. */
int sy_avro_set_enum(avro_value_t *rec, const char *path, const char *symbol);

/* ---- Nested records ---- */

/* The nested record in *out; ENOENT when missing or null. */
int sy_avro_get_record(avro_value_t *rec, const char *path, avro_value_t *out);
/* The nested record to fill, selecting the record branch of a ["null", R] field. */
int sy_avro_set_record(avro_value_t *rec, const char *path, avro_value_t *out);

/* ---- Arrays (also inside ["null", array]: null reads as empty) ---- */

size_t sy_avro_array_size(avro_value_t *rec, const char *path);
/* Element i of an array of strings, NULL when out of range or not a string. */
const char *sy_avro_array_get_string(avro_value_t *rec, const char *path, size_t i);
/* Element i in *out (for arrays of records); ENOENT when out of range. */
int sy_avro_array_get(avro_value_t *rec, const char *path, size_t i, avro_value_t *out);
int sy_avro_array_append_string(avro_value_t *rec, const char *path, const char *s);
/* Appends an element and gives it in *out to fill. A record element gets no defaults: set its
 * fields (an unset ["null", T] field encodes as null). */
int sy_avro_array_append(avro_value_t *rec, const char *path, avro_value_t *out);
int sy_avro_array_clear(avro_value_t *rec, const char *path);

/* ---- Maps of strings (also inside ["null", map]) ---- */

size_t sy_avro_map_size(avro_value_t *rec, const char *path);
/* The value under key, NULL when absent. */
const char *sy_avro_map_get_string(avro_value_t *rec, const char *path, const char *key);
/* Entry i in insertion order: 0 with *key / *value, ENOENT when out of range. */
int sy_avro_map_entry(avro_value_t *rec, const char *path, size_t i, const char **key,
                      const char **value);
/* Adds or replaces key. */
int sy_avro_map_set_string(avro_value_t *rec, const char *path, const char *key, const char *value);
/* Calls cb for every entry in insertion order; stops at the first non-zero return and returns
 * it (0 when all were visited, or when the map is null or missing). */
int sy_avro_map_foreach(avro_value_t *rec, const char *path,
                        int (*cb)(const char *key, const char *value, void *opaque), void *opaque);
int sy_avro_map_clear(avro_value_t *rec, const char *path);

#endif
