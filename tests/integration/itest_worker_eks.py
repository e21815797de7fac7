"""Worker with the emr-eks driver, end to end against moto through the testenv harness: a virtual
cluster in moto (60 foreign job runs in it, so ListJobRuns takes two pages), an emr-eks cluster
and commands registered with the CLI, the real switchyard-router and switchyard-worker, jobs
submitted with `switchyard submit --wait`, job runs moved with the harness' control API.

Proves: success (exit 0; the StartJobRun request moto received: arguments as an array after the
spec's, environment as spark-defaults properties, token and name; one ListJobRuns round per
worker.poll.interval.ms however often the runner wakes, and no DescribeJobRun while the job run
stays active), failure with its reason (exit 10, USER_ERROR and stateDetails in the status), kill
(exit 11, CancelJobRun reached moto, the run CANCELLED), a refused StartJobRun (exit 10 with the
service's reason) and StartJobRun failing past the client's retries (the runner tries again: one
job run), resubmission after a worker SIGKILL between the recorded intent and the recorded job run
id (exactly ONE job run in moto), the Spark driver's stdout/stderr from CloudWatch Logs while the
run is RUNNING, in order, across a SIGKILL and restart of the worker mid-stream (no duplicate, no
loss, at the Kafka level and in `submit --wait`'s output), and one worker process serving an
emr-eks and a local cluster at once. moto verifies every request's SigV4 signature throughout."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import boto3
import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sylib  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402
from itest_worker_local import Decoder, Watch, TERMINAL  # noqa: E402

C = os.environ["SY_AWS_CONTROL_URL"]
POLL_MS = 1000
ROLE = "arn:aws:iam::123456789012:role/switchyard-itest"


class Stack:
    def __init__(self, env, tmp):
        self.env, self.tmp = env, tmp
        self.worker = None
        self.n = 0
        self.worker_env = {
            "SWITCHYARD_WORKER_INSTANCE_ID": "w-eks",
            "SWITCHYARD_WORKER_HEARTBEAT_MS": "500",
            "SWITCHYARD_WORKER_LEASE_MS": "2000",
            "SWITCHYARD_WORKER_POLL_INTERVAL_MS": str(POLL_MS),
            "SWITCHYARD_WORKER_LOCAL_WORKDIR": os.path.join(tmp, "jobs"),
            "SWITCHYARD_AWS_RETRY_BASE_MS": "20",
            "SWITCHYARD_WORKER_EMR_LOGS_INTERVAL_MS": "1000",
            "SWITCHYARD_WORKER_EMR_LOGS_WAIT_MS": "3000",
            "SWITCHYARD_KAFKA_TOPIC_METADATA_REFRESH_INTERVAL_MS": "1000",
            "SWITCHYARD_KAFKA_SESSION_TIMEOUT_MS": "6000",
            "SWITCHYARD_KAFKA_HEARTBEAT_INTERVAL_MS": "500",
        }

    def start_router(self):
        self.env.start("switchyard-router", log=os.path.join(self.tmp, "router.log"))

    def start_worker(self):
        self.n += 1
        self.worker_log = os.path.join(self.tmp, f"worker{self.n}.log")
        self.worker = self.env.start("switchyard-worker", extra_env=self.worker_env,
                                     log=self.worker_log)

    def kill9(self):
        self.worker.send_signal(signal.SIGKILL)
        self.worker.wait()


class Aws:
    def __init__(self, ns):
        self.emrc = boto3.client("emr-containers")
        self.logs = boto3.client("logs")
        self.vc = self.emrc.create_virtual_cluster(
            name=f"sy-{ns}", containerProvider={"id": "eks-itest", "type": "EKS",
                                                "info": {"eksInfo": {"namespace": ns}}})["id"]
        self.group = f"/switchyard/itest/{ns}"
        self.s3 = boto3.client("s3")
        self.bucket = f"sy-eks-logs-{ns}".lower()[:63]
        self.s3.create_bucket(Bucket=self.bucket)
        self.logs.create_log_group(logGroupName=self.group)
        self.last_ts = {}
        for i in range(60):  # other people's job runs, all active
            self.emrc.start_job_run(
                name=f"foreign-{i}", virtualClusterId=self.vc, clientToken=f"{ns}-f{i}",
                executionRoleArn=ROLE, releaseLabel="emr-6.15.0-latest",
                jobDriver={"sparkSubmitJobDriver": {"entryPoint": "s3://x/y.py"}})

    def runs_named(self, name):
        """Every job run of the virtual cluster with exactly this name (all states)."""
        out, token = [], None
        while True:
            kw = {"virtualClusterId": self.vc, "maxResults": 50}
            if token:
                kw["nextToken"] = token
            r = self.emrc.list_job_runs(**kw)
            out += [j for j in r["jobRuns"] if j["name"] == name]
            token = r.get("nextToken")
            if not token:
                return out

    def run(self, run_id):
        return self.emrc.describe_job_run(virtualClusterId=self.vc, id=run_id)["jobRun"]

    def move(self, run_id, state, **extra):
        r = requests.post(f"{C}/control/emr-containers/jobruns/{self.vc}/{run_id}/state",
                          json=dict(state=state, **extra), timeout=10)
        assert r.status_code == 200, r.text

    def stream_name(self, run_id, stream):
        return f"pfx/{self.vc}/jobs/{run_id}/containers/spark-{run_id}/spark-{run_id}-driver/{stream}"

    def put(self, run_id, stream, lines):
        """Appends lines to the stream as events with increasing timestamps (CloudWatch keeps a
        stream in timestamp order, as the EMR on EKS log agent writes it)."""
        name = self.stream_name(run_id, stream)
        if name not in self.last_ts:
            self.logs.create_log_stream(logGroupName=self.group, logStreamName=name)
            self.last_ts[name] = 0
        for i in range(0, len(lines), 1000):
            ts = max(int(time.time() * 1000), self.last_ts[name] + 1)
            batch = lines[i:i + 1000]
            self.logs.put_log_events(logGroupName=self.group, logStreamName=name, logEvents=[
                {"timestamp": ts + k, "message": m} for k, m in enumerate(batch)])
            self.last_ts[name] = ts + len(batch) - 1


def add_fault(rule):
    r = requests.post(f"{C}/control/faults", json=rule, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["rules"][0]["id"]


def calls():
    return requests.get(f"{C}/control/calls", timeout=10).json()["calls"]


def call_delta(before, after, op):
    return after.get(f"emr-containers.{op}", 0) - before.get(f"emr-containers.{op}", 0)


class Submit:
    """`switchyard submit --wait` in the background, its output in files."""

    def __init__(self, env, tmp, job_id, command_tags, args=(), envs=(), cluster_tags="env:eks"):
        self.job_id = job_id
        self.out_path = os.path.join(tmp, f"{job_id}.out")
        self.err_path = os.path.join(tmp, f"{job_id}.err")
        argv = [os.path.join(sylib.BIN, "switchyard"), "submit", "--cluster-tags", cluster_tags,
                "--command-tags", command_tags, "--job-id", job_id, "--wait",
                "--wait-timeout", "150s"]
        for e in envs:
            argv += ["--env", e]
        argv += ["--", *args]
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.p = subprocess.Popen(argv, env=env.env, stdout=out, stderr=err)

    def wait(self, timeout=60):
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            raise AssertionError(f"submit --wait still running after {timeout}s: {self.err()}")

    def out(self):
        """The job's stdout as submit --wait printed it (after the job id line)."""
        with open(self.out_path, "rb") as f:
            first, _, rest = f.read().partition(b"\n")
        assert first == self.job_id.encode(), first
        return rest

    def err(self):
        with open(self.err_path, errors="replace") as f:
            return f.read()


