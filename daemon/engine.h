// Engine: what the server needs from the write path, whichever runs it.
//
// Two implementations: Node (standalone: the quorum is this process, an
// entry commits once it is durable in the local log) and ClusterNode (the
// entry commits once a Raft quorum holds it durably; followers forward).
// Sessions and command handlers only see this interface, so every command
// behaves the same in both modes except the cluster administration ones.
//
// Callbacks (Done, StatusDone, ...) always run on the io_context the engine
// was opened with (flind's io thread), never inline inside the call.
// Point reads go through ReadKeys (the store mutex only for the write-buffer
// lookup), range reads through ReadCommitted (committed state.db, on the
// reader thread).
#pragma once

#include <asio/io_context.hpp>
#include <atomic>
#include <chrono>
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
#include "store/command.h"
#include "store/kv_store.h"
#include "store/raft_log.h"

namespace flin::daemon {

// When the apply thread writes the store's write buffer to SQLite
// (Engine::FlushTurn). Acknowledgements come first: a slice is written only
// on a turn that applied nothing, when a range read waits for a commit, or
// while the buffer is over its bound (then applies wait: the bound holds). A
// new generation starts every commit interval, or early once the buffer
// holds a quarter of its bound, or at once for a waiting range read.
class FlushPolicy {
 public:
  FlushPolicy(int64_t commit_ms, size_t buffer_bytes)
      : commit_every_(commit_ms), buffer_bytes_(buffer_bytes) {}
  // Under the store mutex: whether this turn writes; freezes a generation
  // when one should start. `idle`: the turn applied nothing; `wanted`: a
  // range read waits for everything applied to be committed.
  bool Plan(store::KvStore& st, bool idle, bool wanted);
  // Whether to write another slice in this turn (the buffer is over its
  // bound). Apply thread; reads only what that thread changes.
  bool Over(const store::KvStore& st) const { return st.buffered_bytes() >= buffer_bytes_; }
  void Committed() { last_commit_ = std::chrono::steady_clock::now(); }
  // Whether the store has flushing to do right away (the apply loop then
  // polls for batches instead of sleeping).
  bool Busy(const store::KvStore& st, bool wanted) const {
    return wanted || st.flushing() || Over(st);
  }
  std::chrono::milliseconds commit_every() const { return commit_every_; }

  // Rows per slice: about a millisecond of SQLite work, so a batch that
  // arrives meanwhile waits at most that long.
  static constexpr size_t kSliceRows = 256;

 private:
  std::chrono::milliseconds commit_every_;
  size_t buffer_bytes_;
  std::chrono::steady_clock::time_point last_commit_ = std::chrono::steady_clock::now();
};

struct NodeStats {
  uint64_t proposals = 0;
  uint64_t log_syncs = 0;
  uint64_t last_index = 0;
  uint64_t synced_index = 0;
  uint64_t applied_index = 0;
  uint64_t committed_to_db_index = 0;
  uint64_t write_buffer_bytes = 0;
  store::RowCache::Stats row_cache;
  uint64_t log_first_index = 0;
  uint64_t log_disk_bytes = 0;
  uint64_t compactions = 0;
  uint64_t snapshots_created = 0;
  uint64_t snapshots_installed = 0;
};

struct ClusterMember {
  uint64_t id = 0;
  std::string peer_addr;
  bool voter = true;
  int64_t match = -1;  // -1: unknown (only the leader tracks followers)
  int64_t lag = -1;
  bool self = false;
  bool leader = false;
};

struct ClusterInfo {
  bool clustered = false;
  std::string cluster_id;  // 16 hex digits
  uint64_t node_id = 0;
  std::string role = "standalone";  // leader follower candidate precandidate learner
  uint64_t leader_id = 0;
  uint64_t term = 0;
  uint64_t commit_index = 0;
  uint64_t applied_index = 0;
  uint64_t last_index = 0;
  std::vector<ClusterMember> members;
};

class Engine {
 public:
  using Done = std::function<void(store::ApplyResult)>;
  using StatusDone = std::function<void(Status)>;
  using IdDone = std::function<void(Result<uint64_t>)>;

  explicit Engine(asio::io_context& io) : io_(io) {}
  virtual ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Proposes an encoded store::Command; `done` gets the result once the
  // entry is committed and applied here (or an error: the text says whether
  // the write's outcome is unknown).
  virtual void Propose(std::string payload, Done done) = 0;
  // Linearizable read barrier: `done(Ok)` once this node's store reflects
  // every write acknowledged before the call (Raft ReadIndex); an
  // Unavailable status when no leader answered in time.
  virtual void ReadBarrier(StatusDone done) = 0;
  virtual bool clustered() const { return false; }
  // Whether this node should originate background writes (expiry sweeps):
  // true for standalone and for the Raft leader.
  virtual bool ShouldSweep() { return true; }
  virtual ClusterInfo Info() = 0;
  virtual NodeStats Stats() = 0;

  // Cluster administration (ClusterNode only; errors otherwise).
  virtual void AddMember(std::string peer_addr, uint64_t id, IdDone done);
  virtual void RemoveMember(uint64_t id, StatusDone done);
  virtual void TransferLeader(uint64_t id, StatusDone done);
  // The joining node's side: checks the HMAC made with the cluster secret,
  // then adds it as a learner. Result: the id, the cluster id and the
  // current members ("id=addr,...").
  struct JoinReply {
    uint64_t id = 0;
    std::string cluster_id;
    std::string members;
  };
  virtual void Join(uint64_t id, std::string peer_addr, std::string mac,
                    std::function<void(Result<JoinReply>)> done);

