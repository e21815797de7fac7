"""Router against the real broker, PostgreSQL and Schema Registry: fallback order, status and
link filtering, implicit id/name tags, weighted selection, INVALID reasons (valid UTF-8 however
cut), dead-lettering, hot reload (also while a 20,000-request backlog is routed), duplicate ids
(also across a restart, from the changelog), a writer schema with schema references, two routers
sharing partitions, and SIGKILL of a router mid-stream with exactly-once output for a
read_committed consumer."""
import collections
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sylib  # noqa: E402

SPEC = '{"local":{"argv":["/bin/echo"]}}'
CMD = ["type:spark-submit", "spark:3.5"]


def setup_registry(env):
    env.cli("clusters", "add", "prod-a", "--kind", "local", "--tags", "env:prod,spark:3.5,queue:hot",
            "--weight", "3")
    env.cli("clusters", "add", "prod-b", "--kind", "local", "--tags", "env:prod,spark:3.5",
            "--weight", "1")
    env.cli("clusters", "add", "test-a", "--kind", "local", "--tags", "env:test,spark:3.5")
    env.cli("clusters", "add", "etl-down", "--kind", "local", "--tags", "env:prod,queue:etl",
            "--status", "OUT_OF_SERVICE")
    env.cli("clusters", "add", "unlinked", "--kind", "local", "--tags", "env:staging")
    env.cli("commands", "add", "spark35", "--tags", ",".join(CMD), "--spec", SPEC)
    for c in ("prod-a", "prod-b", "test-a", "etl-down"):
        env.cli("link", "spark35", c)


def statuses(env, job_ids, min_count=2, timeout=30):
    """{job_id: [status records in order]} from <ns>.status, read_committed, once every job has
    at least min_count events (or timeout)."""
    ids = set(job_ids)
    seen, counted = collections.Counter(), [0]

    def done(msgs):  # called after every message: counts only the new ones
        seen.update(m.key().decode() for m in msgs[counted[0]:])
        counted[0] = len(msgs)
        return all(seen[j] >= min_count for j in ids)

    out = collections.defaultdict(list)
    for m in env.consume_all(env.topic("status"), expect=done, timeout=timeout):
        k = m.key().decode()
        if k in ids:
            out[k].append(env.decode(m.value()))
    return out


def submit(env, job_id, criteria, cmd=CMD, flush=True, **extra):
    env.produce(env.topic("requests"), job_id.encode(),
                env.encode("JobRequest", sylib.request(job_id, criteria, cmd, **extra)), flush=flush)


def final(st):
    return [s for s in st if s["status"] in ("RESOLVED", "INVALID")]


def test_routing_semantics(env):
    submit(env, "fallback-1", [["env:staging"], ["env:test"]])
    submit(env, "oos-1", [["queue:etl"]])
    submit(env, "unlinked-1", [["env:staging"]])
    submit(env, "implicit-name", [["switchyard.name:prod-b"]])
    submit(env, "name-field", [{"name": "test-a", "tags": []}])
    submit(env, "no-command", [["env:prod"]], cmd=["type:hive"])
    submit(env, "bad-tag", [["not a tag"]])
    submit(env, "bad-timeout", [["env:prod"]], timeout_ms=10**15)
    # reasons that quote the request cut its text short: never inside a UTF-8 character (the
    # INVALID event must still decode)
    submit(env, "utf8-env", [["env:prod"]], environment={"a" + "\u00e9" * 40: "x"})
    submit(env, "utf8-tag", [["k:a" + "\u00e9" * 200]])
    ids = ["fallback-1", "oos-1", "unlinked-1", "implicit-name", "name-field", "no-command",
           "bad-tag", "bad-timeout", "utf8-env", "utf8-tag"]
    st = statuses(env, ids)
    f = {j: final(st[j]) for j in ids}
    for j in ids:
        assert st[j][0]["status"] == "ACCEPTED" and st[j][0]["seq"] == 1, (j, st[j])
        assert len(f[j]) == 1, (j, st[j])
    assert f["fallback-1"][0]["status"] == "RESOLVED" and f["fallback-1"][0]["cluster"] == "test-a"
    assert "criterion #2" in f["fallback-1"][0]["message"], f["fallback-1"]
    assert f["oos-1"][0]["status"] == "INVALID" and "queue:etl" in f["oos-1"][0]["message"]
    assert f["unlinked-1"][0]["status"] == "INVALID" and "env:staging" in f["unlinked-1"][0]["message"]
    assert f["implicit-name"][0]["cluster"] == "prod-b"
    assert f["name-field"][0]["cluster"] == "test-a"
    assert f["no-command"][0]["status"] == "INVALID" and "type:hive" in f["no-command"][0]["message"]
    assert f["bad-tag"][0]["status"] == "INVALID" and "tag" in f["bad-tag"][0]["message"]
    assert f["bad-timeout"][0]["status"] == "INVALID" and "timeout" in f["bad-timeout"][0]["message"]
    assert f["utf8-env"][0]["status"] == "INVALID", f["utf8-env"]
    assert "environment variable name \"a\u00e9\u00e9" in f["utf8-env"][0]["message"], f["utf8-env"]
    assert f["utf8-tag"][0]["status"] == "INVALID", f["utf8-tag"]
    assert "tag \"k:a\u00e9\u00e9" in f["utf8-tag"][0]["message"], f["utf8-tag"]
    # the RoutedJob is on the chosen cluster's topic, with the command's local spec
    routed = env.consume_all(env.topic("cluster.test-a"),
                             expect=lambda ms: any(m.key() == b"fallback-1" for m in ms))
    rj = env.decode([m for m in routed if m.key() == b"fallback-1"][0].value())
    assert rj["job_id"] == "fallback-1" and rj["backend_kind"] == "local", rj
    assert rj["command_spec"] == '{"argv":["/bin/echo"]}' and rj["request"]["job_id"] == "fallback-1"