def seqs_ok(w, job):
    """Worker events from 10, strictly increasing seqs; an event may be published again with
    its seq (a new owner does that when the last one was not known delivered), never two events
    with one seq."""
    events = [(s["seq"], s["status"]) for s in w.status[job] if s["status"] != "DUPLICATE"]
    assert len(set(events)) == len({seq for seq, _ in events}), (job, events)
    distinct = sorted(set(events))
    firsts = []
    for e in events:
        if e not in firsts:
            firsts.append(e)
    assert firsts == distinct, (job, events)
    worker = [e for e in distinct if e[0] >= 10]
    assert worker and worker[0] == (10, "CLAIMED"), (job, events)


def job_id(env, name):
    return f"{env.ns}-{name}"


def run_of(w, job, timeout=60):
    """The job run id of job, from its SUBMITTED status."""
    w.until(lambda: any(s["status"] == "SUBMITTED" for s in w.status[job]), timeout,
            f"{job} to be submitted")
    return [s for s in w.status[job] if s["status"] == "SUBMITTED"][0]["backend_id"]


def running(w, job, timeout=60):
    w.until(lambda: "RUNNING" in w.states(job), timeout, f"{job} to run")


def ledger(env, sql):
    r = subprocess.run(["psql", "-tA", "-F", "|", env.env["SWITCHYARD_DATABASE_URL"], "-c", sql],
                       capture_output=True, text=True, check=True)
    return r.stdout.strip()


