/* load.c — see load.h. */
#include "load.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct srv *guarded[8];
static int nguarded;

static void guard_atexit(void)
{
    for (int i = 0; i < nguarded; i++) {
        if (guarded[i]->pid) {
            fprintf(stderr, "guard: killing server %d left running; data %s, log %s\n",
                    (int)guarded[i]->pid, guarded[i]->dir, guarded[i]->log);
            srv_kill9(guarded[i]);
        }
    }
}

void guard_srv(struct srv *s)
{
    for (int i = 0; i < nguarded; i++)
        if (guarded[i] == s) return;
    if (nguarded == 0) atexit(guard_atexit);
    if (nguarded < 8) guarded[nguarded++] = s;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    struct resp *r = ud;
    size_t len = size * n;
    char *nb = realloc(r->body, r->n + len + 1);
    if (!nb) return 0;
    memcpy(nb + r->n, p, len);
    r->n += len;
    nb[r->n] = 0;
    r->body = nb;
    return len;
}

int client_init(struct client *cl, const struct srv *s)
{
    cl->c = curl_easy_init();
    cl->port = s->port;
    snprintf(cl->auth, sizeof(cl->auth), "%s", s->auth);
    return cl->c ? 0 : -1;
}

void client_free(struct client *cl)
{
    if (cl->c) curl_easy_cleanup(cl->c);
    cl->c = NULL;
}

int client_req(struct client *cl, const char *method, const char *path, const char *body,
               struct resp *out)
{
    memset(out, 0, sizeof(*out));
    out->body = calloc(1, 1);
    char url[4096];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", cl->port, path);
    struct curl_slist *hl = NULL;
    hl = curl_slist_append(hl, "Expect:");
    if (cl->auth[0]) hl = curl_slist_append(hl, cl->auth);
    if (body) hl = curl_slist_append(hl, "Content-Type: application/json");
    CURL *c = cl->c;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    } else {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, NULL);
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    }
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hl);
    return rc == CURLE_OK ? 0 : -1;
}

static void add_ack(struct load *l, long long id, const char *title)
{
    if (l->nacks == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 1024;
        struct ack *na = realloc(l->acks, nc * sizeof(*na));
        if (!na) abort();
        l->acks = na;
        l->cap = nc;
    }
    l->acks[l->nacks].id = id;
    snprintf(l->acks[l->nacks].title, LOAD_TITLE_MAX, "%s", title);
    l->nacks++;
}

struct worker {
    struct load *l;
    int t;
};

static void *worker_main(void *arg)
{
    struct load *l = ((struct worker *)arg)->l;
    int t = ((struct worker *)arg)->t;
    free(arg);
    struct client cl;
    if (client_init(&cl, l->s)) return NULL;
    size_t bn = 256 + l->desc_len;
    char *body = malloc(bn);
    char *desc = malloc(l->desc_len + 1);
    if (!body || !desc) abort();
    for (size_t i = 0; i < l->desc_len; i++)
        desc[i] = (char)('a' + (i * 7 + (size_t)t) % 26);
    desc[l->desc_len] = 0;
    for (int i = 0; i < l->max_per_thread && !atomic_load(&l->stop); i++) {
        char title[LOAD_TITLE_MAX];
        snprintf(title, sizeof(title), "%s-t%d-%d", l->tag, t, i);
        if (l->desc_len)
            snprintf(body, bn,
                     "{\"title\":\"%s\",\"partner\":\"P%d\",\"budget\":\"%d.50\","
                     "\"region\":\"east\",\"description\":\"%s\"}",
                     title, t, i, desc);
        else
            snprintf(body, bn,
                     "{\"title\":\"%s\",\"partner\":\"P%d\",\"budget\":\"%d.50\","
                     "\"region\":\"east\"}",
                     title, t, i);
        /* Until the answer comes this request is in flight. */
        pthread_mutex_lock(&l->m);
        snprintf(l->inflight[t], LOAD_TITLE_MAX, "%s", title);
        pthread_mutex_unlock(&l->m);
        struct resp r;
        int rc = client_req(&cl, "POST", "/api/v1/records/marketing_request", body, &r);
        pthread_mutex_lock(&l->m);
        if (rc) {
            l->nfail++; /* the server is gone: this one stays in flight */
            pthread_mutex_unlock(&l->m);
            resp_free(&r);
            break;
        }
        l->inflight[t][0] = 0;
        if (r.status == 201) {
            l->n201++;
            long long id = json_int(r.body, "id", -1);
            add_ack(l, id, title);
        } else if (r.status == 507) {
            if (!l->n507++) snprintf(l->body507, sizeof(l->body507), "%s", r.body);
            if (l->stop_on_507) atomic_store(&l->stop, 1);
        } else {
            if (!l->nother++) {
                l->other_status = r.status;
                snprintf(l->other_body, sizeof(l->other_body), "%s", r.body);
            }
        }
        pthread_mutex_unlock(&l->m);
        resp_free(&r);
    }
    free(body);
    free(desc);
    client_free(&cl);
    return NULL;
}

