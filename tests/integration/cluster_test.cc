// Fault tests with real flind clusters on loopback: three (or four) processes,
// peer links through TcpProxy so any link can be cut, client histories
// checked for linearizability (tests/sim/linearizability.h), and every
// acknowledged MSET batch checked whole on every node after the cluster
// converges. Faults: kill -9 and SIGSTOP of the leader, a follower restarted
// 50,000 writes behind, a new member brought up by snapshot, membership
// changes under load, peers with the wrong secret, symmetric and one-way
// partitions. One test shows the checker rejecting a real stale read.
//
// Skipped (with the reason) when flind has no cluster mode. Debugging:
// FLIN_TEST_LOGS=1 prints every node's log tail after each test (always on
// failure), FLIN_TEST_LOG_LINES=N how much of it.
//
// Timing: nodes tick every 50 ms (election timeout 0.5-1 s) and give up on a
// request after 1 s (-TRYAGAIN). Every wait polls a condition with a
// generous deadline; nothing sleeps to synchronise.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "tests/integration/cluster_harness.h"
#include "tests/integration/history.h"

namespace flin::test {
namespace {

using namespace std::chrono_literals;
using client::Reply;
using Clock = std::chrono::steady_clock;

// flind without a cluster engine has no --initial-cluster flag; the tests
// then skip (naming why) instead of failing on an unknown flag.
bool FlindHasClusterMode(std::string* why) {
  ProcResult r = RunProcess({FlindPath(), "--help"}, {}, 30s);
  if (r.out.find("--initial-cluster") != std::string::npos) return true;
  *why = "flind --help does not list --initial-cluster: the daemon's cluster engine has not landed";
  return false;
}

client::ConnectOptions ClientOptions() {
  client::ConnectOptions o;
  o.connect_timeout = 1000ms;
  // Longer than --request-timeout-ms, so the server's -TRYAGAIN normally
  // arrives before the client gives up; a SIGSTOPped node still times out.
  o.read_timeout = 4000ms;
  o.write_timeout = 4000ms;
  return o;
}

bool IsTryAgain(const Reply& r) { return r.is_error() && r.str.rfind("TRYAGAIN", 0) == 0; }

// One MSET batch of the workload and what its client saw.
struct Batch {
  std::vector<std::pair<std::string, std::string>> kv;  // unique keys first, shared key last
  size_t unique = 0;                                    // how many leading keys are unique
  Outcome outcome = Outcome::kFailed;
};

// Writers send MSET batches (unique keys + sometimes one contended "shared"
// key) and readers GET/MGET shared keys and recent batches, all recorded in
// one History. Clients connect to the nodes `targets` returns, rotating
// after every failure and every few operations, so traffic goes through
// followers (forwarding) and fails over when a node dies.
class Workload {
 public:
  struct Options {
    int writers = 3;
    int readers = 2;
    int batch_keys = 4;
    int shared_keys = 8;
    // Pin client i to node targets()[i % n] instead of rotating.
    bool pinned = false;
  };

  Workload(Cluster* cluster, History* history, Options opts)
      : cluster_(cluster), history_(history), opts_(opts) {}
  ~Workload() { Stop(); }

  // Nodes clients may use (default: the cluster's up nodes).
  void set_targets(std::function<std::vector<uint64_t>()> f) {
    std::lock_guard<std::mutex> l(mu_);
    targets_ = std::move(f);
  }

