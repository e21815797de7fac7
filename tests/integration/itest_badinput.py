"""Bad input through the running processes: the real switchyard-router and switchyard-worker
(one local cluster) get the corpus of tests/integration/badinput_corpus.py on <ns>.requests
and <ns>.control — truncated records, wrong magic bytes, unknown schema ids and fingerprints,
records of the wrong type, strings that are not text, invalid job ids, tags and timeouts, huge
fields (up to 3 MB, <ns>.requests taking 8 MiB messages), empty and null messages, kills for
unknown jobs —
interleaved with good requests and a good kill. Asserted:
  - each bad request is dead-lettered once to <ns>.deadletter with the original key, bytes and
    headers plus the router's (sy.error, sy.error.code as expected, sy.source.topic/partition/
    offset of that very message, sy.router), or ends INVALID with the expected reason, or (a
    valid request the host cannot run) FAILED — and nothing else about it is emitted;
  - each bad control message is logged by the worker as ignored, with its partition and offset
    (not dead-lettered: every worker reads every control partition, docs/worker.md);
  - every good request interleaved ends SUCCEEDED, and the good kill ends its job KILLED;
  - both processes are still running at the end, stop cleanly on SIGTERM (exit 0), and no
    sanitizer report is in their logs (the test runs in the ASan build too).
SY_BADINPUT_ONLY=name,name,... runs only those cases of the corpus (while investigating one)."""
import collections
import io
import json
import os
import signal
import struct
import sys
import tempfile
import time
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sylib  # noqa: E402
import badinput_corpus as corpus  # noqa: E402
import fastavro  # noqa: E402
from confluent_kafka import Consumer, Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TERMINAL = ("SUCCEEDED", "FAILED", "KILLED", "INVALID")
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "SUMMARY: UndefinedBehaviorSanitizer", "Segmentation fault")


class StatusDecoder:
    """JobStatus records as the router and worker write them (Confluent framing with the
    registry, else single-object), decoded with fastavro."""

    def __init__(self):
        self.registry = os.environ.get("SWITCHYARD_SCHEMA_REGISTRY_URL", "").split(",")[0]
        self.by_id = {}
        with open(os.path.join(ROOT, "schemas", "JobStatus.v1.avsc")) as f:
            self.local = fastavro.parse_schema(json.load(f))

    def __call__(self, data):
        if data[0] == 0:
            sid = struct.unpack(">I", data[1:5])[0]
            if sid not in self.by_id:
                with urllib.request.urlopen(f"{self.registry}/schemas/ids/{sid}", timeout=10) as r:
                    self.by_id[sid] = fastavro.parse_schema(json.loads(json.load(r)["schema"]))
            return fastavro.schemaless_reader(io.BytesIO(data[5:]), self.by_id[sid])
        return fastavro.schemaless_reader(io.BytesIO(data[10:]), self.local)


class Reader:
    """Everything on a topic from the start, read_committed, kept by key."""

    def __init__(self, topic, decode=None):
        self.c = Consumer({"bootstrap.servers": sylib.BOOTSTRAP,
                           "group.id": f"b-{uuid.uuid4().hex}",
                           "auto.offset.reset": "earliest", "enable.auto.commit": False,
                           "isolation.level": "read_committed",
                           "fetch.message.max.bytes": 2 << 20})
        self.c.subscribe([topic])
        self.decode = decode
        self.by_key = collections.defaultdict(list)

    def pump(self, seconds):
        end = time.time() + seconds
        while time.time() < end:
            for m in self.c.consume(500, 0.2):
                if m.error():
                    continue
                k = (m.key() or b"").decode(errors="replace")
                self.by_key[k].append(self.decode(m.value()) if self.decode else m)

    def until(self, pred, timeout, what):
        end = time.time() + timeout
        while time.time() < end:
            self.pump(0.5)
            if pred():
                return
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")

    def close(self):
        self.c.close()


