// raft_bench: throughput of the Raft core alone. A 3-node cluster in one
// thread with MemoryStorage and an in-memory network, driven as fast as
// possible by a pipelined driver: each cycle the leader receives some
// proposal calls, then every node handles one Ready (persist, send, apply,
// Advance) and all queued messages are delivered. Prints one line per
// workload: committed entries/s (counted when the leader hands them out to
// apply) and messages per committed entry.
//
//   raft_bench [--entries N] [--value-bytes B]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "raft/raft.h"

namespace {

using flin::raft::ConfState;
using flin::raft::Entry;
using flin::raft::EntryType;
using flin::raft::MemoryStorage;
using flin::raft::Message;
using flin::raft::NodeId;
using flin::raft::Raft;
using flin::raft::Ready;
using flin::raft::Role;

struct Node {
  std::unique_ptr<MemoryStorage> storage;
  std::unique_ptr<Raft> raft;
  uint64_t applied = 1;
  ConfState conf;
};

struct Cluster {
  std::vector<Node> nodes;
  std::deque<Message> wire;
  uint64_t messages = 0;
  uint64_t leader_committed = 0;  // normal entries the leader handed out

  Cluster() {
    ConfState conf{{1, 2, 3}, {}};
    nodes.resize(3);
    for (int i = 0; i < 3; ++i) {
      Node& n = nodes[i];
      n.storage = std::make_unique<MemoryStorage>();
      if (!n.storage->Bootstrap(conf).ok()) abort();
      n.conf = conf;
      flin::raft::Config c;
      c.id = i + 1;
      c.storage = n.storage.get();
      c.applied = 1;
      c.random_seed = 77 + i;
      c.max_inflight_msgs = 256;
      c.max_size_per_msg = 1 << 20;
      auto r = Raft::Create(c);
      if (!r.ok()) abort();
      n.raft = std::move(r.value());
    }
  }

  Raft& raft(NodeId id) { return *nodes[id - 1].raft; }

  bool HandleReady(Node& n, bool is_leader) {
    if (!n.raft->HasReady()) return false;
    Ready rd = n.raft->GetReady();
    if (rd.snapshot) abort();
    if (!rd.entries.empty() && !n.storage->Append(&rd.entries).ok()) abort();
    if (rd.hard_state) n.storage->SetHardState(*rd.hard_state);
    for (Message& m : rd.messages) wire.push_back(std::move(m));
    for (const Entry& e : rd.committed_entries) {
      if (is_leader && e.type == EntryType::kNormal) ++leader_committed;
    }
    if (!rd.committed_entries.empty()) {
      n.applied = rd.committed_entries.back().index;
      // Keep memory flat: compact well behind the applied index.
      if (n.applied - n.storage->FirstIndex() > 200000) {
        uint64_t upto = n.applied - 100000;
        if (!n.storage->CreateSnapshot(upto, n.conf).ok()) abort();
        if (!n.storage->Compact(upto).ok()) abort();
      }
    }
    n.raft->Advance();
    return true;
  }

  void Deliver() {
    while (!wire.empty()) {
      Message m = std::move(wire.front());
      wire.pop_front();
      ++messages;
      NodeId to = m.to;
      if (!raft(to).Step(std::move(m)).ok()) abort();
    }
  }

  // One driver cycle: every node handles one Ready, then the network
  // delivers everything in flight.
  void Cycle(NodeId leader) {
    for (size_t i = 0; i < nodes.size(); ++i) {
      HandleReady(nodes[i], i + 1 == leader);
    }
    Deliver();
  }

  NodeId ElectLeader() {
    for (int t = 0; t < 1000; ++t) {
      for (Node& n : nodes) n.raft->Tick();
      for (int k = 0; k < 5; ++k) Cycle(0);
      for (size_t i = 0; i < nodes.size(); ++i) {
        if (nodes[i].raft->role() == Role::kLeader) return i + 1;
      }
    }
    abort();
  }
};

double CpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void Run(const char* name, uint64_t total, size_t per_call, size_t calls_per_cycle,
         size_t value_bytes) {
  Cluster c;
  NodeId leader = c.ElectLeader();
  for (int k = 0; k < 10; ++k) c.Cycle(leader);
  Raft& l = c.raft(leader);
  uint64_t base_msgs = c.messages;
  uint64_t base_committed = c.leader_committed;
  std::string value(value_bytes, 'v');
  std::vector<std::string> batch(per_call);
  uint64_t proposed = 0;
  auto start = std::chrono::steady_clock::now();
  double cpu_start = CpuSeconds();
  while (c.leader_committed - base_committed < total) {
    if (proposed < total) {
      for (size_t k = 0; k < calls_per_cycle; ++k) {
        if (per_call == 1) {
          if (!l.Propose(value).ok()) abort();
        } else {
          for (std::string& s : batch) s = value;
          if (!l.ProposeBatch(batch).ok()) abort();
        }
        proposed += per_call;
      }
    }
    c.Cycle(leader);
  }
  double cpu = CpuSeconds() - cpu_start;
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  uint64_t committed = c.leader_committed - base_committed;
  uint64_t msgs = c.messages - base_msgs;
  // The rate is per CPU-second of this (single) thread, so a busy shared
  // machine does not distort it; wall-clock time is shown alongside.
  printf(
      "%-44s : %9.0f entries/s committed; %.4f messages/entry; %lu entries, %.2f s cpu, "
      "%.2f s wall\n",
      name, committed / cpu, static_cast<double>(msgs) / committed, committed, cpu, secs);
  fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t entries = 2'000'000;
  size_t value_bytes = 64;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--entries" && i + 1 < argc) {
      entries = strtoull(argv[++i], nullptr, 10);
    } else if (a == "--value-bytes" && i + 1 < argc) {
      value_bytes = strtoull(argv[++i], nullptr, 10);
    } else {
      fprintf(stderr, "usage: %s [--entries N] [--value-bytes B]\n", argv[0]);
      return 2;
    }
  }
  printf("raft_bench: 3 nodes, one thread, MemoryStorage, %zu-byte entries\n", value_bytes);
  Run("propose1   (1 entry/call, 1 call/cycle)", entries / 10, 1, 1, value_bytes);
  Run("propose1   (1 entry/call, 64 calls/cycle)", entries, 1, 64, value_bytes);
  Run("propose100 (100 entries/call, 1 call/cycle)", entries, 100, 1, value_bytes);
  Run("propose100 (100 entries/call, 8 calls/cycle)", entries, 100, 8, value_bytes);
  return 0;
}
