#include "base/check.h"

#include <unistd.h>

#include <cstdlib>

namespace flin::internal {

CheckFailure::CheckFailure(const char* file, int line, const char* expr) {
  os_ << "FATAL " << file << ":" << line << ": check failed: " << expr << " ";
}

CheckFailure::~CheckFailure() {
  os_ << "\n";
  std::string s = os_.str();
  (void)!::write(2, s.data(), s.size());
  std::abort();
}

}  // namespace flin::internal
