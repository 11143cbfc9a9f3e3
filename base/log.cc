#include "base/log.h"

#include <unistd.h>

#include <atomic>
#include <cstring>
#include <ctime>

#include "base/strings.h"

namespace flin::log {
namespace {
std::atomic<int> g_level{static_cast<int>(Level::kInfo)};
const char* LevelName(Level l) {
  switch (l) {
    case Level::kDebug: return "DEBUG";
    case Level::kInfo: return "INFO";
    case Level::kWarn: return "WARN";
    case Level::kError: return "ERROR";
  }
  return "?";
}
}  // namespace

void SetLevel(Level level) { g_level.store(static_cast<int>(level)); }
Level GetLevel() { return static_cast<Level>(g_level.load(std::memory_order_relaxed)); }

bool ParseLevel(std::string_view text, Level* out) {
  std::string t = ToLower(text);
  if (t == "debug") *out = Level::kDebug;
  else if (t == "info") *out = Level::kInfo;
  else if (t == "warn" || t == "warning") *out = Level::kWarn;
  else if (t == "error") *out = Level::kError;
  else return false;
  return true;
}

Message::Message(Level level, const char* file, int line) : level_(level) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char buf[64];
  size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf + n, sizeof buf - n, ".%03ldZ", ts.tv_nsec / 1000000);
  const char* base = std::strrchr(file, '/');
  os_ << buf << " " << LevelName(level_) << " " << (base ? base + 1 : file) << ":" << line << " ";
}

Message::~Message() {
  os_ << "\n";
  std::string s = os_.str();
  (void)!::write(2, s.data(), s.size());
}

}  // namespace flin::log
