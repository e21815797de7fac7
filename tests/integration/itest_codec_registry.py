#!/usr/bin/env python3
"""Our codec and Confluent's Python serializers through one real Schema Registry.

- `switchyard encode --topic T` registers our schema under T-value and frames records with
  0x00 + the schema id; confluent-kafka's AvroDeserializer reads them.
- confluent-kafka's AvroSerializer registers and writes records that `switchyard decode`
  reads — also with a newer, evolved JobStatus schema it registers (we skip the fields we do
  not know, fetching the writer schema by id).
- Several registry URLs (the first unreachable), an unknown schema id, an unreachable
  registry: the CLI's exit codes and messages.

Needs SWITCHYARD_SCHEMA_REGISTRY_URL (scripts/testenv exports it). Without it the test says so
and exits 0, unless SY_REQUIRE_SERVICES=1. Prints "N passed, M failed"; exits 1 on failure.
"""
import base64
import datetime
import io
import json
import os
import subprocess
import sys
import traceback
import uuid

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
REGISTRY = os.environ.get("SWITCHYARD_SCHEMA_REGISTRY_URL", "")


def switchyard_bin():
    b = os.environ.get("SY_BIN") or os.environ.get("SWITCHYARD_BIN") or os.path.join(ROOT, "build", "bin")
    return os.path.join(b, "switchyard") if os.path.isdir(b) else b


SWITCHYARD = switchyard_bin()
ENV = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHYARD_")}
ENV["SWITCHYARD_LOG_LEVEL"] = "warn"
RUN = uuid.uuid4().hex[:8]  # subjects of this run only


def run(args, data=b"", registry=None):
    env = dict(ENV, SWITCHYARD_SCHEMA_REGISTRY_URL=REGISTRY if registry is None else registry)
    p = subprocess.run([SWITCHYARD] + args, input=data, capture_output=True, env=env, timeout=120)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def to_plain(v):
    if isinstance(v, dict):
        return {k: to_plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [to_plain(x) for x in v]
    if isinstance(v, datetime.datetime):
        return (v - EPOCH) // datetime.timedelta(milliseconds=1)
    if isinstance(v, (bytes, bytearray)):
        try:
            return bytes(v).decode("utf-8")
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(bytes(v)).decode()}
    return v


REQUEST = {
    "job_id": "reg-1", "name": "nightly", "user": "airflow", "grouping": "dag", "grouping_instance": None,
    "cluster_criteria": [{"id": None, "name": None, "tags": ["env:prod"]}],
    "command_criterion": {"id": None, "name": "spark", "tags": []},
    "arguments": ["--date", "2024-05-01", "✓"], "environment": {"TZ": "UTC"}, "timeout_ms": 60000,
    "metadata": {}, "submitted_at": 1714521600123}
RECORDS = {
    "JobRequest": REQUEST,
    "RoutedJob": {
        "job_id": "reg-1", "request": REQUEST, "cluster_id": "cl-1", "cluster_name": "emr-prod",
        "backend_kind": "emr", "backend_address": "j-ABC", "region": None,
        "cluster_max_concurrent": 0, "command_id": "cmd-1", "command_name": "spark",
        "command_spec": "{}", "attempt": 1, "rationale": "only match", "routed_at": 1714521600200},
    "JobStatus": {
        "job_id": "reg-1", "seq": 10, "status": "RUNNING", "cluster": "emr-prod", "command": None,
        "backend_id": "s-1", "message": None, "attempt": 1, "emitted_at": 1714521600300,
        "submitted_at": None, "exit_code": None, "failure_reason": None, "log_uri": None,
        "emitter": "w-1"},
    "JobLog": {"job_id": "reg-1", "stream": "stdout", "offset": 0, "chunk": "hello\n", "attempt": 1,
               "emitted_at": 1714521600400},
    "JobControl": {"job_id": "reg-1", "action": "KILL", "reason": None, "requested_by": "alice",
                   "requested_at": 1714521600500},
}

results = []


def check(name, fn):
    try:
        fn()
        results.append((name, None))
        print("PASS", name)
    except Exception as e:  # noqa: BLE001
        results.append((name, e))
        print("FAIL", name, "-", e)
        traceback.print_exc(limit=2)


def our_schema(t):
    rc, out, err = run(["schemas", t])
    assert rc == 0, err
    return out.decode()


def python_value(t, rec):
    if t == "JobLog":
        return dict(rec, chunk=rec["chunk"].encode())
    return rec


