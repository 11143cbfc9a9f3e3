#include "raft/raft.h"

#include <algorithm>
#include <limits>

#include "base/check.h"
#include "raft/codec.h"

namespace flin::raft {
namespace {

uint64_t SplitMix64(uint64_t* state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

constexpr uint64_t kNoLimit = std::numeric_limits<uint64_t>::max();

}  // namespace

const char* RoleName(Role role) {
  switch (role) {
    case Role::kFollower:
      return "follower";
    case Role::kPreCandidate:
      return "pre-candidate";
    case Role::kCandidate:
      return "candidate";
    case Role::kLeader:
      return "leader";
  }
  return "unknown";
}

Status Config::Validate() const {
  if (id == kNoNode) return Status::InvalidArgument("raft: node id must be > 0");
  if (storage == nullptr) return Status::InvalidArgument("raft: no storage");
  if (heartbeat_tick <= 0) {
    return Status::InvalidArgument("raft: heartbeat_tick must be > 0");
  }
  if (election_tick_min <= heartbeat_tick) {
    return Status::InvalidArgument("raft: election_tick_min must exceed heartbeat_tick");
  }
  if (election_tick_max <= election_tick_min) {
    return Status::InvalidArgument("raft: election_tick_max must exceed election_tick_min");
  }
  if (max_inflight_msgs == 0) {
    return Status::InvalidArgument("raft: max_inflight_msgs must be > 0");
  }
  if (read_only == ReadOnlyOption::kLeaseBased && !check_quorum) {
    // Thesis §6.4.1: a lease is only sound if a deposed leader steps down
    // and followers refuse votes while they hear from a leader.
    return Status::InvalidArgument("raft: lease reads require check_quorum");
  }
  if (read_only == ReadOnlyOption::kLeaseBased && election_tick_min < 4) {
    return Status::InvalidArgument("raft: lease reads need election_tick_min >= 4 (drift margin)");
  }
  return Status::Ok();
}

Result<std::unique_ptr<Raft>> Raft::Create(const Config& config) {
  FLIN_RETURN_IF_ERROR(config.Validate());
  HardState hs;
  ConfState conf;
  FLIN_RETURN_IF_ERROR(config.storage->InitialState(&hs, &conf));
  uint64_t first = config.storage->FirstIndex();
  uint64_t last = config.storage->LastIndex();
  if (hs.commit > last) {
    return Status::Corruption("raft: commit " + std::to_string(hs.commit) +
                              " beyond last log index " + std::to_string(last));
  }
  if (config.applied + 1 < first || config.applied > hs.commit) {
    return Status::InvalidArgument("raft: applied " + std::to_string(config.applied) +
                                   " outside [" + std::to_string(first - 1) + ", " +
                                   std::to_string(hs.commit) + "]");
  }
  return std::unique_ptr<Raft>(new Raft(config, hs, conf));
}

Raft::Raft(const Config& config, const HardState& hs, const ConfState& conf)
    : id_(config.id),
      config_(config),
      log_(config.storage, hs.commit, config.applied),
      term_(hs.term),
      vote_(hs.vote),
      conf_(conf),
      rng_(config.random_seed ^ (config.id * 0x2545f4914f6cdd1dULL)) {
  prev_hs_ = hs;
  BecomeFollower(term_, kNoNode);
}

// ---------------------------------------------------------------------------
// Roles (paper §5.1, Figure 4; thesis §9.6 for the pre-candidate).

void Raft::ResetRandomizedTimeout() {
  uint64_t span = static_cast<uint64_t>(config_.election_tick_max - config_.election_tick_min);
  randomized_timeout_ = config_.election_tick_min + static_cast<int>(SplitMix64(&rng_) % span);
}

void Raft::Reset(uint64_t term) {
  if (term_ != term) {
    term_ = term;
    vote_ = kNoNode;
  }
  lead_ = kNoNode;
  election_elapsed_ = 0;
  heartbeat_elapsed_ = 0;
  ResetRandomizedTimeout();
  state_ = std::monostate();
}

void Raft::BecomeFollower(uint64_t term, NodeId lead) {
  Reset(term);
  lead_ = lead;
  role_ = Role::kFollower;
}

void Raft::BecomePreCandidate() {
  // A pre-candidate keeps its term and vote: a failed pre-vote changes
  // nothing durable, which is what keeps a partitioned node from inflating
  // terms and disrupting the cluster when it returns (thesis §9.6).
  state_ = CandidateState();
  lead_ = kNoNode;
  role_ = Role::kPreCandidate;
}

void Raft::BecomeCandidate() {
  Reset(term_ + 1);
  vote_ = id_;
  state_ = CandidateState();
  role_ = Role::kCandidate;
}

void Raft::BecomeLeader() {
  Reset(term_);
  lead_ = id_;
  role_ = Role::kLeader;
  state_ = LeaderState();
  SyncProgressWithConf();
  Progress* self = Find(id_);
  if (self != nullptr) {
    self->match = log_.StableLastIndex();
    self->next = log_.LastIndex() + 1;
  }
  // Paper §5.4.2 and §8: a leader may only count replicas for entries of its
  // own term, so it appends a no-op at once to commit everything before it.
  log_.AppendOne(Entry{term_, log_.LastIndex() + 1, EntryType::kNoop, {}});
  // Thesis §4.1 (erratum of 2015): no configuration change before an entry
  // of this term is committed; pending_conf_index covers the no-op.
  leader_state().pending_conf_index = log_.LastIndex();
  need_flush_ = true;
}

bool Raft::InLease() const {
  // Thesis §4.2.3: a server that heard from a leader within the minimum
  // election timeout ignores RequestVote, so removed or partitioned servers
  // cannot disrupt a healthy cluster. A freshly started server behaves as if
  // it had just heard from a leader: it may have been part of a leader's
  // lease quorum before it crashed, and lease reads rely on that promise.
  if (!config_.check_quorum) return false;
  if (election_elapsed_ >= config_.election_tick_min) return false;
  return lead_ != kNoNode || ticks_ < static_cast<uint64_t>(config_.election_tick_min);
}

bool Raft::HasUnappliedConfChanges() const {
  if (log_.committed() <= log_.applied()) return false;
  std::vector<Entry> ents;
  if (!log_.Slice(log_.applied() + 1, log_.committed() + 1, kNoLimit, &ents)) {
    return true;
  }
  for (const Entry& e : ents) {
    if (e.type == EntryType::kConfChange) return true;
  }
  return false;
}

void Raft::StartCampaign(bool pre, bool transfer) {
  if (!Promotable()) return;
  // A node must not campaign while it has a configuration change committed
  // but not yet in force: it might count votes with the wrong configuration.
  if (log_.unstable_snapshot() || HasUnappliedConfChanges()) return;
  uint64_t vote_term;
  if (pre) {
    BecomePreCandidate();
    vote_term = term_ + 1;
  } else {
    BecomeCandidate();
    vote_term = term_;
  }
  if (RecordVote(id_, true) == VoteResult::kWon) {
    if (pre) {
      StartCampaign(false, transfer);
    } else {
      BecomeLeader();
    }
    return;
  }
  for (NodeId v : conf_.voters) {
    if (v == id_) continue;
    Message m = NewMsg(pre ? MessageType::kPreVote : MessageType::kVote, v);
    m.term = vote_term;
    m.index = log_.LastIndex();
    m.log_term = log_.LastTerm();
    m.force = transfer;
    Send(std::move(m));
  }
}

Raft::VoteResult Raft::RecordVote(NodeId from, bool granted) {
  auto& votes = std::get<CandidateState>(state_).votes;
  bool seen = false;
  for (auto& [id, g] : votes) {
    if (id == from) seen = true;
  }
  if (!seen) votes.emplace_back(from, granted);
  size_t yes = 0, no = 0;
  for (auto& [id, g] : votes) {
    if (!conf_.IsVoter(id)) continue;
    (g ? yes : no)++;
  }
  if (yes >= Quorum()) return VoteResult::kWon;
  if (no > conf_.voters.size() - Quorum()) return VoteResult::kLost;
  return VoteResult::kPending;
}

Message Raft::NewMsg(MessageType type, NodeId to) const {
  Message m;
  m.type = type;
  m.from = id_;
  m.to = to;
  m.term = term_;
  return m;
}

void Raft::Send(Message m) { msgs_.push_back(std::move(m)); }

// ---------------------------------------------------------------------------
// Inputs.

void Raft::Tick() {
  ++ticks_;
  if (role_ != Role::kLeader) {
    ++election_elapsed_;
    if (Promotable() && election_elapsed_ >= randomized_timeout_) {
      election_elapsed_ = 0;
      StartCampaign(config_.pre_vote, false);
    }
    return;
  }
  ++heartbeat_elapsed_;
  ++election_elapsed_;
  LeaderState& ls = leader_state();
  if (ls.transferee != kNoNode && ++ls.transfer_elapsed >= config_.election_tick_min) {
    AbortTransfer();  // thesis §3.10: give up after an election timeout
  }
  if (election_elapsed_ >= config_.election_tick_min) {
    election_elapsed_ = 0;
    if (config_.check_quorum) {
      // Thesis §6.2: a leader that has not heard from a quorum within an
      // election timeout steps down, so clients can find the real leader.
      size_t active = 0;
      for (Progress& pr : ls.progress) {
        if (pr.learner) continue;
        if (pr.id == id_ || pr.recent_active) ++active;
        pr.recent_active = false;
      }
      if (active < Quorum()) {
        BecomeFollower(term_, kNoNode);
        return;
      }
    }
  }
  if (heartbeat_elapsed_ >= config_.heartbeat_tick) {
    heartbeat_elapsed_ = 0;
    BroadcastHeartbeat();
  }
}

Status Raft::Step(Message m) {
  if (m.to != id_) return Status::InvalidArgument("raft: message for another node");
  if (m.from == kNoNode || m.from == id_) {
    return Status::InvalidArgument("raft: bad message sender");
  }
  if (m.term == 0) return Status::InvalidArgument("raft: message without term");
  if (m.type == MessageType::kAppend) {
    uint64_t prev_term = m.log_term;
    for (size_t i = 0; i < m.entries.size(); ++i) {
      const Entry& e = m.entries[i];
      if (e.index != m.index + 1 + i || e.term < prev_term || e.term > m.term) {
        return Status::InvalidArgument("raft: malformed append");
      }
      prev_term = e.term;
    }
  }
  if (m.type == MessageType::kSnapshot &&
      (m.snapshot.index == 0 || m.snapshot.term == 0 || m.snapshot.term > m.term)) {
    return Status::InvalidArgument("raft: malformed snapshot chunk");
  }

  if (m.term > term_) {
    bool vote_request = m.type == MessageType::kVote || m.type == MessageType::kPreVote;
    if (vote_request && !m.force && InLease()) {
      return Status::Ok();  // thesis §4.2.3
    }
    if (m.type == MessageType::kPreVote) {
      // A pre-vote never changes our term (thesis §9.6).
    } else if (m.type == MessageType::kPreVoteResp && !m.reject) {
      // Granted pre-votes carry the future term; handled below.
    } else if (m.type == MessageType::kAppend || m.type == MessageType::kHeartbeat ||
               m.type == MessageType::kSnapshot) {
      BecomeFollower(m.term, m.from);  // paper §5.1: newer term wins
    } else {
      BecomeFollower(m.term, kNoNode);
    }
  } else if (m.term < term_) {
    if ((config_.check_quorum || config_.pre_vote) &&
        (m.type == MessageType::kAppend || m.type == MessageType::kHeartbeat)) {
      // A stale leader cut off by a partition would never learn it was
      // deposed if we stayed silent (its term is below ours and, with
      // pre-vote, nobody bumps its term): tell it our term.
      Send(NewMsg(MessageType::kAppendResp, m.from));
    } else if (m.type == MessageType::kPreVote) {
      Message r = NewMsg(MessageType::kPreVoteResp, m.from);
      r.reject = true;
      Send(std::move(r));
    }
    return Status::Ok();  // paper §5.1: stale terms are ignored
  }

  if (m.type == MessageType::kVote || m.type == MessageType::kPreVote) {
    HandleVoteRequest(m);
    return Status::Ok();
  }
  switch (role_) {
    case Role::kFollower:
      StepFollower(m);
      break;
    case Role::kPreCandidate:
    case Role::kCandidate:
      StepCandidate(m);
      break;
    case Role::kLeader:
      StepLeader(m);
      break;
  }
  return Status::Ok();
}

void Raft::HandleVoteRequest(const Message& m) {
  bool pre = m.type == MessageType::kPreVote;
  // Paper §5.2: at most one vote per term, first come first served; a
  // pre-vote for a later term promises nothing and may always be granted.
  bool can_vote =
      vote_ == m.from || (vote_ == kNoNode && lead_ == kNoNode) || (pre && m.term > term_);
  Message r = NewMsg(pre ? MessageType::kPreVoteResp : MessageType::kVoteResp, m.from);
  // Paper §5.4.1: only vote for a candidate whose log is at least as
  // up-to-date as ours (election restriction).
  if (can_vote && log_.IsUpToDate(m.index, m.log_term)) {
    r.term = m.term;
    if (!pre) {
      election_elapsed_ = 0;
      vote_ = m.from;
    }
  } else {
    r.reject = true;
  }
  Send(std::move(r));
}

void Raft::StepFollower(Message& m) {
  switch (m.type) {
    case MessageType::kAppend:
      election_elapsed_ = 0;
      lead_ = m.from;
      HandleAppend(m);
      break;
    case MessageType::kHeartbeat:
      election_elapsed_ = 0;
      lead_ = m.from;
      HandleHeartbeat(m);
      break;
    case MessageType::kSnapshot:
      election_elapsed_ = 0;
      lead_ = m.from;
      HandleSnapshot(m);
      break;
    case MessageType::kTimeoutNow:
      // Thesis §3.10: start an election at once, skipping pre-vote and
      // overriding other servers' leases (the leader asked for it).
      StartCampaign(false, true);
      break;
    case MessageType::kReadIndexResp:
      read_states_.push_back(ReadState{m.index, std::move(m.context)});
      break;
    default:
      break;
  }
}

void Raft::StepCandidate(Message& m) {
  switch (m.type) {
    case MessageType::kAppend:
    case MessageType::kHeartbeat:
    case MessageType::kSnapshot:
      // Paper §5.2: a candidate that hears from a leader of its term (or a
      // newer one) returns to follower.
      BecomeFollower(term_, m.from);
      StepFollower(m);
      break;
    case MessageType::kPreVoteResp:
    case MessageType::kVoteResp: {
      bool pre_resp = m.type == MessageType::kPreVoteResp;
      if (pre_resp != (role_ == Role::kPreCandidate)) break;
      VoteResult res = RecordVote(m.from, !m.reject);
      if (res == VoteResult::kWon) {
        if (role_ == Role::kPreCandidate) {
          StartCampaign(false, false);
        } else {
          BecomeLeader();
        }
      } else if (res == VoteResult::kLost) {
        BecomeFollower(term_, kNoNode);
      }
      break;
    }
    default:
      break;
  }
}

void Raft::StepLeader(Message& m) {
  switch (m.type) {
    case MessageType::kAppendResp:
      HandleAppendResp(m);
      break;
    case MessageType::kHeartbeatResp:
      HandleHeartbeatResp(m);
      break;
    case MessageType::kReadIndex:
      HandleLeaderReadIndex(m.from, std::move(m.context));
      break;
    default:
      break;
  }
}

// ---------------------------------------------------------------------------
// Follower side.

void Raft::HandleAppend(Message& m) {
  Message r = NewMsg(MessageType::kAppendResp, m.from);
  if (m.index < log_.committed()) {
    r.index = log_.committed();
    Send(std::move(r));
    return;
  }
  std::optional<uint64_t> last_new = log_.MaybeAppend(m.index, m.log_term, &m.entries);
  if (last_new) {
    // Paper Figure 2, AppendEntries step 5.
    log_.CommitTo(std::min(m.commit, *last_new));
    r.index = *last_new;
  } else {
    // Paper §5.3 optimisation: tell the leader where our log could match,
    // so it skips a whole term of conflicting entries per round trip.
    uint64_t hint = std::min(m.index, log_.LastIndex());
    hint = log_.FindConflictByTerm(hint, m.log_term);
    r.reject = true;
    r.index = m.index;
    r.reject_hint = hint;
    r.log_term = log_.Term(hint);
  }
  Send(std::move(r));
}

void Raft::HandleHeartbeat(const Message& m) {
  // The leader sends min(match, commit): never past what we hold.
  log_.CommitTo(std::min(m.commit, log_.LastIndex()));
  Message r = NewMsg(MessageType::kHeartbeatResp, m.from);
  r.read_seq = m.read_seq;
  Send(std::move(r));
}

void Raft::HandleSnapshot(const Message& m) {
  // Every chunk resets the election timer (done by the caller); only the
  // last one, which the driver passes once it holds the whole file, asks
  // us to install it (paper §7, InstallSnapshot).
  if (!m.snapshot_last) return;
  Message r = NewMsg(MessageType::kAppendResp, m.from);
  const SnapshotMeta& meta = m.snapshot;
  if (meta.index <= log_.committed()) {
    r.index = log_.committed();
  } else if (log_.MatchTerm(meta.index, meta.term)) {
    // Paper §7: if we already hold the snapshot's last entry, keep the log
    // after it and just learn that it is committed.
    // (Answering with our last index would claim a match beyond what the
    // snapshot proves: entries after it may still conflict.)
    log_.CommitTo(meta.index);
    r.index = log_.committed();
  } else {
    log_.Restore(meta);
    conf_ = meta.conf;
    r.index = meta.index;
  }
  Send(std::move(r));
}

// ---------------------------------------------------------------------------
// Leader side: replication with flow control.

Progress* Raft::Find(NodeId id) {
  auto* ls = std::get_if<LeaderState>(&state_);
  if (ls == nullptr) return nullptr;
  for (Progress& pr : ls->progress) {
    if (pr.id == id) return &pr;
  }
  return nullptr;
}

const Progress* Raft::progress(NodeId peer) const { return const_cast<Raft*>(this)->Find(peer); }

NodeId Raft::lead_transferee() const {
  auto* ls = std::get_if<LeaderState>(&state_);
  return ls == nullptr ? kNoNode : ls->transferee;
}

void Raft::SyncProgressWithConf() {
  LeaderState& ls = leader_state();
  auto& prs = ls.progress;
  prs.erase(std::remove_if(prs.begin(), prs.end(),
                           [&](const Progress& pr) { return !conf_.Contains(pr.id); }),
            prs.end());
  auto ensure = [&](NodeId id, bool learner) {
    Progress* pr = Find(id);
    if (pr == nullptr) {
      Progress np;
      np.id = id;
      np.next = log_.LastIndex() + 1;
      np.recent_active = true;  // give a new member one check-quorum period
      np.inflight.resize(config_.max_inflight_msgs);
      prs.push_back(std::move(np));
      pr = &prs.back();
    }
    pr->learner = learner;
  };
  for (NodeId v : conf_.voters) ensure(v, false);
  for (NodeId l : conf_.learners) ensure(l, true);
}

bool Raft::IsPaused(const Progress& pr) {
  switch (pr.state) {
    case ProgressState::kProbe:
      return pr.probe_sent;
    case ProgressState::kReplicate:
      return pr.inflight_count == pr.inflight.size();
    case ProgressState::kSnapshot:
      return true;
  }
  return true;
}

bool Raft::MaybeUpdate(Progress& pr, uint64_t n) {
  bool updated = false;
  if (pr.match < n) {
    pr.match = n;
    updated = true;
    pr.probe_sent = false;
  }
  pr.next = std::max(pr.next, n + 1);
  return updated;
}

bool Raft::MaybeDecrTo(Progress& pr, uint64_t rejected, uint64_t hint) {
  if (pr.state == ProgressState::kReplicate) {
    if (rejected <= pr.match) return false;  // stale rejection
    pr.next = pr.match + 1;
    return true;
  }
  if (pr.next - 1 != rejected) return false;  // not our latest probe
  pr.next = std::max(std::min(rejected, hint + 1), pr.match + 1);
  pr.probe_sent = false;
  return true;
}

void Raft::ResetInflight(Progress& pr) {
  pr.inflight_start = 0;
  pr.inflight_count = 0;
}

void Raft::AddInflight(Progress& pr, uint64_t index) {
  size_t cap = pr.inflight.size();
  pr.inflight[(pr.inflight_start + pr.inflight_count) % cap] = index;
  ++pr.inflight_count;
}

void Raft::FreeInflightLE(Progress& pr, uint64_t index) {
  size_t cap = pr.inflight.size();
  while (pr.inflight_count > 0 && pr.inflight[pr.inflight_start] <= index) {
    pr.inflight_start = (pr.inflight_start + 1) % cap;
    --pr.inflight_count;
  }
}

void Raft::BecomeProbe(Progress& pr) {
  if (pr.state == ProgressState::kSnapshot) {
    pr.next = std::max(pr.match + 1, pr.pending_snapshot + 1);
    pr.pending_snapshot = 0;
  } else {
    pr.next = pr.match + 1;
  }
  pr.state = ProgressState::kProbe;
  pr.probe_sent = false;
  ResetInflight(pr);
}

void Raft::BecomeReplicate(Progress& pr) {
  pr.state = ProgressState::kReplicate;
  pr.next = pr.match + 1;
  pr.probe_sent = false;
  ResetInflight(pr);
}

void Raft::BecomeSnapshotState(Progress& pr, uint64_t index) {
  pr.state = ProgressState::kSnapshot;
  pr.pending_snapshot = index;
  pr.probe_sent = false;
  ResetInflight(pr);
}

bool Raft::MaybeSendAppend(Progress& pr, bool send_if_empty) {
  if (IsPaused(pr)) return false;
  uint64_t prev = pr.next - 1;
  if (prev + 1 < log_.FirstIndex()) {
    SendSnapshot(pr);  // paper §7: the entries it needs are compacted
    return false;
  }
  uint64_t last = log_.LastIndex();
  Message m = NewMsg(MessageType::kAppend, pr.id);
  if (pr.next <= last && !log_.Slice(pr.next, last + 1, config_.max_size_per_msg, &m.entries)) {
    SendSnapshot(pr);
    return false;
  }
  if (m.entries.empty() && !send_if_empty) return false;
  m.index = prev;
  m.log_term = log_.Term(prev);
  m.commit = log_.committed();
  if (pr.state == ProgressState::kReplicate && !m.entries.empty()) {
    // Pipelining (thesis §10.2.2): assume success and move on.
    uint64_t last_sent = m.entries.back().index;
    pr.next = last_sent + 1;
    AddInflight(pr, last_sent);
  } else if (pr.state == ProgressState::kProbe) {
    pr.probe_sent = true;
  }
  pr.commit_sent = m.commit;
  Send(std::move(m));
  return true;
}

void Raft::SendSnapshot(Progress& pr) {
  if (!pr.recent_active) return;  // don't stream to a peer that is gone
  Result<SnapshotMeta> snap = config_.storage->Snapshot();
  if (!snap.ok()) return;  // not ready: retried on the next flush
  FLIN_CHECK(snap->index + 1 >= log_.FirstIndex())
      << "storage snapshot " << snap->index << " older than the log start";
  BecomeSnapshotState(pr, snap->index);
  snapshot_sends_.push_back(SnapshotSend{pr.id, term_, *snap});
}

void Raft::FlushAppends() {
  need_flush_ = false;
  if (role_ != Role::kLeader) return;
  for (Progress& pr : leader_state().progress) {
    if (pr.id == id_) continue;
    bool sent = false;
    while (MaybeSendAppend(pr, false)) sent = true;
    if (!sent &&
        (pr.state == ProgressState::kProbe || pr.send_probe || pr.commit_sent < log_.committed())) {
      MaybeSendAppend(pr, true);
    }
    pr.send_probe = false;
  }
}

void Raft::BroadcastHeartbeat() {
  LeaderState& ls = leader_state();
  ++ls.read_seq;
  ls.round_ticks.emplace_back(ls.read_seq, ticks_);
  while (ls.round_ticks.size() > 1024) ls.round_ticks.pop_front();
  for (Progress& pr : ls.progress) {
    if (pr.id == id_) {
      pr.read_seq_acked = ls.read_seq;
      continue;
    }
    Message m = NewMsg(MessageType::kHeartbeat, pr.id);
    m.commit = std::min(pr.match, log_.committed());
    m.read_seq = ls.read_seq;
    Send(std::move(m));
  }
}

bool Raft::MaybeCommit() {
  LeaderState& ls = leader_state();
  uint64_t matches[16];
  std::vector<uint64_t> big;
  uint64_t* m = matches;
  size_t n = 0;
  if (conf_.voters.size() > 16) {
    big.resize(conf_.voters.size());
    m = big.data();
  }
  for (const Progress& pr : ls.progress) {
    if (!pr.learner) m[n++] = pr.match;
  }
  if (n == 0) return false;
  std::sort(m, m + n, std::greater<uint64_t>());
  uint64_t mci = m[Quorum() - 1];
  if (mci <= log_.committed()) return false;
  // Paper §5.4.2 (Figure 8): only an entry of the current term is committed
  // by counting replicas; earlier entries are committed indirectly.
  if (!config_.unsafe_commit_previous_term_by_counting && log_.Term(mci) != term_) {
    return false;
  }
  log_.CommitTo(mci);
  need_flush_ = true;
  if (!ls.committed_in_term && log_.Term(log_.committed()) == term_) {
    OnCommittedInTerm();
  }
  return true;
}

void Raft::OnCommittedInTerm() {
  LeaderState& ls = leader_state();
  ls.committed_in_term = true;
  // Thesis §6.4 step 1: reads that arrived before the leader knew the
  // commit index of its term use the index it has now.
  for (PendingRead& r : ls.reads_before_commit) {
    r.seq = ls.read_seq + 1;
    r.index = log_.committed();
    ls.reads.push_back(std::move(r));
  }
  ls.reads_before_commit.clear();
  ResolveReads();
}

void Raft::HandleAppendResp(const Message& m) {
  Progress* pr = Find(m.from);
  if (pr == nullptr) return;
  pr->recent_active = true;
  if (m.reject) {
    uint64_t next_probe = m.reject_hint;
    if (m.log_term > 0) {
      next_probe = log_.FindConflictByTerm(m.reject_hint, m.log_term);
    }
    if (MaybeDecrTo(*pr, m.index, next_probe)) {
      if (pr->state == ProgressState::kReplicate) BecomeProbe(*pr);
      need_flush_ = true;
    }
    return;
  }
  if (!MaybeUpdate(*pr, m.index)) return;
  if (pr->state == ProgressState::kProbe) {
    BecomeReplicate(*pr);
  } else if (pr->state == ProgressState::kSnapshot && pr->match + 1 >= log_.FirstIndex()) {
    BecomeProbe(*pr);
    BecomeReplicate(*pr);
  } else if (pr->state == ProgressState::kReplicate) {
    FreeInflightLE(*pr, m.index);
  }
  MaybeCommit();
  need_flush_ = true;
  LeaderState& ls = leader_state();
  if (pr->id == ls.transferee && pr->match == log_.LastIndex()) {
    SendTimeoutNow(pr->id);  // thesis §3.10 step 2: target caught up
  }
}

void Raft::HandleHeartbeatResp(const Message& m) {
  Progress* pr = Find(m.from);
  if (pr == nullptr) return;
  pr->recent_active = true;
  pr->probe_sent = false;
  if (pr->state == ProgressState::kReplicate && pr->inflight_count == pr->inflight.size()) {
    // The peer is alive: free one slot so a lost append cannot stall the
    // pipeline forever.
    FreeInflightLE(*pr, pr->inflight[pr->inflight_start]);
  }
  if (pr->match < log_.LastIndex() || pr->commit_sent < log_.committed()) {
    // An append may have been lost while pipelining: an (empty) append at
    // next-1 makes the follower reject and the leader fall back to probing.
    pr->send_probe = true;
    need_flush_ = true;
  }
  if (m.read_seq > pr->read_seq_acked) {
    pr->read_seq_acked = m.read_seq;
    ResolveReads();
  }
}

// ---------------------------------------------------------------------------
// Linearizable reads (thesis §6.4) and leases (thesis §6.4.1).

uint64_t Raft::QuorumReadSeq() const {
  const LeaderState& ls = std::get<LeaderState>(state_);
  std::vector<uint64_t> seqs;
  seqs.reserve(ls.progress.size());
  for (const Progress& pr : ls.progress) {
    if (!pr.learner) seqs.push_back(pr.read_seq_acked);
  }
  if (seqs.size() < Quorum()) return 0;
  std::sort(seqs.begin(), seqs.end(), std::greater<uint64_t>());
  return seqs[Quorum() - 1];
}

bool Raft::LeaseValid() const {
  const LeaderState& ls = std::get<LeaderState>(state_);
  return !ls.lease_revoked && ticks_ < ls.lease_until_tick;
}

void Raft::ResolveReads() {
  LeaderState& ls = leader_state();
  while (true) {
    uint64_t q = QuorumReadSeq();
    // A quorum acknowledged round q, sent at tick t: none of them will vote
    // for another leader before t + election_tick_min on their clocks.
    // Two ticks of margin cover tick phase differences between nodes.
    while (!ls.round_ticks.empty() && ls.round_ticks.front().first < q) {
      ls.round_ticks.pop_front();
    }
    if (!ls.lease_revoked && !ls.round_ticks.empty() && ls.round_ticks.front().first == q) {
      ls.lease_until_tick = std::max(ls.lease_until_tick,
                                     ls.round_ticks.front().second + config_.election_tick_min - 2);
    }
    while (!ls.reads.empty() && ls.reads.front().seq <= q) {
      PendingRead r = std::move(ls.reads.front());
      ls.reads.pop_front();
      DeliverRead(r);
    }
    if (ls.reads.empty() || ls.reads.front().seq <= ls.read_seq) break;
    // Reads wait for a round that has not started: start it now. Every read
    // that arrived meanwhile shares it (one heartbeat round per batch).
    BroadcastHeartbeat();
  }
}

void Raft::DeliverRead(PendingRead& read) {
  if (read.from == id_) {
    read_states_.push_back(ReadState{read.index, std::move(read.context)});
    return;
  }
  Message m = NewMsg(MessageType::kReadIndexResp, read.from);
  m.index = read.index;
  m.context = std::move(read.context);
  Send(std::move(m));
}

void Raft::HandleLeaderReadIndex(NodeId from, std::string context) {
  LeaderState& ls = leader_state();
  PendingRead r;
  r.from = from;
  r.context = std::move(context);
  if (!ls.committed_in_term) {
    ls.reads_before_commit.push_back(std::move(r));
    return;
  }
  r.index = log_.committed();
  if (conf_.voters.size() == 1 && conf_.IsVoter(id_)) {
    DeliverRead(r);  // a single voter is its own quorum
    return;
  }
  if (config_.read_only == ReadOnlyOption::kLeaseBased && LeaseValid()) {
    DeliverRead(r);
    return;
  }
  r.seq = ls.read_seq + 1;
  ls.reads.push_back(std::move(r));
  ResolveReads();
}

void Raft::ReadIndex(std::string context) {
  if (role_ == Role::kLeader) {
    HandleLeaderReadIndex(id_, std::move(context));
    return;
  }
  if (lead_ == kNoNode) return;  // dropped: the caller retries
  Message m = NewMsg(MessageType::kReadIndex, lead_);
  m.context = std::move(context);
  Send(std::move(m));
}

// ---------------------------------------------------------------------------
// Proposals, membership, leadership transfer, snapshots.

Result<uint64_t> Raft::Propose(std::string data) {
  if (role_ != Role::kLeader) return Status::Unavailable("raft: not leader");
  if (leader_state().transferee != kNoNode) {
    // Thesis §3.10: stop accepting commands while handing over.
    return Status::Unavailable("raft: leadership transfer in progress");
  }
  uint64_t index = log_.LastIndex() + 1;
  log_.AppendOne(Entry{term_, index, EntryType::kNormal, std::move(data)});
  need_flush_ = true;
  return index;
}

Result<uint64_t> Raft::ProposeBatch(std::span<std::string> data) {
  if (role_ != Role::kLeader) return Status::Unavailable("raft: not leader");
  if (leader_state().transferee != kNoNode) {
    return Status::Unavailable("raft: leadership transfer in progress");
  }
  uint64_t first = log_.LastIndex() + 1;
  uint64_t index = first;
  for (std::string& d : data) {
    log_.AppendOne(Entry{term_, index++, EntryType::kNormal, std::move(d)});
  }
  need_flush_ = true;
  return first;
}

Result<uint64_t> Raft::ProposeConfChange(const ConfChange& cc) {
  if (role_ != Role::kLeader) return Status::Unavailable("raft: not leader");
  LeaderState& ls = leader_state();
  if (ls.transferee != kNoNode) {
    return Status::Unavailable("raft: leadership transfer in progress");
  }
  if (!ls.committed_in_term || ls.pending_conf_index > log_.applied()) {
    // Thesis §4.1: one change at a time, and (erratum) only after the
    // leader committed an entry of its own term.
    return Status::Unavailable("raft: a configuration change is pending");
  }
  if (cc.node == kNoNode) return Status::InvalidArgument("raft: node id 0");
  switch (cc.type) {
    case ConfChangeType::kAddVoter:
      if (conf_.IsVoter(cc.node)) {
        return Status::InvalidArgument("raft: already a voter");
      }
      if (conf_.IsLearner(cc.node)) {
        // Thesis §4.2.1: promote only a learner that has caught up, so the
        // new configuration does not stall waiting for it.
        const Progress* pr = Find(cc.node);
        if (pr == nullptr || pr->match < log_.committed()) {
          return Status::Unavailable("raft: learner has not caught up");
        }
      }
      break;
    case ConfChangeType::kAddLearner:
      if (conf_.IsLearner(cc.node)) {
        return Status::InvalidArgument("raft: already a learner");
      }
      break;
    case ConfChangeType::kRemoveNode:
      if (!conf_.Contains(cc.node)) {
        return Status::InvalidArgument("raft: not a member");
      }
      break;
  }
  if (ApplyConfChange(conf_, cc).voters.empty()) {
    return Status::InvalidArgument("raft: change would leave no voter");
  }
  uint64_t index = log_.LastIndex() + 1;
  log_.AppendOne(Entry{term_, index, EntryType::kConfChange, EncodeConfChange(cc)});
  ls.pending_conf_index = index;
  need_flush_ = true;
  return index;
}

void Raft::ApplyConf(const ConfChange& cc) {
  conf_ = ApplyConfChange(std::move(conf_), cc);
  if (role_ != Role::kLeader) return;
  LeaderState& ls = leader_state();
  SyncProgressWithConf();
  ls.lease_until_tick = 0;  // the lease quorum was of the old configuration
  if (!conf_.IsVoter(id_)) {
    // Thesis §4.2.2: a removed leader steps down once the change is
    // committed. Hand over to the most up-to-date voter so the cluster
    // need not wait for an election timeout.
    const Progress* best = nullptr;
    for (const Progress& pr : ls.progress) {
      if (pr.learner || pr.id == id_) continue;
      if (best == nullptr || pr.match > best->match) best = &pr;
    }
    if (best != nullptr) SendTimeoutNow(best->id);
    BecomeFollower(term_, kNoNode);
    return;
  }
  if (ls.transferee != kNoNode && !conf_.IsVoter(ls.transferee)) {
    AbortTransfer();
  }
  MaybeCommit();
  need_flush_ = true;
  ResolveReads();
}

Status Raft::TransferLeader(NodeId target) {
  if (role_ != Role::kLeader) return Status::Unavailable("raft: not leader");
  if (target == id_) return Status::Ok();
  if (!conf_.IsVoter(target)) {
    return Status::InvalidArgument("raft: transfer target is not a voter");
  }
  LeaderState& ls = leader_state();
  ls.transferee = target;
  ls.transfer_elapsed = 0;
  Progress* pr = Find(target);
  if (pr->match == log_.LastIndex()) {
    SendTimeoutNow(target);
  } else {
    need_flush_ = true;  // thesis §3.10 step 1: bring the target up to date
  }
  return Status::Ok();
}

void Raft::SendTimeoutNow(NodeId to) {
  LeaderState& ls = leader_state();
  // The target will campaign ignoring followers' leases, so our own lease
  // is void for the rest of this term.
  ls.lease_revoked = true;
  ls.lease_until_tick = 0;
  Send(NewMsg(MessageType::kTimeoutNow, to));
}

void Raft::AbortTransfer() {
  LeaderState& ls = leader_state();
  ls.transferee = kNoNode;
  ls.transfer_elapsed = 0;
}

void Raft::Campaign() { StartCampaign(config_.pre_vote, false); }

void Raft::ReportSnapshot(NodeId peer, bool ok) {
  Progress* pr = Find(peer);
  if (pr == nullptr || pr->state != ProgressState::kSnapshot) return;
  if (!ok) pr->pending_snapshot = 0;
  BecomeProbe(*pr);
  // Wait for the next heartbeat response before probing, as etcd does:
  // the follower may still be installing.
  pr->probe_sent = true;
}

void Raft::ReportUnreachable(NodeId peer) {
  Progress* pr = Find(peer);
  if (pr != nullptr && pr->state == ProgressState::kReplicate) {
    BecomeProbe(*pr);
  }
}

// ---------------------------------------------------------------------------
// Output.

bool Raft::HasReady() {
  if (ready_out_) return false;
  if (need_flush_) FlushAppends();
  return hard_state() != prev_hs_ || !log_.unstable_entries().empty() ||
         log_.unstable_snapshot().has_value() || !msgs_.empty() || !snapshot_sends_.empty() ||
         !read_states_.empty() || log_.committed() > log_.applied();
}

Ready Raft::GetReady() {
  FLIN_CHECK(!ready_out_) << "GetReady called again before Advance";
  if (need_flush_) FlushAppends();
  Ready rd;
  if (log_.unstable_snapshot()) {
    rd.snapshot = *log_.unstable_snapshot();
    ready_snapshot_index_ = rd.snapshot->index;
    if (log_.applied() < rd.snapshot->index) {
      log_.set_applied(rd.snapshot->index);
    }
  }
  rd.entries = log_.unstable_entries();
  if (!rd.entries.empty()) {
    ready_last_index_ = rd.entries.back().index;
    ready_last_term_ = rd.entries.back().term;
  }
  if (log_.committed() > log_.applied()) {
    bool ok = log_.Slice(log_.applied() + 1, log_.committed() + 1,
                         config_.max_committed_size_per_ready, &rd.committed_entries);
    FLIN_CHECK(ok) << "committed entries after " << log_.applied() << " were compacted";
    log_.set_applied(rd.committed_entries.back().index);
    for (const Entry& e : rd.committed_entries) {
      if (e.type != EntryType::kConfChange) continue;
      ConfChange cc;
      Status s = DecodeConfChange(e.data, &cc);
      FLIN_CHECK(s.ok()) << "committed conf change " << e.index << ": " << s.ToString();
      ApplyConf(cc);
    }
    if (need_flush_) FlushAppends();
  }
  HardState hs = hard_state();
  if (hs != prev_hs_) {
    rd.hard_state = hs;
    prev_hs_ = hs;
  }
  rd.messages = std::move(msgs_);
  msgs_.clear();
  rd.snapshot_sends = std::move(snapshot_sends_);
  snapshot_sends_.clear();
  rd.read_states = std::move(read_states_);
  read_states_.clear();
  rd.role = role_;
  rd.leader = lead_;
  rd.term = term_;
  ready_out_ = true;
  return rd;
}

void Raft::Advance() {
  FLIN_CHECK(ready_out_) << "Advance without GetReady";
  ready_out_ = false;
  if (ready_snapshot_index_) {
    log_.StableSnapTo(*ready_snapshot_index_);
    ready_snapshot_index_.reset();
  }
  if (ready_last_index_ != 0) {
    log_.StableTo(ready_last_index_, ready_last_term_);
    ready_last_index_ = 0;
  }
  if (role_ == Role::kLeader) {
    // The leader counts itself only for entries it has made durable, so
    // "committed" always means "durable on a quorum" (DESIGN.md promise 2).
    Progress* self = Find(id_);
    if (self != nullptr && MaybeUpdate(*self, log_.StableLastIndex())) {
      MaybeCommit();
    }
  }
}

bool Raft::EntriesForTest(uint64_t lo, uint64_t hi, std::vector<Entry>* out) const {
  return log_.Slice(lo, hi, kNoLimit, out);
}

}  // namespace flin::raft
