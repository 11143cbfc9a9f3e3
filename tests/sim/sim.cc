#include "tests/sim/sim.h"

#include <algorithm>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <unordered_map>
#include <vector>

#include "raft/codec.h"
#include "raft/raft.h"
#include "tests/sim/linearizability.h"

namespace flin::sim {
namespace {

using raft::ConfChange;
using raft::ConfChangeType;
using raft::ConfState;
using raft::Entry;
using raft::EntryType;
using raft::Message;
using raft::MessageType;
using raft::NodeId;
using raft::Ready;
using raft::Role;
using raft::SnapshotMeta;

constexpr uint64_t kTickPeriod = 10;  // virtual time units per tick

// xoshiro-free, tiny and deterministic: splitmix64.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t Next() {
    uint64_t z = (s_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  uint64_t Uniform(uint64_t n) { return n == 0 ? 0 : Next() % n; }
  uint64_t Range(uint64_t lo, uint64_t hi) { return lo + Uniform(hi - lo + 1); }
  double Real() { return (Next() >> 11) * (1.0 / 9007199254740992.0); }
  bool Chance(double p) { return Real() < p; }

 private:
  uint64_t s_;
};

uint64_t Hash(const std::string& s) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ULL;
  return h;
}

// The fault mix, drawn from the seed.
struct Mix {
  int voters = 3;
  int spares = 1;
  double loss = 0;
  double dup = 0;
  uint64_t delay_min = 1, delay_max = 5;
  double partition_rate = 0;  // per fault event
  double one_way_rate = 0;
  double crash_rate = 0;
  double conf_rate = 0;
  double transfer_rate = 0;
  double compact_rate = 0;
  uint64_t persist_max = 0;  // async persistence delay
  uint64_t max_msg_bytes = 1 << 20;
  size_t max_inflight = 64;
  bool lease = false;
  bool pre_vote = true;
  bool check_quorum = true;
  size_t chunk = 64;
  int election_min = 10, election_max = 20, heartbeat = 2;

  std::string Describe() const {
    std::ostringstream o;
    o << voters << " voters+" << spares << " spare, loss=" << loss << " dup=" << dup
      << " delay=" << delay_min << ".." << delay_max << " part=" << partition_rate
      << " oneway=" << one_way_rate << " crash=" << crash_rate << " conf=" << conf_rate
      << " transfer=" << transfer_rate << " compact=" << compact_rate << " persist<=" << persist_max
      << " msgbytes=" << max_msg_bytes << " inflight=" << max_inflight << (lease ? " lease" : "")
      << (pre_vote ? "" : " no-prevote") << (check_quorum ? "" : " no-checkquorum")
      << " election=" << election_min << ".." << election_max << " heartbeat=" << heartbeat;
    return o.str();
  }
};

Mix DrawStorm(Rng& rng) {
  Mix m;
  m.voters = rng.Chance(0.5) ? 3 : 5;
  m.spares = 1;
  m.loss = 0.05 + rng.Real() * 0.2;
  m.dup = rng.Real() * 0.05;
  m.delay_min = 1;
  m.delay_max = rng.Range(20, 200);
  m.partition_rate = 0.3 + rng.Real() * 0.4;
  m.one_way_rate = rng.Real() * 0.2;
  m.crash_rate = 0.1 + rng.Real() * 0.2;
  m.conf_rate = 0;
  m.transfer_rate = rng.Real() * 0.2;
  m.compact_rate = rng.Real() * 0.1;
  m.persist_max = rng.Range(0, 5);
  m.max_msg_bytes = rng.Range(1, 60);
  m.max_inflight = rng.Range(1, 3);
  m.lease = false;
  // Without pre-vote and check-quorum, leadership changes far more often.
  m.pre_vote = false;
  m.check_quorum = false;
  m.chunk = rng.Range(8, 128);
  return m;
}

Mix DrawMix(Rng& rng) {
  Mix m;
  m.voters = rng.Chance(0.5) ? 3 : 5;
  m.spares = 1;
  m.loss = rng.Chance(0.7) ? rng.Real() * 0.15 : 0;
  m.dup = rng.Chance(0.5) ? rng.Real() * 0.05 : 0;
  m.delay_min = rng.Range(1, 3);
  m.delay_max = m.delay_min + (rng.Chance(0.5) ? rng.Range(0, 10) : rng.Range(10, 60));
  m.partition_rate = rng.Chance(0.7) ? rng.Real() * 0.3 : 0;
  m.one_way_rate = rng.Chance(0.5) ? rng.Real() * 0.2 : 0;
  m.crash_rate = rng.Chance(0.7) ? rng.Real() * 0.15 : 0;
  m.conf_rate = rng.Chance(0.6) ? rng.Real() * 0.3 : 0;
  m.transfer_rate = rng.Chance(0.4) ? rng.Real() * 0.1 : 0;
  m.compact_rate = rng.Chance(0.7) ? rng.Real() * 0.3 : 0;
  m.persist_max = rng.Chance(0.5) ? rng.Range(1, 8) : 0;
  m.max_msg_bytes = rng.Chance(0.5) ? rng.Range(1, 200) : 1 << 20;
  m.max_inflight = rng.Chance(0.5) ? rng.Range(1, 4) : 64;
  m.pre_vote = rng.Chance(0.8);
  m.check_quorum = rng.Chance(0.8);
  m.lease = m.check_quorum && rng.Chance(0.3);
  m.chunk = rng.Range(8, 128);
  if (rng.Chance(0.3)) {
    // Tighter timing: short election timeouts (lease margins are thinnest).
    m.election_min = static_cast<int>(rng.Range(4, 9));
    m.election_max = m.election_min + static_cast<int>(rng.Range(1, 8));
    m.heartbeat = static_cast<int>(rng.Range(1, m.election_min / 2));
  }
  return m;
}

// The replicated state machine: a key-value map, durable together with its
// applied index and configuration (like state.db).
struct KvState {
  std::map<std::string, std::string> kv;
  uint64_t applied = 0;
  ConfState conf;

