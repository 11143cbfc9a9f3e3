// Wall-clock and monotonic time, behind an interface so tests and the
// simulator can substitute virtual time. The raft core never uses this.
#pragma once

#include <cstdint>

namespace flin {

// Milliseconds since the Unix epoch (wall clock; used for TTL deadlines).
int64_t WallMillis();
// Monotonic milliseconds / microseconds (for timeouts and rates).
int64_t MonoMillis();
int64_t MonoMicros();

}  // namespace flin
