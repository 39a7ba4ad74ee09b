// Eventually: the one way a test waits for something that another thread or process does.
//
// Polls `condition` until it returns true or `deadline` has passed, and says which. The poll
// interval starts at 1 ms and doubles up to 50 ms, so a quick condition is seen at once and a
// slow one (a process, an HTTP call) is not asked a thousand times a second.
//
// The deadline only stops a broken test from hanging: keep it generous, assert on the result
// (`ASSERT_TRUE(Eventually(...)) << what was expected`), and never on how long it took.
// `condition` runs on the caller's thread; it may capture what it observes for the message.
#pragma once

#include <algorithm>
#include <chrono>
#include <thread>

namespace meridian {

inline constexpr std::chrono::milliseconds kEventuallyDeadline{90'000};

template <typename Condition>
bool Eventually(Condition&& condition, std::chrono::milliseconds deadline = kEventuallyDeadline) {
  constexpr std::chrono::milliseconds kLongestPoll{50};
  const auto give_up = std::chrono::steady_clock::now() + deadline;
  std::chrono::milliseconds poll{1};
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= give_up) return false;
    std::this_thread::sleep_for(poll);
    poll = std::min(poll * 2, kLongestPoll);
  }
  return true;
}

}  // namespace meridian