  // Stops accepting proposals, finishes those already accepted, commits
  // state.db. Idempotent.
  virtual void Stop() = 0;

  // Runs f(store) under the store mutex. Not for reads of rows (the main
  // SQLite connection belongs to the apply thread): use ReadKeys or
  // ReadCommitted.
  template <typename F>
  auto WithStore(F&& f) {
    std::lock_guard<std::mutex> lock(store_mu_);
    return f(*store_);
  }

  // Point reads (GET, MGET, EXISTS, TTL, ...; io thread only): each key's
  // live value (when want_values) and expiry, or nullopt, as one state
  // across keys. The store mutex is held only to look in the write buffer;
  // SQLite lookups run on the io thread's own connection
  // (KvStore::PinRead/FinishRead).
  // Values beyond max_value_bytes in all end the read with a kLimit status.
  Result<std::vector<std::optional<store::KvStore::Item>>> ReadKeys(
      const std::vector<std::string_view>& keys, bool want_values, int64_t now_ms,
      size_t max_value_bytes = SIZE_MAX);
  // Whether some key has expired and awaits a sweep (io thread only).
  Result<bool> HasExpired(int64_t now_ms);

  // Range reads (DBSIZE, SCAN, KEYS, INFO keyspace, export) read committed
  // state.db through a connection of their own (KvStore::Snapshot) instead
  // of writing the whole write buffer out under the store mutex, which
  // stalled every client for seconds after a large burst.
  //
  // WhenCommitted: done(Ok) on the io thread once state.db's committed index
  // covers every entry applied at the call (the apply thread starts a
  // generation for it and writes it out a slice per turn, so writes and
  // reads keep flowing meanwhile); done(error) if the node stops first.
  void WhenCommitted(StatusDone done);
  // WhenCommitted, then `read` on the reader thread against a snapshot at
  // least that new, then done(read's status) on the io thread. Neither the
  // io thread nor the apply thread waits for the read itself.
  using SnapshotRead = std::function<Status(store::KvStore::Snapshot&)>;
  void ReadCommitted(SnapshotRead read, StatusDone done);

 protected:
  // Apply thread, under the store mutex. Whether a WhenCommitted caller
  // waits (FlushPolicy::Step's `wanted`).
  bool commit_wanted() const { return !commit_waiters_.empty(); }
  // Apply thread, under the store mutex, after each flush turn: hands
  // the callers whose point state.db now covers to the io thread; with
  // `stopping`, fails the rest (and later calls fail at once).
  void SettleCommitWaiters(bool stopping);
  // Set (with the store mutex held) when a caller starts waiting; the apply
  // loop's wait ends on it.
  std::atomic<bool> commit_wake_{false};
  // Wakes the apply loop (after commit_wake_ was set).
  virtual void WakeApply() = 0;
  // One turn of background flushing (apply thread; see FlushPolicy). The
  // SQLite work (sort, slices, commit) runs WITHOUT the store mutex, so
  // neither readers nor the io thread wait for it; only freezing and
  // finishing a generation take it. On `exit`, fails waiting range reads
  // instead. Also settles WhenCommitted callers.
  struct FlushTurnResult {
    bool committed = false;
    bool busy = false;  // more flushing to do: poll instead of sleeping
    uint64_t committed_index = 0;
  };
  FlushTurnResult FlushTurn(FlushPolicy& policy, bool idle, bool exit);
  // Apply thread: writes everything applied so far to state.db and commits
  // (what KvStore::Commit does), with the SQLite work outside the store
  // mutex. For a snapshot file, which must hold every applied entry.
  void CommitAllOutsideLock();
  // Held by the apply thread while it works on SQLite without the store
  // mutex. Another thread that must use the store's main connection or
  // change its write buffer (a snapshot install) takes it before store_mu_.
  std::mutex flush_mu_;
  // Runs f on the io thread.
  void Post(std::function<void()> f);
  // The log's and the store's part of Stats() (takes the store mutex).
  NodeStats StorageStats(const store::RaftLog& log);

  asio::io_context& io_;
  std::mutex store_mu_;
  std::unique_ptr<store::KvStore> store_;  // GUARDED_BY(store_mu_)

 private:
  void ReaderLoop();
  struct CommitWaiter {
    uint64_t index;
    StatusDone done;
  };
  std::vector<CommitWaiter> commit_waiters_;  // GUARDED_BY(store_mu_)
  bool apply_stopped_ = false;                // GUARDED_BY(store_mu_)

  Status OpenIoReader();
  std::unique_ptr<store::KvStore::Reader> io_reader_;  // io thread only
  uint64_t reader_released_at_ = 0;                    // apply thread only

  // The reader thread (started by the first ReadCommitted) and its view.
  std::mutex reader_mu_;
  std::condition_variable reader_cv_;
  std::deque<std::function<void()>> reader_jobs_;  // GUARDED_BY(reader_mu_)
  bool reader_stop_ = false;                       // GUARDED_BY(reader_mu_)
  std::thread reader_;
  std::unique_ptr<store::KvStore::Snapshot> reader_snap_;  // reader thread only
};

}  // namespace flin::daemon
