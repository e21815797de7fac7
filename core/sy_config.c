/* sy_config: one declarative table of settings; file < environment < command line. */
#include "sy_config.h"
#include "sy_log.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_FILE_BYTES (1 << 20) /* a config file is a few KB; refuse anything absurd */

/* The one table. Adding a setting means adding a row here (and it shows up in the docs dump). */
static const sy_config_def_t config_table[] = {
    {"bootstrap.servers", SY_CONF_STRING, "localhost:9092", false,
     "Kafka bootstrap servers (host:port,...)"},
    {"topic.namespace", SY_CONF_STRING, "switchyard", false,
     "Prefix of every topic: <ns>.requests, <ns>.status, <ns>.logs, <ns>.control, "
     "<ns>.deadletter, <ns>.cluster.<name>"},
    {"client.id", SY_CONF_STRING, "switchyard", false, "Kafka client.id of every client"},
    {"schema.registry.url", SY_CONF_STRING, "", false,
     "Confluent-compatible Schema Registry URL(s), comma-separated, tried in order; empty = "
     "Avro single-object encoding, no registry"},
    {"schema.registry.basic.auth", SY_CONF_STRING, "", true,
     "user:password for the Schema Registry (HTTP basic auth)"},
    {"schema.registry.timeout.ms", SY_CONF_INT, "5000", false,
     "HTTP timeout of one Schema Registry request"},
    {"schema.registry.auto.register", SY_CONF_BOOL, "true", false,
     "Register our schema under <topic>-value on first produce (else look it up)"},
    {"codec.max.string.bytes", SY_CONF_INT, "1048576", false,
     "Largest string or bytes value accepted when decoding"},
    {"codec.max.items", SY_CONF_INT, "10000", false,
     "Largest array or map (items) accepted when decoding"},
    {"database.url", SY_CONF_STRING, "", true,
     "PostgreSQL connection string (libpq URI or key=value) of the registry and job ledger"},
    {"log.level", SY_CONF_STRING, "info", false, "error, warn, info or debug"},
    {"log.format", SY_CONF_STRING, "text", false, "text, or json (one JSON object per line)"},
    {"topic.partitions", SY_CONF_INT, "6", false,
     "Partitions of topics Switchyard creates when missing (requests, status, logs, control, "
     "deadletter, cluster topics)"},
    {"topic.replication.factor", SY_CONF_INT, "-1", false,
     "Replication factor of topics Switchyard creates; -1 = the broker's default"},
    {"router.group.id", SY_CONF_STRING, "switchyard-router", false,
     "Consumer group of the routers (they share the requests partitions)"},
    {"router.instance.id", SY_CONF_STRING, "", false,
     "This router's name in status events and its transactional.id; empty = <hostname>-<pid>"},
    {"router.selector", SY_CONF_STRING, "weighted", false,
     "How one cluster is picked among the matches: weighted (random by registry weight) or "
     "least-active (fewest jobs in flight)"},
    {"router.batch.max", SY_CONF_INT, "5000", false,
     "Most requests routed in one Kafka transaction"},
    {"router.batch.ms", SY_CONF_INT, "20", false,
     "Longest a router waits to fill a transaction before committing what it has"},
    {"router.registry.poll.ms", SY_CONF_INT, "30000", false,
     "Safety reload of the registry even without a NOTIFY"},
    {"router.active.refresh.ms", SY_CONF_INT, "1000", false,
     "How often the least-active selector re-reads jobs in flight from the ledger"},
    {"worker.group.id", SY_CONF_STRING, "switchyard-worker", false,
     "Consumer group of the workers (they share the cluster topics' partitions)"},
    {"worker.instance.id", SY_CONF_STRING, "", false,
     "This worker's name in status events and the ledger; empty = worker-<hostname>-<pid>"},
    {"worker.clusters", SY_CONF_STRING, "^.*", false,
     "Clusters this worker serves: a comma-separated list of cluster names, or a regular "
     "expression over cluster names starting with ^ (topics <ns>.cluster.<name>)"},
    {"worker.local.workdir", SY_CONF_STRING, "", false,
     "Where local jobs get their private working directories; empty = $TMPDIR/switchyard-jobs "
     "(/tmp/switchyard-jobs)"},
    {"worker.local.max.concurrent", SY_CONF_INT, "0", false,
     "Most local jobs of one cluster this worker runs at once; 0 = twice the CPUs"},
    {"worker.local.keep.workdir", SY_CONF_BOOL, "false", false,
     "Keep a local job's working directory after it ends (else it is removed)"},
    {"worker.kill.grace.ms", SY_CONF_INT, "10000", false,
     "Between SIGTERM and SIGKILL when a local job is killed or times out"},
    {"worker.log.max.bytes", SY_CONF_INT, "67108864", false,
     "Most log bytes published per job (all streams); beyond it one notice chunk is published "
     "and the rest dropped while the job keeps running"},
    {"worker.log.flush.ms", SY_CONF_INT, "200", false,
     "Longest a job's output waits to fill a log chunk (64 KiB) before it is published"},
    {"worker.log.inflight.max.bytes", SY_CONF_INT, "33554432", false,
     "Log bytes the worker may have sent but not yet acknowledged by Kafka; above it job output "
     "is not read (the job's writes block) until Kafka catches up"},
    {"worker.poll.interval.ms", SY_CONF_INT, "10000", false,
     "How often a cluster's poller asks a remote backend (EMR, EMR on EKS) about its jobs"},
    {"worker.emr.logs.interval.ms", SY_CONF_INT, "300000", false,
     "How often the S3 logs of a running EMR step (or EMR-on-EKS job run logging to S3 only) are "
     "read (EMR uploads them every few minutes); 0 = only when it has ended"},
    {"worker.emr.logs.wait.ms", SY_CONF_INT, "60000", false,
     "After an EMR step (or an EMR-on-EKS job run logging to S3 only) ended, how long its "
     "terminal status waits for its log files to appear in S3 before it is published without "
     "them"},
    {"worker.heartbeat.ms", SY_CONF_INT, "5000", false,
     "How often a worker renews its session in the ledger's roster"},
    {"worker.lease.ms", SY_CONF_INT, "30000", false,
     "A worker session without a heartbeat for this long is dead: its jobs may be taken over"},
    {"worker.shutdown.grace.ms", SY_CONF_INT, "30000", false,
     "On stop, how long running local jobs may still finish before they are killed (ending "
     "FAILED with WORKER_STOPPED); remote jobs are left to the next owner"},
    {"worker.capacity.retry.ms", SY_CONF_INT, "2000", false,
     "How often a cluster paused at its concurrency limit re-checks for room (jobs ending on "
     "other workers)"},
    {"request.max.timeout", SY_CONF_DURATION, "7d", false,
     "Largest job timeout a request may ask for; larger is INVALID"},
    {"broker.timeout.ms", SY_CONF_INT, "10000", false,
     "How long a client waits for the broker before reporting it unreachable"},
    {"aws.region", SY_CONF_STRING, "", false,
     "AWS region; empty = AWS_REGION, AWS_DEFAULT_REGION, then the profile's region"},
    {"aws.max.attempts", SY_CONF_INT, "5", false,
     "Attempts per AWS call, the first included (retries on throttling, 5xx, timeouts)"},
    {"aws.timeout.ms", SY_CONF_INT, "10000", false, "Timeout of one AWS HTTP request"},
    {"aws.connect.timeout.ms", SY_CONF_INT, "3000", false,
     "Connect timeout of one AWS HTTP request"},
    {"aws.retry.base.ms", SY_CONF_INT, "100", false,
     "Backoff base: retry n waits a random time in [0, min(max, base * 2^(n-1)))"},
    {"aws.retry.max.backoff.ms", SY_CONF_INT, "20000", false, "Longest wait between retries"},
    {"aws.retry.budget.ms", SY_CONF_INT, "60000", false,
     "Total time one AWS call may take across attempts and backoff"},
    {"aws.credentials.refresh.ms", SY_CONF_INT, "300000", false,
     "Refresh temporary AWS credentials this long before they expire"},
};
#define N_KEYS (sizeof(config_table) / sizeof(config_table[0]))

