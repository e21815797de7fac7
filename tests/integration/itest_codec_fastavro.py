#!/usr/bin/env python3
"""Interop of our codec with an independent Avro implementation (fastavro), from our .avsc files.

- Records encoded by `switchyard encode` (Avro single-object encoding) are checked header by
  header — 0xC3 0x01 and the CRC-64-AVRO fingerprint of the schema's Parsing Canonical Form, as
  fastavro computes them — and decoded with fastavro's schemaless_reader.
- Records written by fastavro's schemaless_writer (framed the same way) are decoded by
  `switchyard decode` and compared with what was written.
- fastavro resolves our records into an evolved reader schema (defaults filled), proving our
  bytes follow the spec's resolution rules too.
- The CLI's bad-input handling: exit code 3 and a message naming the problem.

RoutedJob.v1.avsc refers to io.switchyard.JobRequest from JobRequest.v1.avsc: fastavro's
load_schema injects it from a schema repository serving our files, as our codec expands it
(parse_schema with named_schemas would leave the name unexpanded, and the fingerprint of such a
non-self-contained canonical form differs). Runs under scripts/testenv-python (ctest sets
SY_BIN to the build's bin directory) or directly:
    SY_BIN=build/bin python3 tests/integration/itest_codec_fastavro.py
Prints one line per check and "N passed, M failed"; exits 1 if any failed.
"""
import base64
import datetime
import glob
import io
import json
import os
import re
import struct
import subprocess
import sys
import threading
import traceback

import fastavro
from fastavro.repository.base import AbstractSchemaRepository, SchemaRepositoryError
from fastavro.schema import fingerprint, load_schema, parse_schema, to_parsing_canonical_form

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def switchyard_bin():
    b = os.environ.get("SY_BIN") or os.environ.get("SWITCHYARD_BIN") or os.path.join(ROOT, "build", "bin")
    return os.path.join(b, "switchyard") if os.path.isdir(b) else b


SWITCHYARD = switchyard_bin()
# No registry here: single-object framing whatever the test environment exports.
ENV = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHYARD_")}
ENV["SWITCHYARD_LOG_LEVEL"] = "warn"


def run(args, data=b""):
    p = subprocess.run([SWITCHYARD] + args, input=data, capture_output=True, env=ENV, timeout=120)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


# ---- schemas, as fastavro reads them -------------------------------------------------------

class OurSchemas(AbstractSchemaRepository):
    """Serves schemas/<Type>.v<N>.avsc (the newest N) by full name, so fastavro's load_schema
    injects RoutedJob's reference to io.switchyard.JobRequest the way our codec expands it."""

    def __init__(self):
        self.files = {}
        for path in glob.glob(os.path.join(ROOT, "schemas", "*.avsc")):
            m = re.match(r"([A-Za-z]+)\.v(\d+)\.avsc$", os.path.basename(path))
            t, v = m.group(1), int(m.group(2))
            if t not in self.files or self.files[t][0] < v:
                self.files[t] = (v, path)

    def load(self, name):
        t = name.rsplit(".", 1)[-1]
        if t not in self.files:
            raise SchemaRepositoryError("no schema file for %s" % name)
        with open(self.files[t][1]) as f:
            return json.load(f)


def load_schemas():
    """The newest version of each type, parsed and made self-contained by fastavro."""
    repo = OurSchemas()
    return {t: load_schema("io.switchyard." + t, repo=repo) for t in sorted(repo.files)}


SCHEMAS = load_schemas()


def fp_bytes(parsed):
    """The single-object fingerprint: CRC-64-AVRO of the canonical form, little-endian."""
    return bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))


# ---- the plain JSON form <-> Python values -------------------------------------------------

def to_plain(v):
    """fastavro's decoded value → our plain JSON form (timestamps as epoch ms)."""
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


def to_python(plain, bytes_fields=()):
    """Our plain JSON → a value for fastavro (bytes fields as bytes)."""
    out = dict(plain)
    for f in bytes_fields:
        b = out[f]
        out[f] = base64.b64decode(b["base64"]) if isinstance(b, dict) else b.encode("utf-8")
    return out


# ---- records ---------------------------------------------------------------------------------

