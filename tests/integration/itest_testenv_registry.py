"""itest_testenv_registry: the test environment's Schema Registry answers Confluent's REST API
at SWITCHYARD_SCHEMA_REGISTRY_URL the way our codec and the Confluent clients use it: register
(idempotent), fetch by id, versions and latest, lookup, BACKWARD compatibility by default, the
Confluent error codes, subject deletion — a record framed in the Confluent wire format
(0x00 + 4-byte id + Avro) decodes with the schema fetched by its id, and Confluent's own Python
client (SchemaRegistryClient, AvroSerializer/AvroDeserializer) works against it unchanged."""
import io
import json
import os
import struct
import sys
import uuid

import fastavro
import requests
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

URL = os.environ["SWITCHYARD_SCHEMA_REGISTRY_URL"].rstrip("/")
CT = {"Content-Type": "application/vnd.schemaregistry.v1+json"}
SUBJECT = f"itest-testenv-{uuid.uuid4().hex[:8]}-value"

V1 = {"type": "record", "name": "JobStatus", "namespace": "io.switchyard.itest",
      "fields": [{"name": "job_id", "type": "string"}, {"name": "state", "type": "string"}]}
V2 = {**V1, "fields": V1["fields"] + [{"name": "attempt", "type": "int", "default": 1}]}
BREAKING = {**V1, "fields": V1["fields"] + [{"name": "cluster", "type": "string"}]}


def call(method, path, body=None, want=200):
    r = requests.request(method, URL + path, headers=CT, timeout=10,
                         data=json.dumps(body) if body is not None else None)
    assert r.status_code == want, f"{method} {path}: HTTP {r.status_code}, wanted {want}: {r.text}"
    return r.json()


def register(schema, want=200):
    return call("POST", f"/subjects/{SUBJECT}/versions", {"schema": json.dumps(schema)}, want)


def main():
    assert isinstance(call("GET", "/subjects"), list)
    assert call("GET", "/config")["compatibilityLevel"] == "BACKWARD"

    id1 = register(V1)["id"]
    assert register(V1)["id"] == id1, "registering the same schema again must return its id"
    got = call("GET", f"/schemas/ids/{id1}")
    assert json.loads(got["schema"]) == V1, got
    assert got.get("schemaType", "AVRO") == "AVRO"

    id2 = register(V2)["id"]
    assert id2 != id1
    assert call("GET", f"/subjects/{SUBJECT}/versions") == [1, 2]
    latest = call("GET", f"/subjects/{SUBJECT}/versions/latest")
    assert (latest["subject"], latest["version"], latest["id"]) == (SUBJECT, 2, id2), latest
    found = call("POST", f"/subjects/{SUBJECT}", {"schema": json.dumps(V1)})
    assert (found["version"], found["id"]) == (1, id1), found
    assert SUBJECT in call("GET", "/subjects")

    # BACKWARD: a new field without a default cannot read old data.
    err = register(BREAKING, want=409)
    assert err["error_code"] == 409, err
    assert call("POST", f"/compatibility/subjects/{SUBJECT}/versions/latest",
                {"schema": json.dumps(BREAKING)})["is_compatible"] is False
    assert call("GET", "/schemas/ids/987654321", want=404)["error_code"] == 40403
    assert call("GET", "/subjects/itest-no-such-subject/versions/latest",
                want=404)["error_code"] == 40401

    # Confluent wire format: magic byte 0, the schema id (big endian), the Avro binary body.
    record = {"job_id": "job-1", "state": "RUNNING", "attempt": 2}
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(V2), record)
    framed = b"\x00" + struct.pack(">I", id2) + body.getvalue()
    magic, schema_id = framed[0], struct.unpack(">I", framed[1:5])[0]
    assert magic == 0
    writer = fastavro.parse_schema(json.loads(call("GET", f"/schemas/ids/{schema_id}")["schema"]))
    assert fastavro.schemaless_reader(io.BytesIO(framed[5:]), writer) == record

    assert call("DELETE", f"/subjects/{SUBJECT}") == [1, 2]
    assert SUBJECT not in call("GET", "/subjects")
    confluent_client()
    print("itest_testenv_registry: ok")


def confluent_client():
    """Confluent's client, as a Python peer of ours would use it."""
    topic = SUBJECT[: -len("-value")] + "-peer"
    client = SchemaRegistryClient({"url": URL})
    sid = client.register_schema(f"{topic}-value", Schema(json.dumps(V1), "AVRO"))
    assert json.loads(client.get_schema(sid).schema_str) == V1
    latest = client.get_latest_version(f"{topic}-value")
    assert (latest.schema_id, latest.version) == (sid, 1), latest
    ctx = SerializationContext(topic, MessageField.VALUE)
    serialize = AvroSerializer(client, json.dumps(V2))  # auto-registers V2 as version 2
    record = {"job_id": "job-2", "state": "SUCCEEDED", "attempt": 3}
    framed = serialize(record, ctx)
    assert framed[0] == 0 and struct.unpack(">I", framed[1:5])[0] != sid
    assert AvroDeserializer(client)(framed, ctx) == record
    assert client.get_versions(f"{topic}-value") == [1, 2]
    client.delete_subject(f"{topic}-value", permanent=False)


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"itest_testenv_registry: FAILED: {e}", file=sys.stderr)
        raise