typedef struct kv {
    char *key; /* without the "kafka." prefix */
    char *value;
    struct kv *next;
} kv_t;

struct sy_config {
    char *values[N_KEYS];
    kv_t *kafka; /* in insertion order */
};

const sy_config_def_t *sy_config_table(size_t *n)
{
    *n = N_KEYS;
    return config_table;
}

long long sy_config_parse_duration_ms(const char *s)
{
    if (!s || !*s)
        return -1;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (errno || end == s || v < 0)
        return -1;
    while (*end == ' ')
        end++;
    double mult;
    if (!*end || !strcmp(end, "ms"))
        mult = 1;
    else if (!strcmp(end, "s"))
        mult = 1000;
    else if (!strcmp(end, "m") || !strcmp(end, "min"))
        mult = 60e3;
    else if (!strcmp(end, "h"))
        mult = 3600e3;
    else if (!strcmp(end, "d"))
        mult = 86400e3;
    else
        return -1;
    double ms = v * mult;
    if (ms > 9.2e18)
        return -1;
    return (long long)ms;
}

static int find_key(const char *key)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if (!strcmp(config_table[i].key, key))
            return (int)i;
    return -1;
}

static bool parse_bool(const char *s, bool *out)
{
    if (!strcasecmp(s, "true") || !strcmp(s, "1") || !strcasecmp(s, "yes") || !strcasecmp(s, "on"))
        *out = true;
    else if (!strcasecmp(s, "false") || !strcmp(s, "0") || !strcasecmp(s, "no") ||
             !strcasecmp(s, "off"))
        *out = false;
    else
        return false;
    return true;
}