def test_weighted(env):
    n = 300
    ids = [f"w-{i}" for i in range(n)]
    for j in ids:
        submit(env, j, [["env:prod"]], flush=False)
    assert env._producer.flush(15) == 0
    st = statuses(env, ids, timeout=90)
    counts = collections.Counter(final(st[j])[0]["cluster"] for j in ids)
    share = counts["prod-a"] / n
    print(f"weighted: {dict(counts)} prod-a share {share:.2f} (expect 0.75)")
    assert set(counts) == {"prod-a", "prod-b"}, counts
    assert 0.65 <= share <= 0.85, counts


def test_deadletter(env):
    garbage = [b"", b"\x00\x00", b"not avro at all", b"\xc3\x01" + b"\x00" * 8 + b"x",
               b"\x00\x7f\xff\xff\xff\x02"]
    for i, g in enumerate(garbage):
        env.produce(env.topic("requests"), f"junk-{i}".encode(), g, headers=[("origin", b"test")])
    submit(env, "after-junk", [["env:test"]])
    dl = env.consume_all(env.topic("deadletter"), expect=lambda ms: len(ms) >= len(garbage))
    assert len(dl) == len(garbage), len(dl)
    for m in dl:
        hd = {k: v for k, v in m.headers()}
        assert "sy.error" in hd and "sy.error.code" in hd and "sy.source.offset" in hd, hd
        assert hd["sy.source.topic"].decode() == env.topic("requests")
        assert hd["origin"] == b"test"
    assert {m.value() or b"" for m in dl} == set(garbage)
    st = statuses(env, ["after-junk"])
    assert final(st["after-junk"])[0]["status"] == "RESOLVED"


def test_duplicate(env):
    submit(env, "dup-1", [["env:test"]])
    submit(env, "dup-1", [["env:test"]])
    st = statuses(env, ["dup-1"], min_count=3)
    kinds = [s["status"] for s in st["dup-1"]]
    assert kinds.count("RESOLVED") == 1 and kinds.count("DUPLICATE") == 1, kinds
    routed = [m for m in env.consume_all(env.topic("cluster.test-a"), timeout=5)
              if m.key() == b"dup-1"]
    assert len(routed) == 1, len(routed)


