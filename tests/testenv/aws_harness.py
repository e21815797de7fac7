#!/usr/bin/env python3
"""aws_harness: the AWS endpoint of Switchyard's tests — moto in server mode, in this process,
plus what moto lacks and what tests need to steer it.

What it adds to moto (see tests/testenv/README.md for the control API):
  * EMR CancelSteps (moto has none): PENDING steps become CANCELLED, RUNNING ones CANCEL_PENDING
    and then CANCELLED after a configurable delay (or only when a test moves them).
  * EMR step life cycle: moto never moves a step. Tests move steps through the control API
    (with FailureDetails for FAILED); when a step ends, the next PENDING steps start as EMR
    does (up to StepConcurrencyLevel), ActionOnFailure is honoured, and AddJobFlowSteps is
    refused on a finished cluster or beyond 256 active steps, as EMR refuses it.
  * EMR on EKS: job runs are moved the same way (failureReason, stateDetails); StartJobRun is
    idempotent on clientToken, as in AWS.
  * Faults on request: throttling (HTTP 400 ThrottlingException for JSON 1.1 services, HTTP 429
    for REST ones, S3 SlowDown 503), HTTP 5xx, slow responses — by service, operation,
    probability, count.
  * Calls counted per operation ("elasticmapreduce.ListSteps"), so benchmarks can count AWS
    calls, and a short log of recent requests.
  * SigV4 verification switched on and off at run time (moto's IAM authentication), with an IAM
    user whose access key is the one testenv exports, so signatures really verify.

moto's own server pieces (DomainDispatcherApplication, MotoRequestHandler — what
moto.server.ThreadedMotoServer runs) serve the AWS port here, wrapped in our middleware, so the
harness and the AWS API share moto's in-memory backends. The control API listens on a second
port. Both bind 127.0.0.1 on a free port unless told otherwise; the ports and credentials go to
--ready-file (JSON) once both servers accept connections.
"""

import argparse
import io
import json
import logging
import os
import random
import re
import sys
import threading
import time
import uuid
from urllib.parse import parse_qs, unquote

log = logging.getLogger("aws_harness")

# ---------------------------------------------------------------------------------------------
# Request classification: which service and operation a request to the AWS port is.
# ---------------------------------------------------------------------------------------------

# X-Amz-Target prefixes (JSON protocols) to signing names, for requests that carry no signature.
TARGET_SERVICES = {
    "ElasticMapReduce": "elasticmapreduce",
    "Logs_20140328": "logs",
}

EMR_CONTAINERS_ROUTES = [
    ("POST", re.compile(r"^/virtualclusters/?$"), "CreateVirtualCluster"),
    ("GET", re.compile(r"^/virtualclusters/?$"), "ListVirtualClusters"),
    ("GET", re.compile(r"^/virtualclusters/[^/]+/?$"), "DescribeVirtualCluster"),
    ("DELETE", re.compile(r"^/virtualclusters/[^/]+/?$"), "DeleteVirtualCluster"),
    ("POST", re.compile(r"^/virtualclusters/[^/]+/jobruns/?$"), "StartJobRun"),
    ("GET", re.compile(r"^/virtualclusters/[^/]+/jobruns/?$"), "ListJobRuns"),
    ("GET", re.compile(r"^/virtualclusters/[^/]+/jobruns/[^/]+/?$"), "DescribeJobRun"),
    ("DELETE", re.compile(r"^/virtualclusters/[^/]+/jobruns/[^/]+/?$"), "CancelJobRun"),
]


def _s3_operation(method, path, query, headers):
    """A best-effort S3 operation name from the REST shape of the request (path style)."""
    parts = [p for p in path.split("/") if p]
    if not parts:
        return "ListBuckets" if method == "GET" else method.title() + "Service"
    if len(parts) == 1:  # bucket
        if method == "GET":
            if "uploads" in query:
                return "ListMultipartUploads"
            if "location" in query:
                return "GetBucketLocation"
            return "ListObjectsV2" if query.get("list-type") == ["2"] else "ListObjects"
        if method == "POST" and "delete" in query:
            return "DeleteObjects"
        return {"PUT": "CreateBucket", "DELETE": "DeleteBucket", "HEAD": "HeadBucket"}.get(
            method, method.title() + "Bucket")
    if method == "GET":
        return "ListParts" if "uploadId" in query else "GetObject"
    if method == "HEAD":
        return "HeadObject"
    if method == "PUT":
        if "partNumber" in query:
            return "UploadPart"
        return "CopyObject" if "x-amz-copy-source" in headers else "PutObject"
    if method == "DELETE":
        return "AbortMultipartUpload" if "uploadId" in query else "DeleteObject"
    if method == "POST":
        if "uploads" in query:
            return "CreateMultipartUpload"
        if "uploadId" in query:
            return "CompleteMultipartUpload"
    return method.title() + "Object"


