// flin's cluster commands against a real 3-node flind cluster on loopback
// (static formation with --initial-cluster, a shared secret file, unique
// ports and temp dirs per test): cluster status in every output mode,
// transfer-leader, add (starting the new node with the command flin
// prints), remove, health and health --wait across a lost quorum, and
// --consistency stale reads on a node cut off from its quorum.
//
// Everything the test learns about the cluster it learns through flin
// itself (cluster status --json), so the CLI is what is under test.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/harness.h"

namespace flin::test {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

std::vector<std::string> SplitWords(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::string> words;
  for (std::string w; in >> w;) words.push_back(w);
  return words;
}

std::vector<std::string> Lines(const std::string& s) {
  std::vector<std::string> lines;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  return lines;
}

class ClusterCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    secret_ = dir_.path() + "/secret";
    std::ofstream(secret_) << "cli-cluster-test-secret\n";
    ::chmod(secret_.c_str(), 0600);
    std::string initial;
    for (uint64_t id = 1; id <= 3; ++id) {
      peer_ports_[id] = FreePort();
      if (!initial.empty()) initial += ",";
      initial += std::to_string(id) + "=" + PeerAddr(id);
    }
    for (uint64_t id = 1; id <= 3; ++id) {
      Flind::Options o;
      o.extra_args = {"--node-id",  std::to_string(id),  "--peer-listen",
                      PeerAddr(id), "--initial-cluster", initial};
      AddCommonArgs(&o.extra_args);
      nodes_[id] = std::make_unique<Flind>(o);
    }
    for (auto& [id, node] : nodes_) {
      std::string why;
      ASSERT_TRUE(node->Start(&why)) << "node " << id << ": " << why;
    }
  }

  void TearDown() override {
    if (HasFailure()) {
      for (auto& [id, node] : nodes_) {
        std::string log = node->log();
        if (log.size() > 4000) log = log.substr(log.size() - 4000);
        std::cerr << "---- node " << id << " log (tail) ----\n" << log << "\n";
      }
    }
  }

  // Flags every node of this cluster gets.
  void AddCommonArgs(std::vector<std::string>* args) const {
    args->insert(args->end(), {"--cluster-secret-file", secret_, "--tick-ms", "50",
                               "--request-timeout-ms", "2000"});
  }

  std::string PeerAddr(uint64_t id) const {
    return "127.0.0.1:" + std::to_string(peer_ports_.at(id));
  }
  std::string Addr(uint64_t id) const { return nodes_.at(id)->tcp_addr(); }

  // flin --addr <node id> ARGS.
  ProcResult Flin(uint64_t id, std::vector<std::string> args,
                  milliseconds timeout = std::chrono::seconds(90)) const {
    args.insert(args.begin(), {FLIN_BIN, "--addr", Addr(id)});
    return RunProcess(args, {}, timeout, {"NO_COLOR=1"});
  }

  // `flin cluster status --json` on node id; null when it fails.
  nlohmann::json StatusJson(uint64_t id) const {
    ProcResult r = Flin(id, {"--json", "cluster", "status"});
    if (r.exit_code != 0) return nullptr;
    return nlohmann::json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  }

  // Polls every running node's status until they all name the same leader,
  // which calls itself leader. 0 on timeout.
  uint64_t WaitLeader(std::vector<uint64_t> among = {}) const {
    if (among.empty()) {
      for (const auto& [id, node] : nodes_) {
        if (node->running()) among.push_back(id);
      }
    }
    uint64_t leader = 0;
    WaitFor(
        [&] {
          std::set<uint64_t> named;
          for (uint64_t id : among) {
            nlohmann::json st = StatusJson(id);
            if (!st.is_object() || !st["leader_id"].is_number()) return false;
            named.insert(st["leader_id"].get<uint64_t>());
          }
          if (named.size() != 1) return false;
          const uint64_t l = *named.begin();
          if (std::find(among.begin(), among.end(), l) == among.end()) return false;
          nlohmann::json st = StatusJson(l);
          if (!st.is_object() || st["role"] != "leader") return false;
          leader = l;
          return true;
        },
        seconds(60));
    return leader;
  }

  // Member `id` in a status document (null when absent).
  static nlohmann::json MemberOf(const nlohmann::json& st, uint64_t id) {
    for (const auto& m : st["members"]) {
      if (m["id"] == id) return m;
    }
    return nullptr;
  }

  TempDir dir_;
  std::string secret_;
  std::map<uint64_t, uint16_t> peer_ports_;
  std::map<uint64_t, std::unique_ptr<Flind>> nodes_;
};

