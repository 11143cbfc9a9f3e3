// The Raft consensus core: a pure, single-threaded state machine in the
// style of etcd raft's RawNode and ScyllaDB's raft::fsm. It does no I/O,
// starts no threads and reads no clock: the driver feeds it ticks, messages
// and proposals, and drains its output with HasReady()/GetReady()/Advance().
// raft/README.md gives the order in which the driver must persist, send and
// apply what a Ready holds. Not thread-safe: one driver thread owns a Raft.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "base/status.h"
#include "raft/log.h"
#include "raft/storage.h"
#include "raft/types.h"

namespace flin::raft {

enum class Role { kFollower, kPreCandidate, kCandidate, kLeader };
const char* RoleName(Role role);

enum class ReadOnlyOption {
  // Every read round-trips a heartbeat to a quorum (thesis §6.4).
  kSafe,
  // The leader answers reads at once while it holds a lease: a quorum
  // acknowledged a heartbeat recently enough that, with check-quorum, no
  // other leader can exist (thesis §6.4.1). Assumes bounded clock drift.
  kLeaseBased,
};

struct Config {
  NodeId id = kNoNode;
  Storage* storage = nullptr;  // not owned; must outlive the Raft
  // The last index the driver applied before this start (its state machine
  // reflects exactly entries <= applied). Committed entries after it are
  // handed out again. Storage::InitialState must return the configuration
  // as of this index.
  uint64_t applied = 0;
  // Election timeout, in ticks, drawn uniformly from [min, max) each time
  // (paper §5.2, randomized timeouts).
  int election_tick_min = 10;
  int election_tick_max = 20;
  int heartbeat_tick = 1;
  // Cap on entry bytes (EntryCost) per AppendEntries message.
  uint64_t max_size_per_msg = 1 << 20;
  // In-flight AppendEntries per follower while pipelining.
  size_t max_inflight_msgs = 256;
  // Cap on committed entry bytes handed out in one Ready.
  uint64_t max_committed_size_per_ready = 64 << 20;
  bool pre_vote = true;      // thesis §9.6
  bool check_quorum = true;  // thesis §6.2: leaders step down without quorum
  ReadOnlyOption read_only = ReadOnlyOption::kSafe;
  // Seeds the election-timeout randomization (the core has no other source
  // of randomness). Same seed, same inputs: same outputs.
  uint64_t random_seed = 0;
  // TEST ONLY: deliberately breaks the rule of paper §5.4.2 (Figure 8) by
  // committing entries of earlier terms by counting replicas. Exists so the
  // simulator can prove its checkers catch a real safety bug.
  bool unsafe_commit_previous_term_by_counting = false;

  Status Validate() const;
};

// What the driver must act on; see raft/README.md for the order.
struct Ready {
  std::optional<HardState> hard_state;       // persist (with entries, fsync)
  std::vector<Entry> entries;                // persist (append, truncating)
  std::optional<SnapshotMeta> snapshot;      // install before entries
  std::vector<Message> messages;             // send after persisting
  std::vector<SnapshotSend> snapshot_sends;  // stream after persisting
  std::vector<Entry> committed_entries;      // apply, in order
  std::vector<ReadState> read_states;        // serve once applied >= index
  // Soft state, never persisted.
  Role role = Role::kFollower;
  NodeId leader = kNoNode;
  uint64_t term = 0;
};

// Per-follower replication state on the leader (etcd's tracker.Progress).
enum class ProgressState {
  kProbe,      // one AppendEntries at a time until the match point is found
  kReplicate,  // pipelining up to max_inflight_msgs AppendEntries
  kSnapshot,   // a snapshot is being streamed; nothing else is sent
};

struct Progress {
  NodeId id = kNoNode;
  uint64_t match = 0;
  uint64_t next = 1;
  ProgressState state = ProgressState::kProbe;
  bool probe_sent = false;  // probe: an append is outstanding
  uint64_t pending_snapshot = 0;
  bool recent_active = false;  // heard from since the last quorum check
  bool learner = false;
  uint64_t read_seq_acked = 0;  // highest heartbeat round acknowledged
  uint64_t commit_sent = 0;     // commit index last sent to this peer
  bool send_probe = false;      // send an append even if it carries nothing
  // Ring buffer of the last index of each in-flight append (replicate).
  std::vector<uint64_t> inflight;
  size_t inflight_start = 0;
  size_t inflight_count = 0;
};

class Raft {
 public:
  // Reads the initial state from config.storage. Fails on an invalid config.
  static Result<std::unique_ptr<Raft>> Create(const Config& config);

