"""Worker benchmark (make bench BENCH=worker): one switchyard-worker with 10,000 EMR steps in
flight over 40 clusters, against the real broker, PostgreSQL and moto behind the testenv
harness (which counts every AWS call it serves).

Phase 1 routes 10,000 JobRequests (250 per cluster) through the real router and waits until the
worker has every step on EMR. Phase 2, with those 10,000 in flight: the worker's resident
memory, and the AWS calls it makes per poll cycle (counted by the harness over several cycles)
against what an Airflow EmrStepSensor per job would make (one DescribeStep per job per cycle).
Phase 3, still with 10,000 in flight: 200 more jobs at 20/s, RoutedJob -> SUBMITTED latency
(the RoutedJob's broker timestamp to the SUBMITTED event's emitted_at).

Prints "bench <figure> <value> <unit>" lines; the figures the issue names are
worker_calls_per_cycle, worker_calls_vs_sensor_ratio, worker_rss_mib_10k, worker_submit_p50_ms,
worker_submit_p99_ms."""
import collections
import json
import os
import sys
import tempfile
import time

import boto3
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import sylib  # noqa: E402
from itest_worker_local import Decoder  # noqa: E402
from confluent_kafka import Consumer  # noqa: E402

CLUSTERS = int(os.environ.get("SY_BENCH_CLUSTERS", "40"))
JOBS = int(os.environ.get("SY_BENCH_JOBS", "10000"))
EXTRA = int(os.environ.get("SY_BENCH_EXTRA", "200"))
CYCLES = int(os.environ.get("SY_BENCH_CYCLES", "3"))
INTERVAL_MS = 10000  # worker.poll.interval.ms, the default
CONTROL = os.environ["SY_AWS_CONTROL_URL"]


def control(method, path, body=None):
    r = requests.request(method, CONTROL + path, json=body, timeout=30)
    r.raise_for_status()
    return r.json()


def figure(name, value, unit):
    print(f"bench {name} {value} {unit}", flush=True)


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def rss_breakdown(pid):
    """Resident KiB by kind of mapping: heap (brk + malloc arenas and other anonymous memory),
    thread stacks, and files (shared libraries)."""
    out = collections.Counter()
    kind = None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()
            if len(head) >= 5 and "-" in head[0] and not line.startswith(("Rss", "Size")) \
                    and ":" not in head[0]:
                name = head[5] if len(head) > 5 else ""
                kind = "stack" if name.startswith("[stack") else \
                    "file" if name.startswith("/") else "anon"
            elif line.startswith("Rss:") and kind:
                out[kind] += int(head[1])
    return {k: round(v / 1024.0, 1) for k, v in out.items()}


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


class Status:
    """Follows <ns>.status: the SUBMITTED events (emitted_at per job) and any terminal one."""

    def __init__(self, env):
        self.dec = Decoder()
        self.submitted = {}
        self.ended = {}
        self.c = Consumer({"bootstrap.servers": sylib.BOOTSTRAP, "group.id": f"b-{env.ns}",
                           "auto.offset.reset": "earliest", "enable.auto.commit": False})
        self.c.subscribe([env.topic("status")])

    def pump(self, seconds):
        end = time.time() + seconds
        while time.time() < end:
            for m in self.c.consume(5000, 0.2):
                if m.error():
                    continue
                s = self.dec.decode(m.value(), "JobStatus")
                t = s["emitted_at"]
                t = int(t.timestamp() * 1000) if hasattr(t, "timestamp") else t
                if s["status"] == "SUBMITTED":
                    self.submitted.setdefault(s["job_id"], t)
                elif s["status"] in ("SUCCEEDED", "FAILED", "KILLED", "INVALID"):
                    self.ended[s["job_id"]] = (s["status"], s.get("message"))


