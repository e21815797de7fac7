/* cmd_codec: switchyard encode | decode | schemas — JSON ↔ framed Avro on stdin/stdout, usable
 * with kcat to produce and inspect topics, and the schemas the binaries carry. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "sy_codec.h"
#include "sy_kafka.h"
#include "sy_schemas.h"

/* Largest input read from stdin: far above any Kafka message. */
#define MAX_INPUT (256u << 20)

static const char encode_usage[] =
    "usage: switchyard encode --type TYPE [--topic TOPIC] [--lines] [--hex | --length-prefixed]\n"
    "\n"
    "Reads the plain JSON form of a record on stdin and writes it as framed Avro on stdout:\n"
    "Confluent Schema Registry framing when schema.registry.url is set (the schema is\n"
    "registered under <TOPIC>-value), Avro single-object encoding otherwise.\n"
    "\n"
    "  -t, --type TYPE         JobRequest, RoutedJob, JobStatus, JobLog or JobControl\n"
    "  -T, --topic TOPIC       the topic the record is for (subject <TOPIC>-value); default by\n"
    "                          type: <ns>.requests, <ns>.status, <ns>.logs, <ns>.control\n"
    "                          (RoutedJob: <ns>.cluster.<cluster_name> of the record)\n"
    "  -l, --lines             several records: a sequence of JSON documents (e.g. one per line);\n"
    "                          needs --hex or --length-prefixed\n"
    "  -x, --hex               write each record as one line of hex digits\n"
    "  -R, --length-prefixed   write each record as a 4-byte big-endian length and its bytes\n"
    "                          (what `switchyard decode -R` and `kcat -C -f '%R%s'` use)\n"
    "\n"
    "With --lines, all of stdin is read before anything is written (a filter, like sort):\n"
    "close stdin, then read stdout. Records are binary and often hold the byte 0x0a (the\n"
    "length of any 5-character string): never split them on newlines; keep them as --hex\n"
    "lines, or give `kcat -P` a -D delimiter that does not occur in them.\n"
    "\n"
    "JSON: a record is an object with a member per field (fields with a default may be left\n"
    "out); a nullable value is given bare (\"timeout_ms\": 60 or null; {\"long\": 60} is\n"
    "accepted too); timestamps are epoch milliseconds or RFC 3339 strings; maps are objects;\n"
    "enums are symbol strings; bytes are a string, or {\"base64\": \"...\"}.\n"
    "\n"
    "Without --lines, stdin holds one document and stdout gets exactly the record's bytes:\n"
    "  switchyard encode -t JobRequest < req.json > req.avro\n"
    "  kcat -P -b BROKER -t switchyard.requests req.avro     # one file = one message\n"
    "Exit codes: 0 ok, 1 error, 2 bad arguments, 3 bad input (named on stderr),\n"
    "5 Schema Registry unreachable.\n";

static const char decode_usage[] =
    "usage: switchyard decode [--type TYPE] [--hex | --length-prefixed] [--pretty] [--envelope]\n"
    "\n"
    "Reads framed Avro (either framing) on stdin and prints each record as one line of plain\n"
    "JSON — the form `switchyard encode` reads.\n"
    "\n"
    "  -t, --type TYPE         require this record type (default: any, from the writer schema)\n"
    "  -x, --hex               input: one record per line in hex digits\n"
    "  -R, --length-prefixed   input: records each preceded by a 4-byte big-endian length, as\n"
    "                          written by `kcat -C -b BROKER -t TOPIC -f '%R%s'`\n"
    "  -p, --pretty            indent the JSON\n"
    "  -e, --envelope          print {\"type\": T, \"schema_id\" | \"fingerprint\": ..., "
    "\"value\": ...}\n"
    "\n"
    "Without -x / -R, stdin is one record, e.g. kcat -C -b BROKER -t TOPIC -c 1 -e -f '%s'.\n"
    "A record that does not decode is reported on stderr (what is wrong, and where) and the\n"
    "others are still printed.\n"
    "Exit codes: 0 ok, 1 error, 2 bad arguments, 3 a record did not decode,\n"
    "5 Schema Registry unreachable.\n";

