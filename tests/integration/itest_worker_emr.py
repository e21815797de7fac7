"""Worker with the EMR steps driver, end to end: the real router and worker binaries, EMR
clusters in moto behind the testenv harness (which moves steps, implements CancelSteps and
injects faults), status and logs read back from Kafka. Success with the step as EMR got it and
its logs from S3 (gzip, re-uploaded as they grow, read while running and after the end, nothing
twice), failure with FailureDetails, kill (CancelSteps), timeout, throttling and 5xx storms (one
step per job), a worker SIGKILLed between "intent recorded" and "step id recorded" (exactly one
step after the restart), two workers rebalancing while steps run (none lost, none doubled),
capacity pause/resume, and a cluster that goes away."""
import gzip
import json
import os
import signal
import sys
import tempfile
import time
import uuid

import boto3
import requests
from botocore.config import Config

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sylib  # noqa: E402
from itest_worker_local import Decoder, Watch, TERMINAL  # noqa: E402

CONTROL = os.environ["SY_AWS_CONTROL_URL"]
TAG = uuid.uuid4().hex[:6]
BUCKET = f"sy-emr-logs-{TAG}"
SPEC = {"emr": {"jar": "command-runner.jar", "args": ["spark-submit", "--deploy-mode", "cluster"],
                "properties": {"team": "data"}}}


def control(method, path, body=None):
    r = requests.request(method, CONTROL + path, json=body, timeout=10)
    assert r.status_code == 200, f"{method} {path}: HTTP {r.status_code} {r.text}"
    return r.json()


class Aws:
    def __init__(self):
        retries = Config(retries={"mode": "standard", "max_attempts": 10})
        self.emr = boto3.client("emr", config=retries)
        self.s3 = boto3.client("s3", config=retries)
        self.s3.create_bucket(Bucket=BUCKET)

    def cluster(self, name, concurrency=10):
        return self.emr.run_job_flow(
            Name=f"{name}-{TAG}", ReleaseLabel="emr-6.15.0", LogUri=f"s3://{BUCKET}/logs/",
            JobFlowRole="EMR_EC2_DefaultRole", ServiceRole="EMR_DefaultRole",
            StepConcurrencyLevel=concurrency,
            Instances={"InstanceCount": 1, "MasterInstanceType": "m5.xlarge",
                       "KeepJobFlowAliveWhenNoSteps": True})["JobFlowId"]

    def steps(self, cluster_id):
        out, marker = [], None
        while True:
            kw = {"ClusterId": cluster_id}
            if marker:
                kw["Marker"] = marker
            page = self.emr.list_steps(**kw)
            out += page["Steps"]
            marker = page.get("Marker")
            if not marker:
                return out

    def steps_named(self, cluster_id, job_id):
        return [s for s in self.steps(cluster_id) if s["Name"] == f"switchyard:{job_id}"]

    def move(self, cluster_id, step_id, state, **kw):
        return control("POST", f"/control/emr/steps/{cluster_id}/{step_id}/state",
                       dict(state=state, **kw))

    def put_log(self, cluster_id, step_id, name, data):
        self.s3.put_object(Bucket=BUCKET, Key=f"logs/{cluster_id}/steps/{step_id}/{name}.gz",
                           Body=gzip.compress(data))