def make_topics(env):
    """Topics up front; <ns>.requests takes messages of up to corpus.TOPIC_MAX bytes."""
    admin = AdminClient({"bootstrap.servers": sylib.BOOTSTRAP})
    names = ["router.seen", "status", "logs", "control", "deadletter", "cluster.loc"]
    topics = [NewTopic(env.topic(n), 3, 1) for n in names]
    topics.append(NewTopic(env.topic("requests"), 3, 1,
                           config={"max.message.bytes": str(corpus.TOPIC_MAX)}))
    for f in admin.create_topics(topics).values():
        f.result(30)
    time.sleep(1)


def encoder(env):
    """enc(type, record, registry=True): our CLI's framing for the test namespace, with limits
    high enough to write what the router must refuse."""
    def enc(type_name, record, registry=True):
        saved = dict(env.env)
        env.env["SWITCHYARD_CODEC_MAX_ITEMS"] = "1000000"
        env.env["SWITCHYARD_CODEC_MAX_STRING_BYTES"] = str(4 << 20)
        if not registry:
            env.env["SWITCHYARD_SCHEMA_REGISTRY_URL"] = ""
        try:
            return env.encode(type_name, record)
        finally:
            env.env = saved
    return enc


def sanitizer_reports(path):
    with open(path, errors="replace") as f:
        text = f.read()
    return [line for line in text.splitlines() if any(s in line for s in SANITIZER_MARKS)]