static const char schemas_usage[] =
    "usage: switchyard schemas [TYPE] [--canonical | --fingerprints] [--all]\n"
    "\n"
    "Prints the Avro schemas this binary reads and writes, self-contained (a reference to a\n"
    "type defined in another schema file, like RoutedJob's JobRequest, is expanded): the\n"
    "current schema of TYPE, or of every type.\n"
    "\n"
    "  --canonical        the Parsing Canonical Form instead (one line per schema)\n"
    "  -f, --fingerprints one line per schema: file, type, CRC-64-AVRO fingerprint (the\n"
    "                     single-object header's, hex) and whether it is the current one\n"
    "  -a, --all          every embedded version, not just the current ones\n";

/* Exit code for a codec error: the registry being down is not the input's fault. */
static int exit_for(const sy_err_t *err)
{
    if (err->code == SY_ERR_REGISTRY && err->retriable)
        return SY_EXIT_REGISTRY_UNAVAILABLE; /* as for submit: docs/cli.md "Exit codes" */
    switch (err->code) {
    case SY_ERR_NOMEM:
    case SY_ERR_INTERNAL:
    case SY_ERR_IO:
        return SY_EXIT_ERROR;
    case SY_ERR_CONFIG:
        return SY_EXIT_USAGE;
    default:
        return SY_EXIT_BAD_INPUT;
    }
}