  Raft(const Raft&) = delete;
  Raft& operator=(const Raft&) = delete;

  // Advances logical time by one tick.
  void Tick();
  // Feeds a message from a peer. Messages for another node, or malformed
  // for their type, are rejected with InvalidArgument.
  Status Step(Message m);
  // Appends a command (leader only). Returns its log index; the entry is
  // committed once it appears in Ready::committed_entries with that index
  // and the term it was proposed in (term()). Unavailable when not leader
  // or during a leadership transfer.
  Result<uint64_t> Propose(std::string data);
  // Appends several commands (moved from) as consecutive entries; returns
  // the index of the first.
  Result<uint64_t> ProposeBatch(std::span<std::string> data);
  // Proposes a one-server membership change (thesis §4.1). Refused while an
  // earlier change is uncommitted/unapplied, before the leader committed an
  // entry of its term (thesis §4.1 erratum), when promoting a learner that
  // has not caught up (thesis §4.2.1), or when it would leave no voter.
  Result<uint64_t> ProposeConfChange(const ConfChange& cc);
  // Requests a linearizable read; a ReadState with this context appears in
  // a later Ready (thesis §6.4). On a follower the request is forwarded to
  // the leader; with no known leader it is dropped and the caller retries.
  void ReadIndex(std::string context);
  // Hands leadership to `target` (thesis §3.10).
  Status TransferLeader(NodeId target);
  // Starts an election now (tests, or a driver bootstrapping a one-node
  // cluster quickly).
  void Campaign();
  // The driver finished (ok) or gave up on (!ok) streaming a snapshot.
  void ReportSnapshot(NodeId peer, bool ok);
  // The driver could not deliver a message to peer: stop pipelining to it.
  void ReportUnreachable(NodeId peer);

  // Whether GetReady would return anything. False while a Ready is out.
  bool HasReady();
  // Hands out everything pending. The driver must call Advance() after
  // acting on it before the next GetReady(); Step/Tick/Propose may be called
  // in between (an asynchronous driver persisting in the background).
  Ready GetReady();
  void Advance();

  NodeId id() const { return id_; }
  uint64_t term() const { return term_; }
  Role role() const { return role_; }
  NodeId leader() const { return lead_; }
  NodeId vote() const { return vote_; }
  uint64_t commit_index() const { return log_.committed(); }
  uint64_t applied_index() const { return log_.applied(); }
  uint64_t last_index() const { return log_.LastIndex(); }
  uint64_t first_index() const { return log_.FirstIndex(); }
  // Term of entry i, 0 if unknown (compacted or beyond the log).
  uint64_t TermAt(uint64_t i) const { return log_.Term(i); }
  // Entries [lo, hi) as the core sees them (stable + unstable); false if
  // compacted. For checkers and tests.
  bool EntriesForTest(uint64_t lo, uint64_t hi, std::vector<Entry>* out) const;
  // The configuration in force (as of the last entry handed out to apply).
  const ConfState& conf() const { return conf_; }
  HardState hard_state() const { return {term_, vote_, log_.committed()}; }
  // Leader only: replication state of a peer, nullptr otherwise.
  const Progress* progress(NodeId peer) const;
  NodeId lead_transferee() const;

 private:
  Raft(const Config& config, const HardState& hs, const ConfState& conf);

