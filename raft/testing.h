// A tiny synchronous in-memory cluster for the core's unit tests: a driver
// per node that follows raft/README.md (persist, send, apply, Advance) over
// MemoryStorage, and a network with isolate/drop/recover, in the spirit of
// etcd raft's test network. Header-only; single-threaded; tests only.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "base/check.h"
#include "raft/codec.h"
#include "raft/raft.h"

namespace flin::raft::testing {

struct TestNode {
  NodeId id = kNoNode;
  std::unique_ptr<MemoryStorage> storage;
  std::unique_ptr<Raft> raft;
  Config config;
  std::vector<Entry> applied;  // every committed entry applied, in order
  uint64_t applied_index = 0;
  ConfState applied_conf;
  std::vector<ReadState> reads;
  int snapshots_installed = 0;
};

class TestCluster {
 public:
  // Bootstraps `voters` (ids 1..voters) plus `spares` empty nodes that can
  // be added later. `tweak` adjusts every node's Config.
  explicit TestCluster(int voters, int spares = 0, void (*tweak)(Config*) = nullptr) {
    ConfState conf;
    for (int i = 1; i <= voters; ++i) conf.voters.push_back(i);
    for (int i = 1; i <= voters + spares; ++i) {
      auto n = std::make_unique<TestNode>();
      n->id = i;
      n->storage = std::make_unique<MemoryStorage>();
      if (i <= voters) {
        FLIN_CHECK(n->storage->Bootstrap(conf).ok());
        n->applied_index = 1;
        n->applied_conf = conf;
      }
      n->config.id = i;
      n->config.storage = n->storage.get();
      n->config.random_seed = 1000 + i;
      if (tweak != nullptr) tweak(&n->config);
      nodes_[i] = std::move(n);
      Restart(i);
    }
  }

  TestNode& node(NodeId id) { return *nodes_.at(id); }
  Raft& raft(NodeId id) { return *nodes_.at(id)->raft; }

  // Recreates the Raft of `id` from its storage (a crash that lost nothing
  // unpersisted, since the driver persists synchronously).
  void Restart(NodeId id) {
    TestNode& n = node(id);
    n.storage->SetConfState(n.applied_conf);
    n.config.applied = n.applied_index;
    auto r = Raft::Create(n.config);
    FLIN_CHECK(r.ok()) << r.status().ToString();
    n.raft = std::move(r.value());
  }

  // Queues a message for delivery by the next Pump.
  void Send(Message m) { queue_.push_back(std::move(m)); }

  void Isolate(NodeId id) { isolated_.insert(id); }
  void Cut(NodeId from, NodeId to) { cut_.insert({from, to}); }
  void Recover() {
    isolated_.clear();
    cut_.clear();
  }
  bool Connected(NodeId from, NodeId to) const {
    return !isolated_.count(from) && !isolated_.count(to) && !cut_.count({from, to});
  }

  // Handles one Ready of one node like a synchronous driver.
  bool HandleReady(NodeId id) {
    TestNode& n = node(id);
    if (!n.raft->HasReady()) return false;
    Ready rd = n.raft->GetReady();
    if (rd.snapshot) {
      FLIN_CHECK(n.storage->ApplySnapshot(*rd.snapshot).ok());
      n.applied_index = rd.snapshot->index;
      n.applied_conf = rd.snapshot->conf;
      ++n.snapshots_installed;
    }
    FLIN_CHECK(n.storage->Append(&rd.entries).ok());
    if (rd.hard_state) n.storage->SetHardState(*rd.hard_state);
    for (Message& m : rd.messages) queue_.push_back(std::move(m));
    for (const SnapshotSend& s : rd.snapshot_sends) {
      // Stream a two-chunk "file"; the follower's driver passes each chunk
      // to Step and marks the last one only when it holds the whole file.
      bool ok = Connected(id, s.to);
      for (int chunk = 0; chunk < 2; ++chunk) {
        Message m;
        m.type = MessageType::kSnapshot;
        m.from = id;
        m.to = s.to;
        m.term = s.term;
        m.snapshot = s.meta;
        m.snapshot_offset = chunk * 4;
        m.snapshot_data = "data";
        m.snapshot_last = chunk == 1;
        queue_.push_back(std::move(m));
      }
      n.raft->ReportSnapshot(s.to, ok);
    }
    for (Entry& e : rd.committed_entries) {
      FLIN_CHECK(e.index == n.applied_index + 1)
          << "node " << id << " applies " << e.index << " after " << n.applied_index;
      n.applied_index = e.index;
      if (e.type == EntryType::kConfChange) {
        ConfChange cc;
        FLIN_CHECK(DecodeConfChange(e.data, &cc).ok());
        n.applied_conf = ApplyConfChange(n.applied_conf, cc);
      }
      n.applied.push_back(std::move(e));
    }
    n.storage->SetConfState(n.applied_conf);
    for (ReadState& rs : rd.read_states) n.reads.push_back(std::move(rs));
    n.raft->Advance();
    ++readies_;
    return true;
  }

