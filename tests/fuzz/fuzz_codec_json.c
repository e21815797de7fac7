/* fuzz_codec_json: the plain JSON form people write (`switchyard encode`, `submit --json`,
 * Airflow tasks building requests). The input is a JSON document, read as `switchyard encode`
 * reads one; it is filled into every record type with sy_codec_from_json. Invariants when a
 * type accepts it:
 *   - the value encodes (from_json leaves no union unset), the bytes decode, and re-encoding
 *     the decoded value gives the same bytes;
 *   - its JSON form exists (anything that came from JSON can go back to JSON), reads back, and
 *     encodes to the same bytes (so the plain form loses nothing: base64 bytes, timestamps,
 *     wrapped unions, defaults);
 *   - sy_codec_to_json of the decoded value equals that of the original. */
#include <jansson.h>

#include "fuzz.h"
#include "sy_codec.h"

static sy_codec_t *codec;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    sy_err_t err = SY_ERR_INIT;
    fuzz_quiet();
    sy_config_t *conf = sy_config_new();
    /* small limits, so the TOO_LARGE paths are reachable with small inputs */
    if (!conf || sy_config_set(conf, "codec.max.string.bytes", "200", &err) != SY_OK ||
        sy_config_set(conf, "codec.max.items", "20", &err) != SY_OK ||
        !(codec = sy_codec_new(conf, &err))) {
        fprintf(stderr, "fuzz_codec_json: setup failed: %s\n", err.msg);
        abort();
    }
    sy_config_destroy(conf);
    return 0;
}

static void *encode(sy_type_t t, avro_value_t *v, size_t *len)
{
    sy_err_t err = SY_ERR_INIT;
    void *buf = NULL;
    FUZZ_ASSERT(sy_codec_encode(codec, t, NULL, v, &buf, len, &err) == SY_OK,
                "%s: a value made from JSON does not encode: %s", sy_type_name(t), err.msg);
    return buf;
}

static void one_type(sy_type_t t, json_t *doc)
{
    sy_err_t err = SY_ERR_INIT;
    avro_value_t v, v2, v3;
    if (sy_codec_value_new(codec, t, &v, &err) != SY_OK)
        abort();
    sy_err_code_t rc = sy_codec_from_json(codec, t, doc, &v, &err);
    FUZZ_ASSERT(rc == SY_OK || err.msg[0], "%s: error without a message", sy_type_name(t));
    if (rc != SY_OK) {
        avro_value_decref(&v);
        return;
    }
    size_t len1, len2, len3;
    void *b1 = encode(t, &v, &len1);
    FUZZ_ASSERT(sy_codec_value_new(codec, t, &v2, &err) == SY_OK, "%s", err.msg);
    FUZZ_ASSERT(sy_codec_decode(codec, t, b1, len1, &v2, &err) == SY_OK,
                "%s: our encoding does not decode: %s", sy_type_name(t), err.msg);
    void *b2 = encode(t, &v2, &len2);
    FUZZ_ASSERT(len1 == len2 && !memcmp(b1, b2, len1), "%s: re-encoding differs", sy_type_name(t));

    json_t *j1 = sy_codec_to_json(&v, &err);
    FUZZ_ASSERT(j1, "%s: a value made from JSON has no JSON form: %s", sy_type_name(t), err.msg);
    json_t *j2 = sy_codec_to_json(&v2, &err);
    FUZZ_ASSERT(j2 && json_equal(j1, j2), "%s: the decoded value's JSON differs", sy_type_name(t));
    FUZZ_ASSERT(sy_codec_value_new(codec, t, &v3, &err) == SY_OK, "%s", err.msg);
    FUZZ_ASSERT(sy_codec_from_json(codec, t, j1, &v3, &err) == SY_OK,
                "%s: our own JSON form does not read back: %s", sy_type_name(t), err.msg);
    void *b3 = encode(t, &v3, &len3);
    FUZZ_ASSERT(len1 == len3 && !memcmp(b1, b3, len1), "%s: JSON -> value -> JSON changes it",
                sy_type_name(t));
    free(b1);
    free(b2);
    free(b3);
    json_decref(j1);
    json_decref(j2);
    avro_value_decref(&v);
    avro_value_decref(&v2);
    avro_value_decref(&v3);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t jerr;
    /* as `switchyard encode` reads its input: one document after another */
    json_t *doc = json_loadb((const char *)data, size, JSON_DISABLE_EOF_CHECK, &jerr);
    if (!doc)
        return 0;
    for (int t = 0; t < SY_TYPE_COUNT; t++)
        one_type((sy_type_t)t, doc);
    json_decref(doc);
    return 0;
}
