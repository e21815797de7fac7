"""badinput_corpus: the bad messages itest_badinput.py publishes to <ns>.requests and
<ns>.control, with what each must lead to. A generator rather than a data file: the records
are encoded by our own `switchyard encode` for the test's namespace and registry (schema ids
are the registry's), then cut, patched or reframed.

Each Case is (name, value bytes or None, expected outcome, headers):
  requests:  ("deadletter", code)   the router dead-letters it with sy.error.code == code
             ("invalid", text)      the router answers job bad-<name> INVALID, text in the reason
             ("failed", reason)     routed; the worker ends job bad-<name> FAILED with this reason
  control:   ("ignored", text)      the worker logs "<ns>.control[p]@o ignored: ...text..."
             ("unknown", job_id)    the worker logs "kill request for unknown job <id> ignored"
The key of each message is "bad-<name>" (control: the job id it names, when it has one)."""
import collections
import json
import struct
import time

Case = collections.namedtuple("Case", "name value expect headers")

# Broker limit (message.max.bytes, Kafka's default) and librdkafka's default producer limit:
# a request between the two reaches the router but cannot be copied as is by a default client.
# The test creates <ns>.requests with max.message.bytes = TOPIC_MAX, so that multi-MB requests
# reach the router too.
BROKER_MAX = 1048588
CLIENT_MAX = 1000000
TOPIC_MAX = 8 << 20


def request(job_id, **extra):
    rec = {"job_id": job_id, "name": job_id, "user": "itest",
           "cluster_criteria": [{"tags": ["env:bad"]}], "command_criterion": {"tags": ["type:sh"]},
           "arguments": ["echo ok"], "submitted_at": int(time.time() * 1000)}
    rec.update(extra)
    return rec


def control(job_id, **extra):
    rec = {"job_id": job_id, "action": "KILL", "reason": "itest", "requested_by": "badinput",
           "requested_at": int(time.time() * 1000)}
    rec.update(extra)
    return rec


def patch(data, placeholder, replacement):
    """data with the first occurrence of placeholder (job_id comes before name, which repeats
    it) replaced by bytes of the same length, so the Avro length prefixes stay right."""
    assert len(placeholder) == len(replacement) and placeholder in data, placeholder
    return data.replace(placeholder, replacement, 1)


