/* API keys (--api-key-file): the keys the server accepts, each with an id that logs and
 * replies may name (never the key), the check of the key a request presents, and each
 * key's own bounds: executions at once and sessions alive (429 beyond them, so that one
 * tenant cannot starve another). Without a key file every request is let through and no
 * per-key bound applies. The keys are loaded once at start and read-only after; their
 * counts are atomic: thread-safe. */
#ifndef PYEXECD_API_KEYS_H
#define PYEXECD_API_KEYS_H

#include <stddef.h>

#include "../common/result.h"
#include "admission.h"

struct api_key;

/* The bounds a key gets when its line names none (--key-max-executions,
 * --key-max-sessions); 0: no per-key bound. Call before api_keys_load. */
void api_keys_set_defaults(unsigned max_executions, unsigned max_sessions);

/* Reads the key file: one key per line, `ID KEY` or just `KEY` (its id is then `key-N`,
 * N its line), then optionally `executions=N` and `sessions=N` (that key's bounds,
 * overriding the defaults; 0: no per-key bound), blank lines and `#` comments skipped. A
 * key is LIMIT_API_KEY_MIN_BYTES to LIMIT_API_KEY_BYTES printable ASCII characters
 * without spaces (and does not begin with `executions=` or `sessions=`); an id at most
 * LIMIT_API_KEY_ID_BYTES of them. Returns 0, or -1 with "FILE:LINE: why" in err (no key
 * is then loaded). */
int api_keys_load(const char *path, char *err, size_t errlen);

/* Nonzero when a key file was loaded. */
int api_keys_enabled(void);

/* Checks a presented key (NULL or "" when the request had none): PX_OK (with the key in
 * *key, valid for the server's life), PX_UNAUTHENTICATED when none was presented,
 * PX_PERMISSION_DENIED when it matches no key. Compares with every key, in time that
 * does not depend on how much of the key is right. Without a key file: PX_OK, key NULL. */
enum px_result api_keys_check(const char *presented, struct api_key **key);

/* A key's id (what logs and replies may show); "" for NULL. */
const char *api_key_id(const struct api_key *key);

/* What a key counts. */
enum key_place {
    KEY_EXECUTIONS,   /* running or queued: /v1/execute, session executes, model turns
                       * that run code */
    KEY_SESSIONS,     /* alive, or being created */
};

/* The key's bound of `what`; 0 when it has none. */
unsigned api_key_bound(const struct api_key *key, enum key_place what);

/* Takes a place of `what` for key (NULL: none to take). Returns the place to give back
 * later (admission_release), NULL when there was nothing to take, or sets *refused and
 * returns NULL when the key is at its bound. */
struct admission *api_key_take(struct api_key *key, enum key_place what, int *refused);

/* The message of a 429 for a key at its bound of `what`: names the key's id and the
 * bound, never the key. */
void api_key_refusal(const struct api_key *key, enum key_place what, char *buf, size_t len);

/* Frees the keys. */
void api_keys_release(void);

#endif
