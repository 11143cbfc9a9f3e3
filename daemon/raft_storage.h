// RaftStorage: the Raft core's view (raft::Storage) of flind's durable log
// (store::RaftLog) plus the newest snapshot file's metadata.
//
// The core only reads through it, from the cluster engine's raft thread; the
// engine writes to the RaftLog directly (append, hard state, compaction,
// reset) on that same thread, between calls into the core, so the core never
// sees the log change under it. Not thread-safe.
#pragma once

#include <cstdint>
#include <vector>

#include "raft/storage.h"
#include "raft/types.h"
#include "store/raft_log.h"

namespace flin::daemon {

class RaftStorage : public raft::Storage {
 public:
  explicit RaftStorage(store::RaftLog* log) : log_(log) {}

  // The configuration as of the state machine's applied index (read from
  // state.db at start; see raft/README.md "Restart").
  void set_initial_conf(const raft::ConfState& conf) { initial_conf_ = conf; }
  // The newest snapshot file that can be streamed to a follower.
  void set_snapshot(const raft::SnapshotMeta& meta) { snapshot_ = meta; }
  const raft::SnapshotMeta& snapshot() const { return snapshot_; }
  // True once the core asked for a snapshot that does not exist yet; the
  // engine then creates one and clears the flag.
  bool snapshot_wanted() const { return snapshot_wanted_; }
  void clear_snapshot_wanted() { snapshot_wanted_ = false; }

  Status InitialState(raft::HardState* hs, raft::ConfState* conf) override;
  Status Entries(uint64_t lo, uint64_t hi, uint64_t max_bytes,
                 std::vector<raft::Entry>* out) override;
  Result<uint64_t> Term(uint64_t i) override;
  uint64_t FirstIndex() override { return log_->FirstIndex(); }
  uint64_t LastIndex() override { return log_->LastIndex(); }
  Result<raft::SnapshotMeta> Snapshot() override;

 private:
  store::RaftLog* log_;
  raft::ConfState initial_conf_;
  raft::SnapshotMeta snapshot_;
  bool snapshot_wanted_ = false;
  std::vector<store::LogEntry> scratch_;
};

}  // namespace flin::daemon
