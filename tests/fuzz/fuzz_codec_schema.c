/* fuzz_codec_schema: writer schemas the codec did not write itself — what a Schema Registry
 * hands back for the schema id of a Confluent-framed record (any producer with registry access
 * can register one; the codec parses it exactly as sy_codec_add_schema does), and schemas given
 * to sy_codec_add_schema. The input is "<schema JSON>\0<Avro body>":
 *   - sy_codec_canonical_form and sy_codec_expand_schema of the schema text;
 *   - a fresh codec (no registry) after sy_codec_add_schema(schema) decodes the single-object
 *     framing (0xC3 0x01 + the schema's fingerprint) of the body as every record type and
 *     with decode_any: schema parsing, the writer → reader resolution (defaults, promotions,
 *     unions, enums, aliases) and the compiled decoding program all run on the fuzzer's
 *     schema. (The registry's side — an id fetched, answered, cached — is fuzz_codec_decode's;
 *     a codec with a registry per input would spend the run making curl handles.)
 * Invariants: a decoded value re-encodes and decodes to the same bytes (with our schema); the
 * canonical form is itself a schema whose canonical form it is (idempotent). */
#include <jansson.h>

#include "fuzz.h"
#include "sy_codec.h"

static sy_config_t *conf;
static sy_codec_t *plain; /* encodes values for the round trip; never sees the fuzzer's schema */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    sy_err_t err = SY_ERR_INIT;
    fuzz_quiet();
    conf = sy_config_new();
    if (!conf || sy_config_set(conf, "codec.max.string.bytes", "4096", &err) != SY_OK ||
        sy_config_set(conf, "codec.max.items", "64", &err) != SY_OK ||
        !(plain = sy_codec_new(conf, &err))) {
        fprintf(stderr, "fuzz_codec_schema: setup failed: %s\n", err.msg);
        abort();
    }
    return 0;
}

static void check_value(sy_type_t t, avro_value_t *v)
{
    sy_err_t err = SY_ERR_INIT;
    void *b1 = NULL, *b2 = NULL;
    size_t l1 = 0, l2 = 0;
    FUZZ_ASSERT(sy_codec_encode(plain, t, NULL, v, &b1, &l1, &err) == SY_OK,
                "%s: a decoded value does not encode: %s", sy_type_name(t), err.msg);
    avro_value_t v2;
    FUZZ_ASSERT(sy_codec_value_new(plain, t, &v2, &err) == SY_OK, "%s", err.msg);
    FUZZ_ASSERT(sy_codec_decode(plain, t, b1, l1, &v2, &err) == SY_OK,
                "%s: our encoding does not decode: %s", sy_type_name(t), err.msg);
    FUZZ_ASSERT(sy_codec_encode(plain, t, NULL, &v2, &b2, &l2, &err) == SY_OK && l1 == l2 &&
                    !memcmp(b1, b2, l1),
                "%s: re-encoding differs", sy_type_name(t));
    json_t *j = sy_codec_to_json(v, &err); /* our types: strings checked, no floats */
    FUZZ_ASSERT(j, "%s: a decoded value has no JSON form: %s", sy_type_name(t), err.msg);
    json_decref(j);
    free(b1);
    free(b2);
    avro_value_decref(&v2);
}

static void decode_all(sy_codec_t *codec, const uint8_t *rec, size_t len)
{
    sy_err_t err = SY_ERR_INIT;
    for (int t = 0; t < SY_TYPE_COUNT; t++) {
        avro_value_t v;
        if (sy_codec_value_new(codec, (sy_type_t)t, &v, &err) != SY_OK)
            abort();
        if (sy_codec_decode(codec, (sy_type_t)t, rec, len, &v, &err) == SY_OK)
            check_value((sy_type_t)t, &v);
        else
            FUZZ_ASSERT(err.msg[0], "%s: error without a message", sy_type_name((sy_type_t)t));
        avro_value_decref(&v);
    }
    sy_type_t type;
    avro_value_t any;
    if (sy_codec_decode_any(codec, rec, len, &type, &any, &err) == SY_OK) {
        check_value(type, &any);
        avro_value_decref(&any);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sy_err_t err = SY_ERR_INIT;
    char *schema;
    const uint8_t *body;
    size_t body_len;
    fuzz_split(data, size, "", 1, &schema, &body, &body_len); /* at the first NUL */

    char *pcf = sy_codec_canonical_form(schema, &err);
    if (pcf) {
        char *again = sy_codec_canonical_form(pcf, &err);
        FUZZ_ASSERT(again && !strcmp(pcf, again), "canonical form not idempotent:\n%s\n%s", pcf,
                    again ? again : err.msg);
        free(again);
    }
    free(pcf);
    /* add_schema expands references to our types first (a writer's "Criterion"); the
     * fingerprint is that of the expansion's canonical form */
    char *expanded = sy_codec_expand_schema(schema, size && (data[0] & 1), &err);
    pcf = expanded ? sy_codec_canonical_form(expanded, &err) : NULL;
    free(expanded);

    sy_codec_t *codec = sy_codec_new(conf, &err);
    if (!codec)
        abort();
    uint8_t *rec = malloc(body_len + 10);
    if (!rec)
        abort();
    int type = -1;
    if (sy_codec_add_schema(codec, schema, &type, &err) == SY_OK) {
        FUZZ_ASSERT(pcf, "add_schema accepts a schema whose expansion has no canonical form");
        uint64_t fp = sy_codec_crc64_avro(pcf, strlen(pcf));
        rec[0] = 0xC3;
        rec[1] = 0x01;
        for (int i = 0; i < 8; i++)
            rec[2 + i] = (uint8_t)(fp >> (8 * i));
        memcpy(rec + 10, body, body_len);
        decode_all(codec, rec, body_len + 10);
    }
    free(rec);
    free(pcf);
    sy_codec_destroy(codec);
    free(schema);
    return 0;
}