class Call:
    """One request to the AWS port, classified. protocol: json, rest-json, rest-xml, query."""

    def __init__(self, environ):
        self.method = environ.get("REQUEST_METHOD", "GET")
        self.path = unquote(environ.get("PATH_INFO", "/"))
        self.query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items()
                   if k.startswith("HTTP_")}
        self.service = self._service(headers)
        self.target = headers.get("x-amz-target")
        if self.target:
            self.protocol = "json"
            self.operation = self.target.rsplit(".", 1)[-1]
            if self.service == "unknown":
                self.service = TARGET_SERVICES.get(self.target.split(".", 1)[0], "unknown")
        elif self.service == "emr-containers":
            self.protocol = "rest-json"
            self.operation = "Unknown"
            for method, rx, op in EMR_CONTAINERS_ROUTES:
                if method == self.method and rx.match(self.path):
                    self.operation = op
                    break
        elif self.service == "s3":
            self.protocol = "rest-xml"
            self.operation = _s3_operation(self.method, self.path, self.query, headers)
        else:
            self.protocol = "query"
            action = self.query.get("Action", [None])[0]
            ctype = environ.get("CONTENT_TYPE", "")
            if not action and "x-www-form-urlencoded" in ctype:
                body = _read_body(environ)
                action = parse_qs(body.decode("utf-8", "replace")).get("Action", [None])[0]
            self.operation = action or "Unknown"
        self.key = f"{self.service}.{self.operation}"

    @staticmethod
    def _service(headers):
        # SigV4: "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/elasticmapreduce/aws4_request, ..."
        auth = headers.get("authorization", "")
        m = re.search(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/", auth)
        if m:
            return m.group(1).lower()
        return "unknown"


def _read_body(environ):
    """Reads the request body once and puts it back for moto (or our control API)."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > 0:
        body = environ["wsgi.input"].read(length)
    elif environ.get("wsgi.input_terminated"):  # chunked: the server ends the stream for us
        body = environ["wsgi.input"].read()
    else:
        body = b""
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return body


# ---------------------------------------------------------------------------------------------
# Faults and call counting
# ---------------------------------------------------------------------------------------------

SERVICE_ALIASES = {"emr": "elasticmapreduce", "cloudwatch-logs": "logs"}
FAULT_KINDS = ("throttle", "error", "delay")


class Harness:
    """Shared state of the middleware and the control API. Every field is guarded by lock."""

    def __init__(self, seed=None):
        self.lock = threading.Lock()
        self.rules = []
        self.next_rule_id = 1
        self.rng = random.Random(seed)
        self.calls = {}
        self.faults = {}
        self.total = 0
        self.recent = []  # last RECENT_MAX requests, oldest first
        self.emr_config = {"cancel_delay_ms": 0, "schedule_steps": True}
        self.eks_config = {"initial_state": "RUNNING"}
        self.credentials = None  # (access key id, secret) of the harness' IAM user

    RECENT_MAX = 1000

    def add_rule(self, spec):
        kind = spec.get("kind", "throttle")
        if kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {', '.join(FAULT_KINDS)}")
        prob = float(spec.get("probability", 1.0))
        if not 0.0 <= prob <= 1.0:
            raise ValueError("probability must be within [0, 1]")
        count = spec.get("count")
        if count is not None and int(count) < 0:
            raise ValueError("count must be >= 0")
        status = spec.get("status")
        if kind == "error" and status is None:
            status = 500
        if status is not None and not 400 <= int(status) <= 599:
            raise ValueError("status must be an HTTP error status (4xx/5xx)")
        service = spec.get("service")
        rule = {
            "id": 0,
            "service": SERVICE_ALIASES.get(service, service),
            "operation": spec.get("operation"),
            "kind": kind,
            "status": int(status) if status is not None else None,
            "delay_ms": int(spec.get("delay_ms", 0 if kind != "delay" else 1000)),
            "probability": prob,
            "count": int(count) if count is not None else None,
            "skip": int(spec.get("skip", 0)),
            "message": spec.get("message"),
            "fired": 0,
            "seen": 0,
        }
        with self.lock:
            rule["id"] = self.next_rule_id
            self.next_rule_id += 1
            self.rules.append(rule)
        return dict(rule)

    def pick_fault(self, call):
        """Counts the call and returns the fault rule to apply to it, or None."""
        with self.lock:
            self.total += 1
            self.calls[call.key] = self.calls.get(call.key, 0) + 1
            for rule in self.rules:
                if rule["service"] and rule["service"] != call.service:
                    continue
                if rule["operation"] and rule["operation"] != call.operation:
                    continue
                if rule["count"] is not None and rule["fired"] >= rule["count"]:
                    continue
                rule["seen"] += 1
                if rule["seen"] <= rule["skip"]:
                    continue
                if rule["probability"] < 1.0 and self.rng.random() >= rule["probability"]:
                    continue
                rule["fired"] += 1
                if rule["kind"] != "delay":
                    self.faults[call.key] = self.faults.get(call.key, 0) + 1
                return dict(rule)
        return None

    def record(self, call, status, fault):
        with self.lock:
            self.recent.append({"time": time.time(), "service": call.service,
                                "operation": call.operation, "method": call.method,
                                "path": call.path, "status": status,
                                "fault": fault["kind"] if fault else None})
            if len(self.recent) > self.RECENT_MAX:
                del self.recent[: len(self.recent) - self.RECENT_MAX]

    def reset_calls(self):
        with self.lock:
            self.calls, self.faults, self.total, self.recent = {}, {}, 0, []


def _fault_response(call, rule):
    """(status, headers, body) of an injected failure, shaped like the service's own errors."""
    request_id = str(uuid.uuid4())
    if rule["kind"] == "throttle":
        code = "SlowDown" if call.protocol == "rest-xml" else (
            "Throttling" if call.protocol == "query" else "ThrottlingException")
        default_status = {"json": 400, "rest-json": 429, "rest-xml": 503, "query": 400}
        status = rule["status"] or default_status[call.protocol]
        message = rule["message"] or "Rate exceeded"
    else:
        status = rule["status"]
        code = {500: "InternalFailure", 502: "BadGateway", 503: "ServiceUnavailable",
                504: "GatewayTimeout"}.get(status, "InternalFailure")
        message = rule["message"] or f"injected HTTP {status}"
    headers = [("x-amzn-RequestId", request_id)]
    if call.protocol == "json":
        headers.append(("Content-Type", "application/x-amz-json-1.1"))
        body = json.dumps({"__type": code, "message": message})
    elif call.protocol == "rest-json":
        headers += [("Content-Type", "application/json"), ("x-amzn-ErrorType", code)]
        body = json.dumps({"message": message})
    elif call.protocol == "rest-xml":
        headers.append(("Content-Type", "application/xml"))
        body = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code>"
                f"<Message>{message}</Message><RequestId>{request_id}</RequestId></Error>")
    else:
        headers.append(("Content-Type", "text/xml"))
        body = (f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>"
                f"<Message>{message}</Message></Error><RequestId>{request_id}</RequestId>"
                f"</ErrorResponse>")
    return status, headers, body.encode()


