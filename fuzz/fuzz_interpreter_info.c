/* The zygote's IPC_Z_HELLO payload as the server reads it (server/zygote_link.c's
 * on_hello): u32 isolation layers, then interpreter_info_get (common/interpreter_info.c),
 * and what the server makes of it: the /v1/environment document
 * (wire_encode_environment) and /healthz (wire_encode_health).
 *
 * Properties, besides "no crash, no leak, no UB":
 * - every string of the decoded info is NUL-terminated inside its field, and the counts
 *   stay within INTERPRETER_INFO_LIBRARIES and INTERPRETER_INFO_FAILURES;
 * - interpreter_info_put of the decoded info decodes to the same info;
 * - both documents are valid JSON; and valid UTF-8 whenever every string the zygote sent
 *   was (the server cuts over-long strings to fit its fields: a cut must not split a
 *   character). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/interpreter_info.h"
#include "common/ipc.h"
#include "fuzz/fuzz_util.h"
#include "server/health_report.h"
#include "server/wire.h"

/* 1 when every string of the payload (read as interpreter_info_put writes it) is valid
 * UTF-8. */
static int strings_valid(const uint8_t *data, size_t size)
{
    struct ipc_cursor c;
    size_t n;
    const unsigned char *s;
    ipc_cursor_init(&c, data, size);
    ipc_get_u32(&c);
    s = ipc_get_bytes(&c, &n);
    if (s && !fuzz_utf8_valid(s, n))
        return 0;
    uint32_t count = ipc_get_u32(&c);
    for (uint32_t i = 0; i < count && !c.failed; i++) {
        for (int k = 0; k < 2; k++) {
            s = ipc_get_bytes(&c, &n);
            if (s && !fuzz_utf8_valid(s, n))
                return 0;
        }
        ipc_get_u32(&c);
    }
    count = ipc_get_u32(&c);
    for (uint32_t i = 0; i < count && !c.failed; i++) {
        s = ipc_get_bytes(&c, &n);
        if (s && !fuzz_utf8_valid(s, n))
            return 0;
    }
    return 1;
}

static void check_document(const char *id, const char *what, char *text, size_t len,
                           int utf8)
{
    if (utf8) {
        fuzz_check_json_output(id, what, text, len, 1);
    } else {
        FUZZ_CHECK(text != NULL, "info-null", "%s returned NULL", what);
    }
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ipc_cursor c;
    ipc_cursor_init(&c, data, size);
    uint32_t granted = ipc_get_u32(&c);
    struct interpreter_info *said = malloc(sizeof(*said));
    if (!said)
        abort();
    if (c.failed || interpreter_info_get(&c, said) < 0) {
        free(said);
        return 0;
    }
    FUZZ_CHECK(strnlen(said->python, sizeof(said->python)) < sizeof(said->python),
               "info-fields", "python not NUL-terminated");
    FUZZ_CHECK(said->nlibraries <= INTERPRETER_INFO_LIBRARIES &&
               said->nfailures <= INTERPRETER_INFO_FAILURES, "info-fields",
               "%u libraries, %u failures", said->nlibraries, said->nfailures);
    for (unsigned i = 0; i < said->nlibraries && i < INTERPRETER_INFO_LIBRARIES; i++) {
        const struct library_version *l = &said->libraries[i];
        FUZZ_CHECK(strnlen(l->name, sizeof(l->name)) < sizeof(l->name) &&
                   strnlen(l->version, sizeof(l->version)) < sizeof(l->version),
                   "info-fields", "library %u: a string not NUL-terminated", i);
    }
    for (unsigned i = 0; i < said->nfailures && i < INTERPRETER_INFO_FAILURES; i++)
        FUZZ_CHECK(strnlen(said->import_failures[i], 256) < 256, "info-fields",
                   "import failure %u not NUL-terminated", i);

    /* What the server decoded, written and read again, is the same. */
    struct ipc_buf b;
    ipc_buf_init(&b);
    interpreter_info_put(&b, said);
    FUZZ_CHECK(!b.failed, "info-roundtrip", "interpreter_info_put failed");
    struct interpreter_info *again = malloc(sizeof(*again));
    if (!again)
        abort();
    ipc_cursor_init(&c, b.data, b.len);
    FUZZ_CHECK(interpreter_info_get(&c, again) == 0 && c.left == 0, "info-roundtrip",
               "what interpreter_info_put wrote does not read back whole");
    FUZZ_CHECK(memcmp(said, again, sizeof(*said)) == 0, "info-roundtrip",
               "the info changed through interpreter_info_put and _get");
    free(again);
    ipc_buf_release(&b);

    int utf8 = strings_valid(data, size);
    size_t len = 0;
    char *env = wire_encode_environment(said, "policies/default.policy", &len);
    check_document("info-environment", "wire_encode_environment", env, len, utf8);
    struct health_report *h = calloc(1, sizeof(*h));
    if (!h)
        abort();
    h->zygote_state = ZYGOTE_READY;
    h->zygote_pid = 42;
    h->layers = granted;
    h->layers_known = 1;
    h->interpreter = *said;
    h->policy_name = "policies/default.policy";
    len = 0;
    char *health = wire_encode_health(h, &len);
    check_document("info-health", "wire_encode_health", health, len, utf8);
    free(h);
    free(said);
    return 0;
}