static bool validate(const sy_config_def_t *def, const char *value)
{
    switch (def->type) {
    case SY_CONF_STRING:
        return true;
    case SY_CONF_INT: {
        errno = 0;
        char *end;
        strtoll(value, &end, 10);
        return !errno && end != value && !*end;
    }
    case SY_CONF_BOOL: {
        bool b;
        return parse_bool(value, &b);
    }
    case SY_CONF_DURATION:
        return sy_config_parse_duration_ms(value) >= 0;
    }
    return false;
}

sy_config_t *sy_config_new(void)
{
    sy_config_t *conf = calloc(1, sizeof(*conf));
    if (!conf)
        return NULL;
    for (size_t i = 0; i < N_KEYS; i++) {
        conf->values[i] = strdup(config_table[i].default_value);
        if (!conf->values[i]) {
            sy_config_destroy(conf);
            return NULL;
        }
    }
    return conf;
}

void sy_config_destroy(sy_config_t *conf)
{
    if (!conf)
        return;
    for (size_t i = 0; i < N_KEYS; i++)
        free(conf->values[i]);
    for (kv_t *kv = conf->kafka, *next; kv; kv = next) {
        next = kv->next;
        free(kv->key);
        free(kv->value);
        free(kv);
    }
    free(conf);
}

sy_err_code_t sy_config_set(sy_config_t *conf, const char *key, const char *value, sy_err_t *err)
{
    if (!strncmp(key, "kafka.", 6) && find_key(key) < 0) {
        const char *prop = key + 6;
        if (!*prop)
            return sy_err_set(err, SY_ERR_CONFIG, false, "config key \"%s\": empty kafka property",
                              key);
        kv_t **tail = &conf->kafka;
        for (; *tail; tail = &(*tail)->next) {
            if (!strcmp((*tail)->key, prop)) {
                char *v = strdup(value);
                if (!v)
                    return sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
                free((*tail)->value);
                (*tail)->value = v;
                return SY_OK;
            }
        }
        kv_t *kv = calloc(1, sizeof(*kv));
        if (!kv || !(kv->key = strdup(prop)) || !(kv->value = strdup(value))) {
            if (kv) {
                free(kv->key);
                free(kv);
            }
            return sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
        }
        *tail = kv;
        return SY_OK;
    }
    int i = find_key(key);
    if (i < 0)
        return sy_err_set(err, SY_ERR_CONFIG, false, "unknown config key \"%s\"", key);
    if (!validate(&config_table[i], value))
        return sy_err_set(err, SY_ERR_CONFIG, false, "config key \"%s\": invalid value \"%s\"", key,
                          config_table[i].secret ? "***" : value);
    if (!strcmp(key, "log.level") && sy_log_level_parse(value) < 0)
        return sy_err_set(err, SY_ERR_CONFIG, false,
                          "config key \"log.level\": \"%s\" is not error, warn, info or debug",
                          value);
    if (!strcmp(key, "log.format") && strcasecmp(value, "text") && strcasecmp(value, "json"))
        return sy_err_set(err, SY_ERR_CONFIG, false,
                          "config key \"log.format\": \"%s\" is not text or json", value);
    char *v = strdup(value);
    if (!v)
        return sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
    free(conf->values[i]);
    conf->values[i] = v;
    return SY_OK;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

sy_err_code_t sy_config_load_text(sy_config_t *conf, const char *text, size_t len,
                                  const char *origin, sy_err_t *err)
{
    const char *nul = memchr(text, '\0', len);
    if (nul) {
        int lineno = 1;
        for (const char *p = text; p < nul; p++)
            lineno += *p == '\n';
        return sy_err_set(err, SY_ERR_CONFIG, false, "config file %s:%d: NUL byte", origin, lineno);
    }
    char *copy = malloc(len + 1); /* lines are cut in place */
    if (!copy)
        return sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
    memcpy(copy, text, len);
    copy[len] = '\0';
    sy_err_code_t rc = SY_OK;
    int lineno = 0;
    for (char *line = copy, *next; line; line = next) {
        char *eol = strchr(line, '\n');
        next = eol ? eol + 1 : NULL;
        if (eol)
            *eol = '\0';
        else if (!*line) /* the text ended with a newline */
            break;
        lineno++;
        char *s = trim(line);
        if (!*s || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            rc = sy_err_set(err, SY_ERR_CONFIG, false, "config file %s:%d: expected key = value",
                            origin, lineno);
            goto out;
        }
        *eq = '\0';
        char *key = trim(s), *value = trim(eq + 1);
        if ((rc = sy_config_set(conf, key, value, err)) != SY_OK) {
            sy_err_prefix(err, "config file %s:%d", origin, lineno);
            goto out;
        }
    }
out:
    free(copy);
    return rc;
}

sy_err_code_t sy_config_load_file(sy_config_t *conf, const char *path, sy_err_t *err)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return sy_err_set(err, SY_ERR_CONFIG, false, "config file %s: %s", path, strerror(errno));
    sy_err_code_t rc = SY_OK;
    char *text = malloc(MAX_FILE_BYTES + 1);
    size_t n = text ? fread(text, 1, MAX_FILE_BYTES + 1, f) : 0;
    if (!text)
        rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
    else if (ferror(f))
        rc = sy_err_set(err, SY_ERR_CONFIG, false, "config file %s: read error", path);
    else if (n > MAX_FILE_BYTES)
        rc = sy_err_set(err, SY_ERR_CONFIG, false, "config file %s: larger than %d bytes", path,
                        MAX_FILE_BYTES);
    else
        rc = sy_config_load_text(conf, text, n, path, err);
    free(text);
    fclose(f);
    return rc;
}

