/* sy_avro: field access by name for avro-c values, ["null", T] unions handled transparently. */
#include "sy_avro.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SEGMENT  128
#define STACK_STRING 256

/* Named types used a second time are links in avro-c's schemas. */
static avro_schema_t deref(avro_schema_t s)
{
    while (s && is_avro_link(s))
        s = avro_schema_link_target(s);
    return s;
}

static const char *schema_label(avro_value_t *v)
{
    avro_schema_t s = deref(avro_value_get_schema(v));
    return s ? avro_schema_type_name(s) : "?";
}

static const char *type_word(avro_type_t t)
{
    switch (t) {
    case AVRO_STRING:
        return "string";
    case AVRO_BYTES:
        return "bytes";
    case AVRO_INT32:
        return "int";
    case AVRO_INT64:
        return "long";
    case AVRO_FLOAT:
        return "float";
    case AVRO_DOUBLE:
        return "double";
    case AVRO_BOOLEAN:
        return "boolean";
    case AVRO_NULL:
        return "null";
    case AVRO_RECORD:
        return "record";
    case AVRO_ENUM:
        return "enum";
    case AVRO_FIXED:
        return "fixed";
    case AVRO_MAP:
        return "map";
    case AVRO_ARRAY:
        return "array";
    case AVRO_UNION:
        return "union";
    default:
        return "value";
    }
}

/* The current branch of union u in *out; ENOENT when null or unset. */
static int current_branch(avro_value_t *u, avro_value_t *out)
{
    int disc = -1;
    if (avro_value_get_discriminant(u, &disc) || disc < 0)
        return ENOENT;
    avro_value_t b;
    if (avro_value_get_current_branch(u, &b))
        return ENOENT;
    if (avro_value_get_type(&b) == AVRO_NULL)
        return ENOENT;
    *out = b;
    return 0;
}

/* v itself, or the current branch when v is a union: the concrete, non-null value. */
static int value_get(avro_value_t *v, avro_value_t *out)
{
    if (avro_value_get_type(v) == AVRO_UNION)
        return current_branch(v, out);
    *out = *v;
    return 0;
}

/* The value to write a `want[0..n)` into (first acceptable type wins): v itself when its type
 * is one of them, or the matching branch of union v (selected). *got is the type chosen. */
static int value_target(avro_value_t *v, const avro_type_t *want, size_t n, avro_value_t *out,
                        avro_type_t *got)
{
    avro_type_t t = avro_value_get_type(v);
    if (t == AVRO_UNION) {
        avro_schema_t s = deref(avro_value_get_schema(v));
        size_t nb = avro_schema_union_size(s);
        for (size_t k = 0; k < n; k++) {
            for (size_t i = 0; i < nb; i++) {
                avro_schema_t b = deref(avro_schema_union_branch(s, (int)i));
                if (b && avro_typeof(b) == want[k]) {
                    if (got)
                        *got = want[k];
                    return avro_value_set_branch(v, (int)i, out) ? ENOMEM : 0;
                }
            }
        }
        avro_set_error("the union has no %s branch", type_word(want[0]));
        return EINVAL;
    }
    for (size_t k = 0; k < n; k++) {
        if (t == want[k]) {
            if (got)
                *got = t;
            *out = *v;
            return 0;
        }
    }
    return EINVAL;
}

/* Walks path from rec to the named field's value. create: on the way, select the record branch
 * of nullable records (writers); otherwise a null one ends the walk with ENOENT (readers). */
