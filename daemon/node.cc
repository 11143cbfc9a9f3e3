#include "daemon/node.h"

#include <pthread.h>

#include <asio/post.hpp>
#include <chrono>
#include <filesystem>

#include "base/check.h"
#include "base/log.h"

namespace flin::daemon {

namespace fs = std::filesystem;

Node::Node(NodeOptions options, asio::io_context& io) : Engine(io), options_(std::move(options)) {}

Result<std::unique_ptr<Node>> Node::Open(const NodeOptions& options, asio::io_context& io) {
  std::unique_ptr<Node> node(new Node(options, io));
  auto log = store::RaftLog::Open(options.data_dir + "/log");
  if (!log.ok()) return log.status();
  node->log_ = std::move(log).value();
  store::KvStoreOptions kv_opts;
  kv_opts.cache_bytes = options.cache_bytes;
  kv_opts.row_cache_bytes = options.row_cache_bytes;
  auto kv = store::KvStore::Open(options.data_dir + "/state.db", kv_opts);
  if (!kv.ok()) return kv.status();
  node->store_ = std::move(kv).value();
  FLIN_RETURN_IF_ERROR(node->Recover());
  node->log_thread_ = std::thread([n = node.get()] { n->LogLoop(); });
  node->apply_thread_ = std::thread([n = node.get()] { n->ApplyLoop(); });
  return node;
}

Node::~Node() { Stop(); }

// Re-applies durable log entries that state.db had not committed when the
// previous process stopped (state.db commits lag the log by design).
Status Node::Recover() {
  uint64_t applied = store_->applied_index();
  uint64_t first = log_->FirstIndex(), last = log_->LastIndex();
  if (applied + 1 < first) {
    return Status::Corruption("data dir " + options_.data_dir + ": state.db is at index " +
                              std::to_string(applied) + " but the log starts at " +
                              std::to_string(first) + ": entries in between are lost");
  }
  if (applied > last) {
    // state.db is ahead of the log (the log was compacted or lost after a
    // checkpoint): restart the log right after what state.db holds.
    LOG_INFO << "log ends at " << last << ", state.db at " << applied << ": log restarts at "
             << applied + 1;
    FLIN_RETURN_IF_ERROR(log_->ResetTo(applied, term_));
    last = applied;
  }
  last_index_ = std::max(last, applied);
  if (last > 0) {
    auto t = log_->Term(last);
    if (t.ok()) term_ = std::max<uint64_t>(*t, 1);
  }
  uint64_t replayed = 0;
  std::vector<store::LogEntry> entries;
  for (uint64_t i = applied + 1; i <= last;) {
    entries.clear();
    FLIN_RETURN_IF_ERROR(log_->Entries(i, last + 1, 16 << 20, &entries));
    FLIN_CHECK(!entries.empty());
    for (const store::LogEntry& e : entries) {
      store::Command cmd;
      Status s = store::DecodeCommand(e.data, &cmd);
      if (!s.ok()) {
        return Status::Corruption("log entry " + std::to_string(e.index) + ": " + s.message());
      }
      store_->Apply(e.index, cmd);
      ++replayed;
    }
    i = entries.back().index + 1;
  }
  // What was replayed sits in the store's write buffer; the apply thread
  // writes it to state.db in the background like any other writes.
  LOG_INFO << "recovered: log [" << first << ", " << last << "], state.db applied index "
           << store_->applied_index() << ", replayed " << replayed << " entries";
  return Status::Ok();
}

void Node::Propose(std::string payload, Done done) {
  proposals_.fetch_add(1, std::memory_order_relaxed);
  std::unique_lock<std::mutex> lock(mu_);
  if (stopping_ || !failed_.empty()) {
    std::string why = stopping_ ? "ERR server is shutting down" : failed_;
    lock.unlock();
    asio::post(io_, [done = std::move(done), why] { done(store::ApplyResult::Error(why)); });
    return;
  }
  bool was_empty = pending_.empty();
  pending_.push_back(Proposal{std::move(payload), std::move(done)});
  lock.unlock();
  if (was_empty) log_cv_.notify_one();
}

void Node::Fail(std::vector<Done> dones, const std::string& why) {
  asio::post(io_, [dones = std::move(dones), why] {
    for (const Done& d : dones) d(store::ApplyResult::Error(why));
  });
}

// Group commit: everything proposed while the previous fdatasync ran goes
// into the next write + fdatasync.
void Node::LogLoop() {
  pthread_setname_np(pthread_self(), "flind-log");
  std::vector<Proposal> taken;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      log_cv_.wait(lock, [&] { return !pending_.empty() || stopping_; });
      if (pending_.empty() && stopping_) break;
      taken.swap(pending_);
    }
    Batch batch;
    batch.entries.reserve(taken.size());
    batch.dones.reserve(taken.size());
    for (Proposal& p : taken) {
      batch.entries.push_back(store::LogEntry{++last_index_, term_, 0, std::move(p.payload)});
      batch.dones.push_back(std::move(p.done));
    }
    taken.clear();
    Status s = log_->Append(batch.entries);
    if (s.ok()) s = log_->Sync();
    syncs_.fetch_add(1, std::memory_order_relaxed);
    if (!s.ok()) {
      // The entries may or may not be on disk; nothing more can be
      // acknowledged safely. Refuse writes until an operator restarts.
      LOG_ERROR << "log write failed, refusing further writes: " << s.ToString();
      std::string why = "ERR write failed: " + s.message();
      {
        std::lock_guard<std::mutex> lock(mu_);
        failed_ = why;
        for (Proposal& p : pending_) batch.dones.push_back(std::move(p.done));
        pending_.clear();
      }
      Fail(std::move(batch.dones), why);
      continue;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      to_apply_.push_back(std::move(batch));
    }
    apply_cv_.notify_one();
  }
  std::lock_guard<std::mutex> lock(mu_);
  log_done_ = true;
  apply_cv_.notify_one();
}