  void Start() {
    for (int t = 0; t < opts_.writers; ++t) threads_.emplace_back([this, t] { Writer(t); });
    for (int r = 0; r < opts_.readers; ++r) {
      threads_.emplace_back([this, r] { Reader(opts_.writers + r); });
    }
  }
  void Stop() {
    stop_ = true;
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

  int acked() const { return acked_; }
  int reads_ok() const { return reads_ok_; }
  std::vector<Batch> batches() const {
    std::lock_guard<std::mutex> l(mu_);
    return batches_;
  }
  std::vector<std::string> shared_keys() const {
    std::vector<std::string> out;
    for (int i = 0; i < opts_.shared_keys; ++i) out.push_back("shared:" + std::to_string(i));
    return out;
  }
  // A read saw part of a batch (atomicity violated), with details.
  std::vector<std::string> torn_reads() const {
    std::lock_guard<std::mutex> l(mu_);
    return torn_;
  }

  // Waits until `n` more batches are acknowledged than when called.
  bool WaitMoreAcked(int n, std::chrono::milliseconds deadline = 60s) {
    int base = acked_;
    return WaitFor([&] { return acked_ >= base + n; }, deadline);
  }

 private:
  std::vector<uint64_t> Targets() {
    std::function<std::vector<uint64_t>()> f;
    {
      std::lock_guard<std::mutex> l(mu_);
      f = targets_;
    }
    return f ? f() : cluster_->up_ids();
  }

  RecordingClient MakeClient(int client, std::shared_ptr<uint64_t> turn) {
    return RecordingClient(history_, [this, client, turn]() -> std::unique_ptr<client::Connection> {
      auto ids = Targets();
      if (ids.empty()) return nullptr;
      uint64_t id = opts_.pinned ? ids[client % ids.size()] : ids[(*turn)++ % ids.size()];
      return cluster_->Connect(id, ClientOptions());
    });
  }

  void Writer(int t) {
    auto turn = std::make_shared<uint64_t>(t);
    RecordingClient c = MakeClient(t, turn);
    std::mt19937 rng(t + 1);
    for (int seq = 0; !stop_; ++seq) {
      Batch b;
      std::string tag = "t" + std::to_string(t) + "b" + std::to_string(seq);
      for (int i = 0; i < opts_.batch_keys; ++i) {
        b.kv.emplace_back("batch:" + tag + ":" + std::to_string(i), tag);
      }
      b.unique = b.kv.size();
      if (rng() % 2 == 0) {
        b.kv.emplace_back("shared:" + std::to_string(rng() % opts_.shared_keys),
                          history_->NewValue(tag));
      }
      b.outcome = c.MSet(b.kv);
      if (b.outcome == Outcome::kFailed && c.last_error() == "cannot connect") {
        // Nothing was sent: not a batch at all. Back off a little so a
        // node-less moment does not spin.
        std::this_thread::sleep_for(20ms);
        continue;
      }
      {
        std::lock_guard<std::mutex> l(mu_);
        batches_.push_back(b);
      }
      if (b.outcome == Outcome::kOk) {
        ++acked_;
      } else {
        c.Disconnect();  // try another node next
      }
      if (!opts_.pinned && seq % 8 == 7) c.Disconnect();
    }
  }

  void Reader(int r) {
    auto turn = std::make_shared<uint64_t>(r);
    RecordingClient c = MakeClient(r, turn);
    std::mt19937 rng(r + 101);
    for (int n = 0; !stop_; ++n) {
      Outcome o;
      if (n % 3 == 2) {
        // A recent batch, read as a whole: all of it or none of it.
        Batch b;
        {
          std::lock_guard<std::mutex> l(mu_);
          if (!batches_.empty()) {
            b = batches_[batches_.size() - 1 - rng() % std::min<size_t>(batches_.size(), 20)];
          }
        }
        if (b.kv.empty()) {
          std::this_thread::sleep_for(5ms);  // no batch yet: nothing to read
          continue;
        }
        std::vector<std::string> keys;
        for (size_t i = 0; i < b.unique; ++i) keys.push_back(b.kv[i].first);
        std::vector<std::optional<std::string>> got;
        o = c.MGet(keys, &got);
        if (o == Outcome::kOk) {
          size_t present = 0;
          for (size_t i = 0; i < got.size(); ++i) {
            if (got[i] && *got[i] == b.kv[i].second) ++present;
          }
          if (present != 0 && present != got.size()) {
            std::lock_guard<std::mutex> l(mu_);
            torn_.push_back(b.kv[0].first + ": " + std::to_string(present) + " of " +
                            std::to_string(got.size()) + " keys visible");
          }
        }
      } else if (n % 3 == 1) {
        auto keys = shared_keys();
        std::shuffle(keys.begin(), keys.end(), rng);
        keys.resize(3);
        o = c.MGet(keys);
      } else {
        o = c.Get("shared:" + std::to_string(rng() % opts_.shared_keys));
      }
      if (o == Outcome::kOk) {
        ++reads_ok_;
      } else {
        c.Disconnect();
      }
      if (!opts_.pinned && n % 8 == 7) c.Disconnect();
    }
  }

  Cluster* cluster_;
  History* history_;
  Options opts_;
  std::atomic<bool> stop_{false};
  std::atomic<int> acked_{0}, reads_ok_{0};
  mutable std::mutex mu_;
  std::function<std::vector<uint64_t>()> targets_;  // guarded by mu_
  std::vector<Batch> batches_;                      // guarded by mu_
  std::vector<std::string> torn_;                   // guarded by mu_
  std::vector<std::thread> threads_;
};

// A connection that reads the node's local state machine (CONSISTENCY stale).
std::unique_ptr<client::Connection> StaleConnection(const Cluster& cluster, uint64_t id) {
  auto c = cluster.Connect(id, ClientOptions());
  if (!c) return nullptr;
  auto r = c->Command({"CONSISTENCY", "stale"});
  EXPECT_TRUE(r.ok() && r->type == Reply::Type::kStatus) << "CONSISTENCY stale on node " << id;
  return c;
}

// After the cluster converged: on every node in `ids`, every acknowledged
// batch is whole, every unknown one whole or absent (the same on all nodes),
// every failed one absent; the shared keys agree across nodes. Failures are
// reported through gtest, at most a few per kind.
void VerifyBatches(const Cluster& cluster, const std::vector<uint64_t>& ids,
                   const std::vector<Batch>& batches, const std::vector<std::string>& shared) {
  std::vector<std::vector<char>> presence(ids.size());  // per node, per batch: 0 none, 1 all
  std::vector<std::vector<std::optional<std::string>>> shared_values(ids.size());
  int reported = 0;
  for (size_t n = 0; n < ids.size(); ++n) {
    auto c = StaleConnection(cluster, ids[n]);
    ASSERT_TRUE(c) << "cannot connect to node " << ids[n];
    std::vector<std::vector<std::string>> cmds;
    for (const auto& b : batches) {
      std::vector<std::string> cmd = {"MGET"};
      for (size_t i = 0; i < b.unique; ++i) cmd.push_back(b.kv[i].first);
      cmds.push_back(std::move(cmd));
    }
    std::vector<std::string> sh = {"MGET"};
    for (const auto& k : shared) sh.push_back(k);
    cmds.push_back(sh);
    auto replies = c->Pipeline(cmds);
    ASSERT_TRUE(replies.ok()) << replies.status().ToString();
    ASSERT_EQ(replies->size(), cmds.size());
    for (size_t bi = 0; bi < batches.size(); ++bi) {
      const Batch& b = batches[bi];
      const Reply& r = (*replies)[bi];
      ASSERT_EQ(r.type, Reply::Type::kArray) << client::DebugString(r);
      size_t present = 0;
      for (size_t i = 0; i < b.unique; ++i) {
        if (r.elements[i].type == Reply::Type::kBulk) {
          EXPECT_EQ(r.elements[i].str, b.kv[i].second) << b.kv[i].first;
          ++present;
        }
      }
      bool whole = present == b.unique;
      presence[n].push_back(whole ? 1 : 0);
      if (present != 0 && !whole && reported++ < 5) {
        ADD_FAILURE() << "node " << ids[n] << ": batch " << b.kv[0].first << " half applied ("
                      << present << " of " << b.unique << " keys), client saw "
                      << OutcomeName(b.outcome);
      }
      if (b.outcome == Outcome::kOk && !whole && reported++ < 5) {
        ADD_FAILURE() << "node " << ids[n] << ": acknowledged batch " << b.kv[0].first << " lost ("
                      << present << " of " << b.unique << " keys)";
      }
      if (b.outcome == Outcome::kFailed && present != 0 && reported++ < 5) {
        ADD_FAILURE() << "node " << ids[n] << ": batch " << b.kv[0].first
                      << " was refused but is present";
      }
    }
    const Reply& s = replies->back();
    ASSERT_EQ(s.type, Reply::Type::kArray);
    for (const auto& e : s.elements) {
      shared_values[n].push_back(e.is_nil() ? std::nullopt : std::optional<std::string>(e.str));
    }
  }
  for (size_t n = 1; n < ids.size(); ++n) {
    EXPECT_EQ(shared_values[n], shared_values[0])
        << "nodes " << ids[0] << " and " << ids[n] << " disagree on the shared keys";
    for (size_t bi = 0; bi < batches.size(); ++bi) {
      if (presence[n][bi] != presence[0][bi] && reported++ < 5) {
        ADD_FAILURE() << "nodes " << ids[0] << " and " << ids[n] << " disagree on batch "
                      << batches[bi].kv[0].first;
      }
    }
  }
}

void ExpectLinearizable(const History& h) {
  auto r = h.Check();
  EXPECT_FALSE(r.inconclusive) << "checker budget exhausted (" << h.size() << " ops)";
  EXPECT_TRUE(r.ok) << "history of key " << r.key << " is not linearizable:\n" << h.Dump(r.key);
}

// The end of a fault test: the workload stops, the nodes converge, and what
// the clients saw holds up (no torn reads, every acknowledged batch whole on
// every node in `ids`, the history linearizable).
void StopAndVerify(Cluster& cluster, const std::vector<uint64_t>& ids, Workload& w,
                   const History& h, const char* not_converged) {
  w.Stop();
  ASSERT_TRUE(cluster.WaitConverged()) << not_converged;
  EXPECT_TRUE(w.torn_reads().empty()) << w.torn_reads()[0];
  VerifyBatches(cluster, ids, w.batches(), w.shared_keys());
  ExpectLinearizable(h);
}

// Counts of batches by outcome, for messages.
std::string Summary(const Workload& w) {
  int ok = 0, unknown = 0, failed = 0;
  for (const auto& b : w.batches()) {
    (b.outcome == Outcome::kOk ? ok : b.outcome == Outcome::kUnknown ? unknown : failed)++;
  }
  return std::to_string(ok) + " batches acked, " + std::to_string(unknown) + " unknown, " +
         std::to_string(failed) + " refused, " + std::to_string(w.reads_ok()) + " reads";
}

// Runs SET on `id` until one is acknowledged; returns how long that took
// (or `deadline` + 1 s when it never was).
std::chrono::milliseconds TimeUntilWritable(const Cluster& cluster,
                                            const std::vector<uint64_t>& ids,
                                            std::chrono::milliseconds deadline) {
  auto start = Clock::now();
  bool ok = WaitFor(
      [&] {
        for (uint64_t id : ids) {
          auto c = cluster.Connect(id, ClientOptions());
          if (!c) continue;
          auto r = c->Command({"SET", "probe", "x"});
          if (r.ok() && r->type == Reply::Type::kStatus) return true;
        }
        return false;
      },
      deadline);
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  return ok ? took : deadline + 1s;
}

// The value of `field` in an INFO reply ("" when absent).
std::string InfoField(const std::string& info, const std::string& field) {
  size_t p = info.find("\n" + field + ":");
  if (p == std::string::npos) return "";
  p += field.size() + 2;
  size_t e = info.find_first_of("\r\n", p);
  return info.substr(p, e == std::string::npos ? std::string::npos : e - p);
}

std::string StatusLine(Cluster& cluster, uint64_t id) {
  if (!cluster.flind(id).Alive()) {
    return "node " + std::to_string(id) + " is not running (exit status " +
           std::to_string(cluster.flind(id).last_exit_status()) + ", -1: killed by a signal)";
  }
  auto s = cluster.StatusOf(id);
  return s.ok() ? s->ToString() : "node " + std::to_string(id) + ": " + s.status().ToString();
}

std::vector<uint64_t> Without(std::vector<uint64_t> ids, uint64_t drop) {
  ids.erase(std::remove(ids.begin(), ids.end(), drop), ids.end());
  return ids;
}

class ClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (!FlindHasClusterMode(&why)) GTEST_SKIP() << why;
  }

