b.o: b.c