REQUEST = {
    "job_id": "2024-05-01_etl:7f3a", "name": "nightly \"etl\"", "user": "airflow",
    "grouping": "etl_dag", "grouping_instance": None,
    "cluster_criteria": [
        {"id": None, "name": "emr-prod", "tags": ["env:prod", "team:data"]},
        {"id": "cl-2", "name": None, "tags": []}],
    "command_criterion": {"id": None, "name": None, "tags": ["type:spark"]},
    "arguments": ["--date", "2024-05-01", "ünïcödé ✓ 𝄞", ""],
    "environment": {"TZ": "UTC", "EMPTY": ""}, "timeout_ms": 9007199254740993,
    "metadata": {}, "submitted_at": 1714521600123}
REQUEST_MIN = {
    "job_id": "j", "name": "", "user": "u", "grouping": None, "grouping_instance": None,
    "cluster_criteria": [], "command_criterion": {"id": "c", "name": "n", "tags": []},
    "arguments": [], "environment": {}, "timeout_ms": None, "metadata": {"k": "v"},
    "submitted_at": -1}
RECORDS = {
    "JobRequest": [REQUEST, REQUEST_MIN],
    "RoutedJob": [{
        "job_id": REQUEST["job_id"], "request": REQUEST, "cluster_id": "cl-1",
        "cluster_name": "emr-prod", "backend_kind": "emr-eks", "backend_address": None,
        "region": "eu-west-1", "cluster_max_concurrent": 2147483647, "command_id": "cmd-1",
        "command_name": "spark", "command_spec": "{\"emr-eks\":{}}", "attempt": 3,
        "rationale": "criterion 1 matched 2 clusters; weighted pick", "routed_at": 1714521600456}],
    "JobStatus": [
        {"job_id": "j", "seq": 12, "status": "FAILED", "cluster": "emr-prod", "command": None,
         "backend_id": "s-1ABC", "message": "exit 1", "attempt": 1, "emitted_at": 1714521600789,
         "submitted_at": 1714521600123, "exit_code": -2147483648, "failure_reason": "USER_ERROR",
         "log_uri": None, "emitter": "worker-3"},
        {"job_id": "k", "seq": 1, "status": "ACCEPTED", "cluster": None, "command": None,
         "backend_id": None, "message": None, "attempt": 1, "emitted_at": 0,
         "submitted_at": None, "exit_code": None, "failure_reason": None, "log_uri": None,
         "emitter": ""}],
    "JobLog": [
        {"job_id": "j", "stream": "stdout", "offset": 1 << 40, "chunk": "line 1\nline 2 ✓\n",
         "attempt": 2, "emitted_at": 1714521601000},
        {"job_id": "j", "stream": "stderr", "offset": 0,
         "chunk": {"base64": base64.b64encode(b"\x00\xff\xfe binary\x80").decode()},
         "attempt": 1, "emitted_at": 1714521601001}],
    "JobControl": [
        {"job_id": "j", "action": "KILL", "reason": "requested via CLI", "requested_by": "alice",
         "requested_at": 1714521602000},
        {"job_id": "j", "action": "KILL", "reason": None, "requested_by": "svc",
         "requested_at": 1}],
}
BYTES_FIELDS = {"JobLog": ("chunk",)}

# ---- checks ------------------------------------------------------------------------------------

results = []


def check(name, fn):
    try:
        fn()
        results.append((name, None))
        print("PASS", name)
    except Exception as e:  # noqa: BLE001 - report every failure and go on
        results.append((name, e))
        print("FAIL", name, "-", e)
        traceback.print_exc(limit=2)


def split_length_prefixed(data):
    out, i = [], 0
    while i < len(data):
        (n,) = struct.unpack(">I", data[i:i + 4])
        out.append(data[i + 4:i + 4 + n])
        i += 4 + n
    return out


def ours_to_fastavro(t):
    parsed = SCHEMAS[t]
    lines = "\n".join(json.dumps(r) for r in RECORDS[t]).encode()
    rc, out, err = run(["encode", "--type", t, "--lines", "--length-prefixed"], lines)
    assert rc == 0, "encode exit %d: %s" % (rc, err)
    records = split_length_prefixed(out)
    assert len(records) == len(RECORDS[t]), "%d records for %d" % (len(records), len(RECORDS[t]))
    for rec, want in zip(records, RECORDS[t]):
        assert rec[:2] == b"\xc3\x01", "header %r" % rec[:2]
        assert rec[2:10] == fp_bytes(parsed), "fingerprint %s, fastavro says %s" % (
            rec[2:10].hex(), fp_bytes(parsed).hex())
        body = io.BytesIO(rec[10:])
        got = fastavro.schemaless_reader(body, parsed)
        assert body.read() == b"", "fastavro left bytes unread"
        assert to_plain(got) == want, "fastavro read %r" % to_plain(got)


