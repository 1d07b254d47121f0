#include <string>
#include <cstring>
#include "greet.h"

extern "C" int greet(const char *name, char *buf, int n) {
    std::string s = std::string("hello, ") + name + "!";
    std::strncpy(buf, s.c_str(), (size_t)n);
    if (n > 0) buf[n - 1] = '\0';
    return (int)s.size();
}
