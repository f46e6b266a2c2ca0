/* arena.h - one allocation region per compilation, freed at once. */
#ifndef VML_ARENA_H
#define VML_ARENA_H

#include <stddef.h>

typedef struct Arena Arena;

Arena *arena_new(void);
void arena_free(Arena *a);
void *arena_alloc(Arena *a, size_t n);                 /* zeroed */
char *arena_strndup(Arena *a, const char *s, size_t n);
char *arena_strdup(Arena *a, const char *s);
char *arena_printf(Arena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A growable array of pointers living in an arena. */
typedef struct {
  void **items;
  int len, cap;
} Vec;

void vec_push(Arena *a, Vec *v, void *item);

#endif
