#include "raft/storage.h"

#include <algorithm>
#include <string>

namespace flin::raft {

MemoryStorage::MemoryStorage() { entries_.resize(1); }

Status MemoryStorage::InitialState(HardState* hs, ConfState* conf) {
  *hs = hard_state_;
  *conf = conf_;
  return Status::Ok();
}

uint64_t MemoryStorage::FirstIndex() { return entries_[0].index + 1; }

uint64_t MemoryStorage::LastIndex() { return entries_[0].index + entries_.size() - 1; }

Status MemoryStorage::Entries(uint64_t lo, uint64_t hi, uint64_t max_bytes,
                              std::vector<Entry>* out) {
  uint64_t offset = entries_[0].index;
  if (lo <= offset) return Status::NotFound("compacted");
  if (hi > LastIndex() + 1) return Status::InvalidArgument("beyond last index");
  uint64_t bytes = 0;
  for (uint64_t i = lo; i < hi; ++i) {
    const Entry& e = entries_[i - offset];
    bytes += EntryCost(e);
    if (i > lo && bytes > max_bytes) break;
    out->push_back(e);
  }
  return Status::Ok();
}

Result<uint64_t> MemoryStorage::Term(uint64_t i) {
  uint64_t offset = entries_[0].index;
  if (i < offset) return Status::NotFound("compacted");
  if (i - offset >= entries_.size()) {
    return Status::InvalidArgument("beyond last index");
  }
  return entries_[i - offset].term;
}

Result<SnapshotMeta> MemoryStorage::Snapshot() { return snapshot_; }

Status MemoryStorage::Append(std::vector<Entry>* entries) {
  if (entries->empty()) return Status::Ok();
  uint64_t first = FirstIndex();
  uint64_t start = entries->front().index;
  if (start > LastIndex() + 1) {
    return Status::InvalidArgument("gap in log: appending " + std::to_string(start) + " after " +
                                   std::to_string(LastIndex()));
  }
  size_t skip = 0;
  if (start < first) {
    // Entries already folded into the snapshot are skipped.
    skip = std::min<size_t>(first - start, entries->size());
    start = first;
  }
  if (skip == entries->size()) return Status::Ok();
  uint64_t offset = entries_[0].index;
  entries_.resize(start - offset);  // truncate any conflicting suffix
  for (size_t i = skip; i < entries->size(); ++i) {
    entries_.push_back(std::move((*entries)[i]));
  }
  return Status::Ok();
}

Status MemoryStorage::ApplySnapshot(const SnapshotMeta& meta) {
  if (meta.index < snapshot_.index) {
    return Status::InvalidArgument("snapshot older than the current one");
  }
  snapshot_ = meta;
  entries_.clear();
  entries_.push_back(Entry{meta.term, meta.index, EntryType::kNormal, {}});
  conf_ = meta.conf;
  return Status::Ok();
}

Status MemoryStorage::Bootstrap(const ConfState& conf) {
  if (LastIndex() != 0 || hard_state_.term != 0) {
    return Status::InvalidArgument("storage is not empty");
  }
  FLIN_RETURN_IF_ERROR(ApplySnapshot(SnapshotMeta{1, 1, conf}));
  hard_state_ = HardState{1, kNoNode, 1};
  return Status::Ok();
}

Status MemoryStorage::CreateSnapshot(uint64_t index, const ConfState& conf) {
  if (index <= snapshot_.index) return Status::Ok();
  if (index > LastIndex()) {
    return Status::InvalidArgument("snapshot beyond last index");
  }
  uint64_t offset = entries_[0].index;
  snapshot_.index = index;
  snapshot_.term = entries_[index - offset].term;
  snapshot_.conf = conf;
  return Status::Ok();
}

Status MemoryStorage::Compact(uint64_t index) {
  uint64_t offset = entries_[0].index;
  if (index <= offset) return Status::Ok();
  if (index > snapshot_.index) {
    return Status::InvalidArgument("compaction beyond the latest snapshot");
  }
  entries_[0] = Entry{entries_[index - offset].term, index, EntryType::kNormal, {}};
  entries_.erase(entries_.begin() + 1,
                 entries_.begin() + static_cast<ptrdiff_t>(index - offset + 1));
  return Status::Ok();
}

}  // namespace flin::raft
