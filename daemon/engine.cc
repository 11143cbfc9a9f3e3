#include "daemon/engine.h"

#include <asio/post.hpp>

namespace flin::daemon {

namespace {
constexpr const char* kNotClustered =
    "ERR this node is not part of a cluster (start flind with --bootstrap, --join or "
    "--initial-cluster)";
}  // namespace

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
