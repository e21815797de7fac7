"""Interop: a JobRequest published by Python's confluent-kafka with its standard AvroSerializer
(Schema Registry, our schemas/JobRequest.v1.avsc, partitioner murmur2_random) is accepted and
routed by the real router exactly like one from `switchyard submit`: same RoutedJob content,
`switchyard status` finds it, and both producers put a job id into the same requests partition
(so resubmitting the Python job's id with `switchyard submit` is a DUPLICATE, never a second
run). This is the recipe docs/integrations.md gives other services."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sylib  # noqa: E402

try:
    from confluent_kafka import Producer
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext
except ImportError as e:  # the venv lacks the schema-registry extras (httpx, authlib, ...)
    print(f"FAIL: confluent_kafka.schema_registry cannot be imported ({e}); the test venv needs "
          "confluent-kafka's schema-registry dependencies (authlib, cachetools, httpx)")
    sys.exit(1)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REGISTRY = os.environ["SWITCHYARD_SCHEMA_REGISTRY_URL"]
SPEC = '{"local":{"argv":["/bin/echo"]}}'


def setup(env):
    env.cli("clusters", "add", "local1", "--kind", "local", "--tags", "env:test,spark:3.5")
    env.cli("commands", "add", "echo", "--tags", "type:echo", "--spec", SPEC)
    env.cli("link", "echo", "local1")


def python_producer():
    """What docs/integrations.md tells a Python service to use."""
    registry = SchemaRegistryClient({"url": REGISTRY})
    with open(os.path.join(ROOT, "schemas", "JobRequest.v1.avsc")) as f:
        serializer = AvroSerializer(registry, f.read())
    producer = Producer({
        "bootstrap.servers": sylib.BOOTSTRAP,
        "enable.idempotence": True,          # a retried send is written once
        "partitioner": "murmur2_random",     # Java's and Switchyard's: same id, same partition
    })
    return registry, serializer, producer


def python_submit(env, serializer, producer, job_id):
    topic = env.topic("requests")
    record = {
        "job_id": job_id,
        "name": "from python",
        "user": "svc-python",
        "grouping": "dag1",
        "grouping_instance": "run-1",
        "cluster_criteria": [{"tags": ["env:nowhere"]}, {"tags": ["env:test", "spark:3.5"]}],
        "command_criterion": {"tags": ["type:echo"]},
        "arguments": ["--date", "2024-05-01"],
        "environment": {"LANG": "C"},
        "timeout_ms": 3600000,
        "metadata": {"origin": "python"},
        "submitted_at": int(time.time() * 1000),
    }
    acks = []
    producer.produce(topic, key=job_id.encode(),
                     value=serializer(record, SerializationContext(topic, MessageField.VALUE)),
                     on_delivery=lambda err, msg: acks.append((err, msg.partition())))
    assert producer.flush(15) == 0, "not acknowledged"
    assert acks and acks[0][0] is None, acks
    return record, acks[0][1]


def routed(env, registry, job_id, timeout=30):
    """The RoutedJob for job_id on the cluster topic, decoded with Python's AvroDeserializer."""
    topic = env.topic("cluster.local1")
    env.wait_topic(topic)
    de = AvroDeserializer(registry)
    msgs = env.consume_all(topic, expect=lambda ms: any(m.key() == job_id.encode() for m in ms),
                           timeout=timeout)
    mine = [m for m in msgs if m.key() == job_id.encode()]
    assert len(mine) == 1, f"{len(mine)} RoutedJobs for {job_id}"
    return de(mine[0].value(), SerializationContext(topic, MessageField.VALUE))


def test_python_record_is_routed(env, registry, serializer, producer):
    sent, _ = python_submit(env, serializer, producer, "py-job-1")
    st = env.wait_status("py-job-1", "RESOLVED")
    assert st["cluster"] == "local1" and st["command"] == "echo", st
    assert "criterion #2" in st["message"], st   # the fallback criterion matched
    rj = routed(env, registry, "py-job-1")
    req = rj["request"]
    for k in ("job_id", "name", "user", "grouping", "grouping_instance", "arguments",
              "environment", "timeout_ms", "metadata"):
        assert req[k] == sent[k], (k, req[k], sent[k])
    assert [c["tags"] for c in req["cluster_criteria"]] == [["env:nowhere"], ["env:test", "spark:3.5"]]
    assert rj["cluster_name"] == "local1" and rj["command_name"] == "echo"


def test_same_as_switchyard_submit(env, registry, serializer, producer):
    python_submit(env, serializer, producer, "py-job-2")
    r = env.cli("submit", "--job-id", "cli-job-2", "--name", "from python", "--user", "svc-python",
                "--grouping", "dag1", "--grouping-instance", "run-1",
                "--cluster-tags", "env:nowhere", "--cluster-tags", "env:test,spark:3.5",
                "--command-tags", "type:echo", "--env", "LANG=C", "--meta", "origin=python",
                "--timeout", "1h", "--", "--date", "2024-05-01")
    assert r.stdout.decode().strip() == "cli-job-2"
    a, b = routed(env, registry, "py-job-2"), routed(env, registry, "cli-job-2")
    for k in ("cluster_id", "cluster_name", "backend_kind", "command_id", "command_name",
              "command_spec", "rationale"):
        assert a[k] == b[k], (k, a[k], b[k])
    ra, rb = dict(a["request"]), dict(b["request"])
    for k in ("job_id", "submitted_at"):
        ra.pop(k), rb.pop(k)
    assert ra == rb, (ra, rb)


def test_same_partition_so_duplicate(env, registry, serializer, producer):
    # the partition Python's murmur2_random picks is the one `switchyard submit` picks
    for i in range(12):
        job_id = f"py-part-{i}"
        _, p = python_submit(env, serializer, producer, job_id)
        r = env.cli("submit", "--json", "--job-id", job_id, "--cluster-tags", "env:test",
                    "--command-tags", "type:echo")
        assert json.loads(r.stdout)["partition"] == p, (job_id, p, r.stdout)
    # so the router's duplicate guard sees the CLI's resubmission of a Python job: no 2nd run
    python_submit(env, serializer, producer, "py-job-3")
    env.wait_status("py-job-3", "RESOLVED")
    r = env.cli("submit", "--wait", "--wait-timeout", "5s", "--job-id", "py-job-3",
                "--cluster-tags", "env:test", "--command-tags", "type:echo", check=False)
    err = r.stderr.decode()
    assert r.returncode == 13, (r.returncode, err)   # no worker here: still RESOLVED
    assert "this submission; following the run already routed" in err, err
    msgs = env.consume_all(env.topic("cluster.local1"), timeout=5)
    assert sum(1 for m in msgs if m.key() == b"py-job-3") == 1


def main():
    env = sylib.Env("clipy")
    runner = sylib.Runner()
    log = f"/tmp/{env.ns}-router.log"
    try:
        setup(env)
        env.start_router("r1", log=log)
        registry, serializer, producer = python_producer()
        runner.run(test_python_record_is_routed, env, registry, serializer, producer)
        runner.run(test_same_as_switchyard_submit, env, registry, serializer, producer)
        runner.run(test_same_partition_so_duplicate, env, registry, serializer, producer)
    finally:
        env.close()
    if runner.failed and os.path.exists(log):
        print(open(log).read()[-4000:])
    elif os.path.exists(log):
        os.remove(log)
    runner.done()


if __name__ == "__main__":
    main()
