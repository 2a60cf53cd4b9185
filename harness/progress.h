// Progress of long steps on stderr (never stdout, which may carry JSON): on a
// terminal one live line, redrawn each second with the step's elapsed time against
// its budget; otherwise one line per step; nothing when quiet.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

namespace nanguard {

class Progress {
 public:
  explicit Progress(bool quiet);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // A line that stays (the expected cost, a step's result).
  void note(const std::string& line);
  // A step begins (e.g. "trigger: finding 3 of 10, /Log (log-nonpositive)"), with the
  // seconds it may take (0: unknown).
  void step(const std::string& label, double budget_seconds);
  double elapsed() const;

 private:
  using Clock = std::chrono::steady_clock;
  void draw();  // the live line; mutex held
  void tick();
  bool quiet_, tty_;
  Clock::time_point start_, step_start_;
  std::string label_;
  double budget_ = 0;
  bool live_ = false, stop_ = false;
  std::mutex mu_;
  std::condition_variable cv_;
  std::thread ticker_;
};

}  // namespace nanguard