# ---- the tests -------------------------------------------------------------------------------

def test_success(env, st, w, aws, tmp):
    job = job_id(env, "ok")
    sub = Submit(env, tmp, job, "type:spark", ["--date", "2026-11-21", "a b; rm -rf /"],
                 envs=["GREETING=hello world"])
    run = run_of(w, job)
    running(w, job)
    r = aws.run(run)
    assert r["name"] == job, r["name"]
    assert len(r["clientToken"]) == 64 and all(c in "0123456789abcdef" for c in r["clientToken"])
    assert r["releaseLabel"] == "emr-6.15.0-latest" and r["executionRoleArn"] == ROLE
    drv = r["jobDriver"]["sparkSubmitJobDriver"]
    assert drv["entryPoint"] == "s3://bucket/jobs/etl.py", drv
    assert drv["entryPointArguments"] == ["--from-spec", "--date", "2026-11-21", "a b; rm -rf /"]
    assert drv["sparkSubmitParameters"] == "--conf spark.executor.instances=2", drv
    props = {}
    for c in r["configurationOverrides"]["applicationConfiguration"]:
        if c["classification"] == "spark-defaults":
            props = c["properties"]
    assert props["spark.kubernetes.driverEnv.GREETING"] == "hello world", props
    assert props["spark.executorEnv.GREETING"] == "hello world", props
    assert props["spark.kubernetes.driverEnv.SWITCHYARD_JOB_ID"] == job, props
    assert props["spark.executorEnv.SWITCHYARD_CLUSTER"] == "eks", props
    assert r["configurationOverrides"]["monitoringConfiguration"][
        "cloudWatchMonitoringConfiguration"]["logGroupName"] == aws.group

    # One round per interval however often the runner wakes the driver: six more jobs arrive
    # meanwhile (each wakes the runner, which then spins every 20 ms until their statuses are
    # acknowledged). 61+ active runs = 2 pages per round; a run that stays active is never
    # described.
    before = calls()
    t0 = time.time()
    wakers = [Submit(env, tmp, job_id(env, f"waker-{i}"), "type:badrel") for i in range(6)]
    time.sleep(4.5)
    after = calls()
    took = time.time() - t0
    lists, describes = call_delta(before, after, "ListJobRuns"), call_delta(before, after,
                                                                            "DescribeJobRun")
    print(f"  {took:.1f} s with one active job and 6 arriving: {lists} ListJobRuns, "
          f"{describes} DescribeJobRun", flush=True)
    for k in wakers:
        assert k.wait(60) == 10, k.err()  # they did reach the runner
    # at most one round (2 pages) per interval: never a round per wake-up. (No lower bound: the
    # runner's thread makes the wakers' StartJobRun calls too, so on a loaded machine a window
    # can pass without a round; later tests prove the rounds happen.)
    assert lists <= 2 * (int(took * 1000 / POLL_MS) + 1), lists
    assert describes == 0, describes

    aws.move(run, "COMPLETED")
    rc = sub.wait(60)
    assert rc == 0, (rc, sub.err())
    w.wait_final(job)
    assert w.states(job) == ["ACCEPTED", "RESOLVED", "CLAIMED", "SUBMITTED", "RUNNING",
                             "SUCCEEDED"], w.states(job)
    f = w.final(job)
    assert f["backend_id"] == run and f["cluster"] == "eks" and f["emitter"] == "w-eks", f
    assert call_delta(after, calls(), "DescribeJobRun") >= 1  # it left the active set
    seqs_ok(w, job)


