/* image.h - pictures vmrun writes: 8-bit gray, RGB or RGBA pixels, row by
 * row, saved as PNG with libpng. */
#ifndef VML_IMAGE_H
#define VML_IMAGE_H

#include <stdint.h>

typedef struct {
  int width, height, channels; /* channels: 1 gray, 3 RGB, 4 RGBA */
  uint8_t *pixels;             /* height rows of width * channels bytes */
} Image;

Image image_new(int width, int height, int channels); /* filled with 0 */
void image_free(Image *im);

/* Writes im to path as PNG, whole or not at all; exits on failure. */
void image_save_png(const Image *im, const char *path);

/* A grid of rows x cols cells, each an h x w gray picture drawn zoom times
 * larger (zoom x zoom pixels per value), with `gap` pixels of mid gray
 * between the cells and around them:
 *   width  = cols * w * zoom + (cols + 1) * gap
 *   height = rows * h * zoom + (rows + 1) * gap */
typedef struct {
  int rows, cols, h, w, zoom, gap;
} ImageGrid;

#define IMAGE_GRID_GRAY 128 /* the gap: apart from black (0) and white (1) */

/* The smallest zoom that makes the longer side of an h x w picture at
 * least min_side pixels (1 when it already is). */
int image_zoom(int h, int w, int min_side);

/* The grid's size in pixels (as long long: the caller checks it fits). */
void image_grid_size(const ImageGrid *g, long long *width, long long *height);

/* The grid's gray image, cells empty (gray) until drawn. */
Image image_grid_new(const ImageGrid *g);

/* Draws cell (row, col) from v, h * w intensities row by row, 0 black to
 * 1 white; values outside [0, 1] are clamped (NaN is black). */
void image_grid_put(Image *im, const ImageGrid *g, int row, int col, const float *v);

#endif
