// Shared by the fuzz targets: a property that every accepted input must keep. A violation
// aborts, which both libFuzzer and the smoke driver report as a failure with the input.
#pragma once

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(condition, what)                                                              \
  do {                                                                                           \
    if (!(condition)) {                                                                          \
      std::fprintf(stderr, "%s:%d: fuzz property violated: %s (%s)\n", __FILE__, __LINE__, what, \
                   #condition);                                                                  \
      std::abort();                                                                              \
    }                                                                                            \
  } while (false)
