"""Worker with the local driver, end to end against the real broker and PostgreSQL: router and
worker binaries, a local cluster and command in the registry, JobRequests in, JobStatus and
JobLog records out. Success and failure with their status sequences, logs in order without
duplicates, a kill on <ns>.control, a kill for an unknown job, a timeout, a lot of output fast
(complete, bounded memory, the per-job cap), a cluster at its max concurrency (paused, nothing
failed), a redelivered RoutedJob (nothing emitted twice), SIGKILL of the worker while local jobs
run (the next owner reports them FAILED/WORKER_LOST, nothing twice, the process is gone), and a
graceful stop (jobs get their grace period, the rest end FAILED/WORKER_STOPPED)."""
import collections
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sylib  # noqa: E402
import fastavro  # noqa: E402
from confluent_kafka import Consumer, Producer  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOG_CAP = 40_000_000
TERMINAL = ("SUCCEEDED", "FAILED", "KILLED")


class Decoder:
    """Avro records as the worker writes them (Confluent framing with the registry, else
    single-object encoding), decoded with fastavro — fast enough for thousands of log chunks."""

    def __init__(self):
        self.registry = os.environ.get("SWITCHYARD_SCHEMA_REGISTRY_URL", "").split(",")[0]
        self.by_id = {}
        self.local = {}
        for name in ("JobStatus", "JobLog", "RoutedJob", "JobRequest"):
            with open(os.path.join(ROOT, "schemas", f"{name}.v1.avsc")) as f:
                self.local[name] = json.load(f)

    def schema(self, sid):
        if sid not in self.by_id:
            with urllib.request.urlopen(f"{self.registry}/schemas/ids/{sid}", timeout=10) as r:
                self.by_id[sid] = fastavro.parse_schema(json.loads(json.load(r)["schema"]))
        return self.by_id[sid]

    def decode(self, data, type_name):
        import io
        if data[0] == 0:
            sid = struct.unpack(">I", data[1:5])[0]
            return fastavro.schemaless_reader(io.BytesIO(data[5:]), self.schema(sid))
        assert data[:2] == b"\xc3\x01", data[:10]
        named = {}
        for n in ("JobRequest",):
            fastavro.parse_schema(self.local[n], named)
        schema = fastavro.parse_schema(self.local[type_name], named)
        return fastavro.schemaless_reader(io.BytesIO(data[10:]), schema)


class Watch:
    """Reads <ns>.status and <ns>.logs from the start, keeping every record per job."""

    def __init__(self, env, dec):
        self.env, self.dec = env, dec
        self.status = collections.defaultdict(list)
        self.logs = collections.defaultdict(list)
        self.c = Consumer({"bootstrap.servers": sylib.BOOTSTRAP, "group.id": f"w-{uuid.uuid4().hex}",
                           "auto.offset.reset": "earliest", "enable.auto.commit": False})
        self.c.subscribe([env.topic("status"), env.topic("logs")])

    def pump(self, seconds=0.2):
        end = time.time() + seconds
        while time.time() < end:
            for m in self.c.consume(1000, 0.1):
                if m.error():
                    continue
                k = m.key().decode()
                if m.topic().endswith(".status"):
                    self.status[k].append(self.dec.decode(m.value(), "JobStatus"))
                else:
                    self.logs[k].append(self.dec.decode(m.value(), "JobLog"))

    def until(self, pred, timeout=60, what="condition"):
        end = time.time() + timeout
        while time.time() < end:
            self.pump(0.3)
            if pred():
                return
        raise AssertionError(f"timed out waiting for {what}")

    def states(self, job):
        return [s["status"] for s in self.status[job]]

    def final(self, job):
        t = [s for s in self.status[job] if s["status"] in TERMINAL]
        return t[-1] if t else None

    def wait_final(self, job, timeout=60):
        self.until(lambda: self.final(job) is not None, timeout, f"{job} to end")
        return self.final(job)

    def stream(self, job, name):
        """The stream's bytes assembled by offset; asserts no gap and no duplicate."""
        chunks = sorted((c for c in self.logs[job] if c["stream"] == name), key=lambda c: c["offset"])
        out, pos = bytearray(), 0
        for c in chunks:
            assert c["offset"] == pos, (job, name, "gap or duplicate at", pos, c["offset"])
            assert len(c["chunk"]) <= 65536, len(c["chunk"])
            out += c["chunk"]
            pos += len(c["chunk"])
        return bytes(out)

    def close(self):
        self.c.close()