int load_start(struct load *l)
{
    if (l->nthreads < 1 || l->nthreads > LOAD_MAX_THREADS) return -1;
    pthread_mutex_init(&l->m, NULL);
    atomic_store(&l->stop, 0);
    for (int t = 0; t < l->nthreads; t++) {
        struct worker *w = malloc(sizeof(*w));
        if (!w) return -1;
        w->l = l;
        w->t = t;
        if (pthread_create(&l->th[t], NULL, worker_main, w)) return -1;
    }
    l->started = true;
    return 0;
}

void load_stop(struct load *l)
{
    if (!l->started) return;
    atomic_store(&l->stop, 1);
    for (int t = 0; t < l->nthreads; t++)
        pthread_join(l->th[t], NULL);
    l->started = false;
}

void load_free(struct load *l)
{
    free(l->acks);
    l->acks = NULL;
    l->nacks = l->cap = 0;
    pthread_mutex_destroy(&l->m);
}

size_t load_acked(struct load *l)
{
    pthread_mutex_lock(&l->m);
    size_t n = l->nacks;
    pthread_mutex_unlock(&l->m);
    return n;
}

int load_inflight(const struct load *l)
{
    int n = 0;
    for (int t = 0; t < l->nthreads; t++)
        if (l->inflight[t][0]) n++;
    return n;
}

long list_all(struct client *cl, struct ack **out)
{
    size_t n = 0, cap = 1024;
    struct ack *a = malloc(cap * sizeof(*a));
    char cursor[1024] = "";
    for (int page = 0; page < 10000 && a; page++) {
        char path[1400];
        snprintf(path, sizeof(path),
                 "/api/v1/records/marketing_request?limit=1000&fields=id,title%s%s",
                 cursor[0] ? "&cursor=" : "", cursor);
        struct resp r;
        if (client_req(cl, "GET", path, NULL, &r) || r.status != 200) {
            fprintf(stderr, "list_all: %ld %s\n", r.status, r.body ? r.body : "");
            resp_free(&r);
            break;
        }
        cJSON *j = cJSON_Parse(r.body);
        resp_free(&r);
        const cJSON *items = cJSON_GetObjectItemCaseSensitive(j, "items");
        const cJSON *it;
        cJSON_ArrayForEach(it, items)
        {
            if (n == cap) {
                cap *= 2;
                struct ack *na = realloc(a, cap * sizeof(*na));
                if (!na) abort();
                a = na;
            }
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
            const cJSON *title = cJSON_GetObjectItemCaseSensitive(it, "title");
            a[n].id = cJSON_IsNumber(id) ? (long long)id->valuedouble : -1;
            snprintf(a[n].title, LOAD_TITLE_MAX, "%s",
                     cJSON_IsString(title) ? title->valuestring : "");
            n++;
        }
        const cJSON *nc = cJSON_GetObjectItemCaseSensitive(j, "next_cursor");
        if (!cJSON_IsString(nc)) {
            cJSON_Delete(j);
            *out = a;
            return (long)n;
        }
        char *esc = curl_easy_escape(cl->c, nc->valuestring, 0);
        snprintf(cursor, sizeof(cursor), "%s", esc ? esc : "");
        curl_free(esc);
        cJSON_Delete(j);
    }
    free(a);
    *out = NULL;
    return -1;
}

long long metric(struct client *cl, const char *name)
{
    struct resp r;
    long long v = -1;
    if (client_req(cl, "GET", "/metrics", NULL, &r) == 0 && r.status == 200) {
        size_t nl = strlen(name);
        for (const char *p = r.body; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
            if (strncmp(p, name, nl) == 0 && p[nl] == ' ') {
                v = strtoll(p + nl + 1, NULL, 10);
                break;
            }
        }
    }
    resp_free(&r);
    return v;
}