/* SWITCHYARD_BOOTSTRAP_SERVERS → bootstrap.servers, matched against the table's keys. */
static const char *env_to_key(const char *name, char *buf, size_t size)
{
    for (size_t i = 0; i < N_KEYS; i++) {
        const char *k = config_table[i].key;
        size_t j = 0;
        for (; k[j] && name[j]; j++) {
            char c = (k[j] == '.' || k[j] == '-') ? '_' : (char)toupper((unsigned char)k[j]);
            if (c != name[j])
                break;
        }
        if (!k[j] && !name[j])
            return k;
    }
    if (!strncmp(name, "KAFKA_", 6) && name[6]) {
        size_t n = snprintf(buf, size, "kafka.%s", name + 6);
        if (n >= size)
            return NULL;
        for (char *p = buf + 6; *p; p++)
            *p = *p == '_' ? '.' : (char)tolower((unsigned char)*p);
        return buf;
    }
    return NULL;
}

sy_err_code_t sy_config_load_env(sy_config_t *conf, char **envp, sy_err_t *err)
{
    for (char **e = envp; e && *e; e++) {
        if (strncmp(*e, "SWITCHYARD_", 11) != 0)
            continue;
        const char *eq = strchr(*e, '=');
        if (!eq)
            continue;
        char name[256], keybuf[300];
        size_t nlen = (size_t)(eq - *e) - 11;
        if (nlen >= sizeof(name))
            return sy_err_set(err, SY_ERR_CONFIG, false, "environment variable name too long");
        memcpy(name, *e + 11, nlen);
        name[nlen] = '\0';
        if (!strcmp(name, "CONFIG"))
            continue;
        const char *key = env_to_key(name, keybuf, sizeof(keybuf));
        if (!key)
            return sy_err_set(err, SY_ERR_CONFIG, false,
                              "unknown config key in environment variable SWITCHYARD_%s", name);
        if (sy_config_set(conf, key, eq + 1, err) != SY_OK) {
            sy_err_prefix(err, "environment variable SWITCHYARD_%s", name);
            return err ? err->code : SY_ERR_CONFIG;
        }
    }
    return SY_OK;
}

