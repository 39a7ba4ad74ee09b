// Clock: the seam through which code reads time, so tests can use a fake one.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace meridian::base {

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock time in milliseconds since the Unix epoch.
  virtual int64_t NowUnixMs() const = 0;
  // Monotonic time in milliseconds from an arbitrary origin; use for timeouts.
  virtual int64_t MonotonicMs() const = 0;
};

// The real clock. Thread-safe; a process-wide instance.
class SystemClock final : public Clock {
 public:
  static SystemClock* Get();
  int64_t NowUnixMs() const override;
  int64_t MonotonicMs() const override;
};

// A clock tests move by hand. Thread-safe.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(int64_t start_unix_ms = 1'700'000'000'000) : now_ms_(start_unix_ms) {}
  int64_t NowUnixMs() const override { return now_ms_.load(); }
  int64_t MonotonicMs() const override { return now_ms_.load(); }
  void AdvanceMs(int64_t delta_ms) { now_ms_ += delta_ms; }

 private:
  std::atomic<int64_t> now_ms_;
};

}  // namespace meridian::base