def test_reload_under_load(env, router):
    """Registry changes while a backlog is routed: the committer produces one batch while the
    next is routed against the new registry. Every request is routed exactly once, and the
    router that was running all along is still running."""
    n = 20000
    ids = [f"load-{i}" for i in range(n)]
    docs = "\n".join(json.dumps(sylib.request(j, [["env:prod"]], CMD)) for j in ids)
    out = env.cli("encode", "--type", "JobRequest", "--lines", "--hex", input=docs.encode())
    values = [bytes.fromhex(h) for h in out.stdout.decode().split()]
    assert len(values) == n
    p = sylib.Producer({"bootstrap.servers": sylib.BOOTSTRAP, "partitioner": "murmur2_random",
                        "linger.ms": 5})
    weights = (2, 5, 1, 4, 3, 2, 6, 4, 2, 1)  # each change is a new registry version
    for k, weight in enumerate(weights):  # in slices, with a registry change after each
        for i in range(k * n // len(weights), (k + 1) * n // len(weights)):
            p.produce(env.topic("requests"), key=ids[i].encode(), value=values[i])
        assert p.flush(30) == 0
        env.cli("clusters", "update", "prod-b", "--weight", str(weight))

    def all_routed(msgs):
        return len({m.key() for m in msgs if m.key().startswith(b"load-")}) >= n

    got = []
    deadline = time.time() + 120
    while not all_routed(got) and time.time() < deadline:
        got = []
        for c in ("prod-a", "prod-b"):
            got += env.consume_all(env.topic(f"cluster.{c}"), timeout=5)
    per_job = collections.Counter(m.key().decode() for m in got
                                  if m.key().startswith(b"load-"))
    print(f"reload under load: routed {len(per_job)}/{n}, "
          f"more than once {sum(1 for v in per_job.values() if v > 1)}")
    assert len(per_job) == n and set(per_job.values()) == {1}
    assert router.poll() is None, f"the router exited with {router.returncode}"


def registry_post(path, doc):
    url = os.environ["SWITCHYARD_SCHEMA_REGISTRY_URL"].rstrip("/") + path
    req = urllib.request.Request(url, data=json.dumps(doc).encode(), method="POST",
                                 headers={"Content-Type": "application/vnd.schemaregistry.v1+json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def test_schema_references(env):
    """A writer schema that uses a schema reference (what Apicurio's serializers register by
    default: the nested Criterion record as a schema of its own): the router fetches the
    referenced schema from the registry and routes the request."""
    if not os.environ.get("SWITCHYARD_SCHEMA_REGISTRY_URL"):
        print("skipped: no SWITCHYARD_SCHEMA_REGISTRY_URL")
        return
    whole = json.loads(env.cli("schemas", "JobRequest").stdout)
    crit_field = next(f for f in whole["fields"] if f["name"] == "cluster_criteria")
    criterion = dict(crit_field["type"]["items"])  # the first use: the definition
    assert criterion["name"] in ("Criterion", "io.switchyard.Criterion"), criterion
    criterion.setdefault("namespace", "io.switchyard")
    crit_field["type"]["items"] = "io.switchyard.Criterion"  # a name the schema does not define
    subject = f"{env.ns}.criterion"
    registry_post(f"/subjects/{subject}/versions", {"schema": json.dumps(criterion)})
    sid = registry_post(f"/subjects/{env.ns}.refs-value/versions", {
        "schema": json.dumps(whole),
        "references": [{"name": "io.switchyard.Criterion", "subject": subject, "version": 1}]})["id"]
    # the Avro body is the same as with our own schema: frame it with the new id
    plain = subprocess.run([os.path.join(sylib.BIN, "switchyard"), "encode", "--type",
                            "JobRequest"], input=json.dumps(sylib.request(
                                "refs-1", [["env:test"]], CMD)).encode(), capture_output=True,
                           env=dict(env.env, SWITCHYARD_SCHEMA_REGISTRY_URL=""), check=True).stdout
    assert plain[:2] == b"\xc3\x01", plain[:2]
    env.produce(env.topic("requests"), b"refs-1", b"\x00" + sid.to_bytes(4, "big") + plain[10:])
    got = final(statuses(env, ["refs-1"])["refs-1"])
    assert got and got[0]["status"] == "RESOLVED" and got[0]["cluster"] == "test-a", got
    routed = env.consume_all(env.topic("cluster.test-a"),
                             expect=lambda ms: any(m.key() == b"refs-1" for m in ms))
    rj = env.decode([m for m in routed if m.key() == b"refs-1"][0].value())
    assert rj["request"]["cluster_criteria"] == [{"id": None, "name": None,
                                                  "tags": ["env:test"]}], rj["request"]


def test_duplicate_after_restart(env, router, log):
    """The duplicate guard outlives its router: a new one rebuilds it from <ns>.router.seen,
    from the per-batch id lists routers write there and from one-id-per-record entries."""
    ids = [f"again-{i}" for i in range(120)]
    for j in ids:
        submit(env, j, [["env:test"]], flush=False)
    env.produce(env.topic("router.seen"), b"legacy-1", b"test-a")  # flushes all
    st = statuses(env, ids)
    assert all(final(st[j]) and final(st[j])[0]["status"] == "RESOLVED" for j in ids), st
    listed = set()
    for m in env.consume_all(env.topic("router.seen"), timeout=5):
        if m.key().startswith(b"@"):
            listed |= set(m.value().decode().split("\n"))
    assert set(ids) <= listed, sorted(set(ids) - listed)[:5]

    router.send_signal(signal.SIGTERM)
    assert router.wait(timeout=30) == 0
    router = env.start_router("r1b", log=log)
    for j in ids + ["legacy-1"]:
        submit(env, j, [["env:test"]], flush=False)
    env.produce(env.topic("requests"), b"after-restart", env.encode(
        "JobRequest", sylib.request("after-restart", [["env:test"]], CMD)))
    st = statuses(env, ids, min_count=3)
    assert all([s["status"] for s in st[j]] == ["ACCEPTED", "RESOLVED", "DUPLICATE"]
               for j in ids), {j: [s["status"] for s in st[j]] for j in ids[:3]}
    assert final(statuses(env, ["after-restart"])["after-restart"])[0]["status"] == "RESOLVED"
    assert [s["status"] for s in statuses(env, ["legacy-1"], min_count=1)["legacy-1"]] == \
        ["DUPLICATE"]
    routed = collections.Counter(
        m.key().decode() for m in env.consume_all(env.topic("cluster.test-a"), timeout=5))
    assert all(routed[j] == 1 for j in ids) and routed["legacy-1"] == 0, routed


def test_hot_reload(env):
    submit(env, "hot-1", [["queue:hot"]])
    assert final(statuses(env, ["hot-1"])["hot-1"])[0]["cluster"] == "prod-a"
    env.cli("clusters", "untag", "prod-a", "queue:hot")
    env.cli("clusters", "tag", "prod-b", "queue:hot")
    time.sleep(1.0)
    submit(env, "hot-2", [["queue:hot"]])
    assert final(statuses(env, ["hot-2"])["hot-2"])[0]["cluster"] == "prod-b"


def test_two_routers_and_sigkill(env, log):
    second = env.start_router("r2", log=log)
    time.sleep(4)
    n = 400
    ids = [f"k-{i}" for i in range(n)]
    p = sylib.Producer({"bootstrap.servers": sylib.BOOTSTRAP, "partitioner": "murmur2_random"})
    for i, j in enumerate(ids):
        p.produce(env.topic("requests"), key=j.encode(),
                  value=env.encode("JobRequest", sylib.request(j, [["env:prod"]], CMD)))
        if i == n // 3:
            p.flush(10)
            second.send_signal(signal.SIGKILL)
            second.wait()
        if i == 2 * n // 3:
            p.flush(10)
            env.start_router("r2", log=log)
    assert p.flush(15) == 0

    def routed_all(msgs):
        return len({m.key() for m in msgs}) >= n

    got = []
    for c in ("prod-a", "prod-b"):
        got += [m for m in env.consume_all(env.topic(f"cluster.{c}"), timeout=10)
                if m.key().decode().startswith("k-")]
    deadline = time.time() + 90
    while len({m.key() for m in got}) < n and time.time() < deadline:
        got = []
        for c in ("prod-a", "prod-b"):
            got += [m for m in env.consume_all(env.topic(f"cluster.{c}"), timeout=5)
                    if m.key().decode().startswith("k-")]
    per_job = collections.Counter(m.key().decode() for m in got)
    dups = {k: v for k, v in per_job.items() if v > 1}
    missing = set(ids) - set(per_job)
    print(f"sigkill: routed {len(per_job)}/{n}, duplicates {len(dups)}, missing {len(missing)}")
    assert not missing, sorted(missing)[:10]
    assert not dups, dups


def main():
    r = sylib.Runner()
    env = sylib.Env("router")
    log = os.path.join(os.environ.get("SY_TESTENV_DIR", "/tmp"), f"{env.ns}-router.log")
    try:
        setup_registry(env)
        first = env.start_router("r1", log=log)
        r.run(test_routing_semantics, env)
        r.run(test_deadletter, env)
        r.run(test_duplicate, env)
        r.run(test_hot_reload, env)
        r.run(test_weighted, env)
        r.run(test_reload_under_load, env, first)
        r.run(test_schema_references, env)
        r.run(test_duplicate_after_restart, env, first, log)
        r.run(test_two_routers_and_sigkill, env, log)
    finally:
        env.close()
        if r.failed and os.path.exists(log):
            print("---- router log (tail) ----")
            print("".join(open(log, errors="replace").readlines()[-60:]))
    r.done()


if __name__ == "__main__":
    main()
