/* plot.c - figures through PLplot's memcairo device (plot.h). */
#include "plot.h"

#include <math.h>
#include <plplot.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "util.h"

struct Plot {
  Image im;
};

/* cmap0: 0 the background, 1 ink (frames, text), then the series colours
 * opaque (lines, legend) and translucent (dots, which pile up). */
enum {
  INK = 1,
  LIGHT,
  LIGHT_TRANSLUCENT,
  OPAQUE,
  TRANSLUCENT = OPAQUE + PLOT_COLORS,
  NCMAP0 = TRANSLUCENT + PLOT_COLORS
};
static const unsigned char tableau10[PLOT_COLORS][3] = {
    {31, 119, 180}, {255, 127, 14}, {44, 160, 44},  {214, 39, 40},  {148, 103, 189},
    {140, 86, 75},  {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207}};

/* Fontconfig (under pango, under the cairo driver) and libltdl (PLplot's
 * driver loader) keep caches for the life of the process and never free
 * them; under LeakSanitizer those would fail every plot.  Only these two
 * libraries are exempted: a leak of vmrun's own still fails the build. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:libfontconfig.so\nleak:libltdl.so\n"; }
const char *__lsan_default_options(void);
const char *__lsan_default_options(void) { return "print_suppressions=0"; }

static int on_plplot_exit(const char *msg) { die(1, "plot: PLplot failed: %s", msg); }

/* When the device named is missing PLplot prompts on stdin for another:
 * look first, and say which package brings it. */
static void check_driver(void) {
  const char *menu[128], *name[128], **m = menu, **d = name;
  int n = 128;
  plgDevs(&m, &d, &n);
  for (int i = 0; i < n; i++)
    if (!strcmp(name[i], "memcairo")) return;
  die(1, "plot: PLplot has no memcairo device (install the Debian package plplot-driver-cairo)");
}

/* '#' starts a PLplot text escape: a model name or a path may hold one. */
static char *escape(const char *s) {
  char *out = xmalloc(2 * strlen(s) + 1), *o = out;
  for (; *s; s++) {
    if (*s == '#') *o++ = '#';
    *o++ = *s;
  }
  return out;
}

Plot *plot_begin(int width, int height) {
  Plot *p = xmalloc(sizeof *p);
  p->im = image_new(width, height, 3);
  memset(p->im.pixels, 255, (size_t)width * (size_t)height * 3); /* memcairo draws over what is there */
  plsexit(on_plplot_exit);
  check_driver();
  plsdev("memcairo");
  plsmem(width, height, p->im.pixels);
  plscmap0n(NCMAP0);
  plscol0(0, 255, 255, 255);
  plscol0(INK, 0, 0, 0);
  plscol0(LIGHT, 190, 190, 190);
  plscol0a(LIGHT_TRANSLUCENT, 170, 170, 170, 0.35);
  for (int c = 0; c < PLOT_COLORS; c++) {
    plscol0(OPAQUE + c, tableau10[c][0], tableau10[c][1], tableau10[c][2]);
    plscol0a(TRANSLUCENT + c, tableau10[c][0], tableau10[c][1], tableau10[c][2], 0.55);
  }
  plinit();
  pladv(0);
  return p;
}

void plot_axes(Plot *p, const PlotAxes *a) {
  (void)p;
  plvpor(a->left, a->right, a->bottom, a->top);
  plwind(a->xmin, a->xmax, a->ymin, a->ymax);
  plcol0(INK);
  plwidth(1.0);
  plbox("bcnst", 0, 0, "bcnstv", 0, 0);
  char *x = escape(a->xlabel ? a->xlabel : ""), *y = escape(a->ylabel ? a->ylabel : ""),
       *t = escape(a->title ? a->title : "");
  pllab(x, "", "");
  if (a->title_scale > 0) plschr(0, a->title_scale);
  plmtex("t", 2.0, 0.5, 0.5, t); /* where pllab puts a title */
  plschr(0, 1.0);
  plmtex("l", 5.6, 0.5, 0.5, y); /* a little further out than pllab's: clear of 5-character tick labels */
  free(x);
  free(y);
  free(t);
}

/* World units per pixel along x and y in the current frame. */
static void pixel_size(const Plot *p, double *dx, double *dy) {
  PLFLT vx0, vx1, vy0, vy1, wx0, wx1, wy0, wy1;
  plgvpd(&vx0, &vx1, &vy0, &vy1);
  plgvpw(&wx0, &wx1, &wy0, &wy1);
  *dx = (wx1 - wx0) / ((vx1 - vx0) * p->im.width);
  *dy = (wy1 - wy0) / ((vy1 - vy0) * p->im.height);
}

/* A filled 12-gon: PLplot's symbols are font glyphs, and a filled polygon
 * looks the same with any font. */
static void dot(double x, double y, double rx, double ry) {
  PLFLT px[12], py[12];
  for (int k = 0; k < 12; k++) {
    px[k] = x + rx * cos(k * (3.14159265358979323846 / 6));
    py[k] = y + ry * sin(k * (3.14159265358979323846 / 6));
  }
  plfill(12, px, py);
}

void plot_points(Plot *p, const double *x, const double *y, const int *color, long n, double radius) {
  double dx, dy;
  pixel_size(p, &dx, &dy);
  int cur = -1;
  for (long i = 0; i < n; i++) {
    if (!isfinite(x[i]) || !isfinite(y[i])) continue;
    int c = !color ? TRANSLUCENT : color[i] < 0 ? LIGHT_TRANSLUCENT : TRANSLUCENT + color[i] % PLOT_COLORS;
    if (c != cur) plcol0(cur = c);
    dot(x[i], y[i], radius * dx, radius * dy);
  }
}

