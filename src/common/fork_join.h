/* libiadsr - the one fork/join used by every parallel loop (fork_join.c).
 * SPDX-License-Identifier: MIT
 */
#ifndef IADSR_FORK_JOIN_H
#define IADSR_FORK_JOIN_H

#include <stddef.h>

/* Run fn(items + i * stride) for every i in [0, n): item 0 on the calling
 * thread, the others on threads of their own, and return once all are done.
 * An item whose thread cannot be started runs on the calling thread after
 * the others, so the work done (and, when each item writes only its own
 * outputs, the result) does not depend on how many threads started. Threads
 * are started in waves of at most 64 so that the bookkeeping stays on the
 * stack (hosts may call from threads with small stacks). Never allocates. */
void iadsr__fork_join(int n, void (*fn)(void *item), void *items,
                      size_t stride);

#endif /* IADSR_FORK_JOIN_H */