  std::string Serialize() const {
    std::string out;
    for (auto& [k, v] : kv) {
      out += std::to_string(k.size()) + ":" + k + std::to_string(v.size()) + ":" + v;
    }
    return out;
  }
  static std::map<std::string, std::string> Parse(const std::string& s) {
    std::map<std::string, std::string> kv;
    size_t p = 0;
    auto field = [&]() {
      size_t colon = s.find(':', p);
      size_t n = std::stoul(s.substr(p, colon - p));
      std::string f = s.substr(colon + 1, n);
      p = colon + 1 + n;
      return f;
    };
    while (p < s.size()) {
      std::string k = field();
      kv[k] = field();
    }
    return kv;
  }
};

struct WriteOp {
  uint64_t op_id;
  std::string key, value;
};

std::string EncodeWrite(const WriteOp& w) {
  return std::to_string(w.op_id) + "|" + w.key + "|" + w.value;
}
WriteOp DecodeWrite(const std::string& s) {
  WriteOp w;
  size_t a = s.find('|'), b = s.find('|', a + 1);
  w.op_id = std::stoull(s.substr(0, a));
  w.key = s.substr(a + 1, b - a - 1);
  w.value = s.substr(b + 1);
  return w;
}

struct SnapFile {
  SnapshotMeta meta;
  std::string data;
};

struct PendingWrite {
  int client;
  uint64_t op_id;
  uint64_t term;
};
struct PendingRead {
  int client;
  uint64_t op_id;
  std::string key;
  std::optional<uint64_t> index;
};

struct SimNode {
  NodeId id = 0;
  bool up = true;
  uint64_t incarnation = 0;
  // Durable.
  raft::MemoryStorage storage;
  KvState sm;
  std::optional<SnapFile> snapshot;
  // Volatile.
  std::unique_ptr<raft::Raft> raft;
  bool persisting = false;
  Ready ready;
  struct Assembly {
    SnapshotMeta meta;
    NodeId from = 0;
    std::string data;
  };
  std::optional<Assembly> incoming;
  std::map<std::pair<uint64_t, uint64_t>, std::string> complete;
  std::map<uint64_t, PendingWrite> writes;   // by log index
  std::map<std::string, PendingRead> reads;  // by context
  uint64_t seen_commit = 0;
  Role seen_role = Role::kFollower;
  uint64_t seen_term = 0;
};

struct Client {
  int id;
  bool busy = false;
  uint64_t op_id = 0;
  size_t hist = 0;  // index in history_
};

enum class EvType { kDeliver, kTick, kPersist, kClient, kFault, kRestart, kTimeout };

struct Event {
  EvType type;
  NodeId node = 0;
  uint64_t incarnation = 0;
  int client = -1;
  uint64_t op_id = 0;
  Message msg;
};

struct Violation {
  std::string what;
};

class Simulation {
 public:
  explicit Simulation(const SimOptions& o) : opt_(o), rng_(o.seed) {
    mix_ = o.mix == "storm" ? DrawStorm(rng_) : DrawMix(rng_);
    result_.mix = mix_.Describe();
  }

  SimResult Run() {
    try {
      Setup();
      for (int step = 0; step < opt_.steps && !events_.empty(); ++step) {
        StepOnce();
      }
      Heal();
      FinalChecks();
    } catch (const Violation& v) {
      result_.ok = false;
      result_.failure = "t=" + std::to_string(now_) + ": " + v.what;
    }
    return result_;
  }