class Stack:
    def __init__(self, env, tmp):
        self.env, self.tmp = env, tmp
        self.n = 0
        self.workers = []
        self.worker_env = dict(sylib.FAST_GROUP_ENV, **{
            "SWITCHYARD_WORKER_HEARTBEAT_MS": "500",
            "SWITCHYARD_WORKER_LEASE_MS": "2000",
            "SWITCHYARD_WORKER_POLL_INTERVAL_MS": "500",
            "SWITCHYARD_WORKER_CAPACITY_RETRY_MS": "500",
            "SWITCHYARD_WORKER_EMR_LOGS_INTERVAL_MS": "1000",
            "SWITCHYARD_WORKER_EMR_LOGS_WAIT_MS": "3000",
            "SWITCHYARD_AWS_TIMEOUT_MS": "5000",
            "SWITCHYARD_AWS_RETRY_BASE_MS": "50",
            "SWITCHYARD_AWS_RETRY_MAX_BACKOFF_MS": "400",
        })

    def start_router(self):
        self.router = self.env.start("switchyard-router", log=os.path.join(self.tmp, "router.log"))

    def start_worker(self):
        self.n += 1
        log = os.path.join(self.tmp, f"worker{self.n}.log")
        env = dict(self.worker_env, SWITCHYARD_WORKER_INSTANCE_ID=f"w{self.n}")
        p = self.env.start("switchyard-worker", extra_env=env, log=log)
        self.workers.append((p, log))
        return p

    def text(self):
        out = ""
        for _, log in self.workers:
            with open(log, errors="replace") as f:
                out += f.read()
        return out


def submit(env, job_id, tags, args=(), **extra):
    env.produce(env.topic("requests"), job_id.encode(),
                env.encode("JobRequest", sylib.request(job_id, [list(tags)], ["type:spark"],
                                                       arguments=list(args), **extra)))


def kill(env, job_id, reason="itest"):
    rec = {"job_id": job_id, "action": "KILL", "reason": reason, "requested_by": "tester",
           "requested_at": int(time.time() * 1000)}
    env.produce(env.topic("control"), job_id.encode(), env.encode("JobControl", rec))


def step_id(w, job, timeout=60):
    w.until(lambda: any(s["status"] == "SUBMITTED" for s in w.status[job]), timeout,
            f"{job} to be SUBMITTED")
    return [s for s in w.status[job] if s["status"] == "SUBMITTED"][0]["backend_id"]


def ledger(env, sql):
    import subprocess
    r = subprocess.run(["psql", "-At", env.env["SWITCHYARD_DATABASE_URL"], "-c", sql],
                       capture_output=True, text=True, check=True)
    return r.stdout.strip()


def seqs_ok(w, job):
    """Per job: worker events from seq 10, one state per seq, in order. An event may appear
    twice with the same seq (a new owner republishes the last one it cannot know delivered);
    consumers keep the highest seq, so that is not a duplicate."""
    by_seq = {}
    for s in w.status[job]:
        if s["status"] == "DUPLICATE":
            continue
        assert by_seq.setdefault(s["seq"], s["status"]) == s["status"], (job, w.states(job))
    seqs = [s["seq"] for s in w.status[job] if s["status"] != "DUPLICATE"]
    assert seqs == sorted(seqs), (job, seqs)
    assert by_seq.get(10) == "CLAIMED", (job, by_seq)
    assert len([v for v in by_seq.values() if v in TERMINAL]) == 1, (job, by_seq)


# ---- the tests -------------------------------------------------------------------------------

