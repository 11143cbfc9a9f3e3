#include "daemon/engine.h"

#include <pthread.h>

#include <asio/post.hpp>

namespace flin::daemon {

namespace {
constexpr const char* kNotClustered =
    "ERR this node is not part of a cluster (start flind with --bootstrap, --join or "
    "--initial-cluster)";
}  // namespace

bool FlushPolicy::Plan(store::KvStore& st, bool idle, bool wanted) {
  bool over = Over(st);
  if (!idle && !over && !wanted) return false;
  if (st.flushing()) return true;
  bool start = over || wanted || std::chrono::steady_clock::now() - last_commit_ >= commit_every_ ||
               st.buffered_bytes() >= buffer_bytes_ / 4;
  return start && st.Freeze();
}

void Engine::Post(std::function<void()> f) { asio::post(io_, std::move(f)); }

Engine::FlushTurnResult Engine::FlushTurn(FlushPolicy& policy, bool idle, bool exit) {
  FlushTurnResult r;
  // Held for the whole turn: a snapshot install (another thread) cannot
  // drop the generation between the phases.
  std::lock_guard<std::mutex> flush_lock(flush_mu_);
  bool work = false;
  {
    std::lock_guard<std::mutex> lock(store_mu_);
    // On exit the write buffer is left to the log (see ~KvStore).
    if (!exit) work = policy.Plan(*store_, idle, commit_wanted());
  }
  bool written = false;
  if (work) {
    store_->SortFrozen();
    do {
      written = store_->WriteSlice(FlushPolicy::kSliceRows);
    } while (!written && policy.Over(*store_));
    if (written) store_->CommitFrozen();
  }
  std::lock_guard<std::mutex> lock(store_mu_);
  if (written) {
    store_->FinishFrozen();
    policy.Committed();
    r.committed = true;
  }
  SettleCommitWaiters(exit);
  r.busy = !exit && policy.Busy(*store_, commit_wanted());
  r.committed_index = store_->committed_index();
  if (r.committed_index != reader_released_at_) {
    // The io thread's read transaction is now stale: have it end it, so it
    // does not keep the checkpointer from copying the new commit into
    // state.db (log compaction waits for that) while no read comes.
    reader_released_at_ = r.committed_index;
    Post([this] {
      if (io_reader_) io_reader_->Release();
    });
  }
  return r;
}

void Engine::CommitAllOutsideLock() {
  std::lock_guard<std::mutex> flush_lock(flush_mu_);
  // At most two rounds: a generation already being written, then the rest.
  // Nothing is applied meanwhile: this is the applying thread.
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(store_mu_);
      if (!store_->flushing() && store_->applied_index() == store_->committed_index()) return;
      store_->Freeze();
    }
    store_->SortFrozen();
    while (!store_->WriteSlice(SIZE_MAX)) {
    }
    store_->CommitFrozen();
    std::lock_guard<std::mutex> lock(store_mu_);
    store_->FinishFrozen();
  }
}

Status Engine::OpenIoReader() {
  if (io_reader_) return Status::Ok();
  auto r = WithStore([](store::KvStore& kv) { return kv.OpenReader(); });
  if (!r.ok()) return r.status();
  io_reader_ = std::move(r).value();
  return Status::Ok();
}

Result<std::vector<std::optional<store::KvStore::Item>>> Engine::ReadKeys(
    const std::vector<std::string_view>& keys, bool want_values, int64_t now_ms,
    size_t max_value_bytes) {
  FLIN_RETURN_IF_ERROR(OpenIoReader());
  store::KvStore::PointRead read;
  read.max_value_bytes = max_value_bytes;
  {
    std::lock_guard<std::mutex> lock(store_mu_);
    FLIN_RETURN_IF_ERROR(store_->PinRead(*io_reader_, keys, now_ms, want_values, &read));
  }
  FLIN_RETURN_IF_ERROR(store_->FinishRead(*io_reader_, keys, now_ms, want_values, &read));
  return std::move(read.items);
}

Result<bool> Engine::HasExpired(int64_t now_ms) {
  FLIN_RETURN_IF_ERROR(OpenIoReader());
  // Committed state: a sweep's deletions show here once a generation
  // commits them, so until then sweeps may be proposed that find nothing
  // more to delete (one at a time, every 100 ms at most).
  return store::KvStore::CommittedHasExpired(*io_reader_, now_ms);
}

Engine::~Engine() {
  {
    std::lock_guard<std::mutex> lock(reader_mu_);
    reader_stop_ = true;
  }
  reader_cv_.notify_all();
  if (reader_.joinable()) reader_.join();
}

void Engine::WhenCommitted(StatusDone done) {
  {
    std::lock_guard<std::mutex> lock(store_mu_);
    if (apply_stopped_) {
      Post([done = std::move(done)] { done(Status::Unavailable("server is shutting down")); });
      return;
    }
    uint64_t index = store_->applied_index();
    if (store_->committed_index() >= index) {
      Post([done = std::move(done)] { done(Status::Ok()); });
      return;
    }
    commit_waiters_.push_back(CommitWaiter{index, std::move(done)});
    commit_wake_.store(true);
  }
  WakeApply();
}

void Engine::SettleCommitWaiters(bool stopping) {
  if (stopping) apply_stopped_ = true;
  if (commit_waiters_.empty()) return;
  std::vector<StatusDone> ready;
  std::vector<CommitWaiter> rest;
  for (auto& w : commit_waiters_) {
    if (w.index <= store_->committed_index()) {
      ready.push_back(std::move(w.done));
    } else if (stopping) {
      Post([done = std::move(w.done)] { done(Status::Unavailable("server is shutting down")); });
    } else {
      rest.push_back(std::move(w));
    }
  }
  commit_waiters_ = std::move(rest);
  if (!ready.empty()) {
    Post([ready = std::move(ready)] {
      for (const auto& done : ready) done(Status::Ok());
    });
  }
}

void Engine::ReadCommitted(SnapshotRead read, StatusDone done) {
  WhenCommitted([this, read = std::move(read), done = std::move(done)](Status st) mutable {
    if (!st.ok()) return done(st);
    std::lock_guard<std::mutex> lock(reader_mu_);
    if (!reader_.joinable()) reader_ = std::thread([this] { ReaderLoop(); });
    reader_jobs_.push_back([this, read = std::move(read), done = std::move(done)]() mutable {
      Status s;
      if (!reader_snap_) {
        auto snap = WithStore([](store::KvStore& kv) { return kv.OpenSnapshot(""); });
        if (snap.ok()) {
          reader_snap_ = std::move(snap).value();
        } else {
          s = snap.status();
        }
      } else {
        s = reader_snap_->Refresh();
      }
      if (s.ok()) {
        s = read(*reader_snap_);
        reader_snap_->Release();
      }
      Post([done = std::move(done), s = std::move(s)] { done(s); });
    });
    reader_cv_.notify_one();
  });
}

void Engine::ReaderLoop() {
  pthread_setname_np(pthread_self(), "flind-reader");
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock<std::mutex> lock(reader_mu_);
      reader_cv_.wait(lock, [&] { return reader_stop_ || !reader_jobs_.empty(); });
      if (reader_jobs_.empty()) return;
      job = std::move(reader_jobs_.front());
      reader_jobs_.pop_front();
    }
    job();
  }
}

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
  st.row_cache = store_->row_cache_stats();
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
