// The fuzz targets run small ops one input at a time: thread hand-offs cost more than
// they save. at::set_num_threads does not reach the BLAS's own pool (Debian's LibTorch
// calls the system BLAS, OpenBLAS where installed), whose threads spin and yield
// around every small sgemm: a fifth of fuzz_model's time on a 100 x 784 MatMul.
#pragma once

#include <dlfcn.h>

#include <ATen/Parallel.h>

namespace nanguard::fuzz {

inline void run_on_one_thread() {
  at::set_num_threads(1);
  using SetThreads = void (*)(int);
  if (auto set = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) set(1);
}

}  // namespace nanguard::fuzz
