/* sy_codec: Avro encoding and decoding of Switchyard's record types — framing, schema
 * resolution with defaults, and the plain JSON form.
 *
 * How it works. Schemas are parsed into our own tree (snode_t), which, unlike avro-c's, keeps
 * field defaults, aliases and logical types, and yields the Parsing Canonical Form. Decoding
 * does not use avro_value_read: a writer schema and our reader schema are compiled once into a
 * small program (prog_t) — per writer field: read into reader field i, or skip; per reader
 * field the writer lacks: copy its default, pre-encoded in Avro binary — and the program is run
 * over the bytes with every length checked against the buffer and the configured limits before
 * anything is allocated. That is how defaults work at all with avro-c 1.11, and why malformed
 * input cannot leak (avro-c 1.11's reader leaks on truncated strings). Encoding walks the value
 * with the avro_value_t interface into one growing buffer. Values are avro-c generic values. */
#include "sy_codec.h"
#include "sy_log.h"
#include "sy_schemas.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define SY_NAMESPACE "io.switchyard"
#define MAX_DEPTH    64  /* nesting of schemas and data */
#define STACK_STRING 256 /* strings shorter than this are NUL-terminated on the stack */
#define NBUCKETS     64  /* writer-schema cache buckets */

static const char *const type_names[SY_TYPE_COUNT] = {"JobRequest", "RoutedJob", "JobStatus",
                                                      "JobLog", "JobControl"};

const char *sy_type_name(sy_type_t type)
{
    return (unsigned)type < SY_TYPE_COUNT ? type_names[type] : "?";
}

int sy_type_parse(const char *name)
{
    if (!name)
        return -1;
    if (!strncasecmp(name, SY_NAMESPACE ".", sizeof(SY_NAMESPACE)))
        name += sizeof(SY_NAMESPACE);
    for (int i = 0; i < SY_TYPE_COUNT; i++)
        if (!strcasecmp(name, type_names[i]))
            return i;
    return -1;
}

/* snprintf for messages that may be cut short on purpose (no truncation warnings). */
static void fmt_cut(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fmt_cut(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, size, fmt, ap);
    va_end(ap);
}

/* ======================================================================================== */
/* Byte buffers */

typedef struct sbuf {
    uint8_t *data;
    size_t len, cap;
    bool oom;
    bool borrowed; /* data is the caller's memory (cap bytes): growing moves it to the heap */
} sbuf_t;

static bool sb_grow(sbuf_t *b, size_t extra)
{
    if (b->oom)
        return false;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra)
        cap *= 2;
    uint8_t *d = b->borrowed ? malloc(cap) : realloc(b->data, cap);
    if (!d) {
        b->oom = true;
        return false;
    }
    if (b->borrowed && b->len)
        memcpy(d, b->data, b->len);
    b->borrowed = false;
    b->data = d;
    b->cap = cap;
    return true;
}

static inline bool sb_reserve(sbuf_t *b, size_t extra)
{
    return b->len + extra <= b->cap || sb_grow(b, extra);
}

static inline void sb_put(sbuf_t *b, const void *p, size_t n)
{
    if (n && sb_reserve(b, n)) {
        memcpy(b->data + b->len, p, n);
        b->len += n;
    }
}