  // Runs Readies and delivers messages until nothing moves.
  void Pump(int max_rounds = 10000) {
    for (int round = 0; round < max_rounds; ++round) {
      bool any = false;
      for (auto& [id, n] : nodes_) {
        while (HandleReady(id)) any = true;
      }
      std::deque<Message> q;
      q.swap(queue_);
      for (Message& m : q) {
        any = true;
        ++delivered_;
        if (!Connected(m.from, m.to)) continue;
        if (filter_ && !filter_(m)) continue;
        FLIN_CHECK(node(m.to).raft->Step(std::move(m)).ok());
      }
      if (!any) return;
    }
    FLIN_CHECK(false) << "cluster did not quiesce";
  }

  void TickAll(int ticks = 1) {
    for (int t = 0; t < ticks; ++t) {
      for (auto& [id, n] : nodes_) n->raft->Tick();
      Pump();
    }
  }

  // Makes `id` the leader: waits for a normal election (boot-time leases
  // make an immediate forced campaign impossible), then transfers
  // leadership to `id` if someone else won.
  void Elect(NodeId id) {
    NodeId l = TickUntilLeader();
    FLIN_CHECK(l != kNoNode) << "no leader elected";
    if (l == id) return;
    FLIN_CHECK(raft(l).TransferLeader(id).ok());
    Pump();
    for (int t = 0; t < 100 && Leader() != id; ++t) TickAll();
    FLIN_CHECK(Leader() == id) << "transfer to " << id << " failed";
  }

  NodeId Leader() {
    NodeId leader = kNoNode;
    uint64_t term = 0;
    for (auto& [id, n] : nodes_) {
      if (n->raft->role() == Role::kLeader && n->raft->term() >= term) {
        leader = id;
        term = n->raft->term();
      }
    }
    return leader;
  }

  // Ticks everyone until some node is leader and every connected node
  // agrees on it; returns it (kNoNode after max_ticks).
  NodeId TickUntilLeader(int max_ticks = 500) {
    for (int t = 0; t < max_ticks; ++t) {
      TickAll();
      NodeId l = Leader();
      if (l != kNoNode && !isolated_.count(l)) return l;
    }
    return kNoNode;
  }

  void SetFilter(std::function<bool(Message&)> f) { filter_ = std::move(f); }
  std::vector<NodeId> ids() const {
    std::vector<NodeId> out;
    for (auto& [id, n] : nodes_) out.push_back(id);
    return out;
  }
  uint64_t delivered() const { return delivered_; }

 private:
  std::map<NodeId, std::unique_ptr<TestNode>> nodes_;
  std::deque<Message> queue_;
  std::set<NodeId> isolated_;
  std::set<std::pair<NodeId, NodeId>> cut_;
  std::function<bool(Message&)> filter_;
  uint64_t delivered_ = 0;
  uint64_t readies_ = 0;
};

}  // namespace flin::raft::testing
