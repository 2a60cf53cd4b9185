#include "harness/progress.h"

#include <cstdio>

#include <fmt/core.h>
#include <unistd.h>

namespace nanguard {

Progress::Progress(bool quiet)
    : quiet_(quiet), tty_(!quiet && isatty(STDERR_FILENO) == 1), start_(Clock::now()), step_start_(start_) {
  if (tty_) ticker_ = std::thread([this] { tick(); });
}

Progress::~Progress() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    if (live_) std::fputs("\r\033[K", stderr);
    live_ = false;
  }
  cv_.notify_all();
  if (ticker_.joinable()) ticker_.join();
}

double Progress::elapsed() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

void Progress::note(const std::string& line) {
  if (quiet_) return;
  std::lock_guard<std::mutex> lock(mu_);
  std::fprintf(stderr, "%s%s\n", live_ ? "\r\033[K" : "", line.c_str());
  live_ = false;
  label_.clear();
  std::fflush(stderr);
}

void Progress::step(const std::string& label, double budget_seconds) {
  if (quiet_) return;
  std::lock_guard<std::mutex> lock(mu_);
  label_ = label;
  budget_ = budget_seconds;
  step_start_ = Clock::now();
  if (!tty_) {
    std::fprintf(stderr, "%s\n", label.c_str());
    std::fflush(stderr);
    return;
  }
  draw();
}

void Progress::draw() {
  if (label_.empty()) return;
  double s = std::chrono::duration<double>(Clock::now() - step_start_).count();
  std::string t = budget_ > 0 ? fmt::format(" ({:.0f} s of {:.0f} s)", s, budget_) : fmt::format(" ({:.0f} s)", s);
  std::fprintf(stderr, "\r\033[K%s%s", label_.c_str(), t.c_str());
  std::fflush(stderr);
  live_ = true;
}

void Progress::tick() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, std::chrono::seconds(1));
    if (!stop_) draw();
  }
}

}  // namespace nanguard
