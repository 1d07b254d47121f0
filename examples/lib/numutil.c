#include <ctype.h>
#include "strutil.h"

long sum_digits(const char *s) {
    long t = 0;
    for (; *s; s++)
        if (isdigit((unsigned char)*s)) t += *s - '0';
    return t;
}