/* Reads all of f into a malloc'd, NUL-terminated buffer. NULL with a message on error. */
static char *read_all(FILE *f, size_t *len, const char *cmd)
{
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
        if (n == cap) {
            if (cap >= MAX_INPUT) {
                fprintf(stderr, "switchyard %s: input larger than %u MiB\n", cmd, MAX_INPUT >> 20);
                free(buf);
                return NULL;
            }
            char *b = realloc(buf, cap * 2 + 1);
            if (!b)
                break;
            buf = b;
            cap *= 2;
        }
    }
    if (!buf || ferror(f)) {
        fprintf(stderr, "switchyard %s: cannot read stdin: %s\n", cmd,
                buf ? strerror(errno) : "out of memory");
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* "--opt VALUE" or "--opt=VALUE": 1 and *value when argv[*i] is opt (short or long). */
static int opt_value(int argc, char **argv, int *i, const char *s, const char *l,
                     const char **value)
{
    const char *a = argv[*i];
    size_t ll = strlen(l);
    if (!strncmp(a, l, ll) && a[ll] == '=') {
        *value = a + ll + 1;
        return 1;
    }
    if (strcmp(a, s) && strcmp(a, l))
        return 0;
    if (*i + 1 >= argc) {
        fprintf(stderr, "switchyard: %s needs a value\n", l);
        return -1;
    }
    *value = argv[++*i];
    return 1;
}

static bool is_flag(const char *a, const char *s, const char *l)
{
    return !strcmp(a, s) || !strcmp(a, l);
}

/* The default topic of a record of type t (RoutedJob: from its cluster_name). */
static const char *default_topic(sy_config_t *conf, sy_type_t t, json_t *doc, char *buf,
                                 size_t size)
{
    static const char *const suffix[SY_TYPE_COUNT] = {[SY_TYPE_JOB_REQUEST] = "requests",
                                                      [SY_TYPE_JOB_STATUS] = "status",
                                                      [SY_TYPE_JOB_LOG] = "logs",
                                                      [SY_TYPE_JOB_CONTROL] = "control"};
    if (t == SY_TYPE_ROUTED_JOB) {
        json_t *name = json_object_get(doc, "cluster_name");
        if (!json_is_string(name))
            return NULL;
        char s[300];
        snprintf(s, sizeof(s), "cluster.%s", json_string_value(name));
        return sy_kafka_topic(conf, s, buf, size);
    }
    return sy_kafka_topic(conf, suffix[t], buf, size);
}

static void write_record(const void *buf, size_t len, int mode)
{
    const unsigned char *p = buf;
    if (mode == 'x') {
        for (size_t i = 0; i < len; i++)
            printf("%02x", p[i]);
        putchar('\n');
    } else if (mode == 'R') {
        unsigned char h[4] = {(unsigned char)(len >> 24), (unsigned char)(len >> 16),
                              (unsigned char)(len >> 8), (unsigned char)len};
        fwrite(h, 1, 4, stdout);
        fwrite(buf, 1, len, stdout);
    } else {
        fwrite(buf, 1, len, stdout);
    }
}

int sy_cmd_encode(sy_config_t *conf, int argc, char **argv)
{
    const char *type_name = NULL, *topic = NULL;
    bool lines = false;
    int mode = 0, rc = SY_EXIT_OK, n_docs = 0;
    sy_codec_t *codec = NULL;
    char *input = NULL;
    avro_value_t value = {NULL, NULL};
    sy_err_t err = SY_ERR_INIT;
    size_t len = 0, pos = 0;

    for (int i = 1; i < argc; i++) {
        const char *v;
        int r;
        if (is_flag(argv[i], "-h", "--help")) {
            fputs(encode_usage, stdout);
            return SY_EXIT_OK;
        } else if ((r = opt_value(argc, argv, &i, "-t", "--type", &v))) {
            if (r < 0)
                return SY_EXIT_USAGE;
            type_name = v;
        } else if ((r = opt_value(argc, argv, &i, "-T", "--topic", &v))) {
            if (r < 0)
                return SY_EXIT_USAGE;
            topic = v;
        } else if (is_flag(argv[i], "-l", "--lines")) {
            lines = true;
        } else if (is_flag(argv[i], "-x", "--hex")) {
            mode = 'x';
        } else if (is_flag(argv[i], "-R", "--length-prefixed")) {
            mode = 'R';
        } else {
            fprintf(stderr, "switchyard encode: unexpected argument \"%s\"\n\n%s", argv[i],
                    encode_usage);
            return SY_EXIT_USAGE;
        }
    }
    int type = sy_type_parse(type_name);
    if (type < 0) {
        fprintf(stderr,
                "switchyard encode: %s (JobRequest, RoutedJob, JobStatus, JobLog or "
                "JobControl)\n",
                type_name ? "unknown --type" : "--type is required");
        return SY_EXIT_USAGE;
    }
    if (lines && !mode) {
        fprintf(stderr, "switchyard encode: --lines writes several records: add --hex or "
                        "--length-prefixed so they can be told apart\n");
        return SY_EXIT_USAGE;
    }
    if (!mode && isatty(STDOUT_FILENO)) {
        fprintf(stderr, "switchyard encode: stdout is a terminal; redirect it to a file or use "
                        "--hex\n");
        return SY_EXIT_USAGE;
    }
    if (!(codec = sy_codec_new(conf, &err))) {
        fprintf(stderr, "switchyard encode: %s\n", err.msg);
        return exit_for(&err);
    }
    if (!(input = read_all(stdin, &len, "encode"))) {
        rc = SY_EXIT_ERROR;
        goto out;
    }
    if (sy_codec_value_new(codec, (sy_type_t)type, &value, &err) != SY_OK) {
        fprintf(stderr, "switchyard encode: %s\n", err.msg);
        rc = SY_EXIT_ERROR;
        goto out;
    }
    for (;;) {
        while (pos < len && isspace((unsigned char)input[pos]))
            pos++;
        if (pos >= len)
            break;
        json_error_t jerr;
        json_t *doc = json_loadb(input + pos, len - pos, JSON_DISABLE_EOF_CHECK, &jerr);
        n_docs++;
        if (!doc) {
            /* report the line in the whole input, not in the remainder */
            int line = 1;
            for (size_t k = 0; k < pos; k++)
                line += input[k] == '\n';
            fprintf(stderr, "switchyard encode: record %d: invalid JSON at line %d: %s\n", n_docs,
                    line + jerr.line - 1, jerr.text);
            rc = SY_EXIT_BAD_INPUT;
            goto out;
        }
        pos += (size_t)jerr.position;
        size_t rest = pos;
        while (!lines && rest < len && isspace((unsigned char)input[rest]))
            rest++;
        if (rest < len && !lines) { /* refuse before writing anything */
            json_decref(doc);
            fprintf(stderr, "switchyard encode: more than one JSON document on stdin (use "
                            "--lines for several records)\n");
            rc = SY_EXIT_BAD_INPUT;
            goto out;
        }
        char topic_buf[512];
        const char *t =
            topic ? topic : default_topic(conf, (sy_type_t)type, doc, topic_buf, sizeof(topic_buf));
        void *buf = NULL;
        size_t blen = 0;
        sy_err_code_t ec = sy_codec_from_json(codec, (sy_type_t)type, doc, &value, &err);
        json_decref(doc);
        if (ec == SY_OK)
            ec = sy_codec_encode(codec, (sy_type_t)type, t, &value, &buf, &blen, &err);
        if (ec != SY_OK) {
            fprintf(stderr, "switchyard encode: record %d: %s: %s\n", n_docs,
                    sy_err_code_name(err.code), err.msg);
            rc = exit_for(&err);
            goto out;
        }
        write_record(buf, blen, mode);
        free(buf);
    }
    if (!n_docs) {
        fprintf(stderr, "switchyard encode: no JSON on stdin\n");
        rc = SY_EXIT_BAD_INPUT;
    }
out:
    if (fflush(stdout) != 0 && rc == SY_EXIT_OK) {
        fprintf(stderr, "switchyard encode: writing stdout: %s\n", strerror(errno));
        rc = SY_EXIT_ERROR;
    }
    if (value.iface)
        avro_value_decref(&value);
    free(input);
    sy_codec_destroy(codec);
    return rc;
}

/* ---- decode ---- */

static int hexval(int c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Decodes hex digits s[0..n) (whitespace ignored) in place into out; -1 if not hex. */
static long unhex(const char *s, size_t n, unsigned char *out)
{
    long o = 0;
    int hi = -1;
    for (size_t i = 0; i < n; i++) {
        if (isspace((unsigned char)s[i]))
            continue;
        int v = hexval((unsigned char)s[i]);
        if (v < 0)
            return -1;
        if (hi < 0) {
            hi = v;
        } else {
            out[o++] = (unsigned char)(hi << 4 | v);
            hi = -1;
        }
    }
    return hi < 0 ? o : -1;
}

typedef struct decode_opts {
    int type; /* -1 = any */
    bool pretty, envelope;
} decode_opts_t;

/* Decodes and prints one record; returns the exit code it deserves. */
static int decode_one(sy_codec_t *codec, const decode_opts_t *o, const void *data, size_t len,
                      int n)
{
    sy_err_t err = SY_ERR_INIT;
    avro_value_t value = {NULL, NULL};
    json_t *j = NULL;
    char *text = NULL;
    sy_type_t type = (sy_type_t)o->type;
    int rc = SY_EXIT_OK;
    sy_err_code_t ec;
    if (o->type >= 0) {
        ec = sy_codec_value_new(codec, type, &value, &err);
        if (ec == SY_OK)
            ec = sy_codec_decode(codec, type, data, len, &value, &err);
    } else {
        ec = sy_codec_decode_any(codec, data, len, &type, &value, &err);
    }
    if (ec == SY_OK && !(j = sy_codec_to_json(&value, &err)))
        ec = err.code;
    if (ec != SY_OK) {
        fprintf(stderr, "switchyard decode: record %d (%zu bytes): %s: %s\n", n, len,
                sy_err_code_name(err.code), err.msg);
        rc = exit_for(&err);
        goto out;
    }
    if (o->envelope) {
        sy_codec_frame_t f;
        sy_codec_peek(data, len, &f, NULL);
        char fp[32];
        snprintf(fp, sizeof(fp), "%016" PRIx64, f.fingerprint);
        json_t *env = json_pack("{s:s}", "type", sy_type_name(type));
        if (f.registry)
            json_object_set_new(env, "schema_id", json_integer(f.schema_id));
        else
            json_object_set_new(env, "fingerprint", json_string(fp));
        json_object_set_new(env, "value", j);
        j = env;
    }
    text = json_dumps(j, (o->pretty ? JSON_INDENT(2) : JSON_COMPACT) | JSON_ENCODE_ANY);
    if (!text) {
        fprintf(stderr, "switchyard decode: out of memory\n");
        rc = SY_EXIT_ERROR;
        goto out;
    }
    puts(text);
out:
    free(text);
    json_decref(j);
    if (value.iface)
        avro_value_decref(&value);
    return rc;
}

int sy_cmd_decode(sy_config_t *conf, int argc, char **argv)
{
    decode_opts_t o = {.type = -1};
    int mode = 0, rc = SY_EXIT_OK, n = 0;
    sy_codec_t *codec = NULL;
    sy_err_t err = SY_ERR_INIT;
    char *input = NULL;
    size_t len = 0;

    for (int i = 1; i < argc; i++) {
        const char *v;
        int r;
        if (is_flag(argv[i], "-h", "--help")) {
            fputs(decode_usage, stdout);
            return SY_EXIT_OK;
        } else if ((r = opt_value(argc, argv, &i, "-t", "--type", &v))) {
            if (r < 0)
                return SY_EXIT_USAGE;
            if ((o.type = sy_type_parse(v)) < 0) {
                fprintf(stderr,
                        "switchyard decode: unknown --type \"%s\" (JobRequest, "
                        "RoutedJob, JobStatus, JobLog or JobControl)\n",
                        v);
                return SY_EXIT_USAGE;
            }
        } else if (is_flag(argv[i], "-x", "--hex")) {
            mode = 'x';
        } else if (is_flag(argv[i], "-R", "--length-prefixed")) {
            mode = 'R';
        } else if (is_flag(argv[i], "-p", "--pretty")) {
            o.pretty = true;
        } else if (is_flag(argv[i], "-e", "--envelope")) {
            o.envelope = true;
        } else {
            fprintf(stderr, "switchyard decode: unexpected argument \"%s\"\n\n%s", argv[i],
                    decode_usage);
            return SY_EXIT_USAGE;
        }
    }
    if (!(codec = sy_codec_new(conf, &err))) {
        fprintf(stderr, "switchyard decode: %s\n", err.msg);
        return exit_for(&err);
    }
    if (!(input = read_all(stdin, &len, "decode"))) {
        rc = SY_EXIT_ERROR;
        goto out;
    }
    if (mode == 0) {
        rc = decode_one(codec, &o, input, len, 1);
    } else if (mode == 'x') {
        for (char *line = input, *end; line < input + len; line = end + 1) {
            end = memchr(line, '\n', (size_t)(input + len - line));
            if (!end)
                end = input + len;
            size_t l = (size_t)(end - line);
            size_t k = 0;
            while (k < l && isspace((unsigned char)line[k]))
                k++;
            if (k == l)
                continue;
            n++;
            long blen = unhex(line, l, (unsigned char *)line); /* in place: output is shorter */
            int r = blen < 0 ? SY_EXIT_BAD_INPUT : decode_one(codec, &o, line, (size_t)blen, n);
            if (blen < 0)
                fprintf(stderr, "switchyard decode: record %d: line is not hex digits\n", n);
            if (r != SY_EXIT_OK && (rc == SY_EXIT_OK || r == SY_EXIT_UNAVAILABLE))
                rc = r;
        }
    } else {
        const unsigned char *p = (const unsigned char *)input, *end = p + len;
        while (p < end) {
            n++;
            if (end - p < 4) {
                fprintf(stderr,
                        "switchyard decode: record %d: truncated length prefix (%zu "
                        "bytes left)\n",
                        n, (size_t)(end - p));
                rc = SY_EXIT_BAD_INPUT;
                break;
            }
            uint32_t l = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
            p += 4;
            if (l == 0xFFFFFFFFu) /* kcat's -1: a null value (tombstone) */
                continue;
            if (l > (size_t)(end - p)) {
                fprintf(stderr,
                        "switchyard decode: record %d: length prefix says %u bytes, "
                        "only %zu left\n",
                        n, l, (size_t)(end - p));
                rc = SY_EXIT_BAD_INPUT;
                break;
            }
            int r = decode_one(codec, &o, p, l, n);
            if (r != SY_EXIT_OK && (rc == SY_EXIT_OK || r == SY_EXIT_UNAVAILABLE))
                rc = r;
            p += l;
        }
    }
out:
    fflush(stdout);
    free(input);
    sy_codec_destroy(codec);
    return rc;
}

/* ---- schemas ---- */

int sy_cmd_schemas(sy_config_t *conf, int argc, char **argv)
{
    int type = -1, rc = SY_EXIT_OK;
    bool canonical = false, fingerprints = false, all = false;
    sy_err_t err = SY_ERR_INIT;
    sy_codec_t *codec = NULL;

    for (int i = 1; i < argc; i++) {
        if (is_flag(argv[i], "-h", "--help")) {
            fputs(schemas_usage, stdout);
            return SY_EXIT_OK;
        } else if (!strcmp(argv[i], "--canonical")) {
            canonical = true;
        } else if (is_flag(argv[i], "-f", "--fingerprints")) {
            fingerprints = true;
        } else if (is_flag(argv[i], "-a", "--all")) {
            all = true;
        } else if (argv[i][0] != '-' && type < 0 && (type = sy_type_parse(argv[i])) >= 0) {
            continue;
        } else {
            fprintf(stderr, "switchyard schemas: unexpected argument \"%s\"\n\n%s", argv[i],
                    schemas_usage);
            return SY_EXIT_USAGE;
        }
    }
    /* the schemas alone: no registry needed */
    if (!(codec = sy_codec_new_with_registry(conf, NULL, &err))) {
        fprintf(stderr, "switchyard schemas: %s\n", err.msg);
        return SY_EXIT_ERROR;
    }
    for (int i = 0; i < sy_schema_file_count; i++) {
        const sy_schema_file_t *f = &sy_schema_files[i];
        int t = sy_type_parse(f->type_name);
        if (type >= 0 && t != type)
            continue;
        char *expanded = sy_codec_expand_schema(f->json, false, &err);
        char *pcf = expanded ? sy_codec_canonical_form(expanded, &err) : NULL;
        if (!pcf) {
            fprintf(stderr, "switchyard schemas: schemas/%s: %s\n", f->file_name, err.msg);
            free(expanded);
            rc = SY_EXIT_ERROR;
            goto out;
        }
        uint64_t fp = sy_codec_crc64_avro(pcf, strlen(pcf));
        bool current = t >= 0 && fp == sy_codec_schema_fingerprint(codec, (sy_type_t)t);
        if (all || current) {
            if (fingerprints) {
                printf("%-22s %-11s %016" PRIx64 "%s\n", f->file_name, f->type_name, fp,
                       current ? "  current" : "");
            } else if (canonical) {
                printf("%s\n", pcf);
            } else {
                char *pretty = sy_codec_expand_schema(f->json, true, &err);
                if (pretty)
                    printf("%s\n", pretty);
                free(pretty);
            }
        }
        free(expanded);
        free(pcf);
    }
out:
    sy_codec_destroy(codec);
    return rc;
}
