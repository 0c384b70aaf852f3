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

#endif