static int walk(avro_value_t *rec, const char *path, avro_value_t *out, bool create)
{
    avro_value_t cur = *rec;
    const char *seg = path;
    if (!rec || !path) {
        avro_set_error("no record or field path");
        return EINVAL;
    }
    for (;;) {
        const char *dot = strchr(seg, '.');
        size_t n = dot ? (size_t)(dot - seg) : strlen(seg);
        char name[MAX_SEGMENT];
        if (n == 0 || n >= sizeof(name)) {
            avro_set_error("invalid field path \"%s\"", path);
            return EINVAL;
        }
        memcpy(name, seg, n);
        name[n] = '\0';
        if (avro_value_get_type(&cur) == AVRO_UNION) {
            static const avro_type_t rec_type[] = {AVRO_RECORD};
            int rc =
                create ? value_target(&cur, rec_type, 1, &cur, NULL) : current_branch(&cur, &cur);
            if (rc) {
                if (!create)
                    avro_set_error("\"%s\": the record holding \"%s\" is null", path, name);
                return rc;
            }
        }
        if (avro_value_get_type(&cur) != AVRO_RECORD) {
            avro_set_error("\"%s\": cannot look up \"%s\" in a %s", path, name, schema_label(&cur));
            return EINVAL;
        }
        avro_value_t next;
        if (avro_value_get_by_name(&cur, name, &next, NULL) || !next.iface) {
            avro_set_error("no field \"%s\" in record %s", name, schema_label(&cur));
            return ENOENT;
        }
        if (!dot) {
            *out = next;
            return 0;
        }
        cur = next;
        seg = dot + 1;
    }
}

/* Reader: the field's concrete non-null value. */
static int get(avro_value_t *rec, const char *path, avro_value_t *out)
{
    avro_value_t f;
    int rc = walk(rec, path, &f, false);
    return rc ? rc : value_get(&f, out);
}

/* Writer: the field's value of one of the types in want (union branch selected). */
static int target(avro_value_t *rec, const char *path, const avro_type_t *want, size_t n,
                  avro_value_t *out, avro_type_t *got)
{
    avro_value_t f;
    int rc = walk(rec, path, &f, true);
    if (rc)
        return rc;
    rc = value_target(&f, want, n, out, got);
    if (rc == EINVAL)
        avro_set_error("field \"%s\" is a %s, not a%s %s", path, schema_label(&f),
                       want[0] == AVRO_INT32 || want[0] == AVRO_ENUM || want[0] == AVRO_ARRAY ? "n"
                                                                                              : "",
                       type_word(want[0]));
    return rc;
}

int sy_avro_field(avro_value_t *rec, const char *path, avro_value_t *out)
{
    return walk(rec, path, out, false);
}

bool sy_avro_is_null(avro_value_t *rec, const char *path)
{
    avro_value_t v;
    return get(rec, path, &v) != 0;
}

int sy_avro_set_null(avro_value_t *rec, const char *path)
{
    static const avro_type_t want[] = {AVRO_NULL};
    avro_value_t f, b;
    int rc = walk(rec, path, &f, true);
    if (rc)
        return rc;
    if ((rc = value_target(&f, want, 1, &b, NULL))) {
        avro_set_error("field \"%s\" is not nullable", path);
        return rc;
    }
    return avro_value_set_null(&b) ? ENOMEM : 0;
}

/* ---- Strings and bytes ---- */

const char *sy_avro_get_string_len(avro_value_t *rec, const char *path, size_t *len)
{
    avro_value_t v;
    const char *s = NULL;
    size_t size = 0;
    if (len)
        *len = 0;
    if (get(rec, path, &v) || avro_value_get_type(&v) != AVRO_STRING ||
        avro_value_get_string(&v, &s, &size))
        return NULL;
    if (!s || !size) /* never set, or reset (avro-c keeps the old bytes, size 0): empty */
        return "";
    if (len)
        *len = size ? size - 1 : 0; /* avro-c counts the NUL */
    return s;
}

const char *sy_avro_get_string(avro_value_t *rec, const char *path)
{
    return sy_avro_get_string_len(rec, path, NULL);
}

static int set_string_value(avro_value_t *v, const char *s, size_t len)
{
    static const avro_type_t want[] = {AVRO_STRING};
    avro_value_t t;
    char stackbuf[STACK_STRING], *buf;
    int rc = value_target(v, want, 1, &t, NULL);
    if (rc) {
        avro_set_error("the value is a %s, not a string", schema_label(v));
        return rc;
    }
    /* avro-c copies len+1 bytes and expects the last to be the NUL */
    buf = len < sizeof(stackbuf) ? stackbuf : malloc(len + 1);
    if (!buf)
        return ENOMEM;
    memcpy(buf, s, len);
    buf[len] = '\0';
    rc = avro_value_set_string_len(&t, buf, len + 1) ? ENOMEM : 0;
    if (buf != stackbuf)
        free(buf);
    return rc;
}