class Stack:
    def __init__(self, env, tmp):
        self.env, self.tmp = env, tmp
        self.router = self.worker = None
        self.n = 0
        self.worker_env = {
            "SWITCHYARD_WORKER_INSTANCE_ID": "w-itest",
            "SWITCHYARD_WORKER_HEARTBEAT_MS": "500",
            "SWITCHYARD_WORKER_LEASE_MS": "2000",
            "SWITCHYARD_WORKER_KILL_GRACE_MS": "1000",
            "SWITCHYARD_WORKER_SHUTDOWN_GRACE_MS": "3000",
            "SWITCHYARD_WORKER_CAPACITY_RETRY_MS": "500",
            "SWITCHYARD_WORKER_LOG_MAX_BYTES": str(LOG_CAP),
            "SWITCHYARD_WORKER_LOG_INFLIGHT_MAX_BYTES": str(8 << 20),
            "SWITCHYARD_WORKER_LOCAL_WORKDIR": os.path.join(tmp, "jobs"),
            **sylib.FAST_GROUP_ENV,
        }

    def start_router(self):
        self.router = self.env.start("switchyard-router", log=os.path.join(self.tmp, "router.log"))

    def start_worker(self):
        self.n += 1
        self.worker_log = os.path.join(self.tmp, f"worker{self.n}.log")
        self.worker = self.env.start("switchyard-worker", extra_env=self.worker_env,
                                     log=self.worker_log)

    def worker_text(self):
        with open(self.worker_log, errors="replace") as f:
            return f.read()


def make_topics(env):
    """Topics up front, so neither binary races the broker's metadata at its first start."""
    env.make_topics(["loc", "loc2"])


def submit(env, job_id, script, tags=("env:wrk",), **extra):
    env.produce(env.topic("requests"), job_id.encode(),
                env.encode("JobRequest", sylib.request(job_id, [list(tags)], ["type:sh"],
                                                       arguments=[script], **extra)))


def kill(env, job_id, reason="itest"):
    rec = {"job_id": job_id, "action": "KILL", "reason": reason, "requested_by": "tester",
           "requested_at": int(time.time() * 1000)}
    env.produce(env.topic("control"), job_id.encode(), env.encode("JobControl", rec))


def ms(t):
    """A timestamp-millis field as fastavro gives it (a datetime) in epoch milliseconds."""
    return int(t.timestamp() * 1000) if hasattr(t, "timestamp") else t


def seqs_ok(w, job):
    """Strictly increasing per job, worker events from 10, no seq twice."""
    seqs = [s["seq"] for s in w.status[job] if s["status"] != "DUPLICATE"]
    assert seqs == sorted(seqs) and len(seqs) == len(set(seqs)), (job, w.states(job), seqs)
    worker = [s for s in w.status[job] if s["seq"] >= 10]
    assert worker and worker[0]["status"] == "CLAIMED" and worker[0]["seq"] == 10, w.status[job]


# ---- the tests -------------------------------------------------------------------------------

