// Node: flind's write path. A write command arrives as an encoded entry
// payload; the node gives it an index, makes it durable in the Raft log
// (group commit: one fdatasync covers every entry pending at that moment),
// applies it to the SQLite state machine, and only then completes the
// proposer's callback with the result (DESIGN.md "Data flow").
//
// This is the single-node engine: the quorum is this node, so an entry is
// committed as soon as it is durable in the local log. The Raft-driven
// engine for clusters keeps the same interface and the same log/apply split.
//
// Threads: the log thread (append + fdatasync) and the apply thread (SQLite)
// run inside the node; callbacks are posted to the io_context given at Open.
// Propose() is thread-safe. Reads: Engine::ReadKeys / ReadCommitted.
#pragma once

#include <asio/io_context.hpp>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/status.h"
#include "daemon/engine.h"
#include "store/command.h"
#include "store/kv_store.h"
#include "store/raft_log.h"

namespace flin::daemon {

struct NodeOptions {
  std::string data_dir;
  int64_t cache_bytes = 256 << 20;
  size_t row_cache_bytes = 128 << 20;
  int64_t apply_commit_ms = 250;
  // Bound of the store's in-memory write buffer (KvStore, FlushPolicy).
  size_t write_buffer_bytes = 256 << 20;
  uint64_t log_compact_bytes = 256ull << 20;
};

class Node : public Engine {
 public:
  // Opens (or creates) the log and state.db under options.data_dir and
  // replays log entries above state.db's applied index.
  static Result<std::unique_ptr<Node>> Open(const NodeOptions& options, asio::io_context& io);
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // Proposes an encoded store::Command. `done` runs on the io_context once
  // the entry is durable and applied (or with an error result if the node
  // is stopping or the log failed).
  void Propose(std::string payload, Done done) override;
  // Every applied write is visible to every reader at once: nothing to wait for.
  void ReadBarrier(StatusDone done) override;
  ClusterInfo Info() override;

  // Stops accepting proposals, finishes those already accepted (durable and
  // applied, callbacks posted), commits state.db. Idempotent.
  void Stop() override;

  NodeStats Stats() override;

 protected:
  void WakeApply() override;

 private:
  struct Proposal {
    std::string payload;
    Done done;
  };
  struct Batch {
    std::vector<store::LogEntry> entries;
    std::vector<Done> dones;
  };

  Node(NodeOptions options, asio::io_context& io);
  Status Recover();
  void LogLoop();
  void ApplyLoop();
  void ApplyBatch(Batch& batch);
  void MaybeCompact(uint64_t committed);
  void Fail(std::vector<Done> dones, const std::string& why);

  NodeOptions options_;
  std::unique_ptr<store::RaftLog> log_;

  std::mutex mu_;
  std::condition_variable log_cv_, apply_cv_;
  std::vector<Proposal> pending_;  // GUARDED_BY(mu_): waiting for the log thread
  std::deque<Batch> to_apply_;     // GUARDED_BY(mu_): durable, waiting for apply
  bool stopping_ = false;          // GUARDED_BY(mu_)
  bool log_done_ = false;          // GUARDED_BY(mu_): log thread has exited
  std::string failed_;             // GUARDED_BY(mu_): set once the log cannot be written
  uint64_t last_index_ = 0;        // log thread only
  uint64_t term_ = 1;

  std::atomic<uint64_t> proposals_{0}, syncs_{0}, compactions_{0};
  std::thread log_thread_, apply_thread_;
};

}  // namespace flin::daemon