  // Starts a cluster and waits for its first leader.
  std::unique_ptr<Cluster> StartCluster(ClusterOptions o = {}) {
    auto c = std::make_unique<Cluster>(o);
    std::string why;
    EXPECT_TRUE(c->Start(&why)) << why;
    if (HasFailure()) return nullptr;
    uint64_t leader = c->WaitLeader();
    EXPECT_NE(leader, 0u) << "no leader elected\n" << c->Logs();
    if (leader == 0) return nullptr;
    return c;
  }

  // On failure (or always with FLIN_TEST_LOGS=1) the tail of every node's
  // log goes to stderr; FLIN_TEST_LOG_LINES=N sets how many lines (60).
  void TearDown() override {
    if (!cluster_) return;
    // A node the test did not stop must still run: a crash (a failed
    // FLIN_CHECK, a sanitizer report) fails the test even when the cluster
    // carried on without it.
    for (uint64_t id : cluster_->ids()) {
      Flind& f = cluster_->flind(id);
      if (f.running() && !f.Alive()) {
        ADD_FAILURE() << "node " << id << " exited on its own (status " << f.last_exit_status()
                      << ")";
      }
    }
    // Every node still running stops cleanly on SIGTERM (exit status 0: no
    // hang, no leak report from the sanitizers).
    for (uint64_t id : cluster_->ids()) {
      if (!cluster_->flind(id).running()) continue;
      EXPECT_EQ(cluster_->Terminate(id), 0) << "node " << id << " did not stop cleanly";
    }
    if (!(HasFailure() || std::getenv("FLIN_TEST_LOGS"))) return;
    const char* lines = std::getenv("FLIN_TEST_LOG_LINES");
    std::cerr << cluster_->Logs(lines ? std::atoi(lines) : 60);
  }

