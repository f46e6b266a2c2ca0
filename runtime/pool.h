/* pool.h - the runtime's worker threads.
 *
 * The runtime owns its threading: OpenBLAS runs single-threaded and the
 * kernels split their work into tasks fixed by the problem's shape (never
 * by the thread count), which pool_run hands out to the threads.  A task is
 * computed the same way whichever thread runs it, so results are identical
 * for any number of threads.
 *
 * A pthread pool rather than OpenMP: on the 2-core machine the runtime was
 * tuned on, an empty parallel region costs libgomp (gcc 12) 3.2 to 3.7
 * microseconds and pool_run 1.4 to 1.7 (a training step of the VAE runs
 * about 40), the pool hands out tasks in the order the products want (see
 * pool.c), and it needs no compiler support (clang without libomp) nor
 * build flags.  Idle workers spin for a millisecond, then sleep on a
 * condition variable.  They start at the first pool_run that needs them
 * (again in the child of a fork). */
#ifndef VML_POOL_H
#define VML_POOL_H

/* Sets the number of threads, the caller's included: n < 1 means the
 * number of online CPUs (the default).  Not from inside a task. */
void pool_set_threads(int n);
int pool_threads(void);

/* A task: fn(ctx, task, slot) with slot in 0 .. threads-1 naming the
 * thread that runs it (an index into per-thread workspace). */
typedef void PoolTask(void *ctx, long task, int slot);

/* Runs tasks 0 .. ntasks-1 (fewer than 2^32) on at most max_threads
 * threads (max_threads < 1: on all of them); the caller works too, and
 * pool_run returns when every task is done.  A call from inside a task
 * runs its tasks on the calling thread; calls from two threads at once
 * take turns. */
void pool_run(long ntasks, int max_threads, PoolTask *fn, void *ctx);

#endif
