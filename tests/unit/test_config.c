/* Unit tests of sy_config: table defaults, precedence file < env < command line, kafka.*
 * passthrough, unknown keys named in the error, durations, secrets masked in dumps. */
#include <stdlib.h>
#include <fcntl.h>
#include <unistd.h>

#include "sy_config.h"
#include "sy_test.h"

static int count_kafka(const char *prop, const char *value, void *opaque)
{
    (*(int *)opaque)++;
    return 0;
}

int main(void)
{
    sy_err_t err = SY_ERR_INIT;
    sy_config_t *c = sy_config_new();
    CHECK_STR(sy_config_get(c, "bootstrap.servers"), "localhost:9092");
    CHECK_STR(sy_config_get(c, "topic.namespace"), "switchyard");
    CHECK(sy_config_get_int(c, "schema.registry.timeout.ms") == 5000);
    CHECK(sy_config_get_bool(c, "schema.registry.auto.register"));

    /* unknown key: error names it */
    CHECK(sy_config_set(c, "bootstrap.server", "x", &err) == SY_ERR_CONFIG);
    CHECK(strstr(err.msg, "bootstrap.server") != NULL);
    CHECK(sy_config_set(c, "schema.registry.timeout.ms", "abc", &err) == SY_ERR_CONFIG);
    CHECK(sy_config_set(c, "log.level", "chatty", &err) == SY_ERR_CONFIG);

    /* precedence: file < env < overrides */
    char path[] = "/tmp/sy_test_config_XXXXXX";
    int fd = mkstemp(path);
    const char *text = "# comment\nbootstrap.servers = file:1\ntopic.namespace=fromfile\n"
                       "kafka.security.protocol = SASL_SSL\nkafka.sasl.password = hunter2\n"
                       "database.url = postgresql://u:pw@h/db\n";
    CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
    char *envp[] = {"PATH=/bin", "SWITCHYARD_BOOTSTRAP_SERVERS=env:2",
                    "SWITCHYARD_KAFKA_SOCKET_TIMEOUT_MS=1234", NULL};
    char *overrides[] = {"topic.namespace=cli", "log.level=debug"};
    sy_config_t *c2 = sy_config_new();
    CHECK(sy_config_load(c2, path, envp, overrides, 2, &err) == SY_OK);
    CHECK_STR(sy_config_get(c2, "bootstrap.servers"), "env:2");
    CHECK_STR(sy_config_get(c2, "topic.namespace"), "cli");
    int n = 0;
    sy_config_kafka_foreach(c2, count_kafka, &n);
    CHECK(n == 3); /* security.protocol, sasl.password, socket.timeout.ms */

    /* dump masks secrets */
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    sy_config_dump(c2, mem);
    fclose(mem);
    CHECK(strstr(buf, "hunter2") == NULL);
    CHECK(strstr(buf, "pw@") == NULL);
    CHECK(strstr(buf, "kafka.socket.timeout.ms = 1234") != NULL);
    free(buf);
    /* ... also inside values that are not secret as a whole */
    CHECK(sy_config_set(c2, "schema.registry.url", "https://reg:regpa55@r.example/apis", &err) ==
          SY_OK);
    CHECK(sy_config_set(c2, "kafka.sasl.oauthbearer.config", "principal=p clientSecret=cs3",
                        &err) == SY_OK);
    CHECK(sy_config_set(c2, "kafka.ssl.keystore.password", "st0re", &err) == SY_OK);
    mem = open_memstream(&buf, &len);
    sy_config_dump(c2, mem);
    fclose(mem);
    CHECK(strstr(buf, "regpa55") == NULL);
    CHECK(strstr(buf, "schema.registry.url = https://reg:***@r.example/apis") != NULL);
    CHECK(strstr(buf, "cs3") == NULL);
    CHECK(strstr(buf, "st0re") == NULL);
    free(buf);

    /* unknown SWITCHYARD_ variable named */
    char *bad_env[] = {"SWITCHYARD_BOOTSTRAP_SERVER=x", NULL};
    CHECK(sy_config_load_env(c2, bad_env, &err) == SY_ERR_CONFIG);
    CHECK(strstr(err.msg, "SWITCHYARD_BOOTSTRAP_SERVER") != NULL);

    /* bad file line */
    fd = open(path, O_WRONLY | O_TRUNC);
    CHECK(write(fd, "nonsense\n", 9) == 9);
    close(fd);
    CHECK(sy_config_load_file(c2, path, &err) == SY_ERR_CONFIG);
    CHECK(strstr(err.msg, ":1") != NULL);
    unlink(path);

    /* the file parser on text: any line length (a 4096-byte line buffer used to cut long
     * lines, and the rest was read as a line of its own), CRLF, a NUL refused */
    sy_config_t *c3 = sy_config_new();
    size_t vlen = 10000;
    char *big = malloc(vlen + 64);
    int off = sprintf(big, "bootstrap.servers = ");
    memset(big + off, 'b', vlen);
    strcpy(big + off + vlen, "\r\nclient.id=x=y\r\n");
    CHECK(sy_config_load_text(c3, big, strlen(big), "big.conf", &err) == SY_OK);
    CHECK(strlen(sy_config_get(c3, "bootstrap.servers")) == vlen);
    CHECK_STR(sy_config_get(c3, "client.id"), "x=y");
    free(big);
    CHECK(sy_config_load_text(c3, "log.level = warn\n\0x", 19, "nul.conf", &err) == SY_ERR_CONFIG);
    CHECK(strstr(err.msg, "nul.conf:2") != NULL);
    CHECK(sy_config_load_text(c3, "a", 0, "empty.conf", &err) == SY_OK);
    const char *blank = "# only\n\n   \n";
    CHECK(sy_config_load_text(c3, blank, strlen(blank), "c.conf", &err) == SY_OK);
    CHECK(sy_config_load_text(c3, "topic.namespace = n", 19, "noeol.conf", &err) == SY_OK);
    CHECK_STR(sy_config_get(c3, "topic.namespace"), "n");
    const char *bogus = "\nbogus.key = 1\n";
    CHECK(sy_config_load_text(c3, bogus, strlen(bogus), "b.conf", &err) == SY_ERR_CONFIG);
    CHECK(strstr(err.msg, "b.conf:2") && strstr(err.msg, "bogus.key"));
    sy_config_destroy(c3);

    CHECK(sy_config_parse_duration_ms("2h") == 7200000);
    CHECK(sy_config_parse_duration_ms("30s") == 30000);
    CHECK(sy_config_parse_duration_ms("1.5m") == 90000);
    CHECK(sy_config_parse_duration_ms("250") == 250);
    CHECK(sy_config_parse_duration_ms("-1s") == -1);
    CHECK(sy_config_parse_duration_ms("2 fortnights") == -1);

    sy_config_destroy(c2);
    sy_config_destroy(c);
    sy_config_destroy(NULL);
    SY_TEST_DONE();
}
