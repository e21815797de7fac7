-- 0002_ledger: the job ledger and the worker roster.
--
-- jobs: one row per job id — the state a worker drives it through, the backend id that makes
-- submission exactly-once, the owner (the worker session driving it), the per-job status
-- sequence numbers and log positions that let another worker take over without repeating an
-- event, and where the RoutedJob came from. core/sy_ledger.c is the only writer; every write
-- by an owner is a compare-and-set on owner, so a worker that lost a job cannot touch it.
--
-- workers: one row per running worker process (a session), with a heartbeat; a job whose owner
-- has no fresh heartbeat may be taken over by the worker that holds its partition.

CREATE TABLE workers (
    -- "<instance id>@<host>:<pid>:<start ms>", unique per process start
    session      text PRIMARY KEY,
    instance_id  text NOT NULL,
    host         text NOT NULL,
    pid          integer NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX workers_instance ON workers (instance_id, host);

CREATE TABLE jobs (
    job_id           text PRIMARY KEY CHECK (job_id ~ '^[A-Za-z0-9._:-]{1,128}$'),
    cluster_name     text NOT NULL,
    backend_kind     text NOT NULL,
    -- CLAIMED: a worker took the job; SUBMITTING: intent recorded, the backend may or may not
    -- have it (reconcile before resubmitting); SUBMITTED: the backend id is durable;
    -- RUNNING; then one of the terminal states.
    state            text NOT NULL
                     CHECK (state IN ('CLAIMED', 'SUBMITTING', 'SUBMITTED', 'RUNNING',
                                      'SUCCEEDED', 'FAILED', 'KILLED')),
    -- EMR step id, EMR-on-EKS job run id, or "<host>:<pid>:<start ticks>" for local
    backend_id       text,
    attempt          integer NOT NULL DEFAULT 1 CHECK (attempt >= 1),
    -- the workers.session driving the job (kept after it ends, for the record)
    owner            text,
    -- seq of the next JobStatus event; worker events start at 10 (router events are 1-3)
    next_seq         bigint NOT NULL DEFAULT 10 CHECK (next_seq >= 10),
    -- highest seq known to be delivered to <ns>.status; below next_seq - 1 = re-emit the last
    emitted_seq      bigint NOT NULL DEFAULT 0,
    -- {"stdout": bytes, "stderr": bytes, ...}: how much of each stream <ns>.logs holds
    log_offsets      jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(log_offsets) = 'object'),
    kill_requested   boolean NOT NULL DEFAULT false,
    kill_reason      text,
    timeout_at       timestamptz,
    exit_code        integer,
    -- the last status event's machine-readable reason and human message (re-emitted as is)
    failure_reason   text,
    message          text,
    -- the RoutedJob in its plain JSON form, so any worker can resume the job without Kafka
    routed_job       jsonb NOT NULL,
    source_topic     text NOT NULL,
    source_partition integer NOT NULL,
    source_offset    bigint NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    CHECK ((state IN ('SUCCEEDED', 'FAILED', 'KILLED')) = (finished_at IS NOT NULL))
);

-- What a worker must look at when it gets a partition: jobs not finished, or finished but
-- whose last event is not known to be delivered. (Same predicate as sy_ledger_list_open.)
CREATE INDEX jobs_open ON jobs (source_topic, source_partition)
    WHERE state NOT IN ('SUCCEEDED', 'FAILED', 'KILLED') OR emitted_seq < next_seq - 1;
-- Jobs in flight per cluster: the claim's capacity check and the router's least-active selector.
CREATE INDEX jobs_in_flight ON jobs (cluster_name)
    WHERE state IN ('CLAIMED', 'SUBMITTING', 'SUBMITTED', 'RUNNING');
-- Kill requests a worker must act on.
CREATE INDEX jobs_owner_open ON jobs (owner)
    WHERE state NOT IN ('SUCCEEDED', 'FAILED', 'KILLED');
