"""make-seeds.py: regenerates the codec fuzz targets' generated seeds (corpus/codec_decode,
corpus/codec_json, corpus/codec_schema: files named gen-*) from sample records, encoded with
fastavro — an independent Avro implementation, as another producer on the bus would be.
Run it with the test environment's Python: scripts/testenv-python tests/fuzz/make-seeds.py
Seeds that are not named gen-* (regression inputs, hand-made ones) are left alone."""
import base64
import glob
import io
import json
import os
import struct

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TYPES = ["JobRequest", "RoutedJob", "JobStatus", "JobLog", "JobControl"]  # registry ids 1-5
EVOLUTION = ["JobRequest.v0", "JobStatus.v2", "JobLog.v0", "JobControl.v2",
             "JobRequest.nouser"]  # ids 6-10, as in fuzz_codec_decode.c
T0 = 1_777_000_000_000


def load(path, named):
    with open(path) as f:
        return fastavro.parse_schema(json.load(f), named)


def expanded(name, path):
    """The schema as self-contained JSON (RoutedJob's JobRequest reference expanded)."""
    with open(path) as f:
        s = json.load(f)
    if name == "RoutedJob":
        with open(os.path.join(ROOT, "schemas", "JobRequest.v1.avsc")) as f:
            req = json.load(f)
        for fld in s["fields"]:
            if fld["type"] == "io.switchyard.JobRequest":
                fld["type"] = req
    return s


def request(job_id, **kw):
    r = {"job_id": job_id, "name": job_id, "user": "airflow",
         "grouping": None, "grouping_instance": None,
         "cluster_criteria": [{"id": None, "name": None, "tags": ["env:prod", "spark:3.5"]},
                              {"id": None, "name": "prod-b", "tags": []}],
         "command_criterion": {"id": None, "name": None, "tags": ["type:spark-submit"]},
         "arguments": ["s3://bucket/etl.py", "--date", "2026-11-21"],
         "environment": {"SPARK_CONF": "x=1"}, "timeout_ms": 3_600_000,
         "metadata": {"dag": "nightly", "task": "etl"}, "submitted_at": T0}
    r.update(kw)
    return r


SAMPLES = {
    "JobRequest": [
        request("etl-2026-11-21"),
        request("r-min", cluster_criteria=[],
                command_criterion={"id": None, "name": None, "tags": []},
                arguments=[], environment={}, timeout_ms=None, metadata={}, grouping="g",
                grouping_instance="gi-1"),
        request("r-\u00e9t\u00e9-\u65e5\u672c", arguments=["a" * 300], timeout_ms=-1),
    ],
    "JobStatus": [
        {"job_id": "etl-1", "seq": 1, "status": "ACCEPTED", "cluster": None, "command": None,
         "backend_id": None, "message": "accepted by r1", "attempt": 1, "emitted_at": T0,
         "submitted_at": T0 - 5, "exit_code": None, "failure_reason": None, "log_uri": None,
         "emitter": "r1"},
        {"job_id": "etl-1", "seq": 13, "status": "FAILED", "cluster": "prod-a",
         "command": "spark35", "backend_id": "s-1ABC", "message": "exit 7", "attempt": 2,
         "emitted_at": T0 + 1, "submitted_at": None, "exit_code": 7,
         "failure_reason": "NON_ZERO_EXIT", "log_uri": "s3://logs/j-1/steps/s-1ABC/",
         "emitter": "w-1"},
    ],
    "JobLog": [
        {"job_id": "etl-1", "stream": "stdout", "offset": 0, "chunk": b"hello\nworld\n",
         "attempt": 1, "emitted_at": T0},
        {"job_id": "etl-1", "stream": "stderr", "offset": 1 << 40, "chunk": bytes(range(256)),
         "attempt": 3, "emitted_at": T0},
    ],
    "JobControl": [
        {"job_id": "etl-1", "action": "KILL", "reason": "no longer needed",
         "requested_by": "alice", "requested_at": T0},
        {"job_id": "etl-2", "action": "KILL", "reason": None, "requested_by": "",
         "requested_at": 0},
    ],
}
SAMPLES["RoutedJob"] = [
    {"job_id": "etl-2026-11-21", "request": SAMPLES["JobRequest"][0], "cluster_id": "c-1",
     "cluster_name": "prod-a", "backend_kind": "emr", "backend_address": "j-2AXXXXXXGAPLF",
     "region": "us-east-1", "cluster_max_concurrent": 256, "command_id": "m-1",
     "command_name": "spark35", "command_spec": '{"local":{"argv":["/bin/echo"]}}', "attempt": 1,
     "rationale": "criterion #1 matched prod-a, prod-b; weighted pick", "routed_at": T0},
]