void plot_line(Plot *p, const double *x, const double *y, long n, int color, int dots) {
  double dx, dy;
  pixel_size(p, &dx, &dy);
  plcol0(OPAQUE + color % PLOT_COLORS);
  plwidth(2.0);
  for (long i = 0; i < n;) { /* each run of finite points */
    while (i < n && !(isfinite(x[i]) && isfinite(y[i]))) i++;
    long start = i;
    while (i < n && isfinite(x[i]) && isfinite(y[i])) i++;
    if (i - start > 1) plline((PLINT)(i - start), x + start, y + start);
  }
  for (long i = 0; dots && i < n; i++)
    if (isfinite(x[i]) && isfinite(y[i])) dot(x[i], y[i], 3 * dx, 3 * dy);
  plwidth(1.0);
}

void plot_legend(Plot *p, const char *heading, const char *const *text, const int *color, int n, int style) {
  (void)p;
  int h = heading != NULL, m = n + h; /* the heading: an entry without a sample */
  if (n < 1) return;
  PLINT *opt = xmalloc(sizeof(PLINT) * (size_t)m), *ink = xmalloc(sizeof(PLINT) * (size_t)m),
        *col = xmalloc(sizeof(PLINT) * (size_t)m), *zero = xmalloc(sizeof(PLINT) * (size_t)m),
        *one = xmalloc(sizeof(PLINT) * (size_t)m);
  PLFLT *scale = xmalloc(sizeof(PLFLT) * (size_t)m), *width = xmalloc(sizeof(PLFLT) * (size_t)m);
  char **esc = xmalloc(sizeof(char *) * (size_t)m);
  int lines = style == PLOT_LINES_INSIDE;
  for (int i = 0; i < m; i++) {
    opt[i] = i < h ? PL_LEGEND_NONE : lines ? PL_LEGEND_LINE : PL_LEGEND_COLOR_BOX;
    ink[i] = INK;
    col[i] = i < h ? INK : color[i - h] < 0 ? LIGHT : OPAQUE + color[i - h] % PLOT_COLORS;
    zero[i] = 0;
    one[i] = 1;
    scale[i] = 0.8;
    width[i] = lines ? 2.0 : 1.0;
    esc[i] = escape(i < h ? heading : text[i - h]);
  }
  PLFLT lw, lh;
  plcol0(INK);
  if (lines)
    pllegend(&lw, &lh, PL_LEGEND_BACKGROUND | PL_LEGEND_BOUNDING_BOX,
             PL_POSITION_BOTTOM | PL_POSITION_RIGHT | PL_POSITION_INSIDE, 0.02, 0.03, 0.08, 0, INK, 1, 0, 0, m, opt,
             1.0, 0.9, 1.8, 0, ink, (const char *const *)esc, NULL, NULL, NULL, NULL, col, one, width, NULL, NULL,
             NULL, NULL);
  else
    pllegend(&lw, &lh, 0, PL_POSITION_RIGHT | PL_POSITION_OUTSIDE, 0.03, 0.0, 0.05, 0, INK, 1, 0, 0, m, opt, 0.8, 0.9,
             2.0, 0, ink, (const char *const *)esc, col, zero, scale, width, NULL, NULL, NULL, NULL,
             NULL, NULL, NULL);
  for (int i = 0; i < m; i++) free(esc[i]);
  free(esc);
  free(opt);
  free(ink);
  free(col);
  free(zero);
  free(one);
  free(scale);
  free(width);
}

void plot_title(Plot *p, double y, double scale, const char *text) {
  (void)p;
  PLFLT vx0, vx1, vy0, vy1, wx0, wx1, wy0, wy1;
  plgvpd(&vx0, &vx1, &vy0, &vy1);
  plgvpw(&wx0, &wx1, &wy0, &wy1);
  plvpor(0, 1, 0, 1);
  plwind(0, 1, 0, 1);
  plcol0(INK);
  plschr(0, scale);
  char *t = escape(text);
  plptex(0.5, y, 1, 0, 0.5, t);
  free(t);
  plschr(0, 1.0);
  plvpor(vx0, vx1, vy0, vy1); /* back to the frame the caller drew */
  plwind(wx0, wx1, wy0, wy1);
}

void plot_save(Plot *p, const char *path) {
  plend(); /* memcairo copies the page into the buffer here */
  image_save_png(&p->im, path);
  image_free(&p->im);
  free(p);
}

void plot_range(const double *v, long n, double *lo, double *hi) {
  double a = INFINITY, b = -INFINITY;
  for (long i = 0; i < n; i++)
    if (isfinite(v[i])) {
      if (v[i] < a) a = v[i];
      if (v[i] > b) b = v[i];
    }
  if (a > b) a = 0, b = 1;
  else if (a == b) a -= 0.5, b += 0.5;
  double m = 0.05 * (b - a);
  *lo = a - m;
  *hi = b + m;
}

void plot_range_square(const double *x, const double *y, long n, PlotAxes *a) {
  plot_range(x, n, &a->xmin, &a->xmax);
  plot_range(y, n, &a->ymin, &a->ymax);
  double span = fmax(a->xmax - a->xmin, a->ymax - a->ymin), cx = (a->xmin + a->xmax) / 2, cy = (a->ymin + a->ymax) / 2;
  a->xmin = cx - span / 2, a->xmax = cx + span / 2;
  a->ymin = cy - span / 2, a->ymax = cy + span / 2;
}
