// ClusterNode: flind's write path in a cluster. It drives the pure Raft core
// (raft/) the way raft/README.md prescribes: persist, send, apply.
//
// Threads (besides the io thread, which runs sessions and the peer
// transport):
//   raft thread   owns the raft::Raft and the RaftLog writes: feeds it
//                 messages, ticks, proposals and read requests; for every
//                 Ready appends + fdatasyncs (group commit: all proposals
//                 that arrived during the previous fsync share the next;
//                 no fsync when only the commit index moved), sends
//                 messages (AppendEntries before the fsync, everything else
//                 after: thesis §10.2.1), installs snapshots, and hands
//                 committed entries to the apply thread (those already
//                 durable here before the fsync, the rest after it).
//   apply thread  applies committed entries to state.db in batched SQLite
//                 transactions that also store the applied index, the Raft
//                 configuration and the members' addresses; completes the
//                 requests waiting for them; takes snapshots (SQLite backup).
//   stream threads  one per snapshot being sent to a follower.
//
// Requests (writes and membership changes) are served by the leader.
// Anywhere else they are forwarded over the peer transport to the leader,
// which answers after applying; the forwarding node then waits until its
// own state machine has applied that index, so a client of any node reads
// its own writes. With no leader, requests wait up to request_timeout_ms
// and then fail with -TRYAGAIN (the text says whether the write's outcome
// is unknown).
//
// Linearizable reads use ReadIndex (thesis §6.4): all reads that arrive
// while one ReadIndex round is outstanding share the next round.
//
// Data dir layout: cluster.json (cluster id, node id), log/ (RaftLog),
// state.db (KvStore), snap/ (snapshot files <index>-<term>.db and partial
// received ones *.part).
#pragma once

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/status.h"
#include "daemon/engine.h"
#include "daemon/node.h"
#include "daemon/raft_storage.h"
#include "net/peer_transport.h"
#include "raft/raft.h"
#include "store/raft_log.h"

namespace flin::daemon {

struct ClusterOptions {
  NodeOptions node;  // data_dir, cache, apply commit cadence
  // How this data dir enters a cluster on its first start (exactly one, or
  // none when the data dir already holds cluster.json).
  bool bootstrap = false;
  std::string join;             // a member's client address
  std::string initial_cluster;  // "id=peeraddr,..."
  uint64_t node_id = 0;
  std::string peer_listen = "127.0.0.1:7380";
  std::string peer_advertise;  // default: peer_listen
  std::string secret;
  std::string requirepass;  // used to AUTH when joining through a member
  int64_t tick_ms = 100;
  int64_t request_timeout_ms = 5000;
  uint64_t snapshot_entries = 100000;
};

class ClusterNode : public Engine {
 public:
  // True when data_dir already belongs to a cluster (holds cluster.json).
  static bool IsClusterDataDir(const std::string& data_dir);

  // Opens or creates the node (bootstrapping, joining or restarting), starts
  // the peer transport on `io` and the raft and apply threads.
  static Result<std::unique_ptr<ClusterNode>> Open(const ClusterOptions& options,
                                                   asio::io_context& io);
  ~ClusterNode() override;

  void Propose(std::string payload, Done done) override;
  void ReadBarrier(StatusDone done) override;
  bool clustered() const override { return true; }
  bool ShouldSweep() override { return is_leader_.load(std::memory_order_relaxed); }
  ClusterInfo Info() override;
  NodeStats Stats() override;
  void AddMember(std::string peer_addr, uint64_t id, IdDone done) override;
  void RemoveMember(uint64_t id, StatusDone done) override;
  void TransferLeader(uint64_t id, StatusDone done) override;
  void Join(uint64_t id, std::string peer_addr, std::string mac,
            std::function<void(Result<JoinReply>)> done) override;
  void Stop() override;

  uint16_t peer_port() const;

 protected:
  void WakeApply() override;