void Node::ApplyBatch(Batch& batch) {
  std::vector<store::ApplyResult> results;
  results.reserve(batch.entries.size());
  {
    std::lock_guard<std::mutex> lock(store_mu_);
    store::Command cmd;
    for (const store::LogEntry& e : batch.entries) {
      Status s = store::DecodeCommand(e.data, &cmd);
      FLIN_CHECK(s.ok()) << "entry " << e.index << " we wrote ourselves: " << s.ToString();
      results.push_back(store_->Apply(e.index, cmd));
    }
  }
  asio::post(io_, [dones = std::move(batch.dones), results = std::move(results)]() mutable {
    for (size_t i = 0; i < dones.size(); ++i) dones[i](std::move(results[i]));
  });
}

void Node::WakeApply() {
  // Through the mutex: the apply loop is either before its predicate check
  // (and sees commit_wake_) or waiting (and gets the notify).
  { std::lock_guard<std::mutex> lock(mu_); }
  apply_cv_.notify_one();
}

void Node::ApplyLoop() {
  pthread_setname_np(pthread_self(), "flind-apply");
  FlushPolicy flush(options_.apply_commit_ms, options_.write_buffer_bytes);
  bool busy = false;  // the store has flushing to do: poll instead of sleeping
  for (;;) {
    Batch batch;
    bool exit = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      apply_cv_.wait_for(lock, busy ? std::chrono::milliseconds(0) : flush.commit_every(),
                         [&] { return !to_apply_.empty() || log_done_ || commit_wake_.load(); });
      commit_wake_.store(false);
      if (!to_apply_.empty()) {
        batch = std::move(to_apply_.front());
        to_apply_.pop_front();
      } else if (log_done_) {
        exit = true;
      }
    }
    // Idle: this turn found nothing to apply. (Not merely "the queue is
    // empty now": between two log syncs it always is, and slices there
    // halved SET throughput in bench/compare. Deferring SQLite work until a
    // pause or the buffer's bound is what absorbs bursts.)
    bool idle = batch.entries.empty();
    if (!idle) ApplyBatch(batch);
    // The log holds everything applied but not yet in state.db, so SQLite
    // work waits for idle moments and runs in big transactions.
    FlushTurnResult turn = FlushTurn(flush, idle, exit);
    busy = turn.busy;
    if (exit) break;
    // Outside the store mutex: readers keep going while WAL frames are
    // copied into state.db.
    if (turn.committed) MaybeCompact(turn.committed_index);
  }
}

// Apply thread, without the store mutex. Copies committed WAL frames into
// state.db; once the log is big and state.db durably holds everything up to
// `committed` (all frames in and synced), log entries at or below it are
// never needed again.
void Node::MaybeCompact(uint64_t committed) {
  // (Routine checkpoints run on the store's own checkpointer thread.)
  if (log_->DiskBytes() < options_.log_compact_bytes) return;
  auto durable = store_->DurableBackgroundCheckpoint();
  if (!durable.ok() || !*durable) {
    LOG_DEBUG << "log compaction postponed: state.db checkpoint incomplete";
    return;
  }
  auto term = log_->Term(committed);
  if (!term.ok()) return;
  Status s = log_->CompactTo(committed, *term);
  if (!s.ok()) {
    LOG_WARN << "log compaction failed: " << s.ToString();
    return;
  }
  compactions_.fetch_add(1, std::memory_order_relaxed);
  LOG_DEBUG << "log compacted to " << committed << ", " << log_->DiskBytes() << " bytes on disk";
}

void Node::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ && !log_thread_.joinable()) return;
    stopping_ = true;
  }
  log_cv_.notify_all();
  if (log_thread_.joinable()) log_thread_.join();
  if (apply_thread_.joinable()) apply_thread_.join();
  // No final commit: the log holds every entry above state.db's committed
  // index and the next start replays them (~KvStore).
}

void Node::ReadBarrier(StatusDone done) {
  Post([done = std::move(done)] { done(Status::Ok()); });
}

ClusterInfo Node::Info() {
  ClusterInfo info;
  NodeStats st = Stats();
  info.commit_index = st.synced_index;
  info.applied_index = st.applied_index;
  info.last_index = st.last_index;
  info.term = term_;
  ClusterMember self;
  self.match = static_cast<int64_t>(st.applied_index);
  self.lag = 0;
  self.self = self.leader = true;
  info.members.push_back(self);
  return info;
}

NodeStats Node::Stats() {
  NodeStats st = StorageStats(*log_);
  st.proposals = proposals_.load();
  st.log_syncs = syncs_.load();
  st.compactions = compactions_.load();
  return st;
}

}  // namespace flin::daemon