sy_err_code_t sy_config_load(sy_config_t *conf, const char *config_path, char **envp,
                             char *const *overrides, int n_overrides, sy_err_t *err)
{
    if (!config_path) {
        for (char **e = envp; e && *e; e++)
            if (!strncmp(*e, "SWITCHYARD_CONFIG=", 18) && (*e)[18])
                config_path = *e + 18;
    }
    if (config_path && sy_config_load_file(conf, config_path, err) != SY_OK)
        return err ? err->code : SY_ERR_CONFIG;
    if (sy_config_load_env(conf, envp, err) != SY_OK)
        return err ? err->code : SY_ERR_CONFIG;
    for (int i = 0; i < n_overrides; i++) {
        const char *eq = strchr(overrides[i], '=');
        if (!eq)
            return sy_err_set(err, SY_ERR_CONFIG, false, "expected key=value, got \"%s\"",
                              overrides[i]);
        char key[256];
        size_t klen = (size_t)(eq - overrides[i]);
        if (klen >= sizeof(key))
            return sy_err_set(err, SY_ERR_CONFIG, false, "config key too long");
        memcpy(key, overrides[i], klen);
        key[klen] = '\0';
        if (sy_config_set(conf, key, eq + 1, err) != SY_OK)
            return err ? err->code : SY_ERR_CONFIG;
    }
    return SY_OK;
}

static int must_find(const char *key)
{
    int i = find_key(key);
    if (i < 0) {
        fprintf(stderr, "BUG: config key \"%s\" is not in the table\n", key);
        abort();
    }
    return i;
}

const char *sy_config_get(const sy_config_t *conf, const char *key)
{
    return conf->values[must_find(key)];
}

long long sy_config_get_int(const sy_config_t *conf, const char *key)
{
    int i = must_find(key);
    if (config_table[i].type == SY_CONF_DURATION)
        return sy_config_parse_duration_ms(conf->values[i]);
    return strtoll(conf->values[i], NULL, 10);
}

bool sy_config_get_bool(const sy_config_t *conf, const char *key)
{
    bool b = false;
    parse_bool(conf->values[must_find(key)], &b);
    return b;
}

int sy_config_kafka_foreach(const sy_config_t *conf,
                            int (*cb)(const char *prop, const char *value, void *opaque),
                            void *opaque)
{
    for (const kv_t *kv = conf->kafka; kv; kv = kv->next) {
        int r = cb(kv->key, kv->value, opaque);
        if (r)
            return r;
    }
    return 0;
}

static bool kafka_prop_is_secret(const char *prop)
{
    return strstr(prop, "password") || strstr(prop, "secret") || strstr(prop, "sasl.username") ||
           strstr(prop, "key.pem") || strstr(prop, "token") || strstr(prop, "oauthbearer.config");
}

/* One "key = value" line: a secret setting as ***, any other value with what looks like a
 * secret inside it masked too (a registry URL's user:password@, clientSecret=...). */
static void dump_line(FILE *out, const char *prefix, const char *key, const char *value,
                      bool secret)
{
    char *shown = secret && *value ? NULL : strdup(value);
    if (shown)
        sy_log_redact(shown);
    fprintf(out, "%s%s = %s\n", prefix, key, shown ? shown : "***");
    free(shown);
}

void sy_config_dump(const sy_config_t *conf, FILE *out)
{
    for (size_t i = 0; i < N_KEYS; i++)
        dump_line(out, "", config_table[i].key, conf->values[i], config_table[i].secret);
    for (const kv_t *kv = conf->kafka; kv; kv = kv->next)
        dump_line(out, "kafka.", kv->key, kv->value, kafka_prop_is_secret(kv->key));
}
