/* Every limit pyexecd enforces, with the reason for its value. The sandbox's limits are
 * policy values (policies/default.policy restates them, and a policy may change them);
 * the values here are what a policy that leaves one out gets. The rest are fixed by the
 * protocol. Each has a test at the limit and one past it. */
#ifndef PYEXECD_LIMITS_H
#define PYEXECD_LIMITS_H

/* Request body. Gemini accepts up to 20 MB of inline data per request; base64 adds a
 * third, and JSON a little more. */
#define LIMIT_BODY_BYTES            (28u * 1024 * 1024)

/* Request body bytes received and held in memory by all connections together (counted as
 * they arrive, not as declared). A request whose declared length does not fit in what is
 * free is refused with 503 before its body is read; a connection whose bytes would take
 * the total past it is closed. Eighteen bodies at the limit, far more than the executions
 * and queue can take at once. */
#define LIMIT_BODIES_IN_FLIGHT      (512u * 1024 * 1024)

/* JSON values in a request body, counted before parsing: a request of LIMIT_PARTS parts
 * has a few hundred, and cJSON spends about 60 bytes on each, so a 28 MiB body of tiny
 * values cannot make the parser allocate a gigabyte. */
#define LIMIT_JSON_VALUES           4096

/* JSON values in a generateContent body: a chat's whole history comes back with every
 * request (fifty turns of ten parts is about 3,000 values); cJSON spends about 60 bytes
 * on each, so this bounds the parse to about 4 MiB. */
#define LIMIT_GEN_JSON_VALUES       65536

/* The largest number a script line's fault may give (a delay or deadline in ms, a count
 * of events or attempts): an hour, past any test's patience. */
#define LIMIT_SCRIPT_FAULT_VALUE_MAX 3600000u

/* Decoded bytes of all input files of one request: Gemini's 20 MB inline-data limit. */
#define LIMIT_INPUT_FILE_BYTES      (20u * 1024 * 1024)

/* Parts per request. A model turn holds a handful of code blocks (the model retries about
 * five times); 64 leaves room for long replays while bounding a request's total run time
 * to 64 deadlines. */
#define LIMIT_PARTS                 64

/* Wall-clock time one code block may run (default): the real service's 30 seconds. */
#define LIMIT_DEADLINE_MS           30000

/* Bytes of stdout (and, separately, stderr) kept per code block (default). Large enough
 * for a 1 MB print; past it the output is cut and says so. */
#define LIMIT_OUTPUT_BYTES          (1024u * 1024)
/* The most a policy may set it to: one block's output is held in memory twice over. */
#define LIMIT_OUTPUT_BYTES_MAX      (64u * 1024 * 1024)

/* Output text of one request, all blocks and streams together (at least one full block:
 * three times the per-stream cap). 64 blocks each printing their 1 MiB to both streams
 * would otherwise make a 200 MiB reply, and six times that once control characters are
 * escaped for JSON; past the budget each block keeps only LIMIT_OUTPUT_BYTES_FLOOR bytes
 * per stream, so its error still shows. */
#define LIMIT_OUTPUT_BYTES_PER_REQUEST (4u * 1024 * 1024)
#define LIMIT_OUTPUT_BYTES_FLOOR    4096

/* Largest file a worker can write (RLIMIT_FSIZE), its capture files included: bounds
 * memory when C code writes to fd 1 behind Python's back. Twice the work dir, so filling
 * the disk ends in "No space left on device", not "File too large". */
#define LIMIT_FILE_BYTES            (512ull * 1024 * 1024)

/* Size of the private tmpfs holding the work dir (and, separately, /tmp). */
#define LIMIT_WORKDIR_BYTES         (256ull * 1024 * 1024)

/* Files and directories the work dir's tmpfs can hold: bounds an inode bomb of empty
 * files, which the byte size alone does not. */
#define LIMIT_WORKDIR_INODES        65536

/* Image parts returned per code block, and bytes per image. A plot at 100 dpi is tens of
 * kilobytes; 8 MiB admits a large photo the code saved. */
#define LIMIT_IMAGES_PER_BLOCK      16
#define LIMIT_IMAGE_BYTES           (8u * 1024 * 1024)