static void sb_puts(sbuf_t *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

static inline void sb_byte(sbuf_t *b, uint8_t c)
{
    if (sb_reserve(b, 1))
        b->data[b->len++] = c;
}

/* Avro long/int: zig-zag, then base-128 varint, low group first. */
static inline void sb_varint(sbuf_t *b, int64_t v)
{
    if (!sb_reserve(b, 10))
        return;
    uint64_t u = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    uint8_t *p = b->data + b->len;
    while (u >= 0x80) {
        *p++ = (uint8_t)(u | 0x80);
        u >>= 7;
    }
    *p++ = (uint8_t)u;
    b->len = (size_t)(p - b->data);
}

/* NUL-terminates and hands the buffer over as a C string (NULL when out of memory). */
static char *sb_cstr(sbuf_t *b)
{
    sb_byte(b, 0);
    if (b->oom) {
        free(b->data);
        return NULL;
    }
    return (char *)b->data;
}

/* ======================================================================================== */
/* CRC-64-AVRO */

#define CRC64_EMPTY 0xc15d213aa4d7a795ULL
static uint64_t crc64_table[256];
static pthread_once_t crc64_once = PTHREAD_ONCE_INIT;

static void crc64_init(void)
{
    for (int i = 0; i < 256; i++) {
        uint64_t fp = (uint64_t)i;
        for (int j = 0; j < 8; j++)
            fp = (fp >> 1) ^ (CRC64_EMPTY & -(fp & 1));
        crc64_table[i] = fp;
    }
}

uint64_t sy_codec_crc64_avro(const void *data, size_t len)
{
    pthread_once(&crc64_once, crc64_init);
    const uint8_t *p = data;
    uint64_t fp = CRC64_EMPTY;
    for (size_t i = 0; i < len; i++)
        fp = (fp >> 8) ^ crc64_table[(fp ^ p[i]) & 0xff];
    return fp;
}

/* ======================================================================================== */
/* Schema model */

typedef enum kind {
    K_NULL,
    K_BOOLEAN,
    K_INT,
    K_LONG,
    K_FLOAT,
    K_DOUBLE,
    K_BYTES,
    K_STRING,
    K_RECORD,
    K_ENUM,
    K_ARRAY,
    K_MAP,
    K_UNION,
    K_FIXED,
} kind_t;

static const char *const kind_names[] = {"null",   "boolean", "int",    "long",   "float",
                                         "double", "bytes",   "string", "record", "enum",
                                         "array",  "map",     "union",  "fixed"};

typedef struct snode snode_t;
typedef struct prog prog_t;

typedef struct sfield {
    char *name;
    char **aliases;
    size_t n_aliases;
    snode_t *type;
    json_t *def;      /* "default" as written (owned reference), NULL when none */
    uint8_t *def_bin; /* the default in Avro binary (reader schemas only), NULL when none */
    size_t def_len;
    const prog_t *id_prog; /* identity program of the field's type (reader schemas only) */
    uint64_t type_fp;      /* a record field of a reader schema: its type's CRC-64-AVRO
                              fingerprint (of its Parsing Canonical Form); else 0 */
} sfield_t;

struct snode {
    kind_t kind;
    char *fullname;   /* record, enum, fixed */
    const char *name; /* fullname without its namespace */
    char *logical;    /* "logicalType", NULL when none */
    sfield_t *fields; /* record */
    size_t n_fields;
    char **symbols; /* enum */
    size_t n_symbols;
    int enum_default; /* enum: index of the "default" symbol, -1 when none */
    snode_t *items;   /* array items, map values */
    snode_t **branches;
    size_t n_branches;
    size_t size;   /* fixed */
    snode_t *next; /* every node of a schema, for freeing */
};

/* One parsed schema. Schemas live until the codec is destroyed: programs point into them. */
typedef struct sschema {
    snode_t *root;
    snode_t *nodes;
    char *json;      /* self-contained JSON text, compact */
    char *canonical; /* Parsing Canonical Form */
    uint64_t fingerprint;
    int type;                  /* sy_type_t from the root record's name, -1 if none of ours */
    avro_schema_t avro;        /* reader schemas: avro-c's parse of the canonical form */
    avro_value_iface_t *iface; /* reader schemas: the generic class of values */
    struct sschema *next;      /* codec's list of all schemas */
} sschema_t;

static void snode_free(snode_t *n)
{
    free(n->fullname);
    free(n->logical);
    for (size_t i = 0; i < n->n_fields; i++) {
        sfield_t *f = &n->fields[i];
        free(f->name);
        for (size_t a = 0; a < f->n_aliases; a++)
            free(f->aliases[a]);
        free(f->aliases);
        json_decref(f->def);
        free(f->def_bin);
    }
    free(n->fields);
    for (size_t i = 0; i < n->n_symbols; i++)
        free(n->symbols[i]);
    free(n->symbols);
    free(n->branches);
    free(n);
}

static void sschema_free(sschema_t *s)
{
    if (!s)
        return;
    for (snode_t *n = s->nodes, *next; n; n = next) {
        next = n->next;
        snode_free(n);
    }
    free(s->json);
    free(s->canonical);
    if (s->iface)
        avro_value_iface_decref(s->iface);
    if (s->avro)
        avro_schema_decref(s->avro);
    free(s);
}

static int primitive_kind(const char *s)
{
    for (int k = K_NULL; k <= K_STRING; k++)
        if (!strcmp(s, kind_names[k]))
            return k;
    return -1;
}

static bool valid_name(const char *s)
{
    if (!(isalpha((unsigned char)*s) || *s == '_'))
        return false;
    for (s++; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_'))
            return false;
    return true;
}

/* A full name: each dot-separated part a valid name. */
static bool valid_fullname(const char *s)
{
    char buf[512];
    if (strlen(s) >= sizeof(buf) || !*s)
        return false;
    strcpy(buf, s);
    for (char *save = NULL, *p = strtok_r(buf, ".", &save); p; p = strtok_r(NULL, ".", &save))
        if (!valid_name(p))
            return false;
    return s[strlen(s) - 1] != '.' && s[0] != '.' && !strstr(s, "..");
}

/* name qualified by namespace ns unless it already contains a dot. malloc'd. */
static char *qualify(const char *name, const char *ns)
{
    char *out = NULL;
    if (strchr(name, '.') || !ns || !*ns)
        return strdup(name);
    if (asprintf(&out, "%s.%s", ns, name) < 0)
        return NULL;
    return out;
}

/* The namespace part of a full name, into buf ("" when none). */
static const char *namespace_of(const char *fullname, char *buf, size_t size)
{
    const char *dot = strrchr(fullname, '.');
    size_t n = dot ? (size_t)(dot - fullname) : 0;
    if (n >= size)
        n = size - 1;
    memcpy(buf, fullname, n);
    buf[n] = '\0';
    return buf;
}

typedef struct pctx {
    sschema_t *s;
    snode_t **names; /* named types defined so far */
    size_t n_names, cap_names;
    int depth;
    sy_err_t *err;
} pctx_t;

static snode_t *node_new(pctx_t *c, kind_t kind)
{
    snode_t *n = calloc(1, sizeof(*n));
    if (!n) {
        sy_err_set(c->err, SY_ERR_NOMEM, false, "out of memory");
        return NULL;
    }
    n->kind = kind;
    n->enum_default = -1;
    n->next = c->s->nodes;
    c->s->nodes = n;
    return n;
}

static snode_t *find_name(pctx_t *c, const char *fullname)
{
    for (size_t i = 0; i < c->n_names; i++)
        if (!strcmp(c->names[i]->fullname, fullname))
            return c->names[i];
    return NULL;
}

/* Gives a named node its full name and records it; SY_ERR_SCHEMA on a bad or duplicate name. */
static bool define_name(pctx_t *c, snode_t *n, json_t *j, const char *ns)
{
    json_t *name = json_object_get(j, "name");
    json_t *nsj = json_object_get(j, "namespace");
    if (!json_is_string(name) || !valid_fullname(json_string_value(name))) {
        sy_err_set(c->err, SY_ERR_SCHEMA, false, "a %s needs a valid \"name\"",
                   kind_names[n->kind]);
        return false;
    }
    if (nsj && !json_is_null(nsj) && !json_is_string(nsj)) {
        sy_err_set(c->err, SY_ERR_SCHEMA, false, "%s: \"namespace\" must be a string",
                   json_string_value(name));
        return false;
    }
    n->fullname =
        qualify(json_string_value(name), nsj && json_is_string(nsj) ? json_string_value(nsj) : ns);
    if (!n->fullname) {
        sy_err_set(c->err, SY_ERR_NOMEM, false, "out of memory");
        return false;
    }
    if (!valid_fullname(n->fullname)) {
        sy_err_set(c->err, SY_ERR_SCHEMA, false, "invalid name \"%s\"", n->fullname);
        return false;
    }
    const char *dot = strrchr(n->fullname, '.');
    n->name = dot ? dot + 1 : n->fullname;
    if (find_name(c, n->fullname)) {
        sy_err_set(c->err, SY_ERR_SCHEMA, false, "type %s is defined twice", n->fullname);
        return false;
    }
    if (c->n_names == c->cap_names) {
        size_t cap = c->cap_names ? c->cap_names * 2 : 16;
        snode_t **v = realloc(c->names, cap * sizeof(*v));
        if (!v) {
            sy_err_set(c->err, SY_ERR_NOMEM, false, "out of memory");
            return false;
        }
        c->names = v;
        c->cap_names = cap;
    }
    c->names[c->n_names++] = n;
    return true;
}

static snode_t *parse_type(pctx_t *c, json_t *j, const char *ns);

static snode_t *parse_record(pctx_t *c, json_t *j, const char *ns)
{
    snode_t *n = node_new(c, K_RECORD);
    if (!n || !define_name(c, n, j, ns))
        return NULL;
    char child_ns[512];
    namespace_of(n->fullname, child_ns, sizeof(child_ns));
    json_t *fields = json_object_get(j, "fields");
    if (!json_is_array(fields)) {
        sy_err_set(c->err, SY_ERR_SCHEMA, false, "record %s: \"fields\" must be an array",
                   n->fullname);
        return NULL;
    }
    n->fields = calloc(json_array_size(fields) + 1, sizeof(*n->fields));
    if (!n->fields) {
        sy_err_set(c->err, SY_ERR_NOMEM, false, "out of memory");
        return NULL;
    }
    size_t i;
    json_t *fj;
    json_array_foreach(fields, i, fj)
    {
        json_t *name = json_object_get(fj, "name");
        if (!json_is_string(name) || !valid_name(json_string_value(name))) {
            sy_err_set(c->err, SY_ERR_SCHEMA, false, "record %s: field %zu needs a valid \"name\"",
                       n->fullname, i);
            return NULL;
        }
        for (size_t k = 0; k < n->n_fields; k++) {
            if (!strcmp(n->fields[k].name, json_string_value(name))) {
                sy_err_set(c->err, SY_ERR_SCHEMA, false, "record %s: field %s appears twice",
                           n->fullname, json_string_value(name));
                return NULL;
            }
        }
        sfield_t *f = &n->fields[n->n_fields++];
        if (!(f->name = strdup(json_string_value(name)))) {
            sy_err_set(c->err, SY_ERR_NOMEM, false, "out of memory");
            return NULL;
        }
        json_t *aliases = json_object_get(fj, "aliases");
        if (json_is_array(aliases) && json_array_size(aliases)) {
            f->aliases = calloc(json_array_size(aliases), sizeof(char *));
            if (!f->aliases) {
                sy_err_set(c->err, SY_ERR_NOMEM, false, "out of memory");
                return NULL;
            }
            size_t a;
            json_t *aj;
            json_array_foreach(aliases, a, aj)
            {
                if (json_is_string(aj) &&
                    !(f->aliases[f->n_aliases++] = strdup(json_string_value(aj)))) {
                    sy_err_set(c->err, SY_ERR_NOMEM, false, "out of memory");
                    return NULL;
                }
            }
        }
        json_t *type = json_object_get(fj, "type");
        if (!type) {
            sy_err_set(c->err, SY_ERR_SCHEMA, false, "record %s: field %s has no \"type\"",
                       n->fullname, f->name);
            return NULL;
        }
        if (!(f->type = parse_type(c, type, child_ns))) {
            sy_err_prefix(c->err, "record %s, field %s", n->fullname, f->name);
            return NULL;
        }
        json_t *def = json_object_get(fj, "default");
        if (def)
            f->def = json_incref(def);
    }
    return n;
}

static snode_t *parse_enum(pctx_t *c, json_t *j, const char *ns)
{
    snode_t *n = node_new(c, K_ENUM);
    if (!n || !define_name(c, n, j, ns))
        return NULL;
    json_t *symbols = json_object_get(j, "symbols");
    if (!json_is_array(symbols) || !json_array_size(symbols)) {
        sy_err_set(c->err, SY_ERR_SCHEMA, false, "enum %s: \"symbols\" must be a non-empty array",
                   n->fullname);
        return NULL;
    }
    if (!(n->symbols = calloc(json_array_size(symbols), sizeof(char *)))) {
        sy_err_set(c->err, SY_ERR_NOMEM, false, "out of memory");
        return NULL;
    }
    size_t i;
    json_t *sj;
    json_array_foreach(symbols, i, sj)
    {
        if (!json_is_string(sj) || !valid_name(json_string_value(sj))) {
            sy_err_set(c->err, SY_ERR_SCHEMA, false, "enum %s: symbol %zu is not a valid name",
                       n->fullname, i);
            return NULL;
        }
        for (size_t k = 0; k < n->n_symbols; k++) {
            if (!strcmp(n->symbols[k], json_string_value(sj))) {
                sy_err_set(c->err, SY_ERR_SCHEMA, false, "enum %s: symbol %s appears twice",
                           n->fullname, n->symbols[k]);
                return NULL;
            }
        }
        if (!(n->symbols[n->n_symbols++] = strdup(json_string_value(sj)))) {
            sy_err_set(c->err, SY_ERR_NOMEM, false, "out of memory");
            return NULL;
        }
    }
    json_t *def = json_object_get(j, "default");
    if (def) {
        for (size_t k = 0; json_is_string(def) && k < n->n_symbols; k++)
            if (!strcmp(n->symbols[k], json_string_value(def)))
                n->enum_default = (int)k;
        if (n->enum_default < 0) {
            sy_err_set(c->err, SY_ERR_SCHEMA, false,
                       "enum %s: \"default\" is not one of its symbols", n->fullname);
            return NULL;
        }
    }
    return n;
}

static snode_t *parse_object(pctx_t *c, json_t *j, const char *ns)
{
    json_t *type = json_object_get(j, "type");
    if (!type) {
        sy_err_set(c->err, SY_ERR_SCHEMA, false, "a schema object needs a \"type\"");
        return NULL;
    }
    if (!json_is_string(type))
        return parse_type(c, type, ns);
    const char *t = json_string_value(type);
    if (!strcmp(t, "record") || !strcmp(t, "error"))
        return parse_record(c, j, ns);
    if (!strcmp(t, "enum"))
        return parse_enum(c, j, ns);
    if (!strcmp(t, "fixed")) {
        snode_t *n = node_new(c, K_FIXED);
        if (!n || !define_name(c, n, j, ns))
            return NULL;
        json_t *size = json_object_get(j, "size");
        if (!json_is_integer(size) || json_integer_value(size) < 0 ||
            json_integer_value(size) > (1 << 24)) {
            sy_err_set(c->err, SY_ERR_SCHEMA, false, "fixed %s: \"size\" must be an integer >= 0",
                       n->fullname);
            return NULL;
        }
        n->size = (size_t)json_integer_value(size);
        return n;
    }
    if (!strcmp(t, "array") || !strcmp(t, "map")) {
        bool array = t[0] == 'a';
        json_t *items = json_object_get(j, array ? "items" : "values");
        if (!items) {
            sy_err_set(c->err, SY_ERR_SCHEMA, false, "%s needs \"%s\"", t,
                       array ? "items" : "values");
            return NULL;
        }
        snode_t *n = node_new(c, array ? K_ARRAY : K_MAP);
        if (!n || !(n->items = parse_type(c, items, ns)))
            return NULL;
        return n;
    }
    int k = primitive_kind(t);
    if (k < 0) /* {"type": "SomeName"} */
        return parse_type(c, type, ns);
    snode_t *n = node_new(c, (kind_t)k);
    json_t *logical = json_object_get(j, "logicalType");
    if (n && json_is_string(logical) && !(n->logical = strdup(json_string_value(logical)))) {
        sy_err_set(c->err, SY_ERR_NOMEM, false, "out of memory");
        return NULL;
    }
    return n;
}

static snode_t *parse_type(pctx_t *c, json_t *j, const char *ns)
{
    snode_t *n = NULL;
    if (++c->depth > MAX_DEPTH) {
        sy_err_set(c->err, SY_ERR_SCHEMA, false, "schema nested deeper than %d", MAX_DEPTH);
        goto out;
    }
    if (json_is_string(j)) {
        const char *s = json_string_value(j);
        int k = primitive_kind(s);
        if (k >= 0) {
            n = node_new(c, (kind_t)k);
            goto out;
        }
        char *full = qualify(s, ns);
        if (!full) {
            sy_err_set(c->err, SY_ERR_NOMEM, false, "out of memory");
            goto out;
        }
        n = find_name(c, full);
        if (!n)
            n = find_name(c, s); /* a name in the null namespace */
        if (!n)
            sy_err_set(c->err, SY_ERR_SCHEMA, false, "unknown type \"%s\"", s);
        free(full);
    } else if (json_is_object(j)) {
        n = parse_object(c, j, ns);
    } else if (json_is_array(j)) {
        if (!(n = node_new(c, K_UNION)))
            goto out;
        if (!(n->branches = calloc(json_array_size(j) + 1, sizeof(*n->branches)))) {
            sy_err_set(c->err, SY_ERR_NOMEM, false, "out of memory");
            n = NULL;
            goto out;
        }
        size_t i;
        json_t *bj;
        json_array_foreach(j, i, bj)
        {
            snode_t *b = parse_type(c, bj, ns);
            if (!b) {
                n = NULL;
                goto out;
            }
            for (size_t k = 0; k < n->n_branches; k++) {
                snode_t *o = n->branches[k];
                bool named = b->kind == K_RECORD || b->kind == K_ENUM || b->kind == K_FIXED;
                if (b->kind == K_UNION || (o->kind == b->kind && (!named || o == b))) {
                    sy_err_set(c->err, SY_ERR_SCHEMA, false,
                               "a union may not hold a union or two branches of type %s",
                               named ? b->fullname : kind_names[b->kind]);
                    n = NULL;
                    goto out;
                }
            }
            n->branches[n->n_branches++] = b;
        }
        if (!n->n_branches) {
            sy_err_set(c->err, SY_ERR_SCHEMA, false, "a union needs at least one branch");
            n = NULL;
        }
    } else {
        sy_err_set(c->err, SY_ERR_SCHEMA, false, "a schema must be a string, object or array");
    }
out:
    c->depth--;
    return n;
}

/* ---- Parsing Canonical Form ---- */

typedef struct pcfctx {
    sbuf_t b;
    const snode_t **seen;
    size_t n_seen, cap_seen;
} pcfctx_t;

static void pcf_write(pcfctx_t *c, const snode_t *n)
{
    sbuf_t *b = &c->b;
    if (n->fullname) {
        for (size_t i = 0; i < c->n_seen; i++) {
            if (c->seen[i] == n) {
                sb_byte(b, '"');
                sb_puts(b, n->fullname);
                sb_byte(b, '"');
                return;
            }
        }
        if (c->n_seen == c->cap_seen) {
            size_t cap = c->cap_seen ? c->cap_seen * 2 : 16;
            const snode_t **v = realloc(c->seen, cap * sizeof(*v));
            if (!v) {
                b->oom = true;
                return;
            }
            c->seen = v;
            c->cap_seen = cap;
        }
        c->seen[c->n_seen++] = n;
    }
    switch (n->kind) {
    case K_RECORD:
        sb_puts(b, "{\"name\":\"");
        sb_puts(b, n->fullname);
        sb_puts(b, "\",\"type\":\"record\",\"fields\":[");
        for (size_t i = 0; i < n->n_fields; i++) {
            sb_puts(b, i ? ",{\"name\":\"" : "{\"name\":\"");
            sb_puts(b, n->fields[i].name);
            sb_puts(b, "\",\"type\":");
            pcf_write(c, n->fields[i].type);
            sb_byte(b, '}');
        }
        sb_puts(b, "]}");
        break;
    case K_ENUM:
        sb_puts(b, "{\"name\":\"");
        sb_puts(b, n->fullname);
        sb_puts(b, "\",\"type\":\"enum\",\"symbols\":[");
        for (size_t i = 0; i < n->n_symbols; i++) {
            sb_puts(b, i ? ",\"" : "\"");
            sb_puts(b, n->symbols[i]);
            sb_byte(b, '"');
        }
        sb_puts(b, "]}");
        break;
    case K_FIXED: {
        char size[32];
        snprintf(size, sizeof(size), "%zu", n->size);
        sb_puts(b, "{\"name\":\"");
        sb_puts(b, n->fullname);
        sb_puts(b, "\",\"type\":\"fixed\",\"size\":");
        sb_puts(b, size);
        sb_byte(b, '}');
        break;
    }
    case K_ARRAY:
    case K_MAP:
        sb_puts(b, n->kind == K_ARRAY ? "{\"type\":\"array\",\"items\":"
                                      : "{\"type\":\"map\",\"values\":");
        pcf_write(c, n->items);
        sb_byte(b, '}');
        break;
    case K_UNION:
        sb_byte(b, '[');
        for (size_t i = 0; i < n->n_branches; i++) {
            if (i)
                sb_byte(b, ',');
            pcf_write(c, n->branches[i]);
        }
        sb_byte(b, ']');
        break;
    default:
        sb_byte(b, '"');
        sb_puts(b, kind_names[n->kind]);
        sb_byte(b, '"');
        break;
    }
}

static char *pcf_of(const snode_t *root)
{
    pcfctx_t c = {0};
    pcf_write(&c, root);
    free(c.seen);
    return sb_cstr(&c.b);
}

/* Parses self-contained schema JSON text into a new sschema (with canonical form and
 * fingerprint; no avro-c objects yet). NULL with err filled on error. */
static sschema_t *schema_parse(const char *text, sy_err_t *err)
{
    json_error_t jerr;
    pctx_t c = {.err = err};
    json_t *j = json_loads(text, JSON_DECODE_ANY, &jerr); /* "string" is a schema too */
    sschema_t *s = calloc(1, sizeof(*s));
    bool ok = false;
    if (!s) {
        sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        goto out;
    }
    s->type = -1;
    c.s = s;
    if (!j) {
        sy_err_set(err, SY_ERR_SCHEMA, false, "schema is not valid JSON: %s (line %d)", jerr.text,
                   jerr.line);
        goto out;
    }
    if (!(s->root = parse_type(&c, j, NULL)))
        goto out;
    if (!(s->json = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY)) ||
        !(s->canonical = pcf_of(s->root))) {
        sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        goto out;
    }
    s->fingerprint = sy_codec_crc64_avro(s->canonical, strlen(s->canonical));
    if (s->root->kind == K_RECORD)
        s->type = sy_type_parse(s->root->name);
    ok = true;
out:
    if (!ok) {
        sschema_free(s);
        s = NULL;
    }
    free(c.names);
    json_decref(j);
    return s;
}

char *sy_codec_canonical_form(const char *json, sy_err_t *err)
{
    sschema_t *s = schema_parse(json, err);
    char *out = s ? strdup(s->canonical) : NULL;
    if (s && !out)
        sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
    sschema_free(s);
    return out;
}

/* ---- Expanding references between schema files ----
 * RoutedJob.v1.avsc uses "io.switchyard.JobRequest", defined in JobRequest.v1.avsc. Every
 * schema we parse, register or print is made self-contained first: the first use of a name the
 * document does not define is replaced by the definition (from the newest file that defines
 * it), later uses stay names, as Avro requires. */

typedef struct defn {
    char *fullname;
    json_t *def; /* borrowed from one of the roots */
    char *ns;    /* namespace enclosing the definition in its file */
    int rank;    /* higher wins: home file (named after the type) first, then newer version */
} defn_t;

typedef struct xctx {
    json_t **roots;
    size_t n_roots;
    defn_t *defs;
    size_t n_defs, cap_defs;
    char **defined; /* names defined so far in the output document */
    size_t n_defined, cap_defined;
    int depth;
    bool failed; /* out of memory or nested too deep */
} xctx_t;

static bool is_type_keyword(const char *s)
{
    return primitive_kind(s) >= 0 || !strcmp(s, "record") || !strcmp(s, "error") ||
           !strcmp(s, "enum") || !strcmp(s, "fixed") || !strcmp(s, "array") || !strcmp(s, "map");
}

static bool is_named_keyword(const char *s)
{
    return s && (!strcmp(s, "record") || !strcmp(s, "error") || !strcmp(s, "enum") ||
                 !strcmp(s, "fixed"));
}

/* Full name of the named-type definition object j in namespace ns (malloc'd, or NULL). */
static char *definition_name(json_t *j, const char *ns)
{
    json_t *name = json_object_get(j, "name"), *nsj = json_object_get(j, "namespace");
    if (!json_is_string(name))
        return NULL;
    return qualify(json_string_value(name), json_is_string(nsj) ? json_string_value(nsj) : ns);
}

static void index_walk(xctx_t *x, json_t *t, const char *ns, int rank_base, const char *home)
{
    if (x->failed || ++x->depth > MAX_DEPTH) {
        x->failed = true;
        return;
    }
    if (json_is_array(t)) {
        size_t i;
        json_t *b;
        json_array_foreach(t, i, b)
        {
            index_walk(x, b, ns, rank_base, home);
        }
    } else if (json_is_object(t)) {
        json_t *type = json_object_get(t, "type");
        const char *tname = json_is_string(type) ? json_string_value(type) : NULL;
        char child_ns[512];
        snprintf(child_ns, sizeof(child_ns), "%s", ns ? ns : "");
        if (is_named_keyword(tname)) {
            char *full = definition_name(t, ns);
            if (full) {
                const char *dot = strrchr(full, '.');
                int rank = rank_base + (home && !strcmp(dot ? dot + 1 : full, home) ? 1000000 : 0);
                defn_t *d = NULL;
                for (size_t i = 0; i < x->n_defs; i++)
                    if (!strcmp(x->defs[i].fullname, full))
                        d = &x->defs[i];
                if (!d) {
                    if (x->n_defs == x->cap_defs) {
                        size_t cap = x->cap_defs ? x->cap_defs * 2 : 16;
                        defn_t *v = realloc(x->defs, cap * sizeof(*v));
                        if (!v) {
                            free(full);
                            x->failed = true;
                            goto out;
                        }
                        x->defs = v;
                        x->cap_defs = cap;
                    }
                    d = &x->defs[x->n_defs++];
                    *d = (defn_t){full, t, strdup(ns ? ns : ""), rank};
                    if (!d->ns)
                        x->failed = true;
                } else if (rank > d->rank) {
                    char *nsdup = strdup(ns ? ns : "");
                    free(d->ns);
                    free(full);
                    d->def = t;
                    d->ns = nsdup;
                    d->rank = rank;
                    if (!nsdup)
                        x->failed = true;
                } else {
                    free(full);
                }
                char *f2 = definition_name(t, ns);
                if (f2) {
                    namespace_of(f2, child_ns, sizeof(child_ns));
                    free(f2);
                }
            }
        }
        if (tname && (!strcmp(tname, "record") || !strcmp(tname, "error"))) {
            size_t i;
            json_t *f;
            json_array_foreach(json_object_get(t, "fields"), i, f)
            {
                index_walk(x, json_object_get(f, "type"), child_ns, rank_base, home);
            }
        } else if (tname && !strcmp(tname, "array")) {
            index_walk(x, json_object_get(t, "items"), ns, rank_base, home);
        } else if (tname && !strcmp(tname, "map")) {
            index_walk(x, json_object_get(t, "values"), ns, rank_base, home);
        } else if (type && !(tname && is_type_keyword(tname))) {
            index_walk(x, type, ns, rank_base, home);
        }
    }
out:
    x->depth--;
}

static bool x_is_defined(xctx_t *x, const char *full)
{
    for (size_t i = 0; i < x->n_defined; i++)
        if (!strcmp(x->defined[i], full))
            return true;
    return false;
}

static void x_define(xctx_t *x, char *full /* taken */)
{
    if (!full) {
        x->failed = true;
        return;
    }
    if (x->n_defined == x->cap_defined) {
        size_t cap = x->cap_defined ? x->cap_defined * 2 : 16;
        char **v = realloc(x->defined, cap * sizeof(*v));
        if (!v) {
            free(full);
            x->failed = true;
            return;
        }
        x->defined = v;
        x->cap_defined = cap;
    }
    x->defined[x->n_defined++] = full;
}

static json_t *expand_type(xctx_t *x, json_t *t, const char *ns);

static json_t *expand_fields(xctx_t *x, json_t *fields, const char *ns)
{
    json_t *out = json_array();
    size_t i;
    json_t *f;
    json_array_foreach(fields, i, f)
    {
        json_t *fo;
        if (json_is_object(f)) {
            fo = json_object();
            const char *key;
            json_t *val;
            json_object_foreach(f, key, val)
            {
                json_object_set_new(
                    fo, key, !strcmp(key, "type") ? expand_type(x, val, ns) : json_deep_copy(val));
            }
        } else {
            fo = json_deep_copy(f);
        }
        json_array_append_new(out, fo);
    }
    return out;
}

static json_t *expand_type(xctx_t *x, json_t *t, const char *ns)
{
    json_t *out = NULL;
    if (x->failed || ++x->depth > MAX_DEPTH) {
        x->failed = true;
        goto out;
    }
    if (json_is_string(t)) {
        const char *s = json_string_value(t);
        char *full = primitive_kind(s) >= 0 ? NULL : qualify(s, ns);
        defn_t *d = NULL;
        if (full && !x_is_defined(x, full) && !x_is_defined(x, s)) {
            for (size_t i = 0; i < x->n_defs && !d; i++)
                if (!strcmp(x->defs[i].fullname, full))
                    d = &x->defs[i];
            for (size_t i = 0; i < x->n_defs && !d; i++)
                if (!strcmp(x->defs[i].fullname, s))
                    d = &x->defs[i];
        }
        free(full);
        if (!d) {
            out = json_string(s);
            goto out;
        }
        json_t *copy = json_deep_copy(d->def);
        json_t *name = json_object_get(copy, "name");
        if (json_is_string(name) && !strchr(json_string_value(name), '.') &&
            !json_object_get(copy, "namespace"))
            json_object_set_new(copy, "namespace", json_string(d->ns));
        out = expand_type(x, copy, d->ns);
        json_decref(copy);
    } else if (json_is_array(t)) {
        out = json_array();
        size_t i;
        json_t *b;
        json_array_foreach(t, i, b)
        {
            json_array_append_new(out, expand_type(x, b, ns));
        }
    } else if (json_is_object(t)) {
        json_t *type = json_object_get(t, "type");
        const char *tname = json_is_string(type) ? json_string_value(type) : NULL;
        char child_ns[512];
        snprintf(child_ns, sizeof(child_ns), "%s", ns ? ns : "");
        if (is_named_keyword(tname)) {
            char *full = definition_name(t, ns);
            if (full) {
                namespace_of(full, child_ns, sizeof(child_ns));
                x_define(x, full);
            }
        }
        bool record = tname && (!strcmp(tname, "record") || !strcmp(tname, "error"));
        out = json_object();
        const char *key;
        json_t *val;
        json_object_foreach(t, key, val)
        {
            json_t *nv;
            if (!strcmp(key, "type") && !(tname && is_type_keyword(tname)))
                nv = expand_type(x, val, ns);
            else if (record && !strcmp(key, "fields") && json_is_array(val))
                nv = expand_fields(x, val, child_ns);
            else if ((tname && !strcmp(tname, "array") && !strcmp(key, "items")) ||
                     (tname && !strcmp(tname, "map") && !strcmp(key, "values")))
                nv = expand_type(x, val, ns);
            else
                nv = json_deep_copy(val);
            json_object_set_new(out, key, nv);
        }
    } else {
        out = json_deep_copy(t);
    }
out:
    x->depth--;
    if (!out)
        x->failed = true;
    return out;
}

/* Frees what one expansion defined (not the index it read). */
static void xctx_done(xctx_t *x)
{
    for (size_t i = 0; i < x->n_defined; i++)
        free(x->defined[i]);
    free(x->defined);
}

static void xindex_free(xctx_t *x)
{
    for (size_t i = 0; i < x->n_roots; i++)
        json_decref(x->roots[i]);
    free(x->roots);
    for (size_t i = 0; i < x->n_defs; i++) {
        free(x->defs[i].fullname);
        free(x->defs[i].ns);
    }
    free(x->defs);
    memset(x, 0, sizeof(*x));
}

/* Indexes the named types of every embedded schema file. */
static sy_err_code_t xindex_init(xctx_t *x, sy_err_t *err)
{
    memset(x, 0, sizeof(*x));
    if (!(x->roots = calloc((size_t)sy_schema_file_count + 1, sizeof(*x->roots))))
        return sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
    for (int i = 0; i < sy_schema_file_count; i++) {
        json_error_t jerr;
        json_t *root = json_loads(sy_schema_files[i].json, 0, &jerr);
        if (!root)
            return sy_err_set(err, SY_ERR_SCHEMA, false, "schemas/%s: not valid JSON: %s (line %d)",
                              sy_schema_files[i].file_name, jerr.text, jerr.line);
        x->roots[x->n_roots++] = root;
        index_walk(x, root, NULL, sy_schema_files[i].version, sy_schema_files[i].type_name);
    }
    if (x->failed)
        return sy_err_set(err, SY_ERR_NOMEM, false, "out of memory indexing the schema files");
    return SY_OK;
}

/* The index is built once per process and never changes afterwards: every expansion, in any
 * thread, only reads it (jansson's reads — get, iteration, deep copy — do not modify a value).
 * Parsing the embedded files again for each expansion made a codec cost milliseconds. */
static xctx_t xindex;
static sy_err_t xindex_err = SY_ERR_INIT;
static pthread_once_t xindex_once = PTHREAD_ONCE_INIT;

static void xindex_build(void)
{
    if (xindex_init(&xindex, &xindex_err) != SY_OK)
        xindex_free(&xindex); /* every expansion then reports xindex_err */
}

/* The expansion of schema text json as a JSON value (caller decrefs), NULL with err. */
static json_t *expand_text(const char *json, sy_err_t *err)
{
    json_t *in = NULL, *out = NULL;
    json_error_t jerr;
    pthread_once(&xindex_once, xindex_build);
    if (xindex_err.code != SY_OK) {
        sy_err_set(err, xindex_err.code, false, "%s", xindex_err.msg);
        return NULL;
    }
    xctx_t x = {.roots = xindex.roots,
                .n_roots = xindex.n_roots,
                .defs = xindex.defs,
                .n_defs = xindex.n_defs,
                .cap_defs = xindex.cap_defs};
    if (!(in = json_loads(json, JSON_DECODE_ANY, &jerr))) { /* "string" is a schema too */
        sy_err_set(err, SY_ERR_SCHEMA, false, "schema is not valid JSON: %s (line %d)", jerr.text,
                   jerr.line);
        goto out;
    }
    out = expand_type(&x, in, NULL);
    if (x.failed) {
        json_decref(out);
        out = NULL;
        sy_err_set(err, SY_ERR_SCHEMA, false, "schema nested deeper than %d (or out of memory)",
                   MAX_DEPTH);
    }
out:
    json_decref(in);
    xctx_done(&x);
    return out;
}

char *sy_codec_expand_schema(const char *json, bool pretty, sy_err_t *err)
{
    json_t *j = expand_text(json, err);
    char *s = j ? json_dumps(j, (pretty ? JSON_INDENT(2) : JSON_COMPACT) | JSON_ENCODE_ANY) : NULL;
    if (j && !s)
        sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
    json_decref(j);
    return s;
}

/* Schema text json made self-contained with the named types that the schemas refs[n_refs]
 * define (what a registry's schema references point to): the first use of each such name is
 * replaced by its definition, as for our own files. malloc'd, NULL with err. */
static char *expand_with_refs(const char *json, char *const *refs, size_t n_refs, sy_err_t *err)
{
    xctx_t x = {0};
    json_t *in = NULL, *out = NULL;
    char *text = NULL;
    json_error_t jerr;
    if (!(x.roots = calloc(n_refs ? n_refs : 1, sizeof(*x.roots)))) {
        sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n_refs; i++) {
        json_t *root = json_loads(refs[i], JSON_DECODE_ANY, &jerr);
        if (!root) {
            sy_err_set(err, SY_ERR_SCHEMA, false,
                       "a schema it references is not valid JSON: %s (line %d)", jerr.text,
                       jerr.line);
            goto out;
        }
        x.roots[x.n_roots++] = root;
        index_walk(&x, root, NULL, 0, NULL);
    }
    if (!(in = json_loads(json, JSON_DECODE_ANY, &jerr))) {
        sy_err_set(err, SY_ERR_SCHEMA, false, "schema is not valid JSON: %s (line %d)", jerr.text,
                   jerr.line);
        goto out;
    }
    if (!x.failed)
        out = expand_type(&x, in, NULL);
    if (x.failed || !out) {
        sy_err_set(err, SY_ERR_SCHEMA, false,
                   "schema and its references nested deeper than %d (or out of memory)", MAX_DEPTH);
        goto out;
    }
    if (!(text = json_dumps(out, JSON_COMPACT | JSON_ENCODE_ANY)))
        sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
out:
    json_decref(in);
    json_decref(out);
    xctx_done(&x);
    xindex_free(&x);
    return text;
}

/* ---- Defaults, pre-encoded in Avro binary ---- */

/* Decodes one UTF-8 code point at *p (< end); -1 if malformed. */
static int32_t utf8_next(const unsigned char **p, const unsigned char *end)
{
    const unsigned char *s = *p;
    int32_t cp;
    int n;
    if (s[0] < 0x80) {
        cp = s[0];
        n = 0;
    } else if ((s[0] & 0xE0) == 0xC0) {
        cp = s[0] & 0x1F;
        n = 1;
    } else if ((s[0] & 0xF0) == 0xE0) {
        cp = s[0] & 0x0F;
        n = 2;
    } else if ((s[0] & 0xF8) == 0xF0) {
        cp = s[0] & 0x07;
        n = 3;
    } else {
        return -1;
    }
    if (end - s <= n)
        return -1;
    for (int i = 1; i <= n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return -1;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    *p = s + n + 1;
    return cp;
}

static bool utf8_valid(const void *data, size_t len)
{
    const unsigned char *p = data, *end = p + len;
    while (p < end) {
        if (*p < 0x80) {
            p++;
            continue;
        }
        size_t n = sy_utf8_char_len(p, (size_t)(end - p));
        if (!n)
            return false;
        p += n;
    }
    return true;
}

static void put_le(sbuf_t *b, uint64_t v, int n)
{
    if (!sb_reserve(b, (size_t)n))
        return;
    for (int i = 0; i < n; i++)
        b->data[b->len++] = (uint8_t)(v >> (8 * i));
}

static void put_float(sbuf_t *b, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    put_le(b, u, 4);
}

static void put_double(sbuf_t *b, double d)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    put_le(b, u, 8);
}

/* Avro's JSON for bytes/fixed defaults: each code point 0-255 is one byte. */
static bool put_latin1(sbuf_t *b, json_t *v, bool with_length, size_t want)
{
    const unsigned char *p = (const unsigned char *)json_string_value(v);
    const unsigned char *end = p + json_string_length(v);
    sbuf_t tmp = {0};
    bool ok = true;
    while (p < end && ok) {
        int32_t cp = utf8_next(&p, end);
        if (cp < 0 || cp > 255)
            ok = false;
        else
            sb_byte(&tmp, (uint8_t)cp);
    }
    if (ok && !with_length && tmp.len != want)
        ok = false;
    if (ok) {
        if (with_length)
            sb_varint(b, (int64_t)tmp.len);
        sb_put(b, tmp.data, tmp.len);
        ok = !tmp.oom;
    }
    free(tmp.data);
    return ok;
}

/* Encodes default value v of type t (Avro's rules: a union's default is of its first branch). */
static bool default_encode(sbuf_t *b, const snode_t *t, json_t *v, int depth)
{
    if (depth > MAX_DEPTH)
        return false;
    switch (t->kind) {
    case K_NULL:
        return json_is_null(v);
    case K_BOOLEAN:
        if (!json_is_boolean(v))
            return false;
        sb_byte(b, json_is_true(v));
        return true;
    case K_INT:
        if (!json_is_integer(v) || json_integer_value(v) < INT32_MIN ||
            json_integer_value(v) > INT32_MAX)
            return false;
        sb_varint(b, json_integer_value(v));
        return true;
    case K_LONG:
        if (!json_is_integer(v))
            return false;
        sb_varint(b, json_integer_value(v));
        return true;
    case K_FLOAT:
        if (!json_is_number(v))
            return false;
        put_float(b, (float)json_number_value(v));
        return true;
    case K_DOUBLE:
        if (!json_is_number(v))
            return false;
        put_double(b, json_number_value(v));
        return true;
    case K_STRING:
        if (!json_is_string(v))
            return false;
        sb_varint(b, (int64_t)json_string_length(v));
        sb_put(b, json_string_value(v), json_string_length(v));
        return true;
    case K_BYTES:
        return json_is_string(v) && put_latin1(b, v, true, 0);
    case K_FIXED:
        return json_is_string(v) && put_latin1(b, v, false, t->size);
    case K_ENUM:
        for (size_t i = 0; json_is_string(v) && i < t->n_symbols; i++) {
            if (!strcmp(t->symbols[i], json_string_value(v))) {
                sb_varint(b, (int64_t)i);
                return true;
            }
        }
        return false;
    case K_ARRAY: {
        if (!json_is_array(v))
            return false;
        if (json_array_size(v))
            sb_varint(b, (int64_t)json_array_size(v));
        size_t i;
        json_t *item;
        json_array_foreach(v, i, item)
        {
            if (!default_encode(b, t->items, item, depth + 1))
                return false;
        }
        sb_varint(b, 0);
        return true;
    }
    case K_MAP: {
        if (!json_is_object(v))
            return false;
        if (json_object_size(v))
            sb_varint(b, (int64_t)json_object_size(v));
        const char *key;
        json_t *item;
        json_object_foreach(v, key, item)
        {
            sb_varint(b, (int64_t)strlen(key));
            sb_puts(b, key);
            if (!default_encode(b, t->items, item, depth + 1))
                return false;
        }
        sb_varint(b, 0);
        return true;
    }
    case K_RECORD:
        if (!json_is_object(v))
            return false;
        for (size_t i = 0; i < t->n_fields; i++) {
            json_t *fv = json_object_get(v, t->fields[i].name);
            if (!fv)
                fv = t->fields[i].def;
            if (!fv || !default_encode(b, t->fields[i].type, fv, depth + 1))
                return false;
        }
        return true;
    case K_UNION:
        sb_varint(b, 0);
        return default_encode(b, t->branches[0], v, depth + 1);
    }
    return false;
}

/* Pre-encodes every field default of s; SY_ERR_SCHEMA naming the first that does not fit. */
static sy_err_code_t prepare_defaults(sschema_t *s, sy_err_t *err)
{
    for (snode_t *n = s->nodes; n; n = n->next) {
        for (size_t i = 0; n->kind == K_RECORD && i < n->n_fields; i++) {
            sfield_t *f = &n->fields[i];
            if (!f->def || f->def_bin)
                continue;
            sbuf_t b = {0};
            if (!default_encode(&b, f->type, f->def, 0)) {
                free(b.data);
                char *shown = json_dumps(f->def, JSON_COMPACT | JSON_ENCODE_ANY);
                sy_err_set(err, SY_ERR_SCHEMA, false,
                           "record %s, field %s: default %.100s does not match the field's type "
                           "(for a union, the default must match its first branch)",
                           n->fullname, f->name, shown ? shown : "?");
                free(shown);
                return SY_ERR_SCHEMA;
            }
            if (b.oom)
                return sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
            if (!b.data && !(b.data = malloc(1))) /* an empty default (null) still counts */
                return sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
            f->def_bin = b.data;
            f->def_len = b.len;
        }
    }
    return SY_OK;
}

/* ======================================================================================== */
/* Errors with a field path, built while unwinding */

typedef struct errpath {
    sy_err_code_t code;
    char msg[320];
    char path[256]; /* "cluster_criteria[1].tags[0]" */
} errpath_t;

static int ep_fail(errpath_t *e, sy_err_code_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int ep_fail(errpath_t *e, sy_err_code_t code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
    e->code = code;
    return -1;
}

/* Prepends one path segment: a field name, or "[3]" / "[\"key\"]". */
static void ep_push(errpath_t *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ep_push(errpath_t *e, const char *fmt, ...)
{
    char seg[128], old[sizeof(e->path)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(seg, sizeof(seg), fmt, ap);
    va_end(ap);
    memcpy(old, e->path, sizeof(old));
    fmt_cut(e->path, sizeof(e->path), "%s%s%s", seg, old[0] && old[0] != '[' ? "." : "", old);
}

static sy_err_code_t ep_report(const errpath_t *e, const char *root, sy_err_t *err)
{
    return sy_err_set(err, e->code, false, "%s%s%s: %s", root,
                      e->path[0] && e->path[0] != '[' ? "." : "", e->path, e->msg);
}

/* ======================================================================================== */
/* Resolution: a writer schema and a reader schema compiled into a decoding program */

enum op {
    OP_NULL,
    OP_BOOL,
    OP_INT,
    OP_LONG,
    OP_FLOAT,
    OP_DOUBLE,
    OP_STRING, /* string or bytes on the wire, set as a string */
    OP_BYTES,  /* string or bytes on the wire, set as bytes */
    OP_FIXED,
    OP_ENUM,
    OP_ARRAY,
    OP_MAP,
    OP_RECORD,
    OP_WUNION,   /* writer union: read the branch index, run that branch's program */
    OP_TO_UNION, /* writer non-union into a reader union: select r_branch, run child */
    OP_INT_LONG,
    OP_INT_FLOAT,
    OP_INT_DOUBLE,
    OP_LONG_FLOAT,
    OP_LONG_DOUBLE,
    OP_FLOAT_DOUBLE,
    OP_FAIL, /* a writer union branch the reader cannot take: an error if the data uses it */
};

typedef struct pfield {
    int32_t r_index; /* reader field to fill, -1 = skip the writer's field */
    const prog_t *p;
    const char *name; /* the writer's field name, for error paths */
} pfield_t;

typedef struct pdef {
    int32_t r_index; /* a reader field the writer lacks: decode its default into it */
    const prog_t *p;
    const uint8_t *bin;
    size_t len;
} pdef_t;

/* A program runs with a destination value, or with none to skip the writer's data. */
struct prog {
    uint8_t op;
    int32_t r_branch;    /* TO_UNION */
    size_t fixed_size;   /* FIXED */
    const prog_t *child; /* ARRAY items, MAP values, TO_UNION branch */
    pfield_t *fields;    /* RECORD: one per writer field, in writer order */
    size_t n_fields;
    pdef_t *defs; /* RECORD: reader fields absent from the writer */
    size_t n_defs;
    const prog_t **wb; /* WUNION: per writer branch */
    int32_t *wb_r;     /* WUNION: reader branch to select, -1 when the reader is no union */
    size_t n_wb;
    int32_t *enum_map; /* ENUM: writer symbol → reader symbol (-1 = unknown); NULL = same */
    size_t n_enum;
    const snode_t *w; /* writer node (ENUM: symbol names for messages) */
    char *fail_msg;   /* FAIL */
    prog_t *next;     /* every program of a progset, for freeing */
};

/* The compiled resolution of one writer schema into one reader type, or why it fails. */
typedef struct progset {
    const prog_t *root;
    prog_t *all;
    sy_err_code_t code; /* SY_OK, or the error every decode with this pair reports */
    char msg[400];
} progset_t;

static void progset_free(progset_t *ps)
{
    if (!ps)
        return;
    for (prog_t *p = ps->all, *next; p; p = next) {
        next = p->next;
        free(p->fields);
        free(p->defs);
        free(p->wb);
        free(p->wb_r);
        free(p->enum_map);
        free(p->fail_msg);
        free(p);
    }
    free(ps);
}

typedef struct memo {
    const snode_t *w, *r;
    prog_t *p;
} memo_t;

typedef struct cctx {
    progset_t *ps;
    memo_t *memo;
    size_t n_memo, cap_memo;
    int depth;
    errpath_t e;
} cctx_t;

static prog_t *prog_new(cctx_t *c, const snode_t *w, const snode_t *r)
{
    prog_t *p = calloc(1, sizeof(*p));
    if (!p) {
        ep_fail(&c->e, SY_ERR_NOMEM, "out of memory");
        return NULL;
    }
    p->w = w;
    p->next = c->ps->all;
    c->ps->all = p;
    if (c->n_memo == c->cap_memo) {
        size_t cap = c->cap_memo ? c->cap_memo * 2 : 32;
        memo_t *m = realloc(c->memo, cap * sizeof(*m));
        if (!m) {
            ep_fail(&c->e, SY_ERR_NOMEM, "out of memory");
            return NULL;
        }
        c->memo = m;
        c->cap_memo = cap;
    }
    c->memo[c->n_memo++] = (memo_t){w, r, p};
    return p;
}

static bool is_named(const snode_t *n)
{
    return n->kind == K_RECORD || n->kind == K_ENUM || n->kind == K_FIXED;
}

/* How well writer type w reads as reader type r: 2 same type, 1 by promotion, 0 not at all.
 * Named types match by unqualified name, as the Avro specification says. */
static int match_level(const snode_t *w, const snode_t *r)
{
    if (w->kind == r->kind)
        return !is_named(w) || !strcmp(w->name, r->name) ? 2 : 0;
    switch (w->kind) {
    case K_INT:
        return r->kind == K_LONG || r->kind == K_FLOAT || r->kind == K_DOUBLE;
    case K_LONG:
        return r->kind == K_FLOAT || r->kind == K_DOUBLE;
    case K_FLOAT:
        return r->kind == K_DOUBLE;
    case K_STRING:
        return r->kind == K_BYTES;
    case K_BYTES:
        return r->kind == K_STRING;
    default:
        return 0;
    }
}

/* The reader union's branch for writer type w: the first of the same type, else the first it
 * promotes to; -1 when none. */
static int pick_branch(const snode_t *ru, const snode_t *w)
{
    for (int level = 2; level >= 1; level--)
        for (size_t i = 0; i < ru->n_branches; i++)
            if (match_level(w, ru->branches[i]) == level)
                return (int)i;
    return -1;
}

static const char *type_label(const snode_t *n)
{
    return is_named(n) ? n->fullname : kind_names[n->kind];
}

static prog_t *compile(cctx_t *c, const snode_t *w, const snode_t *r);

static prog_t *compile_record(cctx_t *c, prog_t *p, const snode_t *w, const snode_t *r)
{
    bool *used = NULL;
    p->op = OP_RECORD;
    if (!(p->fields = calloc(w->n_fields + 1, sizeof(*p->fields))) ||
        (r && !(used = calloc(r->n_fields + 1, sizeof(*used)))) ||
        (r && !(p->defs = calloc(r->n_fields + 1, sizeof(*p->defs))))) {
        ep_fail(&c->e, SY_ERR_NOMEM, "out of memory");
        goto fail;
    }
    p->n_fields = w->n_fields;
    for (size_t i = 0; i < w->n_fields; i++) {
        const sfield_t *wf = &w->fields[i];
        pfield_t *pf = &p->fields[i];
        pf->name = wf->name;
        pf->r_index = -1;
        for (size_t j = 0; r && j < r->n_fields && pf->r_index < 0; j++) {
            const sfield_t *rf = &r->fields[j];
            bool match = !strcmp(rf->name, wf->name);
            for (size_t a = 0; !match && a < rf->n_aliases; a++)
                match = !strcmp(rf->aliases[a], wf->name);
            if (match && !used[j])
                pf->r_index = (int32_t)j;
        }
        if (pf->r_index >= 0)
            used[pf->r_index] = true;
        if (!(pf->p =
                  compile(c, wf->type, pf->r_index >= 0 ? r->fields[pf->r_index].type : NULL))) {
            ep_push(&c->e, "%s", wf->name);
            goto fail;
        }
    }
    for (size_t j = 0; r && j < r->n_fields; j++) {
        const sfield_t *rf = &r->fields[j];
        if (used[j])
            continue;
        if (!rf->def_bin) {
            ep_fail(&c->e, SY_ERR_SCHEMA,
                    "our field %s is not in the writer's schema and has no default", rf->name);
            goto fail;
        }
        pdef_t *d = &p->defs[p->n_defs++];
        d->r_index = (int32_t)j;
        d->bin = rf->def_bin;
        d->len = rf->def_len;
        if (!(d->p = compile(c, rf->type, rf->type))) {
            ep_push(&c->e, "%s", rf->name);
            goto fail;
        }
    }
    free(used);
    return p;
fail:
    free(used);
    return NULL;
}

static prog_t *compile_fail(cctx_t *c, const snode_t *w, const char *msg)
{
    prog_t *p = calloc(1, sizeof(*p));
    if (!p || !(p->fail_msg = strdup(msg))) {
        free(p);
        ep_fail(&c->e, SY_ERR_NOMEM, "out of memory");
        return NULL;
    }
    p->op = OP_FAIL;
    p->w = w;
    p->next = c->ps->all;
    c->ps->all = p;
    return p;
}

/* The program reading writer type w into reader type r (r NULL: skipping w). NULL with c->e
 * filled when the two cannot be resolved. */
static prog_t *compile(cctx_t *c, const snode_t *w, const snode_t *r)
{
    prog_t *p = NULL;
    for (size_t i = 0; i < c->n_memo; i++)
        if (c->memo[i].w == w && c->memo[i].r == r)
            return c->memo[i].p;
    if (++c->depth > MAX_DEPTH) {
        ep_fail(&c->e, SY_ERR_SCHEMA, "schema nested deeper than %d", MAX_DEPTH);
        goto out;
    }
    if (!(p = prog_new(c, w, r)))
        goto out;
    if (w->kind == K_UNION) {
        p->op = OP_WUNION;
        p->n_wb = w->n_branches;
        if (!(p->wb = calloc(w->n_branches, sizeof(*p->wb))) ||
            !(p->wb_r = calloc(w->n_branches, sizeof(*p->wb_r)))) {
            ep_fail(&c->e, SY_ERR_NOMEM, "out of memory");
            p = NULL;
            goto out;
        }
        for (size_t i = 0; i < w->n_branches; i++) {
            const snode_t *wb = w->branches[i];
            const snode_t *rb = NULL;
            int j = -1;
            if (r && r->kind == K_UNION) {
                j = pick_branch(r, wb);
                rb = j >= 0 ? r->branches[j] : NULL;
            } else if (r && match_level(wb, r)) {
                rb = r;
            }
            p->wb_r[i] = j;
            if (r && !rb) {
                char msg[300];
                snprintf(msg, sizeof(msg),
                         "the record holds a %s here (union branch %zu), which our schema "
                         "cannot read",
                         type_label(wb), i);
                p->wb[i] = compile_fail(c, wb, msg);
            } else {
                p->wb[i] = compile(c, wb, rb);
            }
            if (!p->wb[i]) {
                p = NULL;
                goto out;
            }
        }
        goto out;
    }
    if (r && r->kind == K_UNION) {
        int j = pick_branch(r, w);
        if (j < 0) {
            ep_fail(&c->e, SY_ERR_SCHEMA,
                    "the writer's %s cannot be read as any branch of our union", type_label(w));
            p = NULL;
            goto out;
        }
        p->op = OP_TO_UNION;
        p->r_branch = j;
        if (!(p->child = compile(c, w, r->branches[j])))
            p = NULL;
        goto out;
    }
    if (r && !match_level(w, r)) {
        ep_fail(&c->e, SY_ERR_SCHEMA, "the writer's %s cannot be read as our %s", type_label(w),
                type_label(r));
        p = NULL;
        goto out;
    }
    kind_t rk = r ? r->kind : w->kind;
    switch (w->kind) {
    case K_NULL:
        p->op = OP_NULL;
        break;
    case K_BOOLEAN:
        p->op = OP_BOOL;
        break;
    case K_INT:
        p->op = rk == K_LONG     ? OP_INT_LONG
                : rk == K_FLOAT  ? OP_INT_FLOAT
                : rk == K_DOUBLE ? OP_INT_DOUBLE
                                 : OP_INT;
        break;
    case K_LONG:
        p->op = rk == K_FLOAT ? OP_LONG_FLOAT : rk == K_DOUBLE ? OP_LONG_DOUBLE : OP_LONG;
        break;
    case K_FLOAT:
        p->op = rk == K_DOUBLE ? OP_FLOAT_DOUBLE : OP_FLOAT;
        break;
    case K_DOUBLE:
        p->op = OP_DOUBLE;
        break;
    case K_STRING:
    case K_BYTES:
        p->op = rk == K_BYTES ? OP_BYTES : OP_STRING;
        break;
    case K_FIXED:
        if (r && r->size != w->size) {
            ep_fail(&c->e, SY_ERR_SCHEMA, "fixed %s: the writer's size %zu is not ours (%zu)",
                    w->fullname, w->size, r->size);
            p = NULL;
            goto out;
        }
        p->op = OP_FIXED;
        p->fixed_size = w->size;
        break;
    case K_ENUM:
        p->op = OP_ENUM;
        p->n_enum = w->n_symbols;
        if (r && r != w) {
            if (!(p->enum_map = calloc(w->n_symbols, sizeof(*p->enum_map)))) {
                ep_fail(&c->e, SY_ERR_NOMEM, "out of memory");
                p = NULL;
                goto out;
            }
            for (size_t i = 0; i < w->n_symbols; i++) {
                p->enum_map[i] = r->enum_default;
                for (size_t k = 0; k < r->n_symbols; k++)
                    if (!strcmp(w->symbols[i], r->symbols[k]))
                        p->enum_map[i] = (int32_t)k;
            }
        }
        break;
    case K_ARRAY:
    case K_MAP:
        p->op = w->kind == K_ARRAY ? OP_ARRAY : OP_MAP;
        if (!(p->child = compile(c, w->items, r ? r->items : NULL)))
            p = NULL;
        break;
    case K_RECORD:
        p = compile_record(c, p, w, r);
        break;
    case K_UNION:
        break; /* handled above */
    }
out:
    c->depth--;
    return p;
}

/* Compiles writer → reader; on failure the progset carries the error (code, msg). */
static progset_t *progset_compile(const snode_t *w, const snode_t *r)
{
    cctx_t c = {0};
    progset_t *ps = calloc(1, sizeof(*ps));
    if (!ps)
        return NULL;
    c.ps = ps;
    ps->root = compile(&c, w, r);
    if (!ps->root) {
        ps->code = c.e.code ? c.e.code : SY_ERR_SCHEMA;
        if (c.e.path[0])
            fmt_cut(ps->msg, sizeof(ps->msg), "field %s: %s", c.e.path, c.e.msg);
        else
            snprintf(ps->msg, sizeof(ps->msg), "%s", c.e.msg);
    }
    free(c.memo);
    return ps;
}

/* Points every reader field at the identity program of its type (for defaults and JSON). */
static void link_identity(const snode_t *n, const prog_t *p, int depth)
{
    if (!p || depth > MAX_DEPTH)
        return;
    switch (n->kind) {
    case K_RECORD:
        if (p->op != OP_RECORD || (n->n_fields && n->fields[0].id_prog))
            return;
        for (size_t i = 0; i < n->n_fields && i < p->n_fields; i++) {
            ((sfield_t *)&n->fields[i])->id_prog = p->fields[i].p;
            link_identity(n->fields[i].type, p->fields[i].p, depth + 1);
        }
        break;
    case K_ARRAY:
    case K_MAP:
        link_identity(n->items, p->child, depth + 1);
        break;
    case K_UNION:
        for (size_t i = 0; p->op == OP_WUNION && i < n->n_branches; i++)
            link_identity(n->branches[i], p->wb[i], depth + 1);
        break;
    default:
        break;
    }
}

/* ======================================================================================== */
/* Decoding: running a program over the bytes */

typedef struct dec {
    const uint8_t *p, *end;
    int64_t max_string, max_items;
    int depth;
    errpath_t e;
} dec_t;

static int d_truncated(dec_t *d, const char *what, uint64_t need)
{
    return ep_fail(&d->e, SY_ERR_TRUNCATED,
                   "record truncated: %s needs %" PRIu64 " byte%s, only %zu left", what, need,
                   need == 1 ? "" : "s", (size_t)(d->end - d->p));
}

static int d_avro(dec_t *d, int rc)
{
    return ep_fail(&d->e, rc == ENOMEM ? SY_ERR_NOMEM : SY_ERR_INTERNAL, "avro-c: %s",
                   avro_strerror());
}

static inline int read_long(dec_t *d, int64_t *out)
{
    if (d->p < d->end && !(*d->p & 0x80)) { /* one-byte fast path */
        uint64_t u = *d->p++;
        *out = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
        return 0;
    }
    uint64_t u = 0;
    *out = 0;
    for (int shift = 0;; shift += 7) {
        if (d->p >= d->end)
            return d_truncated(d, "a number", 1);
        if (shift > 63)
            return ep_fail(&d->e, SY_ERR_INVALID_ARG,
                           "malformed number (varint longer than 10 bytes)");
        uint8_t b = *d->p++;
        u |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            break;
    }
    *out = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
    return 0;
}

static inline int read_int(dec_t *d, int32_t *out)
{
    int64_t v;
    if (read_long(d, &v))
        return -1;
    if (v < INT32_MIN || v > INT32_MAX)
        return ep_fail(&d->e, SY_ERR_INVALID_ARG, "int value %" PRId64 " out of range", v);
    *out = (int32_t)v;
    return 0;
}

/* A string/bytes length, checked against the limit and the bytes left, in that order. */
static inline int read_len(dec_t *d, size_t *out, const char *what)
{
    int64_t v;
    *out = 0;
    if (read_long(d, &v))
        return -1;
    if (v < 0)
        return ep_fail(&d->e, SY_ERR_INVALID_ARG, "negative %s length %" PRId64, what, v);
    if (v > d->max_string)
        return ep_fail(&d->e, SY_ERR_TOO_LARGE,
                       "%s of %" PRId64 " bytes exceeds codec.max.string.bytes (%" PRId64 ")", what,
                       v, d->max_string);
    if ((uint64_t)v > (uint64_t)(d->end - d->p))
        return d_truncated(d, what, (uint64_t)v);
    *out = (size_t)v;
    return 0;
}

static inline uint64_t load_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static int read_float(dec_t *d, float *out)
{
    if (d->end - d->p < 4)
        return d_truncated(d, "a float", 4);
    uint32_t u = (uint32_t)load_le(d->p, 4);
    memcpy(out, &u, 4);
    d->p += 4;
    return 0;
}

static int read_double(dec_t *d, double *out)
{
    if (d->end - d->p < 8)
        return d_truncated(d, "a double", 8);
    uint64_t u = load_le(d->p, 8);
    memcpy(out, &u, 8);
    d->p += 8;
    return 0;
}

/* A decoded string (or map key) must be text: valid UTF-8, as the Avro specification says, and
 * without NUL bytes. Every consumer treats our strings as C strings (a job id "a\0b" would be
 * job "a"), and JSON, the job ledger and PostgreSQL refuse what is not UTF-8: a request that
 * got past the router with such a string would be routed and then dead-lettered by the worker,
 * never ending. Refused here, it is dead-lettered at the router, before anything is accepted. */
static int check_text(dec_t *d, const uint8_t *s, size_t n, const char *what)
{
    size_t i = 0;
    while (i < n && s[i] && s[i] < 0x80) /* ASCII: the common case, byte by byte */
        i++;
    if (i < n && s[i] && !utf8_valid(s + i, n - i))
        return ep_fail(&d->e, SY_ERR_INVALID_ARG, "%s is not valid UTF-8", what);
    if (i < n && memchr(s + i, '\0', n - i))
        return ep_fail(&d->e, SY_ERR_INVALID_ARG, "%s holds a NUL byte", what);
    return 0;
}

/* avro-c strings carry their NUL terminator; the wire's do not. */
static int set_string(dec_t *d, avro_value_t *dst, const uint8_t *s, size_t n)
{
    if (check_text(d, s, n, "string"))
        return -1;
    char stackbuf[STACK_STRING];
    char *buf = n < sizeof(stackbuf) ? stackbuf : malloc(n + 1);
    if (!buf)
        return ep_fail(&d->e, SY_ERR_NOMEM, "out of memory");
    memcpy(buf, s, n);
    buf[n] = '\0';
    int rc = avro_value_set_string_len(dst, buf, n + 1);
    if (buf != stackbuf)
        free(buf);
    return rc ? d_avro(d, rc) : 0;
}

static int run(dec_t *d, const prog_t *p, avro_value_t *dst);

/* Runs p over a separate buffer (a pre-encoded default) into dst. */
static int run_bytes(dec_t *d, const prog_t *p, const uint8_t *bin, size_t len, avro_value_t *dst)
{
    const uint8_t *save_p = d->p, *save_end = d->end;
    int64_t save_max_s = d->max_string, save_max_i = d->max_items;
    d->p = bin;
    d->end = bin + len;
    d->max_string = d->max_items = INT64_MAX; /* our own defaults are not input */
    int rc = run(d, p, dst);
    d->p = save_p;
    d->end = save_end;
    d->max_string = save_max_s;
    d->max_items = save_max_i;
    return rc;
}

static int run_blocks(dec_t *d, const prog_t *p, avro_value_t *dst)
{
    bool map = p->op == OP_MAP;
    const char *what = map ? "map" : "array";
    int64_t total = 0;
    if (dst) {
        int rc = avro_value_reset(dst);
        if (rc)
            return d_avro(d, rc);
    }
    for (;;) {
        int64_t count;
        if (read_long(d, &count))
            return -1;
        if (count == 0)
            return 0;
        if (count < 0) { /* a block with its byte size */
            int64_t size;
            if (count == INT64_MIN)
                return ep_fail(&d->e, SY_ERR_INVALID_ARG, "malformed %s block count", what);
            count = -count;
            if (read_long(d, &size))
                return -1;
            if (size < 0)
                return ep_fail(&d->e, SY_ERR_INVALID_ARG, "negative %s block size", what);
        }
        if (count > d->max_items - total) /* (unsigned: total + count may overflow int64) */
            return ep_fail(&d->e, SY_ERR_TOO_LARGE,
                           "%s of at least %" PRIu64 " items exceeds codec.max.items (%" PRId64 ")",
                           what, (uint64_t)total + (uint64_t)count, d->max_items);
        for (int64_t k = 0; k < count; k++, total++) {
            avro_value_t child, *cp = NULL;
            int rc = 0;
            if (map) {
                size_t klen;
                char stackbuf[STACK_STRING], *key;
                if (read_len(d, &klen, "map key") ||
                    (dst && check_text(d, d->p, klen, "map key"))) {
                    ep_push(&d->e, "[%" PRId64 "]", total);
                    return -1;
                }
                key = klen < sizeof(stackbuf) ? stackbuf : malloc(klen + 1);
                if (!key)
                    return ep_fail(&d->e, SY_ERR_NOMEM, "out of memory");
                memcpy(key, d->p, klen);
                key[klen] = '\0';
                d->p += klen;
                if (dst && (rc = avro_value_add(dst, key, &child, NULL, NULL))) {
                    rc = d_avro(d, rc);
                } else {
                    cp = dst ? &child : NULL;
                    if (run(d, p->child, cp)) {
                        ep_push(&d->e, "[\"%.60s\"]", key);
                        rc = -1;
                    }
                }
                if (key != stackbuf)
                    free(key);
            } else {
                if (dst && (rc = avro_value_append(dst, &child, NULL)))
                    return d_avro(d, rc);
                cp = dst ? &child : NULL;
                if (run(d, p->child, cp)) {
                    ep_push(&d->e, "[%" PRId64 "]", total);
                    rc = -1;
                }
            }
            if (rc)
                return -1;
        }
    }
}

static int run_record(dec_t *d, const prog_t *p, avro_value_t *dst)
{
    int rc;
    for (size_t i = 0; i < p->n_fields; i++) {
        const pfield_t *pf = &p->fields[i];
        avro_value_t f, *fp = NULL;
        if (dst && pf->r_index >= 0) {
            if ((rc = avro_value_get_by_index(dst, (size_t)pf->r_index, &f, NULL)))
                return d_avro(d, rc);
            fp = &f;
        }
        if (run(d, pf->p, fp)) {
            ep_push(&d->e, "%s", pf->name);
            return -1;
        }
    }
    for (size_t i = 0; dst && i < p->n_defs; i++) {
        const pdef_t *pd = &p->defs[i];
        avro_value_t f;
        if ((rc = avro_value_get_by_index(dst, (size_t)pd->r_index, &f, NULL)))
            return d_avro(d, rc);
        if (run_bytes(d, pd->p, pd->bin, pd->len, &f))
            return -1;
    }
    return 0;
}

static int run(dec_t *d, const prog_t *p, avro_value_t *dst)
{
    int rc = 0;
    switch (p->op) {
    case OP_NULL:
        rc = dst ? avro_value_set_null(dst) : 0;
        break;
    case OP_BOOL: {
        if (d->p >= d->end)
            return d_truncated(d, "a boolean", 1);
        uint8_t v = *d->p++;
        if (v > 1)
            return ep_fail(&d->e, SY_ERR_INVALID_ARG, "boolean byte 0x%02x is neither 0 nor 1", v);
        rc = dst ? avro_value_set_boolean(dst, v) : 0;
        break;
    }
    case OP_INT:
    case OP_INT_LONG:
    case OP_INT_FLOAT:
    case OP_INT_DOUBLE: {
        int32_t v;
        if (read_int(d, &v))
            return -1;
        if (!dst)
            break;
        rc = p->op == OP_INT         ? avro_value_set_int(dst, v)
             : p->op == OP_INT_LONG  ? avro_value_set_long(dst, v)
             : p->op == OP_INT_FLOAT ? avro_value_set_float(dst, (float)v)
                                     : avro_value_set_double(dst, v);
        break;
    }
    case OP_LONG:
    case OP_LONG_FLOAT:
    case OP_LONG_DOUBLE: {
        int64_t v;
        if (read_long(d, &v))
            return -1;
        if (!dst)
            break;
        rc = p->op == OP_LONG         ? avro_value_set_long(dst, v)
             : p->op == OP_LONG_FLOAT ? avro_value_set_float(dst, (float)v)
                                      : avro_value_set_double(dst, (double)v);
        break;
    }
    case OP_FLOAT:
    case OP_FLOAT_DOUBLE: {
        float v;
        if (read_float(d, &v))
            return -1;
        if (dst)
            rc = p->op == OP_FLOAT ? avro_value_set_float(dst, v) : avro_value_set_double(dst, v);
        break;
    }
    case OP_DOUBLE: {
        double v;
        if (read_double(d, &v))
            return -1;
        rc = dst ? avro_value_set_double(dst, v) : 0;
        break;
    }
    case OP_STRING:
    case OP_BYTES: {
        size_t n;
        const char *what = p->w->kind == K_STRING ? "string" : "bytes";
        if (read_len(d, &n, what))
            return -1;
        const uint8_t *s = d->p;
        d->p += n;
        if (!dst)
            break;
        if (p->op == OP_STRING)
            return set_string(d, dst, s, n);
        rc = avro_value_set_bytes(dst, (void *)s, n);
        break;
    }
    case OP_FIXED:
        if ((size_t)(d->end - d->p) < p->fixed_size)
            return d_truncated(d, "a fixed", p->fixed_size);
        if (dst)
            rc = avro_value_set_fixed(dst, (void *)d->p, p->fixed_size);
        d->p += p->fixed_size;
        break;
    case OP_ENUM: {
        int64_t v;
        if (read_long(d, &v))
            return -1;
        if (v < 0 || (uint64_t)v >= p->n_enum)
            return ep_fail(&d->e, SY_ERR_INVALID_ARG,
                           "enum index %" PRId64 " out of range (%s has %zu symbols)", v,
                           p->w->fullname, p->n_enum);
        if (!dst)
            break;
        int32_t r = p->enum_map ? p->enum_map[v] : (int32_t)v;
        if (r < 0)
            return ep_fail(&d->e, SY_ERR_SCHEMA,
                           "enum symbol %s is not one our schema knows (and %s has no default)",
                           p->w->symbols[v], p->w->fullname);
        rc = avro_value_set_enum(dst, r);
        break;
    }
    case OP_ARRAY:
    case OP_MAP:
    case OP_RECORD:
        if (++d->depth > MAX_DEPTH)
            return ep_fail(&d->e, SY_ERR_INVALID_ARG, "data nested deeper than %d", MAX_DEPTH);
        rc = p->op == OP_RECORD ? run_record(d, p, dst) : run_blocks(d, p, dst);
        d->depth--;
        return rc;
    case OP_WUNION: {
        int64_t v;
        if (read_long(d, &v))
            return -1;
        if (v < 0 || (uint64_t)v >= p->n_wb)
            return ep_fail(&d->e, SY_ERR_INVALID_ARG,
                           "union branch index %" PRId64
                           " out of range (the union has %zu branches)",
                           v, p->n_wb);
        if (!dst || p->wb_r[v] < 0)
            return run(d, p->wb[v], dst);
        avro_value_t b;
        if ((rc = avro_value_set_branch(dst, p->wb_r[v], &b)))
            break;
        return run(d, p->wb[v], &b);
    }
    case OP_TO_UNION: {
        if (!dst)
            return run(d, p->child, NULL);
        avro_value_t b;
        if ((rc = avro_value_set_branch(dst, p->r_branch, &b)))
            break;
        return run(d, p->child, &b);
    }
    case OP_FAIL:
        return ep_fail(&d->e, SY_ERR_SCHEMA, "%s", p->fail_msg);
    }
    return rc ? d_avro(d, rc) : 0;
}

/* ======================================================================================== */
/* Encoding: walking a value into Avro binary */

typedef struct enc {
    sbuf_t b;
    int depth;
    errpath_t e;
} enc_t;

static int e_avro(enc_t *e, int rc)
{
    return ep_fail(&e->e, rc == ENOMEM ? SY_ERR_NOMEM : SY_ERR_INTERNAL, "avro-c: %s",
                   avro_strerror());
}

static int enc_value(enc_t *e, avro_value_t *v)
{
    int rc = 0;
    switch (avro_value_get_type(v)) {
    case AVRO_NULL:
        break;
    case AVRO_BOOLEAN: {
        int x = 0;
        rc = avro_value_get_boolean(v, &x);
        sb_byte(&e->b, x ? 1 : 0);
        break;
    }
    case AVRO_INT32: {
        int32_t x = 0;
        rc = avro_value_get_int(v, &x);
        sb_varint(&e->b, x);
        break;
    }
    case AVRO_INT64: {
        int64_t x = 0;
        rc = avro_value_get_long(v, &x);
        sb_varint(&e->b, x);
        break;
    }
    case AVRO_FLOAT: {
        float x = 0;
        rc = avro_value_get_float(v, &x);
        put_float(&e->b, x);
        break;
    }
    case AVRO_DOUBLE: {
        double x = 0;
        rc = avro_value_get_double(v, &x);
        put_double(&e->b, x);
        break;
    }
    case AVRO_STRING: {
        const char *s = NULL;
        size_t size = 0;
        rc = avro_value_get_string(v, &s, &size);
        size_t n = s && size ? size - 1 : 0; /* avro-c's size counts the NUL */
        sb_varint(&e->b, (int64_t)n);
        sb_put(&e->b, s, n);
        break;
    }
    case AVRO_BYTES: {
        const void *s = NULL;
        size_t n = 0;
        rc = avro_value_get_bytes(v, &s, &n);
        sb_varint(&e->b, (int64_t)n);
        sb_put(&e->b, s, n);
        break;
    }
    case AVRO_FIXED: {
        const void *s = NULL;
        size_t n = 0;
        rc = avro_value_get_fixed(v, &s, &n);
        sb_put(&e->b, s, n);
        break;
    }
    case AVRO_ENUM: {
        int x = 0;
        rc = avro_value_get_enum(v, &x);
        sb_varint(&e->b, x);
        break;
    }
    case AVRO_ARRAY:
    case AVRO_MAP: {
        bool map = avro_value_get_type(v) == AVRO_MAP;
        size_t n = 0;
        if ((rc = avro_value_get_size(v, &n)))
            break;
        if (++e->depth > MAX_DEPTH)
            return ep_fail(&e->e, SY_ERR_INVALID_ARG, "value nested deeper than %d", MAX_DEPTH);
        if (n)
            sb_varint(&e->b, (int64_t)n);
        for (size_t i = 0; i < n; i++) {
            avro_value_t child;
            const char *key = NULL;
            if ((rc = avro_value_get_by_index(v, i, &child, map ? &key : NULL)))
                return e_avro(e, rc);
            if (map) {
                size_t klen = strlen(key);
                sb_varint(&e->b, (int64_t)klen);
                sb_put(&e->b, key, klen);
            }
            if (enc_value(e, &child)) {
                if (map)
                    ep_push(&e->e, "[\"%.60s\"]", key);
                else
                    ep_push(&e->e, "[%zu]", i);
                return -1;
            }
        }
        sb_varint(&e->b, 0);
        e->depth--;
        break;
    }
    case AVRO_RECORD: {
        size_t n = 0;
        if ((rc = avro_value_get_size(v, &n)))
            break;
        if (++e->depth > MAX_DEPTH)
            return ep_fail(&e->e, SY_ERR_INVALID_ARG, "value nested deeper than %d", MAX_DEPTH);
        for (size_t i = 0; i < n; i++) {
            avro_value_t child;
            const char *name = NULL;
            if ((rc = avro_value_get_by_index(v, i, &child, &name)))
                return e_avro(e, rc);
            if (enc_value(e, &child)) {
                ep_push(&e->e, "%s", name ? name : "?");
                return -1;
            }
        }
        e->depth--;
        break;
    }
    case AVRO_UNION: {
        int disc = -1;
        avro_value_t branch;
        if ((rc = avro_value_get_discriminant(v, &disc)))
            break;
        if (disc < 0) {
            avro_schema_t b0 = avro_schema_union_branch(avro_value_get_schema(v), 0);
            if (b0 && is_avro_null(b0)) {
                sb_varint(&e->b, 0);
                break;
            }
            return ep_fail(&e->e, SY_ERR_INVALID_ARG, "union has no branch selected");
        }
        if ((rc = avro_value_get_current_branch(v, &branch)))
            break;
        sb_varint(&e->b, disc);
        return enc_value(e, &branch);
    }
    default:
        return ep_fail(&e->e, SY_ERR_INTERNAL, "unsupported avro value type %d",
                       (int)avro_value_get_type(v));
    }
    return rc ? e_avro(e, rc) : 0;
}

/* ======================================================================================== */
/* The codec: known schemas, caches, framing */

enum { WKEY_FINGERPRINT = 1, WKEY_ID = 2 };

/* A writer schema reachable by fingerprint or registry id. Entries are published with a
 * release store and never change or go away until the codec is destroyed, so lookups take no
 * lock; programs are compiled on first use per reader type (under codec->lock). */
typedef struct wentry {
    struct wentry *next;
    int kind;
    uint64_t key;
    sschema_t *schema; /* owned by codec->schemas */
    _Atomic(progset_t *) progs[SY_TYPE_COUNT];
} wentry_t;

/* Our schema's registry id under a topic's subject (encode side). */
typedef struct subject {
    struct subject *next;
    char *topic;
    int type;
    uint64_t fingerprint; /* of the schema the id was obtained for */
    int32_t id;
} subject_t;

struct sy_codec {
    sschema_t *readers[SY_TYPE_COUNT];       /* current schema per type */
    _Atomic size_t size_hint[SY_TYPE_COUNT]; /* recent largest encoded size, to size the buffer */
    sschema_t *schemas;                      /* every schema, owned */
    _Atomic(wentry_t *) buckets[NBUCKETS];
    _Atomic(subject_t *) subjects;
    pthread_mutex_t lock;       /* inserting entries, compiling programs */
    pthread_mutex_t fetch_lock; /* one registry round trip at a time */
    sy_schemareg_t *reg;
    bool auto_register;
    int64_t max_string, max_items;
};

static size_t bucket_of(int kind, uint64_t key)
{
    return (size_t)(((key ^ ((uint64_t)kind << 61)) * 0x9E3779B97F4A7C15ULL) >> 58) % NBUCKETS;
}

static wentry_t *wlookup(sy_codec_t *codec, int kind, uint64_t key)
{
    for (wentry_t *e =
             atomic_load_explicit(&codec->buckets[bucket_of(kind, key)], memory_order_acquire);
         e; e = e->next)
        if (e->key == key && e->kind == kind)
            return e;
    return NULL;
}

/* Adds an entry (caller holds codec->lock); returns the existing one if the key is known. */
static wentry_t *winsert(sy_codec_t *codec, int kind, uint64_t key, sschema_t *s)
{
    wentry_t *e = wlookup(codec, kind, key);
    if (e)
        return e;
    if (!(e = calloc(1, sizeof(*e))))
        return NULL;
    e->kind = kind;
    e->key = key;
    e->schema = s;
    size_t b = bucket_of(kind, key);
    e->next = atomic_load_explicit(&codec->buckets[b], memory_order_relaxed);
    atomic_store_explicit(&codec->buckets[b], e, memory_order_release);
    return e;
}

static void describe_entry(const wentry_t *e, char *buf, size_t size)
{
    if (e->kind == WKEY_ID)
        snprintf(buf, size, "schema id %d", (int)e->key);
    else
        snprintf(buf, size, "schema fingerprint %016" PRIx64, e->key);
}

/* The program reading e's schema as type, compiled on first use. NULL only when out of
 * memory; otherwise check ps->code. */
static const progset_t *progs_for(sy_codec_t *codec, wentry_t *e, sy_type_t type)
{
    progset_t *ps = atomic_load_explicit(&e->progs[type], memory_order_acquire);
    if (ps)
        return ps;
    pthread_mutex_lock(&codec->lock);
    ps = atomic_load_explicit(&e->progs[type], memory_order_relaxed);
    if (ps)
        goto out;
    const snode_t *w = e->schema->root, *r = codec->readers[type]->root;
    char what[80];
    describe_entry(e, what, sizeof(what));
    if (w->kind != K_RECORD || strcmp(w->name, r->name) != 0) {
        if (!(ps = calloc(1, sizeof(*ps))))
            goto out;
        ps->code = SY_ERR_WRONG_TYPE;
        snprintf(ps->msg, sizeof(ps->msg), "wrong type: the record's schema is %s (%s), not %s",
                 type_label(w), what, type_names[type]);
    } else if ((ps = progset_compile(w, r)) && ps->code) {
        char msg[sizeof(ps->msg)];
        snprintf(msg, sizeof(msg), "%s", ps->msg);
        fmt_cut(ps->msg, sizeof(ps->msg), "cannot read a %s written with %s into ours: %s",
                type_names[type], what, msg);
    }
    if (ps)
        atomic_store_explicit(&e->progs[type], ps, memory_order_release);
out:
    pthread_mutex_unlock(&codec->lock);
    return ps;
}

/* Adds a parsed schema to the codec (caller holds codec->lock) and indexes it by fingerprint.
 * If a schema with the same canonical form is known, s is freed and that one is returned —
 * unless s is to be a reader and differs in what the canonical form leaves out (defaults,
 * aliases): then s is kept for reading, and the known one stays the writer of the fingerprint. */
static sschema_t *adopt_schema(sy_codec_t *codec, sschema_t *s, bool reader)
{
    wentry_t *e = wlookup(codec, WKEY_FINGERPRINT, s->fingerprint);
    if (e && (!reader || !strcmp(e->schema->json, s->json))) {
        sschema_free(s);
        return e->schema;
    }
    if (e) {
        s->next = codec->schemas;
        codec->schemas = s;
        return s;
    }
    s->next = codec->schemas;
    codec->schemas = s;
    if (!winsert(codec, WKEY_FINGERPRINT, s->fingerprint, s))
        return NULL;
    return s;
}

/* Makes s the current schema of its type: defaults, avro-c class, identity program.
 * Setup-time only (programs already compiled for the type are discarded). */
static sy_err_code_t make_reader(sy_codec_t *codec, sschema_t *s, sy_err_t *err)
{
    sy_type_t type = (sy_type_t)s->type;
    if (!s->iface) {
        if (prepare_defaults(s, err) != SY_OK)
            return err ? err->code : SY_ERR_SCHEMA;
        if (avro_schema_from_json_length(s->canonical, strlen(s->canonical), &s->avro))
            return sy_err_set(err, SY_ERR_SCHEMA, false, "avro-c rejects schema %s: %s",
                              s->root->fullname, avro_strerror());
        if (!(s->iface = avro_generic_class_from_schema(s->avro)))
            return sy_err_set(err, SY_ERR_SCHEMA, false, "avro-c: %s", avro_strerror());
    }
    /* compile the identity program first, so a failure changes nothing */
    wentry_t *self = wlookup(codec, WKEY_FINGERPRINT, s->fingerprint);
    progset_t *ps = self ? progset_compile(self->schema->root, s->root) : NULL;
    if (!ps)
        return sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
    if (ps->code) {
        sy_err_code_t rc =
            sy_err_set(err, ps->code, false, "schema %s: %s", s->root->fullname, ps->msg);
        progset_free(ps);
        return rc;
    }
    pthread_mutex_lock(&codec->lock);
    for (size_t b = 0; b < NBUCKETS; b++) {
        for (wentry_t *e = atomic_load(&codec->buckets[b]); e; e = e->next) {
            progset_free(atomic_load(&e->progs[type]));
            atomic_store(&e->progs[type], NULL);
        }
    }
    atomic_store(&self->progs[type], ps);
    codec->readers[type] = s;
    pthread_mutex_unlock(&codec->lock);
    for (snode_t *n = s->nodes; n; n = n->next) /* drop links to programs of an earlier turn */
        for (size_t i = 0; n->kind == K_RECORD && i < n->n_fields; i++)
            n->fields[i].id_prog = NULL;
    link_identity(s->root, ps->root, 0);
    for (size_t i = 0; i < s->root->n_fields; i++) { /* for SY_FIELD_RAW */
        sfield_t *f = &s->root->fields[i];
        char *pcf = f->type->kind == K_RECORD ? pcf_of(f->type) : NULL;
        f->type_fp = pcf ? sy_codec_crc64_avro(pcf, strlen(pcf)) : 0;
        free(pcf);
    }
    return SY_OK;
}

/* Expands, parses and adds schema text; *out is the codec's copy. */
static sy_err_code_t load_schema(sy_codec_t *codec, const char *json, bool reader, sschema_t **out,
                                 sy_err_t *err)
{
    char *expanded = sy_codec_expand_schema(json, false, err);
    sschema_t *s = expanded ? schema_parse(expanded, err) : NULL;
    free(expanded);
    if (!s)
        return err ? err->code : SY_ERR_SCHEMA;
    pthread_mutex_lock(&codec->lock);
    *out = adopt_schema(codec, s, reader);
    pthread_mutex_unlock(&codec->lock);
    return *out ? SY_OK : sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
}

void sy_codec_destroy(sy_codec_t *codec)
{
    if (!codec)
        return;
    for (size_t b = 0; b < NBUCKETS; b++) {
        for (wentry_t *e = atomic_load(&codec->buckets[b]), *next; e; e = next) {
            next = e->next;
            for (int t = 0; t < SY_TYPE_COUNT; t++)
                progset_free(atomic_load(&e->progs[t]));
            free(e);
        }
    }
    for (subject_t *s = atomic_load(&codec->subjects), *next; s; s = next) {
        next = s->next;
        free(s->topic);
        free(s);
    }
    for (sschema_t *s = codec->schemas, *next; s; s = next) {
        next = s->next;
        sschema_free(s);
    }
    sy_schemareg_destroy(codec->reg);
    pthread_mutex_destroy(&codec->lock);
    pthread_mutex_destroy(&codec->fetch_lock);
    free(codec);
}

sy_codec_t *sy_codec_new_with_registry(const sy_config_t *conf, sy_schemareg_t *reg, sy_err_t *err)
{
    sy_codec_t *codec = calloc(1, sizeof(*codec));
    if (!codec) {
        sy_schemareg_destroy(reg);
        sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&codec->lock, NULL);
    pthread_mutex_init(&codec->fetch_lock, NULL);
    codec->reg = reg; /* now owned by the codec */
    codec->auto_register = sy_config_get_bool(conf, "schema.registry.auto.register");
    codec->max_string = sy_config_get_int(conf, "codec.max.string.bytes");
    codec->max_items = sy_config_get_int(conf, "codec.max.items");
    if (codec->max_string < 0 || codec->max_items < 0) {
        sy_err_set(err, SY_ERR_CONFIG, false,
                   "codec.max.string.bytes and codec.max.items must not be negative");
        goto fail;
    }
    for (int t = 0; t < SY_TYPE_COUNT; t++) {
        int newest = -1;
        for (int i = 0; i < sy_schema_file_count; i++)
            if (!strcmp(sy_schema_files[i].type_name, type_names[t]) &&
                (newest < 0 || sy_schema_files[i].version > sy_schema_files[newest].version))
                newest = i;
        if (newest < 0) {
            sy_err_set(err, SY_ERR_SCHEMA, false, "no schemas/%s.v<N>.avsc is embedded",
                       type_names[t]);
            goto fail;
        }
    }
    for (int i = 0; i < sy_schema_file_count; i++) {
        const sy_schema_file_t *f = &sy_schema_files[i];
        sschema_t *s;
        if (load_schema(codec, f->json, true, &s, err) != SY_OK) {
            sy_err_prefix(err, "schemas/%s", f->file_name);
            goto fail;
        }
        int t = sy_type_parse(f->type_name);
        if (t < 0)
            continue;
        if (s->type != t) {
            sy_err_set(err, SY_ERR_SCHEMA, false, "schemas/%s defines %s, not %s", f->file_name,
                       type_label(s->root), type_names[t]);
            goto fail;
        }
        bool newest = true;
        for (int k = 0; k < sy_schema_file_count; k++)
            if (!strcmp(sy_schema_files[k].type_name, f->type_name) &&
                sy_schema_files[k].version > f->version)
                newest = false;
        if (newest && make_reader(codec, s, err) != SY_OK) {
            sy_err_prefix(err, "schemas/%s", f->file_name);
            goto fail;
        }
    }
    return codec;
fail:
    sy_codec_destroy(codec);
    return NULL;
}

sy_codec_t *sy_codec_new(const sy_config_t *conf, sy_err_t *err)
{
    sy_schemareg_t *reg = NULL;
    const char *urls = sy_config_get(conf, "schema.registry.url");
    if (urls && *urls) {
        reg = sy_schemareg_new(urls, sy_config_get(conf, "schema.registry.basic.auth"),
                               (long)sy_config_get_int(conf, "schema.registry.timeout.ms"), err);
        if (!reg)
            return NULL;
    }
    return sy_codec_new_with_registry(conf, reg, err);
}

bool sy_codec_has_registry(const sy_codec_t *codec)
{
    return codec->reg != NULL;
}

const char *sy_codec_schema_json(const sy_codec_t *codec, sy_type_t type)
{
    return (unsigned)type < SY_TYPE_COUNT ? codec->readers[type]->json : NULL;
}

const char *sy_codec_schema_canonical(const sy_codec_t *codec, sy_type_t type)
{
    return (unsigned)type < SY_TYPE_COUNT ? codec->readers[type]->canonical : NULL;
}

uint64_t sy_codec_schema_fingerprint(const sy_codec_t *codec, sy_type_t type)
{
    return (unsigned)type < SY_TYPE_COUNT ? codec->readers[type]->fingerprint : 0;
}

sy_err_code_t sy_codec_set_schema(sy_codec_t *codec, const char *json, sy_type_t *type,
                                  sy_err_t *err)
{
    sschema_t *s;
    sy_err_code_t rc = load_schema(codec, json, true, &s, err);
    if (rc != SY_OK)
        return rc;
    if (s->type < 0)
        return sy_err_set(err, SY_ERR_WRONG_TYPE, false, "schema %s is not one of our record types",
                          type_label(s->root));
    if ((rc = make_reader(codec, s, err)) != SY_OK)
        return rc;
    if (type)
        *type = (sy_type_t)s->type;
    return SY_OK;
}

sy_err_code_t sy_codec_add_schema(sy_codec_t *codec, const char *json, int *type, sy_err_t *err)
{
    sschema_t *s;
    sy_err_code_t rc = load_schema(codec, json, false, &s, err);
    if (rc == SY_OK && type)
        *type = s->type;
    return rc;
}

/* ---- Values ---- */

static int fill_defaults(dec_t *d, const snode_t *rec, avro_value_t *v, int depth)
{
    for (size_t i = 0; i < rec->n_fields && depth < MAX_DEPTH; i++) {
        const sfield_t *f = &rec->fields[i];
        avro_value_t fv;
        int rc = avro_value_get_by_index(v, i, &fv, NULL);
        if (rc)
            return d_avro(d, rc);
        if (f->def_bin && f->id_prog) {
            if (run_bytes(d, f->id_prog, f->def_bin, f->def_len, &fv))
                return -1;
        } else if (f->type->kind == K_RECORD && fill_defaults(d, f->type, &fv, depth + 1)) {
            return -1;
        }
    }
    return 0;
}

sy_err_code_t sy_codec_value_new(sy_codec_t *codec, sy_type_t type, avro_value_t *out,
                                 sy_err_t *err)
{
    if ((unsigned)type >= SY_TYPE_COUNT)
        return sy_err_set(err, SY_ERR_INVALID_ARG, false, "unknown record type %d", (int)type);
    const sschema_t *s = codec->readers[type];
    if (avro_generic_value_new(s->iface, out))
        return sy_err_set(err, SY_ERR_NOMEM, false, "avro-c: %s", avro_strerror());
    dec_t d = {0};
    if (fill_defaults(&d, s->root, out, 0)) {
        avro_value_decref(out);
        return ep_report(&d.e, type_names[type], err);
    }
    return SY_OK;
}

/* True when value is of type's current schema (the same avro-c schema, or an equal one). */
static bool value_is(sy_codec_t *codec, sy_type_t type, const avro_value_t *value)
{
    avro_schema_t vs = avro_value_get_schema(value);
    avro_schema_t rs = codec->readers[type]->avro;
    return vs == rs || (vs && avro_schema_equal(vs, rs));
}

/* ---- Encode ---- */

/* Our schema's id under <topic>-value: cached, else registered or looked up. */
static sy_err_code_t subject_id(sy_codec_t *codec, sy_type_t type, const char *topic, int32_t *id,
                                sy_err_t *err)
{
    const sschema_t *s = codec->readers[type];
    sy_err_code_t rc = SY_OK;
    char *subject = NULL;
    for (subject_t *e = atomic_load_explicit(&codec->subjects, memory_order_acquire); e;
         e = e->next) {
        if (e->type == (int)type && e->fingerprint == s->fingerprint && !strcmp(e->topic, topic)) {
            *id = e->id;
            return SY_OK;
        }
    }
    pthread_mutex_lock(&codec->fetch_lock);
    for (subject_t *e = atomic_load_explicit(&codec->subjects, memory_order_acquire); e;
         e = e->next) {
        if (e->type == (int)type && e->fingerprint == s->fingerprint && !strcmp(e->topic, topic)) {
            *id = e->id;
            goto out;
        }
    }
    if (asprintf(&subject, "%s-value", topic) < 0) {
        subject = NULL;
        rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        goto out;
    }
    rc = codec->auto_register ? sy_schemareg_register(codec->reg, subject, s->json, id, err)
                              : sy_schemareg_lookup(codec->reg, subject, s->json, id, err);
    if (rc != SY_OK) {
        if (rc == SY_ERR_NOT_FOUND)
            sy_err_prefix(err,
                          "our %s schema is not registered under %s and "
                          "schema.registry.auto.register is off",
                          type_names[type], subject);
        goto out;
    }
    sy_info("codec", "%s schema (fingerprint %016" PRIx64 ") is id %d under subject %s",
            type_names[type], s->fingerprint, (int)*id, subject);
    subject_t *e = calloc(1, sizeof(*e));
    if (!e || !(e->topic = strdup(topic))) {
        free(e);
        rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        goto out;
    }
    e->type = (int)type;
    e->fingerprint = s->fingerprint;
    e->id = *id;
    pthread_mutex_lock(&codec->lock);
    e->next = atomic_load_explicit(&codec->subjects, memory_order_relaxed);
    atomic_store_explicit(&codec->subjects, e, memory_order_release);
    /* our own records then decode without asking the registry */
    winsert(codec, WKEY_ID, (uint64_t)*id, (sschema_t *)s);
    pthread_mutex_unlock(&codec->lock);
out:
    pthread_mutex_unlock(&codec->fetch_lock);
    free(subject);
    return rc;
}

/* One sy_field_t into a field of type t (not a union). */
static int enc_field_plain(enc_t *e, const sy_codec_t *codec, const sfield_t *sf, const snode_t *t,
                           const sy_field_t *f)
{
    switch (f->kind) {
    case SY_FIELD_NULL:
        if (t->kind == K_NULL)
            return 0;
        break;
    case SY_FIELD_STRING:
        if (t->kind == K_STRING || t->kind == K_BYTES) {
            sb_varint(&e->b, (int64_t)f->len);
            sb_put(&e->b, f->s, f->len);
            return 0;
        }
        if (t->kind == K_ENUM) {
            for (size_t i = 0; i < t->n_symbols; i++)
                if (strlen(t->symbols[i]) == f->len && !memcmp(t->symbols[i], f->s, f->len)) {
                    sb_varint(&e->b, (int64_t)i);
                    return 0;
                }
            return ep_fail(&e->e, SY_ERR_INVALID_ARG, "%.*s is not a symbol of %s",
                           (int)(f->len > 64 ? 64 : f->len), f->s, t->fullname);
        }
        break;
    case SY_FIELD_LONG:
        if (t->kind == K_LONG || (t->kind == K_INT && f->l >= INT32_MIN && f->l <= INT32_MAX)) {
            sb_varint(&e->b, f->l);
            return 0;
        }
        break;
    case SY_FIELD_RAW:
        if (t->kind == K_RECORD && (unsigned)f->raw_type < SY_TYPE_COUNT && sf->type == t &&
            sf->type_fp == codec->readers[f->raw_type]->fingerprint) {
            sb_put(&e->b, f->s, f->len);
            return 0;
        }
        break;
    }
    return -1;
}

static const char *const field_kind_names[] = {"null", "string", "long", "record body"};

/* Appends the Avro binary of a record of type root from one sy_field_t per field. */
static int enc_fields(enc_t *e, const sy_codec_t *codec, const snode_t *root,
                      const sy_field_t *fields)
{
    for (size_t i = 0; i < root->n_fields; i++) {
        const sfield_t *sf = &root->fields[i];
        const snode_t *t = sf->type;
        const sy_field_t *f = &fields[i];
        int rc = -1;
        if ((unsigned)f->kind > SY_FIELD_RAW)
            return ep_fail(&e->e, SY_ERR_INVALID_ARG, "%s: unknown field kind %d", sf->name,
                           (int)f->kind);
        if (t->kind != K_UNION) {
            rc = enc_field_plain(e, codec, sf, t, f);
        } else {
            for (size_t b = 0; b < t->n_branches && rc; b++) {
                size_t mark = e->b.len;
                sb_varint(&e->b, (int64_t)b);
                if ((rc = enc_field_plain(e, codec, sf, t->branches[b], f)) != 0)
                    e->b.len = mark; /* not this branch */
                if (e->e.code)       /* a real error (an unknown enum symbol), not a mismatch */
                    break;
            }
        }
        if (rc) {
            if (!e->e.code)
                ep_fail(&e->e, SY_ERR_INVALID_ARG, "a %s does not fit its %s",
                        field_kind_names[f->kind], type_label(t));
            ep_push(&e->e, "%s", sf->name);
            return -1;
        }
    }
    return 0;
}

/* Frames and encodes a record of type from value, or from fields (one per top-level field);
 * into dst (cap bytes) when it fits, else into a new buffer. */
static sy_err_code_t encode(sy_codec_t *codec, sy_type_t type, const char *topic,
                            avro_value_t *value, const sy_field_t *fields, size_t n_fields,
                            void *dst, size_t cap, void **buf, size_t *len, sy_err_t *err)
{
    enc_t e = {.b = {.data = dst, .cap = dst ? cap : 0, .borrowed = dst != NULL}};
    sy_err_code_t rc = SY_OK;
    *buf = NULL;
    *len = 0;
    if ((unsigned)type >= SY_TYPE_COUNT)
        return sy_err_set(err, SY_ERR_INVALID_ARG, false, "unknown record type %d", (int)type);
    const sschema_t *s = codec->readers[type];
    if (value && !value_is(codec, type, value))
        return sy_err_set(err, SY_ERR_WRONG_TYPE, false,
                          "the value to encode is not a %s of our current schema (make it with "
                          "sy_codec_value_new)",
                          type_names[type]);
    if (!value && n_fields != s->root->n_fields)
        return sy_err_set(err, SY_ERR_WRONG_TYPE, false, "%zu fields given; a %s has %zu", n_fields,
                          type_names[type], s->root->n_fields);
    if (codec->reg && (!topic || !*topic))
        return sy_err_set(err, SY_ERR_INVALID_ARG, false,
                          "encoding a %s for a Schema Registry needs a topic (the subject is "
                          "<topic>-value)",
                          type_names[type]);
    size_t hint = atomic_load_explicit(&codec->size_hint[type], memory_order_relaxed);
    if (!e.b.borrowed && !sb_reserve(&e.b, hint + 64)) /* the caller's dst is as large as it is */
        return sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
    if (codec->reg) {
        int32_t id;
        if ((rc = subject_id(codec, type, topic, &id, err)) != SY_OK)
            goto out;
        uint8_t h[5] = {0x00, (uint8_t)(id >> 24), (uint8_t)(id >> 16), (uint8_t)(id >> 8),
                        (uint8_t)id};
        sb_put(&e.b, h, sizeof(h));
    } else {
        sb_byte(&e.b, 0xC3);
        sb_byte(&e.b, 0x01);
        put_le(&e.b, s->fingerprint, 8);
    }
    if (value ? enc_value(&e, value) : enc_fields(&e, codec, s->root, fields)) {
        rc = ep_report(&e.e, type_names[type], err);
        goto out;
    }
    if (e.b.oom) {
        rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        goto out;
    }
    /* the largest recent size, decaying slowly: records of one type alternate between sizes
     * (a router's ACCEPTED and RESOLVED), and the last size alone made every other one grow */
    hint = hint > e.b.len ? hint - (hint - e.b.len) / 64 : e.b.len;
    atomic_store_explicit(&codec->size_hint[type], hint, memory_order_relaxed);
    *buf = e.b.data;
    *len = e.b.len;
    e.b.data = NULL; /* now owned by the caller */
out:
    if (!e.b.borrowed)
        free(e.b.data);
    return rc;
}

sy_err_code_t sy_codec_encode(sy_codec_t *codec, sy_type_t type, const char *topic,
                              avro_value_t *value, void **buf, size_t *len, sy_err_t *err)
{
    if (!value)
        return sy_err_set(err, SY_ERR_INVALID_ARG, false, "no value to encode");
    return encode(codec, type, topic, value, NULL, 0, NULL, 0, buf, len, err);
}

int sy_codec_field_index(const sy_codec_t *codec, sy_type_t type, const char *name)
{
    if ((unsigned)type >= SY_TYPE_COUNT)
        return -1;
    const snode_t *root = codec->readers[type]->root;
    for (size_t i = 0; i < root->n_fields; i++)
        if (!strcmp(root->fields[i].name, name))
            return (int)i;
    return -1;
}

size_t sy_codec_field_count(const sy_codec_t *codec, sy_type_t type)
{
    return (unsigned)type < SY_TYPE_COUNT ? codec->readers[type]->root->n_fields : 0;
}

sy_err_code_t sy_codec_encode_fields(sy_codec_t *codec, sy_type_t type, const char *topic,
                                     const sy_field_t *fields, size_t n_fields, void **buf,
                                     size_t *len, sy_err_t *err)
{
    return encode(codec, type, topic, NULL, fields, n_fields, NULL, 0, buf, len, err);
}

sy_err_code_t sy_codec_encode_fields_into(sy_codec_t *codec, sy_type_t type, const char *topic,
                                          const sy_field_t *fields, size_t n_fields, void *dst,
                                          size_t cap, void **buf, size_t *len, sy_err_t *err)
{
    return encode(codec, type, topic, NULL, fields, n_fields, dst, cap, buf, len, err);
}

/* ---- Decode ---- */

sy_err_code_t sy_codec_peek(const void *data, size_t len, sy_codec_frame_t *frame, sy_err_t *err)
{
    const uint8_t *b = data;
    memset(frame, 0, sizeof(*frame));
    if (!data || len == 0)
        return sy_err_set(err, SY_ERR_TRUNCATED, false,
                          "empty record (0 bytes): expected a Schema Registry (0x00) or "
                          "single-object (0xC3 0x01) header");
    if (b[0] == 0x00) {
        if (len < 5)
            return sy_err_set(err, SY_ERR_TRUNCATED, false,
                              "record truncated: %zu bytes, shorter than the 5-byte Schema "
                              "Registry header",
                              len);
        frame->registry = true;
        frame->schema_id = (int32_t)(((uint32_t)b[1] << 24) | ((uint32_t)b[2] << 16) |
                                     ((uint32_t)b[3] << 8) | b[4]);
        frame->header_len = 5;
        return SY_OK;
    }
    if (b[0] == 0xC3) {
        if (len >= 2 && b[1] != 0x01)
            return sy_err_set(err, SY_ERR_BAD_MAGIC, false,
                              "bad magic: 0xC3 followed by 0x%02X, expected 0x01 (Avro "
                              "single-object encoding, version 1)",
                              b[1]);
        if (len < 10)
            return sy_err_set(err, SY_ERR_TRUNCATED, false,
                              "record truncated: %zu bytes, shorter than the 10-byte "
                              "single-object header",
                              len);
        frame->fingerprint = load_le(b + 2, 8);
        frame->header_len = 10;
        return SY_OK;
    }
    return sy_err_set(err, SY_ERR_BAD_MAGIC, false,
                      "bad magic: first byte 0x%02X is neither 0x00 (Confluent Schema Registry "
                      "framing) nor 0xC3 (Avro single-object encoding)%s",
                      b[0], b[0] == '{' || b[0] == '[' ? "; this looks like JSON, not Avro" : "");
}

/* Fetches schema id from the registry and adds it (serialized by fetch_lock). */
static wentry_t *fetch_id(sy_codec_t *codec, int32_t id, sy_err_t *err)
{
    wentry_t *e = NULL;
    char *text = NULL, **refs = NULL;
    size_t n_refs = 0;
    pthread_mutex_lock(&codec->fetch_lock);
    if ((e = wlookup(codec, WKEY_ID, (uint64_t)id)))
        goto out;
    if (sy_schemareg_get_schema_refs(codec->reg, id, &text, &refs, &n_refs, err) != SY_OK)
        goto out;
    if (n_refs) { /* e.g. Apicurio's serializer: a nested record is a schema of its own */
        char *whole = expand_with_refs(text, refs, n_refs, err);
        free(text);
        if (!(text = whole)) {
            sy_err_prefix(err, "schema id %d from the registry", (int)id);
            goto out;
        }
    }
    sschema_t *s = schema_parse(text, err);
    if (!s) {
        sy_err_prefix(err, "schema id %d from the registry", (int)id);
        goto out;
    }
    pthread_mutex_lock(&codec->lock);
    if ((s = adopt_schema(codec, s, false)))
        e = winsert(codec, WKEY_ID, (uint64_t)id, s);
    pthread_mutex_unlock(&codec->lock);
    if (!e)
        sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
    else
        sy_debug("codec", "schema id %d is %s (fingerprint %016" PRIx64 ")", (int)id,
                 type_label(s->root), s->fingerprint);
out:
    pthread_mutex_unlock(&codec->fetch_lock);
    free(text);
    for (size_t i = 0; i < n_refs; i++)
        free(refs[i]);
    free(refs);
    return e;
}

/* Reads the header: the writer schema's entry and where the Avro data starts. */
static sy_err_code_t find_writer(sy_codec_t *codec, const void *data, size_t len, wentry_t **out,
                                 size_t *header_len, sy_err_t *err)
{
    sy_codec_frame_t f;
    sy_err_code_t rc = sy_codec_peek(data, len, &f, err);
    if (rc != SY_OK)
        return rc;
    *header_len = f.header_len;
    if (!f.registry) {
        if (!(*out = wlookup(codec, WKEY_FINGERPRINT, f.fingerprint)))
            return sy_err_set(err, SY_ERR_UNKNOWN_SCHEMA, false,
                              "unknown schema fingerprint %016" PRIx64
                              " (Avro single-object encoding): not a schema this codec knows",
                              f.fingerprint);
        return SY_OK;
    }
    if ((*out = wlookup(codec, WKEY_ID, (uint64_t)(uint32_t)f.schema_id)))
        return SY_OK;
    if (!codec->reg)
        return sy_err_set(err, SY_ERR_UNKNOWN_SCHEMA, false,
                          "the record is framed for a Schema Registry (schema id %d) but no "
                          "schema.registry.url is configured",
                          (int)f.schema_id);
    if (f.schema_id < 0)
        return sy_err_set(err, SY_ERR_UNKNOWN_SCHEMA, false, "invalid schema id %d",
                          (int)f.schema_id);
    *out = fetch_id(codec, f.schema_id, err);
    return *out ? SY_OK : (err ? err->code : SY_ERR_REGISTRY);
}

static sy_err_code_t decode_entry(sy_codec_t *codec, sy_type_t type, wentry_t *e,
                                  const uint8_t *data, size_t len, avro_value_t *out, sy_err_t *err)
{
    const progset_t *ps = progs_for(codec, e, type);
    if (!ps)
        return sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
    if (ps->code)
        return sy_err_set(err, ps->code, false, "%s", ps->msg);
    dec_t d = {.p = data,
               .end = data + len,
               .max_string = codec->max_string,
               .max_items = codec->max_items};
    if (run(&d, ps->root, out))
        return ep_report(&d.e, type_names[type], err);
    if (d.p != d.end)
        return sy_err_set(err, SY_ERR_INVALID_ARG, false,
                          "%s: %zu unexpected bytes after the end of the record (is it written "
                          "with another schema than its header names?)",
                          type_names[type], (size_t)(d.end - d.p));
    return SY_OK;
}

sy_err_code_t sy_codec_decode(sy_codec_t *codec, sy_type_t type, const void *data, size_t len,
                              avro_value_t *out, sy_err_t *err)
{
    const void *body;
    size_t body_len;
    return sy_codec_decode_body(codec, type, data, len, out, &body, &body_len, err);
}

sy_err_code_t sy_codec_decode_body(sy_codec_t *codec, sy_type_t type, const void *data, size_t len,
                                   avro_value_t *out, const void **body, size_t *body_len,
                                   sy_err_t *err)
{
    wentry_t *e;
    size_t hl;
    *body = NULL;
    *body_len = 0;
    if ((unsigned)type >= SY_TYPE_COUNT)
        return sy_err_set(err, SY_ERR_INVALID_ARG, false, "unknown record type %d", (int)type);
    sy_err_code_t rc = find_writer(codec, data, len, &e, &hl, err);
    if (rc != SY_OK)
        return rc;
    if (avro_value_get_schema(out) != codec->readers[type]->avro)
        return sy_err_set(err, SY_ERR_INVALID_ARG, false,
                          "the output value is not a %s of this codec (make it with "
                          "sy_codec_value_new)",
                          type_names[type]);
    rc = decode_entry(codec, type, e, (const uint8_t *)data + hl, len - hl, out, err);
    if (rc == SY_OK && e->schema->fingerprint == codec->readers[type]->fingerprint) {
        *body = (const uint8_t *)data + hl;
        *body_len = len - hl;
    }
    return rc;
}

sy_err_code_t sy_codec_decode_any(sy_codec_t *codec, const void *data, size_t len, sy_type_t *type,
                                  avro_value_t *out, sy_err_t *err)
{
    wentry_t *e;
    size_t hl;
    avro_value_t v;
    sy_err_code_t rc = find_writer(codec, data, len, &e, &hl, err);
    if (rc != SY_OK)
        return rc;
    const snode_t *root = e->schema->root;
    int t = root->kind == K_RECORD ? sy_type_parse(root->name) : -1;
    if (t < 0) {
        char what[80];
        describe_entry(e, what, sizeof(what));
        return sy_err_set(err, SY_ERR_WRONG_TYPE, false,
                          "wrong type: the record's schema is %s (%s), not one of Switchyard's "
                          "record types",
                          type_label(root), what);
    }
    if ((rc = sy_codec_value_new(codec, (sy_type_t)t, &v, err)) != SY_OK)
        return rc;
    rc = decode_entry(codec, (sy_type_t)t, e, (const uint8_t *)data + hl, len - hl, &v, err);
    if (rc != SY_OK) {
        avro_value_decref(&v);
        return rc;
    }
    *type = (sy_type_t)t;
    *out = v;
    return SY_OK;
}

/* ======================================================================================== */
/* JSON: the plain form */

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *base64_encode(const uint8_t *p, size_t n)
{
    char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        *o++ = b64chars[(v >> 18) & 63];
        *o++ = b64chars[(v >> 12) & 63];
        *o++ = i + 1 < n ? b64chars[(v >> 6) & 63] : '=';
        *o++ = i + 2 < n ? b64chars[v & 63] : '=';
    }
    *o = '\0';
    return out;
}

/* Strict base64 (padding required); malloc'd bytes in *out, false if s is not base64. */
static bool base64_decode(const char *s, size_t len, uint8_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (len % 4)
        return false;
    uint8_t *buf = malloc(len / 4 * 3 + 1);
    if (!buf)
        return false;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        uint32_t v = 0;
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            char c = s[i + k];
            const char *pos = c ? strchr(b64chars, c) : NULL;
            if (c == '=' && i + 4 == len && k >= 2 && (k == 3 || s[i + 3] == '=')) {
                pad++;
                v <<= 6;
            } else if (pos && !pad) {
                v = (v << 6) | (uint32_t)(pos - b64chars);
            } else {
                free(buf);
                return false;
            }
        }
        buf[o++] = (uint8_t)(v >> 16);
        if (pad < 2)
            buf[o++] = (uint8_t)(v >> 8);
        if (pad < 1)
            buf[o++] = (uint8_t)v;
    }
    *out = buf;
    *n = o;
    return true;
}

static bool is_timestamp(const snode_t *t)
{
    return t->kind == K_LONG && t->logical &&
           (!strcmp(t->logical, "timestamp-millis") || !strcmp(t->logical, "timestamp-micros") ||
            !strcmp(t->logical, "local-timestamp-millis") ||
            !strcmp(t->logical, "local-timestamp-micros"));
}

/* "2024-05-01T12:00:00Z", "2024-05-01T12:00:00.123+02:00" → epoch milliseconds. */
/* True when s starts with shape: 'd' a digit, '_' any of "Tt ", anything else itself. (sscanf's
 * %2d alone would take "-1" or "+1" for an hour.) */
static bool shaped(const char *s, const char *shape)
{
    for (; *shape; s++, shape++) {
        if (*shape == 'd'   ? !isdigit((unsigned char)*s)
            : *shape == '_' ? (!*s || !strchr("Tt ", *s))
                            : *s != *shape)
            return false;
    }
    return true;
}

static bool parse_rfc3339(const char *s, int64_t *ms)
{
    int y, mo, d, h, mi, se, n = 0;
    if (!shaped(s, "dddd-dd-dd_dd:dd:dd") ||
        sscanf(s, "%4d-%2d-%2d%*1[Tt ]%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &se, &n) != 6 || !n)
        return false;
    const char *p = s + n;
    int64_t frac = 0;
    if (*p == '.') {
        int digits = 0;
        for (p++; isdigit((unsigned char)*p); p++)
            if (digits < 3)
                frac = frac * 10 + (*p - '0'), digits++;
        if (!digits)
            return false;
        while (digits++ < 3)
            frac *= 10;
    }
    long offset = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (!shaped(p + 1, "dd:dd") || sscanf(p + 1, "%2d:%2d", &oh, &om) != 2 || strlen(p) != 6 ||
            oh > 23 || om > 59)
            return false;
        offset = (oh * 60L + om) * 60L * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return false;
    }
    if (*p || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60 || y < 0)
        return false;
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = se};
    time_t t = timegm(&tm);
    *ms = ((int64_t)t - offset) * 1000 + frac;
    return true;
}

static const char *json_kind(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "?";
}

static const char *expected_desc(const snode_t *t)
{
    switch (t->kind) {
    case K_NULL:
        return "null";
    case K_BOOLEAN:
        return "a boolean";
    case K_INT:
        return "an int (32-bit integer)";
    case K_LONG:
        return is_timestamp(t) ? "a timestamp (epoch milliseconds, or an RFC 3339 string)"
                               : "a long (integer)";
    case K_FLOAT:
    case K_DOUBLE:
        return "a number";
    case K_STRING:
        return "a string";
    case K_BYTES:
    case K_FIXED:
        return "a string (or {\"base64\": ...})";
    case K_ENUM:
        return "a symbol string";
    case K_ARRAY:
        return "an array";
    case K_MAP:
        return "an object (a map)";
    case K_RECORD:
        return "an object";
    case K_UNION:
        return "a union value";
    }
    return "?";
}

static bool is_base64_object(const json_t *j)
{
    return json_is_object(j) && json_object_size(j) == 1 &&
           json_is_string(json_object_get(j, "base64"));
}

static bool enum_index(const snode_t *t, const char *s, int *idx)
{
    for (size_t i = 0; i < t->n_symbols; i++) {
        if (!strcmp(t->symbols[i], s)) {
            *idx = (int)i;
            return true;
        }
    }
    return false;
}

/* Whether JSON value j can be union branch b: strict (the natural JSON type) or loose. */
static bool accepts(const snode_t *b, const json_t *j, bool loose)
{
    int idx;
    switch (b->kind) {
    case K_NULL:
        return json_is_null(j);
    case K_BOOLEAN:
        return json_is_boolean(j);
    case K_INT:
        return json_is_integer(j) && json_integer_value(j) >= INT32_MIN &&
               json_integer_value(j) <= INT32_MAX;
    case K_LONG:
        return json_is_integer(j) || (loose && json_is_string(j) && is_timestamp(b));
    case K_FLOAT:
    case K_DOUBLE:
        return json_is_real(j) || (loose && json_is_integer(j));
    case K_STRING:
        return json_is_string(j);
    case K_BYTES:
    case K_FIXED:
        return loose && (json_is_string(j) || is_base64_object(j));
    case K_ENUM:
        return json_is_string(j) && enum_index(b, json_string_value(j), &idx);
    case K_ARRAY:
        return json_is_array(j);
    case K_MAP:
    case K_RECORD:
        return json_is_object(j);
    case K_UNION:
        return false;
    }
    return false;
}

/* Avro's JSON encoding names a union branch: {"long": 60}, {"io.switchyard.Criterion": {...}}. */
static bool branch_named(const snode_t *b, const char *key)
{
    if (is_named(b))
        return !strcmp(key, b->fullname) || !strcmp(key, b->name);
    return !strcmp(key, kind_names[b->kind]);
}

static int field_index(const snode_t *rec, const char *name)
{
    for (size_t i = 0; i < rec->n_fields; i++) {
        if (!strcmp(rec->fields[i].name, name))
            return (int)i;
        for (size_t a = 0; a < rec->fields[i].n_aliases; a++)
            if (!strcmp(rec->fields[i].aliases[a], name))
                return (int)i;
    }
    return -1;
}

static int jfill(dec_t *d, const snode_t *t, json_t *j, avro_value_t *v);

static int jfill_bytes(dec_t *d, const snode_t *t, json_t *j, avro_value_t *v)
{
    uint8_t *decoded = NULL;
    const void *p;
    size_t n;
    int rc;
    if (json_is_string(j)) {
        p = json_string_value(j);
        n = json_string_length(j);
    } else if (is_base64_object(j)) {
        json_t *s = json_object_get(j, "base64");
        if (!base64_decode(json_string_value(s), json_string_length(s), &decoded, &n))
            return ep_fail(&d->e, SY_ERR_JSON, "\"base64\" is not valid base64");
        p = decoded;
    } else {
        return ep_fail(&d->e, SY_ERR_JSON, "expected %s, got %s", expected_desc(t), json_kind(j));
    }
    if (t->kind == K_FIXED && n != t->size) {
        free(decoded);
        return ep_fail(&d->e, SY_ERR_JSON, "expected exactly %zu bytes for fixed %s, got %zu",
                       t->size, t->fullname, n);
    }
    if ((int64_t)n > d->max_string) {
        free(decoded);
        return ep_fail(&d->e, SY_ERR_TOO_LARGE,
                       "bytes of %zu bytes exceed codec.max.string.bytes (%" PRId64 ")", n,
                       d->max_string);
    }
    rc = t->kind == K_FIXED ? avro_value_set_fixed(v, (void *)p, n)
                            : avro_value_set_bytes(v, (void *)p, n);
    free(decoded);
    return rc ? d_avro(d, rc) : 0;
}

static int jfill_record(dec_t *d, const snode_t *t, json_t *j, avro_value_t *v)
{
    const char *key;
    json_t *val;
    char unknown[200] = "";
    int n_unknown = 0, rc;
    if (!json_is_object(j))
        return ep_fail(&d->e, SY_ERR_JSON, "expected an object (a %s record), got %s", t->name,
                       json_kind(j));
    json_object_foreach(j, key, val)
    {
        if (field_index(t, key) >= 0)
            continue;
        size_t used = strlen(unknown);
        snprintf(unknown + used, sizeof(unknown) - used, "%s\"%.60s\"", n_unknown ? ", " : "", key);
        n_unknown++;
    }
    if (n_unknown) {
        char known[300] = "";
        for (size_t i = 0; i < t->n_fields; i++) {
            size_t used = strlen(known);
            snprintf(known + used, sizeof(known) - used, "%s%s", i ? ", " : "", t->fields[i].name);
        }
        return ep_fail(&d->e, SY_ERR_JSON, "unknown field%s %s (%s has: %s)",
                       n_unknown > 1 ? "s" : "", unknown, t->name, known);
    }
    for (size_t i = 0; i < t->n_fields; i++) {
        const sfield_t *f = &t->fields[i];
        json_t *fj = json_object_get(j, f->name);
        for (size_t a = 0; !fj && a < f->n_aliases; a++)
            fj = json_object_get(j, f->aliases[a]);
        avro_value_t fv;
        if ((rc = avro_value_get_by_index(v, i, &fv, NULL)))
            return d_avro(d, rc);
        if (!fj) {
            if (!f->def_bin || !f->id_prog)
                return ep_fail(&d->e, SY_ERR_JSON, "missing required field \"%s\"", f->name);
            if (run_bytes(d, f->id_prog, f->def_bin, f->def_len, &fv))
                return -1;
            continue;
        }
        if (jfill(d, f->type, fj, &fv)) {
            ep_push(&d->e, "%s", f->name);
            return -1;
        }
    }
    return 0;
}

static int jfill_union(dec_t *d, const snode_t *t, json_t *j, avro_value_t *v)
{
    int pick = -1, rc;
    json_t *inner = j;
    if (json_is_object(j) && json_object_size(j) == 1) {
        const char *key = json_object_iter_key(json_object_iter(j));
        for (size_t i = 0; i < t->n_branches && pick < 0; i++) {
            if (branch_named(t->branches[i], key)) {
                pick = (int)i;
                inner = json_object_iter_value(json_object_iter(j));
            }
        }
    }
    for (int loose = 0; loose <= 1 && pick < 0; loose++)
        for (size_t i = 0; i < t->n_branches && pick < 0; i++)
            if (accepts(t->branches[i], j, loose))
                pick = (int)i;
    if (pick < 0) {
        char want[200] = "";
        for (size_t i = 0; i < t->n_branches; i++) {
            size_t used = strlen(want);
            snprintf(want + used, sizeof(want) - used, "%s%s",
                     i == 0                   ? ""
                     : i + 1 == t->n_branches ? " or "
                                              : ", ",
                     expected_desc(t->branches[i]));
        }
        return ep_fail(&d->e, SY_ERR_JSON, "expected %s, got %s", want, json_kind(j));
    }
    avro_value_t b;
    if ((rc = avro_value_set_branch(v, pick, &b)))
        return d_avro(d, rc);
    return jfill(d, t->branches[pick], inner, &b);
}

static int jfill(dec_t *d, const snode_t *t, json_t *j, avro_value_t *v)
{
    int rc = 0;
    if (++d->depth > MAX_DEPTH)
        return ep_fail(&d->e, SY_ERR_JSON, "JSON nested deeper than %d", MAX_DEPTH);
    switch (t->kind) {
    case K_NULL:
        if (!json_is_null(j))
            goto mismatch;
        rc = avro_value_set_null(v);
        break;
    case K_BOOLEAN:
        if (!json_is_boolean(j))
            goto mismatch;
        rc = avro_value_set_boolean(v, json_is_true(j));
        break;
    case K_INT:
        if (!json_is_integer(j))
            goto mismatch;
        if (json_integer_value(j) < INT32_MIN || json_integer_value(j) > INT32_MAX)
            return ep_fail(&d->e, SY_ERR_JSON, "%" JSON_INTEGER_FORMAT " does not fit an int",
                           json_integer_value(j));
        rc = avro_value_set_int(v, (int32_t)json_integer_value(j));
        break;
    case K_LONG: {
        int64_t x;
        if (json_is_integer(j)) {
            x = json_integer_value(j);
        } else if (json_is_string(j) && is_timestamp(t)) {
            if (!parse_rfc3339(json_string_value(j), &x))
                return ep_fail(&d->e, SY_ERR_JSON,
                               "\"%.60s\" is not an RFC 3339 time (like 2024-05-01T12:00:00Z)",
                               json_string_value(j));
            if (strstr(t->logical, "micros"))
                x *= 1000;
        } else {
            goto mismatch;
        }
        rc = avro_value_set_long(v, x);
        break;
    }
    case K_FLOAT:
    case K_DOUBLE:
        if (!json_is_number(j))
            goto mismatch;
        rc = t->kind == K_FLOAT ? avro_value_set_float(v, (float)json_number_value(j))
                                : avro_value_set_double(v, json_number_value(j));
        break;
    case K_STRING:
        if (!json_is_string(j))
            goto mismatch;
        if ((int64_t)json_string_length(j) > d->max_string)
            return ep_fail(&d->e, SY_ERR_TOO_LARGE,
                           "string of %zu bytes exceeds codec.max.string.bytes (%" PRId64 ")",
                           json_string_length(j), d->max_string);
        rc = avro_value_set_string_len(v, json_string_value(j), json_string_length(j) + 1);
        break;
    case K_BYTES:
    case K_FIXED:
        rc = jfill_bytes(d, t, j, v);
        d->depth--;
        return rc;
    case K_ENUM: {
        int idx;
        if (!json_is_string(j))
            goto mismatch;
        if (!enum_index(t, json_string_value(j), &idx)) {
            char symbols[300] = "";
            for (size_t i = 0; i < t->n_symbols; i++) {
                size_t used = strlen(symbols);
                snprintf(symbols + used, sizeof(symbols) - used, "%s%s", i ? ", " : "",
                         t->symbols[i]);
            }
            return ep_fail(&d->e, SY_ERR_JSON, "\"%.60s\" is not a %s (one of: %s)",
                           json_string_value(j), t->name, symbols);
        }
        rc = avro_value_set_enum(v, idx);
        break;
    }
    case K_ARRAY:
    case K_MAP: {
        bool map = t->kind == K_MAP;
        if (map ? !json_is_object(j) : !json_is_array(j))
            goto mismatch;
        size_t n = map ? json_object_size(j) : json_array_size(j);
        if ((int64_t)n > d->max_items)
            return ep_fail(&d->e, SY_ERR_TOO_LARGE,
                           "%s of %zu items exceeds codec.max.items (%" PRId64 ")",
                           map ? "map" : "array", n, d->max_items);
        if ((rc = avro_value_reset(v)))
            break;
        if (map) {
            const char *key;
            json_t *item;
            json_object_foreach(j, key, item)
            {
                avro_value_t c;
                if ((int64_t)strlen(key) > d->max_string) /* as the decoder checks it */
                    return ep_fail(&d->e, SY_ERR_TOO_LARGE,
                                   "map key of %zu bytes exceeds codec.max.string.bytes (%" PRId64
                                   ")",
                                   strlen(key), d->max_string);
                if ((rc = avro_value_add(v, key, &c, NULL, NULL)))
                    return d_avro(d, rc);
                if (jfill(d, t->items, item, &c)) {
                    ep_push(&d->e, "[\"%.60s\"]", key);
                    return -1;
                }
            }
        } else {
            size_t i;
            json_t *item;
            json_array_foreach(j, i, item)
            {
                avro_value_t c;
                if ((rc = avro_value_append(v, &c, NULL)))
                    return d_avro(d, rc);
                if (jfill(d, t->items, item, &c)) {
                    ep_push(&d->e, "[%zu]", i);
                    return -1;
                }
            }
        }
        break;
    }
    case K_RECORD:
        rc = jfill_record(d, t, j, v);
        d->depth--;
        return rc;
    case K_UNION:
        rc = jfill_union(d, t, j, v);
        d->depth--;
        return rc;
    }
    d->depth--;
    return rc ? d_avro(d, rc) : 0;
mismatch:
    return ep_fail(&d->e, SY_ERR_JSON, "expected %s, got %s", expected_desc(t), json_kind(j));
}

sy_err_code_t sy_codec_from_json(sy_codec_t *codec, sy_type_t type, json_t *json, avro_value_t *out,
                                 sy_err_t *err)
{
    if ((unsigned)type >= SY_TYPE_COUNT)
        return sy_err_set(err, SY_ERR_INVALID_ARG, false, "unknown record type %d", (int)type);
    if (avro_value_get_schema(out) != codec->readers[type]->avro)
        return sy_err_set(err, SY_ERR_INVALID_ARG, false,
                          "the output value is not a %s of this codec (make it with "
                          "sy_codec_value_new)",
                          type_names[type]);
    if (!json)
        return sy_err_set(err, SY_ERR_JSON, false, "%s: no JSON value", type_names[type]);
    dec_t d = {.max_string = codec->max_string, .max_items = codec->max_items};
    if (jfill(&d, codec->readers[type]->root, json, out))
        return ep_report(&d.e, type_names[type], err);
    return SY_OK;
}

static json_t *bytes_json(errpath_t *e, const void *p, size_t n)
{
    if (utf8_valid(p, n)) {
        json_t *s = json_stringn(n ? p : "", n);
        if (!s)
            ep_fail(e, SY_ERR_NOMEM, "out of memory");
        return s;
    }
    char *b64 = base64_encode(p, n);
    json_t *o = b64 ? json_pack("{s:s}", "base64", b64) : NULL;
    free(b64);
    if (!o)
        ep_fail(e, SY_ERR_NOMEM, "out of memory");
    return o;
}

static json_t *jdump(errpath_t *e, avro_value_t *v, int depth)
{
    json_t *out = NULL;
    int rc = 0;
    if (depth > MAX_DEPTH) {
        ep_fail(e, SY_ERR_JSON, "value nested deeper than %d", MAX_DEPTH);
        return NULL;
    }
    switch (avro_value_get_type(v)) {
    case AVRO_NULL:
        return json_null();
    case AVRO_BOOLEAN: {
        int x = 0;
        rc = avro_value_get_boolean(v, &x);
        out = json_boolean(x);
        break;
    }
    case AVRO_INT32: {
        int32_t x = 0;
        rc = avro_value_get_int(v, &x);
        out = json_integer(x);
        break;
    }
    case AVRO_INT64: {
        int64_t x = 0;
        rc = avro_value_get_long(v, &x);
        out = json_integer(x);
        break;
    }
    case AVRO_FLOAT:
    case AVRO_DOUBLE: {
        double x = 0;
        if (avro_value_get_type(v) == AVRO_FLOAT) {
            float f = 0;
            rc = avro_value_get_float(v, &f);
            x = f;
        } else {
            rc = avro_value_get_double(v, &x);
        }
        if (!rc && !(out = json_real(x))) {
            ep_fail(e, SY_ERR_JSON, "%g cannot be written in JSON", x);
            return NULL;
        }
        break;
    }
    case AVRO_STRING: {
        const char *s = NULL;
        size_t size = 0;
        if ((rc = avro_value_get_string(v, &s, &size)))
            break;
        size_t n = s && size ? size - 1 : 0;
        if (!utf8_valid(s, n)) {
            ep_fail(e, SY_ERR_JSON, "string is not valid UTF-8");
            return NULL;
        }
        out = json_stringn(n ? s : "", n);
        break;
    }
    case AVRO_BYTES:
    case AVRO_FIXED: {
        const void *p = NULL;
        size_t n = 0;
        rc = avro_value_get_type(v) == AVRO_BYTES ? avro_value_get_bytes(v, &p, &n)
                                                  : avro_value_get_fixed(v, &p, &n);
        if (rc)
            break;
        return bytes_json(e, p, n);
    }
    case AVRO_ENUM: {
        int x = 0;
        if ((rc = avro_value_get_enum(v, &x)))
            break;
        avro_schema_t es = avro_value_get_schema(v);
        while (es && is_avro_link(es))
            es = avro_schema_link_target(es);
        const char *sym = avro_schema_enum_get(es, x);
        if (!sym) {
            ep_fail(e, SY_ERR_JSON, "enum index %d has no symbol", x);
            return NULL;
        }
        out = json_string(sym);
        break;
    }
    case AVRO_ARRAY:
    case AVRO_MAP:
    case AVRO_RECORD: {
        avro_type_t t = avro_value_get_type(v);
        size_t n = 0;
        if ((rc = avro_value_get_size(v, &n)))
            break;
        out = t == AVRO_ARRAY ? json_array() : json_object();
        for (size_t i = 0; out && i < n; i++) {
            avro_value_t c;
            const char *name = NULL;
            if ((rc = avro_value_get_by_index(v, i, &c, t == AVRO_ARRAY ? NULL : &name)))
                break;
            json_t *cj = jdump(e, &c, depth + 1);
            if (!cj) {
                if (t == AVRO_ARRAY)
                    ep_push(e, "[%zu]", i);
                else if (t == AVRO_MAP)
                    ep_push(e, "[\"%.60s\"]", name);
                else
                    ep_push(e, "%s", name);
                json_decref(out);
                return NULL;
            }
            /* json_object_set_new refuses a key that is not UTF-8: fail as a string
             * value does, rather than drop the entry from the output silently */
            if (t != AVRO_ARRAY && !utf8_valid(name, strlen(name))) {
                json_decref(cj);
                json_decref(out);
                ep_fail(e, SY_ERR_JSON, "map key is not valid UTF-8");
                return NULL;
            }
            if ((t == AVRO_ARRAY ? json_array_append_new(out, cj)
                                 : json_object_set_new(out, name, cj)) != 0) {
                json_decref(out);
                ep_fail(e, SY_ERR_NOMEM, "out of memory");
                return NULL;
            }
        }
        break;
    }
    case AVRO_UNION: {
        int disc = -1;
        avro_value_t b;
        if ((rc = avro_value_get_discriminant(v, &disc)))
            break;
        if (disc < 0) {
            avro_schema_t b0 = avro_schema_union_branch(avro_value_get_schema(v), 0);
            if (b0 && is_avro_null(b0))
                return json_null();
            ep_fail(e, SY_ERR_JSON, "union has no branch selected");
            return NULL;
        }
        if ((rc = avro_value_get_current_branch(v, &b)))
            break;
        return jdump(e, &b, depth + 1);
    }
    default:
        ep_fail(e, SY_ERR_JSON, "unsupported avro value type %d", (int)avro_value_get_type(v));
        return NULL;
    }
    if (rc) {
        json_decref(out);
        ep_fail(e, SY_ERR_INTERNAL, "avro-c: %s", avro_strerror());
        return NULL;
    }
    if (!out)
        ep_fail(e, SY_ERR_NOMEM, "out of memory");
    return out;
}

json_t *sy_codec_to_json(const avro_value_t *value, sy_err_t *err)
{
    errpath_t e = {0};
    avro_value_t v = *value;
    json_t *out = jdump(&e, &v, 0);
    if (!out) {
        avro_schema_t s = avro_value_get_schema(&v);
        ep_report(&e, s && is_avro_record(s) ? avro_schema_name(s) : "value", err);
    }
    return out;
}
