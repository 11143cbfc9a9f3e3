#include "raft/log.h"

#include <algorithm>

#include "base/check.h"

namespace flin::raft {

RaftLog::RaftLog(Storage* storage, uint64_t committed, uint64_t applied)
    : storage_(storage),
      unstable_offset_(storage->LastIndex() + 1),
      committed_(committed),
      applied_(applied) {
  FLIN_CHECK(committed_ <= LastIndex())
      << "commit " << committed_ << " beyond last index " << LastIndex();
  FLIN_CHECK(applied_ + 1 >= FirstIndex() && applied_ <= committed_)
      << "applied " << applied_ << " outside [" << FirstIndex() - 1 << ", " << committed_ << "]";
}

uint64_t RaftLog::FirstIndex() const {
  if (unstable_snapshot_) return unstable_snapshot_->index + 1;
  return storage_->FirstIndex();
}

uint64_t RaftLog::LastIndex() const {
  if (!unstable_.empty()) return unstable_offset_ + unstable_.size() - 1;
  if (unstable_snapshot_) return unstable_snapshot_->index;
  return unstable_offset_ - 1;
}

uint64_t RaftLog::StorageTerm(uint64_t i) const {
  Result<uint64_t> t = storage_->Term(i);
  FLIN_CHECK(t.ok()) << "storage term " << i << ": " << t.status().ToString();
  return t.value();
}

uint64_t RaftLog::Term(uint64_t i) const {
  if (i >= unstable_offset_) {
    uint64_t k = i - unstable_offset_;
    if (k < unstable_.size()) return unstable_[k].term;
    if (unstable_snapshot_ && i == unstable_snapshot_->index) {
      return unstable_snapshot_->term;
    }
    return 0;
  }
  if (unstable_snapshot_) {
    return i == unstable_snapshot_->index ? unstable_snapshot_->term : 0;
  }
  if (i + 1 < storage_->FirstIndex()) return 0;  // compacted
  return StorageTerm(i);
}

bool RaftLog::Slice(uint64_t lo, uint64_t hi, uint64_t max_bytes, std::vector<Entry>* out) const {
  if (lo >= hi) return true;
  if (lo < FirstIndex()) return false;
  FLIN_CHECK(hi <= LastIndex() + 1) << "slice beyond log";
  // Every entry costs at least 16 bytes, which bounds how many fit.
  uint64_t fit = max_bytes / 16 + 1;
  out->reserve(out->size() + std::min<uint64_t>({hi - lo, fit, 8192}));
  uint64_t bytes = 0;
  if (lo < unstable_offset_) {
    uint64_t stop = std::min(hi, unstable_offset_);
    size_t before = out->size();
    Status s = storage_->Entries(lo, stop, max_bytes, out);
    FLIN_CHECK(s.ok()) << "storage entries: " << s.ToString();
    FLIN_CHECK(out->size() > before) << "storage returned no entries";
    for (size_t i = before; i < out->size(); ++i) bytes += EntryCost((*out)[i]);
    if (out->back().index + 1 < stop) return true;  // capped by bytes
    lo = stop;
  }
  for (uint64_t i = lo; i < hi; ++i) {
    const Entry& e = unstable_[i - unstable_offset_];
    bytes += EntryCost(e);
    if (!out->empty() && bytes > max_bytes) break;
    out->push_back(e);
  }
  return true;
}

std::optional<uint64_t> RaftLog::MaybeAppend(uint64_t index, uint64_t log_term,
                                             std::vector<Entry>* entries) {
  if (!MatchTerm(index, log_term)) return std::nullopt;
  uint64_t last_new = index + entries->size();
  // Paper §5.3 step 3: delete only from the first conflicting entry; an
  // entry already present with the same term must be kept, since a stale
  // (reordered) AppendEntries must never truncate what a newer one added.
  size_t first_new = entries->size();
  for (size_t k = 0; k < entries->size(); ++k) {
    const Entry& e = (*entries)[k];
    if (e.index > LastIndex() || Term(e.index) != e.term) {
      first_new = k;
      break;
    }
  }
  if (first_new < entries->size()) {
    uint64_t conflict = (*entries)[first_new].index;
    FLIN_CHECK(conflict > committed_)
        << "entry " << conflict << " conflicts with committed entry (commit " << committed_ << ")";
    TruncateAndAppend(entries, first_new);
  }
  return last_new;
}

void RaftLog::TruncateAndAppend(std::vector<Entry>* entries, size_t from) {
  uint64_t after = (*entries)[from].index;
  if (after == unstable_offset_ + unstable_.size()) {
    // Plain append.
  } else if (after <= unstable_offset_) {
    // Replaces the whole unstable tail (and shadows storage above `after`).
    unstable_offset_ = after;
    unstable_.clear();
  } else {
    unstable_.resize(after - unstable_offset_);
  }
  for (size_t k = from; k < entries->size(); ++k) {
    unstable_.push_back(std::move((*entries)[k]));
  }
}

uint64_t RaftLog::Append(std::vector<Entry>* entries) {
  if (entries->empty()) return LastIndex();
  FLIN_CHECK(entries->front().index == LastIndex() + 1) << "append gap";
  TruncateAndAppend(entries, 0);
  return LastIndex();
}

void RaftLog::AppendOne(Entry e) {
  FLIN_CHECK(e.index == LastIndex() + 1) << "append gap";
  if (unstable_.empty() && !unstable_snapshot_) {
    unstable_offset_ = e.index;
  }
  unstable_.push_back(std::move(e));
}

uint64_t RaftLog::FindConflictByTerm(uint64_t index, uint64_t term) const {
  index = std::min(index, LastIndex());
  while (index > 0) {
    uint64_t t = Term(index);
    if (t == 0 || t <= term) break;  // 0: compacted, stop probing here
    --index;
  }
  return index;
}

void RaftLog::CommitTo(uint64_t index) {
  if (index <= committed_) return;
  FLIN_CHECK(index <= LastIndex()) << "commit " << index << " beyond last index " << LastIndex();
  committed_ = index;
}

void RaftLog::StableTo(uint64_t index, uint64_t term) {
  if (index < unstable_offset_ || Term(index) != term) return;
  uint64_t k = index - unstable_offset_;
  if (k >= unstable_.size()) return;
  if (k + 1 == unstable_.size()) {
    unstable_.clear();  // keeps capacity: no reallocation on the hot path
  } else {
    unstable_.erase(unstable_.begin(), unstable_.begin() + static_cast<ptrdiff_t>(k + 1));
  }
  unstable_offset_ = index + 1;
}

void RaftLog::StableSnapTo(uint64_t index) {
  if (unstable_snapshot_ && unstable_snapshot_->index == index) {
    unstable_snapshot_.reset();
  }
}

uint64_t RaftLog::StableLastIndex() const {
  if (unstable_snapshot_) return 0;
  return unstable_offset_ - 1;
}

void RaftLog::Restore(const SnapshotMeta& meta) {
  unstable_snapshot_ = meta;
  unstable_.clear();
  unstable_offset_ = meta.index + 1;
  committed_ = meta.index;
}

}  // namespace flin::raft