/* Image bytes returned per request, all blocks together: the server holds a reply's
 * images about four times over while encoding it (bytes, base64, JSON, the reply), so
 * this bounds one request to about 130 MiB of server memory for them. */
#define LIMIT_IMAGE_BYTES_PER_REQUEST (32u * 1024 * 1024)

/* Address space a worker may add on top of the zygote's mappings (default). The zygote
 * maps about 0.75 GiB; 2 GiB of headroom is plenty for pandas work on modest data. */
#define LIMIT_WORKER_AS_HEADROOM    (2ull * 1024 * 1024 * 1024)

/* Memory a worker may use in all (memory cgroup, where the kernel offers one; no swap):
 * the address-space headroom plus what it shares with the zygote, plus its tmpfs files. */
#define LIMIT_WORKER_MEMORY         (3ull * 1024 * 1024 * 1024)

/* CPU seconds a worker may use in total: a backstop should the wall deadline fail, sized
 * for two busy threads through several full-length blocks. */
#define LIMIT_WORKER_CPU_SECONDS    300

/* Open files per worker. The libraries need fewer than 64; this bounds kernel objects. */
#define LIMIT_WORKER_OPEN_FILES     512

/* Threads per worker (RLIMIT_NPROC counts threads of the worker's own uid). */
#define LIMIT_WORKER_THREADS        64

/* Queue of requests waiting for a worker (default). Past it: 429 RESOURCE_EXHAUSTED. */
#define LIMIT_QUEUE                 64

/* The longest a request waits in the queue for a worker (default): past it, 503 rather than a
 * connection that hangs (a busy server's queue moves in seconds; a zygote that cannot
 * fork or workers that cannot start would stall it for ever). */
#define LIMIT_QUEUE_WAIT_MS         (10u * 60 * 1000)

/* Workers pre-forked and sandboxed ahead of demand (default). Two keep fork cost off the
 * latency path of a client sending back-to-back requests. */
#define LIMIT_POOL                  2

/* Pre-faulting (sandbox/prefault.h): the zygote learns which of its pages the common
 * libraries' code paths write (its scouts, below), and each pooled worker, while it waits
 * for a job, copies those pages in advance, so the request does not take the
 * copy-on-write faults (measured: 3-4 us each, 2,500-4,700 pages for a pandas describe,
 * a plot or a sympy solve). The pages so copied are the worker's private memory from
 * then on, and copying (and at exit freeing) them costs CPU in the background: the
 * scouts dirty about 31 MiB in all, and copying all of it (32) made the paced pandas,
 * sympy and plot 0.59-0.67 times as slow but a trivial request paced 20 ms apart 2.2
 * times slower (the next pooled worker's copying still ran when it came); 16 gave 0.70,
 * 0.70, 0.84 and 1.95; 8, the default, 0.79, 0.72, 0.92 and 1.08, for 6 MB more per
 * idle pooled worker (bench/ab.py, README "Performance"). The pages most scouts share
 * go first. 0 turns pre-faulting off. */
#define LIMIT_PREFAULT_MIB          8
#define LIMIT_PREFAULT_MIB_MAX      1024
/* Pre-faulted pages count against the worker's memory cgroup (they are copied after it
 * joins it): they take at most this fraction (1/N) of the policy's memory limit, so a
 * policy with a small limit still leaves its code what it says. 3 GiB by default: no
 * cut; the 64 MiB minimum: 8 MiB. */
#define LIMIT_PREFAULT_MEMORY_SHARE 8
/* What a worker pre-faults between two looks at its socket: a job that arrives waits at
 * most this much of copying (64 pages, about 0.1-0.2 ms), so a worker taken at once
 * (no pool, or back-to-back requests) skips what it has not done yet. */
/* A private writable mapping larger than this is not scanned for pages to pre-fault: no
 * heap of the zygote is near it, while a sanitizer's shadow memory is terabytes of rw-p
 * mappings whose page-by-page scan would stall the zygote's start for minutes. */
#define LIMIT_PREFAULT_RANGE_BYTES (1ull << 30)
#define LIMIT_PREFAULT_CHUNK_BYTES  (256u << 10)
/* One scout (a fork of the zygote running one of the runner's scout snippets) may take
 * this long; past it, it is killed and its pages are not learnt. A scout runs in about
 * 0.1-0.3 s. */
#define LIMIT_SCOUT_MS              10000