def sized(enc, name, size):
    """A valid request of job id bad-<name> whose encoding is exactly size bytes."""
    pad = size
    for _ in range(4):
        args = ["echo big"] + ["a" * 90_000] * (pad // 90_000) + ["b" * (pad % 90_000)]
        data = enc("JobRequest", request("bad-" + name, arguments=args))
        if len(data) == size:
            return data
        pad -= len(data) - size
    raise AssertionError(f"cannot make a {size}-byte request ({len(data)})")


def requests_cases(enc):
    """enc(type_name, record, registry=True) -> framed bytes (Confluent framing through the
    registry, or single-object framing with registry=False)."""
    good = enc("JobRequest", request("bad-template"))
    c = []
    req = lambda case, **extra: enc("JobRequest", request("bad-" + case, **extra))  # noqa: E731
    add = lambda name, value, *expect, headers=None: c.append(  # noqa: E731
        Case(name, value, tuple(expect), headers or [("origin", b"badinput")]))

    # ---- framing and schema
    add("empty", b"", "deadletter", "truncated")
    add("null", None, "deadletter", "truncated")
    add("magic-only", b"\x00", "deadletter", "truncated")
    add("header-only", good[:5], "deadletter", "truncated")
    add("truncated-half", good[:len(good) // 2], "deadletter", "truncated")
    add("truncated-last-byte", good[:-1], "deadletter", "truncated")
    add("wrong-magic", b"\x01" + good[1:], "deadletter", "bad_magic")
    add("json-text", json.dumps(request("bad-json")).encode(), "deadletter", "bad_magic")
    add("so-wrong-version", b"\xc3\x02" + bytes(8) + good[5:], "deadletter", "bad_magic")
    add("unknown-schema-id", b"\x00" + struct.pack(">I", 0x7FFFFF00) + good[5:],
        "deadletter", "unknown_schema")
    add("negative-schema-id", b"\x00\xff\xff\xff\xfe" + good[5:], "deadletter", "unknown_schema")
    add("unknown-fingerprint", b"\xc3\x01" + bytes.fromhex("0123456789abcdef") + good[5:],
        "deadletter", "unknown_schema")
    add("jobcontrol-on-requests", enc("JobControl", control("bad-ctl")), "deadletter",
        "wrong_type")
    add("jobcontrol-single-object", enc("JobControl", control("bad-ctl2"), registry=False),
        "deadletter", "wrong_type")
    add("trailing-bytes", good + b"\x00\x00", "deadletter", "invalid_argument")
    add("varint-overlong", good[:5] + b"\xff" * 12, "deadletter", "invalid_argument")
    add("negative-length", good[:5] + b"\x01", "deadletter", "invalid_argument")
    # union branch index 7 for "grouping" (a [null, string] union): after job_id, name, user
    rec = enc("JobRequest", request("bad-union", name="NN", user="UU"))
    add("union-branch-out-of-range", patch(rec, b"UU\x00", b"UU\x0e"), "deadletter",
        "invalid_argument")

    # ---- strings that are not text
    rec = enc("JobRequest", request("bad-nul-AAAA"))
    add("job-id-with-nul", patch(rec, b"bad-nul-AAAA", b"bad-nul-A\x00AA"), "deadletter",
        "invalid_argument")
    rec = enc("JobRequest", request("bad-utf8-user", user="XXXXXXXX"))
    add("user-not-utf8", patch(rec, b"XXXXXXXX", b"XX\xff\xfe\xc0\x80XX"), "deadletter",
        "invalid_argument")
    rec = enc("JobRequest", request("bad-utf8-arg", arguments=["echo ZZZZ"]))
    add("argument-not-utf8", patch(rec, b"echo ZZZZ", b"echo \xed\xa0\x80Z"), "deadletter",
        "invalid_argument")
    rec = enc("JobRequest", request("bad-utf8-meta", metadata={"KKKK": "v"}))
    add("metadata-key-not-utf8", patch(rec, b"KKKK", b"K\xffKK"), "deadletter",
        "invalid_argument")

    # ---- job ids the router cannot key events with
    add("job-id-empty", enc("JobRequest", request("")), "deadletter", "invalid_argument")
    add("job-id-space", enc("JobRequest", request("has space")), "deadletter", "invalid_argument")
    add("job-id-slash", enc("JobRequest", request("../../etc")), "deadletter", "invalid_argument")
    add("job-id-129", enc("JobRequest", request("j" * 129)), "deadletter", "invalid_argument")

    # ---- fields the router validates: INVALID with a reason
    add("user-empty", req("user-empty", user=""), "invalid",
        "user must be")
    add("user-256", req("user-256", user="u" * 256), "invalid",
        "user must be")
    add("no-criteria", req("no-criteria", cluster_criteria=[]), "invalid",
        "no cluster criteria")
    add("17-criteria", req("17-criteria", cluster_criteria=[{"tags": ["env:bad"]}] * 17),
        "invalid", "at most 16")
    add("33-tags", req("33-tags", cluster_criteria=[{"tags": [f"k{i}:v" for i in range(33)]}]),
        "invalid", "at most 32")
    add("tag-not-key-value", req("tag-not-key-value", cluster_criteria=[{"tags": ["not a tag"]}]),
        "invalid", "tag")
    add("tag-reserved", req("tag-reserved", command_criterion={"tags": ["switchyard.secret:x"]}),
        "invalid", "reserved")
    add("tag-comma", req("tag-comma", cluster_criteria=[{"tags": ["a:b,c:d"]}]), "invalid",
        "commas")
    add("tag-2k", req("tag-2k", cluster_criteria=[{"tags": ["k:" + "v" * 2000]}]), "invalid",
        "longer")
    add("empty-criterion", req("empty-criterion", cluster_criteria=[{"tags": []}]), "invalid",
        "is empty")
    add("empty-command", req("empty-command", command_criterion={"tags": []}), "invalid",
        "command criterion")
    add("no-match", req("no-match", cluster_criteria=[{"tags": ["env:nowhere"]}]), "invalid",
        "env:nowhere")
    for name, t in (("timeout-zero", 0), ("timeout-negative", -5),
                    ("timeout-30-days", 30 * 86400 * 1000), ("timeout-max", 2**63 - 1),
                    ("timeout-min", -2**63)):
        add(name, req(name, timeout_ms=t), "invalid", "timeout_ms")
    add("env-name-digit", req("env-name-digit", environment={"1BAD": "x"}), "invalid",
        "environment variable name")
    add("env-name-equals", req("env-name-equals", environment={"A=B": "x"}), "invalid",
        "environment variable name")

    # ---- huge fields (the broker takes up to BROKER_MAX bytes per message)
    add("name-900k", req("name-900k", name="n" * 900_000), "invalid", "name longer")
    add("arguments-20000", req("arguments-20000", arguments=[""] * 20000), "deadletter",
        "too_large")
    add("metadata-20000", req("metadata-20000", metadata={str(i): "" for i in range(20000)}),
        "deadletter", "too_large")
    add("string-over-limit", good[:5] + b"\xfe\xff\xff\x01", "deadletter", "too_large")
    # valid, and under the client's limit, but its RoutedJob (the request plus routing data)
    # is over it: INVALID, not a transaction retried for ever
    add("request-999k", sized(enc, "request-999k", CLIENT_MAX - 100), "invalid", "too large")
    # over the client's limit itself: the dead-letter copy cannot carry the bytes
    big = sized(enc, "request-1040k", 1_040_000)
    assert CLIENT_MAX < len(big) < BROKER_MAX - 1000
    add("request-1040k", big[:-1], "deadletter", "truncated")
    # multi-MB, on a topic that takes them: a 3 MB string is over codec.max.string.bytes
    # (dead-lettered without its value); 3 MB of valid arguments cannot be routed (INVALID)
    add("string-3mb", req("string-3mb", name="n" * (3 << 20)), "deadletter", "too_large")
    add("arguments-3mb", req("arguments-3mb", arguments=["echo"] + ["a" * 100_000] * 30),
        "invalid", "too large")
    # an argument longer than the kernel takes (128 KiB): routed, then exec fails
    add("argument-200k", req("argument-200k", arguments=["echo", "a" * 200_000]), "failed",
        "EXEC_FAILED")
    return c


def control_cases(enc):
    good = enc("JobControl", control("bad-template"))
    c = []
    add = lambda name, value, *expect: c.append(Case(name, value, tuple(expect), []))  # noqa
    add("empty", b"", "ignored", "empty record")
    add("null", None, "ignored", "empty record")
    add("truncated", good[:-3], "ignored", "truncated")
    add("wrong-magic", b"\x07" + good[1:], "ignored", "bad magic")
    add("unknown-schema-id", b"\x00" + struct.pack(">I", 0x7FFFFF01) + good[5:], "ignored",
        "schema")
    add("unknown-fingerprint", b"\xc3\x01" + bytes(8) + good[5:], "ignored", "fingerprint")
    add("jobrequest-on-control", enc("JobRequest", request("ctl-req")), "ignored", "wrong type")
    add("job-id-invalid", enc("JobControl", control("bad id!")), "ignored",
        "not a KILL of a valid job id")
    add("job-id-empty", enc("JobControl", control("")), "ignored", "not a KILL of a valid job id")
    rec = enc("JobControl", control("ctl-nul-AAAA"))
    add("job-id-nul", patch(rec, b"ctl-nul-AAAA", b"ctl-nul-\x00AAA"), "ignored", "NUL")
    add("reason-900k", enc("JobControl", control("ctl-unknown-big", reason="r" * 900_000)),
        "unknown", "ctl-unknown-big")
    add("unknown-job", enc("JobControl", control("ctl-no-such-job")), "unknown",
        "ctl-no-such-job")
    add("trailing-bytes", good + b"\x01", "ignored", "unexpected bytes")
    return c
