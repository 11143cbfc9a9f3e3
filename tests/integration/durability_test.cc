// Durability and atomicity with real processes: kill -9 while clients write
// MSET batches, restart, and check every acknowledged batch is whole and no
// batch is half present; restarts keep data and TTLs; the data-dir lock and
// protected mode refuse what they must.
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "base/clock.h"
#include "tests/integration/harness.h"

namespace flin::test {
namespace {

using client::Reply;

TEST(DurabilityTest, KillNineDuringBatchesLosesNoAckedBatchAndSplitsNone) {
  TempDir dir;
  Flind::Options o;
  o.data_dir = dir.path() + "/data";
  o.tcp = false;
  Flind flind(o);
  std::string why;
  ASSERT_TRUE(flind.Start(&why)) << why;

  constexpr int kThreads = 6, kKeysPerBatch = 40;
  std::mutex mu;
  std::set<std::pair<int, int>> acked;  // (thread, batch)
  std::atomic<int> attempted_max[kThreads];
  std::atomic<bool> stop{false};
  std::atomic<int> total_acked{0};
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t) {
    attempted_max[t] = -1;
    writers.emplace_back([&, t] {
      auto c = flind.Connect();
      if (!c) return;
      for (int b = 0; !stop; ++b) {
        attempted_max[t] = b;
        std::map<std::string, std::string> kv;
        for (int k = 0; k < kKeysPerBatch; ++k) {
          kv["t" + std::to_string(t) + ":b" + std::to_string(b) + ":k" + std::to_string(k)] =
              std::to_string(b);
        }
        if (!c->BatchSet(kv).ok()) return;  // the server died mid-request
        std::lock_guard<std::mutex> l(mu);
        acked.insert({t, b});
        ++total_acked;
      }
    });
  }
  // Kill once a good number of batches are acknowledged (not after a fixed time).
  ASSERT_TRUE(WaitFor([&] { return total_acked >= 600; }, std::chrono::seconds(60)));
  flind.Kill9();
  stop = true;
  for (auto& w : writers) w.join();

