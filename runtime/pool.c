/* pool.c - the runtime's worker threads (see pool.h).
 *
 * One job at a time: pool_run publishes it (function, context, task count)
 * and bumps a generation counter; the workers, spinning or asleep, see the
 * new generation, run their tasks and count themselves out.  Every worker
 * acknowledges every job, so the job's description is never rewritten
 * while a late worker may still read it.
 *
 * Which thread runs which task: each thread first runs its own contiguous
 * range of the tasks, front to back (slot s of k: tasks n s / k .. n (s +
 * 1) / k), so that at any moment the threads work on distant tasks.
 * Neighbouring tiles of a product share cache lines at their edges, and
 * two threads writing one line at the same time slow each other down:
 * with the tasks handed out in order instead, two threads ran the VAE's
 * products 10% slower.  A thread done with its range takes tasks from the
 * back of the others' ranges, so a thread that is held up (preempted)
 * delays the job by at most the task it is running. */
#include "pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* How long an idle worker spins before it sleeps: long enough to bridge
 * the serial stretches between the parallel kernels of a training step
 * (with 0.1 ms, one job in ten of the VAE's found the worker asleep, and
 * waking it costs tens of microseconds), short enough not to hold a CPU
 * for long when the program does something else.  libgomp's default spin
 * is of the same order. */
enum { SPIN_NS = 1000 * 1000 };

typedef struct {
  PoolTask *fn;
  void *ctx;
  long ntasks;
  int nuse; /* threads taking part: slots 0 .. nuse-1 */
} Job;

/* The tasks left in a slot's range: front << 32 | back (back excluded),
 * claimed with compare-and-swap; one cache line each. */
typedef struct {
  _Alignas(64) atomic_ullong left;
} Range;

static struct {
  int threads;  /* the setting; 0 until set or first used */
  int nworkers; /* started: slots 1 .. nworkers */
  pthread_t *tid;
  Range *range; /* per slot: P.threads of them */
  pthread_mutex_t run; /* one pool_run at a time */
  pthread_mutex_t mu;
  pthread_cond_t wake;
  atomic_ulong gen;    /* bumped for every job and to stop the workers */
  atomic_int sleepers; /* workers waiting on `wake` */
  atomic_int busy;     /* workers that have not finished the current job */
  int quit;
  unsigned long start_gen; /* the generation new workers start from */
  Job job;
} P = {.run = PTHREAD_MUTEX_INITIALIZER, .mu = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

/* The running thread's slot while it runs tasks, for nested calls. */
static _Thread_local int my_slot = -1;

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ volatile("yield");
#endif
}

static long long now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* Takes the front (or back) task of slot s's range into *t; 0 when the
 * range is empty. */
static int claim(int s, int back, long *t) {
  unsigned long long r = atomic_load(&P.range[s].left), next;
  do {
    unsigned long long f = r >> 32, b = r & 0xffffffffu;
    if (f >= b) return 0;
    *t = (long)(back ? b - 1 : f);
    next = back ? (f << 32 | (b - 1)) : ((f + 1) << 32 | b);
  } while (!atomic_compare_exchange_weak(&P.range[s].left, &r, next));
  return 1;
}

static void take_tasks(int slot) {
  my_slot = slot;
  long t;
  while (claim(slot, 0, &t)) P.job.fn(P.job.ctx, t, slot);
  for (int k = 1; k < P.job.nuse; k++)
    while (claim((slot + k) % P.job.nuse, 1, &t)) P.job.fn(P.job.ctx, t, slot);
  my_slot = -1;
}

/* Waits for a generation other than `seen`: spins, then sleeps.  The
 * sleepers count and the generation are both sequentially consistent, so
 * pool_run either sees this worker counted or the worker sees the new
 * generation before it waits. */
static unsigned long wait_job(unsigned long seen) {
  unsigned long g;
  long long until = now_ns() + SPIN_NS;
  for (int k = 1;; k++) {
    if ((g = atomic_load(&P.gen)) != seen) return g;
    cpu_relax();
    if (k % 64 == 0 && now_ns() > until) break;
  }
  pthread_mutex_lock(&P.mu);
  atomic_fetch_add(&P.sleepers, 1);
  while ((g = atomic_load(&P.gen)) == seen) pthread_cond_wait(&P.wake, &P.mu);
  atomic_fetch_sub(&P.sleepers, 1);
  pthread_mutex_unlock(&P.mu);
  return g;
}