def main():
    env = sylib.Env("bad")
    tmp = tempfile.mkdtemp(prefix="sy-itest-badinput-")
    router_log, worker_log = os.path.join(tmp, "router.log"), os.path.join(tmp, "worker.log")
    r = sylib.Runner()
    readers = []
    procs = {}
    state = {}

    def setup():
        env.cli("clusters", "add", "loc", "--kind", "local", "--tags", "env:bad")
        env.cli("commands", "add", "sh", "--tags", "type:sh",
                "--spec", '{"local":{"argv":["/bin/sh","-c"]}}')
        env.cli("link", "sh", "loc")
        make_topics(env)
        procs["router"] = env.start("switchyard-router", log=router_log,
                                    extra_env={"SWITCHYARD_ROUTER_INSTANCE_ID": "r-bad"})
        procs["worker"] = env.start("switchyard-worker", log=worker_log, extra_env={
            "SWITCHYARD_WORKER_INSTANCE_ID": "w-bad", "SWITCHYARD_WORKER_KILL_GRACE_MS": "1000",
            "SWITCHYARD_WORKER_HEARTBEAT_MS": "500", "SWITCHYARD_WORKER_LEASE_MS": "2000",
            "SWITCHYARD_WORKER_LOCAL_WORKDIR": os.path.join(tmp, "jobs"),
            "SWITCHYARD_KAFKA_SESSION_TIMEOUT_MS": "6000",
            "SWITCHYARD_KAFKA_HEARTBEAT_INTERVAL_MS": "500"})
        state["status"] = Reader(env.topic("status"), StatusDecoder())
        state["dead"] = Reader(env.topic("deadletter"))
        readers.extend([state["status"], state["dead"]])
        # both up and connected: a first job goes all the way
        env.produce(env.topic("requests"), b"warm-up",
                    env.encode("JobRequest", corpus.request("warm-up")))
        st = state["status"]
        st.until(lambda: any(s["status"] in TERMINAL for s in st.by_key["warm-up"]), 90,
                 "the warm-up job")
        assert st.by_key["warm-up"][-1]["status"] == "SUCCEEDED", st.by_key["warm-up"]

    def publish():
        enc = encoder(env)
        only = set(filter(None, os.environ.get("SY_BADINPUT_ONLY", "").split(",")))
        state["req_cases"] = [c for c in corpus.requests_cases(enc) if not only or c.name in only]
        state["ctl_cases"] = [c for c in corpus.control_cases(enc) if not only or c.name in only]
        # a producer that takes what the topic takes (the default client stops at 1,000,000)
        p = Producer({"bootstrap.servers": sylib.BOOTSTRAP, "partitioner": "murmur2_random",
                      "enable.idempotence": True, "message.max.bytes": corpus.TOPIC_MAX})
        where = {}

        def on_delivery(err, msg):
            assert err is None, err
            where[(msg.topic(), msg.key())] = (msg.partition(), msg.offset())

        long_job = "good-long"
        p.produce(env.topic("requests"), key=long_job.encode(), on_delivery=on_delivery,
                  value=enc("JobRequest", corpus.request(long_job, arguments=["sleep 120"])))
        goods = []
        for i, c in enumerate(state["req_cases"]):
            p.produce(env.topic("requests"), key=f"bad-{c.name}".encode(), value=c.value,
                      headers=c.headers, on_delivery=on_delivery)
            if i % 3 == 0:
                g = f"good-{i}"
                goods.append(g)
                p.produce(env.topic("requests"), key=g.encode(), on_delivery=on_delivery,
                          value=enc("JobRequest", corpus.request(g, arguments=[f"echo {g}"]),
                                    registry=(i % 2 == 0)))
        for c in state["ctl_cases"]:
            key = c.expect[1] if c.expect[0] == "unknown" else f"bad-{c.name}"
            p.produce(env.topic("control"), key=key.encode(), value=c.value,
                      on_delivery=on_delivery)
        assert p.flush(60) == 0, "produce did not complete"
        state["where"], state["goods"], state["long"] = where, goods, long_job
        state["enc"] = enc

    def test_good_requests_succeed():
        st = state["status"]
        goods = state["goods"]
        st.until(lambda: all(any(s["status"] in TERMINAL for s in st.by_key[g]) for g in goods),
                 180, "the good jobs")
        bad = {g: [s["status"] for s in st.by_key[g]] for g in goods
               if st.by_key[g][-1]["status"] != "SUCCEEDED"}
        assert not bad, bad
        print(f"  {len(goods)} good requests interleaved: all SUCCEEDED", flush=True)

    def test_bad_requests():
        st, dead, where = state["status"], state["dead"], state["where"]
        cases = state["req_cases"]
        want_dead = {f"bad-{c.name}" for c in cases if c.expect[0] == "deadletter"}
        want_end = {f"bad-{c.name}" for c in cases if c.expect[0] in ("invalid", "failed")}
        dead.until(lambda: want_dead <= set(dead.by_key), 120, "the dead-lettered requests")
        st.until(lambda: all(any(s["status"] in TERMINAL for s in st.by_key[k]) for k in want_end),
                 120, "the invalid/failed requests")
        dead.pump(2)
        st.pump(1)
        problems = []
        for c in cases:
            key = f"bad-{c.name}"
            kind, want = c.expect
            if kind == "deadletter":
                recs = dead.by_key.get(key, [])
                if len(recs) != 1:
                    problems.append(f"{c.name}: {len(recs)} dead-letter records")
                    continue
                m = recs[0]
                h = {k: v for k, v in (m.headers() or [])}
                part, off = where[(env.topic("requests"), key.encode())]
                got = h.get("sy.error.code", b"").decode()
                if got != want:
                    problems.append(f"{c.name}: sy.error.code {got!r}, want {want!r} "
                                    f"({h.get('sy.error', b'').decode(errors='replace')})")
                expect_h = {"sy.source.topic": env.topic("requests").encode(),
                            "sy.source.partition": str(part).encode(),
                            "sy.source.offset": str(off).encode(), "sy.router": b"r-bad",
                            "origin": b"badinput"}
                for k, v in expect_h.items():
                    if h.get(k) != v:
                        problems.append(f"{c.name}: header {k} = {h.get(k)!r}, want {v!r}")
                if not h.get("sy.error"):
                    problems.append(f"{c.name}: no sy.error")
                if "sy.value.omitted" in h:  # too large to copy: the size instead of the bytes
                    if m.value() or int(h["sy.value.omitted"]) != len(c.value):
                        problems.append(f"{c.name}: sy.value.omitted {h['sy.value.omitted']!r} "
                                        f"with {len(m.value() or b'')} bytes, sent {len(c.value)}")
                elif (m.value() or b"") != (c.value or b""):
                    problems.append(f"{c.name}: dead-letter bytes differ from the original")
            else:
                ss = st.by_key.get(key, [])
                ends = [s for s in ss if s["status"] in TERMINAL]
                want_status = "INVALID" if kind == "invalid" else "FAILED"
                if len(ends) != 1 or ends[0]["status"] != want_status:
                    problems.append(f"{c.name}: statuses {[s['status'] for s in ss]}, "
                                    f"want one {want_status}")
                    continue
                text = ends[0]["message"] or "" if kind == "invalid" else \
                    ends[0]["failure_reason"] or ""
                if want not in text:
                    problems.append(f"{c.name}: {want_status} {text!r} lacks {want!r}")
                if key in dead.by_key:
                    problems.append(f"{c.name}: also dead-lettered")
        # nothing else came out of the bad requests
        allowed = want_end | set(state["goods"]) | {"warm-up", state["long"]}
        extra = sorted(k for k in st.by_key if k not in allowed)
        if extra:
            problems.append(f"status events for jobs that should have none: {extra[:10]}")
        extra = sorted(k for k in dead.by_key if k not in want_dead)
        if extra:
            problems.append(f"unexpected dead-letter records: {extra[:10]}")
        assert not problems, "\n  ".join([""] + problems)
        n = collections.Counter(c.expect[0] for c in cases)
        print(f"  {len(cases)} bad requests: {n['deadletter']} dead-lettered, "
              f"{n['invalid']} INVALID, {n['failed']} FAILED, as expected", flush=True)

    def test_bad_control_and_kill():
        st, where = state["status"], state["where"]
        ctl = env.topic("control")
        # the long job runs; a good KILL after all the bad control messages still works
        st.until(lambda: "RUNNING" in [s["status"] for s in st.by_key[state["long"]]], 60,
                 "the long job to run")
        env.produce(ctl, state["long"].encode(),
                    state["enc"]("JobControl", corpus.control(state["long"], reason="enough")))
        st.until(lambda: any(s["status"] in TERMINAL for s in st.by_key[state["long"]]), 60,
                 "the kill")
        f = st.by_key[state["long"]][-1]
        assert f["status"] == "KILLED" and f["failure_reason"] == "KILL_REQUESTED", f
        with open(worker_log, errors="replace") as fh:
            log = fh.read()
        problems = []
        for c in state["ctl_cases"]:
            kind, want = c.expect
            if kind == "unknown":
                line = f"kill request for unknown job {want} ignored"
                if line not in log:
                    problems.append(f"{c.name}: no \"{line}\" in the worker log")
                continue
            part, off = where[(ctl, f"bad-{c.name}".encode())]
            prefix = f"{ctl}[{part}]@{off} ignored: "
            lines = [ln for ln in log.splitlines() if prefix in ln]
            if len(lines) != 1 or want not in lines[0]:
                problems.append(f"{c.name}: worker log lines {lines!r}, want one with {want!r}")
        assert not problems, "\n  ".join([""] + problems)
        dead = state["dead"]
        dead.pump(1)
        from_ctl = [k for k, ms in dead.by_key.items() for m in ms
                    if dict(m.headers() or []).get("sy.source.topic") == ctl.encode()]
        assert not from_ctl, f"control messages dead-lettered: {from_ctl}"
        print(f"  {len(state['ctl_cases'])} bad control messages: each logged as ignored once; "
              "the good kill worked", flush=True)

    def test_processes_survive():
        for name, p in procs.items():
            assert p.poll() is None, f"switchyard-{name} exited with {p.returncode}"
        for name, p in procs.items():
            p.send_signal(signal.SIGTERM)
        for name, p in procs.items():
            rc = p.wait(60)
            assert rc == 0, f"switchyard-{name} exited {rc} on SIGTERM"
        for path in (router_log, worker_log):
            reps = sanitizer_reports(path)
            assert not reps, f"{path}: {reps[:5]}"

    try:
        setup()
        publish()
        r.run(test_good_requests_succeed)
        r.run(test_bad_requests)
        r.run(test_bad_control_and_kill)
        r.run(test_processes_survive)
    finally:
        for rd in readers:
            rd.close()
        env.close()
        if r.failed:
            for path in (router_log, worker_log):
                if os.path.exists(path):
                    print(f"---- {path} (tail) ----")
                    print("".join(open(path, errors="replace").readlines()[-40:]))
        print(f"logs in {tmp}", flush=True)
    r.done()


if __name__ == "__main__":
    main()