/* Largest policy file: the default is 6 KiB; this leaves room for any real one. */
#define LIMIT_POLICY_BYTES          (1u << 20)

/* Largest config file (--config, PYEXECD_CONFIG): every setting is one short line, so all
 * of them with a paragraph of comments each come to a few KiB; 64 KiB leaves room for long
 * model lists, and a file named by mistake (a log, a binary) is refused rather than read
 * whole and kept for the server's life. */
#define LIMIT_CONFIG_FILE_BYTES     (64u * 1024)

/* Sessions alive at once (default): each holds a worker process (a few MiB of private
 * memory) and a uid slot; past it, 429. */
#define LIMIT_SESSIONS              16

/* A session unused this long is ended (default): an agent loop pauses between the blocks
 * of a turn for a model call or two, not for ten minutes. */
#define LIMIT_SESSION_IDLE_MS       (10u * 60 * 1000)

/* A session ends at this age however busy (default): one turn of a model, generously. */
#define LIMIT_SESSION_LIFETIME_MS   (60u * 60 * 1000)

/* Ended sessions remembered, so a late call can be told why its session is gone. */
#define LIMIT_SESSION_TOMBSTONES    256

/* Characters of a replica id (--replica-id): one DNS label, so that an ingress can turn a
 * session id's prefix into a host name (deploy/kubernetes/router.yaml) or a server's
 * name (deploy/haproxy/haproxy.cfg). */
#define LIMIT_REPLICA_ID_CHARS      63

/* A session id and its NUL: the replica that owns the session, a dot and 128 random bits
 * in hex ("r1.4f0c...": the 32 hex digits alone on a server without a replica id). */
#define LIMIT_SESSION_ID_BYTES      (LIMIT_REPLICA_ID_CHARS + 1 + 32 + 1)

/* Worker slots a zygote keeps beyond what its workers need (sandbox/zygote.h): room for
 * a pool refill racing the reaping of killed workers. */
#define LIMIT_ZYGOTE_SPARE_SLOTS    8

/* Largest IPC frame the server sends a worker: a request's input files and code, which
 * decoded are no larger than the body that carried them, with room for the framing. */
#define LIMIT_IPC_FRAME_BYTES       (LIMIT_BODY_BYTES + 1024u * 1024)

/* Room for a frame's own fields beside its text and images (a block report's counts and
 * offsets, each string's length). */
#define LIMIT_IPC_FRAMING_BYTES     (1024u * 1024)

/* Largest message the zygote sends the server (HELLO with the library list is the
 * biggest: a few hundred bytes). */
#define LIMIT_ZYGOTE_MESSAGE_BYTES  65536

/* Largest frame a starting worker may send (READY, or why its set-up failed): it is
 * untrusted from the moment it forks, and the server buffers what it sends. */
#define LIMIT_IPC_SETUP_FRAME_BYTES (64u * 1024)

/* HTTP connections served at once (libmicrohttpd's limit); each suspended one, waiting
 * for its execution, costs a few kilobytes. */
#define LIMIT_HTTP_CONNECTIONS      1024
/* On SIGTERM the server stops accepting and lets the requests it has taken finish for up
 * to this long (--drain-ms): the default deadline of a block, and five seconds to encode
 * and send its reply. A longer turn or a slower upstream is cut at the end of it. */
#define LIMIT_DRAIN_MS              (LIMIT_DEADLINE_MS + 5000)
/* How often a drain looks whether the last request has gone. */
#define LIMIT_DRAIN_POLL_MS         50
/* API keys (--api-key-file, server/api_keys.c): keys in the file, a key's length (at least
 * 16: a shorter one is guessable; at most 256: what a header reasonably holds), an id's,
 * a line's and the file's. */
#define LIMIT_API_KEYS              1024
#define LIMIT_API_KEY_MIN_BYTES     16
#define LIMIT_API_KEY_BYTES         256
#define LIMIT_API_KEY_ID_BYTES      64
#define LIMIT_API_KEY_LINE_BYTES    512
#define LIMIT_API_KEY_FILE_MIB      1
#define LIMIT_API_KEY_FILE_BYTES    (LIMIT_API_KEY_FILE_MIB * 1024 * 1024)
/* The longest X-Request-Id a client may send and have echoed and logged: a UUID is 36
 * characters, a W3C trace id 32, and room for a prefix; a longer one (or one with a space,
 * a quote, a backslash or a byte outside printable ASCII) is replaced by a new id, so a
 * client cannot make log lines long or forge their fields. */
