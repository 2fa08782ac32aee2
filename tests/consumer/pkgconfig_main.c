/* Built with the flags `pkg-config --cflags --libs wald` gives. */
#include <string.h>
#include <wald/wald.h>

int main(void) { return strcmp(wald_strerror(WALD_OK), "ok") == 0 ? 0 : 1; }