 private:
  [[noreturn]] void Fail(const std::string& what) { throw Violation{what}; }
  void Log(const std::string& s) {
    if (opt_.verbose) fprintf(stderr, "[t=%lu] %s\n", now_, s.c_str());
  }

  void Schedule(uint64_t delay, Event e) {
    events_.emplace(std::make_pair(now_ + delay, seq_++), std::move(e));
  }

  raft::Config MakeConfig(SimNode& n) {
    raft::Config c;
    c.id = n.id;
    c.storage = &n.storage;
    c.applied = n.sm.applied;
    c.election_tick_min = mix_.election_min;
    c.election_tick_max = mix_.election_max;
    c.heartbeat_tick = mix_.heartbeat;
    c.max_size_per_msg = mix_.max_msg_bytes;
    c.max_inflight_msgs = mix_.max_inflight;
    c.pre_vote = mix_.pre_vote;
    c.check_quorum = mix_.check_quorum;
    c.read_only = mix_.lease ? raft::ReadOnlyOption::kLeaseBased : raft::ReadOnlyOption::kSafe;
    c.random_seed = opt_.seed * 1000003 + n.id * 7919 + n.incarnation;
    c.unsafe_commit_previous_term_by_counting = opt_.unsafe_commit;
    return c;
  }

  void StartRaft(SimNode& n) {
    n.storage.SetConfState(n.sm.conf);
    auto r = raft::Raft::Create(MakeConfig(n));
    if (!r.ok()) Fail("node " + std::to_string(n.id) + " cannot start: " + r.status().ToString());
    n.raft = std::move(r.value());
    n.persisting = false;
    n.incoming.reset();
    n.complete.clear();
    n.writes.clear();
    n.reads.clear();
    n.seen_commit = n.raft->commit_index();
    n.seen_role = n.raft->role();
    n.seen_term = n.raft->term();
  }

  void Setup() {
    int total = mix_.voters + mix_.spares;
    ConfState conf;
    for (int i = 1; i <= mix_.voters; ++i) conf.voters.push_back(i);
    for (int i = 1; i <= total; ++i) {
      auto n = std::make_unique<SimNode>();
      n->id = i;
      if (i <= mix_.voters) {
        if (!n->storage.Bootstrap(conf).ok()) Fail("bootstrap");
        n->sm.applied = 1;
        n->sm.conf = conf;
        n->snapshot = SnapFile{SnapshotMeta{1, 1, conf}, ""};
      }
      nodes_[i] = std::move(n);
      StartRaft(*nodes_[i]);
      Event t;
      t.type = EvType::kTick;
      t.node = i;
      Schedule(rng_.Range(1, kTickPeriod), t);
    }
    for (int c = 0; c < 4; ++c) {
      clients_.push_back(Client{c});
      Event e;
      e.type = EvType::kClient;
      e.client = c;
      Schedule(rng_.Range(50, 300), e);
    }
    Event f;
    f.type = EvType::kFault;
    Schedule(rng_.Range(100, 300), f);
  }

  SimNode& node(NodeId id) { return *nodes_.at(id); }

  bool Connected(NodeId from, NodeId to) const {
    if (healed_) return true;
    if (!side_.empty() && side_.at(from) != side_.at(to)) return false;
    return !cut_.count({from, to});
  }

  void Network(Message m) {
    if (!healed_ && rng_.Chance(mix_.loss)) return;
    int copies = (!healed_ && rng_.Chance(mix_.dup)) ? 2 : 1;
    for (int c = 0; c < copies; ++c) {
      Event e;
      e.type = EvType::kDeliver;
      e.node = m.to;
      e.msg = m;
      // Raft needs broadcast time << election timeout (paper §5.6): the
      // healed network is fast again, so the cluster must make progress.
      uint64_t hi =
          healed_ ? std::min<uint64_t>(mix_.delay_max, mix_.delay_min + 10) : mix_.delay_max;
      Schedule(rng_.Range(mix_.delay_min, hi), std::move(e));
    }
  }

  // --- the driver (raft/README.md order) -----------------------------------

  void Drive(SimNode& n) {
    if (!n.up || n.persisting || !n.raft->HasReady()) return;
    n.ready = n.raft->GetReady();
    n.persisting = true;
    uint64_t delay = healed_ ? 0 : rng_.Uniform(mix_.persist_max + 1);
    if (delay == 0) {
      Persisted(n);
    } else {
      Event e;
      e.type = EvType::kPersist;
      e.node = n.id;
      e.incarnation = n.incarnation;
      Schedule(delay, e);
    }
  }

