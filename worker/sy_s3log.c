/* sy_s3log: follows one job's log files under an S3 prefix (see sy_s3log.h). */
#include "sy_s3log.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "sy_log.h"

#define MAX_STREAMS  SY_LEDGER_STREAMS_MAX
#define LIST_PAGE    1000
#define LIST_PAGES   20 /* a job's log prefix holds a handful of files: this is a safety bound */
#define MAX_KEY_SIZE 1024

/* What was last read completely of one object. */
typedef struct seen {
    char *key;
    long long size;
    char *last_modified;
} seen_t;

struct sy_s3log {
    char *bucket, *prefix, *key_filter;
    char *streams[MAX_STREAMS + 1];
    seen_t *seen;
    size_t n_seen, cap_seen;
    char *chunk; /* SY_DRIVER_CHUNK_MAX bytes: inflate output */
};

static char *dup_or(const char *s, bool *ok)
{
    char *d = strdup(s ? s : "");
    if (!d)
        *ok = false;
    return d;
}

bool sy_s3log_parse_uri(const char *uri, char *bucket, size_t bucket_size, char *prefix,
                        size_t prefix_size)
{
    static const char *const schemes[] = {"s3://", "s3n://", "s3a://"};
    const char *p = NULL;
    for (size_t i = 0; uri && i < sizeof(schemes) / sizeof(schemes[0]) && !p; i++)
        if (!strncmp(uri, schemes[i], strlen(schemes[i])))
            p = uri + strlen(schemes[i]);
    if (!p || !*p || *p == '/')
        return false;
    const char *slash = strchr(p, '/');
    size_t blen = slash ? (size_t)(slash - p) : strlen(p);
    const char *rest = slash ? slash + 1 : "";
    if (blen >= bucket_size || strlen(rest) >= prefix_size)
        return false;
    memcpy(bucket, p, blen);
    bucket[blen] = '\0';
    snprintf(prefix, prefix_size, "%s", rest);
    return true;
}

sy_s3log_t *sy_s3log_new(const char *bucket, const char *prefix, const char *const *streams,
                         const char *key_filter, sy_err_t *err)
{
    sy_s3log_t *l = calloc(1, sizeof(*l));
    bool ok = l != NULL;
    if (ok) {
        l->bucket = dup_or(bucket, &ok);
        l->prefix = dup_or(prefix, &ok);
        l->key_filter = key_filter ? dup_or(key_filter, &ok) : NULL;
        for (size_t i = 0; ok && streams && streams[i] && i < MAX_STREAMS; i++)
            l->streams[i] = dup_or(streams[i], &ok);
    }
    if (!ok) {
        sy_s3log_destroy(l);
        sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        return NULL;
    }
    return l;
}

void sy_s3log_destroy(sy_s3log_t *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n_seen; i++) {
        free(l->seen[i].key);
        free(l->seen[i].last_modified);
    }
    free(l->seen);
    for (size_t i = 0; l->streams[i]; i++)
        free(l->streams[i]);
    free(l->bucket);
    free(l->prefix);
    free(l->key_filter);
    free(l->chunk);
    free(l);
}

/* The stream an object feeds ("stdout" for ".../stdout.gz"), into name; false if none. */
static bool stream_of(const sy_s3log_t *l, const char *key, char *name, size_t size, bool *gz)
{
    if (l->key_filter && !strstr(key, l->key_filter))
        return false;
    const char *base = strrchr(key, '/');
    base = base ? base + 1 : key;
    size_t len = strlen(base);
    *gz = len > 3 && !strcmp(base + len - 3, ".gz");
    if (*gz)
        len -= 3;
    for (size_t i = 0; l->streams[i]; i++)
        if (strlen(l->streams[i]) == len && !strncmp(l->streams[i], base, len) && len < size) {
            memcpy(name, base, len);
            name[len] = '\0';
            return true;
        }
    return false;
}