class Middleware:
    """WSGI middleware in front of moto: counts, injects faults, runs the EMR step scheduler
    after the EMR calls that can change which steps run."""

    EMR_SCHEDULING_OPS = {"RunJobFlow", "AddJobFlowSteps", "CancelSteps", "ModifyCluster"}

    def __init__(self, app, harness, emr):
        self.app = app
        self.harness = harness
        self.emr = emr

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO", "").startswith("/moto-api"):
            return self.app(environ, start_response)
        call = Call(environ)
        fault = self.harness.pick_fault(call)
        if fault:
            if fault["delay_ms"]:
                time.sleep(fault["delay_ms"] / 1000.0)
            if fault["kind"] != "delay":
                status, headers, body = _fault_response(call, fault)
                log.info("fault %s on %s -> HTTP %d", fault["kind"], call.key, status)
                self.harness.record(call, status, fault)
                start_response(f"{status} Injected", headers + [("Content-Length", str(len(body)))])
                return [body]
        captured = {}
        # the cluster an EMR call names: only its steps can change (scheduling every cluster
        # after every call made AddJobFlowSteps O(all steps) — too slow with 10,000 in flight)
        cluster_id = None
        if call.service == "elasticmapreduce" and call.operation in self.EMR_SCHEDULING_OPS:
            try:
                req = json.loads(_read_body(environ) or b"{}")
                cluster_id = req.get("JobFlowId") or req.get("ClusterId")
            except ValueError:
                cluster_id = None

        def _start_response(status, headers, exc_info=None):
            captured["status"] = int(status.split(" ", 1)[0])
            return start_response(status, headers, exc_info)

        # moto's app returns a fully built response; run it before the scheduler so a caller
        # that reads the step list right after AddJobFlowSteps sees the steps already started.
        result = list(self.app(environ, _start_response))
        status = captured.get("status", 0)
        if call.service == "elasticmapreduce" and call.operation in self.EMR_SCHEDULING_OPS \
                and status < 400:
            try:
                if cluster_id:
                    self.emr.schedule_one(cluster_id)
                else:
                    self.emr.schedule_all()
            except Exception:  # never break the AWS call over our bookkeeping
                log.exception("EMR step scheduler failed")
        self.harness.record(call, status, fault)
        return result


# ---------------------------------------------------------------------------------------------
# EMR: step states, CancelSteps, scheduling
# ---------------------------------------------------------------------------------------------

STEP_ACTIVE = {"PENDING", "RUNNING", "CANCEL_PENDING"}
STEP_TERMINAL = {"COMPLETED", "CANCELLED", "FAILED", "INTERRUPTED"}
STEP_STATES = STEP_ACTIVE | STEP_TERMINAL
CLUSTER_FINISHED = {"TERMINATING", "TERMINATED", "TERMINATED_WITH_ERRORS"}
CLUSTER_STATES = {"STARTING", "BOOTSTRAPPING", "RUNNING", "WAITING"} | CLUSTER_FINISHED
MAX_ACTIVE_STEPS = 256


