/* Writing the small control files of /proc and /sys (uid maps, cgroup limits), where one
 * write(2) of the whole text is the whole operation and a short write is a refusal. */
#ifndef PYEXECD_KERNEL_FILE_H
#define PYEXECD_KERNEL_FILE_H

/* Writes text to path in one write. Returns 0, or -1 with errno. */
int kernel_file_write(const char *path, const char *text);

#endif