TEST_F(ClusterCliTest, StatusInEveryOutputMode) {
  ProcResult h = Flin(1, {"health", "--wait", "--timeout", "60s"});
  ASSERT_EQ(h.exit_code, 0) << h.err;
  EXPECT_EQ(h.out, "OK\n");
  const uint64_t leader = WaitLeader();
  ASSERT_NE(leader, 0u);

  std::string cluster_id;
  for (uint64_t id = 1; id <= 3; ++id) {
    nlohmann::json st = StatusJson(id);
    ASSERT_TRUE(st.is_object()) << "node " << id;
    EXPECT_EQ(st["mode"], "cluster");
    EXPECT_EQ(st["node_id"], id);
    EXPECT_EQ(st["role"], id == leader ? "leader" : "follower") << st.dump();
    ASSERT_TRUE(st["cluster_id"].is_string());
    const std::string cid = st["cluster_id"];
    EXPECT_EQ(cid.size(), 16u) << cid;
    EXPECT_EQ(cid.find_first_not_of("0123456789abcdef"), std::string::npos) << cid;
    if (cluster_id.empty()) cluster_id = cid;
    EXPECT_EQ(cid, cluster_id) << "node " << id << " is in another cluster";
    EXPECT_GE(st["commit_index"].get<int64_t>(), 1);
    ASSERT_EQ(st["members"].size(), 3u) << st.dump();
    int leaders = 0;
    for (uint64_t m = 1; m <= 3; ++m) {
      nlohmann::json member = MemberOf(st, m);
      ASSERT_TRUE(member.is_object()) << "member " << m << " missing: " << st.dump();
      EXPECT_EQ(member["peer_addr"], PeerAddr(m));
      EXPECT_EQ(member["kind"], "voter");
      EXPECT_EQ(member["self"], m == id);
      EXPECT_EQ(member["role"], m == leader ? "leader" : "follower");
      leaders += member["leader"].get<bool>() ? 1 : 0;
    }
    EXPECT_EQ(leaders, 1);
  }
  // Only the leader knows how far each member is; it learns it from the
  // first heartbeat replies.
  nlohmann::json lst;
  EXPECT_TRUE(WaitFor(
      [&] {
        lst = StatusJson(leader);
        if (!lst.is_object()) return false;
        for (const auto& m : lst["members"]) {
          if (!m["match"].is_number() || m["lag"] != 0) return false;
        }
        return true;
      },
      seconds(30)))
      << lst.dump();

  // Scripts: field lines, then member lines with 8 words each.
  const uint64_t follower = leader == 1 ? 2 : 1;
  ProcResult raw = Flin(follower, {"cluster", "status", "--raw"});
  ASSERT_EQ(raw.exit_code, 0) << raw.err;
  std::vector<std::string> lines = Lines(raw.out);
  ASSERT_EQ(lines.size(), 12u) << raw.out;
  EXPECT_EQ(lines[0], "mode cluster");
  EXPECT_EQ(lines[1], "cluster_id " + cluster_id);
  EXPECT_EQ(lines[2], "node_id " + std::to_string(follower));
  EXPECT_EQ(lines[3], "role follower");
  EXPECT_EQ(lines[4], "leader_id " + std::to_string(leader));
  std::map<std::string, std::vector<std::string>> members;
  for (size_t i = 9; i < lines.size(); ++i) {
    std::vector<std::string> w = SplitWords(lines[i]);
    ASSERT_EQ(w.size(), 8u) << lines[i];
    EXPECT_EQ(w[0], "member");
    members[w[1]] = w;
  }
  ASSERT_EQ(members.size(), 3u) << raw.out;
  EXPECT_EQ(members[std::to_string(leader)][4], "leader");
  EXPECT_EQ(members[std::to_string(follower)][2], PeerAddr(follower));
  EXPECT_EQ(members[std::to_string(follower)][7], "1");  // self
  EXPECT_EQ(members[std::to_string(leader)][7], "0");
  // A pipe without --raw gets the same script form.
  ProcResult piped = Flin(follower, {"cluster", "status"});
  EXPECT_EQ(Lines(piped.out).size(), 12u) << piped.out;

  // People: header and table.
  ProcResult human = Flin(leader, {"cluster", "status", "--human"});
  ASSERT_EQ(human.exit_code, 0) << human.err;
  EXPECT_NE(human.out.find("Cluster:  " + cluster_id + "\n"), std::string::npos) << human.out;
  EXPECT_NE(human.out.find("Node:     " + std::to_string(leader) + " (leader)\n"),
            std::string::npos)
      << human.out;
  EXPECT_NE(human.out.find("Leader:   " + std::to_string(leader) + "\n"), std::string::npos)
      << human.out;
  EXPECT_NE(human.out.find("ID  PEER ADDRESS"), std::string::npos) << human.out;
  EXPECT_EQ(std::count(human.out.begin(), human.out.end(), '\n'), 8 + 1 + 3) << human.out;
  for (const std::string& line : Lines(human.out)) {
    if (line.find("(this node)") != std::string::npos) {
      EXPECT_EQ(line.rfind(std::to_string(leader) + " ", 0), 0u) << line;
      EXPECT_NE(line.find(" leader "), std::string::npos) << line;
    }
  }
  // Every node is healthy once it has applied what it knows is committed.
  for (uint64_t id = 1; id <= 3; ++id) {
    ProcResult r = Flin(id, {"health", "--wait", "--timeout", "30s"});
    EXPECT_EQ(r.exit_code, 0) << "node " << id << ": " << r.err;
  }
}