#define LIMIT_REQUEST_ID_BYTES      128
/* Seconds an idle keep-alive connection (not one waiting on an execution) stays open. */
#define LIMIT_HTTP_IDLE_TIMEOUT_S   60

/* Bytes libmicrohttpd asks a streamed reply for at a time. */
#define LIMIT_STREAM_BLOCK_BYTES    (64u * 1024)

/* The bounds of what a flag or a policy may set: values outside are refused at start,
 * naming the setting. Each is what still works at all (the lower) and past any real use
 * (the upper). */
#define LIMIT_DEADLINE_MS_MIN       10          /* a block can still start */
#define LIMIT_DEADLINE_MS_MAX       3600000     /* an hour per block */
#define LIMIT_OUTPUT_BYTES_MIN      16          /* room for a short line */
#define LIMIT_WORKER_AS_MIB_MIN     64          /* the interpreter's own growth */
#define LIMIT_WORKER_AS_MIB_MAX     1048576     /* 1 TiB: unlimited in practice */
#define LIMIT_CPU_SECONDS_MAX       86400
#define LIMIT_MEMORY_MIB_MIN        64
#define LIMIT_MEMORY_MIB_MAX        1048576
#define LIMIT_FILE_SIZE_MIB_MAX     1048576
#define LIMIT_OPEN_FILES_MIN        32          /* the libraries need about 20 */
#define LIMIT_OPEN_FILES_MAX        1048576
#define LIMIT_THREADS_MAX           65536
#define LIMIT_WORKDIR_MIB_MAX       1048576
#define LIMIT_WORKDIR_INODES_MIN    16
#define LIMIT_WORKDIR_INODES_MAX    1000000000
#define LIMIT_WORKERS_MAX           1024        /* --workers, --pool */
#define LIMIT_QUEUE_MAX             100000
#define LIMIT_HTTP_THREADS_MAX      256
/* --max-sessions: each session is a process, a uid slot and a memory and a pids cgroup
 * (made when the zygote starts); 16384 stays well inside the kernel's 65535 memory
 * cgroups and makes the zygote's start about a second longer at most. */
#define LIMIT_SESSIONS_MAX          16384
/* Worker slots whose cgroups the zygote makes at start: enough for the pool and the
 * workers of a usual server, found working (or not) before it says it is ready; each
 * further slot's groups are made when a worker first starts in it (about 1 ms: mkdir and
 * the limits), not all 16384 up front (about 20 s). */
#define LIMIT_CGROUP_EAGER_SLOTS    64
#define LIMIT_WAIT_MS_MIN           100         /* queue wait, session idle and lifetime */
#define LIMIT_QUEUE_WAIT_MS_MAX     (24u * 3600 * 1000)
#define LIMIT_DRAIN_MS_MAX          (24u * 3600 * 1000)
#define LIMIT_SESSION_MS_MAX        (7u * 24 * 3600 * 1000)
/* Worker uids start at least here: below are the system's and its users' own. */
#define LIMIT_UID_BASE_MIN          1000
#define LIMIT_UID_BASE_MAX          4000000000ull
/* Per-key bounds (--key-max-executions, --key-max-sessions, and a key's executions= and
 * sessions= in the key file): the most any setting may give. 0 there means no per-key
 * bound (the server-wide ones still apply): no key can use more than the server has. */
#define LIMIT_KEY_EXECUTIONS_MAX    (LIMIT_WORKERS_MAX + LIMIT_QUEUE_MAX)
#define LIMIT_KEY_SESSIONS_MAX      LIMIT_SESSIONS_MAX

/* Descriptors the server asks for at start (its soft RLIMIT_NOFILE, raised up to the hard
 * limit): one per connection, and per worker or session a pidfd, its channel, its capture
 * files and the zygote's messages (about eight), with room for the rest. The usual soft
 * limit of 1024 would refuse connections before LIMIT_HTTP_CONNECTIONS. */
#define LIMIT_SERVER_DESCRIPTORS    (LIMIT_HTTP_CONNECTIONS + 8 * LIMIT_SESSIONS_MAX + 1024)

