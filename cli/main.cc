// flin: the command-line client for flind. Everything lives in app.cc so
// tests and the completion generator can build the same command tree.
#include "cli/app.h"

int main(int argc, char** argv) { return flin::cli::RunFlin(argc, argv); }
