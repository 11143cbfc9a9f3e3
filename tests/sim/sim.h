// Deterministic simulation of a Raft cluster (TigerBeetle VOPR /
// FoundationDB style): several flin::raft cores in one thread, a virtual
// clock, a network that loses, duplicates, delays and reorders messages and
// partitions nodes (both ways or one way), crashes that lose whatever the
// driver had not persisted, membership changes, leadership transfers, log
// compaction and chunked snapshot transfer, and clients writing and reading
// a key-value register all the while. Every choice comes from one seed, so a
// failure replays exactly from it.
//
// After every step the checkers verify election safety, log matching,
// leader completeness, state machine safety and monotonic commit; at the end
// the client history must be linearizable and every acknowledged write
// present. Single-threaded.
#pragma once

#include <cstdint>
#include <string>

namespace flin::sim {

struct SimOptions {
  uint64_t seed = 1;
  // Events processed while faults are injected; a healing phase follows.
  int steps = 20000;
  // Breaks the commit rule of paper §5.4.2 in every node (test only).
  bool unsafe_commit = false;
  bool verbose = false;
  // "random": every seed draws its own fault mix. "storm": frequent
  // partitions, crashes and leader changes with tiny messages, the mix that
  // makes Figure 8 style histories likely.
  std::string mix = "random";
};

struct SimResult {
  bool ok = true;
  std::string failure;  // what was violated, when ok is false
  std::string mix;      // the fault mix the seed chose
  uint64_t committed = 0;
  uint64_t client_ops = 0;
  uint64_t acked_writes = 0;
  uint64_t reads = 0;
  uint64_t elections = 0;
  uint64_t snapshots_installed = 0;
  uint64_t conf_changes = 0;
  uint64_t crashes = 0;
  bool linearizability_inconclusive = false;
};

SimResult RunSimulation(const SimOptions& options);

}  // namespace flin::sim