class Emr:
    """EMR additions, working on moto's own backend objects."""

    def __init__(self, harness, default_region):
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.core.utils import utcnow
        from moto.emr import models as emr_models
        from moto.emr.exceptions import InvalidRequestException, ValidationException

        self.harness = harness
        self.models = emr_models
        self.utcnow = utcnow
        self.account = DEFAULT_ACCOUNT_ID
        self.region = default_region
        self.lock = threading.RLock()
        self.InvalidRequestException = InvalidRequestException
        self.ValidationException = ValidationException
        self._patch()

    def backend(self, account=None, region=None):
        return self.models.emr_backends[account or self.account][region or self.region]

    def _patch(self):
        emr = self
        models = self.models

        # FailureDetails (Reason, Message, LogFile) of FAILED steps: StepStatus carries them in
        # DescribeStep and ListSteps; moto's Step has no such field.
        orig_status = models.Step.status.fget

        def step_status(step):
            status = orig_status(step)
            details = getattr(step, "sy_failure_details", None)
            if details:
                status["FailureDetails"] = details
            return status

        models.Step.status = property(step_status)

        # AddJobFlowSteps refusals that EMR has and moto lacks.
        orig_add = models.ElasticMapReduceBackend.add_job_flow_steps

        def add_job_flow_steps(backend, job_flow_id, steps):
            with emr.lock:
                cluster = backend.describe_cluster(job_flow_id)
                if cluster.state in CLUSTER_FINISHED:
                    raise emr.ValidationException(
                        "A job flow that is shutting down, terminated, or finished may not be "
                        "modified.")
                active = sum(1 for s in cluster.steps if s.state in STEP_ACTIVE)
                if active + len(steps) > MAX_ACTIVE_STEPS:
                    raise emr.ValidationException(
                        "Maximum number of active steps(State = 'Running', 'Pending' or "
                        "'Cancel_Pending') for cluster exceeded.")
                return orig_add(backend, job_flow_id, steps)

        models.ElasticMapReduceBackend.add_job_flow_steps = add_job_flow_steps

        # CancelSteps, served through moto's own dispatch (so auth, errors and serialization
        # are moto's): a method named after the action on the response class is all it takes.
        from moto.core.responses import ActionResult
        from moto.emr.responses import ElasticMapReduceResponse

        def cancel_steps(response):
            cluster_id = response._get_param("ClusterId")
            step_ids = response._get_param("StepIds", []) or []
            option = response._get_param("StepCancellationOption") or "SEND_INTERRUPT"
            if option not in ("SEND_INTERRUPT", "TERMINATE_PROCESS"):
                raise emr.ValidationException(
                    f"StepCancellationOption {option} is not SEND_INTERRUPT or TERMINATE_PROCESS")
            if len(step_ids) > MAX_ACTIVE_STEPS:
                raise emr.InvalidRequestException("At most 256 step ids can be cancelled at once.")
            cluster = response.backend.describe_cluster(cluster_id)
            info = emr.cancel(cluster, step_ids, option)
            return ActionResult({"CancelStepsInfoList": info})

        ElasticMapReduceResponse.cancel_steps = cancel_steps

    @staticmethod
    def _find_step(cluster, step_id):
        for step in cluster.steps:
            if step.id == step_id:
                return step
        return None

    def cancel(self, cluster, step_ids, option):
        info = []
        delay_ms = self.harness.emr_config["cancel_delay_ms"]
        with self.lock:
            for step_id in step_ids:
                step = self._find_step(cluster, step_id)
                if step is None:
                    info.append({"StepId": step_id, "Status": "FAILED",
                                 "Reason": f"Step {step_id} does not exist in cluster {cluster.id}."})
                    continue
                if step.state == "PENDING":
                    self._set_step(cluster, step, "CANCELLED", message="Cancelled by user.")
                elif step.state == "RUNNING":
                    if delay_ms == 0:
                        self._set_step(cluster, step, "CANCELLED", message="Cancelled by user.")
                    else:
                        self._set_step(cluster, step, "CANCEL_PENDING")
                        if delay_ms > 0:
                            timer = threading.Timer(delay_ms / 1000.0, self._finish_cancel,
                                                    (cluster, step))
                            timer.daemon = True
                            timer.start()
                elif step.state == "CANCEL_PENDING":
                    pass  # already on its way; EMR accepts the repeat
                else:
                    info.append({"StepId": step_id, "Status": "FAILED",
                                 "Reason": f"Step {step_id} is in state {step.state} and cannot "
                                           f"be cancelled."})
                    continue
                info.append({"StepId": step_id, "Status": "SUBMITTED"})
        return info

    def _finish_cancel(self, cluster, step):
        with self.lock:
            if step.state == "CANCEL_PENDING":
                self._set_step(cluster, step, "CANCELLED", message="Cancelled by user.")
                self.schedule(cluster)

    def _set_step(self, cluster, step, state, reason=None, message=None, log_file=None):
        now = self.utcnow()
        step.state = state
        if state in ("RUNNING", "CANCEL_PENDING") and step.start_date_time is None:
            step.start_date_time = now
        if state in STEP_TERMINAL:
            step.end_date_time = now
        if state == "FAILED":
            details = {}
            if reason:
                details["Reason"] = reason
            if message:
                details["Message"] = message
            if log_file:
                details["LogFile"] = log_file
            step.sy_failure_details = details or None
        else:
            step.sy_failure_details = None
        step.last_state_change_reason = message if state != "FAILED" else (message or reason)

    def move_step(self, cluster_id, step_id, spec, account=None, region=None):
        """Control API: puts a step into spec["state"], then lets EMR's rules follow."""
        state = str(spec.get("state", "")).upper()
        if state not in STEP_STATES:
            raise ValueError(f"state must be one of {', '.join(sorted(STEP_STATES))}")
        backend = self.backend(account, region)
        with self.lock:
            if cluster_id not in backend.clusters:
                raise KeyError(f"no EMR cluster {cluster_id} in {account or self.account}/"
                               f"{region or self.region}")
            cluster = backend.clusters[cluster_id]
            step = self._find_step(cluster, step_id)
            if step is None:
                raise KeyError(f"no step {step_id} in cluster {cluster_id}")
            self._set_step(cluster, step, state, reason=spec.get("reason"),
                           message=spec.get("message"), log_file=spec.get("log_file"))
            if state == "FAILED":
                self._action_on_failure(cluster, step)
            self.schedule(cluster)
            return self.describe_step(cluster, step)

    def _action_on_failure(self, cluster, failed):
        action = failed.action_on_failure or "TERMINATE_CLUSTER"
        if action == "CONTINUE":
            return
        for step in cluster.steps:
            if step is not failed and step.state == "PENDING":
                self._set_step(cluster, step, "CANCELLED",
                               message=f"Cancelled because step {failed.id} failed "
                                       f"(ActionOnFailure {action}).")
        if action in ("TERMINATE_CLUSTER", "TERMINATE_JOB_FLOW"):
            for step in cluster.steps:
                if step.state in ("RUNNING", "CANCEL_PENDING"):
                    self._set_step(cluster, step, "CANCELLED",
                                   message="Cancelled because the cluster terminated.")
            self._set_cluster(cluster, "TERMINATED_WITH_ERRORS",
                              f"Step {failed.id} failed (ActionOnFailure {action}).")

    def _set_cluster(self, cluster, state, message=None):
        cluster.state = state
        if message is not None:
            cluster.last_state_change_reason = message
        if state in CLUSTER_FINISHED:
            cluster.end_datetime = self.utcnow()
            for step in cluster.steps:
                if step.state in STEP_ACTIVE:
                    self._set_step(cluster, step, "CANCELLED",
                                   message="Cancelled because the cluster terminated.")

    def move_cluster(self, cluster_id, spec, account=None, region=None):
        state = str(spec.get("state", "")).upper()
        if state not in CLUSTER_STATES:
            raise ValueError(f"state must be one of {', '.join(sorted(CLUSTER_STATES))}")
        backend = self.backend(account, region)
        with self.lock:
            if cluster_id not in backend.clusters:
                raise KeyError(f"no EMR cluster {cluster_id}")
            cluster = backend.clusters[cluster_id]
            self._set_cluster(cluster, state, spec.get("message"))
            return {"Id": cluster.id, "State": cluster.state}

    def schedule(self, cluster):
        """EMR's step runner, in one pass: start PENDING steps (oldest first) while fewer than
        StepConcurrencyLevel run; an idle cluster is WAITING, or TERMINATED when it was not
        asked to stay alive (KeepJobFlowAliveWhenNoSteps)."""
        if not self.harness.emr_config["schedule_steps"] or cluster.state in CLUSTER_FINISHED:
            return
        with self.lock:
            limit = max(1, int(getattr(cluster, "step_concurrency_level", None) or 1))
            running = sum(1 for s in cluster.steps if s.state in ("RUNNING", "CANCEL_PENDING"))
            for step in sorted(cluster.steps, key=lambda s: s.creation_date_time):
                if running >= limit:
                    break
                if step.state == "PENDING":
                    self._set_step(cluster, step, "RUNNING")
                    running += 1
            for step in cluster.steps:
                if step.state == "RUNNING" and step.start_date_time is None:
                    step.start_date_time = self.utcnow()
            if running:
                cluster.state = "RUNNING"
            elif cluster.state == "RUNNING":
                if cluster.keep_job_flow_alive_when_no_steps:
                    cluster.state = "WAITING"
                else:
                    self._set_cluster(cluster, "TERMINATED", "Steps completed")

    def schedule_one(self, cluster_id):
        from moto.emr.models import emr_backends
        for account, regions in list(emr_backends.items()):
            for region, backend in list(regions.items()):
                cluster = backend.clusters.get(cluster_id)
                if cluster is not None:
                    self.schedule(cluster)

    def schedule_all(self):
        from moto.emr.models import emr_backends
        for account, regions in list(emr_backends.items()):
            for region, backend in list(regions.items()):
                for cluster in list(backend.clusters.values()):
                    self.schedule(cluster)

    def describe_step(self, cluster, step):
        return {"ClusterId": cluster.id, "ClusterState": cluster.state, "Id": step.id,
                "Name": step.name, "State": step.state,
                "FailureDetails": getattr(step, "sy_failure_details", None),
                "StateChangeReason": getattr(step, "last_state_change_reason", None)}

    def get_step(self, cluster_id, step_id, account=None, region=None):
        backend = self.backend(account, region)
        if cluster_id not in backend.clusters:
            raise KeyError(f"no EMR cluster {cluster_id}")
        cluster = backend.clusters[cluster_id]
        step = self._find_step(cluster, step_id)
        if step is None:
            raise KeyError(f"no step {step_id} in cluster {cluster_id}")
        return self.describe_step(cluster, step)


