// FLIN_CHECK: invariant assertions that stay on in release builds. A broken
// invariant is a bug; crashing loudly beats corrupting data.
#pragma once

#include <sstream>

namespace flin::internal {

class CheckFailure {
 public:
  CheckFailure(const char* file, int line, const char* expr);
  [[noreturn]] ~CheckFailure();
  std::ostream& stream() { return os_; }

 private:
  std::ostringstream os_;
};

// Lets `FLIN_CHECK(x) << "..."` compile to a void expression.
struct Voidify {
  void operator&(std::ostream&) {}
};

}  // namespace flin::internal

#define FLIN_CHECK(cond)                 \
  (cond) ? (void)0                       \
         : ::flin::internal::Voidify() & \
               ::flin::internal::CheckFailure(__FILE__, __LINE__, #cond).stream()