TEST_F(ClusterCliTest, TransferLeader) {
  const uint64_t leader = WaitLeader();
  ASSERT_NE(leader, 0u);
  const uint64_t target = leader == 3 ? 1 : leader + 1;
  ProcResult r = Flin(leader, {"cluster", "transfer-leader", std::to_string(target)});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "OK\n");
  uint64_t now = 0;
  EXPECT_TRUE(WaitFor([&] { return (now = WaitLeader()) == target; }, seconds(30)))
      << "leader " << now << ", wanted " << target;
  // Without an id: the most up-to-date other voter, asked through a
  // follower this time.
  const uint64_t follower = target == 1 ? 2 : 1;
  r = Flin(follower, {"cluster", "transfer-leader"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "OK\n");
  uint64_t next = 0;
  EXPECT_TRUE(WaitFor(
      [&] {
        next = WaitLeader();
        return next != 0 && next != target;
      },
      seconds(30)))
      << "leader " << next;
  // Not a voter: flind's error, exit 4.
  r = Flin(next, {"cluster", "transfer-leader", "99"});
  EXPECT_EQ(r.exit_code, 4) << r.err;
  EXPECT_NE(r.err.find("99"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST_F(ClusterCliTest, AddStartAndRemoveANode) {
  const uint64_t leader = WaitLeader();
  ASSERT_NE(leader, 0u);
  const uint16_t peer4 = FreePort();
  const std::string peer4_addr = "127.0.0.1:" + std::to_string(peer4);
  // In a pipe: the id alone on stdout, how to start the node on stderr.
  ProcResult r = Flin(leader, {"cluster", "add", peer4_addr});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_FALSE(r.out.empty());
  EXPECT_EQ(r.out.back(), '\n');
  const uint64_t id = std::stoull(r.out);
  EXPECT_EQ(r.out, std::to_string(id) + "\n");
  EXPECT_GE(id, 4u);
  const std::string want = "flind --node-id " + std::to_string(id) + " --join " + Addr(leader) +
                           " --peer-listen " + peer4_addr + " --cluster-secret-file SECRET_FILE";
  std::string start;
  for (const std::string& line : Lines(r.err)) {
    if (line.find("flind --node-id") != std::string::npos) start = line;
  }
  ASSERT_NE(start.find(want), std::string::npos) << r.err;

  // Start the new node exactly as printed (its own data dir and client
  // port come from the harness; the secret file is ours).
  Flind::Options o;
  std::vector<std::string> words = SplitWords(start);
  ASSERT_EQ(words.front(), "flind");
  for (size_t i = 1; i < words.size(); ++i) {
    o.extra_args.push_back(words[i] == "SECRET_FILE" ? secret_ : words[i]);
  }
  o.extra_args.insert(o.extra_args.end(), {"--tick-ms", "50", "--request-timeout-ms", "2000"});
  nodes_[id] = std::make_unique<Flind>(o);
  std::string why;
  ASSERT_TRUE(nodes_[id]->Start(&why)) << why;
  r = Flin(id, {"health", "--wait", "--timeout", "60s"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // The leader promotes it once it has caught up.
  nlohmann::json st;
  ASSERT_TRUE(WaitFor(
      [&] {
        const uint64_t l = WaitLeader();
        st = l == 0 ? nlohmann::json() : StatusJson(l);
        return st.is_object() && st["members"].size() == 4 && MemberOf(st, id)["kind"] == "voter";
      },
      seconds(60)))
      << st.dump();
  EXPECT_EQ(MemberOf(st, id)["peer_addr"], peer4_addr);
  // It serves: a write through it is read back through node 1.
  r = Flin(id, {"set", "added", "yes"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = Flin(1, {"get", "added"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "yes");

  // Remove it again; the leader's view drops it once the removal commits.
  const uint64_t now_leader = WaitLeader();
  ASSERT_NE(now_leader, 0u);
  r = Flin(now_leader, {"cluster", "remove", std::to_string(id)});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "OK\n");
  // (flind refreshes what CLUSTER.STATUS reports every few ticks, so poll.)
  EXPECT_TRUE(WaitFor(
      [&] {
        st = StatusJson(now_leader);
        return st.is_object() && st["members"].size() == 3 && MemberOf(st, id).is_null();
      },
      seconds(30)))
      << st.dump();
  r = Flin(now_leader, {"cluster", "remove", std::to_string(id)});
  EXPECT_EQ(r.exit_code, 4) << r.err;
}

TEST_F(ClusterCliTest, AddWithIdOverUnixSocketAndJson) {
  ASSERT_NE(WaitLeader(), 0u);
  // Over the unix socket flin cannot give its own address to --join; it
  // names the node's TCP port on loopback instead.
  const std::string peer_addr = "127.0.0.1:" + std::to_string(FreePort());
  ProcResult r = RunProcess({FLIN_BIN, "--addr", nodes_[1]->unix_addr(), "--json", "cluster", "add",
                             peer_addr, "--id", "9"},
                            {}, seconds(60));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  nlohmann::json j = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << r.out;
  EXPECT_EQ(j["id"], 9);
  EXPECT_EQ(j["peer_addr"], peer_addr);
  EXPECT_EQ(j["join"], Addr(1));
  EXPECT_EQ(j["start"], "flind --node-id 9 --join " + Addr(1) + " --peer-listen " + peer_addr +
                            " --cluster-secret-file SECRET_FILE");
  // It is a learner until it catches up (and it never starts here).
  nlohmann::json st;
  EXPECT_TRUE(WaitFor(
      [&] {
        st = StatusJson(1);
        return st.is_object() && MemberOf(st, 9)["kind"] == "learner";
      },
      seconds(30)))
      << st.dump();
  // On a terminal (--human) both go to stdout.
  r = Flin(2, {"--human", "cluster", "remove", "9"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "OK\n");
  r = Flin(2, {"--human", "cluster", "add", peer_addr, "--id", "10"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("Added node 10 as a learner at " + peer_addr + ".\n", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("  flind --node-id 10 --join " + Addr(2)), std::string::npos) << r.out;
  EXPECT_EQ(r.err, "");
  // An id that is taken is flind's error.
  r = Flin(2, {"cluster", "add", "127.0.0.1:1", "--id", "1"});
  EXPECT_EQ(r.exit_code, 4) << r.err;
  EXPECT_EQ(r.err.rfind("flin: ERR ", 0), 0u) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST_F(ClusterCliTest, HealthAndStaleReadsWithoutQuorum) {
  const uint64_t leader = WaitLeader();
  ASSERT_NE(leader, 0u);
  ProcResult r = Flin(1, {"set", "k", "v"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // Every node applies it: a stale read on each sees it.
  for (uint64_t id = 1; id <= 3; ++id) {
    EXPECT_TRUE(WaitFor(
        [&] {
          return Flin(id, {"--consistency", "stale", "get", "k"}).out == "v";
        },
        seconds(30)))
        << "node " << id;
  }
  // Node 1 alone: no quorum.
  nodes_[2]->Kill9();
  nodes_[3]->Kill9();
  ProcResult last;
  EXPECT_TRUE(WaitFor(
      [&] {
        last = Flin(1, {"health"});
        return last.exit_code == 3;
      },
      seconds(30)))
      << "exit " << last.exit_code << ": " << last.out << last.err;
  EXPECT_NE(last.err.find("flin: TRYAGAIN"), std::string::npos) << last.err;
  EXPECT_EQ(last.out, "");
  r = Flin(1, {"health", "--wait", "--timeout", "500ms"});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("flin: not healthy after 500ms: TRYAGAIN"), std::string::npos) << r.err;
  // Stale reads still work; linearizable reads and writes give up after
  // --request-timeout-ms with TRYAGAIN (exit 3).
  r = Flin(1, {"--consistency", "stale", "get", "k"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "v");
  r = Flin(1, {"get", "k"});
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  EXPECT_NE(r.err.find("TRYAGAIN"), std::string::npos) << r.err;
  r = Flin(1, {"set", "k2", "v"});
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  EXPECT_NE(r.err.find("TRYAGAIN"), std::string::npos) << r.err;
  // Piped commands: a TRYAGAIN line makes the run's status 3, and the run
  // goes on (the stale CONSISTENCY line still answers).
  r = RunProcess({FLIN_BIN, "--addr", Addr(1)}, "SET k3 v\nCONSISTENCY\n", seconds(60));
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("flin: line 1: TRYAGAIN"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "linearizable\n");
  // The status still answers: no leader known.
  nlohmann::json st = StatusJson(1);
  ASSERT_TRUE(st.is_object());
  EXPECT_NE(st["role"], "leader") << st.dump();

  // health --wait keeps asking through TRYAGAIN until a quorum is back.
  ProcResult waited;
  std::thread waiter([&] { waited = Flin(1, {"health", "--wait", "--timeout", "90s"}); });
  std::string why;
  const bool restarted = nodes_[2]->Start(&why);
  waiter.join();
  ASSERT_TRUE(restarted) << why;
  EXPECT_EQ(waited.exit_code, 0) << waited.err;
  EXPECT_EQ(waited.out, "OK\n");
  r = Flin(1, {"get", "k"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "v");
}

}  // namespace
}  // namespace flin::test