def test_success(env, st, w):
    submit(env, "ok-1", "echo hello; echo oops >&2; sleep 0.3; echo bye")
    f = w.wait_final("ok-1")
    assert w.states("ok-1") == ["ACCEPTED", "RESOLVED", "CLAIMED", "SUBMITTED", "RUNNING",
                                "SUCCEEDED"], w.states("ok-1")
    assert [s["seq"] for s in w.status["ok-1"]] == [1, 2, 10, 11, 12, 13]
    sub = w.status["ok-1"][3]
    assert sub["backend_id"] and sub["backend_id"].count(":") == 2, sub
    assert f["exit_code"] == 0 and f["cluster"] == "loc" and f["command"] == "sh", f
    assert f["emitter"] == "w-itest", f
    assert w.stream("ok-1", "stdout") == b"hello\nbye\n"
    assert w.stream("ok-1", "stderr") == b"oops\n"
    # the terminal status comes after every log chunk was acknowledged
    assert max(c["emitted_at"] for c in w.logs["ok-1"]) <= f["emitted_at"]
    seqs_ok(w, "ok-1")


def test_failure(env, st, w):
    submit(env, "fail-1", "echo going down >&2; exit 7")
    submit(env, "segv-1", "kill -SEGV $$")
    f = w.wait_final("fail-1")
    assert f["status"] == "FAILED" and f["exit_code"] == 7, f
    assert f["failure_reason"] == "NON_ZERO_EXIT", f
    assert w.stream("fail-1", "stderr") == b"going down\n"
    g = w.wait_final("segv-1")
    assert g["status"] == "FAILED" and g["failure_reason"] == "SIGNAL_11" and g["exit_code"] is None, g
    seqs_ok(w, "fail-1")


def test_kill(env, st, w):
    submit(env, "kill-1", "echo started; sleep 60")
    w.until(lambda: w.stream("kill-1", "stdout") == b"started\n", 30, "kill-1 to start")
    t0 = time.time()
    kill(env, "kill-1", "no longer needed")
    f = w.wait_final("kill-1", 30)
    assert f["status"] == "KILLED" and f["failure_reason"] == "KILL_REQUESTED", f
    assert "tester" in f["message"] and "no longer needed" in f["message"], f
    assert time.time() - t0 < 10
    seqs_ok(w, "kill-1")
    # a kill for a job nobody knows is logged and ignored; the worker carries on
    kill(env, "no-such-job")
    submit(env, "after-kill", "true")
    assert w.wait_final("after-kill")["status"] == "SUCCEEDED"
    assert "kill request for unknown job no-such-job ignored" in st.worker_text()
    assert st.worker.poll() is None


def test_timeout(env, st, w):
    # ignores SIGTERM: the grace period passes, then SIGKILL
    submit(env, "slow-1", "trap '' TERM; while :; do sleep 0.1; done", timeout_ms=1500)
    f = w.wait_final("slow-1", 30)
    assert f["status"] == "KILLED" and f["failure_reason"] == "TIMEOUT", f
    assert "timed out after 1500 ms" in f["message"] and "SIGKILL" in f["message"], f
    running = [s for s in w.status["slow-1"] if s["status"] == "RUNNING"][0]
    took = ms(f["emitted_at"]) - ms(running["emitted_at"])
    assert 2300 <= took <= 8000, took  # 1.5 s timeout + 1 s grace


def vm_hwm_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def test_big_output(env, st, w):
    hwm0 = vm_hwm_kb(st.worker.pid)
    n = 3_500_000  # ~27 MB as fast as seq writes it
    submit(env, "big-1", f"seq 1 {n}; echo tail >&2")
    f = w.wait_final("big-1", 180)
    assert f["status"] == "SUCCEEDED", f
    want = b"".join(b"%d\n" % i for i in range(1, n + 1))
    got = w.stream("big-1", "stdout")
    assert len(got) == len(want) and got == want, (len(got), len(want))
    assert w.stream("big-1", "stderr") == b"tail\n"
    grew = (vm_hwm_kb(st.worker.pid) - hwm0) / 1024
    print(f"  big output: {len(got)} bytes in {len(w.logs['big-1'])} chunks; "
          f"worker peak memory grew {grew:.1f} MiB", flush=True)
    assert grew < 64, f"worker peak memory grew {grew:.1f} MiB for {len(got) >> 20} MiB of output"
    # past the per-job cap: one notice, the rest dropped, the job itself unaffected
    submit(env, "cap-1", f"head -c {LOG_CAP + 10_000_000} /dev/zero; echo finished >&2")
    f = w.wait_final("cap-1", 180)
    assert f["status"] == "SUCCEEDED", f
    out = w.stream("cap-1", "stdout")
    assert out[:LOG_CAP] == bytes(LOG_CAP) and b"discarded" in out[LOG_CAP:], len(out)
    assert len(out) < LOG_CAP + 300
    assert w.stream("cap-1", "stderr") == b""  # the cap is per job: stderr came after it


