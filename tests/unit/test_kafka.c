/* Unit tests of sy_kafka's refusals: which librdkafka log lines are a broker refusing us (lines
 * captured from librdkafka 2.0.2 against Kafka 3.9's SASL_SSL and mutual-TLS listeners), and how
 * a timeout is explained once one was logged; and of waiting for a topic just created, on
 * librdkafka's in-process mock cluster (loopback only, no outside service). */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h> /* after rdkafka.h, which it needs */
#include <pthread.h>
#include <unistd.h>

#include "sy_kafka.h"
#include "sy_log.h"
#include "sy_test.h"
#include "sy_time.h"

#define BROKER "[thrd:sasl_ssl://127.0.0.1:34829/bootstrap]: sasl_ssl://127.0.0.1:34829/bootstrap: "
#define WRONG_PASSWORD                                                                             \
    BROKER "SASL authentication error: Authentication failed during authentication due to "        \
           "invalid credentials with SASL mechanism SCRAM-SHA-512 (after 326ms in state AUTH_REQ)"

/* The mock broker answers "unknown topic" for a topic with that error set: how a real broker
 * answers for a moment after the topic was created, before its metadata lists it. */
static void *appear_later(void *mcluster)
{
    usleep(1000 * 1000);
    rd_kafka_mock_topic_set_error(mcluster, "t.late", RD_KAFKA_RESP_ERR_NO_ERROR);
    return NULL;
}

/* A topic the broker does not list yet — what a worker or router sees after creating a topic
 * at its first start in a new namespace: sy_kafka_partition_count reports it unknown,
 * sy_kafka_partition_count_wait waits until it is listed (and not forever). */
