// Client histories for linearizability checks against real flind clusters.
//
// History records what clients did and saw: each operation gets an
// invocation and a completion time from one shared monotonic counter (taken
// just before the request is written and just after its reply is read, so
// real-time order between clients is kept), and is turned into per-key
// register operations for the checker in tests/sim/linearizability.h:
//   - MSET of k keys = k register writes sharing the same call/ret times;
//   - a write that was acknowledged (+OK) completes at its ret time;
//   - a write whose outcome is unknown (an error such as -TRYAGAIN, a lost
//     connection, a timeout) is recorded with ret = kNeverReturned: it may
//     take effect at any point after its call, or never;
//   - a write refused by validation (a definite -ERR such as "wrong number
//     of arguments", before anything was proposed) is not a write at all;
//   - a read (GET/MGET) is recorded only when it returned values ("" for a
//     missing key); a failed read constrains nothing.
// Written values must be unique per key and non-empty (NewValue() makes
// such values): the checker identifies writes by value.
//
// Thread-safety: History is thread-safe. A RecordingClient belongs to one
// thread; any number of them may share one History.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "net/client.h"
#include "tests/sim/linearizability.h"

namespace flin::test {

enum class Outcome {
  kOk,       // acknowledged (writes) or answered (reads)
  kFailed,   // definitely not applied (writes) / no answer (reads)
  kUnknown,  // a write that may or may not have been applied
};
const char* OutcomeName(Outcome o);

// True for server errors that mean "refused before anything was proposed"
// (argument validation, unknown command, auth): a definite non-write. Any
// other error of a write (-TRYAGAIN, forwarding failures, ...) leaves its
// outcome unknown.
bool IsDefiniteRejection(std::string_view error);

class History {
 public:
  // The next logical time (strictly increasing across all threads).
  uint64_t Now() { return clock_.fetch_add(1) + 1; }
  // A value never returned before by this History: "<prefix>#<n>".
  std::string NewValue(std::string_view prefix = "v");

  // ret == sim::kNeverReturned for an unknown outcome.
  void AddWrites(const std::vector<std::pair<std::string, std::string>>& kv, uint64_t call,
                 uint64_t ret);
  // value "" = the key was absent.
  void AddReads(const std::vector<std::pair<std::string, std::string>>& kv, uint64_t call,
                uint64_t ret);

  std::vector<sim::HistoryOp> ops() const;
  size_t size() const;
  // Checks the whole history (see tests/sim/linearizability.h).
  sim::LinearizabilityResult Check(uint64_t budget = 20'000'000) const;
  // The operations on one key in call order, one per line, for failure messages.
  std::string Dump(std::string_view key, size_t max_lines = 200) const;

 private:
  std::atomic<uint64_t> clock_{0};
  std::atomic<uint64_t> values_{0};
  mutable std::mutex mu_;
  std::vector<sim::HistoryOp> ops_;  // guarded by mu_
};

// A client that runs SET/MSET/GET/MGET and records them into a History.
// It connects lazily through `connect` and reconnects (on the next call)
// after any failure that left the connection unusable; `connect` may return
// nullptr (node down), which fails the call without sending anything.
class RecordingClient {
 public:
  using Connector = std::function<std::unique_ptr<client::Connection>()>;
  RecordingClient(History* history, Connector connect);

  Outcome Set(const std::string& key, const std::string& value);
  // MSET k1 v1 k2 v2 ... (an atomic batch).
  Outcome MSet(const std::vector<std::pair<std::string, std::string>>& kv);
  // *value: nullopt when absent. Only meaningful when kOk.
  Outcome Get(const std::string& key, std::optional<std::string>* value = nullptr);
  Outcome MGet(const std::vector<std::string>& keys,
               std::vector<std::optional<std::string>>* values = nullptr);
  // Runs any command outside the history (e.g. CONSISTENCY stale on this
  // connection); connects first if needed.
  Result<client::Reply> Raw(const std::vector<std::string_view>& args);
  // Drops the connection; the next call connects again.
  void Disconnect() { conn_.reset(); }

  // The error text of the last call that was not kOk.
  const std::string& last_error() const { return last_error_; }

 private:
  client::Connection* Conn();
  Outcome Write(const std::vector<std::string_view>& args,
                const std::vector<std::pair<std::string, std::string>>& kv);
  Outcome Read(const std::vector<std::string_view>& args, const std::vector<std::string>& keys,
               std::vector<std::optional<std::string>>* values);

  History* history_;
  Connector connect_;
  std::unique_ptr<client::Connection> conn_;
  std::string last_error_;
};

}  // namespace flin::test
