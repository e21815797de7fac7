"""Chaos run (ctest labels integration + chaos): 1,000 jobs through two routers and two workers
against the real broker, PostgreSQL and moto, while a driver SIGKILLs a random router or worker
every few seconds and restarts it, restarts the Kafka broker once and PostgreSQL once mid-run,
and turns on 20% throttling and 5% HTTP 5xx at the AWS endpoint for a stretch. EMR steps are
completed by a "cluster" thread a couple of seconds after they appear.

At the end it asserts and prints: jobs submitted, jobs with exactly one EMR step, jobs with
exactly one terminal status, jobs lost (0), duplicate step submissions (0), unexpected process
exits (0), no secret in anything the processes logged or published, and the slowest recovery
after a kill (SIGKILL until the restarted process publishes again) — the last line:

  chaos jobs=<n> lost=<n> duplicate_submissions=<n> terminal_exactly_once=<n> max_recovery_s=<s>

Bounded: SY_CHAOS_JOBS (1000), submissions over SY_CHAOS_SUBMIT_S (60 s), everything over at
most SY_CHAOS_DEADLINE_S (600 s)."""
import collections
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time

import boto3
from botocore.config import Config

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sylib  # noqa: E402
from itest_worker_local import Decoder, Watch, TERMINAL  # noqa: E402
from itest_worker_emr import Aws, control  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
JOBS = int(os.environ.get("SY_CHAOS_JOBS", "1000"))
SUBMIT_S = float(os.environ.get("SY_CHAOS_SUBMIT_S", "60"))
DEADLINE_S = float(os.environ.get("SY_CHAOS_DEADLINE_S", "600"))
KILL_EVERY_S = (3.0, 5.0)
CLUSTERS = ("a", "b", "c", "d")
SEED = int(os.environ.get("SY_CHAOS_SEED", str(int(time.time()))))


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Proc:
    """One router or worker: a fixed instance id, restarted with the same one."""

    def __init__(self, env, tmp, binary, instance, extra_env):
        self.env, self.tmp, self.binary, self.instance = env, tmp, binary, instance
        self.extra = dict(extra_env)
        self.log = os.path.join(tmp, f"{instance}.log")
        self.p = None
        self.expected_exit = False
        self.unexpected = []

    def start(self):
        var = "SWITCHYARD_ROUTER_INSTANCE_ID" if "router" in self.binary else \
            "SWITCHYARD_WORKER_INSTANCE_ID"
        self.p = self.env.start(self.binary, extra_env=dict(self.extra, **{var: self.instance}),
                                log=self.log)
        self.expected_exit = False

    def kill(self):
        self.expected_exit = True
        self.p.send_signal(signal.SIGKILL)
        self.p.wait()

    def check(self):
        """Restarts the process if it exited by itself (and remembers that it did)."""
        if self.p.poll() is not None and not self.expected_exit:
            with open(self.log, errors="replace") as f:
                tail = f.read()[-2000:]
            self.unexpected.append((time.time(), self.p.returncode, tail))
            log(f"{self.instance} exited by itself ({self.p.returncode}); restarting")
            self.start()


