/* main.c - vmrun: runs a compiled model (.vmx).  The options, the eval
 * command and what the commands share; training is in train.c. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "exec.h"
#include "session.h"
#include "stats.h"
#include "util.h"
#include "vmrun.h"

static void usage(FILE *f) {
  fputs("usage: vmrun train [FILE.vmx] [--data DIR] [--epochs N | --steps N] [--batch N]\n"
        "                   [--lr X] [--seed N] [--out DIR] [--threads N]\n"
        "       vmrun train --resume RUN [--epochs N | --steps N] [--data DIR] [--threads N]\n"
        "       vmrun eval [FILE.vmx] [--run DIR] [--data DIR] [--split test] [--json]\n"
        "                  [--batch N] [--threads N]\n"
        "Without FILE.vmx, train uses the one .vmx in the current directory and eval\n"
        "the newest run under runs/ (or --run DIR). See man vmrun.\n",
        f);
}

/* ------------------------------------------------------------ options */

static long parse_long(const char *opt, const char *v, long min) {
  char *end;
  errno = 0;
  long x = strtol(v, &end, 10);
  if (errno || *end || end == v || x < min) die(2, "%s: expected an integer >= %ld, got '%s'", opt, min, v);
  return x;
}

/* Options that take a value; `train` and `eval` say where each applies. */
static int set_option(Opts *o, const char *a, const char *v, int train) {
  if (!strcmp(a, "--data")) o->data = v;
  else if (!strcmp(a, "--batch")) o->batch = parse_long(a, v, 1);
  else if (!strcmp(a, "--threads")) o->threads = parse_long(a, v, 1);
  else if (train && !strcmp(a, "--epochs")) o->epochs = parse_long(a, v, 1);
  else if (train && !strcmp(a, "--steps")) o->steps = parse_long(a, v, 1);
  else if (train && !strcmp(a, "--out")) o->out = v;
  else if (train && !strcmp(a, "--resume")) o->resume = v;
  else if (train && !strcmp(a, "--seed")) {
    char *end;
    errno = 0;
    unsigned long long s = strtoull(v, &end, 10);
    if (errno || *end || end == v || v[0] == '-') die(2, "--seed: expected a non-negative integer, got '%s'", v);
    o->seed = s;
    o->have_seed = 1;
  } else if (train && !strcmp(a, "--lr")) {
    char *end;
    o->lr = strtod(v, &end);
    if (*end || end == v || !(o->lr > 0) || !isfinite(o->lr)) die(2, "--lr: expected a positive number, got '%s'", v);
  } else if (!train && !strcmp(a, "--run")) o->run = v;
  else if (!train && !strcmp(a, "--split")) {
    if (split_index(v) < 0) die(2, "--split: expected train, valid or test, got '%s'", v);
    o->split = v;
  } else return 0;
  return 1;
}

static void parse_opts(Opts *o, int argc, char **argv) {
  memset(o, 0, sizeof *o);
  o->lr = -1;
  o->split = "test";
  if (argc < 2) {
    usage(stderr);
    exit(2);
  }
  o->cmd = argv[1];
  if (!strcmp(o->cmd, "--help") || !strcmp(o->cmd, "-h")) {
    usage(stdout);
    exit(0);
  }
  if (strcmp(o->cmd, "train") && strcmp(o->cmd, "eval")) {
    fprintf(stderr, "vmrun: unknown command '%s'\n", o->cmd);
    usage(stderr);
    exit(2);
  }
  int train = !strcmp(o->cmd, "train");
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    if (a[0] != '-' || !a[1]) {
      if (o->file) die(2, "more than one file given ('%s' and '%s')", o->file, a);
      o->file = a;
    } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout);
      exit(0);
    } else if (!strcmp(a, "--json") && !train) o->json = 1;
    else if (i + 1 >= argc) die(2, "%s needs a value", a);
    else if (!set_option(o, a, argv[i + 1], train)) die(2, "unknown option '%s' for %s (see vmrun --help)", a, o->cmd);
    else i++;
  }
  if (o->epochs && o->steps) die(2, "--epochs and --steps cannot both be given");
}

/* ------------------------------------------------------------ shared */

void vmrun_threads(long n) {
  exec_set_threads(n > 0 ? (int)n : 0);
}

char *vmrun_newest_run(void) {
  DIR *d = opendir("runs");
  if (!d) die(2, "no runs/ directory here; train first or name a run with --run DIR");
  char *best = NULL;
  struct timespec bt = {0, 0};
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char *p = xprintf("runs/%s/checkpoint.safetensors", e->d_name);
    struct stat st;
    int ok = stat(p, &st) == 0;
    free(p);
    if (!ok) continue;
    if (!best || st.st_mtim.tv_sec > bt.tv_sec || (st.st_mtim.tv_sec == bt.tv_sec && st.st_mtim.tv_nsec > bt.tv_nsec)) {
      free(best);
      best = xprintf("runs/%s", e->d_name);
      bt = st.st_mtim;
    }
  }
  closedir(d);
  if (!best) die(2, "no run with a checkpoint under runs/; train first or name a run with --run DIR");
  return best;
}

char *vmrun_run_vmx(const char *run) {
  char *name = session_find_vmx(run);
  char *path = xprintf("%s/%s", run, name);
  free(name);
  return path;
}

/* ------------------------------------------------------------ eval */

int cmd_eval(const Opts *o) {
  char *run = o->run ? xstrdup(o->run) : vmrun_newest_run();
  char *path = o->file ? xstrdup(o->file) : vmrun_run_vmx(run);
  Session s;
  session_load(&s, path);
  free(path);
  const Graph *g = session_graph(&s, "elbo");
  if (!g) die(2, "%s: model %s has no elbo entry point (a role without a density)", s.path, s.vmx->model);
  char *cp = xprintf("%s/checkpoint.safetensors", run), err[1024];
  Ckpt c;
  if (ckpt_read(cp, &c, err, sizeof err)) die(2, "%s", err);
  free(cp);
  session_read_params(&s, &c);
  uint64_t seed = 0;
  if (ckpt_meta_u64(&c, CKPT_KEY_SEED, &seed, err, sizeof err)) die(2, "%s", err);
  const char *data = ckpt_meta(&c, "vml.run.data");
  int k = split_index(o->split), want[SPLIT_COUNT] = {0, 0, 0};
  want[k] = 1;
  session_load_data(&s, o->data ? o->data : data && *data ? data : NULL, want, seed);
  ckpt_free(&c);
  if (!session_examples(&s, k)) die(2, "data %s has no %s split", s.data[0].decl->name, o->split);
  vmrun_threads(o->threads);
  ElboStats st;
  ExecError e;
  if (stats_elbo(&s, g, k, o->batch ? o->batch : 128, seed, &st, &e)) die(1, "elbo: %s", e.msg);
  if (o->json) {
    printf("{\"run\":");
    json_str(stdout, run);
    printf(",\"model\":");
    json_str(stdout, s.vmx->model);
    printf(",\"split\":\"%s\",\"examples\":%ld", o->split, st.n);
    stats_json(stdout, &st);
    printf("}\n");
  } else {
    printf("%s on %s (%ld examples, %s)\n", s.vmx->model, o->split, st.n, run);
    stats_print(stdout, &st);
  }
  stats_free(&st);
  session_free(&s);
  free(run);
  return 0;
}

int main(int argc, char **argv) {
  Opts o;
  parse_opts(&o, argc, argv);
  if (!strcmp(o.cmd, "train")) return cmd_train(&o);
  return cmd_eval(&o);
}
