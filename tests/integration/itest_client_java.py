"""Interop: the Java example of docs/integrations.md, docs/examples/java/SubmitJob.java (Apache
Kafka client, Apache Avro and Apicurio Registry's Avro serializer, every jar from Maven Central,
our schemas/JobRequest.v1.avsc), compiled with javac and run against the real broker, registry
and router. Its records are routed exactly like `switchyard submit`'s: ACCEPTED + RESOLVED and one
RoutedJob with the same content; a resubmitted job id is answered DUPLICATE and never routed
twice, also across the Java client and `switchyard submit` (same murmur2 partition); without a
registry (Avro single-object encoding) the router routes them too. The doc's excerpts of the file
and the versions it names are checked against the file and tests/testenv/java-client/pom.xml."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import urllib.request
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sylib  # noqa: E402

from confluent_kafka.schema_registry import SchemaRegistryClient  # noqa: E402
from confluent_kafka.schema_registry.avro import AvroDeserializer  # noqa: E402
from confluent_kafka.serialization import MessageField, SerializationContext  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = "docs/examples/java/SubmitJob.java"
DOC = "docs/integrations.md"
POM = "tests/testenv/java-client/pom.xml"
REGISTRY = os.environ["SWITCHYARD_SCHEMA_REGISTRY_URL"]      # the Confluent API (the router's)
CCOMPAT = "/apis/ccompat/v7"
SPEC = '{"local":{"argv":["/bin/echo"]}}'
EXCERPT_MARK = f"<!-- excerpt of {EXAMPLE}, checked by itest_client_java.py -->"


def test_doc_shows_the_file():
    """Every ```java block after EXCERPT_MARK is a run of the example's lines (dedented), and the
    doc names the exact artifacts and versions the test builds with."""
    doc = open(os.path.join(ROOT, DOC)).read()
    src = open(os.path.join(ROOT, EXAMPLE)).read().splitlines()
    blocks = re.findall(re.escape(EXCERPT_MARK) + r"\n```java\n(.*?)```", doc, re.S)
    assert len(blocks) >= 3, f"{DOC}: {len(blocks)} marked excerpts of {EXAMPLE}, expected 3+"
    for block in blocks:
        lines = block.rstrip("\n").split("\n")
        n = len(lines)
        found = any(textwrap.dedent("\n".join(src[i:i + n])) == "\n".join(lines)
                    for i in range(len(src) - n + 1))
        assert found, f"{DOC} shows lines that are not in {EXAMPLE}:\n{block}"
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    pom = ET.parse(os.path.join(ROOT, POM)).getroot()
    for dep in pom.iterfind("m:dependencies/m:dependency", ns):
        coords = ":".join(dep.findtext(f"m:{k}", namespaces=ns)
                          for k in ("groupId", "artifactId", "version"))
        assert f"`{coords}`" in doc, f"{DOC} does not name {coords} ({POM})"


class Java:
    """The example, compiled into a scratch directory, run with the testenv's addresses."""

    def __init__(self):
        # the pinned jars (tests/testenv/java-client/pom.xml): fetched from Maven Central into
        # the testenv cache when the pom changed, else reused as they are
        subprocess.run([os.path.join(ROOT, "scripts", "testenv"), "install"], check=True)
        cache = os.environ.get("SY_TESTENV_CACHE", os.path.join(ROOT, "build", "testenv-cache"))
        self.libs = os.environ.get("SY_JAVA_CLIENT_LIBS", os.path.join(cache, "java-client-libs"))
        assert os.path.isfile(os.path.join(self.libs, ".stamp")), f"no jars in {self.libs}"
        for tool in ("javac", "java"):
            assert shutil.which(tool), f"{tool} not found: scripts/testenv install installs a JDK"
        self.classes = tempfile.mkdtemp(prefix="sy-java-")
        r = subprocess.run(["javac", "-Xlint:all", "-Werror", "-d", self.classes,
                            "-cp", os.path.join(self.libs, "*"), os.path.join(ROOT, EXAMPLE)],
                           capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            self.close()
            raise AssertionError(f"javac {EXAMPLE} failed:\n{r.stdout}{r.stderr}")
        assert REGISTRY.endswith(CCOMPAT), REGISTRY
        # Apicurio's serializer talks to the registry's own API; the router to its Confluent API
        self.registry_url = REGISTRY[:-len(CCOMPAT)] + "/apis/registry/v3"

    def submit(self, env, *job_ids, registry=True):
        """Runs SubmitJob JOB_ID...; returns {job_id: partition} from what it printed."""
        run_env = dict(os.environ, BOOTSTRAP_SERVERS=sylib.BOOTSTRAP, TOPIC=env.topic("requests"),
                       SCHEMA_FILE=os.path.join(ROOT, "schemas", "JobRequest.v1.avsc"),
                       REGISTRY_URL=self.registry_url if registry else "")
        r = subprocess.run(["java", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
                            "-cp", os.pathsep.join([self.classes, os.path.join(self.libs, "*")]),
                            "SubmitJob", *job_ids],
                           env=run_env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, f"SubmitJob exited {r.returncode}:\n{r.stdout}{r.stderr}"
        out = {}
        for line in r.stdout.splitlines():
            job_id, partition, _offset = line.split()
            out[job_id] = int(partition)
        assert sorted(out) == sorted(job_ids), r.stdout
        return out

    def close(self):
        shutil.rmtree(self.classes, ignore_errors=True)


def setup(env):
    # The example asks for env:prod + spark:3.5, then env:prod-dr: only the fallback exists here.
    env.cli("clusters", "add", "dr1", "--kind", "local", "--tags", "env:prod-dr")
    env.cli("commands", "add", "spark", "--tags", "type:spark-submit", "--spec", SPEC)
    env.cli("link", "spark", "dr1")


def events(env, job_id, count, timeout=30):
    """The JobStatus events of job_id on <ns>.status (read_committed), once there are count."""
    key = job_id.encode()
    msgs = env.consume_all(env.topic("status"), timeout=timeout,
                           expect=lambda ms: sum(m.key() == key for m in ms) >= count)
    return [env.decode(m.value()) for m in msgs if m.key() == key]


def routed(env, job_id, timeout=30):
    """Every RoutedJob of job_id on the cluster topic, decoded with Python's AvroDeserializer."""
    topic = env.topic("cluster.dr1")
    env.wait_topic(topic)
    de = AvroDeserializer(SchemaRegistryClient({"url": REGISTRY}))
    msgs = env.consume_all(topic, timeout=timeout,
                           expect=lambda ms: any(m.key() == job_id.encode() for m in ms))
    return [de(m.value(), SerializationContext(topic, MessageField.VALUE))
            for m in msgs if m.key() == job_id.encode()]


def request_record(env, job_id):
    """The raw record SubmitJob wrote for job_id on <ns>.requests."""
    msgs = env.consume_all(env.topic("requests"), timeout=15,
                           expect=lambda ms: any(m.key() == job_id.encode() for m in ms))
    mine = [m for m in msgs if m.key() == job_id.encode()]
    assert mine, f"no record keyed {job_id} on {env.topic('requests')}"
    return mine[0]


def test_java_record_is_routed(env, java):
    java.submit(env, "java-job-1")
    st = env.wait_status("java-job-1", "RESOLVED")
    assert st["cluster"] == "dr1" and st["command"] == "spark", st
    assert "criterion #2" in st["message"], st   # the list order survived: the fallback matched
    kinds = [e["status"] for e in events(env, "java-job-1", 2)]
    assert kinds == ["ACCEPTED", "RESOLVED"], kinds
    rjs = routed(env, "java-job-1")
    assert len(rjs) == 1, f"{len(rjs)} RoutedJobs"
    req = rjs[0]["request"]
    assert (req["name"], req["user"], req["grouping"], req["grouping_instance"]) == \
        ("nightly aggregate", "svc-sales", "sales", "2024-05-01"), req
    assert [c["tags"] for c in req["cluster_criteria"]] == \
        [["env:prod", "spark:3.5"], ["env:prod-dr"]]
    assert req["command_criterion"]["tags"] == ["type:spark-submit"]
    assert req["arguments"] == ["s3://bucket/jobs/aggregate.py", "--date", "2024-05-01"]
    assert req["metadata"] == {"origin": "sales-service"} and req["environment"] == {}
    assert req["timeout_ms"] == 3 * 3600 * 1000
    assert rjs[0]["cluster_name"] == "dr1" and rjs[0]["command_name"] == "spark"
    # the wire format the doc describes: Confluent framing in the value, no headers, the id of
    # one self-contained schema, registered under <topic>-value
    m = request_record(env, "java-job-1")
    value = m.value()
    assert value[0] == 0, value[:5]
    assert not m.headers(), m.headers()
    schema_id = int.from_bytes(value[1:5], "big")
    with urllib.request.urlopen(f"{REGISTRY}/schemas/ids/{schema_id}", timeout=10) as r:
        schema = json.load(r)
    assert not schema.get("references"), schema.get("references")
    assert json.loads(schema["schema"])["name"] == "JobRequest", schema
    with urllib.request.urlopen(f"{REGISTRY}/subjects", timeout=10) as r:
        assert f"{env.topic('requests')}-value" in json.load(r)


def test_same_as_switchyard_submit(env, java):
    java.submit(env, "java-job-2")
    r = env.cli("submit", "--job-id", "cli-job-2", "--name", "nightly aggregate",
                "--user", "svc-sales", "--grouping", "sales", "--grouping-instance", "2024-05-01",
                "--cluster-tags", "env:prod,spark:3.5", "--cluster-tags", "env:prod-dr",
                "--command-tags", "type:spark-submit", "--meta", "origin=sales-service",
                "--timeout", "3h", "--", "s3://bucket/jobs/aggregate.py", "--date", "2024-05-01")
    assert r.stdout.decode().strip() == "cli-job-2"
    (a,), (b,) = routed(env, "java-job-2"), routed(env, "cli-job-2")
    for k in ("cluster_id", "cluster_name", "backend_kind", "command_id", "command_name",
              "command_spec", "rationale"):
        assert a[k] == b[k], (k, a[k], b[k])
    ra, rb = dict(a["request"]), dict(b["request"])
    for k in ("job_id", "submitted_at"):
        ra.pop(k), rb.pop(k)
    assert ra == rb, (ra, rb)


def test_resubmission_is_duplicate(env, java):
    # java-job-1 was routed by test_java_record_is_routed: the same id again, from Java...
    java.submit(env, "java-job-1")
    kinds = [e["status"] for e in events(env, "java-job-1", 3)]
    assert kinds == ["ACCEPTED", "RESOLVED", "DUPLICATE"], kinds
    # ...and from `switchyard submit`, which lands in the same partition: DUPLICATE again
    r = env.cli("submit", "--wait", "--wait-timeout", "5s", "--job-id", "java-job-1",
                "--cluster-tags", "env:prod-dr", "--command-tags", "type:spark-submit",
                check=False)
    err = r.stderr.decode()
    assert r.returncode == 13, (r.returncode, err)   # no worker here: still RESOLVED
    assert "this submission; following the run already routed" in err, err
    kinds = [e["status"] for e in events(env, "java-job-1", 4)]
    assert kinds == ["ACCEPTED", "RESOLVED", "DUPLICATE", "DUPLICATE"], kinds
    msgs = env.consume_all(env.topic("cluster.dr1"), timeout=5)   # all of it, for 5 s
    assert sum(1 for m in msgs if m.key() == b"java-job-1") == 1


def test_same_partition_as_switchyard_submit(env, java):
    ids = [f"java-part-{i}" for i in range(8)]
    parts = java.submit(env, *ids)
    for job_id in ids:
        r = env.cli("submit", "--json", "--job-id", job_id, "--cluster-tags", "env:prod-dr",
                    "--command-tags", "type:spark-submit")
        assert json.loads(r.stdout)["partition"] == parts[job_id], (job_id, parts, r.stdout)


def test_without_registry(env, java):
    java.submit(env, "java-single-1", registry=False)
    assert request_record(env, "java-single-1").value()[:2] == b"\xc3\x01"
    st = env.wait_status("java-single-1", "RESOLVED")
    assert st["cluster"] == "dr1" and st["command"] == "spark", st
    (rj,) = routed(env, "java-single-1")
    assert rj["request"]["arguments"] == ["s3://bucket/jobs/aggregate.py", "--date", "2024-05-01"]


def main():
    runner = sylib.Runner()
    runner.run(test_doc_shows_the_file)
    env = sylib.Env("clijava")
    java = None
    log = f"/tmp/{env.ns}-router.log"
    try:
        java = Java()
        setup(env)
        env.start_router("r1", log=log)
        runner.run(test_java_record_is_routed, env, java)
        runner.run(test_same_as_switchyard_submit, env, java)
        runner.run(test_resubmission_is_duplicate, env, java)
        runner.run(test_same_partition_as_switchyard_submit, env, java)
        runner.run(test_without_registry, env, java)
    finally:
        env.close()
        if java:
            java.close()
    if runner.failed and os.path.exists(log):
        print(open(log).read()[-4000:])
    elif os.path.exists(log):
        os.remove(log)
    runner.done()


if __name__ == "__main__":
    main()