def testenv(*args):
    r = subprocess.run([os.path.join(ROOT, "scripts", "testenv"), *args], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"testenv {' '.join(args)}: {r.stderr[-2000:]}"


def completer(aws, cids, stop, started):
    """The clusters' side: every step that has existed for 2 s completes."""
    emr = boto3.client("emr", config=Config(retries={"mode": "standard", "max_attempts": 10}))
    while not stop.is_set():
        for cid in cids:
            try:
                pages = emr.get_paginator("list_steps").paginate(
                    ClusterId=cid, StepStates=["PENDING", "RUNNING"])
                for page in pages:
                    for s in page["Steps"]:
                        created = s["Status"]["Timeline"]["CreationDateTime"].timestamp()
                        started.setdefault(s["Id"], created)
                        if time.time() - created >= 2.0:
                            aws.move(cid, s["Id"], "COMPLETED")
            except Exception as e:  # the AWS endpoint is being throttled on purpose
                log(f"completer: {type(e).__name__}: {str(e)[:120]}")
        stop.wait(0.5)


_templates = {}


def encoded(env, job, shard):
    """A JobRequest for job, first choice shard's cluster, then any chaos cluster: encoded once
    per shard by our codec, the job id (the first field, length-prefixed) swapped in."""
    if shard not in _templates:
        _templates[shard] = env.encode("JobRequest", sylib.request(
            "chaos-XXXX", [[f"shard:{shard}"], ["env:chaos"]], ["type:spark"], arguments=["x"]))
    assert len(job) == 10
    return _templates[shard].replace(b"\x14chaos-XXXX", b"\x14" + job.encode(), 1)


def main():
    rnd = random.Random(SEED)
    log(f"chaos seed {SEED}: {JOBS} jobs over {SUBMIT_S:.0f}s")
    env = sylib.Env("chaos")
    tmp = tempfile.mkdtemp(prefix="sy-itest-chaos-")
    aws = Aws()
    procs, w = [], None
    stop = threading.Event()
    ok = False
    try:
        cids = [aws.cluster(f"chaos-{c}", concurrency=256) for c in CLUSTERS]
        spec = {"emr": {"jar": "command-runner.jar", "args": ["spark-submit", "job.py"]}}
        env.cli("commands", "add", "spark", "--tags", "type:spark", "--spec", json.dumps(spec))
        for c, cid in zip(CLUSTERS, cids):
            env.cli("clusters", "add", c, "--kind", "emr", "--address", cid, "--tags",
                    f"env:chaos,shard:{c}")
            env.cli("link", "spark", c)
        env.make_topics(CLUSTERS)

        common = dict(sylib.FAST_GROUP_ENV, SWITCHYARD_LOG_LEVEL="debug")
        worker_env = dict(common, **{
            "SWITCHYARD_WORKER_HEARTBEAT_MS": "500",
            "SWITCHYARD_WORKER_LEASE_MS": "3000",
            "SWITCHYARD_WORKER_POLL_INTERVAL_MS": "1000",
            "SWITCHYARD_WORKER_EMR_LOGS_INTERVAL_MS": "0",
            "SWITCHYARD_WORKER_EMR_LOGS_WAIT_MS": "0",
            "SWITCHYARD_AWS_TIMEOUT_MS": "5000",
            "SWITCHYARD_AWS_RETRY_BASE_MS": "50",
            "SWITCHYARD_AWS_RETRY_MAX_BACKOFF_MS": "1000"})
        procs = [Proc(env, tmp, "switchyard-router", "router-1", common),
                 Proc(env, tmp, "switchyard-router", "router-2", common),
                 Proc(env, tmp, "switchyard-worker", "worker-1", worker_env),
                 Proc(env, tmp, "switchyard-worker", "worker-2", worker_env)]
        for p in procs:
            p.start()
        w = Watch(env, Decoder())
        step_seen = {}
        th = threading.Thread(target=completer, args=(aws, cids, stop, step_seen), daemon=True)
        th.start()

        jobs = [f"chaos-{i:04d}" for i in range(JOBS)]
        t0 = time.time()
        kills = []  # (instance, time)
        events = {"kafka": SUBMIT_S * 0.3, "postgres": SUBMIT_S * 0.55,
                  "faults_on": SUBMIT_S * 0.7, "faults_off": SUBMIT_S * 0.7 + 20}
        done_events = set()
        next_kill = t0 + rnd.uniform(*KILL_EVERY_S)
        submitted = 0
        while submitted < JOBS or time.time() - t0 < events["faults_off"] - 0:
            now = time.time()
            # submissions, evenly over SUBMIT_S
            due = min(JOBS, int((now - t0) / SUBMIT_S * JOBS) + 1)
            while submitted < due:
                j = jobs[submitted]
                try:
                    env.produce(env.topic("requests"), j.encode(),
                                encoded(env, j, CLUSTERS[submitted % len(CLUSTERS)]), flush=False)
                    submitted += 1
                except BufferError:
                    break
            env._producer.poll(0)
            # one broker restart, one database restart, a stretch of AWS faults
            for name, at in events.items():
                if name in done_events or now - t0 < at:
                    continue
                done_events.add(name)
                if name in ("kafka", "postgres"):
                    log(f"restarting {name}")
                    testenv("restart", name)
                    log(f"{name} is back")
                elif name == "faults_on":
                    log("AWS: 20% throttling, 5% HTTP 5xx")
                    control("POST", "/control/faults", {"seed": SEED, "rules": [
                        {"service": "emr", "kind": "throttle", "probability": 0.20},
                        {"service": "emr", "kind": "error", "status": 503,
                         "probability": 0.05 / 0.8}]})
                else:
                    log("AWS faults off")
                    control("DELETE", "/control/faults")
            # a random router or worker killed and restarted every few seconds
            if now >= next_kill and now - t0 < SUBMIT_S:
                p = rnd.choice(procs)
                log(f"SIGKILL {p.instance}")
                p.kill()
                kills.append((p.instance, time.time()))
                time.sleep(0.5)
                p.start()
                next_kill = time.time() + rnd.uniform(*KILL_EVERY_S)
            for p in procs:
                p.check()
            w.pump(0.2)
            assert time.time() - t0 < DEADLINE_S, "the chaos phase overran its deadline"
        assert env._producer.flush(60) == 0, "submissions not acknowledged"
        control("DELETE", "/control/faults")
        log(f"chaos over after {time.time() - t0:.0f}s: {len(kills)} kills; waiting for the jobs")

        def finished():
            return all(w.final(j) is not None for j in jobs)
        end = t0 + DEADLINE_S
        while not finished() and time.time() < end:
            w.pump(1)
            for p in procs:
                p.check()
        w.pump(3)  # anything published twice would show up now
        stop.set()
        th.join(30)

        # ---- the accounting
        steps = collections.Counter()
        for cid in cids:
            for s in aws.steps(cid):
                if s["Name"].startswith("switchyard:"):
                    steps[s["Name"][len("switchyard:"):]] += 1
        terminal = {}
        for j in jobs:
            by_seq = {}
            for s in w.status[j]:
                if s["status"] in TERMINAL:
                    by_seq[s["seq"]] = s["status"]
            terminal[j] = by_seq
        lost = [j for j in jobs if not terminal[j]]
        once = [j for j in jobs if len(terminal[j]) == 1]
        one_step = [j for j in jobs if steps[j] == 1]
        dup = sum(n - 1 for n in steps.values() if n > 1)
        outcomes = collections.Counter(next(iter(t.values())) for t in terminal.values() if t)
        not_ok = [(j, w.final(j)["failure_reason"], w.final(j)["message"]) for j in jobs
                  if terminal[j] and w.final(j)["status"] != "SUCCEEDED"]

        # recovery: from each SIGKILL until the restarted instance published again
        emitted = collections.defaultdict(list)
        for j in w.status:
            for s in w.status[j]:
                t = s["emitted_at"]
                emitted[s.get("emitter")].append(t.timestamp() if hasattr(t, "timestamp") else
                                                 t / 1000.0)
        recovery = []
        for inst, kt in kills:
            after = [t for t in emitted[inst] if t > kt]
            recovery.append((min(after) if after else time.time()) - kt)
        max_recovery = max(recovery) if recovery else 0.0

        # no secret in anything logged or published
        secrets = [os.environ.get("AWS_SECRET_ACCESS_KEY", "")]
        db_url = os.environ["SWITCHYARD_DATABASE_URL"]
        if "@" in db_url and ":" in db_url.split("://", 1)[1].split("@", 1)[0]:
            secrets.append(db_url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1])
        secrets = [s for s in secrets if len(s) >= 6]
        leaks = []
        logged = 0
        for p in procs:
            with open(p.log, errors="replace") as f:
                text = f.read()
            logged += len(text)
            leaks += [(p.instance, "secret") for s in secrets if s in text]
        published = json.dumps({j: [str(s.get("message")) for s in w.status[j]] for j in w.status})
        leaks += [("status events", "secret") for s in secrets if s in published]
        unexpected = [(p.instance, u[1], u[2][-600:]) for p in procs for u in p.unexpected]

        log(f"outcomes {dict(outcomes)}; steps for {len(steps)} jobs; kills {len(kills)}; "
            f"recoveries {[round(r, 1) for r in recovery]}")
        log(f"checked {logged} bytes of process logs and {len(published)} of status messages "
            f"for {len(secrets)} secrets")
        for u in unexpected:
            log(f"unexpected exit: {u[0]} status {u[1]}:\n{u[2]}")
        for j, reason, msg in not_ok[:10]:
            log(f"not SUCCEEDED: {j} {reason}: {msg}")
        print(f"chaos jobs={len(jobs)} lost={len(lost)} duplicate_submissions={dup} "
              f"terminal_exactly_once={len(once)} max_recovery_s={max_recovery:.1f}", flush=True)
        assert not lost, f"lost: {lost[:10]}"
        assert dup == 0, [j for j, n in steps.items() if n > 1][:10]
        assert len(once) == len(jobs), [(j, terminal[j]) for j in jobs if len(terminal[j]) != 1][:5]
        assert len(one_step) == len(jobs), [j for j in jobs if steps[j] != 1][:10]
        assert not not_ok, not_ok[:5]
        assert not leaks, leaks
        assert not unexpected, [u[:2] for u in unexpected]
        assert len(kills) >= 5 and {"kafka", "postgres", "faults_on"} <= done_events
        ok = True
    finally:
        stop.set()
        control("DELETE", "/control/faults")
        if w:
            w.close()
        env.close()
        log(f"logs in {tmp}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