  void Persisted(SimNode& n) {
    Ready rd = std::move(n.ready);
    n.ready = Ready();
    // 1. Persist: snapshot, entries, hard state (one "fsync").
    if (rd.snapshot) {
      auto key = std::make_pair(rd.snapshot->index, rd.snapshot->term);
      auto it = n.complete.find(key);
      if (it == n.complete.end()) Fail("core installs a snapshot the driver never completed");
      if (!n.storage.ApplySnapshot(*rd.snapshot).ok()) Fail("ApplySnapshot failed");
      n.sm.kv = KvState::Parse(it->second);
      n.sm.applied = rd.snapshot->index;
      n.sm.conf = rd.snapshot->conf;
      n.snapshot = SnapFile{*rd.snapshot, it->second};
      n.complete.clear();
      ++result_.snapshots_installed;
      CheckSnapshotAgainstHistory(n, *rd.snapshot);
    }
    if (!rd.entries.empty()) {
      std::vector<Entry> ents = rd.entries;
      Status s = n.storage.Append(&ents);
      if (!s.ok()) Fail("storage append: " + s.ToString());
      CheckLogMatching(n, rd.entries);
    }
    if (rd.hard_state) n.storage.SetHardState(*rd.hard_state);
    // 2. Send.
    for (Message& m : rd.messages) Network(std::move(m));
    for (const raft::SnapshotSend& s : rd.snapshot_sends) StreamSnapshot(n, s);
    // 3. Apply.
    for (const Entry& e : rd.committed_entries) Apply(n, e);
    n.storage.SetConfState(n.sm.conf);
    for (raft::ReadState& rs : rd.read_states) {
      auto it = n.reads.find(rs.context);
      if (it != n.reads.end()) it->second.index = rs.index;
    }
    ServeReads(n);
    n.raft->Advance();
    n.persisting = false;
    AfterStep();
    Drive(n);
  }

  void StreamSnapshot(SimNode& n, const raft::SnapshotSend& s) {
    if (!n.snapshot || n.snapshot->meta.index != s.meta.index) {
      // Replaced by a newer snapshot while the Ready was being persisted:
      // report failure and the core asks again with the newest one.
      if (!n.snapshot || n.snapshot->meta.index < s.meta.index) {
        Fail("core asked to stream a snapshot newer than any the driver has");
      }
      n.raft->ReportSnapshot(s.to, false);
      return;
    }
    const std::string& data = n.snapshot->data;
    size_t off = 0;
    do {
      Message m;
      m.type = MessageType::kSnapshot;
      m.from = n.id;
      m.to = s.to;
      m.term = s.term;
      m.snapshot = s.meta;
      m.snapshot_offset = off;
      m.snapshot_data = data.substr(off, mix_.chunk);
      off += m.snapshot_data.size();
      m.snapshot_last = off >= data.size();
      Network(std::move(m));
    } while (off < data.size());
    // Reported as sent if the link is up now; chunks may still be lost,
    // which the core must survive (it falls back to probing).
    n.raft->ReportSnapshot(s.to, Connected(n.id, s.to));
  }

  void ReceiveChunk(SimNode& n, Message& m) {
    auto& in = n.incoming;
    if (m.snapshot_offset == 0) {
      in = SimNode::Assembly{m.snapshot, m.from, ""};
    }
    bool whole = false;
    if (in && in->meta == m.snapshot && in->from == m.from &&
        in->data.size() == m.snapshot_offset) {
      in->data += m.snapshot_data;
      if (m.snapshot_last) {
        n.complete[{m.snapshot.index, m.snapshot.term}] = in->data;
        in.reset();
        whole = true;
      }
    }
    m.snapshot_data.clear();
    m.snapshot_last = whole;
  }

  void Apply(SimNode& n, const Entry& e) {
    if (e.index != n.sm.applied + 1) {
      Fail("node " + std::to_string(n.id) + " applies " + std::to_string(e.index) + " after " +
           std::to_string(n.sm.applied));
    }
    CheckCommitted(n, e, "applied");
    n.sm.applied = e.index;
    if (e.type == EntryType::kConfChange) {
      ConfChange cc;
      if (!raft::DecodeConfChange(e.data, &cc).ok()) Fail("bad conf change");
      n.sm.conf = raft::ApplyConfChange(n.sm.conf, cc);
    } else if (e.type == EntryType::kNormal) {
      WriteOp w = DecodeWrite(e.data);
      n.sm.kv[w.key] = w.value;
    }
    auto it = n.writes.find(e.index);
    if (it != n.writes.end()) {
      PendingWrite pw = it->second;
      n.writes.erase(it);
      Client& c = clients_[pw.client];
      if (c.busy && c.op_id == pw.op_id) {
        if (e.term == pw.term && e.type == EntryType::kNormal &&
            DecodeWrite(e.data).op_id == pw.op_id) {
          history_[c.hist].ret = Clock();
          acked_.push_back({e.index, e.term, pw.op_id});
          ++result_.acked_writes;
        } else {
          // Overwritten: this proposal can never be applied anywhere.
          history_[c.hist].ret = kNeverReturned;
          dropped_.insert(c.hist);
        }
        c.busy = false;
        ScheduleClient(c.id);
      }
    }
  }