/* The generateContent surface (server/turns.c, server/models.c, server/model_*.c). */

/* Models bound with --model at once. */
#define LIMIT_MODELS                32
/* models.list: a page's size when the client gives none, and the most it may ask for. */
#define LIMIT_MODEL_PAGE            50
#define LIMIT_MODEL_PAGE_MAX        1000
/* Turn runner threads: model turns running at once. Each mostly waits (for an upstream
 * model, or for its code's execution, which the executor bounds by --workers), so they
 * are many; each holds at most one interpreter, and that bounds turns' interpreters. */
#define LIMIT_TURN_THREADS          16
/* Turns waiting for a runner; past it, 429. */
#define LIMIT_TURN_QUEUE            64
/* Code blocks the echo model runs in one turn: as many as a request's parts. */
#define LIMIT_ECHO_BLOCKS           LIMIT_PARTS
/* The openai model's loop: executions in one turn, and failed ones in a row, before the
 * model is asked to answer in text (a small model can loop on a failing call). */
#define LIMIT_OPENAI_EXECUTIONS     10
#define LIMIT_OPENAI_FAILURES_IN_ROW 5
/* An upstream model server: connecting, and one whole chat-completions call (a small
 * local model on a CPU writes a few tokens a second). --upstream-timeout-ms sets the
 * second. */
#define LIMIT_UPSTREAM_CONNECT_MS   5000
#define LIMIT_UPSTREAM_TIMEOUT_MS   120000
#define LIMIT_UPSTREAM_TIMEOUT_MS_MIN 100
#define LIMIT_UPSTREAM_TIMEOUT_MS_MAX (3600u * 1000)
/* The largest upstream response body kept: a chat completion is kilobytes. */
#define LIMIT_UPSTREAM_BODY_BYTES   (8u * 1024 * 1024)
/* How often a waiting turn (a script's delay) looks whether the server is stopping. */
#define LIMIT_STOP_POLL_MS          100
/* Script files: the largest read, and model turns in one. */
#define LIMIT_SCRIPT_BYTES          (16u * 1024 * 1024)
#define LIMIT_SCRIPT_TURNS          4096
/* Conversations whose fault attempts a script remembers (a ring: the oldest is
 * forgotten, and its faults fire again). */
#define LIMIT_SCRIPT_CONVERSATIONS  4096

/* The executor's timers (server/executor.c and its parts). */

/* How long requests may wait for a zygote that is starting or restarting before they
 * get 503: a cold start imports every library (1-3.5 s here, more on a first run that
 * builds matplotlib's font cache). */
#define LIMIT_ZYGOTE_WAIT_MS        60000
/* A zygote that has not said HELLO by then is stuck: kill it and start another. */
#define LIMIT_ZYGOTE_START_TIMEOUT_MS 120000
/* Restart back-off after a zygote death: none for the first, then doubling from the first
 * to the last value; resets once a zygote has lived for LIMIT_ZYGOTE_STABLE_MS. */
#define LIMIT_ZYGOTE_BACKOFF_FIRST_MS 200
#define LIMIT_ZYGOTE_BACKOFF_MAX_MS 10000
#define LIMIT_ZYGOTE_STABLE_MS      30000
/* At shutdown, how long the zygote has to end its workers and remove their cgroups. */
#define LIMIT_ZYGOTE_STOP_GRACE_MS  2000
/* With --require-isolation, zygote deaths before HELLO in a row that stop the server. */
#define LIMIT_ZYGOTE_START_ATTEMPTS 3
/* After a worker's socket closes mid-job, how long to wait for the zygote to report how
 * it died before answering without the reason. */
#define LIMIT_EXIT_STATUS_WAIT_MS   2000
/* A discarded worker whose SIGKILL the kernel refused (no CAP_KILL over its uid) is given
 * this long to end by itself (its socket closed, an idle one exits at once); one that
 * ran past its deadline none. Then it is ended another way (its cgroup's cgroup.kill, or
 * a zygote restart: workers die with their zygote), and said in the log after
 * LIMIT_UNKILLED_REPORT_MS more if it still lives. Its slot stays taken until it ends. */