def fastavro_to_ours(t):
    parsed = SCHEMAS[t]
    stream = b""
    for r in RECORDS[t]:
        b = io.BytesIO()
        fastavro.schemaless_writer(b, parsed, to_python(r, BYTES_FIELDS.get(t, ())))
        rec = b"\xc3\x01" + fp_bytes(parsed) + b.getvalue()
        stream += struct.pack(">I", len(rec)) + rec
    rc, out, err = run(["decode", "--type", t, "--length-prefixed"], stream)
    assert rc == 0, "decode exit %d: %s" % (rc, err)
    got = [json.loads(line) for line in out.decode().splitlines()]
    assert got == RECORDS[t], "switchyard decoded %r" % got
    # decode without --type finds the type from the fingerprint; --envelope says which
    rc, out, err = run(["decode", "-R", "--envelope"], stream)
    assert rc == 0, err
    env = [json.loads(line) for line in out.decode().splitlines()]
    assert [e["type"] for e in env] == [t] * len(RECORDS[t])
    assert env[0]["fingerprint"] == fp_bytes(parsed)[::-1].hex()


def fastavro_resolves_ours():
    """fastavro reads our v1 JobStatus/JobRequest with evolved reader schemas."""
    evo = os.path.join(ROOT, "tests", "unit", "data", "evolution")
    for t, f, check_fn in [
            ("JobStatus", "JobStatus.v2.avsc",
             lambda d: d["priority"] == 0 and d["progress"] is None and d["labels"] == {}),
            ("JobRequest", "JobRequest.v0.avsc",
             lambda d: "metadata" not in d and d["job_id"] == RECORDS["JobRequest"][0]["job_id"])]:
        with open(os.path.join(evo, f)) as fh:
            reader = parse_schema(json.load(fh))
        rc, out, err = run(["encode", "--type", t], json.dumps(RECORDS[t][0]).encode())
        assert rc == 0, err
        got = fastavro.schemaless_reader(io.BytesIO(out[10:]), SCHEMAS[t], reader)
        assert check_fn(got), "%s read as %s: %r" % (t, f, got)


def schemas_match():
    """`switchyard schemas --canonical` is fastavro's canonical form, file by file."""
    rc, out, err = run(["schemas", "--canonical"])
    assert rc == 0, err
    ours = sorted(out.decode().split("\n")[:-1])
    theirs = sorted(to_parsing_canonical_form(s) for s in SCHEMAS.values())
    assert ours == theirs, "canonical forms differ:\n%s\n%s" % (ours, theirs)