  void ServeReads(SimNode& n) {
    for (auto it = n.reads.begin(); it != n.reads.end();) {
      PendingRead& pr = it->second;
      if (!pr.index || n.sm.applied < *pr.index) {
        ++it;
        continue;
      }
      Client& c = clients_[pr.client];
      if (c.busy && c.op_id == pr.op_id) {
        auto kv = n.sm.kv.find(pr.key);
        history_[c.hist].value = kv == n.sm.kv.end() ? "" : kv->second;
        history_[c.hist].ret = Clock();
        ++result_.reads;
        c.busy = false;
        ScheduleClient(c.id);
      }
      it = n.reads.erase(it);
    }
  }

  // --- events ---------------------------------------------------------------

  void StepOnce() {
    auto it = events_.begin();
    now_ = it->first.first;
    Event e = std::move(it->second);
    events_.erase(it);
    switch (e.type) {
      case EvType::kDeliver: {
        SimNode& n = node(e.node);
        if (!n.up || !Connected(e.msg.from, e.msg.to)) break;
        if (e.msg.type == MessageType::kSnapshot) ReceiveChunk(n, e.msg);
        Status s = n.raft->Step(std::move(e.msg));
        if (!s.ok()) Fail("Step rejected a message: " + s.ToString());
        AfterStep();
        Drive(n);
        break;
      }
      case EvType::kTick: {
        SimNode& n = node(e.node);
        if (n.up) {
          n.raft->Tick();
          AfterStep();
          Drive(n);
        }
        Schedule(kTickPeriod, e);
        break;
      }
      case EvType::kPersist: {
        SimNode& n = node(e.node);
        if (n.up && n.incarnation == e.incarnation && n.persisting) Persisted(n);
        break;
      }
      case EvType::kClient:
        ClientOp(e.client);
        break;
      case EvType::kTimeout:
        ClientTimeout(e.client, e.op_id);
        break;
      case EvType::kFault:
        if (!healed_) {
          Fault();
          Schedule(rng_.Range(20, 200), e);
        }
        break;
      case EvType::kRestart: {
        SimNode& n = node(e.node);
        if (!n.up && n.incarnation == e.incarnation) Restart(n);
        break;
      }
    }
  }

  uint64_t Clock() { return ++clock_; }

  NodeId CurrentLeader() {
    NodeId best = 0;
    uint64_t term = 0;
    for (auto& [id, n] : nodes_) {
      if (n->up && n->raft->role() == Role::kLeader && n->raft->term() >= term) {
        best = id;
        term = n->raft->term();
      }
    }
    return best;
  }

  void ScheduleClient(int c) {
    if (stop_clients_) return;
    Event e;
    e.type = EvType::kClient;
    e.client = c;
    Schedule(rng_.Range(1, 40), e);
  }

  void ClientOp(int ci) {
    Client& c = clients_[ci];
    if (c.busy || stop_clients_) return;
    // Clients have stale views: often they talk to any node that believes
    // it leads (a deposed leader cut off by a partition included), which is
    // where stale reads would show.
    NodeId target = CurrentLeader();
    std::vector<NodeId> leaders;
    for (auto& [id, n] : nodes_) {
      if (n->up && n->raft->role() == Role::kLeader) leaders.push_back(id);
    }
    if (!leaders.empty() && rng_.Chance(0.5)) target = leaders[rng_.Uniform(leaders.size())];
    if (target == 0 || rng_.Chance(0.2)) target = rng_.Range(1, nodes_.size());
    SimNode& n = node(target);
    if (!n.up) {
      ScheduleClient(ci);
      return;
    }
    HistoryOp op;
    op.key = "k" + std::to_string(rng_.Uniform(3));
    op.write = rng_.Chance(0.5);
    uint64_t op_id = next_op_++;
    op.call = Clock();
    if (op.write) {
      op.value = "v" + std::to_string(op_id);
      auto idx = n.raft->Propose(EncodeWrite({op_id, op.key, op.value}));
      if (!idx.ok()) {
        ScheduleClient(ci);  // refused: never entered any log
        return;
      }
      n.writes[idx.value()] = PendingWrite{ci, op_id, n.raft->term()};
    } else {
      n.raft->ReadIndex("r" + std::to_string(op_id));
      n.reads["r" + std::to_string(op_id)] = PendingRead{ci, op_id, op.key, std::nullopt};
    }
    ++result_.client_ops;
    c.busy = true;
    c.op_id = op_id;
    c.hist = history_.size();
    history_.push_back(op);
    Event t;
    t.type = EvType::kTimeout;
    t.client = ci;
    t.op_id = op_id;
    Schedule(2000, t);
    AfterStep();
    Drive(n);
  }