  ASSERT_TRUE(flind.Start(&why)) << why;
  auto c = flind.Connect();
  ASSERT_TRUE(c);
  int whole = 0;
  for (int t = 0; t < kThreads; ++t) {
    for (int b = 0; b <= attempted_max[t]; ++b) {
      std::vector<std::string> keys;
      for (int k = 0; k < kKeysPerBatch; ++k) {
        keys.push_back("t" + std::to_string(t) + ":b" + std::to_string(b) + ":k" +
                       std::to_string(k));
      }
      auto got = c->BatchGet(keys);
      ASSERT_TRUE(got.ok());
      int present = 0;
      for (const auto& v : *got) present += v.has_value();
      ASSERT_TRUE(present == 0 || present == kKeysPerBatch)
          << "batch t" << t << " b" << b << " is half applied: " << present << "/" << kKeysPerBatch;
      if (acked.count({t, b})) {
        ASSERT_EQ(present, kKeysPerBatch) << "acknowledged batch t" << t << " b" << b << " lost";
      }
      whole += present == kKeysPerBatch;
    }
  }
  EXPECT_GE(whole, static_cast<int>(acked.size()));
  EXPECT_NE(flind.log().find("recovered:"), std::string::npos);
}

TEST(DurabilityTest, RestartKeepsDataAndTtls) {
  TempDir dir;
  Flind::Options o;
  o.data_dir = dir.path() + "/data";
  Flind flind(o);
  std::string why;
  ASSERT_TRUE(flind.Start(&why)) << why;
  {
    auto c = flind.Connect();
    Cmd(*c, {"MSET", "a", "1", "b", std::string("\0bin\r\n", 6)});
    Cmd(*c, {"SET", "ttl", "v", "EX", "1000"});
    Cmd(*c, {"SET", "short", "v", "PX", "400"});
  }
  EXPECT_EQ(flind.Terminate(), 0);
  EXPECT_NE(flind.log().find("stopped cleanly"), std::string::npos);
  ASSERT_TRUE(flind.Start(&why)) << why;
  auto c = flind.Connect();
  EXPECT_EQ(Cmd(*c, {"GET", "a"}).str, "1");
  EXPECT_EQ(Cmd(*c, {"GET", "b"}).str, std::string("\0bin\r\n", 6));
  int64_t ttl = Cmd(*c, {"TTL", "ttl"}).integer;
  EXPECT_GE(ttl, 995);
  EXPECT_LE(ttl, 1000);
  // The short TTL is an absolute deadline: it runs out across the restart too.
  EXPECT_TRUE(WaitFor([&] { return Cmd(*c, {"EXISTS", "short"}).integer == 0; }));
  // kill -9 right after acknowledged writes: they survive via the log even
  // though state.db had not committed them.
  Cmd(*c, {"MSET", "after1", "x", "after2", "y"});
  flind.Kill9();
  ASSERT_TRUE(flind.Start(&why)) << why;
  auto c2 = flind.Connect();
  Reply r = Cmd(*c2, {"MGET", "after1", "after2", "a"});
  ASSERT_EQ(r.elements.size(), 3u);
  EXPECT_EQ(r.elements[0].str, "x");
  EXPECT_EQ(r.elements[1].str, "y");
  EXPECT_EQ(r.elements[2].str, "1");
}

// The write buffer at its smallest (1 MiB) turns over many generations
// while several clients write, overwrite and delete; a clean stop halfway
// leaves the buffer to the log. Every key must end exactly as the model
// says, and DBSIZE must count exactly the live keys.
TEST(DurabilityTest, TinyWriteBufferKeepsEveryKeyExactAcrossGenerationsAndRestart) {
  TempDir dir;
  Flind::Options o;
  o.data_dir = dir.path() + "/data";
  o.tcp = false;
  o.extra_args = {"--write-buffer-mb", "1", "--apply-commit-ms", "5"};
  Flind flind(o);
  std::string why;
  ASSERT_TRUE(flind.Start(&why)) << why;

  constexpr int kThreads = 4, kKeys = 12'000, kBatch = 100;  // keys per thread
  auto key = [](int t, int k) { return "t" + std::to_string(t) + ":" + std::to_string(k); };
  // Round r writes value "r<r>" to every key of the thread (in shuffled
  // batches); round 2 then deletes every third key.
  auto run_round = [&](int round) {
    std::vector<std::thread> writers;
    std::atomic<int> failures{0};
    for (int t = 0; t < kThreads; ++t) {
      writers.emplace_back([&, t] {
        auto c = flind.Connect();
        if (!c) {
          ++failures;
          return;
        }
        std::vector<int> order(kKeys);
        for (int k = 0; k < kKeys; ++k) order[k] = (k * 7919 + round * 31) % kKeys;
        for (int b = 0; b < kKeys; b += kBatch) {
          std::map<std::string, std::string> kv;
          std::vector<std::string> dels;
          for (int i = b; i < b + kBatch; ++i) {
            int k = order[i];
            if (round == 2 && k % 3 == 0) {
              dels.push_back(key(t, k));
            } else {
              kv[key(t, k)] = "r" + std::to_string(round) + ":" + std::to_string(k);
            }
          }
          if (!c->BatchSet(kv).ok()) ++failures;
          if (!dels.empty() && !c->BatchDelete(dels).ok()) ++failures;
        }
      });
    }
    for (auto& w : writers) w.join();
    return failures.load();
  };
  ASSERT_EQ(run_round(1), 0);
  EXPECT_EQ(flind.Terminate(), 0);  // stop with the buffer full of round 1
  ASSERT_TRUE(flind.Start(&why)) << why;
  ASSERT_EQ(run_round(2), 0);

  auto c = flind.Connect();
  ASSERT_TRUE(c);
  int64_t live = 0;
  for (int t = 0; t < kThreads; ++t) {
    std::vector<std::string> keys;
    for (int k = 0; k < kKeys; ++k) keys.push_back(key(t, k));
    auto got = c->BatchGet(keys);
    ASSERT_TRUE(got.ok());
    for (int k = 0; k < kKeys; ++k) {
      const auto& v = (*got)[k];
      if (k % 3 == 0) {
        ASSERT_FALSE(v.has_value()) << keys[k] << " was deleted in round 2";
      } else {
        ASSERT_TRUE(v.has_value()) << keys[k] << " lost";
        ASSERT_EQ(*v, "r2:" + std::to_string(k)) << keys[k];
        ++live;
      }
    }
  }
  EXPECT_EQ(Cmd(*c, {"DBSIZE"}).integer, live);
  // The small buffer really did turn over: state.db committed many times.
  std::string info = Cmd(*c, {"INFO", "persistence"}).str;
  EXPECT_EQ(info.find("state_db_committed_index:0\r"), std::string::npos) << info;
}

// Point reads answered from the row cache, from SQLite and from the write
// buffer while generations commit every few milliseconds: every MGET of a
// group (written whole by one MSET) is one batch, and no reader ever sees a
// group go back to an older batch (a stale row cache would show both).
TEST(DurabilityTest, PointReadsNeverGoBackWhileGenerationsCommit) {
  TempDir dir;
  Flind::Options o;
  o.data_dir = dir.path() + "/data";
  o.tcp = false;
  o.extra_args = {"--write-buffer-mb", "1", "--apply-commit-ms", "1"};
  Flind flind(o);
  std::string why;
  ASSERT_TRUE(flind.Start(&why)) << why;

  constexpr int kGroups = 200, kKeys = 8, kWrites = 6000;
  auto group_keys = [](int g) {
    std::vector<std::string> keys;
    for (int k = 0; k < kKeys; ++k)
      keys.push_back("g" + std::to_string(g) + ":" + std::to_string(k));
    return keys;
  };
  std::atomic<bool> done{false};
  std::atomic<int> failures{0};
  std::mutex mu;
  std::vector<std::string> errors;
  auto fail = [&](std::string what) {
    std::lock_guard<std::mutex> lock(mu);
    if (errors.size() < 5) errors.push_back(std::move(what));
    ++failures;
  };
  std::thread writer([&] {
    auto c = flind.Connect();
    if (!c) return fail("writer cannot connect");
    // Pipelined, 20 MSETs a round trip: one group commit covers them, and
    // a connection's commands still apply in order.
    for (int i = 0; i < kWrites && failures == 0;) {
      std::vector<std::vector<std::string>> p;
      for (int end = i + 20; i < end; ++i) {
        // Mostly a few hot groups (in the buffer), sometimes a cold one
        // (committed, read back through the cache). The value is the
        // write's number: later writes of a group are bigger.
        int g = i % 3 ? (i * 7) % 10 : (i * 7919) % kGroups;
        std::vector<std::string> mset = {"MSET"};
        for (const std::string& k : group_keys(g)) {
          mset.push_back(k);
          mset.push_back(std::to_string(i));
        }
        p.push_back(std::move(mset));
      }
      auto r = c->Pipeline(p);
      if (!r.ok()) return fail("MSET failed: " + r.status().ToString());
      for (const Reply& reply : *r) {
        if (reply.str != "OK") return fail("MSET: " + client::DebugString(reply));
      }
    }
    done = true;
  });
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t) {
    readers.emplace_back([&, t] {
      auto c = flind.Connect();
      if (!c) return fail("reader cannot connect");
      std::vector<int64_t> seen(kGroups, -1);
      for (int i = t; !done && failures == 0; ++i) {
        int g = (i * 31) % kGroups;
        auto got = c->BatchGet(group_keys(g));
        if (!got.ok()) return fail("MGET failed: " + got.status().ToString());
        std::optional<std::string> first = (*got)[0];
        for (const auto& v : *got) {
          if (v != first) return fail("group " + std::to_string(g) + " read half a batch");
        }
        int64_t at = first ? std::stoll(*first) : -1;
        if (at < seen[g]) {
          return fail("group " + std::to_string(g) + " went back from batch " +
                      std::to_string(seen[g]) + " to " + std::to_string(at));
        }
        seen[g] = at;
      }
    });
  }
  writer.join();
  for (auto& r : readers) r.join();
  EXPECT_EQ(failures, 0) << (errors.empty() ? "" : errors[0]);
  auto c = flind.Connect();
  ASSERT_TRUE(c);
  std::string info = Cmd(*c, {"INFO", "persistence"}).str;
  // The cache really answered reads, and generations really committed.
  EXPECT_EQ(info.find("row_cache_hits:0\r"), std::string::npos) << info;
  EXPECT_EQ(info.find("state_db_committed_index:0\r"), std::string::npos) << info;
}

