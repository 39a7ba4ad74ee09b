#include "cli/cli.h"

namespace meridian::cli {
int Main(int argc, char** argv) { return 0; }
}  // namespace meridian::cli
