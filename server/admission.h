/* A bounded count of places, taken by submitting threads and given back by the executor
 * thread: the requests admitted (running or queued), the sessions alive or being made.
 * Lock-free: a place is taken with a compare-and-swap against the bound. */
#ifndef PYEXECD_ADMISSION_H
#define PYEXECD_ADMISSION_H

#include <stdatomic.h>

struct admission {
    atomic_uint used;
    unsigned max;
};

/* Takes a place; returns 1, or 0 when all max are taken. Thread-safe. */
static inline int admission_take(struct admission *a)
{
    unsigned cur = atomic_load(&a->used);
    do {
        if (cur >= a->max)
            return 0;
    } while (!atomic_compare_exchange_weak(&a->used, &cur, cur + 1));
    return 1;
}

/* Gives a place back. Thread-safe. */
static inline void admission_release(struct admission *a)
{
    atomic_fetch_sub(&a->used, 1);
}

static inline unsigned admission_used(struct admission *a)
{
    return atomic_load(&a->used);
}

#endif
