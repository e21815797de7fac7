/* fuzz_codec_decode: the codec's binary decoding of untrusted records — what the router reads
 * from <ns>.requests, the worker from cluster topics and <ns>.control, `switchyard decode` from
 * stdin. The input is one framed record:
 *   - Confluent framing (0x00 + schema id), decoded by a codec whose registry is a fake that
 *     knows ids 1-5 (our current JobRequest, RoutedJob, JobStatus, JobLog, JobControl) and
 *     6-10 (the older/newer versions in tests/unit/data/evolution), answers 404 for others,
 *     garbage for id 11 and "unreachable" for id 12; this codec has small limits (64-byte
 *     strings, 16 items) so the limit paths are reached;
 *   - single-object framing (0xC3 0x01 + fingerprint), decoded by a codec without a registry
 *     that knows the same schemas by fingerprint, with the default limits.
 * Each codec decodes the input as every record type and with decode_any, and decodes it twice
 * into the same value (values are reused in a loop by the router). Invariants, on success:
 *   - the two decodes into one value agree;
 *   - encode(value) decodes again, and re-encodes to the same bytes;
 *   - the value has a JSON form (the worker stores RoutedJobs as JSON), and JSON → value →
 *     bytes gives those bytes again. */
#include <jansson.h>
#include <pthread.h>

#include "fuzz.h"
#include "sy_codec.h"

static const char *const evolution_files[] = {
    "tests/unit/data/evolution/JobRequest.v0.avsc", "tests/unit/data/evolution/JobStatus.v2.avsc",
    "tests/unit/data/evolution/JobLog.v0.avsc", "tests/unit/data/evolution/JobControl.v2.avsc",
    "tests/unit/data/evolution/JobRequest.nouser.avsc"};
#define N_EVOLUTION (sizeof(evolution_files) / sizeof(evolution_files[0]))

static char *reg_schemas[SY_TYPE_COUNT + N_EVOLUTION]; /* id = index + 1 */
static sy_codec_t *codec_so, *codec_reg;

static sy_err_code_t fake_transport(void *opaque, const char *method, const char *url,
                                    const char *body, long *status, char **resp, size_t *resp_len,
                                    sy_err_t *err)
{
    const char *p = strstr(url, "/schemas/ids/");
    int id = p ? atoi(p + 13) : 0;
    json_t *out;
    if (id == 12)
        return sy_err_set(err, SY_ERR_HTTP, true, "Failed to connect: Connection refused");
    if (id == 11) {
        *status = 200;
        *resp = strdup("<html>gateway says hi</html>");
        *resp_len = strlen(*resp);
        return SY_OK;
    }
    if (strcmp(method, "GET") == 0 && id >= 1 && id <= (int)(SY_TYPE_COUNT + N_EVOLUTION) &&
        reg_schemas[id - 1]) {
        *status = 200;
        out = json_pack("{s:s}", "schema", reg_schemas[id - 1]);
    } else {
        *status = 404;
        out = json_pack("{s:i,s:s}", "error_code", 40403, "message", "Schema not found");
    }
    *resp = json_dumps(out, JSON_COMPACT);
    *resp_len = strlen(*resp);
    json_decref(out);
    return SY_OK;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    sy_err_t err = SY_ERR_INIT;
    fuzz_quiet();
    sy_config_t *conf = sy_config_new();
    if (!conf || !(codec_so = sy_codec_new(conf, &err)))
        goto fail;
    for (int t = 0; t < SY_TYPE_COUNT; t++)
        reg_schemas[t] = strdup(sy_codec_schema_json(codec_so, (sy_type_t)t));
    for (size_t i = 0; i < N_EVOLUTION; i++) {
        char *text = fuzz_read_source_file(evolution_files[i]);
        if (!text || sy_codec_add_schema(codec_so, text, NULL, &err) != SY_OK)
            goto fail;
        reg_schemas[SY_TYPE_COUNT + i] = sy_codec_expand_schema(text, false, &err);
        free(text);
    }
    if (sy_config_set(conf, "codec.max.string.bytes", "64", &err) != SY_OK ||
        sy_config_set(conf, "codec.max.items", "16", &err) != SY_OK)
        goto fail;
    sy_schemareg_t *reg = sy_schemareg_new("http://registry.invalid:8081", NULL, 1000, &err);
    if (!reg)
        goto fail;
    sy_schemareg_set_transport(reg, fake_transport, NULL);
    if (!(codec_reg = sy_codec_new_with_registry(conf, reg, &err))) /* owns reg */
        goto fail;
    sy_config_destroy(conf);
    return 0;
fail:
    fprintf(stderr, "fuzz_codec_decode: setup failed: %s\n", err.msg);
    abort();
}