# Records of the evolution schemas (older/newer writers).
EVO_SAMPLES = {
    "JobRequest.v0": {"job_id": "old-1", "name": "old", "user": "u", "grouping": None,
                      "cluster_criteria": [{"id": None, "tags": ["env:prod"]}],
                      "command_criterion": {"id": None, "tags": ["type:sh"]}, "arguments": [],
                      "environment": {}, "submitted_at": T0},
    "JobStatus.v2": {"job_id": "new-1", "seq": 2, "status": "QUEUED", "priority": 5,
                     "cluster": None, "command": None, "backend_id": None, "message": None,
                     "progress": 0.5, "attempt": 1, "emitted_at": T0, "submitted_at": None,
                     "exit_code": None, "failure_reason": None, "log_uri": None, "emitter": "",
                     "labels": {"a": "b"}},
    "JobLog.v0": {"job_id": "old-log", "stream": "stdout", "offset": 7, "chunk": "text",
                  "attempt": 1, "emitted_at": T0},
    "JobControl.v2": {"job_id": "new-ctl", "action": "PAUSE", "reason": None,
                      "requested_by": "bob", "requested_at": T0},
    "JobRequest.nouser": None,  # filled from JobRequest.v0's shape below when it fits
}


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def body(schema, rec):
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, rec)
    return buf.getvalue()


def adapt(rec, schema_json):
    """rec with the fields schema_json lacks removed and the ones it adds filled from defaults."""
    out = {}
    for fld in schema_json["fields"]:
        out[fld["name"]] = rec.get(fld["name"], fld.get("default"))
    return out


def main():
    dec = os.path.join(HERE, "corpus", "codec_decode")
    js = os.path.join(HERE, "corpus", "codec_json")
    sch = os.path.join(HERE, "corpus", "codec_schema")
    for d in (dec, js, sch):
        os.makedirs(d, exist_ok=True)
        for old in glob.glob(os.path.join(d, "gen-*")):
            os.remove(old)
    named = {}
    load(os.path.join(ROOT, "schemas", "JobRequest.v1.avsc"), named)
    for i, name in enumerate(TYPES):
        path = os.path.join(ROOT, "schemas", f"{name}.v1.avsc")
        schema = load(path, dict(named))
        full = expanded(name, path)
        pcf = to_parsing_canonical_form(fastavro.parse_schema(full, {}))
        fp = bytes.fromhex(fingerprint(pcf, "CRC-64-AVRO"))  # already little-endian
        compact = json.dumps(full, separators=(",", ":")).encode()
        for n, rec in enumerate(SAMPLES[name]):
            b = body(schema, rec)
            write(os.path.join(dec, f"gen-so-{name}-{n}"), b"\xc3\x01" + fp + b)
            write(os.path.join(dec, f"gen-cf-{name}-{n}"), b"\x00" + struct.pack(">I", i + 1) + b)
            write(os.path.join(sch, f"gen-{name}-{n}"), compact + b"\x00" + b)
            write(os.path.join(js, f"gen-{name}-{n}.json"),
                  json.dumps(plain(rec), indent=1).encode())
    for i, name in enumerate(EVOLUTION):
        path = os.path.join(ROOT, "tests", "unit", "data", "evolution", f"{name}.avsc")
        with open(path) as f:
            full = json.load(f)
        rec = EVO_SAMPLES[name] or adapt(EVO_SAMPLES["JobRequest.v0"], full)
        rec = adapt(rec, full)
        schema = fastavro.parse_schema(full, {})
        pcf = to_parsing_canonical_form(schema)
        fp = bytes.fromhex(fingerprint(pcf, "CRC-64-AVRO"))  # already little-endian
        b = body(schema, rec)
        write(os.path.join(dec, f"gen-so-evo-{name}"), b"\xc3\x01" + fp + b)
        write(os.path.join(dec, f"gen-cf-evo-{name}"),
              b"\x00" + struct.pack(">I", 6 + i) + b)
        write(os.path.join(sch, f"gen-evo-{name}"),
              json.dumps(full, separators=(",", ":")).encode() + b"\x00" + b)
    # the registry's odd answers: unknown id, garbage, unreachable
    any_body = body(load(os.path.join(ROOT, "schemas", "JobControl.v1.avsc"), {}),
                    SAMPLES["JobControl"][0])
    for sid in (99, 11, 12, 0x7fffffff, 0x80000000):
        write(os.path.join(dec, f"gen-cf-id-{sid}"), b"\x00" + struct.pack(">I", sid) + any_body)
    print(f"seeds written to {dec}, {js}, {sch}")


def plain(rec):
    """The codec's plain JSON form: bytes as text when UTF-8, else {"base64": ...}."""
    if isinstance(rec, dict):
        return {k: plain(v) for k, v in rec.items()}
    if isinstance(rec, list):
        return [plain(v) for v in rec]
    if isinstance(rec, bytes):
        try:
            return rec.decode("utf-8")
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(rec).decode()}
    return rec


if __name__ == "__main__":
    main()
