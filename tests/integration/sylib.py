"""sylib: shared helpers of the Python integration tests — a scratch namespace and database per
test file, the switchyard binaries, Kafka produce/consume through confluent-kafka, and our own
`switchyard encode/decode` for the Avro framing (so every test exercises the real codec)."""
import json
import os
import signal
import subprocess
import sys
import time
import traceback
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition

BIN = os.environ.get("SY_BIN", os.path.join(os.getcwd(), "build", "bin"))
BOOTSTRAP = os.environ["SWITCHYARD_BOOTSTRAP_SERVERS"]
DB_URL = os.environ["SWITCHYARD_DATABASE_URL"]


def psql(url, sql):
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql], check=True,
                   stdout=subprocess.DEVNULL)


def db_url_for(dbname):
    """The test database's URL: SWITCHYARD_DATABASE_URL with its database name replaced."""
    base, _, query = DB_URL.partition("?")
    head, _, _ = base.rpartition("/")
    return f"{head}/{dbname}" + (f"?{query}" if query else "")


# Consumer group settings that make rebalances and new topics quick in tests.
FAST_GROUP_ENV = {
    "SWITCHYARD_KAFKA_TOPIC_METADATA_REFRESH_INTERVAL_MS": "1000",
    "SWITCHYARD_KAFKA_SESSION_TIMEOUT_MS": "6000",
    "SWITCHYARD_KAFKA_HEARTBEAT_INTERVAL_MS": "500",
}


class Env:
    """A fresh topic namespace and a fresh PostgreSQL database, migrated."""

    def __init__(self, name):
        tag = uuid.uuid4().hex[:8]
        self.ns = f"t{name}{tag}"
        self.db = f"sy_{name}_{tag}"
        owner = DB_URL.split("://", 1)[1].split("@", 1)[0].split(":", 1)[0]
        psql(os.environ.get("SY_DATABASE_ADMIN_URL", DB_URL),
             f"CREATE DATABASE {self.db} OWNER {owner}")
        self.env = dict(os.environ)
        self.env["SWITCHYARD_TOPIC_NAMESPACE"] = self.ns
        self.env["SWITCHYARD_DATABASE_URL"] = db_url_for(self.db)
        self.env["SWITCHYARD_TOPIC_PARTITIONS"] = "3"
        self.procs = []
        self.cli("admin", "migrate")

    def topic(self, suffix):
        return f"{self.ns}.{suffix}"

    def cli(self, *args, check=True, input=None):
        r = subprocess.run([os.path.join(BIN, "switchyard"), *args], env=self.env, input=input,
                           capture_output=True)
        if check and r.returncode != 0:
            raise AssertionError(f"switchyard {' '.join(args)} exited {r.returncode}: "
                                 f"{r.stderr.decode(errors='replace')}")
        return r

    def wait_status(self, job_id, want, timeout=30):
        """`switchyard status --json` until the job's status is want; its JSON then."""
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            r = self.cli("status", "--json", job_id, check=False)
            if r.returncode == 0:
                last = json.loads(r.stdout)
                if last["status"] == want:
                    return last
            time.sleep(0.3)
        raise AssertionError(f"{job_id}: status {last} after {timeout}s, wanted {want}")

    def start(self, binary, *args, extra_env=None, log=None):
        env = dict(self.env)
        env.update(extra_env or {})
        out = open(log, "ab") if log else subprocess.DEVNULL
        p = subprocess.Popen([os.path.join(BIN, binary), *args], env=env, stdout=out,
                             stderr=out if log else subprocess.DEVNULL)
        self.procs.append(p)
        return p

    def wait_topic(self, topic, timeout=60.0):
        """Waits until topic exists (e.g. a router created its topics at start)."""
        from confluent_kafka.admin import AdminClient
        admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
        deadline = time.time() + timeout
        while time.time() < deadline:
            if topic in admin.list_topics(timeout=5).topics:
                return
            time.sleep(0.2)
        raise AssertionError(f"topic {topic} did not appear within {timeout}s")

    def make_topics(self, clusters=(), partitions=3, timeout=60):
        """Creates the namespace's topics and the cluster topics of clusters up front, so no
        binary races the broker's metadata at its first start."""
        from confluent_kafka.admin import AdminClient, NewTopic
        admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
        names = ["requests", "router.seen", "status", "logs", "control", "deadletter"] + \
            [f"cluster.{c}" for c in clusters]
        for f in admin.create_topics([NewTopic(self.topic(n), partitions, 1)
                                      for n in names]).values():
            f.result(timeout)
        time.sleep(1)

    def start_router(self, instance, log=None, extra_env=None):
        """Starts switchyard-router and waits until it has created its topics."""
        env = {"SWITCHYARD_ROUTER_INSTANCE_ID": instance}
        env.update(extra_env or {})
        p = self.start("switchyard-router", extra_env=env, log=log)
        self.wait_topic(self.topic("router.seen"))
        return p

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    # ---- Avro through our own codec ----
    def encode(self, type_name, record):
        r = self.cli("encode", "--type", type_name, input=json.dumps(record).encode())
        return r.stdout

    def decode(self, data):
        r = self.cli("decode", input=data)
        return json.loads(r.stdout)

    def produce(self, topic, key, value, headers=None, flush=True):
        """Produces one record with the murmur2 partitioner (as switchyard submit does)."""
        if not hasattr(self, "_producer"):
            self._producer = Producer({"bootstrap.servers": BOOTSTRAP,
                                       "partitioner": "murmur2_random",
                                       "enable.idempotence": True})
        self._producer.produce(topic, key=key, value=value, headers=headers)
        if flush:
            assert self._producer.flush(15) == 0, "produce did not complete"

    def consume_all(self, topic, expect=None, timeout=30.0, isolation="read_committed"):
        """Reads every message of topic (all partitions, from the start), until expect(messages)
        is true or timeout passes. Returns the confluent-kafka messages."""
        c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": f"t-{uuid.uuid4().hex}",
                      "auto.offset.reset": "earliest", "enable.auto.commit": False,
                      "isolation.level": isolation})
        c.subscribe([topic])
        msgs = []
        deadline = time.time() + timeout
        try:
            while time.time() < deadline:
                m = c.poll(0.5)
                if m is None:
                    if expect and expect(msgs):
                        break
                    continue
                if m.error():
                    continue
                msgs.append(m)
                if expect and expect(msgs):
                    break
        finally:
            c.close()
        return msgs


def request(job_id, cluster_criteria, command_tags, **extra):
    rec = {
        "job_id": job_id,
        "name": extra.pop("name", job_id),
        "user": "itest",
        "cluster_criteria": [{"tags": c} if isinstance(c, list) else c for c in cluster_criteria],
        "command_criterion": {"tags": command_tags},
        "arguments": extra.pop("arguments", []),
        "submitted_at": int(time.time() * 1000),
    }
    rec.update(extra)
    return rec


class Runner:
    """Runs test functions in order, prints 'N passed, N failed', exits non-zero on failure."""

    def __init__(self):
        self.passed = self.failed = 0

    def run(self, fn, *args):
        t0 = time.time()
        try:
            fn(*args)
            self.passed += 1
            print(f"PASS {fn.__name__} ({time.time() - t0:.1f}s)", flush=True)
        except Exception:
            self.failed += 1
            print(f"FAIL {fn.__name__}", flush=True)
            traceback.print_exc()

    def done(self):
        print(f"{self.passed} passed, {self.failed} failed", flush=True)
        sys.exit(1 if self.failed else 0)
