/* sy_http: one HTTP exchange on a caller-owned, reused libcurl easy handle. */
#include "sy_http.h"

#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEFAULT_TIMEOUT_MS 30000L
#define DEFAULT_MAX_BODY   (16u * 1024 * 1024)
#define MAX_HEADER_BYTES   (64u * 1024)

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_OK;

static void global_init(void)
{
    /* Never paired with curl_global_cleanup: handles may live until exit, and cleanup is not
     * thread-safe. */
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

CURL *sy_http_handle_new(sy_err_t *err)
{
    pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK) {
        sy_err_set(err, SY_ERR_HTTP, false, "curl_global_init: %s", curl_easy_strerror(global_rc));
        return NULL;
    }
    CURL *curl = curl_easy_init();
    if (!curl)
        sy_err_set(err, SY_ERR_NOMEM, false, "curl_easy_init failed");
    return curl;
}

typedef struct buf {
    char *data;
    size_t len, cap, limit;
    bool overflow;
} buf_t;

static bool buf_append(buf_t *b, const char *p, size_t n)
{
    if (b->len + n > b->limit) {
        b->overflow = true;
        return false;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d)
            return false;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return true;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *opaque)
{
    size_t n = size * nmemb;
    return buf_append(opaque, ptr, n) ? n : 0;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *opaque)
{
    buf_t *b = opaque;
    size_t n = size * nmemb;
    /* A new status line starts a new block (1xx interim responses, redirects): keep the last. */
    if (n >= 5 && !strncmp(ptr, "HTTP/", 5))
        b->len = 0;
    return buf_append(b, ptr, n) ? n : 0;
}

void sy_http_response_clear(sy_http_response_t *resp)
{
    if (!resp)
        return;
    free(resp->body);
    free(resp->headers);
    *resp = (sy_http_response_t)SY_HTTP_RESPONSE_INIT;
}

sy_err_code_t sy_http_perform(CURL *curl, const sy_http_request_t *req, sy_http_response_t *resp,
                              sy_err_t *err)
{
    sy_http_response_clear(resp);
    buf_t body = {.limit = req->max_body ? req->max_body : DEFAULT_MAX_BODY};
    buf_t headers = {.limit = MAX_HEADER_BYTES};
    const char *method = req->method ? req->method : "GET";
    long timeout = req->timeout_ms > 0 ? req->timeout_ms : DEFAULT_TIMEOUT_MS;
    long connect_timeout = req->connect_timeout_ms > 0 ? req->connect_timeout_ms : timeout;
    sy_err_code_t rc = SY_OK;

    curl_easy_reset(curl); /* keeps live connections, DNS and TLS session caches */
    curl_easy_setopt(curl, CURLOPT_URL, req->url);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L); /* timeouts without SIGALRM: thread-safe */
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, connect_timeout);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
    /* Paths go out exactly as given: S3 keys may hold "./" or "../", which are not dot segments. */
    curl_easy_setopt(curl, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &headers);
    if (req->headers)
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, req->headers);
    if (!strcmp(method, "HEAD")) {
        curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    } else if (req->body || strcmp(method, "GET") != 0) {
        if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0)
            curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
        if (req->body || !strcmp(method, "POST") || !strcmp(method, "PUT")) {
            /* POSTFIELDS (not a read callback) so that SigV4 can hash the payload. */
            curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
            curl_easy_setopt(curl, CURLOPT_POSTFIELDS, req->body ? req->body : "");
        }
    }
    if (req->aws_sigv4) {
        curl_easy_setopt(curl, CURLOPT_AWS_SIGV4, req->aws_sigv4);
        curl_easy_setopt(curl, CURLOPT_USERPWD, req->userpwd);
    }

    CURLcode cc = curl_easy_perform(curl);
    long connects = 0;
    curl_easy_getinfo(curl, CURLINFO_NUM_CONNECTS, &connects);
    resp->connects = connects;
    if (cc == CURLE_OK) {
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &resp->status);
    } else if (cc == CURLE_WRITE_ERROR && body.overflow) {
        rc = sy_err_set(err, SY_ERR_TOO_LARGE, false, "%s %s: response larger than %zu bytes",
                        method, req->url, body.limit);
    } else {
        curl_off_t pretransfer = 0;
        curl_easy_getinfo(curl, CURLINFO_PRETRANSFER_TIME_T, &pretransfer);
        bool retriable = true;
        sy_err_code_t code = SY_ERR_HTTP;
        switch (cc) {
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
        case CURLE_COULDNT_CONNECT:
            resp->not_sent = true;
            break;
        case CURLE_OPERATION_TIMEDOUT:
            code = SY_ERR_TIMEOUT;
            resp->not_sent = pretransfer == 0; /* timed out before the request went out */
            break;
        case CURLE_SEND_ERROR:
        case CURLE_RECV_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_PARTIAL_FILE:
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_HTTP2:
        case CURLE_HTTP2_STREAM:
            break;
        case CURLE_OUT_OF_MEMORY:
            code = SY_ERR_NOMEM;
            retriable = false;
            break;
        default:
            retriable = false;
            break;
        }
        /* The URL carries no secret (credentials travel in headers), so it may be named. */
        rc =
            sy_err_set(err, code, retriable, "%s %s: %s", method, req->url, curl_easy_strerror(cc));
    }
    /* Never leave the signing key in the handle longer than the exchange. */
    if (req->aws_sigv4)
        curl_easy_setopt(curl, CURLOPT_USERPWD, NULL);
    if (rc == SY_OK && !body.data && !buf_append(&body, "", 0))
        rc = sy_err_set(err, SY_ERR_NOMEM, false, "out of memory");
    resp->body = body.data;
    resp->body_len = body.len;
    resp->headers = headers.data;
    resp->headers_len = headers.len;
    return rc;
}

bool sy_http_response_header(const sy_http_response_t *resp, const char *name, char *out,
                             size_t size)
{
    if (size)
        out[0] = '\0';
    if (!resp->headers)
        return false;
    size_t nlen = strlen(name);
    for (const char *line = resp->headers; *line;) {
        const char *eol = strchr(line, '\n');
        size_t llen = eol ? (size_t)(eol - line) : strlen(line);
        if (llen > nlen && line[nlen] == ':' && !strncasecmp(line, name, nlen)) {
            const char *v = line + nlen + 1, *e = line + llen;
            while (v < e && (*v == ' ' || *v == '\t'))
                v++;
            while (e > v && isspace((unsigned char)e[-1]))
                e--;
            if ((size_t)(e - v) >= size)
                return false;
            memcpy(out, v, (size_t)(e - v));
            out[e - v] = '\0';
            return true;
        }
        if (!eol)
            break;
        line = eol + 1;
    }
    return false;
}

char *sy_http_url_encode(const char *s, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *out = malloc(3 * n + 1), *o = out;
    if (!out)
        return NULL;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (isalnum(*p) || *p == '-' || *p == '_' || *p == '.' || *p == '~' ||
            (keep_slash && *p == '/')) {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
    }
    *o = '\0';
    return out;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

char *sy_http_url_decode(const char *s, size_t len)
{
    char *out = malloc(len + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < len && (hi = hexval(s[i + 1])) >= 0 &&
            (lo = hexval(s[i + 2])) >= 0) {
            *o++ = (char)(hi << 4 | lo);
            i += 2;
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return out;
}
