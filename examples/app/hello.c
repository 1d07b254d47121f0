#include <stdio.h>
#include <string.h>
#include "strutil.h"
#include "greet.h"

int main(int argc, char **argv) {
    char buf[128];
    char name[64];
    strncpy(name, argc > 1 ? argv[1] : "omnibor", sizeof name - 1);
    name[sizeof name - 1] = '\0';
    upcase(name);
    greet(name, buf, (int)sizeof buf);
    printf("%s (%zu words, digit sum %ld)\n", buf, count_words(buf), sum_digits("2026"));
    return 0;
}
