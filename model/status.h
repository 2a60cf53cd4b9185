// Errors as values at the boundaries: a Status carries one user-facing line that
// names the model, node and tensor involved; the CLI prints it once and exits 2.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>

namespace nanguard {

// The first line of an error message: a Status carries one line (LibTorch's and
// libonnx's messages go on with their call stacks).
inline std::string first_line(std::string message) {
  if (auto nl = message.find('\n'); nl != std::string::npos) message.resize(nl);
  return message;
}

class Status {
 public:
  Status() = default;
  static Status Ok() { return Status(); }
  static Status Error(std::string message) { return Status(std::move(message)); }

  bool ok() const { return !message_.has_value(); }
  const std::string& message() const;

 private:
  explicit Status(std::string message) : message_(std::move(message)) {}
  std::optional<std::string> message_;
};

template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : value_(std::move(status)) {}  // NOLINT

  bool ok() const { return std::holds_alternative<T>(value_); }
  const Status& status() const { return std::get<Status>(value_); }
  T& value() & { return std::get<T>(value_); }
  const T& value() const& { return std::get<T>(value_); }
  T&& value() && { return std::get<T>(std::move(value_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() { return value(); }

 private:
  std::variant<T, Status> value_;
};

// Thrown inside op lowerings and the loader's helpers where threading a Result
// through every call would obscure the logic; converted to a Status at the
// boundary (executor, loader) with the node's name attached.
class ModelError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Internal invariant: a failure is a nanguard bug, not a user error.
#define NANGUARD_CHECK(cond)                                                   \
  do {                                                                         \
    if (!(cond)) ::nanguard::check_failed(#cond, __FILE__, __LINE__);          \
  } while (0)
[[noreturn]] void check_failed(const char* cond, const char* file, int line);

}  // namespace nanguard