// A log small enough (--log-compact-mb 1) that WriteUntilCompacted's load
// outgrows it.
Flind::Options CompactingOptions() {
  Flind::Options o;
  o.tcp = false;
  o.extra_args = {"--log-compact-mb", "1", "--apply-commit-ms", "5"};
  return o;
}

// 3,000 SETs of `value` over keys k0..k49, then waits until the log has
// been compacted at least once.
void WriteUntilCompacted(client::Connection& c, const std::string& value) {
  for (int i = 0; i < 60; ++i) {
    std::vector<std::vector<std::string>> p;
    for (int j = 0; j < 50; ++j) p.push_back({"SET", "k" + std::to_string(j), value});
    ASSERT_TRUE(c.Pipeline(p).ok());
  }
  auto info = [&] { return Cmd(c, {"INFO", "persistence"}).str; };
  EXPECT_TRUE(WaitFor([&] { return info().find("log_compactions:0\r") == std::string::npos; }))
      << info();
}

TEST(DurabilityTest, LogIsCompactedUnderSteadyWrites) {
  Flind flind(CompactingOptions());
  std::string why;
  ASSERT_TRUE(flind.Start(&why)) << why;
  auto c = flind.Connect();
  std::string value(2000, 'v');
  ASSERT_NO_FATAL_FAILURE(WriteUntilCompacted(*c, value));
  Cmd(*c, {"SET", "last", "1"});
  flind.Kill9();
  ASSERT_TRUE(flind.Start(&why)) << why;
  auto c2 = flind.Connect();
  EXPECT_EQ(Cmd(*c2, {"GET", "last"}).str, "1");
  EXPECT_EQ(Cmd(*c2, {"GET", "k49"}).str, value);
}

