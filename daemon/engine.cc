#include "daemon/engine.h"

#include <asio/post.hpp>

namespace flin::daemon {

namespace {
constexpr const char* kNotClustered =
    "ERR this node is not part of a cluster (start flind with --bootstrap, --join or "
    "--initial-cluster)";
}  // namespace

bool FlushPolicy::Step(store::KvStore& st, bool idle) {
  auto now = std::chrono::steady_clock::now();
  bool over = st.buffered_bytes() >= buffer_bytes_;
  if (!idle && !over) return false;
  bool start =
      over || now - last_commit_ >= commit_every_ || st.buffered_bytes() >= buffer_bytes_ / 4;
  bool committed = false;
  do {
    committed |= st.FlushStep(kSliceRows, start);
  } while (st.buffered_bytes() >= buffer_bytes_ && (st.flushing() || st.uncommitted_entries() > 0));
  if (committed) last_commit_ = now;
  return committed;
}

void Engine::Post(std::function<void()> f) { asio::post(io_, std::move(f)); }

NodeStats Engine::StorageStats(const store::RaftLog& log) {
  NodeStats st;
  st.last_index = log.LastIndex();
  st.synced_index = log.SyncedIndex();
  st.log_first_index = log.FirstIndex();
  st.log_disk_bytes = log.DiskBytes();
  std::lock_guard<std::mutex> lock(store_mu_);
  st.applied_index = store_->applied_index();
  st.committed_to_db_index = store_->committed_index();
  st.write_buffer_bytes = store_->buffered_bytes();
  return st;
}

void Engine::AddMember(std::string, uint64_t, IdDone done) {
  Post([done = std::move(done)] { done(Status::InvalidArgument(kNotClustered)); });
}

void Engine::RemoveMember(uint64_t, StatusDone done) {
  Post([done = std::move(done)] { done(Status::InvalidArgument(kNotClustered)); });
}

void Engine::TransferLeader(uint64_t, StatusDone done) {
  Post([done = std::move(done)] { done(Status::InvalidArgument(kNotClustered)); });
}

void Engine::Join(uint64_t, std::string, std::string, std::function<void(Result<JoinReply>)> done) {
  Post([done = std::move(done)] { done(Status::InvalidArgument(kNotClustered)); });
}

}  // namespace flin::daemon