static seen_t *find_seen(sy_s3log_t *l, const char *key)
{
    for (size_t i = 0; i < l->n_seen; i++)
        if (!strcmp(l->seen[i].key, key))
            return &l->seen[i];
    return NULL;
}

static bool unchanged(sy_s3log_t *l, const sy_aws_s3_object_t *o)
{
    const seen_t *s = find_seen(l, o->key);
    return s && s->size == o->size &&
           !strcmp(s->last_modified, o->last_modified ? o->last_modified : "");
}

/* Remembers that o was read completely. Out of memory only means it is read again next time. */
static void remember(sy_s3log_t *l, const sy_aws_s3_object_t *o)
{
    seen_t *s = find_seen(l, o->key);
    char *lm = strdup(o->last_modified ? o->last_modified : "");
    if (!lm)
        return;
    if (!s) {
        if (l->n_seen == l->cap_seen) {
            size_t cap = l->cap_seen ? 2 * l->cap_seen : 8;
            seen_t *n = realloc(l->seen, cap * sizeof(*n));
            if (!n) {
                free(lm);
                return;
            }
            l->seen = n;
            l->cap_seen = cap;
        }
        char *key = strdup(o->key);
        if (!key) {
            free(lm);
            return;
        }
        s = &l->seen[l->n_seen++];
        s->key = key;
        s->last_modified = NULL;
    }
    free(s->last_modified);
    s->last_modified = lm;
    s->size = o->size;
}

/* Hands data[0..len) at stream position pos to the sink, skipping what job->logs already has.
 * Returns false when the sink is full (the caller stops and comes back later). */
static bool deliver(const sy_driver_host_t *host, sy_job_t *job, const char *stream, long long pos,
                    const char *data, size_t len)
{
    long long have = sy_ledger_logs_get(&job->logs, stream);
    if (pos + (long long)len <= have)
        return true;
    if (pos < have) {
        data += have - pos;
        len -= (size_t)(have - pos);
    }
    while (len) {
        size_t room = host->log_room(host->opaque, job);
        if (!room)
            return false;
        size_t n = len < room ? len : room;
        if (n > SY_DRIVER_CHUNK_MAX)
            n = SY_DRIVER_CHUNK_MAX;
        long long before = sy_ledger_logs_get(&job->logs, stream);
        host->log(host->opaque, job, stream, data, n);
        if (sy_ledger_logs_get(&job->logs, stream) == before)
            return true; /* the sink drops this stream (capped, no slot): nothing more to do */
        data += n;
        len -= n;
    }
    return true;
}

/* A plain object: ranged reads from the stream's published offset. */
static sy_err_code_t read_plain(sy_s3log_t *l, sy_aws_t *aws, const sy_driver_host_t *host,
                                sy_job_t *job, const char *stream, const sy_aws_s3_object_t *o,
                                bool *full, sy_err_t *err)
{
    for (;;) {
        long long pos = sy_ledger_logs_get(&job->logs, stream);
        if (pos >= o->size)
            return SY_OK;
        sy_aws_s3_data_t d;
        sy_err_code_t rc =
            sy_aws_s3_get(aws, l->bucket, o->key, pos, SY_S3LOG_RANGE_BYTES, &d, err);
        if (rc != SY_OK)
            return rc;
        bool ok = deliver(host, job, stream, pos, d.data, d.len);
        size_t got = d.len;
        sy_aws_s3_data_clear(&d);
        if (!ok) {
            *full = true;
            return SY_OK;
        }
        if (!got || sy_ledger_logs_get(&job->logs, stream) == pos)
            return SY_OK; /* the object shrank, or the sink stopped taking this stream */
    }
}

/* A gzip object: inflated from its start, every member (concatenated gzip files are valid),
 * what the stream already has skipped. */
