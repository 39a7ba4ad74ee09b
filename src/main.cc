#include "cli/cli.h"

int main(int argc, char** argv) { return meridian::cli::Main(argc, argv); }