/* bytes of value v of type t, encoded by the single-object codec; NULL when it refuses. */
static void *encode(sy_type_t t, avro_value_t *v, size_t *len, sy_err_t *err)
{
    void *buf = NULL;
    if (sy_codec_encode(codec_so, t, NULL, v, &buf, len, err) != SY_OK)
        return NULL;
    return buf;
}

/* The invariants of a successfully decoded value (see the top of the file). */
static void check_roundtrip(sy_type_t t, avro_value_t *v)
{
    sy_err_t err = SY_ERR_INIT;
    size_t len1 = 0, len2 = 0, len3 = 0;
    void *b1 = encode(t, v, &len1, &err);
    /* A decoded value always has every union branch set: encoding it cannot fail. */
    FUZZ_ASSERT(b1, "%s: a decoded value does not encode: %s", sy_type_name(t), err.msg);
    avro_value_t v2;
    FUZZ_ASSERT(sy_codec_value_new(codec_so, t, &v2, &err) == SY_OK, "%s", err.msg);
    FUZZ_ASSERT(sy_codec_decode(codec_so, t, b1, len1, &v2, &err) == SY_OK,
                "%s: our own encoding does not decode: %s", sy_type_name(t), err.msg);
    void *b2 = encode(t, &v2, &len2, &err);
    FUZZ_ASSERT(b2 && len2 == len1 && !memcmp(b1, b2, len1), "%s: re-encoding differs",
                sy_type_name(t));
    /* The worker keeps every RoutedJob in the ledger as JSON: whatever decodes must have a JSON
     * form (strings are checked at decode; our schemas have no float that could be NaN). */
    json_t *j = sy_codec_to_json(v, &err);
    FUZZ_ASSERT(j, "%s: a decoded value has no JSON form: %s", sy_type_name(t), err.msg);
    {
        avro_value_t v3;
        FUZZ_ASSERT(sy_codec_value_new(codec_so, t, &v3, &err) == SY_OK, "%s", err.msg);
        FUZZ_ASSERT(sy_codec_from_json(codec_so, t, j, &v3, &err) == SY_OK,
                    "%s: the JSON form of a decoded value does not read back: %s", sy_type_name(t),
                    err.msg);
        void *b3 = encode(t, &v3, &len3, &err);
        FUZZ_ASSERT(b3 && len3 == len1 && !memcmp(b1, b3, len1),
                    "%s: value -> JSON -> value changes the encoding", sy_type_name(t));
        free(b3);
        avro_value_decref(&v3);
        json_decref(j);
    }
    free(b1);
    free(b2);
    avro_value_decref(&v2);
}

static void decode_with(sy_codec_t *codec, const uint8_t *data, size_t size)
{
    sy_err_t err = SY_ERR_INIT;
    for (int t = 0; t < SY_TYPE_COUNT; t++) {
        avro_value_t v;
        if (sy_codec_value_new(codec, (sy_type_t)t, &v, &err) != SY_OK)
            abort();
        sy_err_code_t rc1 = sy_codec_decode(codec, (sy_type_t)t, data, size, &v, &err);
        FUZZ_ASSERT(rc1 == SY_OK || err.msg[0], "%s: error without a message", sy_type_name(t));
        void *first = NULL;
        size_t first_len = 0;
        if (rc1 == SY_OK) {
            first = encode((sy_type_t)t, &v, &first_len, &err);
            check_roundtrip((sy_type_t)t, &v);
        }
        /* the same value again, after a success or a failure half-way */
        sy_err_code_t rc2 = sy_codec_decode(codec, (sy_type_t)t, data, size, &v, &err);
        FUZZ_ASSERT(rc1 == rc2 || rc1 == SY_ERR_REGISTRY || rc2 == SY_ERR_REGISTRY,
                    "%s: decoding twice gives %d then %d", sy_type_name(t), rc1, rc2);
        if (rc2 == SY_OK && first) {
            size_t len = 0;
            void *again = encode((sy_type_t)t, &v, &len, &err);
            FUZZ_ASSERT(again && len == first_len && !memcmp(again, first, len),
                        "%s: a reused value decodes differently", sy_type_name(t));
            free(again);
        }
        free(first);
        avro_value_decref(&v);
    }
    sy_type_t type;
    avro_value_t any;
    if (sy_codec_decode_any(codec, data, size, &type, &any, &err) == SY_OK) {
        FUZZ_ASSERT((unsigned)type < SY_TYPE_COUNT, "decode_any type %d", (int)type);
        check_roundtrip(type, &any);
        avro_value_decref(&any);
    }
    sy_codec_frame_t frame;
    if (sy_codec_peek(data, size, &frame, &err) == SY_OK)
        FUZZ_ASSERT(frame.header_len <= size, "peek: header of %zu bytes in %zu", frame.header_len,
                    size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    decode_with(codec_reg, data, size);
    decode_with(codec_so, data, size);
    return 0;
}