static sy_err_code_t read_gzip(sy_s3log_t *l, sy_aws_t *aws, const sy_driver_host_t *host,
                               sy_job_t *job, const char *stream, const sy_aws_s3_object_t *o,
                               bool *full, sy_err_t *err)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (inflateInit2(&z, 15 + 32) != Z_OK)
        return sy_err_set(err, SY_ERR_NOMEM, false, "inflateInit failed");
    if (!l->chunk && !(l->chunk = malloc(SY_DRIVER_CHUNK_MAX))) {
        inflateEnd(&z);
        return sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
    }
    sy_err_code_t rc = SY_OK;
    long long fetched = 0, pos = 0; /* compressed bytes read; inflated bytes produced */
    bool done = false;
    while (!done && fetched < o->size) {
        sy_aws_s3_data_t d;
        if ((rc = sy_aws_s3_get(aws, l->bucket, o->key, fetched, SY_S3LOG_RANGE_BYTES, &d, err)) !=
            SY_OK)
            break;
        if (!d.len) {
            sy_aws_s3_data_clear(&d);
            break; /* shorter than listed: it is being replaced; read again next time */
        }
        fetched += (long long)d.len;
        z.next_in = (Bytef *)d.data;
        z.avail_in = (uInt)d.len;
        while (z.avail_in && !done) {
            z.next_out = (Bytef *)l->chunk;
            z.avail_out = SY_DRIVER_CHUNK_MAX;
            int zr = inflate(&z, Z_NO_FLUSH);
            size_t produced = SY_DRIVER_CHUNK_MAX - z.avail_out;
            if (produced) {
                if (!deliver(host, job, stream, pos, l->chunk, produced)) {
                    *full = true;
                    done = true;
                }
                pos += (long long)produced;
            }
            if (zr == Z_STREAM_END) {
                if (inflateReset(&z) != Z_OK)
                    done = true;
            } else if (zr != Z_OK && zr != Z_BUF_ERROR) {
                rc = sy_err_set(err, SY_ERR_IO, false, "s3://%s/%s: not valid gzip (%s)", l->bucket,
                                o->key, z.msg ? z.msg : "inflate failed");
                done = true;
            } else if (zr == Z_BUF_ERROR && !produced) {
                break; /* needs more input */
            }
        }
        sy_aws_s3_data_clear(&d);
    }
    inflateEnd(&z);
    return rc;
}

sy_err_code_t sy_s3log_fetch(sy_s3log_t *l, sy_aws_t *aws, const sy_driver_host_t *host,
                             sy_job_t *job, bool *found, sy_err_t *err)
{
    sy_aws_s3_listing_t page = {0};
    char *token = NULL;
    bool full = false;
    sy_err_code_t rc = SY_OK;
    if (found)
        *found = false;
    for (int pages = 0; pages < LIST_PAGES && !full; pages++) {
        if ((rc = sy_aws_s3_list(aws, l->bucket, l->prefix, token, LIST_PAGE, &page, err)) != SY_OK)
            break;
        for (size_t i = 0; i < page.n && rc == SY_OK && !full; i++) {
            const sy_aws_s3_object_t *o = &page.objects[i];
            char stream[SY_LEDGER_STREAM_NAME_MAX];
            bool gz;
            if (strlen(o->key) >= MAX_KEY_SIZE ||
                !stream_of(l, o->key, stream, sizeof(stream), &gz))
                continue;
            if (found)
                *found = true;
            if (unchanged(l, o))
                continue;
            rc = gz ? read_gzip(l, aws, host, job, stream, o, &full, err)
                    : read_plain(l, aws, host, job, stream, o, &full, err);
            if (rc == SY_OK && !full)
                remember(l, o);
        }
        free(token);
        token = page.truncated && page.next_token ? strdup(page.next_token) : NULL;
        sy_aws_s3_listing_clear(&page);
        if (!token)
            break;
    }
    free(token);
    if (rc == SY_OK && full)
        rc = sy_err_set(err, SY_ERR_IO, true, "job %s: the log sink is full; more later",
                        job->job_id);
    return rc;
}