def bad_input():
    good = RECORDS["JobControl"][0]
    rc, rec, err = run(["encode", "-t", "JobControl"], json.dumps(good).encode())
    assert rc == 0, err
    rc, status, err = run(["encode", "-t", "JobStatus"], json.dumps(RECORDS["JobStatus"][0]).encode())
    cases = [  # (args, stdin, message fragment)
        (["decode"], rec[:-3], "truncated"),
        (["decode"], b"", "empty record"),
        (["decode"], b"\xc3\x02" + rec[2:], "bad_magic"),
        (["decode"], b"X" + rec[1:], "neither 0x00"),
        (["decode"], b'{"job_id": "x"}', "looks like JSON"),
        (["decode"], rec[:2] + b"\x00" * 8 + rec[10:], "unknown schema fingerprint"),
        (["decode"], b"\x00\x00\x00\x00\x07" + rec[10:], "schema.registry.url"),
        (["decode", "-t", "JobControl"], status, "not JobControl"),
        (["-X", "codec.max.string.bytes=4", "decode"], rec, "exceeds codec.max.string.bytes"),
        (["decode"], rec + b"\x00", "unexpected bytes"),
        (["decode", "-x"], b"zz\n", "not hex"),
        (["decode", "-R"], b"\x00\x00\x01\x00abc", "length prefix"),
        (["encode", "-t", "JobControl", "-x"], b'{"job_id": ', "invalid JSON"),
        (["encode", "-t", "JobControl", "-x"], b'{"job_id": "j", "colour": 1}', 'unknown field "colour"'),
        (["encode", "-t", "JobControl", "-x"],
         json.dumps(dict(good, action="STOP")).encode(), '"STOP" is not a JobAction'),
        (["encode", "-t", "JobControl", "-x"],
         json.dumps(dict(good, requested_at="soon")).encode(), "JobControl.requested_at"),
        (["encode", "-t", "JobControl"], json.dumps(good).encode() * 2, "more than one JSON document"),
        (["encode", "-t", "JobControl", "-x"], b"  ", "no JSON"),
    ]
    for args, data, needle in cases:
        rc, out, err = run(args, data)
        assert rc == 3, "%s on %r: exit %d (%s)" % (args, data[:20], rc, err.strip())
        assert needle in err, "%s on %r: %r lacks %r" % (args, data[:20], err.strip(), needle)
        assert "Sanitizer" not in err and "runtime error" not in err, err
    rc, out, err = run(["encode", "-t", "Nope"], b"{}")
    assert rc == 2 and "--type" in err, (rc, err)
    # a bad record among good ones: the good ones still print, the exit code says one failed
    rc, out, err = run(["decode", "-x"], (rec.hex() + "\n" + rec[:-2].hex() + "\n" + rec.hex() + "\n").encode())
    assert rc == 3 and len(out.decode().splitlines()) == 2 and "record 2" in err, (rc, out, err)


def many_through_a_pipe():
    """2,000 requests through `encode --lines --hex` and back through `decode -x`, fed the
    simplest way: write all of stdin, close it, then read stdout. encode reads all its input
    before it writes (it is a filter like sort), so this cannot deadlock on full pipes; a
    watchdog turns a hang into a failure. Each record's bytes come back on one hex line: the raw
    bytes would not do, since framed Avro routinely holds 0x0a (a 5-character string's length
    byte, e.g. the user "itest" below), so splitting records on newlines breaks them."""
    n = 2000
    docs = [dict(RECORDS["JobRequest"][0], job_id="pipe-%d" % i, name="pipe-%d" % i,
                 user="itest", submitted_at=1714521600000 + i) for i in range(n)]
    data = "\n".join(json.dumps(d) for d in docs).encode() + b"\n"
    hexout = b""
    for cmd, feed in ((["encode", "-t", "JobRequest", "--lines", "--hex"], data),
                      (["decode", "-t", "JobRequest", "-x"], None)):
        p = subprocess.Popen([SWITCHYARD] + cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, env=ENV)
        watchdog = threading.Timer(60, p.kill)
        watchdog.start()
        try:
            p.stdin.write(feed if feed is not None else hexout)
            p.stdin.close()
            out = p.stdout.read()
            rc = p.wait()
        finally:
            watchdog.cancel()
        assert rc == 0, "switchyard %s: exit %d (killed by the 60 s watchdog if -9)" % (cmd[0], rc)
        if feed is not None:
            hexout = out
            lines = out.split()
            assert len(lines) == n, "%d hex lines for %d documents" % (len(lines), n)
            assert any(b"\n" in bytes.fromhex(h.decode()) for h in lines)
    got = [json.loads(line) for line in out.decode().splitlines()]
    assert [g["job_id"] for g in got] == [d["job_id"] for d in docs], "decode lost or reordered"
    assert got == docs


def main():
    if not os.access(SWITCHYARD, os.X_OK):
        print("FAIL no switchyard binary at %s (set SY_BIN)" % SWITCHYARD)
        return 1
    print("fastavro %s, switchyard %s" % (fastavro.__version__, SWITCHYARD))
    check("canonical forms agree with fastavro", schemas_match)
    for t in RECORDS:
        check("%s: switchyard encode -> fastavro" % t, lambda t=t: ours_to_fastavro(t))
        check("%s: fastavro -> switchyard decode" % t, lambda t=t: fastavro_to_ours(t))
    check("fastavro resolves our records into evolved schemas", fastavro_resolves_ours)
    check("bad input: exit 3 and a message naming the problem", bad_input)
    check("2,000 records through encode --lines --hex | decode -x pipes", many_through_a_pipe)
    failed = sum(1 for _, e in results if e)
    print("%d passed, %d failed" % (len(results) - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
