// A linearizability checker for a key-value register history (Wing & Gong's
// search with Lowe's memoization, as in Porcupine). Linearizability is
// local, so each key is checked on its own. Single-threaded.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace flin::sim {

inline constexpr uint64_t kNeverReturned = ~0ull;

struct HistoryOp {
  bool write = false;
  std::string key;
  // write: the value written (unique per write). read: the value returned
  // ("" when the key was absent).
  std::string value;
  uint64_t call = 0;  // logical time of invocation
  // Logical time of the response; kNeverReturned for a write whose outcome
  // is unknown (it may take effect at any point after `call`, or never).
  uint64_t ret = kNeverReturned;
};

struct LinearizabilityResult {
  bool ok = true;
  bool inconclusive = false;  // search budget exhausted
  std::string key;            // first key that is not linearizable
};

// Checks the whole history, key by key; every key starts absent.
LinearizabilityResult CheckLinearizable(const std::vector<HistoryOp>& history,
                                        uint64_t budget = 20'000'000);

}  // namespace flin::sim