  struct CandidateState {
    std::vector<std::pair<NodeId, bool>> votes;
  };
  struct PendingRead {
    uint64_t seq = 0;    // heartbeat round that must be acknowledged
    uint64_t index = 0;  // commit index when the read arrived
    NodeId from = kNoNode;
    std::string context;
  };
  struct LeaderState {
    std::vector<Progress> progress;
    NodeId transferee = kNoNode;
    int transfer_elapsed = 0;
    // Heartbeat rounds: each broadcast gets a sequence number; a read is
    // confirmed once a quorum acknowledged a round sent after it arrived.
    uint64_t read_seq = 0;
    std::deque<std::pair<uint64_t, uint64_t>> round_ticks;  // (seq, tick)
    std::deque<PendingRead> reads;
    std::vector<PendingRead> reads_before_commit;
    bool lease_revoked = false;  // a TimeoutNow went out this term
    uint64_t lease_until_tick = 0;
    uint64_t pending_conf_index = 0;
    bool committed_in_term = false;
  };

  bool Promotable() const { return conf_.IsVoter(id_); }
  size_t Quorum() const { return conf_.voters.size() / 2 + 1; }
  void ResetRandomizedTimeout();
  bool InLease() const;

  void Reset(uint64_t term);
  void BecomeFollower(uint64_t term, NodeId lead);
  void BecomePreCandidate();
  void BecomeCandidate();
  void BecomeLeader();
  void StartCampaign(bool pre, bool transfer);
  void Send(Message m);
  // Counts a vote; returns granted - rejected style outcome.
  enum class VoteResult { kPending, kWon, kLost };
  VoteResult RecordVote(NodeId from, bool granted);

  void StepFollower(Message& m);
  void StepCandidate(Message& m);
  void StepLeader(Message& m);
  void HandleVoteRequest(const Message& m);
  void HandleAppend(Message& m);
  void HandleHeartbeat(const Message& m);
  void HandleSnapshot(const Message& m);
  void HandleAppendResp(const Message& m);
  void HandleHeartbeatResp(const Message& m);
  void HandleLeaderReadIndex(NodeId from, std::string context);
  void DeliverRead(PendingRead& read);
  bool LeaseValid() const;
  uint64_t QuorumReadSeq() const;
  bool HasUnappliedConfChanges() const;
  Message NewMsg(MessageType type, NodeId to) const;
  static bool IsPaused(const Progress& pr);
  static bool MaybeUpdate(Progress& pr, uint64_t n);
  static bool MaybeDecrTo(Progress& pr, uint64_t rejected, uint64_t hint);
  void BecomeProbe(Progress& pr);
  void BecomeReplicate(Progress& pr);
  void BecomeSnapshotState(Progress& pr, uint64_t index);
  void ResetInflight(Progress& pr);
  static void FreeInflightLE(Progress& pr, uint64_t index);
  void AddInflight(Progress& pr, uint64_t index);

  // Leader replication.
  Progress* Find(NodeId id);
  bool MaybeSendAppend(Progress& pr, bool send_if_empty);
  void SendSnapshot(Progress& pr);
  void FlushAppends();
  void BroadcastHeartbeat();
  bool MaybeCommit();
  void OnCommittedInTerm();
  void ResolveReads();
  void StartReadRound();
  void SendTimeoutNow(NodeId to);
  void AbortTransfer();
  void AppendLeaderEntries(std::vector<Entry>* entries);
  void ApplyConf(const ConfChange& cc);
  void SyncProgressWithConf();

  LeaderState& leader_state() { return std::get<LeaderState>(state_); }

  const NodeId id_;
  Config config_;
  RaftLog log_;
  uint64_t term_ = 0;
  NodeId vote_ = kNoNode;
  NodeId lead_ = kNoNode;
  Role role_ = Role::kFollower;
  ConfState conf_;
  std::variant<std::monostate, CandidateState, LeaderState> state_;

  int election_elapsed_ = 0;
  int heartbeat_elapsed_ = 0;
  int randomized_timeout_ = 0;
  uint64_t ticks_ = 0;  // ticks since this Raft was created
  uint64_t rng_;

  std::vector<Message> msgs_;
  std::vector<SnapshotSend> snapshot_sends_;
  std::vector<ReadState> read_states_;
  bool need_flush_ = false;

  // What the outstanding Ready handed out, for Advance().
  bool ready_out_ = false;
  HardState prev_hs_;
  uint64_t ready_last_index_ = 0;
  uint64_t ready_last_term_ = 0;
  std::optional<uint64_t> ready_snapshot_index_;
};

}  // namespace flin::raft