  void ClientTimeout(int ci, uint64_t op_id) {
    Client& c = clients_[ci];
    if (!c.busy || c.op_id != op_id) return;
    HistoryOp& op = history_[c.hist];
    if (!op.write) dropped_.insert(c.hist);  // an unanswered read says nothing
    // An unanswered write stays with ret = kNeverReturned: it may or may
    // not have taken effect.
    c.busy = false;
    ScheduleClient(ci);
  }

  // --- faults ---------------------------------------------------------------

  void Crash(SimNode& n) {
    Log("crash " + std::to_string(n.id));
    n.up = false;
    ++n.incarnation;
    n.raft.reset();
    n.persisting = false;
    n.ready = Ready();  // unpersisted: lost
    ++result_.crashes;
    Event e;
    e.type = EvType::kRestart;
    e.node = n.id;
    e.incarnation = n.incarnation;
    Schedule(rng_.Range(50, 600), e);
  }

  void Restart(SimNode& n) {
    Log("restart " + std::to_string(n.id));
    n.up = true;
    StartRaft(n);
    AfterStep();
  }

  void Fault() {
    int total = static_cast<int>(nodes_.size());
    if (rng_.Chance(mix_.partition_rate)) {
      if (!side_.empty() && rng_.Chance(0.5)) {
        side_.clear();
        Log("heal partition");
      } else {
        for (int i = 1; i <= total; ++i) side_[i] = rng_.Uniform(2);
        Log("partition");
      }
    }
    if (rng_.Chance(mix_.one_way_rate)) {
      if (!cut_.empty() && rng_.Chance(0.5)) {
        cut_.clear();
      } else {
        NodeId a = rng_.Range(1, total), b = rng_.Range(1, total);
        if (a != b) cut_.insert({a, b});
      }
    }
    if (rng_.Chance(mix_.crash_rate)) {
      SimNode& n = node(rng_.Range(1, total));
      if (n.up) Crash(n);
    }
    NodeId l = CurrentLeader();
    if (l != 0 && rng_.Chance(mix_.conf_rate)) ChangeMembership(node(l));
    if (l != 0 && rng_.Chance(mix_.transfer_rate)) {
      NodeId t = rng_.Range(1, total);
      (void)node(l).raft->TransferLeader(t);
      Drive(node(l));
    }
    if (rng_.Chance(mix_.compact_rate)) {
      SimNode& n = node(rng_.Range(1, total));
      if (n.up) Compact(n);
    }
  }

  void ChangeMembership(SimNode& leader) {
    const ConfState& conf = leader.raft->conf();
    std::vector<NodeId> outside, learners;
    for (auto& [id, n] : nodes_) {
      if (!conf.Contains(id)) outside.push_back(id);
    }
    learners = conf.learners;
    ConfChange cc;
    uint64_t choice = rng_.Uniform(3);
    if (choice == 0 && !outside.empty()) {
      cc = {ConfChangeType::kAddLearner, outside[rng_.Uniform(outside.size())]};
    } else if (choice == 1 && !learners.empty()) {
      cc = {ConfChangeType::kAddVoter, learners[rng_.Uniform(learners.size())]};
    } else if (conf.voters.size() > 3 || (!learners.empty() && rng_.Chance(0.3))) {
      std::vector<NodeId> members = conf.voters;
      members.insert(members.end(), learners.begin(), learners.end());
      NodeId victim = members[rng_.Uniform(members.size())];
      if (conf.IsVoter(victim) && conf.voters.size() <= 3) return;
      cc = {ConfChangeType::kRemoveNode, victim};
    } else {
      return;
    }
    if (leader.raft->ProposeConfChange(cc).ok()) {
      Log("conf change proposed");
      ++result_.conf_changes;
      Drive(leader);
    }
  }

  void Compact(SimNode& n) {
    uint64_t applied = n.sm.applied;
    if (applied < n.storage.FirstIndex()) return;
    auto term = n.storage.Term(applied);
    if (!term.ok()) return;
    n.snapshot = SnapFile{SnapshotMeta{applied, term.value(), n.sm.conf}, n.sm.Serialize()};
    if (!n.storage.CreateSnapshot(applied, n.sm.conf).ok()) Fail("CreateSnapshot");
    uint64_t keep = rng_.Uniform(20);
    uint64_t upto = applied > keep ? applied - keep : 0;
    if (upto >= n.storage.FirstIndex()) {
      if (!n.storage.Compact(upto).ok()) Fail("Compact");
    }
  }

  // --- checkers -------------------------------------------------------------

  struct CommittedEntry {
    uint64_t term;
    uint64_t hash;
  };

