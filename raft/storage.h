// The Storage interface through which the Raft core reads the durable log
// (like etcd raft's raft.Storage), and MemoryStorage, an in-memory
// implementation used by unit tests, the simulator and the benchmark. The
// daemon implements Storage over its own on-disk log.
//
// The core only ever reads through Storage; the driver writes to it (after a
// Ready, see raft/README.md). Implementations need not be thread-safe: the
// core calls them from the driver's thread.
#pragma once

#include <cstdint>
#include <deque>
#include <vector>

#include "base/status.h"
#include "raft/types.h"

namespace flin::raft {

class Storage {
 public:
  virtual ~Storage() = default;

  // The persisted hard state, and the configuration as of the driver's
  // applied index (Config::applied). A fresh member of a new cluster returns
  // the bootstrap configuration (see MemoryStorage::Bootstrap).
  virtual Status InitialState(HardState* hs, ConfState* conf) = 0;
  // Appends entries with indexes in [lo, hi) to *out, stopping once their
  // total EntryCost would exceed max_bytes, but always at least one entry
  // when lo < hi. The core only asks for FirstIndex() <= lo, hi <=
  // LastIndex() + 1. Errors are treated as fatal by the core.
  virtual Status Entries(uint64_t lo, uint64_t hi, uint64_t max_bytes, std::vector<Entry>* out) = 0;
  // Term of entry i for FirstIndex() - 1 <= i <= LastIndex() (the term at
  // FirstIndex() - 1 is the snapshot's term).
  virtual Result<uint64_t> Term(uint64_t i) = 0;
  // Index of the first entry still in the log (snapshot index + 1).
  virtual uint64_t FirstIndex() = 0;
  // Index of the last entry (FirstIndex() - 1 when the log is empty).
  virtual uint64_t LastIndex() = 0;
  // Metadata of the most recent snapshot the driver can stream to a peer.
  // Status::Unavailable means "not ready yet, ask again later".
  virtual Result<SnapshotMeta> Snapshot() = 0;
};

// Storage held in memory. Not thread-safe.
class MemoryStorage : public Storage {
 public:
  MemoryStorage();

  Status InitialState(HardState* hs, ConfState* conf) override;
  Status Entries(uint64_t lo, uint64_t hi, uint64_t max_bytes, std::vector<Entry>* out) override;
  Result<uint64_t> Term(uint64_t i) override;
  uint64_t FirstIndex() override;
  uint64_t LastIndex() override;
  Result<SnapshotMeta> Snapshot() override;

  // Makes this the storage of an initial member of a new cluster: a log
  // that starts with an (empty) snapshot at index 1, term 1 holding the
  // initial configuration, committed. The driver starts with applied = 1 and
  // an empty state machine. Every initial member is bootstrapped with the
  // same configuration; a node joining later starts with empty storage and
  // receives a snapshot from the leader. On-disk storages do the same.
  Status Bootstrap(const ConfState& conf);

  void SetHardState(const HardState& hs) { hard_state_ = hs; }
  const HardState& hard_state() const { return hard_state_; }
  // The configuration as of the applied index (see InitialState).
  void SetConfState(const ConfState& conf) { conf_ = conf; }
  // Appends entries (moved from), first truncating any conflicting suffix.
  // entries must be contiguous and start at or below LastIndex() + 1.
  Status Append(std::vector<Entry>* entries);
  // Replaces the whole log with a snapshot (a follower installing one).
  Status ApplySnapshot(const SnapshotMeta& meta);
  // Records a snapshot taken by the driver at `index` (<= LastIndex()),
  // with the configuration in force there.
  Status CreateSnapshot(uint64_t index, const ConfState& conf);
  // Discards entries up to and including `index` (<= the latest snapshot
  // index, so a peer that needs them can get the snapshot instead).
  Status Compact(uint64_t index);

 private:
  // entries_[0] is a dummy holding the index/term of the log's start
  // (snapshot index/term), so Term(FirstIndex() - 1) works.
  std::deque<Entry> entries_;
  HardState hard_state_;
  ConfState conf_;
  SnapshotMeta snapshot_;
};

}  // namespace flin::raft
