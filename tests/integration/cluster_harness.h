// Cluster: an N-node flind cluster on loopback for fault tests.
//
// Every node gets its own temp data dir, client port, unix socket and peer
// port; all share one secret file. With `proxies` on, each node's inbound
// peer traffic runs through its own TcpProxy link: the node listens on its
// real --peer-listen port and advertises the proxy's address, which is what
// every --initial-cluster list (identical on all nodes, as flind derives the
// cluster id from it) and CLUSTER.ADD name. flind's peer transport sends i's
// messages to j only on connections i dialed, and every connection opens
// with a HELLO frame naming the dialer; the proxy tags connections by that
// id. So "i -> j" is the set of connections into j's proxy tagged i:
// cutting it is a one-way partition i -/-> j, cutting both directions of a
// pair a symmetric one, and Isolate(i) cuts everything into and out of i.
//
// Node ids are flind's node ids (1..N for the initial members); every
// method takes ids, not indexes.
//
// Thread-safety: StatusOf(), Connect(), Command() and the partition controls
// may be called from any thread; starting, stopping, adding and removing
// nodes belong to the test thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/status.h"
#include "net/client.h"
#include "tests/integration/harness.h"
#include "tests/integration/tcp_proxy.h"

namespace flin::test {

struct ClusterOptions {
  int nodes = 3;
  bool proxies = true;  // per-pair proxies between the initial members
  int tick_ms = 50;     // election timeout is 10-20 ticks
  int request_timeout_ms = 1000;
  int snapshot_entries = 0;             // 0: flind's default
  std::vector<std::string> extra_args;  // given to every node
};

// One parsed CLUSTER.STATUS member entry.
struct MemberStatus {
  uint64_t id = 0;
  std::string peer_addr;
  std::string kind;  // "voter" | "learner"
  int64_t match = -1;
  int64_t lag = -1;
  bool self = false;
  bool leader = false;
};

// A parsed CLUSTER.STATUS reply.
struct NodeStatus {
  std::string mode;
  std::string cluster_id;
  uint64_t node_id = 0;
  std::string role;
  uint64_t leader_id = 0;
  uint64_t term = 0;
  uint64_t commit_index = 0;
  uint64_t applied_index = 0;
  uint64_t last_index = 0;
  std::vector<MemberStatus> members;

  const MemberStatus* member(uint64_t id) const;
  std::string ToString() const;  // one line, for failure messages
};

// Parses the flat field/value array of CLUSTER.STATUS (fields in any order;
// unknown fields ignored). Errors: Protocol, naming what is missing.
Result<NodeStatus> ParseClusterStatus(const client::Reply& reply);

class Cluster {
 public:
  explicit Cluster(ClusterOptions opts = {});
  ~Cluster();  // terminates every node (continuing stopped ones first)
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  // Starts the initial members (static formation with --initial-cluster)
  // and waits until each answers PING. False with the logs in *why.
  bool Start(std::string* why = nullptr);

  const ClusterOptions& options() const { return opts_; }
  // Ids of the nodes this harness manages (running or not), ascending.
  std::vector<uint64_t> ids() const;
  // Ids of nodes whose process runs and is not SIGSTOPped.
  std::vector<uint64_t> up_ids() const;
  Flind& flind(uint64_t id);
  std::string secret_path() const { return secret_path_; }
  std::string client_addr(uint64_t id) const;  // 127.0.0.1:PORT
  uint16_t peer_port(uint64_t id) const;

  // CLUSTER.STATUS of one node (a fresh connection with short timeouts).
  Result<NodeStatus> StatusOf(uint64_t id) const;
  // Polls the nodes in `among` (default: up_ids()) until all report the
  // same leader L, L is among them and says it is the leader. Returns L,
  // or 0 when that did not happen within `deadline` or one of them died.
  uint64_t WaitLeader(std::chrono::milliseconds deadline = std::chrono::seconds(30),
                      std::vector<uint64_t> among = {}) const;
  // Waits until the nodes in `among` (default: up_ids()) agree on a leader
  // whose commit index equals its last index, and every one of them has
  // applied exactly that index (quiescent and converged: call it after the
  // writers stopped). False at once when one of them dies.
  bool WaitConverged(std::chrono::milliseconds deadline = std::chrono::seconds(60),
                     std::vector<uint64_t> among = {}) const;

