/* The descriptor numbers the processes agree on: the server's posix_spawn puts the
 * zygote's inherited descriptors there, and the zygote finds them there; a worker's. */
#ifndef PYEXECD_FDS_H
#define PYEXECD_FDS_H

/* The zygote's control socket (SOCK_SEQPACKET to the server). */
#define ZYGOTE_CTL_FD 3
/* The policy text the server checked, a sealed memfd the zygote reads once and closes. */
#define ZYGOTE_POLICY_FD 4

/* A worker's descriptors, as its code sees them: 0 is /dev/null, 1 and 2 its capture
 * files (stdout, stderr), WORKER_REPORT_FD the report channel to the server
 * (close-on-exec: no child program gets it), and nothing else. */
#define WORKER_REPORT_FD 3

#endif