# ---------------------------------------------------------------------------------------------
# EMR on EKS (emr-containers): job-run states, clientToken idempotency
# ---------------------------------------------------------------------------------------------

JOB_RUN_STATES = {"PENDING", "SUBMITTED", "RUNNING", "FAILED", "CANCELLED", "CANCEL_PENDING",
                  "COMPLETED"}
JOB_RUN_TERMINAL = {"FAILED", "CANCELLED", "COMPLETED"}
JOB_RUN_FAILURE_REASONS = {"INTERNAL_ERROR", "USER_ERROR", "VALIDATION_ERROR",
                           "CLUSTER_UNAVAILABLE"}


class EmrContainers:
    def __init__(self, harness, default_region):
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.core.utils import utcnow
        from moto.emrcontainers import models as eks_models

        self.harness = harness
        self.models = eks_models
        self.utcnow = utcnow
        self.account = DEFAULT_ACCOUNT_ID
        self.region = default_region
        self.lock = threading.Lock()
        self._patch()

    def backend(self, account=None, region=None):
        return self.models.emrcontainers_backends[account or self.account][region or self.region]

    def _patch(self):
        eks = self
        orig_start = self.models.EMRContainersBackend.start_job_run

        def start_job_run(backend, name, virtual_cluster_id, client_token, *args, **kwargs):
            # AWS: a repeated clientToken returns the job run it first started.
            with eks.lock:
                if client_token:
                    for job_run in backend.job_runs.values():
                        if job_run.client_token == client_token and \
                                job_run.virtual_cluster_id == virtual_cluster_id:
                            return job_run
                job_run = orig_start(backend, name, virtual_cluster_id, client_token, *args,
                                     **kwargs)
                job_run.state = eks.harness.eks_config["initial_state"]
                return job_run

        self.models.EMRContainersBackend.start_job_run = start_job_run

    def move_job_run(self, virtual_cluster_id, job_run_id, spec, account=None, region=None):
        state = str(spec.get("state", "")).upper()
        if state not in JOB_RUN_STATES:
            raise ValueError(f"state must be one of {', '.join(sorted(JOB_RUN_STATES))}")
        reason = spec.get("failure_reason")
        if reason is not None and reason not in JOB_RUN_FAILURE_REASONS:
            raise ValueError(f"failure_reason must be one of "
                             f"{', '.join(sorted(JOB_RUN_FAILURE_REASONS))}")
        backend = self.backend(account, region)
        job_run = backend.job_runs.get(job_run_id)
        if job_run is None or job_run.virtual_cluster_id != virtual_cluster_id:
            raise KeyError(f"no job run {job_run_id} in virtual cluster {virtual_cluster_id}")
        job_run.state = state
        job_run.failure_reason = reason if state == "FAILED" else None
        job_run.state_details = spec.get("state_details")
        job_run.finished_at = self.utcnow() if state in JOB_RUN_TERMINAL else None
        return {"id": job_run.id, "virtualClusterId": job_run.virtual_cluster_id,
                "state": job_run.state, "failureReason": job_run.failure_reason,
                "stateDetails": job_run.state_details}