  // Process control. Restart() starts a killed/terminated node again on the
  // same data dir and ports.
  void Kill9(uint64_t id);
  void Stop(uint64_t id);  // SIGSTOP
  void Cont(uint64_t id);  // SIGCONT
  int Terminate(uint64_t id);
  bool Restart(uint64_t id, std::string* why = nullptr);
  void Wipe(uint64_t id);  // removes the data dir (node must not run)
  // The secret file the node uses from its next (re)start on.
  void SetSecretFile(uint64_t id, const std::string& path);
  bool stopped(uint64_t id) const;
  // True when a node in `ids` that should be running has exited (it is
  // reaped; flind(id).last_exit_status() says how).
  bool AnyDied(const std::vector<uint64_t>& ids) const;

  // A client connection to the node's unix socket; nullptr when it fails.
  std::unique_ptr<client::Connection> Connect(uint64_t id, client::ConnectOptions opts = {}) const;
  // Runs one command on the node (fresh connection); Unavailable when it
  // cannot connect.
  Result<client::Reply> Command(uint64_t id, const std::vector<std::string_view>& args) const;

  // Partitions (require options().proxies).
  TcpProxy::Link* inbound(uint64_t id);  // the proxy in front of id's peer port
  // Closes and refuses from -> to connections.
  void CutLink(uint64_t from, uint64_t to);
  // Swallows from -> to bytes (messages and handshakes), keeps the connection.
  void CutLinkOneWay(uint64_t from, uint64_t to);
  // Both directions between a and b.
  void Partition(uint64_t a, uint64_t b);
  // From and to everyone.
  void Isolate(uint64_t id);
  // Heals every cut. Connections that lost bytes to a one-way cut are
  // closed first (see the comment in the .cc).
  void HealAll();

  // Membership. AddNode: CLUSTER.ADD <advertised peer addr> on the leader, then starts
  // a new flind with --node-id <id> --join <leader client addr>. With
  // `secret_file` set, the new node uses that secret instead of the
  // cluster's; with wait_ready false it is not required to answer PING.
  struct AddOptions {
    std::string secret_file;
    bool wait_ready = true;
  };
  Result<uint64_t> AddNode(const AddOptions& add);
  Result<uint64_t> AddNode() { return AddNode(AddOptions{}); }
  // CLUSTER.REMOVE <id> on the leader; the process keeps running (Terminate
  // it when the test wants).
  Status RemoveNode(uint64_t id);

  // The last `lines` lines of every node's log, for failure messages.
  std::string Logs(size_t lines = 40) const;

 private:
  struct Node {
    uint64_t id = 0;
    uint16_t peer_port = 0;
    TcpProxy::Link* inbound = nullptr;  // with proxies
    uint64_t dropped_at_heal = 0;
    std::unique_ptr<Flind> flind;
    // Atomic: worker threads ask up_ids() while the test thread stops and
    // continues nodes.
    std::atomic<bool> stopped{false};
  };
  Node& node(uint64_t id);
  const Node& node(uint64_t id) const;
  std::vector<std::string> CommonArgs(const Node& n) const;
  // Picks the node's peer port and, with proxies, its inbound link.
  Status SetUpPeer(Node* n);
  std::string advertised(const Node& n) const;

  ClusterOptions opts_;
  TempDir root_;
  std::string secret_path_;
  std::unique_ptr<TcpProxy> proxy_;
  // Nodes are never erased, so a Node& stays valid; the mutex guards the
  // map itself (AddNode may run while client threads look nodes up).
  mutable std::mutex nodes_mu_;
  std::map<uint64_t, std::unique_ptr<Node>> nodes_;
};

}  // namespace flin::test
