/* image.c - PNG output through libpng, and grids of small pictures. */
#include "image.h"

#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

Image image_new(int width, int height, int channels) {
  Image im = {width, height, channels, xmalloc((size_t)width * (size_t)height * (size_t)channels)};
  return im;
}

void image_free(Image *im) {
  free(im->pixels);
  im->pixels = NULL;
}

void image_save_png(const Image *im, const char *path) {
  static const int color[5] = {0, PNG_COLOR_TYPE_GRAY, 0, PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_RGBA};
  FILE *f = out_open(path);
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  if (!info) die(1, "%s: libpng cannot start", path);
  png_bytep *rows = xmalloc(sizeof(png_bytep) * (size_t)im->height);
  if (setjmp(png_jmpbuf(png))) { /* how libpng reports an error */
    out_abort(f, path);
    die(1, "cannot write %s: libpng failed", path);
  }
  png_init_io(png, f);
  png_set_IHDR(png, info, (png_uint_32)im->width, (png_uint_32)im->height, 8, color[im->channels],
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  for (int y = 0; y < im->height; y++) rows[y] = im->pixels + (size_t)y * (size_t)im->width * (size_t)im->channels;
  png_set_rows(png, info, rows);
  png_write_png(png, info, PNG_TRANSFORM_IDENTITY, NULL);
  png_destroy_write_struct(&png, &info);
  free(rows);
  out_commit(f, path);
}

/* ------------------------------------------------------------ grids */

int image_zoom(int h, int w, int min_side) {
  int side = h > w ? h : w;
  return side >= min_side ? 1 : (min_side + side - 1) / side;
}

void image_grid_size(const ImageGrid *g, long long *width, long long *height) {
  *width = (long long)g->cols * g->w * g->zoom + (long long)(g->cols + 1) * g->gap;
  *height = (long long)g->rows * g->h * g->zoom + (long long)(g->rows + 1) * g->gap;
}

Image image_grid_new(const ImageGrid *g) {
  long long w, h;
  image_grid_size(g, &w, &h);
  Image im = image_new((int)w, (int)h, 1);
  memset(im.pixels, IMAGE_GRID_GRAY, (size_t)w * (size_t)h);
  return im;
}

static uint8_t gray(float v) {
  if (!(v > 0)) return 0; /* NaN too: a hole in a picture should not look like ink */
  if (v >= 1) return 255;
  return (uint8_t)(v * 255.0f + 0.5f);
}

void image_grid_put(Image *im, const ImageGrid *g, int row, int col, const float *v) {
  int z = g->zoom;
  size_t x0 = (size_t)col * (size_t)(g->w * z + g->gap) + (size_t)g->gap;
  size_t y0 = (size_t)row * (size_t)(g->h * z + g->gap) + (size_t)g->gap;
  for (int i = 0; i < g->h; i++) {
    uint8_t *line = im->pixels + (y0 + (size_t)i * (size_t)z) * (size_t)im->width + x0;
    for (int j = 0; j < g->w; j++)
      memset(line + (size_t)j * (size_t)z, gray(v[(size_t)i * (size_t)g->w + (size_t)j]), (size_t)z);
    for (int r = 1; r < z; r++) memcpy(line + (size_t)r * (size_t)im->width, line, (size_t)g->w * (size_t)z);
  }
}
