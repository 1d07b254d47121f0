#ifndef GREET_H
#define GREET_H
#ifdef __cplusplus
extern "C" {
#endif
/* Writes a greeting for name into buf (at most n bytes); returns its length. */
int greet(const char *name, char *buf, int n);
#ifdef __cplusplus
}
#endif
#endif
