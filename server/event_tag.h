/* What an epoll event of the executor's loop is about. The module that owns a descriptor
 * registers it with a tag naming itself; the loop hands each event to that module. */
#ifndef PYEXECD_EVENT_TAG_H
#define PYEXECD_EVENT_TAG_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>

enum event_source {
    EVENT_WAKE,          /* a submitting thread woke the loop */
    EVENT_ZYGOTE_CTL,    /* the zygote's control socket */
    EVENT_ZYGOTE_EXIT,   /* the zygote's pidfd */
    EVENT_WORKER,        /* a worker's socket; owner is its struct worker */
};

struct event_tag {
    enum event_source source;
    void *owner;
};

/* epoll_ctl with the tag as the event's data (borrowed: it must outlive the
 * registration). Failures other than on EPOLL_CTL_DEL are logged. */
static inline void event_watch(int epfd, int fd, uint32_t events, struct event_tag *tag,
                               int op)
{
    struct epoll_event ev = {.events = events, .data.ptr = tag};
    if (epoll_ctl(epfd, op, fd, &ev) < 0 && op != EPOLL_CTL_DEL)
        fprintf(stderr, "pyexecd: epoll_ctl: %s\n", strerror(errno));
}

#endif