def test_failure(env, st, w, aws, tmp):
    job = job_id(env, "fail")
    sub = Submit(env, tmp, job, "type:spark")
    run = run_of(w, job)
    running(w, job)
    aws.move(run, "FAILED", failure_reason="USER_ERROR",
             state_details="Driver exited with code 1: ZeroDivisionError")
    assert sub.wait(60) == 10, sub.err()
    r = env.cli("status", job, "--json")
    s = json.loads(r.stdout)
    assert s["status"] == "FAILED" and s["failure_reason"] == "USER_ERROR", s
    assert "ZeroDivisionError" in s["message"], s
    assert "ZeroDivisionError" in sub.err()
    seqs_ok(w, job)


def test_kill(env, st, w, aws, tmp):
    job = job_id(env, "kill")
    sub = Submit(env, tmp, job, "type:spark")
    run = run_of(w, job)
    running(w, job)
    before = calls()
    t0 = time.time()
    env.cli("kill", job, "--reason", "not needed any more")
    assert sub.wait(60) == 11, sub.err()
    took = time.time() - t0
    assert call_delta(before, calls(), "CancelJobRun") == 1
    assert aws.run(run)["state"] == "CANCELLED"
    f = w.final(job) or w.wait_final(job)
    assert f["status"] == "KILLED" and f["failure_reason"] == "KILL_REQUESTED", f
    assert "not needed any more" in f["message"], f
    print(f"  kill to KILLED in {took:.1f} s", flush=True)
    seqs_ok(w, job)


def test_refused_and_transient(env, st, w, aws, tmp):
    # the service refuses the request: FAILED at once with its reason
    job = job_id(env, "badrel")
    sub = Submit(env, tmp, job, "type:badrel")
    assert sub.wait(60) == 10, sub.err()
    f = w.wait_final(job)
    assert f["status"] == "FAILED" and f["failure_reason"] == "RESOURCE_NOT_FOUND", f
    assert "emr-bogus" in f["message"], f
    assert aws.runs_named(job) == []

    # StartJobRun failing past the client's own retries (5 attempts): the runner asks again
    # later with the same clientToken; still one job run
    job = job_id(env, "flaky")
    rule = add_fault({"service": "emr-containers", "operation": "StartJobRun", "kind": "error",
                      "status": 503, "count": 6})
    try:
        sub = Submit(env, tmp, job, "type:spark")
        run = run_of(w, job, 90)
        running(w, job)
        aws.move(run, "COMPLETED")
        assert sub.wait(60) == 0, sub.err()
    finally:
        requests.delete(f"{C}/control/faults/{rule}", timeout=10)
    assert [r["id"] for r in aws.runs_named(job)] == [run]
    seqs_ok(w, job)


