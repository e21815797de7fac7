/* itest_aws_server: a tiny HTTP/1.1 server on 127.0.0.1 for the AWS integration tests — a
 * thread per connection, keep-alive, and a handler callback that answers each request. Header
 * only (static functions): the AWS itests include it; it is not part of the core library. */
#ifndef ITEST_AWS_SERVER_H
#define ITEST_AWS_SERVER_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct ts_req {
    char method[16];
    char target[4096];   /* path and query as sent */
    char headers[16384]; /* "Name: value\r\n" lines */
    char *body;          /* NUL-terminated; valid during the handler call */
    size_t body_len;
} ts_req_t;

typedef struct ts_resp {
    int status;               /* 200 when left 0 */
    char content_type[64];    /* "application/json" when empty */
    char extra_headers[1024]; /* "Name: value\r\n" lines */
    char body[65536];
    size_t body_len; /* strlen(body) when 0 */
    int delay_ms;    /* wait before answering (timeouts) */
    bool close;      /* close the connection after answering */
} ts_resp_t;

typedef void (*ts_handler_fn)(void *opaque, const ts_req_t *req, ts_resp_t *resp);

#define TS_MAX_CONNS 64

typedef struct ts_server {
    int fd;
    int port;
    volatile int stop;
    pthread_t accept_thread;
    pthread_t conns[TS_MAX_CONNS];
    int n_conns;
    ts_handler_fn handler;
    void *opaque;
    pthread_mutex_t lock;
    int connections; /* accepted */
    int requests;    /* answered */
} ts_server_t;

typedef struct ts_conn_arg {
    ts_server_t *srv;
    int fd;
} ts_conn_arg_t;

/* The value of header name in req (case-insensitive), copied into out; NULL when absent. */
static inline const char *ts_header(const ts_req_t *req, const char *name, char *out, size_t size)
{
    size_t n = strlen(name);
    for (const char *l = req->headers; *l;) {
        const char *eol = strstr(l, "\r\n");
        if (!eol)
            break;
        if (!strncasecmp(l, name, n) && l[n] == ':') {
            const char *v = l + n + 1;
            while (*v == ' ')
                v++;
            size_t len = (size_t)(eol - v);
            if (len >= size)
                len = size - 1;
            memcpy(out, v, len);
            out[len] = '\0';
            return out;
        }
        l = eol + 2;
    }
    return NULL;
}

/* Waits up to 100 ms for fd to be readable; -1 on stop. */
static int ts_wait(ts_server_t *s, int fd)
{
    for (;;) {
        if (s->stop)
            return -1;
        struct pollfd p = {fd, POLLIN, 0};
        int r = poll(&p, 1, 100);
        if (r > 0)
            return 0;
        if (r < 0 && errno != EINTR)
            return -1;
    }
}

