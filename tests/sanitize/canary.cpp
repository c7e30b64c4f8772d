// The sanitizer stage's canary (scripts/sanitize.sh runs it before the tests): one deliberate bug,
// chosen by argv[1], in a process that has first run a kernel on the device, as every kernel test
// does. Each bug must come back as a report, or the stage could pass without checking anything
// (options lost, reports written elsewhere, PoCL's in-process LLVM getting in the way).
//   canary none              no bug: exits 0 and must leave no report (PoCL itself is clean)
//   canary leak              a malloc never freed       -> LeakSanitizer at exit
//   canary heap-overflow     one byte past a new[]      -> AddressSanitizer
//   canary signed-overflow   INT_MAX + 1                -> UndefinedBehaviorSanitizer
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "magellano/ops/elementwise.hpp"
#include "magellano/runtime/context.hpp"
#include "magellano/tensor/tensor.hpp"

int main(int argc, char** argv) {
  const std::string bug = argc == 2 ? argv[1] : "";
  if (bug != "none" && bug != "leak" && bug != "heap-overflow" && bug != "signed-overflow") {
    std::fprintf(stderr, "error: usage: canary none|leak|heap-overflow|signed-overflow\n");
    return 2;
  }
  auto ctx = magellano::Context::create();
  const auto a = magellano::Tensor::from_host(*ctx, {3}, {1, 2, 3});
  const std::vector<float> sum = magellano::ops::add(a, a).to_host();  // PoCL builds and runs a kernel
  std::printf("kernel ran: 3 + 3 = %g\n", sum[2]);

  // volatile keeps each bug from being optimised away.
  if (bug == "leak") {
    void* volatile lost = std::malloc(123);
    lost = nullptr;
  } else if (bug == "heap-overflow") {
    char* volatile p = new char[10];
    p[10] = 1;
    delete[] p;
  } else if (bug == "signed-overflow") {
    volatile int big = INT_MAX;
    volatile int one = 1;
    std::printf("%d\n", big + one);
  }
  return 0;
}