# ---------------------------------------------------------------------------------------------
# Authentication (SigV4 verification by moto) and the IAM user whose keys testenv exports
# ---------------------------------------------------------------------------------------------

def patch_sigv4_payload():
    """moto 5.x verifies a request without a body (a REST GET or DELETE: DescribeJobRun,
    ListJobRuns, CancelJobRun) against its parsed parameters instead of the empty payload the
    client signed, so every correct signature on them is refused. Check those against the empty
    body. (Form POSTs — STS, IAM — also reach moto with an empty raw body, their form already
    parsed into the parameters, which is what was signed: they are left alone.)"""
    from moto.iam.access_control import IAMRequestBase

    orig = IAMRequestBase._create_aws_request

    def _create_aws_request(self):
        if self._method in ("GET", "HEAD", "DELETE") and not self._body:
            saved, self._data = self._data, b""
            try:
                return orig(self)
            finally:
                self._data = saved
        return orig(self)

    IAMRequestBase._create_aws_request = _create_aws_request


def set_auth(enabled):
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin

    # moto verifies signatures once it has served INITIAL_NO_AUTH_ACTION_COUNT requests.
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0 if enabled else float("inf")
    ActionAuthenticatorMixin.request_count = 0


def auth_enabled():
    from moto import settings
    return settings.INITIAL_NO_AUTH_ACTION_COUNT != float("inf")


