// flin's cluster commands: `cluster status|add|remove|transfer-leader` and
// `health [--wait]`, plus the pure pieces they are built from (parsing the
// CLUSTER.STATUS reply, formatting it for people, scripts and JSON, parsing
// durations) so those are unit-tested without a server.
//
// The daemon side of the contract (reply shapes, -TRYAGAIN) is described in
// flind(8) and the cluster interface notes; this file only reads it.
//
// Thread-safety: pure functions; the commands run on the CLI's one thread.
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "net/client.h"

namespace flin::cli {

class Session;

// One member row of CLUSTER.STATUS. match/lag are -1 when unknown (only the
// leader tracks them).
struct ClusterMember {
  uint64_t id = 0;
  std::string peer_addr;
  std::string kind;  // "voter" | "learner"
  int64_t match = -1;
  int64_t lag = -1;
  bool self = false;
  bool leader = false;
};

struct ClusterStatus {
  std::string mode;  // "standalone" | "cluster"
  std::string cluster_id;
  uint64_t node_id = 0;
  std::string role;        // leader, follower, candidate, precandidate, learner, standalone
  uint64_t leader_id = 0;  // 0: unknown
  int64_t term = 0;
  int64_t commit_index = 0;
  int64_t applied_index = 0;
  int64_t last_index = 0;
  std::vector<ClusterMember> members;

  bool standalone() const { return mode == "standalone"; }
};

// Parses CLUSTER.STATUS's flat field/value array. Unknown fields are
// ignored (newer servers may add some); missing ones keep their defaults,
// except `mode`, which is required. A reply of another shape is
// Status::Protocol.
Result<ClusterStatus> ParseClusterStatus(const client::Reply& reply);

// For people: a header (cluster id, this node and its role, leader, term,
// commit/applied/last index) and a member table; standalone servers get one
// line saying so. No trailing newline.
std::string FormatClusterStatusHuman(const ClusterStatus& st);
// For scripts: "field value" lines in the reply's order, then one line per
// member: "member ID PEER_ADDR KIND ROLE MATCH LAG SELF" (empty values as
// "-", SELF 1 or 0). No trailing newline.
std::string FormatClusterStatusPlain(const ClusterStatus& st);
// {"mode":..., ..., "members":[{"id":1, "peer_addr":..., "kind":...,
// "role":"leader"|"follower", "match":N|null, "lag":N|null, "self":bool,
// "leader":bool}]}; unknown (-1) match/lag become null.
nlohmann::json ClusterStatusToJson(const ClusterStatus& st);

// "30s", "500ms", "1.5s", "2m", "1h"; a bare number is seconds. Zero is
// allowed (callers decide what it means); negative, empty or unknown units
// are InvalidArgument.
Result<std::chrono::milliseconds> ParseDuration(std::string_view text);

// What `cluster add` prints: the flind command line that starts the new
// node. `join` is the member's client address (HOST:PORT).
std::string FlindStartCommand(uint64_t id, std::string_view join, std::string_view peer_addr);

// True for a server error that means "not now" (no leader, no quorum,
// catching up): -TRYAGAIN.
bool IsTryAgain(std::string_view error_text);

// Registers `cluster` (with its subcommands) and `health` on app.
// set_action stores the chosen command's body (see AppState::action).
void AddClusterCommands(CLI::App& app,
                        const std::function<void(std::function<int(Session&)>)>& set_action);

}  // namespace flin::cli