def test_crash_between_intent_and_id(env, st, w, aws, tmp):
    """The worker dies after recording SUBMITTING, while its StartJobRun is on its way (moto
    answers 4 s later and creates the run meanwhile). The restarted worker sends StartJobRun
    again with the same clientToken: the same job run comes back, none is added."""
    job = job_id(env, "crash")
    rule = add_fault({"service": "emr-containers", "operation": "StartJobRun", "kind": "delay",
                      "delay_ms": 4000, "count": 1})
    try:
        sub = Submit(env, tmp, job, "type:spark")
        end = time.time() + 60
        while ledger(env, f"SELECT state FROM jobs WHERE job_id = '{job}'") != "SUBMITTING":
            assert time.time() < end, "the job never reached SUBMITTING"
            time.sleep(0.1)
        st.kill9()
        end = time.time() + 30
        while not aws.runs_named(job):
            assert time.time() < end, "moto never created the job run"
            time.sleep(0.3)
    finally:
        requests.delete(f"{C}/control/faults/{rule}", timeout=10)
    row = ledger(env, f"SELECT state, coalesce(backend_id, '') FROM jobs WHERE job_id = '{job}'")
    assert row == "SUBMITTING|", row  # intent recorded, job run id not
    first = aws.runs_named(job)[0]["id"]
    st.start_worker()
    run = run_of(w, job, 90)
    assert run == first, (run, first)
    running(w, job)
    aws.move(run, "COMPLETED")
    assert sub.wait(60) == 0, sub.err()
    runs = aws.runs_named(job)
    assert [r["id"] for r in runs] == [first], runs  # exactly one job run
    assert [s["status"] for s in w.status[job]].count("SUBMITTED") == 1, w.states(job)
    seqs_ok(w, job)


def lines_bytes(lines):
    return b"".join(m.encode() + (b"" if m.endswith("\n") else b"\n") for m in lines)


def test_cloudwatch_logs(env, st, w, aws, tmp):
    job = job_id(env, "logs")
    sub = Submit(env, tmp, job, "type:spark")
    run = run_of(w, job)
    running(w, job)
    out1 = [f"stdout line {i:05d} " + "x" * (i % 50) for i in range(2500)]
    err1 = ["WARN starting", "INFO stage 1", "INFO stage 2"]
    t0 = time.time()
    aws.put(run, "stdout", out1)
    aws.put(run, "stderr", err1)
    want_out, want_err = lines_bytes(out1), lines_bytes(err1)
    # near real time: out while the job run is RUNNING
    w.until(lambda: w.stream(job, "stdout") == want_out and w.stream(job, "stderr") == want_err,
            30, "the first log events")
    print(f"  {len(want_out) + len(want_err)} bytes in <logs> {time.time() - t0:.1f} s after "
          f"PutLogEvents", flush=True)
    assert not any(s["status"] in TERMINAL for s in w.status[job])
    # the positions are recorded once Kafka has the bytes; then the worker dies mid-stream
    want = {"stdout": len(want_out), "stderr": len(want_err)}
    end = time.time() + 20
    while True:
        got = json.loads(ledger(env, f"SELECT log_offsets FROM jobs WHERE job_id = '{job}'"))
        if got == want:
            break
        assert time.time() < end, (got, want)
        time.sleep(0.2)
    st.kill9()
    out2 = [f"after restart {i}" for i in range(300)] + ["ends with newline\n", "caf\u00e9 \u2192 ok"]
    aws.put(run, "stdout", out2)
    aws.put(run, "stderr", ["ERROR late"])
    st.start_worker()
    want_out += lines_bytes(out2)
    want_err += lines_bytes(["ERROR late"])
    w.until(lambda: w.stream(job, "stdout") == want_out and w.stream(job, "stderr") == want_err,
            60, "the log events after the restart")
    aws.put(run, "stdout", ["last words"])
    want_out += b"last words\n"
    aws.move(run, "COMPLETED")
    assert sub.wait(60) == 0, sub.err()
    w.pump(1)
    # Watch.stream asserts every chunk in <ns>.logs follows the previous: no duplicate, no gap
    assert w.stream(job, "stdout") == want_out
    assert w.stream(job, "stderr") == want_err
    assert sub.out() == want_out, (len(sub.out()), len(want_out))
    assert "ERROR late" in sub.err()
    r = env.cli("logs", job)
    assert r.stdout == want_out
    seqs_ok(w, job)


