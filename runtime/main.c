/* main.c - vmrun: runs a compiled model (.vmx).  The options, the eval
 * command and what the commands share; training is in train.c. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "estimate.h"
#include "exec.h"
#include "session.h"
#include "stats.h"
#include "util.h"
#include "vmrun.h"

static void usage(FILE *f) {
  fputs("usage: vmrun train [FILE.vmx] [--data DIR] [--epochs N | --steps N] [--batch N]\n"
        "                   [--lr X] [--seed N] [--out DIR] [--threads N]\n"
        "       vmrun train --resume RUN [--epochs N | --steps N] [--data DIR] [--threads N]\n"
        "       vmrun eval [--run DIR] [--data DIR] [--split S] [--examples N] [--json]\n"
        "                  [--iw K | --ais [--ais-steps N] [--chains N] [--leapfrog N]\n"
        "                  [--step-size X] | --quadrature [--grid N]]\n"
        "       vmrun sample [--run DIR] [--data DIR] [-n N] [--no-noise] [--seed N]\n"
        "                    -o FILE.png|.csv|.npy\n"
        "       vmrun reconstruct [--run DIR] [--data DIR] [--split S] [-n N] -o FILE.png\n"
        "       vmrun interpolate [--run DIR] [--data DIR] [--split S] [-n PAIRS]\n"
        "                         [--points N] -o FILE.png\n"
        "       vmrun encode [--run DIR] [--data DIR] [--split S] [--sample] -o FILE.npy|.csv\n"
        "       vmrun plot latent|metrics [--run DIR] [--data DIR] [--split S] [--sample]\n"
        "                 -o FILE.png\n"
        "Every command but train takes the newest run under runs/ (or --run DIR) and\n"
        "the copy of the .vmx in it; all take --threads N and --batch N. See man vmrun.\n",
        f);
}

/* ------------------------------------------------------------ options */

enum { TRAIN = 1, EVAL = 2, SAMPLE = 4, RECON = 8, INTERP = 16, ENCODE = 32, PLOT = 64 };
#define AFTER (EVAL | SAMPLE | RECON | INTERP | ENCODE | PLOT) /* commands on a trained run */
#define ON_DATA (EVAL | RECON | INTERP | ENCODE | PLOT)       /* commands reading a split */

static const struct {
  const char *name;
  int cmds;
} commands[] = {{"train", TRAIN},      {"eval", EVAL},     {"sample", SAMPLE}, {"reconstruct", RECON},
                {"interpolate", INTERP}, {"encode", ENCODE}, {"plot", PLOT}};

typedef enum { FLAG, LONG, REAL, SEED, PATH, SPLIT } OptKind;

/* Every option: the commands it applies to, its kind, where it goes.  The
 * smallest value an integer or real option takes is in min. */
static const struct {
  const char *name;
  int cmds;
  OptKind kind;
  size_t at;
  double min;
} options[] = {
    {"--data", TRAIN | ON_DATA | SAMPLE, PATH, offsetof(Opts, data), 0}, /* sample: the data behind a 2-D scatter */
    {"--batch", TRAIN | AFTER, LONG, offsetof(Opts, batch), 1},
    {"--threads", TRAIN | AFTER, LONG, offsetof(Opts, threads), 1},
    {"--epochs", TRAIN, LONG, offsetof(Opts, epochs), 1},
    {"--steps", TRAIN, LONG, offsetof(Opts, steps), 1},
    {"--out", TRAIN, PATH, offsetof(Opts, out), 0},
    {"--resume", TRAIN, PATH, offsetof(Opts, resume), 0},
    {"--seed", TRAIN | AFTER, SEED, offsetof(Opts, seed), 0},
    {"--lr", TRAIN, REAL, offsetof(Opts, lr), 0},
    {"--run", AFTER, PATH, offsetof(Opts, run), 0},
    {"--split", ON_DATA, SPLIT, offsetof(Opts, split), 0},
    {"--json", EVAL, FLAG, offsetof(Opts, json), 0},
    {"--examples", EVAL | ENCODE | PLOT, LONG, offsetof(Opts, examples), 1},
    {"--iw", EVAL, LONG, offsetof(Opts, iw), 1},
    {"--ais", EVAL, FLAG, offsetof(Opts, ais), 0},
    {"--ais-steps", EVAL, LONG, offsetof(Opts, ais_steps), 1},
    {"--chains", EVAL, LONG, offsetof(Opts, chains), 1},
    {"--leapfrog", EVAL, LONG, offsetof(Opts, leapfrog), 1},
    {"--step-size", EVAL, REAL, offsetof(Opts, step_size), 0},
    {"--quadrature", EVAL, FLAG, offsetof(Opts, quadrature), 0},
    {"--grid", EVAL, LONG, offsetof(Opts, grid), 3},
    {"-n", SAMPLE | RECON | INTERP, LONG, offsetof(Opts, n), 1},
    {"--points", INTERP, LONG, offsetof(Opts, points), 2},
    {"-o", SAMPLE | RECON | INTERP | ENCODE | PLOT, PATH, offsetof(Opts, output), 0},
    {"--no-noise", SAMPLE, FLAG, offsetof(Opts, no_noise), 0},
    {"--sample", ENCODE | PLOT, FLAG, offsetof(Opts, sample), 0},
};

