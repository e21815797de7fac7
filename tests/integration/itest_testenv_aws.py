"""itest_testenv_aws: the test environment's AWS endpoint (moto + tests/testenv/aws_harness.py)
does what the worker tests rely on: EMR job flows and steps whose states the control API moves
(with FailureDetails), EMR's own step rules (next step starts, ActionOnFailure), CancelSteps,
EMR on EKS job runs (idempotent clientToken, states moved with failure reasons), injected
throttling / 5xx / delays that boto3 really sees, call counting, and SigV4 verification that
refuses a wrong secret. Addresses and credentials come from the environment testenv exports."""
import os
import sys
import time
import uuid

import boto3
import botocore.exceptions
import requests
from botocore.config import Config

CONTROL = os.environ["SY_AWS_CONTROL_URL"]
NO_RETRY = Config(retries={"mode": "standard", "total_max_attempts": 1})
TAG = uuid.uuid4().hex[:8]


def control(method, path, body=None):
    r = requests.request(method, CONTROL + path, json=body, timeout=10)
    assert r.status_code == 200, f"{method} {path}: HTTP {r.status_code} {r.text}"
    return r.json()


def client(service, **kw):
    # Endpoint, region and keys from AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, ...
    return boto3.client(service, **kw)


def expect_error(fn, code, status):
    try:
        fn()
    except botocore.exceptions.ClientError as e:
        got = (e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"])
        assert got == (code, status), f"expected {code}/HTTP {status}, got {got}: {e}"
        return e
    raise AssertionError(f"expected {code}/HTTP {status}, the call succeeded")


def step(name, action="CONTINUE"):
    return {"Name": name, "ActionOnFailure": action,
            "HadoopJarStep": {"Jar": "command-runner.jar", "Args": ["spark-submit", "job.py"]}}


def states(emr, cluster_id):
    return {s["Name"]: s["Status"]["State"] for s in
            emr.list_steps(ClusterId=cluster_id)["Steps"]}


def test_emr_steps(emr):
    cluster_id = emr.run_job_flow(
        Name=f"itest-{TAG}", ReleaseLabel="emr-6.15.0", JobFlowRole="EMR_EC2_DefaultRole",
        ServiceRole="EMR_DefaultRole",
        Instances={"InstanceCount": 1, "MasterInstanceType": "m5.xlarge",
                   "KeepJobFlowAliveWhenNoSteps": True})["JobFlowId"]
    ids = emr.add_job_flow_steps(JobFlowId=cluster_id,
                                 Steps=[step("a"), step("b"), step("c")])["StepIds"]
    assert states(emr, cluster_id) == {"a": "RUNNING", "b": "PENDING", "c": "PENDING"}
    pending = emr.list_steps(ClusterId=cluster_id, StepStates=["PENDING"])["Steps"]
    assert sorted(s["Id"] for s in pending) == sorted(ids[1:])

    # a completes: b starts, as on EMR (one step at a time).
    control("POST", f"/control/emr/steps/{cluster_id}/{ids[0]}/state", {"state": "COMPLETED"})
    a = emr.describe_step(ClusterId=cluster_id, StepId=ids[0])["Step"]["Status"]
    assert a["State"] == "COMPLETED" and "EndDateTime" in a["Timeline"], a
    assert states(emr, cluster_id) == {"a": "COMPLETED", "b": "RUNNING", "c": "PENDING"}

    # b fails with details (ActionOnFailure CONTINUE): c starts.
    control("POST", f"/control/emr/steps/{cluster_id}/{ids[1]}/state",
            {"state": "FAILED", "reason": "Step failed", "message": "exit code 1",
             "log_file": f"s3://logs/{cluster_id}/steps/{ids[1]}/stderr.gz"})
    b = emr.describe_step(ClusterId=cluster_id, StepId=ids[1])["Step"]["Status"]
    assert b["State"] == "FAILED"
    assert b["FailureDetails"] == {"Reason": "Step failed", "Message": "exit code 1",
                                   "LogFile": f"s3://logs/{cluster_id}/steps/{ids[1]}/stderr.gz"}, b
    listed = {s["Id"]: s for s in emr.list_steps(ClusterId=cluster_id)["Steps"]}
    assert listed[ids[1]]["Status"]["FailureDetails"]["Message"] == "exit code 1"
    assert states(emr, cluster_id)["c"] == "RUNNING"

    # CancelSteps: a running step (delay 0: straight to CANCELLED), a pending one, a finished
    # one (refused), an unknown id (refused).
    d, e = emr.add_job_flow_steps(JobFlowId=cluster_id, Steps=[step("d"), step("e")])["StepIds"]
    assert states(emr, cluster_id)["d"] == "PENDING"
    info = emr.cancel_steps(ClusterId=cluster_id, StepIds=[ids[2], e, ids[0], "s-NOSUCHSTEP"],
                            StepCancellationOption="SEND_INTERRUPT")["CancelStepsInfoList"]
    status = {i["StepId"]: i["Status"] for i in info}
    assert status == {ids[2]: "SUBMITTED", e: "SUBMITTED", ids[0]: "FAILED",
                      "s-NOSUCHSTEP": "FAILED"}, info
    assert states(emr, cluster_id) == {"a": "COMPLETED", "b": "FAILED", "c": "CANCELLED",
                                       "d": "RUNNING", "e": "CANCELLED"}

    # A running step can stay CANCEL_PENDING until the test says otherwise.
    control("POST", "/control/emr/config", {"cancel_delay_ms": -1})
    try:
        emr.cancel_steps(ClusterId=cluster_id, StepIds=[d])
        assert states(emr, cluster_id)["d"] == "CANCEL_PENDING"
        control("POST", f"/control/emr/steps/{cluster_id}/{d}/state", {"state": "CANCELLED"})
        assert states(emr, cluster_id)["d"] == "CANCELLED"
    finally:
        control("POST", "/control/emr/config", {"cancel_delay_ms": 0})
    cluster = emr.describe_cluster(ClusterId=cluster_id)["Cluster"]["Status"]["State"]
    assert cluster == "WAITING", cluster

    # ActionOnFailure CANCEL_AND_WAIT cancels the steps behind the failed one.
    f, g = emr.add_job_flow_steps(JobFlowId=cluster_id,
                                  Steps=[step("f", "CANCEL_AND_WAIT"), step("g")])["StepIds"]
    control("POST", f"/control/emr/steps/{cluster_id}/{f}/state", {"state": "FAILED"})
    assert states(emr, cluster_id)["g"] == "CANCELLED"

    # CancelSteps on an unknown cluster is EMR's InvalidRequestException.
    expect_error(lambda: emr.cancel_steps(ClusterId="j-NOSUCHCLUSTER", StepIds=[d]),
                 "InvalidRequestException", 400)
    return cluster_id


def test_emr_limits(emr):
    cluster_id = emr.run_job_flow(
        Name=f"itest-limits-{TAG}", ReleaseLabel="emr-6.15.0", JobFlowRole="EMR_EC2_DefaultRole",
        ServiceRole="EMR_DefaultRole",
        Instances={"InstanceCount": 1, "MasterInstanceType": "m5.xlarge",
                   "KeepJobFlowAliveWhenNoSteps": True})["JobFlowId"]
    for i in range(0, 256, 64):
        emr.add_job_flow_steps(JobFlowId=cluster_id,
                               Steps=[step(f"s{i + j}") for j in range(64)])
    expect_error(lambda: emr.add_job_flow_steps(JobFlowId=cluster_id, Steps=[step("one-more")]),
                 "ValidationException", 400)
    emr.terminate_job_flows(JobFlowIds=[cluster_id])
    expect_error(lambda: emr.add_job_flow_steps(JobFlowId=cluster_id, Steps=[step("late")]),
                 "ValidationException", 400)


def test_faults(emr, cluster_id):
    emr_once = client("emr", config=NO_RETRY)
    control("POST", "/control/faults", {"service": "emr", "operation": "ListSteps",
                                        "kind": "throttle", "count": 1})
    expect_error(lambda: emr_once.list_steps(ClusterId=cluster_id), "ThrottlingException", 400)
    emr_once.list_steps(ClusterId=cluster_id)  # the rule fired once and is spent

    # boto3's own retry absorbs one throttle: the call succeeds on its second attempt.
    control("POST", "/control/faults", {"service": "elasticmapreduce", "operation": "ListSteps",
                                        "kind": "throttle", "count": 1})
    r = emr.list_steps(ClusterId=cluster_id)
    assert r["ResponseMetadata"]["RetryAttempts"] == 1, r["ResponseMetadata"]

    control("POST", "/control/faults", {"service": "emr", "operation": "DescribeCluster",
                                        "kind": "error", "status": 503, "count": 1})
    expect_error(lambda: emr_once.describe_cluster(ClusterId=cluster_id), "ServiceUnavailable",
                 503)
    control("POST", "/control/faults", {"service": "emr", "operation": "DescribeCluster",
                                        "kind": "delay", "delay_ms": 400, "count": 1})
    t0 = time.monotonic()
    emr_once.describe_cluster(ClusterId=cluster_id)
    assert time.monotonic() - t0 >= 0.4
    # skip: the first matching call passes, the second fails.
    control("POST", "/control/faults", {"service": "emr", "operation": "DescribeCluster",
                                        "kind": "error", "status": 500, "skip": 1, "count": 1})
    emr_once.describe_cluster(ClusterId=cluster_id)
    expect_error(lambda: emr_once.describe_cluster(ClusterId=cluster_id), "InternalFailure", 500)
    rules = control("GET", "/control/faults")["rules"]
    assert all(r["fired"] == r["count"] for r in rules), rules
    control("DELETE", "/control/faults")
    assert control("GET", "/control/faults")["rules"] == []


def test_emr_containers(eks):
    vc = eks.create_virtual_cluster(
        name=f"itest-{TAG}",
        containerProvider={"id": "eks-itest", "type": "EKS",
                           "info": {"eksInfo": {"namespace": f"ns-{TAG}"}}})["id"]
    req = {"virtualClusterId": vc, "executionRoleArn": "arn:aws:iam::123456789012:role/job",
           "releaseLabel": "emr-6.15.0-latest",
           "jobDriver": {"sparkSubmitJobDriver": {"entryPoint": "s3://code/job.py",
                                                  "entryPointArguments": ["--day", "1"]}}}
    run1 = eks.start_job_run(name="job-1", clientToken=f"job-1-attempt-1-{TAG}", **req)["id"]
    again = eks.start_job_run(name="job-1", clientToken=f"job-1-attempt-1-{TAG}", **req)["id"]
    assert again == run1, "StartJobRun with the same clientToken must return the same job run"
    run2 = eks.start_job_run(name="job-2", clientToken=f"job-2-attempt-1-{TAG}", **req)["id"]
    run3 = eks.start_job_run(name="job-3", clientToken=f"job-3-attempt-1-{TAG}", **req)["id"]
    assert len({run1, run2, run3}) == 3
    assert eks.describe_job_run(virtualClusterId=vc, id=run1)["jobRun"]["state"] == "RUNNING"

    control("POST", f"/control/emr-containers/jobruns/{vc}/{run1}/state", {"state": "COMPLETED"})
    j1 = eks.describe_job_run(virtualClusterId=vc, id=run1)["jobRun"]
    assert j1["state"] == "COMPLETED" and "finishedAt" in j1, j1
    control("POST", f"/control/emr-containers/jobruns/{vc}/{run2}/state",
            {"state": "FAILED", "failure_reason": "USER_ERROR",
             "state_details": "Driver pod exited with code 1"})
    j2 = eks.describe_job_run(virtualClusterId=vc, id=run2)["jobRun"]
    assert (j2["state"], j2["failureReason"], j2["stateDetails"]) == \
        ("FAILED", "USER_ERROR", "Driver pod exited with code 1"), j2
    eks.cancel_job_run(virtualClusterId=vc, id=run3)
    assert eks.describe_job_run(virtualClusterId=vc, id=run3)["jobRun"]["state"] == "CANCELLED"
    listed = eks.list_job_runs(virtualClusterId=vc, states=["FAILED"])["jobRuns"]
    assert [j["id"] for j in listed] == [run2], listed

    # A REST service is throttled with HTTP 429.
    once = client("emr-containers", config=NO_RETRY)
    control("POST", "/control/faults", {"service": "emr-containers", "operation": "DescribeJobRun",
                                        "kind": "throttle", "count": 1})
    expect_error(lambda: once.describe_job_run(virtualClusterId=vc, id=run1),
                 "ThrottlingException", 429)
    # The control API refuses states and reasons AWS does not have.
    r = requests.post(f"{CONTROL}/control/emr-containers/jobruns/{vc}/{run1}/state",
                      json={"state": "FAILED", "failure_reason": "BAD_LUCK"}, timeout=10)
    assert r.status_code == 400, r.text
    return vc, run1


def test_calls(expected_min):
    calls = control("GET", "/control/calls")
    for key, n in expected_min.items():
        assert calls["calls"].get(key, 0) >= n, (key, calls)
    assert calls["faults"].get("elasticmapreduce.ListSteps") == 2, calls
    control("POST", "/control/reset-calls")
    assert control("GET", "/control/calls")["total"] == 0


def test_auth(vc, run1):
    assert control("POST", "/control/auth", {"enabled": True})["enabled"] is True
    try:
        emr = client("emr")
        emr.list_clusters()
        client("emr-containers").describe_job_run(virtualClusterId=vc, id=run1)  # signed GET
        arn = client("sts").get_caller_identity()["Arn"]
        assert arn.endswith(":user/switchyard-test"), arn
        bad = {"aws_access_key_id": os.environ["AWS_ACCESS_KEY_ID"],
               "aws_secret_access_key": "not-" + os.environ["AWS_SECRET_ACCESS_KEY"],
               "config": NO_RETRY}
        e = expect_error(lambda: client("emr", **bad).list_clusters(), "403", 403)
        assert "SignatureDoesNotMatch" in str(e), e
        expect_error(lambda: client("emr-containers", **bad).list_virtual_clusters(), "403", 403)
        unknown = {"aws_access_key_id": "AKIAUNKNOWNKEY000000",
                   "aws_secret_access_key": os.environ["AWS_SECRET_ACCESS_KEY"], "config": NO_RETRY}
        expect_error(lambda: client("emr", **unknown).list_clusters(), "403", 403)
    finally:
        control("POST", "/control/auth", {"enabled": False})
    # Off again: any key is accepted.
    client("emr", aws_access_key_id="AKIAANYTHING", aws_secret_access_key="x").list_clusters()


def test_s3_logs():
    s3 = client("s3")
    bucket = f"itest-{TAG}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="j-1/steps/s-1/stderr.gz", Body=b"log bytes")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="j-1/steps/")["Contents"]]
    assert keys == ["j-1/steps/s-1/stderr.gz"]
    assert s3.get_object(Bucket=bucket, Key=keys[0])["Body"].read() == b"log bytes"
    logs = client("logs")
    group = f"/emr-containers/itest-{TAG}"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="driver/stdout")
    now = int(time.time() * 1000)
    logs.put_log_events(logGroupName=group, logStreamName="driver/stdout",
                        logEvents=[{"timestamp": now, "message": "line 1"},
                                   {"timestamp": now + 1, "message": "line 2"}])
    events = logs.get_log_events(logGroupName=group, logStreamName="driver/stdout",
                                 startFromHead=True)["events"]
    assert [e["message"] for e in events] == ["line 1", "line 2"]


def main():
    assert os.environ.get("AWS_ENDPOINT_URL"), "AWS_ENDPOINT_URL is not set: run under scripts/testenv"
    assert control("GET", "/control/health")["ok"] is True
    control("POST", "/control/reset-calls")
    control("DELETE", "/control/faults")
    emr = client("emr")
    try:
        cluster_id = test_emr_steps(emr)
        test_emr_limits(emr)
        test_faults(emr, cluster_id)
        vc, run1 = test_emr_containers(client("emr-containers"))
        test_calls({"elasticmapreduce.RunJobFlow": 2, "elasticmapreduce.CancelSteps": 3,
                    "elasticmapreduce.AddJobFlowSteps": 9, "emr-containers.StartJobRun": 4})
        test_auth(vc, run1)
        test_s3_logs()
    finally:
        control("DELETE", "/control/faults")
        control("POST", "/control/auth", {"enabled": False})
    print("itest_testenv_aws: ok")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"itest_testenv_aws: FAILED: {e}", file=sys.stderr)
        raise
