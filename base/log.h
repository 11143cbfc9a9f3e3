// Minimal leveled logging to stderr (daemons log to stderr, systemd style).
// Thread-safe: each message is written with one write(2).
#pragma once

#include <sstream>
#include <string_view>

#include "base/check.h"

namespace flin::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

void SetLevel(Level level);
Level GetLevel();
// Parses "debug", "info", "warn", "error"; false on anything else.
bool ParseLevel(std::string_view text, Level* out);

class Message {
 public:
  Message(Level level, const char* file, int line);
  ~Message();
  std::ostream& stream() { return os_; }

 private:
  Level level_;
  std::ostringstream os_;
};

}  // namespace flin::log

#define FLIN_LOG(level)                                 \
  (::flin::log::Level::level < ::flin::log::GetLevel()) \
      ? (void)0                                         \
      : ::flin::internal::Voidify() &                   \
            ::flin::log::Message(::flin::log::Level::level, __FILE__, __LINE__).stream()
#define LOG_DEBUG FLIN_LOG(kDebug)
#define LOG_INFO FLIN_LOG(kInfo)
#define LOG_WARN FLIN_LOG(kWarn)
#define LOG_ERROR FLIN_LOG(kError)
