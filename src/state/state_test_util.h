// Test helpers shared by the state store's test files.
#pragma once

#include <stdlib.h>

#include <string>

#include "base/files.h"
#include "gtest/gtest.h"

namespace meridian::state {

// A fresh directory under the test temp dir, removed at the end of the test; path() is empty
// when it could not be made.
class TempDir {
 public:
  TempDir() {
    std::string pattern = ::testing::TempDir() + "state_test_XXXXXX";
    path_ = mkdtemp(pattern.data()) != nullptr ? pattern : std::string();
  }
  ~TempDir() {
    if (!path_.empty()) base::RemoveAll(path_).IgnoreError();
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace meridian::state