static void test_partition_count_wait(void)
{
    sy_config_t *conf = sy_config_new();
    sy_err_t err = SY_ERR_INIT;
    CHECK(sy_config_set(conf, "kafka.test.mock.num.brokers", "1", &err) == SY_OK);
    sy_kafka_opts_t o = {.client_id_suffix = "test"}; /* a consumer, as the worker's control */
    rd_kafka_t *rk = sy_kafka_new(conf, SY_KAFKA_CONSUMER, &o, &err);
    CHECK(rk != NULL);
    rd_kafka_mock_cluster_t *mc = rk ? rd_kafka_handle_mock_cluster(rk) : NULL;
    CHECK(mc != NULL);
    if (!mc)
        goto out;
    CHECK(rd_kafka_mock_topic_create(mc, "t.late", 3, 1) == RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_mock_topic_set_error(mc, "t.late", RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
    CHECK(sy_kafka_partition_count(rk, "t.late", 5000, &err) == -1);
    CHECK(err.code == SY_ERR_NOT_FOUND && err.retriable);

    pthread_t t;
    CHECK(pthread_create(&t, NULL, appear_later, mc) == 0);
    err = (sy_err_t)SY_ERR_INIT;
    long long t0 = sy_time_mono_ms();
    CHECK(sy_kafka_partition_count_wait(rk, "t.late", 5000, &err) == 3);
    CHECK(sy_time_mono_ms() - t0 >= 900);
    pthread_join(t, NULL);

    /* one that is never listed: about 10 s, then the same error as without waiting */
    CHECK(rd_kafka_mock_topic_create(mc, "t.never", 3, 1) == RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_mock_topic_set_error(mc, "t.never", RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
    t0 = sy_time_mono_ms();
    CHECK(sy_kafka_partition_count_wait(rk, "t.never", 5000, &err) == -1);
    long long took = sy_time_mono_ms() - t0;
    CHECK(err.code == SY_ERR_NOT_FOUND);
    CHECK(took >= 9000 && took < 60000);
out:
    if (rk)
        rd_kafka_destroy(rk);
    sy_config_destroy(conf);
}

int main(void)
{
    sy_log_set_level(SY_LOG_ERROR); /* the lines fed below are logged too */
    test_partition_count_wait();    /* first: the refusal checks below leave one remembered */

    /* refusals */
    CHECK(sy_kafka_is_refusal("FAIL", WRONG_PASSWORD));
    CHECK(sy_kafka_is_refusal(
        "FAIL", "ssl://127.0.0.1:46017/bootstrap: Receive failed: error:0A000412:SSL "
                "routines::sslv3 alert bad certificate: SSL alert number 42 (after 34ms in state "
                "APIVERSION_QUERY)")); /* no client certificate on a mutual-TLS listener */
    CHECK(sy_kafka_is_refusal(
        "FAIL", "ssl://127.0.0.1:59405/bootstrap: SSL handshake failed: error:0A000086:SSL "
                "routines::certificate verify failed: broker certificate could not be verified, "
                "verify that ssl.ca.location is correctly configured or root CA certificates are "
                "installed (install ca-certificates package) (after 11ms in state SSL_HANDSHAKE)"));
    CHECK(sy_kafka_is_refusal(
        "FAIL", "sasl_ssl://b-1:9198/bootstrap: SASL PLAIN mechanism handshake failed: Broker: "
                "Unsupported SASL mechanism: broker's supported mechanisms: SCRAM-SHA-512 (after "
                "379ms in state AUTH_HANDSHAKE)"));
    /* not refusals: a broker that is down or went away, and other facilities */
    CHECK(!sy_kafka_is_refusal("FAIL", "127.0.0.1:9/bootstrap: Connect to ipv4#127.0.0.1:9 "
                                       "failed: Connection refused (after 0ms in state CONNECT)"));
    CHECK(!sy_kafka_is_refusal("FAIL", "ssl://127.0.0.1:1/1: Receive failed: error:0A000126:SSL "
                                       "routines::unexpected eof while reading (after 5ms in "
                                       "state UP)"));
    CHECK(!sy_kafka_is_refusal("ERROR", WRONG_PASSWORD));
    CHECK(!sy_kafka_is_refusal(NULL, WRONG_PASSWORD));

    /* nothing logged yet: a timeout stays a timeout */
    char why[300];
    CHECK(!sy_kafka_last_refusal(10000, why, sizeof(why)));
    sy_err_t err = SY_ERR_INIT;
    sy_err_set(&err, SY_ERR_TIMEOUT, true, "Kafka broker unreachable within 10000 ms: x");
    sy_kafka_explain(&err, 10000);
    CHECK(err.code == SY_ERR_TIMEOUT && err.retriable);

    /* a line that is not a refusal is not remembered */
    sy_kafka_log_cb(NULL, 3, "FAIL", "127.0.0.1:9/bootstrap: Connect to ipv4#127.0.0.1:9 failed");
    CHECK(!sy_kafka_last_refusal(10000, NULL, 0));

    /* once one is logged, the timeout is explained by it: not retriable, the broker's words
     * (from its name on) and the original message kept */
    sy_kafka_log_cb(NULL, 3, "FAIL", WRONG_PASSWORD);
    CHECK(sy_kafka_last_refusal(0, why, sizeof(why)));
    const char *from_name = "sasl_ssl://127.0.0.1:34829/bootstrap: SASL authentication error";
    CHECK(!strncmp(why, from_name, strlen(from_name)));
    CHECK(strstr(why, "(after") == NULL);
    sy_kafka_explain(&err, 10000);
    CHECK(err.code == SY_ERR_AUTH && !err.retriable);
    CHECK(strstr(err.msg, "refused the connection") != NULL);
    CHECK(strstr(err.msg, "invalid credentials") != NULL);
    CHECK(strstr(err.msg, "(Kafka broker unreachable within 10000 ms: x)") != NULL);
    CHECK_STR(sy_err_code_name(err.code), "auth");

    /* only retriable timeouts and Kafka errors are explained */
    sy_err_t other = SY_ERR_INIT;
    sy_err_set(&other, SY_ERR_NOT_FOUND, true, "topic t.status does not exist");
    sy_kafka_explain(&other, 10000);
    CHECK(other.code == SY_ERR_NOT_FOUND);
    sy_err_set(&other, SY_ERR_KAFKA, false, "create topic t: invalid replication factor");
    sy_kafka_explain(&other, 10000);
    CHECK(other.code == SY_ERR_KAFKA);
    sy_kafka_explain(NULL, 10000);
    SY_TEST_DONE();
}