  std::unique_ptr<Cluster> cluster_;
};

TEST_F(ClusterTest, StatusDescribesTheClusterOnEveryNode) {
  cluster_ = StartCluster();
  ASSERT_TRUE(cluster_);
  uint64_t leader = cluster_->WaitLeader();
  std::string cluster_id;
  for (uint64_t id : cluster_->ids()) {
    auto s = cluster_->StatusOf(id);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    EXPECT_EQ(s->mode, "cluster");
    EXPECT_EQ(s->node_id, id);
    EXPECT_EQ(s->cluster_id.size(), 16u) << s->cluster_id;
    if (cluster_id.empty()) cluster_id = s->cluster_id;
    EXPECT_EQ(s->cluster_id, cluster_id) << "node " << id;
    EXPECT_EQ(s->role, id == leader ? "leader" : "follower") << s->ToString();
    EXPECT_EQ(s->leader_id, leader);
    ASSERT_EQ(s->members.size(), 3u) << s->ToString();
    for (const auto& m : s->members) {
      EXPECT_EQ(m.kind, "voter") << s->ToString();
      EXPECT_EQ(m.self, m.id == id);
      EXPECT_EQ(m.leader, m.id == leader);
    }
    auto h = cluster_->Command(id, {"CLUSTER.HEALTH"});
    ASSERT_TRUE(h.ok());
    EXPECT_EQ(h->type, Reply::Type::kStatus) << client::DebugString(*h);
  }
  // The leader knows its followers' progress.
  auto s = cluster_->StatusOf(leader);
  ASSERT_TRUE(s.ok());
  for (const auto& m : s->members) EXPECT_GE(m.match, 0) << s->ToString();
}

TEST_F(ClusterTest, WritesThroughEveryNodeAndReadsFromEveryNodeAreLinearizable) {
  cluster_ = StartCluster();
  ASSERT_TRUE(cluster_);
  History history;
  Workload::Options wo;
  wo.writers = 3;
  wo.readers = 3;
  wo.pinned = true;  // client i always talks to node i % 3 + 1
  Workload w(cluster_.get(), &history, wo);
  w.Start();
  ASSERT_TRUE(w.WaitMoreAcked(300)) << Summary(w);
  ASSERT_TRUE(WaitFor([&] { return w.reads_ok() >= 300; }, 60s)) << Summary(w);
  w.Stop();
  // Nothing failed: no faults were injected.
  for (const auto& b : w.batches()) {
    EXPECT_EQ(b.outcome, Outcome::kOk) << b.kv[0].first;
    if (b.outcome != Outcome::kOk) break;
  }
  EXPECT_TRUE(w.torn_reads().empty()) << w.torn_reads()[0];
  ExpectLinearizable(history);
  ASSERT_TRUE(cluster_->WaitConverged()) << "nodes did not converge";
  VerifyBatches(*cluster_, cluster_->ids(), w.batches(), w.shared_keys());

  // Read-your-writes across nodes: a write acknowledged by one follower is
  // seen by a linearizable read on the other one at once.
  uint64_t leader = cluster_->WaitLeader();
  auto followers = Without(cluster_->ids(), leader);
  auto a = cluster_->Connect(followers[0], ClientOptions());
  auto b = cluster_->Connect(followers[1], ClientOptions());
  ASSERT_TRUE(a && b);
  for (int i = 0; i < 20; ++i) {
    std::string v = "v" + std::to_string(i);
    ASSERT_TRUE(a->Set("ryw", v).ok());
    auto got = b->Get("ryw");
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(got->value_or("(nil)"), v);
  }
}

TEST_F(ClusterTest, KillNineOfTheLeaderDuringMsetBatchesLosesNothingAcknowledged) {
  cluster_ = StartCluster();
  ASSERT_TRUE(cluster_);
  History history;
  Workload::Options wo;
  wo.writers = 4;
  wo.readers = 2;
  Workload w(cluster_.get(), &history, wo);
  w.Start();
  ASSERT_TRUE(w.WaitMoreAcked(150)) << Summary(w);

  uint64_t old_leader = cluster_->WaitLeader();
  ASSERT_NE(old_leader, 0u);
  cluster_->Kill9(old_leader);
  auto rest = Without(cluster_->ids(), old_leader);
  auto took = TimeUntilWritable(*cluster_, rest, 15s);
  EXPECT_LT(took, 5s) << "no new leader served a write within 5 s of the kill";
  uint64_t new_leader = cluster_->WaitLeader(30s, rest);
  ASSERT_NE(new_leader, 0u);
  EXPECT_NE(new_leader, old_leader);
  ASSERT_TRUE(w.WaitMoreAcked(150)) << "writes did not resume: " << Summary(w);

  // The killed node comes back as a follower and catches up.
  std::string why;
  ASSERT_TRUE(cluster_->Restart(old_leader, &why)) << why;
  ASSERT_TRUE(w.WaitMoreAcked(50)) << Summary(w);
  StopAndVerify(*cluster_, cluster_->ids(), w, history, "nodes did not converge");
  std::cerr << "kill -9 leader: new leader wrote after " << took.count() << " ms; " << Summary(w)
            << "\n";
}

// A hard state whose only news is the commit index is not fsync'd (only
// entries, terms and votes are): after a burst, the last commit index
// reaches a node's log file only with later entries, while state.db's
// generation commit records the applied index. Every node killed at that
// point must restart (Init raises the log's commit to state.db's applied
// index; the core refuses applied > commit) with every acknowledged batch.
TEST_F(ClusterTest, EveryNodeKilledAfterStateDbPassedTheLogsCommitRestartsWhole) {
  cluster_ = StartCluster();
  ASSERT_TRUE(cluster_);
  uint64_t leader = cluster_->WaitLeader();
  ASSERT_NE(leader, 0u);
  constexpr int kBatches = 40, kKeys = 10;
  auto key = [](int b, int k) { return "crash-" + std::to_string(b) + "-" + std::to_string(k); };
  for (int b = 0; b < kBatches; b++) {
    std::vector<std::string> args = {"MSET"};
    for (int k = 0; k < kKeys; k++) {
      args.push_back(key(b, k));
      args.push_back("v" + std::to_string(b * kKeys + k));
    }
    auto r = cluster_->Command(leader, std::vector<std::string_view>(args.begin(), args.end()));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_EQ(r->type, Reply::Type::kStatus) << client::DebugString(*r);
  }
  ASSERT_TRUE(cluster_->WaitConverged()) << "nodes did not converge";
  for (uint64_t id : cluster_->ids()) {
    std::string last;
    ASSERT_TRUE(WaitFor(
        [&] {
          auto r = cluster_->Command(id, {"INFO", "persistence"});
          if (!r.ok()) return false;
          last = r->str;
          std::string applied = InfoField(last, "applied_index");
          return !applied.empty() && applied == InfoField(last, "state_db_committed_index");
        },
        30s))
        << "node " << id << ": state.db did not catch up: " << last;
  }
  for (uint64_t id : cluster_->ids()) cluster_->Kill9(id);
  for (uint64_t id : cluster_->ids()) {
    std::string why;
    ASSERT_TRUE(cluster_->Restart(id, &why)) << "node " << id << ": " << why;
  }
  ASSERT_NE(cluster_->WaitLeader(), 0u) << "no leader after the restart";
  ASSERT_TRUE(cluster_->WaitConverged()) << "nodes did not converge after the restart";
  for (uint64_t id : cluster_->ids()) {
    std::vector<std::string> args = {"MGET"};
    for (int b = 0; b < kBatches; b++) {
      for (int k = 0; k < kKeys; k++) args.push_back(key(b, k));
    }
    auto r = cluster_->Command(id, std::vector<std::string_view>(args.begin(), args.end()));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_EQ(r->elements.size(), static_cast<size_t>(kBatches * kKeys));
    for (int i = 0; i < kBatches * kKeys; i++) {
      ASSERT_EQ(r->elements[i].str, "v" + std::to_string(i)) << "node " << id << " " << args[i + 1];
    }
  }
}

TEST_F(ClusterTest, StoppedLeaderIsReplacedAndCatchesUpAfterContinue) {
  cluster_ = StartCluster();
  ASSERT_TRUE(cluster_);
  History history;
  Workload w(cluster_.get(), &history, {});
  // Clients keep using every node, the stopped one included: their requests
  // there hang until the client times out (unknown outcomes).
  auto all = cluster_->ids();
  w.set_targets([all] { return all; });
  w.Start();
  ASSERT_TRUE(w.WaitMoreAcked(100)) << Summary(w);

  uint64_t old_leader = cluster_->WaitLeader();
  cluster_->Stop(old_leader);
  auto rest = Without(all, old_leader);
  uint64_t new_leader = cluster_->WaitLeader(30s, rest);
  ASSERT_NE(new_leader, 0u) << "no leader among the others while the leader is stopped";
  EXPECT_NE(new_leader, old_leader);
  ASSERT_TRUE(w.WaitMoreAcked(100)) << "writes did not continue: " << Summary(w);

  cluster_->Cont(old_leader);
  // The old leader learns the new term, steps down and catches up; reads it
  // serves meanwhile must not be stale (the history checks that).
  ASSERT_TRUE(WaitFor(
      [&] {
        auto s = cluster_->StatusOf(old_leader);
        return s.ok() && s->role == "follower" && s->leader_id != old_leader && s->leader_id != 0;
      },
      30s))
      << "the continued leader did not step down";
  ASSERT_TRUE(w.WaitMoreAcked(100)) << Summary(w);
  StopAndVerify(*cluster_, all, w, history, "nodes did not converge");
}

// Every one of the `n` bulk keys is on node `id` (its local state machine).
void ExpectAllBulkKeys(const Cluster& cluster, uint64_t id, int n) {
  auto c = StaleConnection(cluster, id);
  ASSERT_TRUE(c);
  std::vector<std::vector<std::string>> cmds;
  for (int base = 0; base < n; base += 1000) {
    std::vector<std::string> cmd = {"MGET"};
    for (int i = base; i < std::min(n, base + 1000); ++i)
      cmd.push_back("bulk:" + std::to_string(i));
    cmds.push_back(cmd);
  }
  auto r = c->Pipeline(cmds);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  int missing = 0;
  for (size_t p = 0; p < r->size(); ++p) {
    const auto& e = (*r)[p];
    ASSERT_EQ(e.type, Reply::Type::kArray);
    for (size_t i = 0; i < e.elements.size(); ++i) {
      if (e.elements[i].str != std::to_string(p * 1000 + i)) ++missing;
    }
  }
  EXPECT_EQ(missing, 0) << "node " << id;
  auto dbsize = cluster.Command(id, {"DBSIZE"});
  ASSERT_TRUE(dbsize.ok());
  EXPECT_EQ(dbsize->integer, n) << "node " << id;
}

// Waits until node `id` applied `index`; gives up at once if it dies.
bool WaitCaughtUp(Cluster& cluster, uint64_t id, uint64_t index) {
  WaitFor(
      [&] {
        if (!cluster.flind(id).Alive()) return true;
        auto s = cluster.StatusOf(id);
        return s.ok() && s->applied_index >= index;
      },
      90s);
  auto s = cluster.StatusOf(id);
  return s.ok() && s->applied_index >= index;
}

int64_t SnapshotsInstalled(const Cluster& cluster, uint64_t id) {
  auto info = cluster.Command(id, {"INFO"});
  if (!info.ok() || info->is_error()) return -1;
  EXPECT_NE(info->str.find("# Raft"), std::string::npos);
  std::string v = InfoField(info->str, "raft_snapshots_installed");
  return v.empty() ? -1 : std::atoll(v.c_str());
}

TEST_F(ClusterTest, FollowerRestartedFiftyThousandWritesLaterCatchesUpBySnapshot) {
  ClusterOptions o;
  o.snapshot_entries = 1000;
  cluster_ = StartCluster(o);
  ASSERT_TRUE(cluster_);
  uint64_t leader = cluster_->WaitLeader();
  uint64_t follower = Without(cluster_->ids(), leader)[0];
  EXPECT_EQ(cluster_->Terminate(follower), 0);

  // 50,000 single-key writes, pipelined over two connections through the
  // leader and the other follower.
  constexpr int kWrites = 50'000, kPipeline = 500, kConns = 2;
  auto writers_ok = std::make_shared<std::atomic<int>>(0);
  std::vector<std::thread> threads;
  std::vector<uint64_t> live = Without(cluster_->ids(), follower);
  for (int t = 0; t < kConns; ++t) {
    threads.emplace_back([&, t] {
      auto c = cluster_->Connect(live[t % live.size()], ClientOptions());
      if (!c) return;
      for (int base = t * kPipeline; base < kWrites; base += kConns * kPipeline) {
        std::vector<std::vector<std::string>> cmds;
        for (int i = base; i < std::min(kWrites, base + kPipeline); ++i) {
          cmds.push_back({"SET", "bulk:" + std::to_string(i), std::to_string(i)});
        }
        auto r = c->Pipeline(cmds);
        if (!r.ok()) return;
        for (const auto& e : *r) {
          if (e.type == Reply::Type::kStatus) ++*writers_ok;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_EQ(*writers_ok, kWrites);
  auto ls = cluster_->StatusOf(leader);
  ASSERT_TRUE(ls.ok());
  // Pipelined writes may share entries; still many snapshot intervals.
  EXPECT_GT(ls->commit_index, 10u * o.snapshot_entries) << ls->ToString();

  // state.db commits (and so log compaction) trail the writes by design
  // (the write buffer): wait until the leader's log no longer reaches back
  // to where the stopped follower left off.
  auto log_first = [&] {
    auto info = cluster_->Command(leader, {"INFO", "persistence"});
    if (!info.ok() || info->is_error()) return int64_t{-1};
    return static_cast<int64_t>(std::atoll(InfoField(info->str, "log_first_index").c_str()));
  };
  ASSERT_TRUE(
      WaitFor([&] { return log_first() > 2 * static_cast<int64_t>(o.snapshot_entries); }, 60s))
      << "the leader never compacted its log: log_first_index " << log_first();

  std::string why;
  auto restart = Clock::now();
  ASSERT_TRUE(cluster_->Restart(follower, &why)) << why;
  ASSERT_TRUE(WaitCaughtUp(*cluster_, follower, ls->commit_index))
      << "follower did not catch up: " << StatusLine(*cluster_, follower);
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - restart);
  ASSERT_TRUE(cluster_->WaitConverged());
  ExpectAllBulkKeys(*cluster_, follower, kWrites);
  // With --snapshot-entries 1000 the leader keeps only a few hundred entries
  // below its latest snapshot: the follower's next entry is long gone.
  int64_t installed = SnapshotsInstalled(*cluster_, follower);
  EXPECT_GE(installed, 1) << "the restarted follower caught up without a snapshot";
  std::cerr << "restarted follower caught up with " << kWrites << " writes in " << took.count()
            << " ms; snapshots installed: " << installed << "\n";

  // A brand-new member has none of the log the initial members were seeded
  // with: it can only be brought up by a snapshot.
  auto added = cluster_->AddNode();
  ASSERT_TRUE(added.ok()) << added.status().ToString();
  ASSERT_TRUE(WaitCaughtUp(*cluster_, *added, ls->commit_index))
      << "new node did not catch up: " << StatusLine(*cluster_, *added);
  EXPECT_GE(SnapshotsInstalled(*cluster_, *added), 1) << "the new node got no snapshot";
  ASSERT_TRUE(cluster_->WaitConverged());
  ExpectAllBulkKeys(*cluster_, *added, kWrites);
}

TEST_F(ClusterTest, WipedFollowerIsRemovedAndRejoinsUnderANewId) {
  cluster_ = StartCluster();
  ASSERT_TRUE(cluster_);
  uint64_t leader = cluster_->WaitLeader();
  uint64_t follower = Without(cluster_->ids(), leader)[0];
  constexpr int kWrites = 2000;
  {
    auto c = cluster_->Connect(leader, ClientOptions());
    ASSERT_TRUE(c);
    std::vector<std::vector<std::string>> cmds;
    for (int i = 0; i < kWrites; ++i) {
      cmds.push_back({"SET", "bulk:" + std::to_string(i), std::to_string(i)});
    }
    auto r = c->Pipeline(cmds);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }
  // The disk is lost: the node's vote and log are gone, so it may not come
  // back as the same voter.
  cluster_->Kill9(follower);
  cluster_->Wipe(follower);
  ASSERT_TRUE(cluster_->RemoveNode(follower).ok());
  auto added = cluster_->AddNode();
  ASSERT_TRUE(added.ok()) << added.status().ToString();
  EXPECT_NE(*added, follower);
  auto ls = cluster_->StatusOf(leader);
  ASSERT_TRUE(ls.ok());
  ASSERT_TRUE(WaitCaughtUp(*cluster_, *added, ls->commit_index))
      << "rejoined node did not catch up: " << StatusLine(*cluster_, *added);
  ASSERT_TRUE(cluster_->WaitConverged());
  ExpectAllBulkKeys(*cluster_, *added, kWrites);
  auto st = cluster_->StatusOf(*added);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->members.size(), 3u) << st->ToString();
}

TEST_F(ClusterTest, AddingAFourthNodeAndRemovingOneUnderLoad) {
  cluster_ = StartCluster();
  ASSERT_TRUE(cluster_);
  History history;
  Workload w(cluster_.get(), &history, {});
  std::mutex targets_mu;
  std::vector<uint64_t> targets = cluster_->ids();
  w.set_targets([&] {
    std::lock_guard<std::mutex> l(targets_mu);
    return targets;
  });
  w.Start();
  ASSERT_TRUE(w.WaitMoreAcked(100)) << Summary(w);

  auto added = cluster_->AddNode();
  ASSERT_TRUE(added.ok()) << added.status().ToString();
  uint64_t n4 = *added;
  EXPECT_EQ(cluster_->ids().size(), 4u);
  // Promoted to voter once caught up, as seen by the leader.
  ASSERT_TRUE(WaitFor(
      [&] {
        uint64_t leader = cluster_->WaitLeader(5s);
        if (leader == 0) return false;
        auto s = cluster_->StatusOf(leader);
        const MemberStatus* m = s.ok() ? s->member(n4) : nullptr;
        return m && m->kind == "voter";
      },
      60s))
      << "node " << n4 << " was not promoted";
  {
    std::lock_guard<std::mutex> l(targets_mu);
    targets.push_back(n4);
  }
  ASSERT_TRUE(w.WaitMoreAcked(100)) << Summary(w);

  // Remove a follower of the original three while writes continue.
  uint64_t leader = cluster_->WaitLeader();
  uint64_t removed = 0;
  for (uint64_t id : {1, 2, 3}) {
    if (id != leader) removed = id;
  }
  {
    std::lock_guard<std::mutex> l(targets_mu);
    targets = Without(targets, removed);
  }
  Status st = cluster_->RemoveNode(removed);
  ASSERT_TRUE(st.ok()) << st.ToString();
  auto remaining = Without(cluster_->ids(), removed);
  ASSERT_TRUE(WaitFor(
      [&] {
        for (uint64_t id : remaining) {
          auto s = cluster_->StatusOf(id);
          if (!s.ok() || s->members.size() != 3 || s->member(removed)) return false;
        }
        return true;
      },
      30s))
      << "not every remaining node dropped node " << removed;
  cluster_->Terminate(removed);
  ASSERT_TRUE(w.WaitMoreAcked(100)) << Summary(w);
  w.Stop();

  ASSERT_TRUE(cluster_->WaitConverged(60s, remaining));
  EXPECT_TRUE(w.torn_reads().empty()) << w.torn_reads()[0];
  VerifyBatches(*cluster_, remaining, w.batches(), w.shared_keys());
  ExpectLinearizable(history);
  // The new node holds everything, including batches acked before it joined.
  auto s = cluster_->StatusOf(n4);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->role == "leader" || s->role == "follower", true) << s->ToString();
}

bool LogsMention(Cluster& cluster, const std::vector<uint64_t>& ids, const std::string& text) {
  for (uint64_t id : ids) {
    if (cluster.flind(id).log().find(text) != std::string::npos) return true;
  }
  return false;
}

TEST_F(ClusterTest, PeerWithTheWrongSecretIsRefused) {
  cluster_ = StartCluster();
  ASSERT_TRUE(cluster_);
  std::string bad_secret = cluster_->secret_path() + ".wrong";
  std::ofstream(bad_secret) << "not-the-cluster-secret\n";

  // 1. A new node joining with the wrong secret is refused and says why.
  Cluster::AddOptions ao;
  ao.secret_file = bad_secret;
  ao.wait_ready = false;
  auto added = cluster_->AddNode(ao);
  ASSERT_TRUE(added.ok()) << added.status().ToString();
  uint64_t stranger = *added;
  ASSERT_TRUE(WaitFor([&] { return !cluster_->flind(stranger).Alive(); }, 30s))
      << "flind joining with the wrong secret kept running";
  EXPECT_NE(cluster_->flind(stranger).last_exit_status(), 0);
  EXPECT_TRUE(LogsMention(*cluster_, {stranger}, "secret")) << cluster_->flind(stranger).log();
  uint64_t leader = cluster_->WaitLeader(30s, {1, 2, 3});
  ASSERT_NE(leader, 0u);
  auto s = cluster_->StatusOf(leader);
  ASSERT_TRUE(s.ok());
  if (const MemberStatus* m = s->member(stranger)) {
    EXPECT_EQ(m->kind, "learner") << s->ToString();
    EXPECT_LE(m->match, 0) << s->ToString();
    EXPECT_TRUE(cluster_->RemoveNode(stranger).ok());
  }

  // 2. A member restarted with the wrong secret cannot talk to its peers:
  // every handshake fails, nothing reaches it, the others keep serving.
  uint64_t follower = Without(cluster_->ids(), leader)[0];
  cluster_->Terminate(follower);
  cluster_->SetSecretFile(follower, bad_secret);
  std::string why;
  ASSERT_TRUE(cluster_->Restart(follower, &why)) << why;
  ASSERT_TRUE(WaitFor(
      [&] {
        return LogsMention(*cluster_, {1, 2, 3}, "authentication failed");
      },
      30s))
      << "no log line about the wrong secret";
  for (int i = 0; i < 20; ++i) {
    auto r = cluster_->Command(leader, {"SET", "after-bad-peer", std::to_string(i)});
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->type, Reply::Type::kStatus) << client::DebugString(*r);
  }
  auto c = StaleConnection(*cluster_, follower);
  ASSERT_TRUE(c);
  auto v = c->Get("after-bad-peer");
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_FALSE(v->has_value()) << "data reached a peer with the wrong secret";
  auto fs = cluster_->StatusOf(follower);
  ASSERT_TRUE(fs.ok());
  EXPECT_NE(fs->role, "leader") << fs->ToString();

  // 3. With the right secret again it rejoins and catches up.
  cluster_->Terminate(follower);
  cluster_->SetSecretFile(follower, cluster_->secret_path());
  ASSERT_TRUE(cluster_->Restart(follower, &why)) << why;
  ASSERT_TRUE(cluster_->WaitConverged(60s, {1, 2, 3}));
  c = StaleConnection(*cluster_, follower);
  ASSERT_TRUE(c);
  v = c->Get("after-bad-peer");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->value_or("(nil)"), "19");
}

// Asserts that a linearizable read and a write on `id` both fail with
// -TRYAGAIN after about the request timeout, and a stale read is served.
void ExpectMinorityRefuses(Cluster& cluster, uint64_t id) {
  auto c = cluster.Connect(id, ClientOptions());
  ASSERT_TRUE(c) << "cannot connect to node " << id;
  auto start = Clock::now();
  auto w = c->Command({"SET", "minority-write", "x"});
  auto took = Clock::now() - start;
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_TRUE(IsTryAgain(*w)) << "write on the minority side: " << client::DebugString(*w);
  EXPECT_GE(took, 800ms) << "gave up before --request-timeout-ms";
  auto r = c->Command({"GET", "shared:0"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(IsTryAgain(*r)) << "linearizable read on the minority side: "
                              << client::DebugString(*r);
  auto m = c->Command({"MGET", "shared:0", "shared:1"});
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_TRUE(IsTryAgain(*m)) << client::DebugString(*m);
  // It does not claim to be healthy: it knows no leader (or is not caught up).
  std::string health;
  EXPECT_TRUE(WaitFor(
      [&] {
        auto h = c->Command({"CLUSTER.HEALTH"});
        health = h.ok() ? client::DebugString(*h) : h.status().ToString();
        return h.ok() && IsTryAgain(*h);
      },
      10s))
      << "CLUSTER.HEALTH on the minority side: " << health;
  // Stale reads are an explicit opt-in and are served locally.
  ASSERT_TRUE(c->Command({"CONSISTENCY", "stale"}).ok());
  auto s = c->Command({"GET", "shared:0"});
  ASSERT_TRUE(s.ok());
  EXPECT_FALSE(s->is_error()) << client::DebugString(*s);
}

// The checking pipeline bites on real daemons: a stale read from a
// partitioned follower (explicitly asked for with CONSISTENCY stale) is
// recorded like any other read and the checker rejects the history, while
// the same read at the default consistency is refused.
TEST_F(ClusterTest, HistoryCheckerCatchesAStaleReadFromAPartitionedFollower) {
  cluster_ = StartCluster();
  ASSERT_TRUE(cluster_);
  uint64_t leader = cluster_->WaitLeader();
  uint64_t follower = Without(cluster_->ids(), leader)[0];
  History history;
  auto to = [&](uint64_t id) {
    return [this, id]() -> std::unique_ptr<client::Connection> {
      return cluster_->Connect(id, ClientOptions());
    };
  };
  RecordingClient writer(&history, to(leader));
  RecordingClient stale_reader(&history, to(follower));
  ASSERT_TRUE(stale_reader.Raw({"CONSISTENCY", "stale"}).ok());
  ASSERT_EQ(writer.Set("x", "v1"), Outcome::kOk) << writer.last_error();
  ASSERT_TRUE(cluster_->WaitConverged());
  cluster_->Isolate(follower);
  ASSERT_EQ(writer.Set("x", "v2"), Outcome::kOk) << writer.last_error();
  std::optional<std::string> seen;
  ASSERT_EQ(stale_reader.Get("x", &seen), Outcome::kOk) << stale_reader.last_error();
  EXPECT_EQ(seen.value_or("(nil)"), "v1");
  auto r = history.Check();
  EXPECT_FALSE(r.ok) << "a stale read after an acknowledged write passed the checker:\n"
                     << history.Dump("x");
  EXPECT_EQ(r.key, "x");
  // At the default consistency the partitioned follower refuses instead.
  RecordingClient reader(&history, to(follower));
  EXPECT_EQ(reader.Get("x"), Outcome::kFailed);
  EXPECT_EQ(reader.last_error().rfind("TRYAGAIN", 0), 0u) << reader.last_error();
  cluster_->HealAll();
}

TEST_F(ClusterTest, IsolatedLeaderRefusesWhileTheMajorityServes) {
  cluster_ = StartCluster();
  ASSERT_TRUE(cluster_);
  History history;
  Workload w(cluster_.get(), &history, {});
  w.Start();
  ASSERT_TRUE(w.WaitMoreAcked(100)) << Summary(w);

  uint64_t old_leader = cluster_->WaitLeader();
  cluster_->Isolate(old_leader);
  auto majority = Without(cluster_->ids(), old_leader);
  uint64_t new_leader = cluster_->WaitLeader(30s, majority);
  ASSERT_NE(new_leader, 0u) << "the majority did not elect a leader";
  EXPECT_NE(new_leader, old_leader);
  ASSERT_TRUE(w.WaitMoreAcked(100)) << "the majority did not keep serving: " << Summary(w);
  ExpectMinorityRefuses(*cluster_, old_leader);

  cluster_->HealAll();
  ASSERT_TRUE(w.WaitMoreAcked(100)) << Summary(w);
  StopAndVerify(*cluster_, cluster_->ids(), w, history, "nodes did not converge after healing");
}

TEST_F(ClusterTest, IsolatedFollowerRefusesWhileTheLeaderKeepsServing) {
  cluster_ = StartCluster();
  ASSERT_TRUE(cluster_);
  History history;
  Workload w(cluster_.get(), &history, {});
  w.Start();
  ASSERT_TRUE(w.WaitMoreAcked(100)) << Summary(w);

  uint64_t leader = cluster_->WaitLeader();
  uint64_t follower = Without(cluster_->ids(), leader)[0];
  cluster_->Isolate(follower);
  ASSERT_TRUE(w.WaitMoreAcked(100)) << "the majority did not keep serving: " << Summary(w);
  ExpectMinorityRefuses(*cluster_, follower);
  // The isolated follower's elections (pre-vote) do not disturb the leader.
  EXPECT_EQ(cluster_->WaitLeader(10s, Without(cluster_->ids(), follower)), leader);

  cluster_->HealAll();
  ASSERT_TRUE(w.WaitMoreAcked(100)) << Summary(w);
  StopAndVerify(*cluster_, cluster_->ids(), w, history, "nodes did not converge after healing");
}

TEST_F(ClusterTest, OneWayCutsKeepTheClusterCorrect) {
  cluster_ = StartCluster();
  ASSERT_TRUE(cluster_);
  History history;
  Workload w(cluster_.get(), &history, {});
  w.Start();
  ASSERT_TRUE(w.WaitMoreAcked(100)) << Summary(w);

  // 1. The leader's messages to both followers are swallowed (connections
  // stay open); it still hears them. The followers must elect one of
  // themselves and keep serving.
  uint64_t old_leader = cluster_->WaitLeader();
  auto followers = Without(cluster_->ids(), old_leader);
  for (uint64_t f : followers) cluster_->CutLinkOneWay(old_leader, f);
  uint64_t new_leader = cluster_->WaitLeader(30s, followers);
  ASSERT_NE(new_leader, 0u) << "followers cut off from the leader did not elect a new one";
  EXPECT_NE(new_leader, old_leader);
  ASSERT_TRUE(w.WaitMoreAcked(100)) << "writes did not continue: " << Summary(w);
  EXPECT_GT(cluster_->inbound(followers[0])->stats().dropped_to_target, 0u);
  cluster_->HealAll();
  ASSERT_TRUE(cluster_->WaitLeader(30s) != 0);
  ASSERT_TRUE(w.WaitMoreAcked(50)) << Summary(w);

  // 2. A follower's messages to the leader are refused (it still hears the
  // leader): the leader keeps its quorum with the other follower.
  uint64_t leader = cluster_->WaitLeader();
  uint64_t deaf = Without(cluster_->ids(), leader)[0];
  cluster_->CutLink(deaf, leader);
  ASSERT_TRUE(w.WaitMoreAcked(100)) << "writes did not continue: " << Summary(w);
  cluster_->HealAll();
  ASSERT_TRUE(w.WaitMoreAcked(50)) << Summary(w);
  StopAndVerify(*cluster_, cluster_->ids(), w, history, "nodes did not converge after healing");
}

}  // namespace
}  // namespace flin::test
