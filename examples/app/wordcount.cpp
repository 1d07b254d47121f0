#include <iostream>
#include <string>
#include <vector>
#include "strutil.h"

int main() {
    std::vector<std::string> lines = {"one two three", "  four  ", "", "five six"};
    size_t total = 0;
    for (const auto &l : lines) total += count_words(l.c_str());
    std::cout << "words: " << total << std::endl;
    return 0;
}
