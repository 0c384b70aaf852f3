/* The descriptor numbers the server and the zygote agree on: the server's posix_spawn
 * puts the zygote's inherited descriptors there, and the zygote finds them there. */
#ifndef PYEXECD_FDS_H
#define PYEXECD_FDS_H

/* The zygote's control socket (SOCK_SEQPACKET to the server). */
#define ZYGOTE_CTL_FD 3
/* The policy text the server checked, a sealed memfd the zygote reads once and closes. */
#define ZYGOTE_POLICY_FD 4

#endif
