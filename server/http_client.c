#include "http_client.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/limits.h"

int http_client_init(char *err, size_t errlen)
{
    CURLcode c = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (c != CURLE_OK) {
        snprintf(err, errlen, "libcurl: %s", curl_easy_strerror(c));
        return -1;
    }
    return 0;
}

struct sink {
    char *data;
    size_t len, cap;
    int too_large;
};

static size_t on_data(char *p, size_t size, size_t n, void *ctx)
{
    struct sink *s = ctx;
    size_t k = size * n;
    if (s->len + k > LIMIT_UPSTREAM_BODY_BYTES) {
        s->too_large = 1;
        return 0;   /* aborts the transfer */
    }
    if (s->len + k + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 16384;
        while (cap < s->len + k + 1)
            cap *= 2;
        char *grown = realloc(s->data, cap);
        if (!grown)
            return 0;
        s->data = grown;
        s->cap = cap;
    }
    memcpy(s->data + s->len, p, k);
    s->len += k;
    s->data[s->len] = '\0';
    return k;
}

static int on_progress(void *ctx, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    int (*stop)(void) = (int (*)(void))ctx;
    (void)dt, (void)dn, (void)ut, (void)un;
    return stop && stop() ? 1 : 0;
}

int http_post_json(const char *url, const char *token, const char *body, size_t len,
                   unsigned connect_ms, unsigned total_ms, int (*stop)(void),
                   struct http_response *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    CURL *h = curl_easy_init();
    if (!h) {
        snprintf(err, errlen, "cannot start an HTTP client");
        return -1;
    }
    struct sink s = {0};
    char auth[1100];
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    headers = curl_slist_append(headers, "Accept: application/json");
    if (token) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
        headers = curl_slist_append(headers, auth);
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)connect_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)total_ms);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);   /* threads: no SIGALRM for timeouts */
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, (void *)stop);
    CURLcode c = curl_easy_perform(h);
    int rc = 0;
    if (c != CURLE_OK) {
        snprintf(err, errlen, "%s", s.too_large ? "the response is larger than the limit"
                 : c == CURLE_ABORTED_BY_CALLBACK ? "the server is stopping"
                 : curl_easy_strerror(c));
        free(s.data);
        rc = s.too_large ? -2 : -1;
    } else {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
        out->body = s.data ? s.data : calloc(1, 1);
        out->len = s.len;
        if (!out->body) {
            snprintf(err, errlen, "out of memory");
            rc = -1;
        }
    }
    curl_slist_free_all(headers);
    curl_easy_cleanup(h);
    return rc;
}