 private:
  // What a request produced. code: kOk (index/value/result valid), kFailed
  // (result holds the error reply), kRetry (not the leader: the origin
  // forwards it again; never reaches a completion).
  enum class Code : uint8_t { kOk = 0, kFailed = 1, kRetry = 2 };
  struct Outcome {
    Code code = Code::kOk;
    uint64_t index = 0;
    uint64_t value = 0;
    store::ApplyResult result;
  };
  using Completion = std::function<void(Outcome)>;
  enum class What : uint8_t { kWrite = 0, kAdd = 1, kRemove = 2, kTransfer = 3 };
  struct Request {
    What what = What::kWrite;
    std::string payload;  // kWrite: encoded store::Command
    uint64_t id = 0;      // kAdd/kRemove/kTransfer
    std::string addr;     // kAdd
    int64_t deadline_ms = 0;
    Completion done;
  };
  struct Pending {  // proposed by this leader, waiting for commit
    uint64_t term = 0;
    What what = What::kWrite;
    uint64_t value = 0;
    int64_t deadline_ms = 0;
    Completion done;
  };
  struct ReadRound {
    std::vector<StatusDone> dones;
    int64_t deadline_ms = 0;
    uint64_t asked_tick = 0;
    bool asked = false;  // a ReadIndex went out (needs a known leader)
  };
  struct Transfer {
    uint64_t target = 0;
    int64_t deadline_ms = 0;
    Completion done;
  };
  struct ApplyItem {
    raft::Entry entry;
    Completion done;  // may be empty
  };
  struct Chunked {  // a snapshot being received
    std::string path;
    int fd = -1;
    uint64_t expected = 0;
  };

  ClusterNode(ClusterOptions options, asio::io_context& io);
  Status Init();
  Status InitialJoin(uint64_t* node_id, uint64_t* cluster_id, std::string* members);
  Status LoadSnapshots();

  // io thread: the transport handler.
  void OnPeerMessage(uint64_t from, std::string_view payload);
  // any thread: queue work for the raft thread.
  void Submit(Request r);
  Request AdminRequest(What what, uint64_t id, std::function<void(Outcome)> done);
  void Wake();

  // raft thread.
  void RaftLoop();
  void OnTick(uint64_t tick);
  void HandleRequests(std::vector<Request>& reqs);
  void HandleForwarded(uint64_t from, std::string_view body);
  void HandleForwardReply(std::string_view body);
  void ProposeWrites(std::vector<Request>& writes);
  void ProposeAdmin(Request& r);
  void Forward(Request r);
  void HandleReady(raft::Ready& rd);
  void DispatchCommitted(std::vector<raft::Entry>::iterator begin,
                         std::vector<raft::Entry>::iterator end);
  void SendMessage(const raft::Message& m);
  bool AcceptSnapshotChunk(raft::Message& m);
  void InstallSnapshot(const raft::SnapshotMeta& meta);
  void StartSnapshotStream(const raft::SnapshotSend& s);
  void OnSnapshotCreated(const raft::SnapshotMeta& meta);
  void CompactLog(uint64_t durable);
  void ApplyMembersFrom(const std::map<uint64_t, std::string>& members);
  void PublishInfo();
  void FailAll(const std::string& why);
  Outcome Failed(const std::string& text) const;

  // apply thread.
  void ApplyLoop();
  void ApplyItems(std::vector<ApplyItem>& items);
  void MaybeSnapshot(bool force);
  void AfterApplied(uint64_t index, std::function<void()> fn);
  void PostOrBatch(std::function<void()> f);
  void NotifyApplied(uint64_t applied);

  static std::string EncodeOutcome(uint64_t req_id, const Outcome& o);

  ClusterOptions opts_;
  uint64_t node_id_ = 0;
  uint64_t cluster_id_ = 0;
  std::string cluster_hex_;
  std::string snap_dir_;

  std::unique_ptr<store::RaftLog> log_;
  std::unique_ptr<RaftStorage> storage_;
  std::unique_ptr<raft::Raft> raft_;  // raft thread only
  // The peer transport runs on its own io_context and thread, so nothing a
  // client does on the main io thread (a read waiting for the store mutex
  // during a checkpoint, a huge reply) can delay heartbeats.
  asio::io_context peer_io_{1};
  std::thread peer_thread_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> peer_work_;
  std::unique_ptr<net::PeerTransport> transport_;

