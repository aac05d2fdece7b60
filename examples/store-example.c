#include <tinysync/tinysync.h>
int main (void) { return 0; }