def test_success_with_logs(env, st, w, aws, c):
    submit(env, "ok-1", ["emr:main"], ["s3://jobs/etl.py", "--date", "2026-11-21; rm -rf /"],
           environment={"SPARK_ENV": "prod"})
    sid = step_id(w, "ok-1")
    steps = aws.steps_named(c["main"], "ok-1")
    assert [s["Id"] for s in steps] == [sid], steps
    cfg = aws.emr.describe_step(ClusterId=c["main"], StepId=sid)["Step"]
    assert cfg["ActionOnFailure"] == "CONTINUE", cfg
    assert cfg["Config"]["Jar"] == "command-runner.jar", cfg
    # the arguments are an argv array: the one with a ';' is passed as it is, not to a shell
    assert cfg["Config"]["Args"] == ["spark-submit", "--deploy-mode", "cluster", "s3://jobs/etl.py",
                                     "--date", "2026-11-21; rm -rf /"], cfg["Config"]["Args"]
    assert cfg["Config"]["Properties"] == {"team": "data", "SPARK_ENV": "prod"}, cfg["Config"]
    w.until(lambda: "RUNNING" in w.states("ok-1"), 30, "ok-1 RUNNING")
    # EMR uploads step logs while the step runs, whole each time: read while running ...
    first = b"".join(b"line %d of the driver\n" % i for i in range(2000))
    aws.put_log(c["main"], sid, "stdout", first)
    w.until(lambda: w.stream("ok-1", "stdout") == first, 30, "live stdout")
    # ... and again, grown, when it ends: only the new part is published
    whole = first + b"".join(b"after %d\n" % i for i in range(30000))
    aws.put_log(c["main"], sid, "stdout", whole)
    aws.put_log(c["main"], sid, "stderr", b"WARN something\n")
    aws.put_log(c["main"], sid, "controller", b"INFO startExec 'hadoop jar ...'\n")
    aws.s3.put_object(Bucket=BUCKET, Key=f"logs/{c['main']}/steps/{sid}/other.txt", Body=b"x")
    aws.move(c["main"], sid, "COMPLETED")
    f = w.wait_final("ok-1")
    assert f["status"] == "SUCCEEDED", f
    assert w.states("ok-1") == ["ACCEPTED", "RESOLVED", "CLAIMED", "SUBMITTED", "RUNNING",
                                "SUCCEEDED"], w.states("ok-1")
    assert w.stream("ok-1", "stdout") == whole  # in order, no gap, no duplicate
    assert w.stream("ok-1", "stderr") == b"WARN something\n"
    assert w.stream("ok-1", "controller") == b"INFO startExec 'hadoop jar ...'\n"
    assert {ch["stream"] for ch in w.logs["ok-1"]} == {"stdout", "stderr", "controller"}
    assert max(ch["emitted_at"] for ch in w.logs["ok-1"]) <= f["emitted_at"]
    seqs_ok(w, "ok-1")


def test_failure_details(env, st, w, aws, c):
    submit(env, "fail-1", ["emr:main"], ["bad.py"])
    sid = step_id(w, "fail-1")
    aws.move(c["main"], sid, "FAILED", reason="Step failed with exitCode 1",
             message="Exception in thread main: java.lang.RuntimeException: boom",
             log_file=f"s3://{BUCKET}/logs/{c['main']}/steps/{sid}/stderr.gz")
    f = w.wait_final("fail-1")
    assert f["status"] == "FAILED" and f["failure_reason"] == "STEP_FAILED", f
    for part in ("Step failed with exitCode 1", "RuntimeException: boom", "stderr.gz", sid):
        assert part in f["message"], (part, f["message"])
    seqs_ok(w, "fail-1")


def test_kill(env, st, w, aws, c):
    submit(env, "kill-1", ["emr:main"], ["long.py"])
    sid = step_id(w, "kill-1")
    w.until(lambda: "RUNNING" in w.states("kill-1"), 30, "kill-1 RUNNING")
    t0 = time.time()
    kill(env, "kill-1", "not needed any more")
    f = w.wait_final("kill-1", 30)
    assert f["status"] == "KILLED" and f["failure_reason"] == "KILL_REQUESTED", f
    assert "not needed any more" in f["message"], f
    assert time.time() - t0 < 15
    assert aws.emr.describe_step(ClusterId=c["main"], StepId=sid)["Step"]["Status"]["State"] == \
        "CANCELLED"
    seqs_ok(w, "kill-1")


def test_timeout(env, st, w, aws, c):
    submit(env, "slow-1", ["emr:main"], ["slow.py"], timeout_ms=3000)
    sid = step_id(w, "slow-1")
    f = w.wait_final("slow-1", 40)
    assert f["status"] == "KILLED" and f["failure_reason"] == "TIMEOUT", f
    assert "timed out" in f["message"], f
    assert aws.emr.describe_step(ClusterId=c["main"], StepId=sid)["Step"]["Status"]["State"] == \
        "CANCELLED"