int sy_avro_set_string_len(avro_value_t *rec, const char *path, const char *s, size_t len)
{
    avro_value_t f;
    if (!s)
        return sy_avro_set_null(rec, path);
    int rc = walk(rec, path, &f, true);
    if (rc)
        return rc;
    if ((rc = set_string_value(&f, s, len)))
        avro_set_error("field \"%s\" is a %s, not a string", path, schema_label(&f));
    return rc;
}

int sy_avro_set_string(avro_value_t *rec, const char *path, const char *s)
{
    return sy_avro_set_string_len(rec, path, s, s ? strlen(s) : 0);
}

bool sy_avro_get_bytes(avro_value_t *rec, const char *path, const void **data, size_t *len)
{
    avro_value_t v;
    *data = NULL;
    *len = 0;
    if (get(rec, path, &v) || avro_value_get_type(&v) != AVRO_BYTES ||
        avro_value_get_bytes(&v, data, len))
        return false;
    if (!*data)
        *data = "";
    return true;
}

int sy_avro_set_bytes(avro_value_t *rec, const char *path, const void *data, size_t len)
{
    static const avro_type_t want[] = {AVRO_BYTES};
    avro_value_t t;
    int rc = target(rec, path, want, 1, &t, NULL);
    if (rc)
        return rc;
    return avro_value_set_bytes(&t, (void *)(data ? data : ""), data ? len : 0) ? ENOMEM : 0;
}

/* ---- Numbers and booleans ---- */

bool sy_avro_get_long_opt(avro_value_t *rec, const char *path, int64_t *out)
{
    avro_value_t v;
    if (get(rec, path, &v))
        return false;
    if (avro_value_get_type(&v) == AVRO_INT64)
        return avro_value_get_long(&v, out) == 0;
    if (avro_value_get_type(&v) == AVRO_INT32) {
        int32_t x;
        if (avro_value_get_int(&v, &x))
            return false;
        *out = x;
        return true;
    }
    return false;
}

int64_t sy_avro_get_long(avro_value_t *rec, const char *path, int64_t dflt)
{
    int64_t v;
    return sy_avro_get_long_opt(rec, path, &v) ? v : dflt;
}

int sy_avro_set_long(avro_value_t *rec, const char *path, int64_t v)
{
    static const avro_type_t want[] = {AVRO_INT64, AVRO_INT32};
    avro_value_t t;
    avro_type_t got;
    int rc = target(rec, path, want, 2, &t, &got);
    if (rc)
        return rc;
    if (got == AVRO_INT64)
        return avro_value_set_long(&t, v) ? EINVAL : 0;
    if (v < INT32_MIN || v > INT32_MAX) {
        avro_set_error("field \"%s\" is an int; %lld does not fit", path, (long long)v);
        return EINVAL;
    }
    return avro_value_set_int(&t, (int32_t)v) ? EINVAL : 0;
}

bool sy_avro_get_int_opt(avro_value_t *rec, const char *path, int32_t *out)
{
    int64_t v;
    if (!sy_avro_get_long_opt(rec, path, &v) || v < INT32_MIN || v > INT32_MAX)
        return false;
    *out = (int32_t)v;
    return true;
}

int32_t sy_avro_get_int(avro_value_t *rec, const char *path, int32_t dflt)
{
    int32_t v;
    return sy_avro_get_int_opt(rec, path, &v) ? v : dflt;
}

int sy_avro_set_int(avro_value_t *rec, const char *path, int32_t v)
{
    return sy_avro_set_long(rec, path, v);
}

bool sy_avro_get_bool_opt(avro_value_t *rec, const char *path, bool *out)
{
    avro_value_t v;
    int x;
    if (get(rec, path, &v) || avro_value_get_type(&v) != AVRO_BOOLEAN ||
        avro_value_get_boolean(&v, &x))
        return false;
    *out = x != 0;
    return true;
}

int sy_avro_set_bool(avro_value_t *rec, const char *path, bool v)
{
    static const avro_type_t want[] = {AVRO_BOOLEAN};
    avro_value_t t;
    int rc = target(rec, path, want, 1, &t, NULL);
    return rc ? rc : avro_value_set_boolean(&t, v) ? EINVAL : 0;
}