def test_capacity(env, st, w):
    ids = [f"cap2-{i}" for i in range(5)]
    for j in ids:
        submit(env, j, "sleep 1.5", tags=("env:cap",))
    for j in ids:
        assert w.wait_final(j, 60)["status"] == "SUCCEEDED", w.status[j]
    spans = []
    for j in ids:
        run = [ms(s["emitted_at"]) for s in w.status[j] if s["status"] == "RUNNING"][0]
        spans.append((run, ms(w.final(j)["emitted_at"])))
    most = max(sum(1 for a, b in spans if a <= t < b) for t, _ in spans)
    assert most <= 2, spans
    assert any("cluster loc2:" in line and "pausing its partitions" in line
               for line in st.worker_text().splitlines())


def test_redelivery(env, st, w):
    """A RoutedJob delivered again (its job ended) is skipped: nothing is emitted twice."""
    c = Consumer({"bootstrap.servers": sylib.BOOTSTRAP, "group.id": f"r-{uuid.uuid4().hex}",
                  "auto.offset.reset": "earliest", "isolation.level": "read_committed"})
    c.subscribe([env.topic("cluster.loc")])
    raw, end = None, time.time() + 30
    while raw is None and time.time() < end:
        m = c.poll(0.5)
        if m is not None and not m.error() and m.key() == b"ok-1":
            raw = m.value()
    c.close()
    assert raw is not None
    before = len(w.status["ok-1"])
    p = Producer({"bootstrap.servers": sylib.BOOTSTRAP, "partitioner": "murmur2_random"})
    p.produce(env.topic("cluster.loc"), key=b"ok-1", value=raw)
    p.flush(10)
    submit(env, "after-dup", "true")  # same worker, later: once it is done, the dup was seen
    w.wait_final("after-dup")
    w.pump(2)
    assert len(w.status["ok-1"]) == before, w.states("ok-1")


def test_worker_killed(env, st, w):
    """SIGKILL of the worker while local jobs run: their processes die with it; the restarted
    worker reports them FAILED/WORKER_LOST (not re-run), with the next seq, nothing twice."""
    submit(env, "lost-1", "echo before; sleep 60; echo after")
    submit(env, "lost-2", "sleep 60")
    w.until(lambda: w.stream("lost-1", "stdout") == b"before\n" and "RUNNING" in w.states("lost-2"),
            30, "lost jobs to run")
    pids = [int(w.status[j][3]["backend_id"].split(":")[1]) for j in ("lost-1", "lost-2")]
    st.worker.send_signal(signal.SIGKILL)
    st.worker.wait()
    time.sleep(0.5)
    for pid in pids:  # PR_SET_PDEATHSIG: no job keeps running unwatched
        assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split(") ")[1][0] == "Z"
    submit(env, "while-down", "echo later")  # waits in the cluster topic
    st.start_worker()
    for j in ("lost-1", "lost-2"):
        f = w.wait_final(j, 60)
        assert f["status"] == "FAILED" and f["failure_reason"] == "WORKER_LOST", f
        assert f["seq"] == 13, w.status[j]
        seqs_ok(w, j)
    assert w.wait_final("while-down", 60)["status"] == "SUCCEEDED"
    assert w.stream("while-down", "stdout") == b"later\n"
    assert w.stream("lost-1", "stdout") == b"before\n"  # not re-run: no second "before"
    w.pump(2)
    for j in ("lost-1", "lost-2", "while-down"):
        assert len([s for s in w.status[j] if s["status"] in TERMINAL]) == 1, w.states(j)


