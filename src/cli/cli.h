// The `meridian` command line: every subcommand, with --help that teaches.
#pragma once

namespace meridian::cli {

// Runs the command line and returns the process exit code.
int Main(int argc, char** argv);

}  // namespace meridian::cli
