/* Unit tests of sy_kafka's refusals: which librdkafka log lines are a broker refusing us (lines
 * captured from librdkafka 2.0.2 against Kafka 3.9's SASL_SSL and mutual-TLS listeners), and how
 * a timeout is explained once one was logged. */
#include "sy_kafka.h"
#include "sy_log.h"
#include "sy_test.h"

#define BROKER "[thrd:sasl_ssl://127.0.0.1:34829/bootstrap]: sasl_ssl://127.0.0.1:34829/bootstrap: "
#define WRONG_PASSWORD                                                                             \
    BROKER "SASL authentication error: Authentication failed during authentication due to "        \
           "invalid credentials with SASL mechanism SCRAM-SHA-512 (after 326ms in state AUTH_REQ)"

int main(void)
{
    sy_log_set_level(SY_LOG_ERROR); /* the lines fed below are logged too */

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