def test_throttling_and_5xx(env, st, w, aws, c):
    control("POST", "/control/faults", {"seed": 11, "rules": [
        {"service": "emr", "operation": "ListSteps", "kind": "throttle", "probability": 0.5},
        {"service": "emr", "operation": "AddJobFlowSteps", "kind": "error", "status": 503,
         "probability": 0.2},
        {"service": "emr", "operation": "AddJobFlowSteps", "kind": "throttle", "probability": 0.2},
        {"service": "s3", "kind": "error", "status": 500, "probability": 0.3}]})
    jobs = [f"storm-{i}" for i in range(8)]
    try:
        for j in jobs:
            submit(env, j, ["emr:main"], [j])
        # each 503 on AddJobFlowSteps (ambiguous: never retried blindly) costs a look by name,
        # aws.timeout.ms before adding the step again, and a growing backoff
        ids = {j: step_id(w, j, 240) for j in jobs}
        for j, sid in ids.items():
            aws.put_log(c["main"], sid, "stdout", f"{j} done\n".encode())
            aws.move(c["main"], sid, "COMPLETED")
        for j in jobs:
            assert w.wait_final(j, 90)["status"] == "SUCCEEDED", w.states(j)
            assert w.stream(j, "stdout") == f"{j} done\n".encode()
        fired = sum(r["fired"] for r in control("GET", "/control/faults")["rules"])
        assert fired > 5, control("GET", "/control/faults")
    finally:
        control("DELETE", "/control/faults")
    for j in jobs:
        assert len(aws.steps_named(c["main"], j)) == 1, (j, aws.steps_named(c["main"], j))
        seqs_ok(w, j)


def test_killed_between_intent_and_step_id(env, st, w, aws, c):
    # AddJobFlowSteps is answered after 3 s; the worker dies while it waits — after recording
    # the intent, before recording the step id. EMR still creates the step.
    control("POST", "/control/faults", {"service": "emr", "operation": "AddJobFlowSteps",
                                        "kind": "delay", "delay_ms": 3000, "count": 1})
    try:
        submit(env, "crash-1", ["emr:main"], ["crash.py"])
        end = time.time() + 30
        while ledger(env, "SELECT state FROM jobs WHERE job_id = 'crash-1'") != "SUBMITTING":
            assert time.time() < end, "crash-1 never reached SUBMITTING"
            time.sleep(0.05)
        p, _ = st.workers[-1]
        p.send_signal(signal.SIGKILL)
        p.wait()
        time.sleep(4)  # the step lands on EMR after the worker died
        assert len(aws.steps_named(c["main"], "crash-1")) == 1
        st.start_worker()
        sid = step_id(w, "crash-1", 60)
        aws.move(c["main"], sid, "COMPLETED")
        f = w.wait_final("crash-1", 60)
        assert f["status"] == "SUCCEEDED", f
    finally:
        control("DELETE", "/control/faults")
    steps = aws.steps_named(c["main"], "crash-1")
    assert [s["Id"] for s in steps] == [sid], steps
    assert "found its step" in st.text()
    seqs_ok(w, "crash-1")


def test_rebalance(env, st, w, aws, c):
    jobs = [f"rb-{i}" for i in range(9)]
    for j in jobs:
        submit(env, j, ["emr:main"], [j])
    ids = {j: step_id(w, j) for j in jobs}
    st.start_worker()  # a second worker joins: partitions (and their jobs) move
    end = time.time() + 40
    while True:
        owners = ledger(env, "SELECT count(DISTINCT owner) FROM jobs WHERE job_id LIKE 'rb-%'")
        if owners == "2":
            break
        assert time.time() < end, f"jobs never spread over two workers (owners {owners})"
        time.sleep(0.3)
    for j, sid in ids.items():
        aws.move(c["main"], sid, "COMPLETED")
    for j in jobs:
        assert w.wait_final(j, 60)["status"] == "SUCCEEDED", w.states(j)
        assert len(aws.steps_named(c["main"], j)) == 1
    w.pump(2)
    for j in jobs:
        assert len([s for s in w.status[j] if s["status"] in TERMINAL]) == 1, w.states(j)
        seqs_ok(w, j)


