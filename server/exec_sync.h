/* The executor as a blocking call, for threads that may wait (the model turn runners):
 * each function submits, then waits for the executor thread's answer. Never call these
 * from an HTTP thread or from the executor thread. */
#ifndef PYEXECD_EXEC_SYNC_H
#define PYEXECD_EXEC_SYNC_H

#include <stddef.h>

#include "../common/result.h"
#include "execution.h"

/* A new turn interpreter (an internal session). Returns PX_OK with its id in id[33], or
 * the error with a message for the client in msg. */
enum px_result exec_sync_open(char id[33], char *msg, size_t msglen);

/* Runs req (borrowed) in interpreter id. Returns PX_OK with *res (the caller frees it
 * with exec_result_free), or the error with a message in msg. */
enum px_result exec_sync_run(const char *id, const struct exec_request *req,
                             struct exec_result **res, char *msg, size_t msglen);

/* Ends interpreter id (its worker and files go). Errors are ignored: it may have ended
 * already (a deadline, a crash). */
void exec_sync_close(const char *id);

#endif
