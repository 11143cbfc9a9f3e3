// RaftLog: the core's view of the replicated log, stitched from the stable
// part (read through Storage) and the unstable tail (entries, and perhaps a
// snapshot, that the driver has not yet persisted). Internal to the core;
// single-threaded.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "raft/storage.h"
#include "raft/types.h"

namespace flin::raft {

class RaftLog {
 public:
  // Reads the stable log bounds from storage; committed and applied come
  // from the hard state and Config::applied.
  RaftLog(Storage* storage, uint64_t committed, uint64_t applied);

  uint64_t FirstIndex() const;
  uint64_t LastIndex() const;
  uint64_t LastTerm() const { return Term(LastIndex()); }
  // Term of entry i, or 0 if i is beyond the log or compacted away (a real
  // term is never 0, so 0 never matches a peer's term).
  uint64_t Term(uint64_t i) const;
  bool MatchTerm(uint64_t i, uint64_t term) const { return Term(i) == term; }
  // Paper §5.4.1: is (last_term, last_index) at least as up-to-date as us?
  bool IsUpToDate(uint64_t last_index, uint64_t last_term) const {
    uint64_t my_term = LastTerm();
    return last_term > my_term || (last_term == my_term && last_index >= LastIndex());
  }

  // Entries in [lo, hi) capped at max_bytes (at least one entry). Returns
  // false if some of them were compacted away (caller sends a snapshot).
  bool Slice(uint64_t lo, uint64_t hi, uint64_t max_bytes, std::vector<Entry>* out) const;

  // Follower side of AppendEntries (paper §5.3): if our entry at `index` has
  // `log_term`, append `entries` (moved from), truncating at the first
  // conflict, and return the index of the last new entry; nullopt if the
  // log does not match.
  std::optional<uint64_t> MaybeAppend(uint64_t index, uint64_t log_term,
                                      std::vector<Entry>* entries);
  // Appends entries at the end of the log (leader side); returns last index.
  uint64_t Append(std::vector<Entry>* entries);
  void AppendOne(Entry e);

  // The largest index <= index whose term is <= term: where a probe should
  // continue after a rejection (the etcd fast back-off).
  uint64_t FindConflictByTerm(uint64_t index, uint64_t term) const;

  uint64_t committed() const { return committed_; }
  void CommitTo(uint64_t index);
  // Highest index handed to the driver for applying.
  uint64_t applied() const { return applied_; }
  void set_applied(uint64_t index) { applied_ = index; }

  // Unstable state handed to the driver in a Ready.
  const std::vector<Entry>& unstable_entries() const { return unstable_; }
  const std::optional<SnapshotMeta>& unstable_snapshot() const { return unstable_snapshot_; }
  // The driver persisted entries up to (index, term) / the snapshot.
  void StableTo(uint64_t index, uint64_t term);
  void StableSnapTo(uint64_t index);
  // Highest index known durable locally.
  uint64_t StableLastIndex() const;

  // Replaces the log with a snapshot (follower installing one).
  void Restore(const SnapshotMeta& meta);

 private:
  uint64_t StorageTerm(uint64_t i) const;
  void TruncateAndAppend(std::vector<Entry>* entries, size_t from);

  Storage* storage_;
  // unstable_[0] has index unstable_offset_; entries at or above the offset
  // shadow whatever storage holds there.
  std::vector<Entry> unstable_;
  uint64_t unstable_offset_;
  std::optional<SnapshotMeta> unstable_snapshot_;
  uint64_t committed_;
  uint64_t applied_;
};

}  // namespace flin::raft