def routed_times(env, jobs, timeout=60):
    """The broker timestamp of each job's RoutedJob (read_committed, every cluster topic)."""
    c = Consumer({"bootstrap.servers": sylib.BOOTSTRAP, "group.id": f"r-{env.ns}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "isolation.level": "read_committed", "topic.metadata.refresh.interval.ms": 1000})
    c.subscribe([f"^{env.ns}\\.cluster\\..*"])
    out, end = {}, time.time() + timeout
    while time.time() < end and len(out) < len(jobs):
        for m in c.consume(5000, 0.2):
            if not m.error() and m.key().decode() in jobs:
                out[m.key().decode()] = m.timestamp()[1]
    c.close()
    return out


def main():
    env = sylib.Env("bw")
    tmp = tempfile.mkdtemp(prefix="sy-bench-worker-")
    emr = boto3.client("emr")
    try:
        t0 = time.time()
        spec = {"emr": {"jar": "command-runner.jar", "args": ["spark-submit", "job.py"]}}
        env.cli("commands", "add", "spark", "--tags", "type:spark", "--spec", json.dumps(spec))
        names = []
        for i in range(CLUSTERS):
            cid = emr.run_job_flow(
                Name=f"bench-{env.ns}-{i}", ReleaseLabel="emr-6.15.0", StepConcurrencyLevel=256,
                JobFlowRole="EMR_EC2_DefaultRole", ServiceRole="EMR_DefaultRole",
                Instances={"InstanceCount": 1, "MasterInstanceType": "m5.xlarge",
                           "KeepJobFlowAliveWhenNoSteps": True})["JobFlowId"]
            name = f"c{i:02d}"
            env.cli("clusters", "add", name, "--kind", "emr", "--address", cid, "--tags",
                    f"bench:{name}")
            env.cli("link", "spark", name)
            names.append(name)
        env.make_topics(names)
        print(f"setup: {CLUSTERS} EMR clusters registered in {time.time() - t0:.0f}s", flush=True)

        env.start("switchyard-router", log=os.path.join(tmp, "router.log"))
        worker = env.start("switchyard-worker", log=os.path.join(tmp, "worker.log"),
                           extra_env={"SWITCHYARD_LOG_LEVEL": "warn"})
        status = Status(env)

        # ---- phase 1: 10,000 jobs in flight
        t1 = time.time()
        for i in range(JOBS):
            job = f"b{i:05d}"
            env.produce(env.topic("requests"), job.encode(), env_encode(env, job, names[i % CLUSTERS]),
                        flush=False)
        env._producer.flush(60)
        while len(status.submitted) < JOBS:
            status.pump(2)
            assert worker.poll() is None, "the worker exited"
            assert time.time() - t1 < 1500, f"only {len(status.submitted)} submitted"
            assert not status.ended, f"jobs ended early: {list(status.ended.items())[:3]}"
        fill_s = time.time() - t1
        print(f"phase 1: {JOBS} steps on EMR after {fill_s:.0f}s "
              f"({JOBS / fill_s:.0f} jobs/s routed and submitted)", flush=True)

        # ---- phase 2: memory and calls per cycle with 10,000 in flight
        status.pump(2 * INTERVAL_MS / 1000.0)  # settle: every cluster polled at least once
        rss = rss_mib(worker.pid)
        control("POST", "/control/reset-calls")
        t2 = time.time()
        status.pump(CYCLES * INTERVAL_MS / 1000.0)
        calls = control("GET", "/control/calls")
        window = time.time() - t2
        cycles = window / (INTERVAL_MS / 1000.0)
        per_cycle = calls["total"] / cycles
        by_op = collections.Counter(calls["calls"])
        print(f"phase 2: {calls['total']} AWS calls in {window:.1f}s ({cycles:.2f} poll cycles): "
              f"{dict(by_op)}", flush=True)
        rss = max(rss, rss_mib(worker.pid))
        print(f"phase 2: worker resident MiB by mapping {rss_breakdown(worker.pid)}", flush=True)

        # ---- phase 3: submit latency with 10,000 in flight
        extra = [f"x{i:05d}" for i in range(EXTRA)]
        for i, job in enumerate(extra):
            env.produce(env.topic("requests"), job.encode(),
                        env_encode(env, job, names[i % CLUSTERS]), flush=True)
            time.sleep(0.05)
        end = time.time() + 120
        while not all(j in status.submitted for j in extra) and time.time() < end:
            status.pump(1)
        routed = routed_times(env, set(extra))
        lat = [status.submitted[j] - routed[j] for j in extra if j in routed and j in status.submitted]
        assert len(lat) == len(extra), f"only {len(lat)} of {len(extra)} extra jobs measured"
        assert not status.ended, f"jobs ended: {list(status.ended.items())[:3]}"

        figure("worker_jobs_in_flight", JOBS + len(extra), "jobs")
        figure("worker_clusters", CLUSTERS, "clusters")
        figure("worker_calls_per_cycle", f"{per_cycle:.1f}", "calls")
        figure("worker_sensor_calls_per_cycle", JOBS, "calls")
        figure("worker_calls_vs_sensor_ratio", f"{per_cycle / JOBS:.4f}", "x")
        figure("worker_rss_mib_10k", f"{rss:.1f}", "MiB")
        figure("worker_submit_p50_ms", pct(lat, 50), "ms")
        figure("worker_submit_p99_ms", pct(lat, 99), "ms")
        figure("worker_fill_jobs_per_s", f"{JOBS / fill_s:.0f}", "jobs/s")
    finally:
        env.close()
        print(f"logs in {tmp}", flush=True)


_encoded = {}


def env_encode(env, job, cluster):
    """A JobRequest for cluster, encoded once by our own codec and re-keyed (the job id is the
    only field that changes, and it is the first: a string, length-prefixed)."""
    if cluster not in _encoded:
        _encoded[cluster] = env.encode("JobRequest", sylib.request(
            "ZZZZZZ", [[f"bench:{cluster}"]], ["type:spark"], arguments=["--date", "2026-11-21"]))
    template = _encoded[cluster]
    return template.replace(b"\x0cZZZZZZ", b"\x0c" + job.encode(), 1)


if __name__ == "__main__":
    main()