def create_test_user(endpoint, region):
    """An IAM user allowed everything, and its access key: with authentication on, moto only
    accepts signatures made with keys of its own IAM users."""
    import boto3

    iam = boto3.client("iam", endpoint_url=endpoint, region_name=region,
                       aws_access_key_id="AKIAHARNESSBOOTSTRAP", aws_secret_access_key="unused")
    iam.create_user(UserName="switchyard-test")
    iam.put_user_policy(UserName="switchyard-test", PolicyName="allow-all",
                        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
                            {"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    key = iam.create_access_key(UserName="switchyard-test")["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


# ---------------------------------------------------------------------------------------------
# Control API
# ---------------------------------------------------------------------------------------------

class ControlApp:
    """The harness' HTTP JSON API (documented in tests/testenv/README.md)."""

    def __init__(self, harness, emr, eks):
        self.harness = harness
        self.emr = emr
        self.eks = eks
        self.routes = [
            ("GET", r"/control/health", self.health),
            ("GET", r"/control/calls", self.get_calls),
            ("POST", r"/control/reset-calls", self.reset_calls),
            ("GET", r"/control/requests", self.get_requests),
            ("GET", r"/control/faults", self.get_faults),
            ("POST", r"/control/faults", self.add_faults),
            ("DELETE", r"/control/faults", self.clear_faults),
            ("DELETE", r"/control/faults/(?P<rule_id>\d+)", self.delete_fault),
            ("GET", r"/control/auth", self.get_auth),
            ("POST", r"/control/auth", self.post_auth),
            ("GET", r"/control/emr/config", self.get_emr_config),
            ("POST", r"/control/emr/config", self.post_emr_config),
            ("GET", r"/control/emr/steps/(?P<cluster>[^/]+)/(?P<step>[^/]+)", self.get_step),
            ("POST", r"/control/emr/steps/(?P<cluster>[^/]+)/(?P<step>[^/]+)/state",
             self.post_step_state),
            ("POST", r"/control/emr/clusters/(?P<cluster>[^/]+)/state", self.post_cluster_state),
            ("GET", r"/control/emr-containers/config", self.get_eks_config),
            ("POST", r"/control/emr-containers/config", self.post_eks_config),
            ("POST", r"/control/emr-containers/jobruns/(?P<vc>[^/]+)/(?P<run>[^/]+)/state",
             self.post_job_run_state),
        ]
        self.routes = [(m, re.compile("^" + p + "/?$"), f) for m, p, f in self.routes]

    def __call__(self, environ, start_response):
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "/")
        query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        try:
            body = _read_body(environ)
            data = json.loads(body) if body.strip() else {}
            if not isinstance(data, dict):
                raise ValueError("the request body must be a JSON object")
            data = {**query, **data}
            for m, rx, handler in self.routes:
                match = rx.match(path)
                if match and m == method:
                    status, payload = 200, handler(data, **match.groupdict())
                    break
            else:
                allowed = [m for m, rx, _ in self.routes if rx.match(path)]
                status, payload = (405, {"error": f"use {', '.join(allowed)}"}) if allowed else \
                    (404, {"error": f"no route {method} {path}",
                           "routes": [f"{m} {rx.pattern[1:-3]}" for m, rx, _ in self.routes]})
        except KeyError as e:
            status, payload = 404, {"error": str(e.args[0]) if e.args else "not found"}
        except (ValueError, TypeError) as e:
            status, payload = 400, {"error": str(e)}
        except Exception as e:  # report, do not kill the server thread
            log.exception("control %s %s failed", method, path)
            status, payload = 500, {"error": repr(e)}
        out = (json.dumps(payload, default=str, indent=1) + "\n").encode()
        start_response(f"{status} {'OK' if status == 200 else 'Error'}",
                       [("Content-Type", "application/json"), ("Content-Length", str(len(out)))])
        return [out]

    @staticmethod
    def _where(data):
        return {"account": data.get("account_id"), "region": data.get("region")}

    def health(self, data):
        return {"ok": True}

    def get_calls(self, data):
        h = self.harness
        with h.lock:
            return {"total": h.total, "calls": dict(sorted(h.calls.items())),
                    "faults": dict(sorted(h.faults.items()))}

    def reset_calls(self, data):
        self.harness.reset_calls()
        return {"ok": True}

    def get_requests(self, data):
        limit = int(data.get("limit", 100))
        with self.harness.lock:
            return {"requests": self.harness.recent[-limit:] if limit > 0 else []}

    def get_faults(self, data):
        with self.harness.lock:
            return {"rules": [dict(r) for r in self.harness.rules]}

    def add_faults(self, data):
        if "seed" in data:
            with self.harness.lock:
                self.harness.rng.seed(data["seed"])
        specs = data["rules"] if "rules" in data else [data]
        if not isinstance(specs, list):
            raise ValueError("rules must be a list")
        added = [self.harness.add_rule(spec) for spec in specs if spec.keys() - {"seed"}]
        return {"rules": added}

    def clear_faults(self, data):
        with self.harness.lock:
            n = len(self.harness.rules)
            self.harness.rules = []
        return {"removed": n}

    def delete_fault(self, data, rule_id):
        with self.harness.lock:
            before = len(self.harness.rules)
            self.harness.rules = [r for r in self.harness.rules if r["id"] != int(rule_id)]
            if len(self.harness.rules) == before:
                raise KeyError(f"no fault rule {rule_id}")
        return {"removed": 1}

    def get_auth(self, data):
        key_id, _ = self.harness.credentials
        return {"enabled": auth_enabled(), "access_key_id": key_id}

    def post_auth(self, data):
        if not isinstance(data.get("enabled"), bool):
            raise ValueError('body must be {"enabled": true|false}')
        set_auth(data["enabled"])
        log.info("SigV4 verification %s", "on" if data["enabled"] else "off")
        return self.get_auth({})

    def get_emr_config(self, data):
        return dict(self.harness.emr_config)

    def post_emr_config(self, data):
        cfg = self.harness.emr_config
        if "cancel_delay_ms" in data:
            cfg["cancel_delay_ms"] = int(data["cancel_delay_ms"])
        if "schedule_steps" in data:
            cfg["schedule_steps"] = bool(data["schedule_steps"])
        return dict(cfg)

    def get_step(self, data, cluster, step):
        return self.emr.get_step(cluster, step, **self._where(data))

    def post_step_state(self, data, cluster, step):
        return self.emr.move_step(cluster, step, data, **self._where(data))

    def post_cluster_state(self, data, cluster):
        return self.emr.move_cluster(cluster, data, **self._where(data))

    def get_eks_config(self, data):
        return dict(self.harness.eks_config)

    def post_eks_config(self, data):
        if "initial_state" in data:
            state = str(data["initial_state"]).upper()
            if state not in ("PENDING", "SUBMITTED", "RUNNING"):
                raise ValueError("initial_state must be PENDING, SUBMITTED or RUNNING")
            self.harness.eks_config["initial_state"] = state
        return dict(self.harness.eks_config)

    def post_job_run_state(self, data, vc, run):
        return self.eks.move_job_run(vc, run, data, **self._where(data))


# ---------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="AWS endpoint port (0 = any free one)")
    ap.add_argument("--control-port", type=int, default=0, help="control API port (0 = free)")
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--ready-file", help="write ports and credentials here (JSON) when ready")
    ap.add_argument("--auth", action="store_true", help="start with SigV4 verification on")
    ap.add_argument("--seed", type=int, help="seed of the fault-injection random generator")
    ap.add_argument("--verbose", action="store_true", help="log every request")
    args = ap.parse_args()

    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if not args.verbose:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)

    from moto.moto_server.werkzeug_app import (DomainDispatcherApplication, MotoRequestHandler,
                                               create_backend_app)
    from werkzeug.serving import make_server

    harness = Harness(args.seed)
    emr = Emr(harness, args.region)
    eks = EmrContainers(harness, args.region)
    patch_sigv4_payload()
    set_auth(False)

    aws_app = Middleware(DomainDispatcherApplication(create_backend_app), harness, emr)
    # werkzeug's server answers every request with "Connection: close": clients reconnect for
    # each call here, whatever their connection reuse.
    aws = make_server(args.host, args.port, aws_app, threaded=True,
                      request_handler=MotoRequestHandler)
    control = make_server(args.host, args.control_port, ControlApp(harness, emr, eks),
                          threaded=True)
    for srv in (aws, control):
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    aws_url = f"http://{args.host}:{aws.server_port}"
    control_url = f"http://{args.host}:{control.server_port}"

    harness.credentials = create_test_user(aws_url, args.region)
    harness.reset_calls()
    if args.auth:
        set_auth(True)
    log.info("AWS endpoint %s, control API %s, auth %s", aws_url, control_url,
             "on" if args.auth else "off")
    if args.ready_file:
        tmp = args.ready_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"pid": os.getpid(), "aws_url": aws_url, "control_url": control_url,
                       "region": args.region, "access_key_id": harness.credentials[0],
                       "secret_access_key": harness.credentials[1]}, f)
        os.replace(tmp, args.ready_file)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        aws.shutdown()
        control.shutdown()


if __name__ == "__main__":
    main()