static void set_option(Opts *o, int k, const char *v) {
  char *field = (char *)o + options[k].at, *end;
  const char *a = options[k].name;
  errno = 0;
  switch (options[k].kind) {
  case FLAG: *(int *)field = 1; break;
  case PATH: *(const char **)field = v; break;
  case LONG: {
    long x = strtol(v, &end, 10);
    if (errno || *end || end == v || x < options[k].min)
      die(2, "%s: expected an integer >= %.0f, got '%s'", a, options[k].min, v);
    *(long *)field = x;
    break;
  }
  case REAL: {
    double x = strtod(v, &end);
    if (*end || end == v || !(x > options[k].min) || !isfinite(x)) die(2, "%s: expected a positive number, got '%s'", a, v);
    *(double *)field = x;
    break;
  }
  case SEED: {
    unsigned long long s = strtoull(v, &end, 10);
    if (errno || *end || end == v || v[0] == '-') die(2, "%s: expected a non-negative integer, got '%s'", a, v);
    o->seed = s;
    o->have_seed = 1;
    break;
  }
  case SPLIT:
    if (split_index(v) < 0) die(2, "%s: expected train, valid or test, got '%s'", a, v);
    o->split = v;
    break;
  }
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
  int cmd = 0;
  for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
    if (!strcmp(o->cmd, commands[i].name)) cmd = commands[i].cmds;
  if (!cmd) {
    fprintf(stderr, "vmrun: unknown command '%s'\n", o->cmd);
    usage(stderr);
    exit(2);
  }
  int i = 2;
  if (cmd == PLOT) {
    if (i >= argc || (strcmp(argv[i], "latent") && strcmp(argv[i], "metrics")))
      die(2, "plot: expected 'latent' or 'metrics' after plot");
    o->plot = argv[i++];
  }
  for (; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout);
      exit(0);
    }
    if (a[0] != '-' || !a[1]) {
      if (o->file) die(2, "more than one file given ('%s' and '%s')", o->file, a);
      o->file = a;
      continue;
    }
    int k = -1;
    for (size_t j = 0; j < sizeof options / sizeof *options; j++)
      if (!strcmp(a, options[j].name) && (options[j].cmds & cmd)) k = (int)j;
    if (k < 0) die(2, "unknown option '%s' for %s (see vmrun --help)", a, o->cmd);
    if (options[k].kind == FLAG) set_option(o, k, NULL);
    else if (i + 1 >= argc) die(2, "%s needs a value", a);
    else set_option(o, k, argv[++i]);
  }
  if (o->epochs && o->steps) die(2, "--epochs and --steps cannot both be given");
  if (!!o->iw + o->ais + o->quadrature > 1) die(2, "--iw, --ais and --quadrature cannot be combined");
  if ((o->ais_steps || o->chains || o->leapfrog || o->step_size > 0) && !o->ais)
    die(2, "--ais-steps, --chains, --leapfrog and --step-size go with --ais");
  if (o->grid && !o->quadrature) die(2, "--grid goes with --quadrature");
  if ((cmd & (SAMPLE | RECON | INTERP | ENCODE | PLOT)) && !o->output) die(2, "%s needs -o FILE", o->cmd);
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

/* Without an estimator option: the ELBO and its terms, and for latents of
 * codes their usage, perplexity and prior (stats.c); with --iw, --ais or
 * --quadrature: an estimate of log p(x) (estimate.c). */