def test_s3_logs(env, st, w, aws, tmp):
    """A command that logs to S3 only: the driver pod's stdout.gz / stderr.gz under the logUri
    are published (executors' files are not), read while the run is active and once more when
    it ends, nothing twice."""
    import gzip
    job = job_id(env, "s3logs")
    s = Submit(env, tmp, job, "type:spark-s3")
    run = run_of(w, job)
    running(w, job)
    base = f"s3logs/{aws.vc}/jobs/{run}/containers/spark-{run}/"
    first = b"".join(b"driver line %d\n" % i for i in range(500))
    aws.s3.put_object(Bucket=aws.bucket, Key=base + f"spark-{run}-driver/stdout.gz",
                      Body=gzip.compress(first))
    aws.s3.put_object(Bucket=aws.bucket, Key=base + f"spark-{run}-exec-1/stdout.gz",
                      Body=gzip.compress(b"executor output\n"))
    w.until(lambda: w.stream(job, "stdout") == first, 30, "live driver stdout from S3")
    whole = first + b"the end\n"
    aws.s3.put_object(Bucket=aws.bucket, Key=base + f"spark-{run}-driver/stdout.gz",
                      Body=gzip.compress(whole))
    aws.s3.put_object(Bucket=aws.bucket, Key=base + f"spark-{run}-driver/stderr.gz",
                      Body=gzip.compress(b"WARN x\n"))
    aws.move(run, "COMPLETED")
    assert s.wait() == 0, s.err()
    assert w.wait_final(job)["status"] == "SUCCEEDED"
    assert w.stream(job, "stdout") == whole
    assert w.stream(job, "stderr") == b"WARN x\n"
    assert s.out() == whole


def test_local_and_eks(env, st, w, aws, tmp):
    """One worker process drives an emr-eks job and a local job at the same time."""
    pid = st.worker.pid
    eks = job_id(env, "mixed-eks")
    loc = job_id(env, "mixed-loc")
    s1 = Submit(env, tmp, eks, "type:spark")
    s2 = Submit(env, tmp, loc, "type:sh", ["echo local-start; sleep 3; echo local-done"],
                cluster_tags="env:loc")
    run = run_of(w, eks)
    running(w, eks)
    running(w, loc)
    aws.move(run, "COMPLETED")
    assert s1.wait(60) == 0, s1.err()
    assert s2.wait(60) == 0, s2.err()
    assert s2.out() == b"local-start\nlocal-done\n"
    spans = {}
    for j in (eks, loc):
        assert w.wait_final(j)["status"] == "SUCCEEDED", w.states(j)
        ts = {s["status"]: s["emitted_at"] for s in w.status[j]}
        spans[j] = (ts["RUNNING"], ts["SUCCEEDED"])
        assert all(s["emitter"] == "w-eks" for s in w.status[j] if s["seq"] >= 10)
    assert spans[eks][0] < spans[loc][1] and spans[loc][0] < spans[eks][1], spans  # overlapped
    assert st.worker.pid == pid and st.worker.poll() is None


def test_all_sequences(env, st, w, aws, tmp):
    w.pump(1)
    for job in list(w.status):
        if any(s["seq"] >= 10 for s in w.status[job]):
            seqs_ok(w, job)
            assert len([s for s in w.status[job] if s["status"] in TERMINAL]) == 1, w.states(job)