def test_owner_lost(env, st, w):
    """A local job whose ledger row another session took over (this worker was thought dead):
    the worker stops its process within ~10 s; the job is reported once, FAILED/WORKER_LOST."""
    submit(env, "stolen-1", "echo running; sleep 120")
    w.until(lambda: w.stream("stolen-1", "stdout") == b"running\n", 30, "stolen-1 to run")
    pid = int(w.status["stolen-1"][3]["backend_id"].split(":")[1])
    sylib.psql(env.env["SWITCHYARD_DATABASE_URL"],
               "UPDATE jobs SET owner = 'gone@elsewhere' WHERE job_id = 'stolen-1'")
    end = time.time() + 20
    while os.path.exists(f"/proc/{pid}") and time.time() < end:
        time.sleep(0.2)
    assert not os.path.exists(f"/proc/{pid}"), "the process of a job this worker lost still runs"
    f = w.wait_final("stolen-1", 30)
    assert f["status"] == "FAILED" and f["failure_reason"] == "WORKER_LOST", f
    w.pump(2)
    assert len([s for s in w.status["stolen-1"] if s["status"] in TERMINAL]) == 1
    seqs_ok(w, "stolen-1")


def test_graceful_stop(env, st, w):
    """SIGTERM: no new jobs; running local jobs get worker.shutdown.grace.ms to finish, the rest
    end FAILED/WORKER_STOPPED; the worker exits 0 and leaves the roster."""
    submit(env, "short-1", "sleep 1; echo done")
    submit(env, "long-1", "sleep 60")
    w.until(lambda: "RUNNING" in w.states("short-1") and "RUNNING" in w.states("long-1"),
            30, "jobs to run")
    st.worker.send_signal(signal.SIGTERM)
    assert w.wait_final("short-1", 30)["status"] == "SUCCEEDED"
    f = w.wait_final("long-1", 30)
    assert f["status"] == "FAILED" and f["failure_reason"] == "WORKER_STOPPED", f
    assert st.worker.wait(30) == 0
    r = subprocess.run(["psql", "-tA", env.env["SWITCHYARD_DATABASE_URL"], "-c",
                        "SELECT count(*) FROM workers"], capture_output=True, text=True)
    assert r.stdout.strip() == "0", r.stdout
    st.start_worker()
    submit(env, "after-stop", "true")
    assert w.wait_final("after-stop", 60)["status"] == "SUCCEEDED"


def test_all_sequences(env, st, w):
    w.pump(1)
    for job in list(w.status):
        if any(s["seq"] >= 10 for s in w.status[job]):
            seqs_ok(w, job)
            assert len([s for s in w.status[job] if s["status"] in TERMINAL]) == 1, w.states(job)


def main():
    env = sylib.Env("wrk")
    tmp = tempfile.mkdtemp(prefix="sy-itest-worker-")
    st, w = Stack(env, tmp), None
    r = sylib.Runner()
    try:
        env.cli("clusters", "add", "loc", "--kind", "local", "--tags", "env:wrk")
        env.cli("clusters", "add", "loc2", "--kind", "local", "--tags", "env:cap",
                "--max-concurrent", "2")
        env.cli("commands", "add", "sh", "--tags", "type:sh",
                "--spec", '{"local":{"argv":["/bin/sh","-c"]}}')
        env.cli("link", "sh", "loc")
        env.cli("link", "sh", "loc2")
        make_topics(env)
        st.start_router()
        st.start_worker()
        w = Watch(env, Decoder())
        for t in (test_success, test_failure, test_kill, test_timeout, test_big_output,
                  test_capacity, test_redelivery, test_worker_killed, test_owner_lost,
                  test_graceful_stop,
                  test_all_sequences):
            r.run(t, env, st, w)
    finally:
        if w:
            w.close()
        env.close()
        print(f"logs in {tmp}", flush=True)
    r.done()


if __name__ == "__main__":
    main()