/* ---- Enums ---- */

const char *sy_avro_get_enum(avro_value_t *rec, const char *path)
{
    avro_value_t v;
    int idx;
    if (get(rec, path, &v) || avro_value_get_type(&v) != AVRO_ENUM || avro_value_get_enum(&v, &idx))
        return NULL;
    return avro_schema_enum_get(deref(avro_value_get_schema(&v)), idx);
}

int sy_avro_set_enum(avro_value_t *rec, const char *path, const char *symbol)
{
    static const avro_type_t want[] = {AVRO_ENUM};
    avro_value_t t;
    if (!symbol)
        return sy_avro_set_null(rec, path);
    int rc = target(rec, path, want, 1, &t, NULL);
    if (rc)
        return rc;
    avro_schema_t s = deref(avro_value_get_schema(&t));
    int idx = avro_schema_enum_get_by_name(s, symbol);
    if (idx < 0) {
        avro_set_error("\"%s\" is not a symbol of enum %s (field \"%s\")", symbol,
                       avro_schema_name(s), path);
        return EINVAL;
    }
    return avro_value_set_enum(&t, idx) ? EINVAL : 0;
}

/* ---- Nested records ---- */

int sy_avro_get_record(avro_value_t *rec, const char *path, avro_value_t *out)
{
    avro_value_t v;
    int rc = get(rec, path, &v);
    if (rc)
        return rc;
    if (avro_value_get_type(&v) != AVRO_RECORD) {
        avro_set_error("field \"%s\" is a %s, not a record", path, schema_label(&v));
        return EINVAL;
    }
    *out = v;
    return 0;
}

int sy_avro_set_record(avro_value_t *rec, const char *path, avro_value_t *out)
{
    static const avro_type_t want[] = {AVRO_RECORD};
    return target(rec, path, want, 1, out, NULL);
}

/* ---- Arrays ---- */

/* The array (or map) for reading: ENOENT when null or missing. */
static int get_container(avro_value_t *rec, const char *path, avro_type_t type, avro_value_t *out)
{
    int rc = get(rec, path, out);
    if (rc)
        return rc;
    if (avro_value_get_type(out) != type) {
        avro_set_error("field \"%s\" is a %s, not a%s", path, schema_label(out),
                       type == AVRO_ARRAY ? "n array" : " map");
        return EINVAL;
    }
    return 0;
}

size_t sy_avro_array_size(avro_value_t *rec, const char *path)
{
    avro_value_t a;
    size_t n = 0;
    if (get_container(rec, path, AVRO_ARRAY, &a) || avro_value_get_size(&a, &n))
        return 0;
    return n;
}

int sy_avro_array_get(avro_value_t *rec, const char *path, size_t i, avro_value_t *out)
{
    avro_value_t a;
    size_t n = 0;
    int rc = get_container(rec, path, AVRO_ARRAY, &a);
    if (rc)
        return rc;
    if (avro_value_get_size(&a, &n) || i >= n) {
        avro_set_error("index %zu out of range of \"%s\" (%zu items)", i, path, n);
        return ENOENT;
    }
    return avro_value_get_by_index(&a, i, out, NULL) ? ENOENT : 0;
}

const char *sy_avro_array_get_string(avro_value_t *rec, const char *path, size_t i)
{
    avro_value_t e, v;
    const char *s = NULL;
    size_t size;
    if (sy_avro_array_get(rec, path, i, &e) || value_get(&e, &v) ||
        avro_value_get_type(&v) != AVRO_STRING || avro_value_get_string(&v, &s, &size))
        return NULL;
    return s && size ? s : "";
}

int sy_avro_array_append(avro_value_t *rec, const char *path, avro_value_t *out)
{
    static const avro_type_t want[] = {AVRO_ARRAY};
    avro_value_t a;
    int rc = target(rec, path, want, 1, &a, NULL);
    if (rc)
        return rc;
    return avro_value_append(&a, out, NULL) ? ENOMEM : 0;
}

