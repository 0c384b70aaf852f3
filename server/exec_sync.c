#include "exec_sync.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "executor.h"

/* One call waiting for its answer. */
struct waiter {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done;
    enum px_result status;
    char message[512];
    struct exec_result *result;   /* taken over from the reply */
    char session_id[LIMIT_SESSION_ID_BYTES];
};

static void waiter_init(struct waiter *w)
{
    memset(w, 0, sizeof(*w));
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
}

static void waiter_release(struct waiter *w)
{
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
}

/* exec_done_fn: copies the answer and wakes the caller (on the executor thread). */
static void on_done(void *ctx, struct exec_reply *reply)
{
    struct waiter *w = ctx;
    pthread_mutex_lock(&w->lock);
    w->status = reply->status;
    snprintf(w->message, sizeof(w->message), "%s", reply->message ? reply->message : "");
    w->result = reply->result;
    reply->result = NULL;
    snprintf(w->session_id, sizeof(w->session_id), "%s", reply->session.id);
    w->done = 1;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

/* Waits for the answer to a call submitted with status r. */
static enum px_result wait_for(struct waiter *w, enum px_result r, char *msg, size_t msglen)
{
    if (r != PX_OK) {
        snprintf(msg, msglen, "%s", r == PX_QUEUE_FULL || r == PX_SESSION_LIMIT
                 ? "Every worker is busy and the queue is full; retry later."
                 : r == PX_SHUTTING_DOWN ? "The server is shutting down."
                 : px_result_str(r));
        return r;
    }
    pthread_mutex_lock(&w->lock);
    while (!w->done)
        pthread_cond_wait(&w->cond, &w->lock);
    pthread_mutex_unlock(&w->lock);
    if (w->status != PX_OK)
        snprintf(msg, msglen, "%s", w->message[0] ? w->message : px_result_str(w->status));
    return w->status;
}

/* The results of an answered call: *res on PX_OK, freed otherwise. */
static void take_result(struct waiter *w, enum px_result r, struct exec_result **res)
{
    *res = w->result;
    if (r != PX_OK) {
        exec_result_free(w->result);
        *res = NULL;
    }
}

enum px_result exec_sync_start(char id[LIMIT_SESSION_ID_BYTES], const struct exec_request *req,
                               struct exec_result **res, char *msg, size_t msglen)
{
    struct waiter w;
    waiter_init(&w);
    enum px_result r = wait_for(&w, executor_session_create(NULL, 1, req, on_done, &w), msg,
                                msglen);
    memcpy(id, w.session_id, LIMIT_SESSION_ID_BYTES);
    take_result(&w, r, res);
    waiter_release(&w);
    return r;
}

enum px_result exec_sync_run(const char *id, const struct exec_request *req,
                             struct exec_result **res, char *msg, size_t msglen)
{
    struct waiter w;
    waiter_init(&w);
    enum px_result r = wait_for(&w, executor_session_execute(NULL, 1, id, req, on_done, &w), msg,
                                msglen);
    take_result(&w, r, res);
    waiter_release(&w);
    return r;
}

void exec_sync_close(const char *id)
{
    struct waiter w;
    char msg[64];
    waiter_init(&w);
    wait_for(&w, executor_session_delete(NULL, 1, id, on_done, &w), msg, sizeof(msg));
    waiter_release(&w);
}
