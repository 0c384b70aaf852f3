/* What a worker tells the server about one finished code block (IPC_W_BLOCK_DONE):
 *
 *   u32 index, u32 status (enum block_status), u32 flags (BLOCK_FLAG_*),
 *   u64 stdout_end, u64 stderr_end (sizes of the capture files when the block ended),
 *   bytes error_text (UTF-8; for BLOCK_STATUS_EXCEPTION: "str(exc)\n" + traceback),
 *   u32 nimages, { bytes mime, bytes data } * nimages
 *
 * The block's stdout and stderr are not in the frame: they are in the worker's capture
 * memfds, which the server reads itself (so output survives a kill at the deadline).
 * The worker runs on without waiting for the server, so only it knows where a block's
 * output ends. Nothing in the frame is trusted (the code can write to the socket too):
 * the server clamps the ends to what the files hold. */
#ifndef PYEXECD_BLOCK_REPORT_H
#define PYEXECD_BLOCK_REPORT_H

enum block_status {
    BLOCK_STATUS_OK = 0,
    BLOCK_STATUS_EXCEPTION = 1,
};

#define BLOCK_FLAG_STDOUT_TRUNCATED 0x1u
#define BLOCK_FLAG_STDERR_TRUNCATED 0x2u
#define BLOCK_FLAG_IMAGES_DROPPED   0x4u
/* The uncaught exception came from a sandbox limit (the runner recognises the errors
 * each limit produces). */
#define BLOCK_FLAG_LIMIT_MEMORY     0x8u    /* MemoryError: the address-space limit */
#define BLOCK_FLAG_LIMIT_DISK       0x10u   /* ENOSPC: the tmpfs size or inode limit */
#define BLOCK_FLAG_LIMIT_FILE_SIZE  0x20u   /* EFBIG: RLIMIT_FSIZE */
#define BLOCK_FLAG_LIMIT_THREADS    0x40u   /* "can't start new thread": RLIMIT_NPROC, pids */
#define BLOCK_FLAG_LIMIT_OPEN_FILES 0x80u   /* EMFILE: RLIMIT_NOFILE */
/* The capture file itself is full (RLIMIT_FSIZE): writes fail for the rest of the request. */
#define BLOCK_FLAG_STDOUT_FULL      0x100u
#define BLOCK_FLAG_STDERR_FULL      0x200u

#endif
