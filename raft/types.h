// Value types of the Raft core: log entries, hard state, configurations,
// snapshot metadata and the messages peers exchange. Plain values, no
// behaviour beyond small helpers; thread-compatible.
//
// Field names follow the Raft paper (Ongaro & Ousterhout 2014, Figure 2) and
// Ongaro's thesis (2014) where they exist.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace flin::raft {

using NodeId = uint64_t;
// 0 is never a node id: it means "nobody" (no vote, no known leader).
inline constexpr NodeId kNoNode = 0;

enum class EntryType : uint8_t {
  kNormal = 0,      // an opaque command for the state machine
  kConfChange = 1,  // data is an encoded ConfChange (raft/codec.h)
  kNoop = 2,        // appended by every new leader (paper §5.4.2, §8)
};

struct Entry {
  uint64_t term = 0;
  uint64_t index = 0;
  EntryType type = EntryType::kNormal;
  std::string data;

  bool operator==(const Entry&) const = default;
};

// Bytes an entry counts for against byte caps (payload plus a fixed
// allowance for the header), so empty entries still cost something.
inline uint64_t EntryCost(const Entry& e) { return e.data.size() + 16; }

// What must be durable before any message that depends on it is sent
// (paper Figure 2, "Persistent state on all servers"; commit is persisted
// too so a restart need not re-learn it).
struct HardState {
  uint64_t term = 0;
  NodeId vote = kNoNode;
  uint64_t commit = 0;

  bool operator==(const HardState&) const = default;
};

// A cluster configuration: voters decide elections and commitment; learners
// only receive the log (thesis §4.2.1, "catching up new servers").
// Both lists are kept sorted and disjoint.
struct ConfState {
  std::vector<NodeId> voters;
  std::vector<NodeId> learners;

  bool IsVoter(NodeId id) const;
  bool IsLearner(NodeId id) const;
  bool Contains(NodeId id) const { return IsVoter(id) || IsLearner(id); }
  bool operator==(const ConfState&) const = default;
};

// One-server-at-a-time membership change (thesis §4.1).
enum class ConfChangeType : uint8_t {
  kAddVoter = 0,    // add a new voter, or promote a learner
  kAddLearner = 1,  // add a learner, or demote a voter
  kRemoveNode = 2,  // remove a voter or learner (may be the leader itself)
};

struct ConfChange {
  ConfChangeType type = ConfChangeType::kAddVoter;
  NodeId node = kNoNode;
  // Opaque to the core; the driver's own data about the node (flind stores
  // the node's peer address here so every replica learns it with the change).
  std::string context;

  bool operator==(const ConfChange&) const = default;
};

// The configuration that results from applying `cc` to `cs`. Drivers use this
// to track the configuration as of their applied index (which they must store
// atomically with it: it is what Storage::InitialState returns).
ConfState ApplyConfChange(ConfState cs, const ConfChange& cc);

// Identifies a snapshot: the state machine after applying every entry up to
// and including `index`, and the configuration in force at that point.
struct SnapshotMeta {
  uint64_t index = 0;
  uint64_t term = 0;
  ConfState conf;

  bool operator==(const SnapshotMeta&) const = default;
};

enum class MessageType : uint8_t {
  kPreVote = 1,  // thesis §9.6: would you vote for me at term+1?
  kPreVoteResp = 2,
  kVote = 3,  // RequestVote (paper §5.2)
  kVoteResp = 4,
  kAppend = 5,      // AppendEntries (paper §5.3)
  kAppendResp = 6,  // also the reply to a completed snapshot
  kHeartbeat = 7,   // empty AppendEntries that only carries commit
  kHeartbeatResp = 8,
  kSnapshot = 9,     // one chunk of an InstallSnapshot stream (paper §7)
  kTimeoutNow = 10,  // leadership transfer (thesis §3.10)
  kReadIndex = 11,   // follower forwards a linearizable read (thesis §6.4)
  kReadIndexResp = 12,
};
inline constexpr int kMaxMessageType = 12;

const char* MessageTypeName(MessageType type);

// One message between peers. Which fields are meaningful depends on `type`:
//   kPreVote/kVote: term (the term campaigned for), index/log_term (the
//     candidate's last entry), force (leadership transfer: ignore leases).
//   k*VoteResp: term, reject.
//   kAppend: index/log_term (the entry preceding `entries`), entries, commit.
//   kAppendResp: index (highest index known to match, or the rejected
//     index), reject, reject_hint + log_term (where the leader should probe
//     next: the follower's last index with a term <= the rejected log_term).
//   kHeartbeat: commit, read_seq (the leader's heartbeat round).
//   kHeartbeatResp: read_seq echoed.
//   kSnapshot: snapshot (meta), snapshot_offset, snapshot_data,
//     snapshot_last (see raft/README.md, "Snapshot streaming").
//   kTimeoutNow: term.
//   kReadIndex: context. kReadIndexResp: index, context.
struct Message {
  MessageType type = MessageType::kAppend;
  NodeId from = kNoNode;
  NodeId to = kNoNode;
  uint64_t term = 0;
  uint64_t log_term = 0;
  uint64_t index = 0;
  uint64_t commit = 0;
  bool reject = false;
  bool force = false;
  uint64_t reject_hint = 0;
  uint64_t read_seq = 0;
  std::vector<Entry> entries;
  std::string context;
  SnapshotMeta snapshot;
  uint64_t snapshot_offset = 0;
  bool snapshot_last = false;
  std::string snapshot_data;

  bool operator==(const Message&) const = default;
};

// A linearizable read that may proceed once the driver has applied up to
// `index` (thesis §6.4 step 4). `context` is the caller's ReadIndex token.
struct ReadState {
  uint64_t index = 0;
  std::string context;
};

// The leader asks its driver to stream the snapshot `meta` to `to` as
// kSnapshot chunk messages stamped with `term` (see raft/README.md).
struct SnapshotSend {
  NodeId to = kNoNode;
  uint64_t term = 0;
  SnapshotMeta meta;
};

}  // namespace flin::raft
