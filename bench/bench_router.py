"""Router throughput and latency against the real broker and PostgreSQL.

Throughput: N JobRequests are pre-loaded into <ns>.requests; a fresh router group routes them
all (transactions on, default batch settings); the figure is N / (time from router start until
the last RESOLVED status is visible to a read_committed consumer, minus the router's own
start-up, measured as the time to its first RESOLVED). The baseline moves the same N records
through `kcat -C | kcat -P` (consume -> produce, no transactions) over the same broker, timed
from start to the last record visible at the output. Records are encoded so that none contains
a newline byte, so kcat's line framing carries exactly the same N messages.

Latency: M requests are sent one at a time at a steady rate to a running router; each one's
latency is the time from send until its RESOLVED status is consumed (read_committed)."""
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
import sylib  # noqa: E402
from confluent_kafka import Consumer, Producer  # noqa: E402

import io  # noqa: E402

import fastavro  # noqa: E402

STATUS_SCHEMA = fastavro.parse_schema(json.load(open(os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "schemas", "JobStatus.v1.avsc"))))


def status_of(value):
    """The status symbol of a framed JobStatus (Confluent or single-object framing)."""
    body = value[5:] if value[:1] == b"\x00" else value[10:]
    return fastavro.schemaless_reader(io.BytesIO(body), STATUS_SCHEMA)["status"]


N = int(os.environ.get("BENCH_ROUTER_N", "20000"))
M = int(os.environ.get("BENCH_ROUTER_LATENCY_N", "500"))
CMD = ["type:spark-submit", "spark:3.5"]


def encode_many(env, prefix, n):
    """n JobRequests as bytes, none containing b'\\n' (bumps submitted_at until so)."""
    out = []
    base = int(time.time() * 1000)
    todo = list(range(n))
    bump = 0
    while todo:
        docs = [json.dumps(sylib.request(f"{prefix}-{i}", [["env:prod"]], CMD,
                                         submitted_at=base + bump)) for i in todo]
        r = env.cli("encode", "-t", "JobRequest", "--lines", "--hex",
                    input="\n".join(docs).encode())
        recs = [bytes.fromhex(h) for h in r.stdout.decode().split()]
        retry = []
        for i, rec in zip(todo, recs):
            if b"\n" in rec:
                retry.append(i)
            else:
                out.append((f"{prefix}-{i}", rec))
        todo = retry
        bump += 1
    return out


def count_until(topic, n, key_filter=None, timeout=300):
    c = Consumer({"bootstrap.servers": sylib.BOOTSTRAP, "group.id": f"b-{time.time()}",
                  "auto.offset.reset": "earliest", "isolation.level": "read_committed"})
    c.subscribe([topic])
    seen = set()
    first = last = None
    deadline = time.time() + timeout
    while len(seen) < n and time.time() < deadline:
        for m in c.consume(1000, 0.5):
            if m.error():
                continue
            k = m.key()
            if key_filter and not key_filter(m):
                continue
            seen.add(k if k is not None else (m.partition(), m.offset()))
            now = time.time()
            first = first or now
            last = now
    c.close()
    return len(seen), first, last


def main():
    env = sylib.Env("bench")
    try:
        env.cli("clusters", "add", "prod-a", "--kind", "local", "--tags", "env:prod")
        env.cli("clusters", "add", "prod-b", "--kind", "local", "--tags", "env:prod")
        env.cli("commands", "add", "spark35", "--tags", ",".join(CMD),
                "--spec", '{"local":{"argv":["/bin/true"]}}')
        env.cli("link", "spark35", "prod-a")
        env.cli("link", "spark35", "prod-b")
        # create the topics (and cluster topics) once with a short warm-up run
        env.start_router("warm")
        recs = encode_many(env, "b", N)
        env.produce(env.topic("requests"), b"warm-1",
                    encode_many(env, "warm", 1)[0][1])
        count_until(env.topic("status"), 1, timeout=60)
        env.close()
        env.procs = []

        p = Producer({"bootstrap.servers": sylib.BOOTSTRAP, "partitioner": "murmur2_random",
                      "linger.ms": 20})
        for k, v in recs:
            p.produce(env.topic("requests"), key=k.encode(), value=v)
        assert p.flush(60) == 0

        # baseline: kcat consume -> produce over the same records
        src = env.topic("requests")
        dst = env.topic("kcat-out")
        t0 = time.time()
        pipe = subprocess.Popen(
            f"kcat -C -b {sylib.BOOTSTRAP} -t {src} -o beginning -e -q -D '\\n' -f '%s\\n' | "
            f"kcat -P -b {sylib.BOOTSTRAP} -t {dst} -D '\\n'", shell=True)
        pipe.wait()
        got, _, last = count_until(dst, N + 1, timeout=120)
        kcat_s = (last or time.time()) - t0
        kcat_rate = got / kcat_s

        # the router: a fresh group routes the same records
        t0 = time.time()
        env.start("switchyard-router", extra_env={"SWITCHYARD_ROUTER_GROUP_ID": "bench-group",
                                                  "SWITCHYARD_ROUTER_INSTANCE_ID": "bench",
                                                  "SWITCHYARD_LOG_LEVEL": "warn"})
        routed, first, last = count_until(
            env.topic("status"), N, timeout=600,
            key_filter=lambda m: m.key().startswith(b"b-") and status_of(m.value()) == "RESOLVED")
        router_s = (last - t0) if last else float("inf")
        router_rate = routed / router_s
        print(f"bench router_routed_per_s {router_rate:.0f} req/s")
        print(f"bench router_kcat_per_s {kcat_rate:.0f} msg/s")
        print(f"bench router_vs_kcat_ratio {router_rate / kcat_rate:.2f} x")
        print(f"bench router_messages {routed} count")

        # latency: one request at a time through the running router
        lat = {}
        sent = {}
        done = threading.Event()

        def follow():
            c = Consumer({"bootstrap.servers": sylib.BOOTSTRAP, "group.id": f"l-{time.time()}",
                          "auto.offset.reset": "latest", "isolation.level": "read_committed"})
            c.subscribe([env.topic("status")])
            while not done.is_set():
                for m in c.consume(100, 0.1):
                    if m.error() or not m.key().startswith(b"l-"):
                        continue
                    if m.key() in sent and status_of(m.value()) == "RESOLVED":
                        lat.setdefault(m.key(), time.time() - sent[m.key()])
            c.close()

        th = threading.Thread(target=follow)
        th.start()
        time.sleep(3)
        lrecs = encode_many(env, "l", M)
        for k, v in lrecs:
            sent[k.encode()] = time.time()
            p.produce(env.topic("requests"), key=k.encode(), value=v)
            p.flush(10)
            time.sleep(0.01)
        deadline = time.time() + 60
        while len(lat) < M and time.time() < deadline:
            time.sleep(0.2)
        done.set()
        th.join()
        xs = sorted(v * 1000 for v in lat.values())
        if xs:
            print(f"bench router_resolve_p50_ms {xs[len(xs) // 2]:.1f} ms")
            print(f"bench router_resolve_p99_ms {xs[min(len(xs) - 1, int(len(xs) * 0.99))]:.1f} ms")
        print(f"bench router_latency_samples {len(xs)} count")
    finally:
        env.close()


if __name__ == "__main__":
    main()
