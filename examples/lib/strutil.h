#ifndef STRUTIL_H
#define STRUTIL_H
#include <stddef.h>
#ifdef __cplusplus
extern "C" {
#endif
size_t count_words(const char *s);
void upcase(char *s);
long sum_digits(const char *s);
#ifdef __cplusplus
}
#endif
#endif
