/* API keys (--api-key-file): the keys the server accepts, each with an id that logs may
 * name (never the key), and the check of the key a request presents. Without a key file
 * every request is let through. Loaded once at start, read-only after: thread-safe. */
#ifndef PYEXECD_API_KEYS_H
#define PYEXECD_API_KEYS_H

#include <stddef.h>

#include "../common/result.h"

/* Reads the key file: one key per line, `ID KEY` or just `KEY` (its id is then `key-N`,
 * N its line), blank lines and `#` comments skipped. A key is LIMIT_API_KEY_MIN_BYTES to
 * LIMIT_API_KEY_BYTES printable ASCII characters without spaces; an id at most
 * LIMIT_API_KEY_ID_BYTES of them. Returns 0, or -1 with "FILE:LINE: why" in err (no key
 * is then loaded). */
int api_keys_load(const char *path, char *err, size_t errlen);

/* Nonzero when a key file was loaded. */
int api_keys_enabled(void);

/* Checks a presented key (NULL or "" when the request had none): PX_OK (with the key's id
 * in *id, borrowed for the server's life), PX_UNAUTHENTICATED when none was presented,
 * PX_PERMISSION_DENIED when it matches no key. Compares with every key, in time that
 * does not depend on how much of the key is right. Without a key file: PX_OK, id NULL. */
enum px_result api_keys_check(const char *presented, const char **id);

/* Frees the keys. */
void api_keys_release(void);

#endif