def make_topics(env):
    admin = AdminClient({"bootstrap.servers": sylib.BOOTSTRAP})
    names = ["requests", "router.seen", "status", "logs", "control", "deadletter",
             "cluster.eks", "cluster.loc"]
    for f in admin.create_topics([NewTopic(env.topic(n), 3, 1) for n in names]).values():
        f.result(30)
    time.sleep(1)


def spec(aws, release="emr-6.15.0-latest"):
    return json.dumps({"emr-eks": {
        "release_label": release,
        "execution_role_arn": ROLE,
        "entry_point": "s3://bucket/jobs/etl.py",
        "entry_point_arguments": ["--from-spec"],
        "spark_submit_parameters": "--conf spark.executor.instances=2",
        "configuration_overrides": {"monitoringConfiguration": {
            "cloudWatchMonitoringConfiguration": {"logGroupName": aws.group,
                                                  "logStreamNamePrefix": "pfx"}}},
        "retry_policy": {"max_attempts": 2}}})


def main():
    env = sylib.Env("eks")
    tmp = tempfile.mkdtemp(prefix="sy-itest-eks-")
    st, w = Stack(env, tmp), None
    r = sylib.Runner()
    auth_before = requests.get(f"{C}/control/auth", timeout=10).json()["enabled"]
    try:
        # moto checks every signature (the worker's and boto3's) for the whole test
        requests.post(f"{C}/control/auth", json={"enabled": True}, timeout=10)
        aws = Aws(env.ns)
        region = os.environ.get("AWS_REGION", "us-east-1")
        env.cli("clusters", "add", "eks", "--kind", "emr-eks", "--address", aws.vc,
                "--region", region, "--tags", "env:eks")
        env.cli("clusters", "add", "loc", "--kind", "local", "--tags", "env:loc")
        env.cli("commands", "add", "spark", "--tags", "type:spark", "--spec", spec(aws))
        s3spec = json.loads(spec(aws))
        s3spec["emr-eks"]["configuration_overrides"] = {"monitoringConfiguration": {
            "s3MonitoringConfiguration": {"logUri": f"s3://{aws.bucket}/s3logs/"}}}
        env.cli("commands", "add", "spark-s3", "--tags", "type:spark-s3", "--spec",
                json.dumps(s3spec))
        env.cli("link", "spark-s3", "eks")
        env.cli("commands", "add", "badrel", "--tags", "type:badrel",
                "--spec", spec(aws, "emr-bogus"))
        env.cli("commands", "add", "sh", "--tags", "type:sh",
                "--spec", '{"local":{"argv":["/bin/sh","-c"]}}')
        env.cli("link", "spark", "eks")
        env.cli("link", "badrel", "eks")
        env.cli("link", "sh", "loc")
        make_topics(env)
        st.start_router()
        st.start_worker()
        w = Watch(env, Decoder())
        for t in (test_success, test_failure, test_kill, test_refused_and_transient,
                  test_crash_between_intent_and_id, test_cloudwatch_logs, test_s3_logs,
                  test_local_and_eks,
                  test_all_sequences):
            if st.worker.poll() is not None:  # an earlier test failed with the worker down
                st.start_worker()
            r.run(t, env, st, w, aws, tmp)
    finally:
        if w:
            w.close()
        env.close()
        requests.post(f"{C}/control/auth", json={"enabled": auth_before}, timeout=10)
        print(f"logs in {tmp}", flush=True)
    r.run(test_clean_exit, st, tmp)
    r.done()


def test_clean_exit(st, tmp):
    """The last worker stopped cleanly on SIGTERM, and no worker printed a sanitizer report
    (the ASan build runs this test too)."""
    assert st.worker.returncode == 0, st.worker.returncode
    for name in sorted(os.listdir(tmp)):
        if name.startswith("worker") and name.endswith(".log"):
            with open(os.path.join(tmp, name), errors="replace") as f:
                text = f.read()
            for marker in ("Sanitizer", "runtime error:"):
                assert marker not in text, f"{name}: {marker}"



if __name__ == "__main__":
    main()