def main():
    if not REGISTRY:
        msg = "SKIPPED: SWITCHYARD_SCHEMA_REGISTRY_URL is not set (scripts/testenv up exports it)"
        print(msg)
        return 1 if os.environ.get("SY_REQUIRE_SERVICES") == "1" else 0
    try:
        from confluent_kafka.schema_registry import SchemaRegistryClient
        from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
        from confluent_kafka.serialization import MessageField, SerializationContext
    except ImportError as e:
        print("FAIL confluent-kafka's Schema Registry client does not import (%s): the venv needs "
              "confluent-kafka's schemaregistry/avro extras (authlib, httpx, cachetools, fastavro)"
              % e)
        print("0 passed, 1 failed")
        return 1

    client = SchemaRegistryClient({"url": REGISTRY})
    deser = AvroDeserializer(client)
    print("registry %s, switchyard %s, run %s" % (REGISTRY, SWITCHYARD, RUN))

    def ours_to_confluent(t):
        topic = "itest-%s.%s" % (RUN, t.lower())
        rc, rec, err = run(["encode", "--type", t, "--topic", topic], json.dumps(RECORDS[t]).encode())
        assert rc == 0, err
        assert rec[0] == 0, "magic %r" % rec[:1]
        schema_id = int.from_bytes(rec[1:5], "big")
        latest = client.get_latest_version(topic + "-value")
        assert latest.schema_id == schema_id, (latest.schema_id, schema_id)
        got = deser(rec, SerializationContext(topic, MessageField.VALUE))
        assert to_plain(got) == RECORDS[t], to_plain(got)
        # the same again: same id (cached or found), same bytes
        rc, rec2, err = run(["encode", "--type", t, "--topic", topic], json.dumps(RECORDS[t]).encode())
        assert rc == 0 and rec2 == rec, err

    def confluent_to_ours(t):
        topic = "itest-%s.py.%s" % (RUN, t.lower())
        ser = AvroSerializer(client, our_schema(t), conf={"auto.register.schemas": True})
        rec = ser(python_value(t, RECORDS[t]), SerializationContext(topic, MessageField.VALUE))
        assert rec[0] == 0
        rc, out, err = run(["decode", "--type", t], rec)
        assert rc == 0, err
        assert json.loads(out) == RECORDS[t], out
        rc, out, err = run(["decode", "--envelope"], rec)
        env = json.loads(out)
        assert rc == 0 and env["type"] == t and env["schema_id"] == int.from_bytes(rec[1:5], "big")

    def evolved_writer():
        """Python registers a newer JobStatus (added fields, a new symbol); we read what we know."""
        topic = "itest-%s.evolved.status" % RUN
        with open(os.path.join(ROOT, "tests", "unit", "data", "evolution", "JobStatus.v2.avsc")) as f:
            v2 = f.read()
        ser = AvroSerializer(client, v2, conf={"auto.register.schemas": True})
        newer = dict(RECORDS["JobStatus"], priority=9, progress=0.25, labels={"a": "b"})
        rec = ser(newer, SerializationContext(topic, MessageField.VALUE))
        rc, out, err = run(["decode", "--type", "JobStatus"], rec)
        assert rc == 0, err
        assert json.loads(out) == RECORDS["JobStatus"], out
        queued = ser(dict(newer, status="QUEUED"), SerializationContext(topic, MessageField.VALUE))
        rc, out, err = run(["decode", "--type", "JobStatus"], queued)
        assert rc == 3 and "QUEUED" in err, (rc, err)

    def several_urls():
        urls = "http://127.0.0.1:1/nothing-here," + REGISTRY
        topic = "itest-%s.failover" % RUN
        rc, rec, err = run(["encode", "-t", "JobControl", "-T", topic],
                           json.dumps(RECORDS["JobControl"]).encode(), registry=urls)
        assert rc == 0, err
        rc, out, err = run(["decode"], rec, registry=urls)
        assert rc == 0 and json.loads(out) == RECORDS["JobControl"], err

    def failures():
        rc, rec, err = run(["encode", "-t", "JobControl", "-T", "itest-%s.f" % RUN],
                           json.dumps(RECORDS["JobControl"]).encode())
        assert rc == 0, err
        unknown = b"\x00" + (2 ** 31 - 7).to_bytes(4, "big") + rec[5:]
        rc, out, err = run(["decode"], unknown)
        assert rc == 3 and "unknown_schema" in err and str(2 ** 31 - 7) in err, (rc, err)
        rc, out, err = run(["decode"], rec, registry="http://127.0.0.1:1")
        assert rc == 6 and "Schema Registry unavailable" in err, (rc, err)
        rc, out, err = run(["encode", "-t", "JobControl", "-T", "x"],
                           json.dumps(RECORDS["JobControl"]).encode(), registry="http://127.0.0.1:1")
        assert rc == 6, (rc, err)
        rc, out, err = run(["-X", "schema.registry.auto.register=false", "encode", "-t", "JobControl",
                            "-T", "itest-%s.never" % RUN], json.dumps(RECORDS["JobControl"]).encode())
        assert rc == 3 and "auto.register" in err, (rc, err)

    for t in RECORDS:
        check("%s: switchyard encode -> AvroDeserializer" % t, lambda t=t: ours_to_confluent(t))
        check("%s: AvroSerializer -> switchyard decode" % t, lambda t=t: confluent_to_ours(t))
    check("a newer writer schema registered by Python is resolved into ours", evolved_writer)
    check("several registry URLs, the first unreachable", several_urls)
    check("unknown id, unreachable registry, auto.register off", failures)
    failed = sum(1 for _, e in results if e)
    print("%d passed, %d failed" % (len(results) - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
