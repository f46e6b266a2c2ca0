/* plot.h - the figures of vmrun plot: a thin layer over PLplot that draws
 * into memory with its cairo driver ("memcairo": headless, no X server, no
 * file of its own) and writes the page as PNG with image_save_png.
 *
 *   Plot *p = plot_begin(800, 800);
 *   plot_axes(p, &(PlotAxes){.left = 0.1, ..., .xlabel = "z1", ...});
 *   plot_points(p, x, y, colors, n, 2.5);
 *   plot_legend(p, "label", texts, colors, k, PLOT_BOXES_OUTSIDE);
 *   plot_save(p, "latent.png");    writes the PNG and frees everything
 *
 * One plot at a time: PLplot keeps its state in globals.  A PLplot failure
 * exits (util.h's die) before anything is written. */
#ifndef VML_PLOT_H
#define VML_PLOT_H

/* Series colours 0..PLOT_COLORS-1 (Tableau 10: distinguishable, and
 * readable by most colour-blind readers); larger numbers wrap around.
 * PLOT_LIGHT, a light gray, is for what is drawn behind the series (the
 * training data under a model's samples). */
#define PLOT_COLORS 10
#define PLOT_LIGHT (-1)

typedef struct Plot Plot;

/* A white page of width x height pixels; exits when PLplot or its cairo
 * driver (Debian: plplot-driver-cairo) is missing. */
Plot *plot_begin(int width, int height);

/* A frame with ticks, numbers, axis labels and a title above it; what
 * follows draws in its coordinates. */
typedef struct {
  double left, right, bottom, top; /* the frame, in fractions of the page */
  double xmin, xmax, ymin, ymax;   /* the data range shown */
  const char *xlabel, *ylabel, *title;
  double title_scale;              /* the title's size; 0: normal */
} PlotAxes;
void plot_axes(Plot *p, const PlotAxes *a);

/* n filled dots of the given radius in pixels, translucent so that dense
 * regions show; color[i] is point i's series colour or PLOT_LIGHT (NULL:
 * all colour 0).  Drawn in the order given. */
void plot_points(Plot *p, const double *x, const double *y, const int *color, long n, double radius);

/* A polyline in series colour `color`, broken at NaN values; with dots at
 * the points when `dots` (so that a line of one point still shows). */
void plot_line(Plot *p, const double *x, const double *y, long n, int color, int dots);

/* A legend of n entries under a heading (NULL: none), color[i] a series
 * colour or PLOT_LIGHT: colour boxes to the
 * right of the frame (PLOT_BOXES_OUTSIDE) or line samples in its bottom
 * right corner, on a white background (PLOT_LINES_INSIDE: where rising
 * curves, an ELBO's, leave room). */
enum { PLOT_BOXES_OUTSIDE, PLOT_LINES_INSIDE };
void plot_legend(Plot *p, const char *heading, const char *const *text, const int *color, int n, int style);

/* A line of text centred across the page at height y (a fraction of the
 * page, from the bottom), `scale` times the normal size: a title wider
 * than its frame. */
void plot_title(Plot *p, double y, double scale, const char *text);

/* Writes the page to path (PNG, whole or not at all) and frees p. */
void plot_save(Plot *p, const char *path);

/* [*lo, *hi]: the finite values' range with a 5% margin each side; a
 * unit range around a lone value; [0, 1] when there is none. */
void plot_range(const double *v, long n, double *lo, double *hi);

/* a's data range: plot_range of x and of y, widened to the larger of the
 * two spans around their centres, so that both axes have the same scale
 * (in a square frame, distances read the same across and up). */
void plot_range_square(const double *x, const double *y, long n, PlotAxes *a);

#endif
