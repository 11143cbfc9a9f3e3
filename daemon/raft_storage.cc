#include "daemon/raft_storage.h"

namespace flin::daemon {

Status RaftStorage::InitialState(raft::HardState* hs, raft::ConfState* conf) {
  store::LogHardState h = log_->hard_state();
  *hs = raft::HardState{h.term, h.vote, h.commit};
  *conf = initial_conf_;
  return Status::Ok();
}

Status RaftStorage::Entries(uint64_t lo, uint64_t hi, uint64_t max_bytes,
                            std::vector<raft::Entry>* out) {
  scratch_.clear();
  FLIN_RETURN_IF_ERROR(log_->Entries(lo, hi, max_bytes, &scratch_));
  out->reserve(out->size() + scratch_.size());
  for (store::LogEntry& e : scratch_) {
    out->push_back(
        raft::Entry{e.term, e.index, static_cast<raft::EntryType>(e.type), std::move(e.data)});
  }
  scratch_.clear();
  return Status::Ok();
}

Result<uint64_t> RaftStorage::Term(uint64_t i) { return log_->Term(i); }

Result<raft::SnapshotMeta> RaftStorage::Snapshot() {
  // A follower needs entries below FirstIndex(): only a snapshot at or
  // after the compaction point can replace them.
  if (snapshot_.index == 0 || snapshot_.index + 1 < log_->FirstIndex()) {
    snapshot_wanted_ = true;
    return Status::Unavailable("snapshot not ready");
  }
  return snapshot_;
}

}  // namespace flin::daemon
