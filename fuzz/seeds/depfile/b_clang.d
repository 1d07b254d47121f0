b_clang.o: b.c