// A point read leaves the io thread's read transaction open (it is kept
// until a commit makes it stale). With no read after it, the daemon must
// still end it, or it pins the WAL, no checkpoint completes past it, and
// the log is never compacted.
TEST(DurabilityTest, AnIdleReaderDoesNotHoldBackLogCompaction) {
  Flind flind(CompactingOptions());
  std::string why;
  ASSERT_TRUE(flind.Start(&why)) << why;
  auto c = flind.Connect();
  ASSERT_EQ(Cmd(*c, {"SET", "first", "1"}).str, "OK");
  ASSERT_EQ(Cmd(*c, {"DBSIZE"}).integer, 1);      // committed: the buffer is empty
  ASSERT_EQ(Cmd(*c, {"GET", "first"}).str, "1");  // read from state.db
  std::string value(2000, 'v');
  ASSERT_NO_FATAL_FAILURE(WriteUntilCompacted(*c, value));
}

TEST(DurabilityTest, SecondDaemonOnSameDataDirIsRefused) {
  Flind first;
  std::string why;
  ASSERT_TRUE(first.Start(&why)) << why;
  ProcResult r = RunProcess({FlindPath(), "--data-dir", first.data_dir(), "--listen", "none",
                             "--socket", first.data_dir() + "/other.sock"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("is in use by another flind (pid " + std::to_string(first.pid())),
            std::string::npos)
      << r.err;
  auto c = first.Connect();
  EXPECT_EQ(Cmd(*c, {"PING"}).str, "PONG");
}

TEST(DurabilityTest, ProtectedModeAndAuth) {
  TempDir dir;
  ProcResult r = RunProcess({FlindPath(), "--data-dir", dir.path(), "--listen", "0.0.0.0:0"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("not a loopback address and no password is set"), std::string::npos)
      << r.err;
  r = RunProcess({FlindPath(), "--data-dir", dir.path(), "--bogus-flag"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("bogus-flag"), std::string::npos) << r.err;

  Flind::Options o;
  o.extra_args = {"--requirepass", "s3cret"};
  Flind flind(o);
  std::string why;
  ASSERT_TRUE(flind.Start(&why)) << why;
  auto c = flind.Connect(true);
  EXPECT_EQ(Cmd(*c, {"PING"}).str, "PONG");
  EXPECT_EQ(Cmd(*c, {"GET", "a"}).str, "NOAUTH Authentication required.");
  EXPECT_EQ(Cmd(*c, {"AUTH", "wrong"}).str.rfind("WRONGPASS", 0), 0u);
  EXPECT_EQ(Cmd(*c, {"AUTH", "s3cret"}).str, "OK");
  EXPECT_EQ(Cmd(*c, {"SET", "a", "1"}).str, "OK");
  client::ConnectOptions co;
  co.password = "s3cret";
  auto c2 = flind.Connect(true, co);
  EXPECT_EQ(Cmd(*c2, {"GET", "a"}).str, "1");
  auto c3 = flind.Connect(true);
  EXPECT_EQ(Cmd(*c3, {"HELLO", "2", "AUTH", "default", "s3cret"}).type, Reply::Type::kArray);
  EXPECT_EQ(Cmd(*c3, {"GET", "a"}).str, "1");
}

TEST(DurabilityTest, ConfigFileUsesTheFlagNames) {
  TempDir dir;
  std::string conf = dir.path() + "/flind.toml";
  {
    std::ofstream f(conf);
    f << "# flind configuration\nrequirepass = \"fromfile\"\nmax-clients = 7\n";
  }
  Flind::Options o;
  o.extra_args = {"--config", conf};
  Flind flind(o);
  std::string why;
  ASSERT_TRUE(flind.Start(&why)) << why;
  client::ConnectOptions co;
  co.password = "fromfile";
  auto c = flind.Connect(false, co);
  ASSERT_TRUE(c);
  Reply r = Cmd(*c, {"CONFIG", "GET", "maxclients"});
  ASSERT_EQ(r.elements.size(), 2u);
  EXPECT_EQ(r.elements[1].str, "7");
  {
    std::ofstream f(conf);
    f << "max-clients = \"lots\"\n";
  }
  ProcResult bad = RunProcess({FlindPath(), "--config", conf, "--data-dir", dir.path() + "/d2"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("max-clients"), std::string::npos) << bad.err;
}

// Range reads (DBSIZE, SCAN, KEYS, INFO keyspace, EXPORT) read committed
// state.db, never the write buffer: each must make the apply thread commit
// what was applied before it arrived. With --apply-commit-ms at an hour
// nothing else would commit, so a range read that did not force a commit
// would hang (and a wrong one would miss buffered keys).
TEST(DurabilityTest, RangeReadsCommitTheWriteBufferFirst) {
  TempDir dir;
  Flind::Options o;
  o.data_dir = dir.path() + "/data";
  o.tcp = false;
  o.extra_args = {"--apply-commit-ms", "3600000"};
  Flind flind(o);
  std::string why;
  ASSERT_TRUE(flind.Start(&why)) << why;
  auto c = flind.Connect();
  ASSERT_TRUE(c);
  auto info_field = [&](const std::string& name) -> int64_t {
    Reply r = Cmd(*c, {"INFO", "persistence"});
    size_t at = r.str.find(name + ":");
    if (at == std::string::npos) return -1;
    return std::stoll(r.str.substr(at + name.size() + 1));
  };

  std::set<std::string> want;
  for (int b = 0; b < 20; ++b) {
    std::vector<std::string> args = {"MSET"};
    for (int i = 0; i < 250; ++i) {
      std::string k = "r:" + std::to_string(b * 250 + i);
      args.push_back(k);
      args.push_back("v");
      want.insert(k);
    }
    std::vector<std::string_view> views(args.begin(), args.end());
    ASSERT_EQ(Cmd(*c, views).str, "OK");
  }
  ASSERT_EQ(Cmd(*c, {"DEL", "r:0", "r:1"}).integer, 2);
  want.erase("r:0");
  want.erase("r:1");
  ASSERT_EQ(Cmd(*c, {"SET", "r:gone", "v", "PX", "1"}).str, "OK");  // expires at once
  for (int64_t until = MonoMillis() + 30000; !Cmd(*c, {"GET", "r:gone"}).is_nil();) {
    ASSERT_LT(MonoMillis(), until) << "r:gone did not expire";
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  // Everything so far lives in the write buffer only.
  int64_t applied = info_field("applied_index");
  ASSERT_GT(applied, 0);
  ASSERT_LT(info_field("state_db_committed_index"), applied);

  EXPECT_EQ(Cmd(*c, {"DBSIZE"}).integer, static_cast<int64_t>(want.size()));
  EXPECT_GE(info_field("state_db_committed_index"), applied);

  // A write pipelined ahead of a range read on the same connection is in it.
  auto piped = c->Pipeline({{"SET", "r:piped", "v"},
                            {"DBSIZE"},
                            {"KEYS", "r:pipe*"},
                            {"SET", "r:piped2", "v"},
                            {"INFO", "keyspace"}});
  ASSERT_TRUE(piped.ok());
  want.insert("r:piped");
  EXPECT_EQ((*piped)[1].integer, static_cast<int64_t>(want.size()));
  ASSERT_EQ((*piped)[2].elements.size(), 1u);
  EXPECT_EQ((*piped)[2].elements[0].str, "r:piped");
  want.insert("r:piped2");
  EXPECT_NE((*piped)[4].str.find("db0:keys=" + std::to_string(want.size()) + ","),
            std::string::npos)
      << (*piped)[4].str;

  ASSERT_EQ(Cmd(*c, {"SET", "r:late", "v"}).str, "OK");
  want.insert("r:late");
  std::set<std::string> scanned;
  std::string cursor = "0";
  do {
    Reply r = Cmd(*c, {"SCAN", cursor, "COUNT", "300"});
    ASSERT_EQ(r.elements.size(), 2u) << client::DebugString(r);
    cursor = r.elements[0].str;
    for (const auto& k : r.elements[1].elements) scanned.insert(k.str);
  } while (cursor != "0");
  EXPECT_EQ(scanned, want);
  EXPECT_EQ(Cmd(*c, {"KEYS", "*"}).elements.size(), want.size());

  ASSERT_EQ(Cmd(*c, {"SET", "r:last", "v"}).str, "OK");
  want.insert("r:last");
  Reply info = Cmd(*c, {"INFO", "keyspace"});
  EXPECT_NE(info.str.find("db0:keys=" + std::to_string(want.size()) + ","), std::string::npos)
      << info.str;

  ASSERT_EQ(Cmd(*c, {"SET", "r:exported", "v"}).str, "OK");
  want.insert("r:exported");
  Reply id = Cmd(*c, {"EXPORT.BEGIN", "r:"});
  ASSERT_EQ(id.type, Reply::Type::kBulk) << client::DebugString(id);
  std::set<std::string> exported;
  for (;;) {
    Reply rows = Cmd(*c, {"EXPORT.NEXT", id.str, "1000"});
    ASSERT_EQ(rows.type, Reply::Type::kArray) << client::DebugString(rows);
    if (rows.elements.empty()) break;
    for (const auto& row : rows.elements) exported.insert(row.elements[0].str);
  }
  EXPECT_EQ(exported, want);
}

}  // namespace
}  // namespace flin::test
