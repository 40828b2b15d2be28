/* libiadsr - fork/join over an array of work items (see fork_join.h).
 * SPDX-License-Identifier: MIT
 */
#include "common/fork_join.h"

#include <pthread.h>

#define WAVE 64

typedef struct fj_task {
    void (*fn)(void *);
    void *item;
} fj_task;

static void *fj_main(void *arg)
{
    const fj_task *t = arg;
    t->fn(t->item);
    return NULL;
}

void iadsr__fork_join(int n, void (*fn)(void *item), void *items,
                      size_t stride)
{
    char *base = items;
    pthread_t tid[WAVE];
    fj_task task[WAVE];
    int started[WAVE];

    if (n <= 0)
        return;
    /* waves of items [w0, w1); item 0 runs here, overlapping the first */
    for (int w0 = 1;; w0 += WAVE) {
        int w1 = n - w0 < WAVE ? n : w0 + WAVE;
        for (int i = w0; i < w1; i++) {
            fj_task *t = &task[i - w0];
            t->fn = fn;
            t->item = base + (size_t)i * stride;
            started[i - w0] = pthread_create(&tid[i - w0], NULL, fj_main, t) == 0;
        }
        if (w0 == 1)
            fn(base);
        for (int i = w0; i < w1; i++) {
            if (started[i - w0])
                pthread_join(tid[i - w0], NULL);
            else
                fn(base + (size_t)i * stride); /* no thread: same work here */
        }
        if (w1 >= n)
            return;
    }
}
