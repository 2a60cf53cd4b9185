#include "model/status.h"

#include <cstdio>
#include <cstdlib>

namespace nanguard {

const std::string& Status::message() const {
  static const std::string kOk = "ok";
  return message_ ? *message_ : kOk;
}

void check_failed(const char* cond, const char* file, int line) {
  std::fprintf(stderr, "nanguard: internal error: CHECK(%s) failed at %s:%d\n", cond, file, line);
  std::abort();
}

}  // namespace nanguard