static void *worker(void *arg) {
  int slot = (int)(intptr_t)arg;
  unsigned long seen = P.start_gen; /* written before pthread_create */
  for (;;) {
    seen = wait_job(seen);
    if (P.quit) break;
    if (slot < P.job.nuse) take_tasks(slot);
    atomic_fetch_sub(&P.busy, 1);
  }
  return NULL;
}

/* Publishes a new generation and wakes the workers that sleep. */
static void bump(void) {
  atomic_fetch_add(&P.gen, 1);
  if (atomic_load(&P.sleepers)) {
    pthread_mutex_lock(&P.mu);
    pthread_cond_broadcast(&P.wake);
    pthread_mutex_unlock(&P.mu);
  }
}

static void stop_workers(void) {
  if (!P.nworkers) return;
  P.quit = 1;
  bump();
  for (int k = 0; k < P.nworkers; k++) pthread_join(P.tid[k], NULL);
  P.quit = 0;
  P.nworkers = 0;
}

/* In the child of a fork only the forking thread exists: it starts workers
 * of its own when it needs them. */
static void forget_workers(void) {
  free(P.tid);
  P.tid = NULL;
  P.nworkers = 0;
  atomic_store(&P.sleepers, 0);
  pthread_mutex_init(&P.run, NULL);
  pthread_mutex_init(&P.mu, NULL);
  pthread_cond_init(&P.wake, NULL);
}

static void at_fork(void) { pthread_atfork(NULL, NULL, forget_workers); }

/* Starts the workers the setting asks for; fewer when the system refuses. */
static void start_workers(void) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, at_fork);
  int want = P.threads - 1;
  if (!P.tid) P.tid = calloc((size_t)want, sizeof *P.tid);
  if (!P.range) P.range = aligned_alloc(64, sizeof *P.range * (size_t)P.threads);
  if (!P.tid || !P.range) return;
  P.start_gen = atomic_load(&P.gen);
  while (P.nworkers < want && !pthread_create(&P.tid[P.nworkers], NULL, worker, (void *)(intptr_t)(P.nworkers + 1)))
    P.nworkers++;
}

void pool_set_threads(int n) {
  if (n < 1) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    n = cpus > 0 ? (int)cpus : 1;
  }
  pthread_mutex_lock(&P.run);
  if (n != P.threads) {
    stop_workers();
    free(P.tid);
    free(P.range);
    P.tid = NULL;
    P.range = NULL;
    P.threads = n;
  }
  pthread_mutex_unlock(&P.run);
}

int pool_threads(void) {
  if (!P.threads) pool_set_threads(0);
  return P.threads;
}

/* Runs the tasks on the calling thread, as slot 0 (or as the task it is
 * running when nested). */
static void run_serial(long ntasks, PoolTask *fn, void *ctx) {
  int slot = my_slot >= 0 ? my_slot : 0;
  for (long t = 0; t < ntasks; t++) fn(ctx, t, slot);
}

void pool_run(long ntasks, int max_threads, PoolTask *fn, void *ctx) {
  int n = pool_threads();
  if (max_threads > 0 && max_threads < n) n = max_threads;
  if (ntasks < n) n = (int)ntasks;
  if (n <= 1 || my_slot >= 0) {
    run_serial(ntasks, fn, ctx);
    return;
  }
  pthread_mutex_lock(&P.run);
  if (P.nworkers < P.threads - 1) start_workers();
  if (n > P.nworkers + 1) n = P.nworkers + 1;
  if (n <= 1) {
    pthread_mutex_unlock(&P.run);
    run_serial(ntasks, fn, ctx);
    return;
  }
  P.job = (Job){fn, ctx, ntasks, n};
  for (int s = 0; s < n; s++)
    atomic_store(&P.range[s].left, (unsigned long long)(ntasks * s / n) << 32 | (unsigned long long)(ntasks * (s + 1) / n));
  atomic_store(&P.busy, P.nworkers);
  bump();
  take_tasks(0);
  for (long k = 1; atomic_load(&P.busy) > 0; k++) {
    cpu_relax();
    if (k % 4096 == 0) sched_yield(); /* a worker may be waiting for this CPU */
  }
  pthread_mutex_unlock(&P.run);
}