static void *ts_conn_main(void *arg)
{
    ts_conn_arg_t *a = arg;
    ts_server_t *s = a->srv;
    int fd = a->fd;
    free(a);
    size_t cap = 1 << 20, len = 0;
    char *buf = malloc(cap + 1);
    ts_req_t *req = calloc(1, sizeof(*req));
    ts_resp_t *resp = calloc(1, sizeof(*resp));
    for (;;) {
        char *end;
        while (!(buf[len] = '\0', end = strstr(buf, "\r\n\r\n"))) {
            if (len == cap || ts_wait(s, fd) < 0)
                goto out;
            ssize_t n = recv(fd, buf + len, cap - len, 0);
            if (n <= 0)
                goto out;
            len += (size_t)n;
        }
        memset(req, 0, sizeof(*req));
        size_t hlen = (size_t)(end - buf) + 4;
        char *line_end = strstr(buf, "\r\n");
        sscanf(buf, "%15s %4095s", req->method, req->target);
        size_t hbytes = hlen - (size_t)(line_end + 2 - buf);
        if (hbytes >= sizeof(req->headers))
            hbytes = sizeof(req->headers) - 1;
        memcpy(req->headers, line_end + 2, hbytes);
        char cl[32];
        size_t body_len = ts_header(req, "Content-Length", cl, sizeof(cl)) ? strtoul(cl, 0, 10) : 0;
        while (len < hlen + body_len) {
            if (len == cap || ts_wait(s, fd) < 0)
                goto out;
            ssize_t n = recv(fd, buf + len, cap - len, 0);
            if (n <= 0)
                goto out;
            len += (size_t)n;
        }
        req->body = malloc(body_len + 1);
        memcpy(req->body, buf + hlen, body_len);
        req->body[body_len] = '\0';
        req->body_len = body_len;
        memmove(buf, buf + hlen + body_len, len - hlen - body_len);
        len -= hlen + body_len;

        memset(resp, 0, sizeof(*resp));
        s->handler(s->opaque, req, resp);
        free(req->body);
        req->body = NULL;
        if (resp->delay_ms) {
            struct timespec ts = {resp->delay_ms / 1000, (resp->delay_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
        size_t blen = resp->body_len ? resp->body_len : strlen(resp->body);
        char head[2048];
        int hn = snprintf(head, sizeof(head),
                          "HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s%s\r\n",
                          resp->status ? resp->status : 200,
                          resp->content_type[0] ? resp->content_type : "application/json", blen,
                          resp->extra_headers, resp->close ? "Connection: close\r\n" : "");
        bool head_only = !strcmp(req->method, "HEAD");
        /* one write: header and body in two segments would meet the peer's delayed ACK */
        char *wire = malloc((size_t)hn + blen);
        memcpy(wire, head, (size_t)hn);
        if (!head_only)
            memcpy(wire + hn, resp->body, blen);
        ssize_t sent = send(fd, wire, (size_t)hn + (head_only ? 0 : blen), MSG_NOSIGNAL);
        free(wire);
        if (sent < 0)
            goto out;
        pthread_mutex_lock(&s->lock);
        s->requests++;
        pthread_mutex_unlock(&s->lock);
        if (resp->close)
            goto out;
    }
out:
    close(fd);
    free(buf);
    free(req);
    free(resp);
    return NULL;
}

static void *ts_accept_main(void *arg)
{
    ts_server_t *s = arg;
    while (ts_wait(s, s->fd) == 0) {
        int fd = accept(s->fd, NULL, NULL);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        pthread_mutex_lock(&s->lock);
        bool room = s->n_conns < TS_MAX_CONNS;
        if (room)
            s->connections++;
        pthread_mutex_unlock(&s->lock);
        ts_conn_arg_t *a = malloc(sizeof(*a));
        a->srv = s;
        a->fd = fd;
        if (!room || pthread_create(&s->conns[s->n_conns], NULL, ts_conn_main, a) != 0) {
            close(fd);
            free(a);
            continue;
        }
        s->n_conns++;
    }
    return NULL;
}

/* Listens on 127.0.0.1:<free port> (s->port); 0 on success. */
static inline int ts_start(ts_server_t *s, ts_handler_fn handler, void *opaque)
{
    memset(s, 0, sizeof(*s));
    s->handler = handler;
    s->opaque = opaque;
    pthread_mutex_init(&s->lock, NULL);
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    if (s->fd < 0 || bind(s->fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(s->fd, 64) < 0 ||
        getsockname(s->fd, (struct sockaddr *)&a, &alen) < 0)
        return -1;
    s->port = ntohs(a.sin_port);
    return pthread_create(&s->accept_thread, NULL, ts_accept_main, s) ? -1 : 0;
}

static inline void ts_stop(ts_server_t *s)
{
    s->stop = 1;
    pthread_join(s->accept_thread, NULL);
    for (int i = 0; i < s->n_conns; i++)
        pthread_join(s->conns[i], NULL);
    close(s->fd);
    pthread_mutex_destroy(&s->lock);
}

static inline int ts_connections(ts_server_t *s)
{
    pthread_mutex_lock(&s->lock);
    int n = s->connections;
    pthread_mutex_unlock(&s->lock);
    return n;
}

#endif