  void CheckCommitted(SimNode& n, const Entry& e, const char* how) {
    uint64_t h = Hash(e.data) ^ static_cast<uint64_t>(e.type);
    auto [it, inserted] = committed_.emplace(e.index, CommittedEntry{e.term, h});
    if (!inserted && (it->second.term != e.term || it->second.hash != h)) {
      Fail(std::string("state machine safety: node ") + std::to_string(n.id) + " " + how +
           " index " + std::to_string(e.index) + " term " + std::to_string(e.term) + " but term " +
           std::to_string(it->second.term) + " was committed there");
    }
    max_committed_ = std::max(max_committed_, e.index);
  }

  void CheckLogMatching(SimNode& n, const std::vector<Entry>& ents) {
    for (const Entry& e : ents) {
      auto prev = n.storage.Term(e.index - 1);
      uint64_t prev_term = prev.ok() ? prev.value() : ~0ull;
      uint64_t h = Hash(e.data) ^ static_cast<uint64_t>(e.type);
      auto key = std::make_pair(e.index, e.term);
      auto [it, inserted] = log_entries_.emplace(key, std::make_pair(h, prev_term));
      if (inserted) continue;
      if (it->second.first != h) {
        Fail("log matching: two different entries at index " + std::to_string(e.index) + " term " +
             std::to_string(e.term));
      }
      if (prev_term != ~0ull && it->second.second != ~0ull && it->second.second != prev_term) {
        Fail("log matching: entries (" + std::to_string(e.index) + "," + std::to_string(e.term) +
             ") follow different terms");
      }
    }
  }

  void CheckSnapshotAgainstHistory(SimNode& n, const SnapshotMeta& meta) {
    auto it = committed_.find(meta.index);
    if (it != committed_.end() && it->second.term != meta.term) {
      Fail("snapshot at " + std::to_string(meta.index) + " has term " + std::to_string(meta.term) +
           " but a different entry was committed");
    }
  }

  // Runs after every step: the per-step invariants.
  void AfterStep() {
    for (auto& [id, np] : nodes_) {
      SimNode& n = *np;
      if (!n.up) continue;
      raft::Raft& r = *n.raft;
      // Monotonic commit (per incarnation), and every newly committed entry
      // must agree with what anyone else committed there.
      uint64_t commit = r.commit_index();
      if (commit < n.seen_commit) {
        Fail("commit index of node " + std::to_string(id) + " went back from " +
             std::to_string(n.seen_commit) + " to " + std::to_string(commit));
      }
      if (commit > n.seen_commit) {
        uint64_t lo = std::max(n.seen_commit + 1, r.first_index());
        std::vector<Entry> ents;
        if (lo <= commit) {
          if (!r.EntriesForTest(lo, commit + 1, &ents)) Fail("committed entries missing");
          for (const Entry& e : ents) CheckCommitted(n, e, "committed");
        }
        n.seen_commit = commit;
      }
      if (r.role() == Role::kLeader) {
        // Election safety (paper §5.2): one leader per term.
        auto [it, inserted] = leaders_.emplace(r.term(), id);
        if (!inserted && it->second != id) {
          Fail("election safety: nodes " + std::to_string(it->second) + " and " +
               std::to_string(id) + " both lead term " + std::to_string(r.term()));
        }
        if (n.seen_role != Role::kLeader || n.seen_term != r.term()) {
          ++result_.elections;
          CheckLeaderCompleteness(n);
        }
      }
      n.seen_role = r.role();
      n.seen_term = r.term();
    }
  }

  // Paper §5.4: a leader's log holds every entry committed before its term.
  void CheckLeaderCompleteness(SimNode& n) {
    raft::Raft& r = *n.raft;
    if (r.last_index() < max_committed_) {
      Fail("leader completeness: leader " + std::to_string(n.id) + " of term " +
           std::to_string(r.term()) + " has last index " + std::to_string(r.last_index()) +
           " < committed " + std::to_string(max_committed_));
    }
    uint64_t lo = r.first_index();
    for (auto it = committed_.lower_bound(lo); it != committed_.end(); ++it) {
      if (r.TermAt(it->first) != it->second.term) {
        Fail("leader completeness: leader " + std::to_string(n.id) + " of term " +
             std::to_string(r.term()) + " lacks committed entry " + std::to_string(it->first) +
             " (term " + std::to_string(it->second.term) + ")");
      }
    }
  }