#define LIMIT_UNKILLED_GRACE_MS     2000
#define LIMIT_UNKILLED_REPORT_MS    5000
/* A worker that has not said READY by then (it sandboxes itself in milliseconds) is
 * stuck: it is killed, and the pool asks for another. */
#define LIMIT_WORKER_START_TIMEOUT_MS 30000
/* Pause before asking again when the zygote could not fork, or a worker could not
 * sandbox itself: a failing kernel is not asked hundreds of times a second. */
#define LIMIT_SPAWN_RETRY_MS        200
/* The longest the executor's loop sleeps: the timers it does not track exactly (a
 * worker stuck starting) are checked at least this often. */
#define LIMIT_EXECUTOR_TICK_MS      1000
/* Once no request has run or waited for this long, the server hands the memory its
 * allocator keeps free back to the kernel (malloc_trim): after a burst its RSS returns to
 * what it holds, and a soak's growth shows leaks, not the heap's high-water mark. */
#define LIMIT_IDLE_TRIM_MS          1000

/* Limits that must stay in order, checked when anything is built. */
_Static_assert(LIMIT_INPUT_FILE_BYTES <= LIMIT_BODY_BYTES,
               "input files arrive inside the body");
_Static_assert(LIMIT_BODY_BYTES <= LIMIT_BODIES_IN_FLIGHT,
               "one body at the limit must fit in what all bodies may hold");
_Static_assert(LIMIT_IPC_FRAME_BYTES >= LIMIT_BODY_BYTES + LIMIT_IPC_FRAMING_BYTES,
               "a job frame carries what the body did, decoded, plus framing");
_Static_assert(LIMIT_OUTPUT_BYTES_MIN <= LIMIT_OUTPUT_BYTES &&
               LIMIT_OUTPUT_BYTES <= LIMIT_OUTPUT_BYTES_MAX, "the default output cap is settable");
_Static_assert(LIMIT_OUTPUT_BYTES_FLOOR <= LIMIT_OUTPUT_BYTES,
               "past the request's budget a block keeps less than its cap, not more");
_Static_assert(LIMIT_OUTPUT_BYTES_PER_REQUEST >= 3 * LIMIT_OUTPUT_BYTES,
               "a request's output budget holds one whole block: stdout, stderr, error");
_Static_assert(LIMIT_IMAGE_BYTES <= LIMIT_IMAGE_BYTES_PER_REQUEST,
               "one image at the limit fits in a request's image budget");
_Static_assert((unsigned long long)LIMIT_IMAGE_BYTES_PER_REQUEST + 2ull * LIMIT_OUTPUT_BYTES_MAX +
               LIMIT_IPC_FRAMING_BYTES <= 0xffffffffull,
               "a busy worker's largest block report must fit a frame's u32 length");
_Static_assert(LIMIT_FILE_BYTES >= 2 * LIMIT_WORKDIR_BYTES,
               "filling the work dir must end in ENOSPC, not EFBIG");
_Static_assert(LIMIT_WORKER_MEMORY >= LIMIT_WORKER_AS_HEADROOM,
               "the memory cgroup must not cut below the address-space limit");
_Static_assert(LIMIT_DEADLINE_MS >= LIMIT_DEADLINE_MS_MIN &&
               LIMIT_DEADLINE_MS <= LIMIT_DEADLINE_MS_MAX, "the default deadline is settable");
_Static_assert(LIMIT_SESSIONS <= LIMIT_SESSIONS_MAX && LIMIT_POOL <= LIMIT_WORKERS_MAX &&
               LIMIT_QUEUE <= LIMIT_QUEUE_MAX && LIMIT_PREFAULT_MIB <= LIMIT_PREFAULT_MIB_MAX,
               "the defaults are within their flags' bounds");
_Static_assert(LIMIT_QUEUE_WAIT_MS <= LIMIT_QUEUE_WAIT_MS_MAX &&
               LIMIT_SESSION_IDLE_MS <= LIMIT_SESSION_LIFETIME_MS &&
               LIMIT_SESSION_LIFETIME_MS <= LIMIT_SESSION_MS_MAX,
               "the default waits are within their bounds, idle within lifetime");
_Static_assert(LIMIT_EXIT_STATUS_WAIT_MS < LIMIT_WORKER_START_TIMEOUT_MS,
               "waiting for a dead worker's status is shorter than any start");

#endif