  // ---- shared with the raft thread, GUARDED_BY(mu_) ----
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<raft::Message> inbox_;
  std::vector<std::pair<uint64_t, std::string>> forwarded_in_;  // (from, body)
  std::vector<std::string> forward_replies_;
  std::vector<Request> requests_;
  std::vector<StatusDone> reads_;
  std::vector<raft::SnapshotMeta> snapshots_created_;
  std::vector<std::pair<uint64_t, uint64_t>> durable_points_;  // (index, term): compact below
  std::vector<std::pair<uint64_t, bool>> snapshot_reports_;
  bool stopping_ = false;
  bool wake_ = false;

  // ---- raft thread only ----
  std::map<uint64_t, Pending> pending_;        // by log index
  std::map<uint64_t, Request> forwarded_out_;  // by request id, sent to the leader
  std::deque<Request> waiting_;                // for a leader to be known
  std::map<uint64_t, ReadRound> read_rounds_;  // by ReadIndex context
  std::vector<Transfer> transfers_;
  std::map<std::string, Chunked> receiving_;  // snapshot streams by (from,index,term)
  std::map<std::pair<uint64_t, uint64_t>, std::string> received_;  // complete files
  std::map<uint64_t, std::string> members_;                        // id -> peer address
  uint64_t next_req_id_ = 1;
  uint64_t next_recv_ = 1;  // names complete received snapshot files
  uint64_t next_read_ctx_ = 1;
  uint64_t ticks_ = 0;
  uint64_t last_leader_ = 0;

  // ---- apply side ----
  std::mutex apply_mu_;
  std::condition_variable apply_cv_;
  std::deque<std::vector<ApplyItem>> to_apply_;  // GUARDED_BY(apply_mu_)
  bool raft_done_ = false;                       // GUARDED_BY(apply_mu_)
  raft::ConfState applied_conf_;                 // GUARDED_BY(store_mu_)
  uint64_t applied_term_ = 0;                    // GUARDED_BY(store_mu_)
  // Index at which each term's applied entries begin, from the last commit
  // of state.db on: the term of committed_index() (a log compaction point)
  // when that is behind the applied index. GUARDED_BY(store_mu_)
  std::map<uint64_t, uint64_t> term_starts_;
  uint64_t TermAt(uint64_t index) const;
  std::map<uint64_t, std::string> applied_members_;  // GUARDED_BY(store_mu_)
  uint64_t last_snapshot_index_ = 0;                 // apply thread only
  raft::SnapshotMeta loaded_snapshot_;               // newest snapshot file found at start
  std::atomic<bool> snapshot_requested_{false};
  // Held while the apply thread makes state.db durable for a compaction
  // (through store_, without store_mu_) and while a snapshot install
  // rewrites state.db's content, so a compaction point is never taken from
  // a half-installed snapshot. Order: checkpoint_mu_ before store_mu_.
  std::mutex checkpoint_mu_;

  std::mutex waiters_mu_;
  std::multimap<uint64_t, std::function<void()>> apply_waiters_;  // GUARDED_BY(waiters_mu_)
  std::atomic<uint64_t> applied_{0};                              // written under waiters_mu_

  // ---- published state for Info()/ShouldSweep() ----
  std::mutex info_mu_;
  ClusterInfo info_;  // GUARDED_BY(info_mu_)
  std::atomic<bool> is_leader_{false};

  std::atomic<uint64_t> proposals_{0}, syncs_{0}, compactions_{0}, snapshots_created_n_{0},
      snapshots_installed_{0};

  std::mutex streams_mu_;
  std::vector<std::thread> streams_;  // GUARDED_BY(streams_mu_)
  std::atomic<bool> streams_stop_{false};

  std::thread raft_thread_, apply_thread_;
  bool stopped_ = false;
};

}  // namespace flin::daemon