  void Heal() {
    healed_ = true;
    side_.clear();
    cut_.clear();
    for (auto& [id, n] : nodes_) {
      if (!n->up) Restart(*n);
    }
    // Let the cluster settle, then prove it is live: a final write by a
    // leader must be applied everywhere in the configuration.
    RunFor(3000);
    stop_clients_ = true;
    RunFor(2500);  // outstanding client operations finish or time out
    // Liveness: a write proposed by a leader must end up applied by every
    // voter. Leadership may still change (e.g. a removed node that never
    // learnt of its removal keeps campaigning when pre-vote is off, thesis
    // §4.2.3), so a few attempts are allowed.
    bool done = false;
    NodeId l = 0;
    for (int attempt = 0; attempt < 20 && !done; ++attempt) {
      l = CurrentLeader();
      if (l == 0) {
        RunFor(300);
        continue;
      }
      SimNode& ln = node(l);
      uint64_t term = ln.raft->term();
      auto idx = ln.raft->Propose(EncodeWrite({0, "final", std::to_string(attempt)}));
      if (!idx.ok()) {
        RunFor(300);
        continue;
      }
      Drive(ln);
      for (int wait = 0; wait < 10 && !done; ++wait) {
        RunFor(200);
        auto it = committed_.find(idx.value());
        if (it == committed_.end() || it->second.term != term) continue;
        done = true;
        for (auto& [id, n] : nodes_) {
          if (n->up && n->raft->conf().IsVoter(id) && CurrentLeader() != 0 &&
              node(CurrentLeader()).raft->conf().IsVoter(id) && n->sm.applied < idx.value()) {
            done = false;
          }
        }
      }
    }
    if (!done)
      Fail("liveness: no write committed and applied everywhere after healing;" + DescribeNodes());
    l = CurrentLeader();
    if (l == 0) return;
    SimNode& ln = node(l);
    // Every member that applied the same index has the same state.
    for (NodeId v : ln.raft->conf().voters) {
      if (node(v).sm.applied == ln.sm.applied && node(v).sm.kv != ln.sm.kv) {
        Fail("replicas diverged: node " + std::to_string(v) + " vs leader");
      }
    }
  }

  std::string DescribeNodes() {
    std::ostringstream o;
    for (auto& [id, n] : nodes_) {
      o << "\n    node " << id;
      if (!n->up) {
        o << " down";
        continue;
      }
      raft::Raft& r = *n->raft;
      o << " " << raft::RoleName(r.role()) << " term=" << r.term() << " lead=" << r.leader()
        << " vote=" << r.vote() << " last=" << r.last_index() << "/t" << r.TermAt(r.last_index())
        << " commit=" << r.commit_index() << " applied=" << n->sm.applied << "/"
        << r.applied_index() << (n->persisting ? " persisting" : "") << " first=" << r.first_index()
        << " voters=";
      for (NodeId v : r.conf().voters) o << v << ",";
      o << " learners=";
      for (NodeId v : r.conf().learners) o << v << ",";
    }
    return o.str();
  }

  void RunFor(uint64_t duration) {
    uint64_t until = now_ + duration;
    while (!events_.empty() && events_.begin()->first.first <= until) StepOnce();
    now_ = until;
  }

  void FinalChecks() {
    result_.committed = max_committed_;
    // Every acknowledged write is in the committed log.
    for (const auto& a : acked_) {
      auto it = committed_.find(a.index);
      if (it == committed_.end() || it->second.term != a.term) {
        Fail("acknowledged write " + std::to_string(a.op_id) + " at index " +
             std::to_string(a.index) + " is not in the committed log");
      }
    }
    std::vector<HistoryOp> hist;
    for (size_t i = 0; i < history_.size(); ++i) {
      if (!dropped_.count(i)) hist.push_back(history_[i]);
    }
    LinearizabilityResult lin = CheckLinearizable(hist);
    result_.linearizability_inconclusive = lin.inconclusive;
    if (!lin.ok) Fail("history is not linearizable for key " + lin.key);
  }

  SimOptions opt_;
  Rng rng_;
  Mix mix_;
  SimResult result_;
  uint64_t now_ = 0;
  uint64_t seq_ = 0;
  uint64_t clock_ = 0;
  std::map<std::pair<uint64_t, uint64_t>, Event> events_;
  std::map<NodeId, std::unique_ptr<SimNode>> nodes_;
  std::vector<Client> clients_;
  std::vector<HistoryOp> history_;
  std::set<size_t> dropped_;
  struct Acked {
    uint64_t index, term, op_id;
  };
  std::vector<Acked> acked_;
  uint64_t next_op_ = 1;
  bool healed_ = false;
  bool stop_clients_ = false;
  std::map<NodeId, int> side_;
  std::set<std::pair<NodeId, NodeId>> cut_;
  std::map<uint64_t, CommittedEntry> committed_;
  uint64_t max_committed_ = 0;
  std::map<std::pair<uint64_t, uint64_t>, std::pair<uint64_t, uint64_t>> log_entries_;
  std::map<uint64_t, NodeId> leaders_;
};

}  // namespace

SimResult RunSimulation(const SimOptions& options) {
  Simulation sim(options);
  return sim.Run();
}

}  // namespace flin::sim
