/* The executor as a blocking call, for threads that may wait (the model turn runners):
 * each function submits, then waits for the executor thread's answer. Never call these
 * from an HTTP thread or from the executor thread. */
#ifndef PYEXECD_EXEC_SYNC_H
#define PYEXECD_EXEC_SYNC_H

#include <stddef.h>

#include "../common/result.h"
#include "execution.h"

/* A new turn interpreter (an internal session) running req (borrowed) at once: one step,
 * not two. Returns as exec_sync_run does; id gets the interpreter's id whenever it
 * was made (also when the execution then failed: close it), else "". */
enum px_result exec_sync_start(char id[LIMIT_SESSION_ID_BYTES], const struct exec_request *req,
                               struct exec_result **res, char *msg, size_t msglen);

/* Runs req (borrowed) in interpreter id. Returns PX_OK with *res (the caller frees it
 * with exec_result_free), or the error with a message in msg. */
enum px_result exec_sync_run(const char *id, const struct exec_request *req,
                             struct exec_result **res, char *msg, size_t msglen);

/* Ends interpreter id (its worker and files go). Errors are ignored: it may have ended
 * already (a deadline, a crash). */
void exec_sync_close(const char *id);

#endif