def test_capacity(env, st, w, aws, c):
    jobs = [f"cap-{i}" for i in range(5)]
    for j in jobs:
        submit(env, j, ["emr:cap"], [j])
    w.until(lambda: sum(1 for j in jobs if "SUBMITTED" in w.states(j)) == 2, 60, "2 submitted")
    w.pump(3)
    assert len(aws.steps(c["cap"])) == 2, "the cluster's max concurrency (2) was exceeded"
    done = set()
    while len(done) < len(jobs):
        for s in aws.steps(c["cap"]):
            if s["Id"] not in done and s["Status"]["State"] in ("PENDING", "RUNNING"):
                active = [x for x in aws.steps(c["cap"]) if x["Status"]["State"] in
                          ("PENDING", "RUNNING")]
                assert len(active) <= 2, active
                aws.move(c["cap"], s["Id"], "COMPLETED")
                done.add(s["Id"])
        w.pump(1)
        assert len(done) <= len(jobs)
        if len(done) < len(jobs):
            w.until(lambda: len(aws.steps(c["cap"])) > len(done) or
                    len(done) == len(jobs), 30, "the next job to be submitted")
    for j in jobs:
        assert w.wait_final(j, 30)["status"] == "SUCCEEDED", w.states(j)


def test_cluster_gone(env, st, w, aws, c):
    submit(env, "gone-1", ["emr:doomed"], ["x.py"])
    step_id(w, "gone-1")
    control("POST", f"/control/emr/clusters/{c['doomed']}/state",
            {"state": "TERMINATED_WITH_ERRORS", "message": "lost the master node"})
    f = w.wait_final("gone-1", 30)
    assert f["status"] in ("FAILED", "KILLED"), f
    # and a new job for the terminated cluster fails at once with EMR's reason
    submit(env, "gone-2", ["emr:doomed"], ["y.py"])
    f = w.wait_final("gone-2", 30)
    assert f["status"] == "FAILED" and f["failure_reason"] == "SUBMIT_REJECTED", f
    assert st.workers[-1][0].poll() is None


def main():
    env = sylib.Env("emr")
    tmp = tempfile.mkdtemp(prefix="sy-itest-emr-")
    st, w, r = Stack(env, tmp), None, sylib.Runner()
    try:
        aws = Aws()
        c = {"main": aws.cluster("main"), "cap": aws.cluster("cap"),
             "doomed": aws.cluster("doomed")}
        for name, cid in c.items():
            extra = ["--max-concurrent", "2"] if name == "cap" else []
            env.cli("clusters", "add", name, "--kind", "emr", "--address", cid,
                    "--region", "us-east-1", "--tags", f"emr:{name}", *extra)
        env.cli("commands", "add", "spark", "--tags", "type:spark", "--spec", json.dumps(SPEC))
        for name in c:
            env.cli("link", "spark", name)
        env.make_topics(c)
        st.start_router()
        st.start_worker()
        w = Watch(env, Decoder())
        for t in (test_success_with_logs, test_failure_details, test_kill, test_timeout,
                  test_throttling_and_5xx, test_killed_between_intent_and_step_id,
                  test_rebalance, test_capacity, test_cluster_gone):
            r.run(t, env, st, w, aws, c)
        for p, _ in st.workers:
            assert p.poll() is None or p.returncode == -signal.SIGKILL, "a worker died"
    finally:
        if w:
            w.close()
        env.close()
        print(f"logs in {tmp}", flush=True)
    r.done()


if __name__ == "__main__":
    main()