int sy_avro_array_append_string(avro_value_t *rec, const char *path, const char *s)
{
    avro_value_t e;
    int rc = sy_avro_array_append(rec, path, &e);
    if (rc)
        return rc;
    if (!s) {
        static const avro_type_t want[] = {AVRO_NULL};
        avro_value_t b;
        if ((rc = value_target(&e, want, 1, &b, NULL))) {
            avro_set_error("items of \"%s\" are not nullable", path);
            return rc;
        }
        return avro_value_set_null(&b) ? ENOMEM : 0;
    }
    if ((rc = set_string_value(&e, s, strlen(s))))
        avro_set_error("items of \"%s\" are not strings", path);
    return rc;
}

int sy_avro_array_clear(avro_value_t *rec, const char *path)
{
    static const avro_type_t want[] = {AVRO_ARRAY};
    avro_value_t a;
    int rc = target(rec, path, want, 1, &a, NULL);
    return rc ? rc : avro_value_reset(&a) ? ENOMEM : 0;
}

/* ---- Maps ---- */

size_t sy_avro_map_size(avro_value_t *rec, const char *path)
{
    avro_value_t m;
    size_t n = 0;
    if (get_container(rec, path, AVRO_MAP, &m) || avro_value_get_size(&m, &n))
        return 0;
    return n;
}

/* A map value as a string, NULL when null or not a string. */
static const char *string_of(avro_value_t *e)
{
    avro_value_t v;
    const char *s = NULL;
    size_t size;
    if (value_get(e, &v) || avro_value_get_type(&v) != AVRO_STRING ||
        avro_value_get_string(&v, &s, &size))
        return NULL;
    return s && size ? s : "";
}

const char *sy_avro_map_get_string(avro_value_t *rec, const char *path, const char *key)
{
    avro_value_t m, e = {NULL, NULL};
    if (!key || get_container(rec, path, AVRO_MAP, &m) ||
        avro_value_get_by_name(&m, key, &e, NULL) || !e.iface)
        return NULL;
    return string_of(&e);
}

int sy_avro_map_entry(avro_value_t *rec, const char *path, size_t i, const char **key,
                      const char **value)
{
    avro_value_t m, e;
    size_t n = 0;
    int rc = get_container(rec, path, AVRO_MAP, &m);
    if (rc)
        return rc;
    if (avro_value_get_size(&m, &n) || i >= n) {
        avro_set_error("entry %zu out of range of \"%s\" (%zu entries)", i, path, n);
        return ENOENT;
    }
    if (avro_value_get_by_index(&m, i, &e, key))
        return ENOENT;
    *value = string_of(&e);
    return 0;
}

int sy_avro_map_set_string(avro_value_t *rec, const char *path, const char *key, const char *value)
{
    static const avro_type_t want[] = {AVRO_MAP};
    avro_value_t m, e;
    if (!key || !value) {
        avro_set_error("map \"%s\": NULL key or value", path);
        return EINVAL;
    }
    int rc = target(rec, path, want, 1, &m, NULL);
    if (rc)
        return rc;
    if (avro_value_add(&m, key, &e, NULL, NULL))
        return ENOMEM;
    if ((rc = set_string_value(&e, value, strlen(value))))
        avro_set_error("values of \"%s\" are not strings", path);
    return rc;
}

int sy_avro_map_foreach(avro_value_t *rec, const char *path,
                        int (*cb)(const char *key, const char *value, void *opaque), void *opaque)
{
    avro_value_t m;
    size_t n = 0;
    if (get_container(rec, path, AVRO_MAP, &m) || avro_value_get_size(&m, &n))
        return 0;
    for (size_t i = 0; i < n; i++) {
        avro_value_t e;
        const char *key = NULL;
        if (avro_value_get_by_index(&m, i, &e, &key))
            continue;
        int r = cb(key, string_of(&e), opaque);
        if (r)
            return r;
    }
    return 0;
}

int sy_avro_map_clear(avro_value_t *rec, const char *path)
{
    static const avro_type_t want[] = {AVRO_MAP};
    avro_value_t m;
    int rc = target(rec, path, want, 1, &m, NULL);
    return rc ? rc : avro_value_reset(&m) ? ENOMEM : 0;
}
