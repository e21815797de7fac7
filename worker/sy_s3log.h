/* sy_s3log: follows one job's log files under an S3 prefix — EMR step logs
 * (<LogUri>/<cluster-id>/steps/<step-id>/stdout.gz, stderr.gz, controller.gz, syslog.gz) and
 * EMR-on-EKS S3 monitoring logs — and hands the bytes past what was already published to the
 * driver host's log sink.
 *
 * Backends upload a log file again, whole, as it grows (EMR pushes step logs every few
 * minutes and once more when the step ends). So an object is read again only when its size or
 * last-modified time changed; a ".gz" object is inflated from its start (gzip cannot seek) and
 * the bytes up to job->logs' offset for its stream are skipped, a plain one is read with a Range
 * from that offset. Nothing is published twice — also after a takeover, since job->logs comes
 * from the ledger. Memory is bounded: objects are fetched in ranges of at most
 * SY_S3LOG_RANGE_BYTES and inflated through one chunk-sized buffer, never held whole.
 *
 * One sy_s3log_t per job, used from the driver instance's thread only. */
#ifndef SY_S3LOG_H
#define SY_S3LOG_H

#include <stdbool.h>

#include "sy_aws.h"
#include "sy_driver.h"
#include "sy_err.h"
#include "sy_job.h"

#define SY_S3LOG_RANGE_BYTES (4 << 20)

typedef struct sy_s3log sy_s3log_t;

/* Splits "s3://bucket/prefix" (also s3n:// and s3a://, as EMR writes LogUri) into bucket and
 * key prefix (without a leading '/'; "" for the whole bucket). false when uri is not of that
 * form or a part does not fit. */
bool sy_s3log_parse_uri(const char *uri, char *bucket, size_t bucket_size, char *prefix,
                        size_t prefix_size);

/* A follower of the objects under s3://bucket/prefix whose base name, without ".gz", is one of
 * streams[] (NULL-terminated, e.g. {"stdout", "stderr", NULL}); the base name is the stream
 * name in the JobLog chunks. key_filter, when not NULL, must also occur in the key (EMR on EKS:
 * "-driver/" keeps the Spark driver's files and leaves the executors'). Strings are copied.
 * NULL with err filled when out of memory. */
sy_s3log_t *sy_s3log_new(const char *bucket, const char *prefix, const char *const *streams,
                         const char *key_filter, sy_err_t *err);
void sy_s3log_destroy(sy_s3log_t *l);

/* Lists the prefix (every page) and hands the new bytes of every matching object that changed
 * since the last call to host->log, for job. *found (may be NULL) is set when at least one
 * matching object exists. Returns SY_OK when everything there is has been handed on; a
 * retriable SY_ERR_IO when the sink had no room to take it all (call again later: the rest
 * follows, nothing twice); AWS errors as sy_aws returns them (the next call starts over where
 * the sink stands). */
sy_err_code_t sy_s3log_fetch(sy_s3log_t *l, sy_aws_t *aws, const sy_driver_host_t *host,
                             sy_job_t *job, bool *found, sy_err_t *err);

#endif