int cmd_eval(const Opts *o) {
  char *run = o->run ? xstrdup(o->run) : vmrun_newest_run();
  char *path = o->file ? xstrdup(o->file) : vmrun_run_vmx(run);
  Session s;
  session_load(&s, path);
  free(path);
  int estimator = o->iw || o->ais || o->quadrature;
  EstimateKind kind = o->iw ? ESTIMATE_IW : o->ais ? ESTIMATE_AIS : ESTIMATE_QUADRATURE;
  const Graph *g = NULL;
  int codes = !estimator && stats_has_codes(&s);
  if (estimator) estimate_check(&s, kind); /* before the checkpoint and the data are read */
  else if (!(g = session_graph(&s, "elbo")) && !codes)
    die(2, "%s: model %s has no elbo entry point (a role without a density); estimate log p(x) with --ais", s.path,
        s.vmx->model);
  char *cp = xprintf("%s/checkpoint.safetensors", run), err[1024];
  Ckpt c;
  if (ckpt_read(cp, &c, err, sizeof err)) die(2, "%s", err);
  free(cp);
  session_read_params(&s, &c);
  /* The run's seed made its synthetic data and binarizations: the data
   * come from it; --seed changes the random draws (and, for the ELBO,
   * whose stats_elbo has one seed for both, a dynamic binarization). */
  uint64_t seed = 0;
  if (ckpt_meta_u64(&c, CKPT_KEY_SEED, &seed, err, sizeof err)) die(2, "%s", err);
  uint64_t draws = o->have_seed ? o->seed : seed;
  const char *data = ckpt_meta(&c, "vml.run.data");
  int k = split_index(o->split), want[SPLIT_COUNT] = {0, 0, 0};
  want[k] = 1;
  session_load_data(&s, o->data ? o->data : data && *data ? data : NULL, want, seed);
  ckpt_free(&c);
  long n = session_examples(&s, k);
  if (!n) die(2, "data %s has no %s split", s.data[0].decl->name, o->split);
  if (o->examples && o->examples < n) { /* the estimators and stats_elbo read the split from its start */
    n = o->examples;
    for (int i = 0; i < s.ndata; i++) source_spread(&s.data[i], k, n);
  }
  vmrun_threads(o->threads);
  ElboStats st;
  CodeStats cs;
  Estimate est;
  memset(&st, 0, sizeof st);
  memset(&cs, 0, sizeof cs);
  if (estimator) {
    EstimateOpts eo = {.kind = kind, .examples = n, .batch = o->batch, .seed = draws, .data_seed = seed, .k = o->iw,
                       .ais_steps = o->ais_steps, .chains = o->chains, .leapfrog = o->leapfrog,
                       .step_size = o->step_size, .grid = o->grid};
    estimate_run(&s, k, &eo, &est);
  } else {
    ExecError e;
    if (g && stats_elbo(&s, g, k, o->batch ? o->batch : 128, draws, &st, &e)) die(1, "elbo: %s", e.msg);
    if (codes && stats_codes(&s, k, o->batch ? o->batch : 128, draws, STATS_PRIOR, &cs, &e)) die(1, "codes: %s", e.msg);
  }
  if (o->json) {
    printf("{\"run\":");
    json_str(stdout, run);
    printf(",\"model\":");
    json_str(stdout, s.vmx->model);
    printf(",\"split\":\"%s\",\"examples\":%ld", o->split, n);
    if (estimator) estimate_json(stdout, &est);
    if (g) stats_json(stdout, &st);
    if (codes) stats_codes_json(stdout, &cs);
    printf("}\n");
  } else {
    printf("%s on %s (%ld examples, %s)\n", s.vmx->model, o->split, n, run);
    if (estimator) estimate_print(stdout, &est);
    if (g) stats_print(stdout, &st);
    if (codes) stats_codes_print(stdout, &cs);
  }
  stats_free(&st);
  stats_codes_free(&cs);
  session_free(&s);
  free(run);
  return 0;
}

int main(int argc, char **argv) {
  Opts o;
  setvbuf(stdout, NULL, _IOLBF, 0); /* progress lines show as they come when piped */
  parse_opts(&o, argc, argv);
  if (!strcmp(o.cmd, "train")) return cmd_train(&o);
  if (!strcmp(o.cmd, "eval")) return cmd_eval(&o);
  if (!strcmp(o.cmd, "sample")) return cmd_sample(&o);
  if (!strcmp(o.cmd, "reconstruct")) return cmd_reconstruct(&o);
  if (!strcmp(o.cmd, "interpolate")) return cmd_interpolate(&o);
  if (!strcmp(o.cmd, "encode")) return cmd_encode(&o);
  return cmd_plot(&o);
}
