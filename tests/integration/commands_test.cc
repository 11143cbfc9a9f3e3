// Every command over the unix socket and TCP, through the client library,
// against a real flind.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <set>
#include <thread>

#include "base/clock.h"
#include "tests/integration/harness.h"

namespace flin::test {
namespace {

using client::Reply;
using T = Reply::Type;

class CommandsTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    std::string why;
    ASSERT_TRUE(flind_.Start(&why)) << why;
    c_ = flind_.Connect(/*tcp=*/GetParam());
    ASSERT_TRUE(c_);
  }
  Reply R(const std::vector<std::string_view>& args) { return Cmd(*c_, args); }
  void ExpectOk(const std::vector<std::string_view>& args) {
    Reply r = R(args);
    EXPECT_EQ(r.type, T::kStatus) << args[0] << ": " << r.str;
    EXPECT_EQ(r.str, "OK");
  }
  void ExpectInt(const std::vector<std::string_view>& args, int64_t want) {
    Reply r = R(args);
    EXPECT_EQ(r.type, T::kInteger) << args[0] << ": " << r.str;
    EXPECT_EQ(r.integer, want) << args[0];
  }
  void ExpectBulk(const std::vector<std::string_view>& args, std::string_view want) {
    Reply r = R(args);
    EXPECT_EQ(r.type, T::kBulk) << args[0] << ": " << r.str;
    EXPECT_EQ(r.str, want) << args[0];
  }
  void ExpectNil(const std::vector<std::string_view>& args) {
    Reply r = R(args);
    EXPECT_EQ(r.type, T::kNil) << args[0] << ": " << r.str;
  }
  void ExpectError(const std::vector<std::string_view>& args, std::string_view want) {
    Reply r = R(args);
    EXPECT_EQ(r.type, T::kError) << args[0];
    EXPECT_EQ(r.str.substr(0, want.size()), want) << r.str;
  }

  Flind flind_;
  std::unique_ptr<client::Connection> c_;
};

INSTANTIATE_TEST_SUITE_P(Transports, CommandsTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "tcp" : "unix"; });

TEST_P(CommandsTest, ConnectionCommands) {
  Reply r = R({"PING"});
  EXPECT_EQ(r.type, T::kStatus);
  EXPECT_EQ(r.str, "PONG");
  ExpectBulk({"PING", "hi"}, "hi");
  ExpectBulk({"ECHO", std::string_view("a\0b", 3)}, std::string_view("a\0b", 3));
  ExpectOk({"SELECT", "0"});
  ExpectError({"SELECT", "1"}, "ERR DB index is out of range");
  r = R({"HELLO", "2"});
  ASSERT_EQ(r.type, T::kArray);
  EXPECT_EQ(r.elements[0].str, "server");
  EXPECT_EQ(r.elements[1].str, "flin");
  ExpectError({"HELLO", "3"}, "NOPROTO");
  ExpectOk({"CLIENT", "SETNAME", "tester"});
  ExpectBulk({"CLIENT", "GETNAME"}, "tester");
  ExpectError({"AUTH", "x"}, "ERR AUTH <password> called without any password configured");
  ExpectError({"NOSUCH", "a"}, "ERR unknown command 'NOSUCH', with args beginning with: 'a'");
  ExpectError({"GET"}, "ERR wrong number of arguments for 'get' command");
  r = R({"COMMAND", "COUNT"});
  EXPECT_EQ(r.type, T::kInteger);
  EXPECT_GT(r.integer, 30);
  r = R({"COMMAND", "INFO", "mset"});
  ASSERT_EQ(r.type, T::kArray);
  EXPECT_EQ(r.elements[0].elements[0].str, "mset");
  EXPECT_EQ(r.elements[0].elements[1].integer, -3);
  r = R({"CONFIG", "GET", "maxclients"});
  ASSERT_EQ(r.type, T::kArray);
  ASSERT_EQ(r.elements.size(), 2u);
  EXPECT_EQ(r.elements[1].str, "10000");
  r = R({"INFO"});
  EXPECT_NE(r.str.find("# Server"), std::string::npos);
  EXPECT_NE(r.str.find("applied_index:"), std::string::npos);
  ExpectOk({"QUIT"});
  EXPECT_FALSE(c_->Command({"PING"}).ok());  // the server closed the connection
}

TEST_P(CommandsTest, SetAndGetWithOptions) {
  std::string key("k\0\r\n", 4), val("v\0\xff\r\n", 5);
  ExpectOk({"SET", key, val});
  ExpectBulk({"GET", key}, val);
  ExpectNil({"GET", "missing"});
  ExpectNil({"SET", key, "x", "NX"});
  ExpectBulk({"GET", key}, val);
  ExpectNil({"SET", "new", "x", "XX"});
  ExpectNil({"GET", "new"});
  ExpectBulk({"SET", key, "second", "GET"}, val);
  ExpectNil({"SET", "fresh", "1", "GET"});
  ExpectOk({"SET", "t", "v", "EX", "100"});
  Reply ttl = R({"TTL", "t"});
  EXPECT_GE(ttl.integer, 99);
  EXPECT_LE(ttl.integer, 100);
  ExpectOk({"SET", "t", "v2", "KEEPTTL"});
  EXPECT_GT(R({"PTTL", "t"}).integer, 90000);
  ExpectOk({"SET", "t", "v3"});
  ExpectInt({"TTL", "t"}, -1);
  std::string at = std::to_string(WallMillis() / 1000 + 1000);
  ExpectOk({"SET", "t", "v", "EXAT", at});
  ExpectInt({"EXPIRETIME", "t"}, std::stoll(at));
  ExpectOk({"SET", "t", "v", "PXAT", std::to_string(WallMillis() + 50000)});
  EXPECT_GT(R({"PTTL", "t"}).integer, 40000);
  ExpectError({"SET", "t", "v", "EX", "0"}, "ERR invalid expire time in 'set' command");
  ExpectError({"SET", "t", "v", "EX", "abc"}, "ERR value is not an integer or out of range");
  ExpectError({"SET", "t", "v", "NX", "XX"}, "ERR syntax error");
  ExpectError({"SET", "t", "v", "EX", "10", "PX", "10"}, "ERR syntax error");
  ExpectError({"SET", "t", "v", "EX", "9223372036854775807"}, "ERR invalid expire time");
  ExpectInt({"TTL", "missing"}, -2);
  ExpectInt({"PTTL", "missing"}, -2);
}

TEST_P(CommandsTest, BatchCommandsAreAtomicAndCount) {
  ExpectOk({"MSET", "a", "1", "b", "2", "c", "3"});
  Reply r = R({"MGET", "a", "x", "c"});
  ASSERT_EQ(r.type, T::kArray);
  ASSERT_EQ(r.elements.size(), 3u);
  EXPECT_EQ(r.elements[0].str, "1");
  EXPECT_EQ(r.elements[1].type, T::kNil);
  EXPECT_EQ(r.elements[2].str, "3");
  // Odd argument count: rejected, nothing written.
  ExpectError({"MSET", "p", "1", "q"}, "ERR wrong number of arguments for 'mset' command");
  ExpectInt({"EXISTS", "p", "q"}, 0);
  ExpectInt({"MDEL", "a", "b", "nope"}, 2);
  ExpectInt({"DEL", "c", "c"}, 1);
  ExpectInt({"EXISTS", "a", "b", "c"}, 0);
  ExpectInt({"MSETNX", "n1", "1", "n2", "2"}, 1);
  ExpectInt({"MSETNX", "n2", "x", "n3", "3"}, 0);
  ExpectInt({"EXISTS", "n3"}, 0);
  ExpectBulk({"GET", "n2"}, "2");
  ExpectInt({"MSETEX", "2", "e1", "1", "e2", "2", "PX", "100000"}, 1);
  EXPECT_GT(R({"PTTL", "e2"}).integer, 90000);
  ExpectInt({"MSETEX", "2", "e1", "x", "zz", "y", "XX", "EX", "10"}, 0);
  ExpectBulk({"GET", "e1"}, "1");
  ExpectInt({"MSETEX", "1", "e1", "z", "KEEPTTL"}, 1);
  EXPECT_GT(R({"PTTL", "e1"}).integer, 90000);
  ExpectError({"MSETEX", "0", "a", "b"}, "ERR invalid numkeys");
  ExpectError({"MSETEX", "3", "a", "b"}, "ERR wrong number of key-value pairs");
  ExpectInt({"EXISTS", "n1", "n1", "n2"}, 3);  // duplicates count, as in Redis
  ExpectInt({"UNLINK", "n1"}, 1);
}

TEST_P(CommandsTest, OversizedBatchIsRejectedWhole) {
  // Default max-batch-bytes is 64 MiB; 70 values of 1 MiB exceed it.
  std::vector<std::string> owned;
  for (int i = 0; i < 70; ++i) {
    owned.push_back("big" + std::to_string(i));
    owned.push_back(std::string(1 << 20, 'x'));
  }
  std::vector<std::string_view> args = {"MSET"};
  for (const auto& s : owned) args.push_back(s);
  ExpectError(args, "ERR batch of");
  ExpectInt({"EXISTS", "big0", "big69"}, 0);
  ExpectInt({"DBSIZE"}, 0);
}

TEST_P(CommandsTest, ExpireFamily) {
  ExpectOk({"SET", "k", "v"});
  ExpectInt({"EXPIRE", "k", "100", "XX"}, 0);
  ExpectInt({"EXPIRE", "k", "100", "NX"}, 1);
  ExpectInt({"EXPIRE", "k", "50", "GT"}, 0);
  ExpectInt({"EXPIRE", "k", "50", "LT"}, 1);
  Reply t = R({"TTL", "k"});
  EXPECT_TRUE(t.integer == 50 || t.integer == 49) << t.integer;
  ExpectInt({"PEXPIRE", "k", "200000"}, 1);
  EXPECT_GT(R({"PTTL", "k"}).integer, 190000);
  ExpectInt({"EXPIREAT", "k", std::to_string(WallMillis() / 1000 + 500)}, 1);
  ExpectInt({"PEXPIREAT", "k", std::to_string(WallMillis() + 600000)}, 1);
  EXPECT_GT(R({"PEXPIRETIME", "k"}).integer, WallMillis() + 500000);
  ExpectInt({"PERSIST", "k"}, 1);
  ExpectInt({"PERSIST", "k"}, 0);
  ExpectInt({"TTL", "k"}, -1);
  ExpectInt({"EXPIRE", "missing", "10"}, 0);
  ExpectError({"EXPIRE", "k", "10", "NX", "XX"}, "ERR NX and XX, GT or LT options");
  ExpectError({"EXPIRE", "k", "10", "GT", "LT"}, "ERR GT and LT options");
  ExpectError({"EXPIRE", "k", "ten"}, "ERR value is not an integer");
  ExpectError({"EXPIRE", "k", "10", "BOGUS"}, "ERR Unsupported option BOGUS");
  // A deadline in the past deletes the key now.
  ExpectInt({"EXPIRE", "k", "-1"}, 1);
  ExpectInt({"EXISTS", "k"}, 0);
  ExpectOk({"SET", "short", "v", "PX", "30"});
  EXPECT_TRUE(WaitFor([&] { return R({"EXISTS", "short"}).integer == 0; }));
  ExpectNil({"GET", "short"});
  Reply ty = R({"TYPE", "short"});
  EXPECT_EQ(ty.str, "none");
  ExpectOk({"SET", "s2", "v"});
  EXPECT_EQ(R({"TYPE", "s2"}).str, "string");
}

TEST_P(CommandsTest, ExpiredKeysAreSweptFromStateDb) {
  ExpectOk({"MSET", "keep", "1"});
  for (int i = 0; i < 50; ++i) {
    std::string k = "gone" + std::to_string(i);
    ExpectOk({"SET", k, "v", "PX", "20"});
  }
  // The sweeper proposes deletes; once they are committed to state.db the
  // rows are physically gone, which a second SQLite connection can see.
  std::string db = flind_.data_dir() + "/state.db";
  auto rows = [&] {
    sqlite3* h = nullptr;
    sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr);
    sqlite3_stmt* s = nullptr;
    int64_t n = -1;
    if (sqlite3_prepare_v2(h, "SELECT count(*) FROM kv", -1, &s, nullptr) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW) {
      n = sqlite3_column_int64(s, 0);
    }
    sqlite3_finalize(s);
    sqlite3_close(h);
    return n;
  };
  EXPECT_TRUE(WaitFor([&] { return rows() == 1; })) << rows();
  ExpectInt({"DBSIZE"}, 1);
}

TEST_P(CommandsTest, ScanVisitsEveryKeyOnceAndKeysMatches) {
  std::set<std::string> want;
  for (int i = 0; i < 250; ++i) {
    std::string k = (i % 2 ? "user:" : "item:") + std::to_string(i);
    ExpectOk({"SET", k, "v"});
    if (i % 2) want.insert(k);
  }
  std::set<std::string> seen;
  std::string cursor = "0";
  int rounds = 0;
  do {
    Reply r = R({"SCAN", cursor, "MATCH", "user:*", "COUNT", "17"});
    ASSERT_EQ(r.type, T::kArray);
    cursor = r.elements[0].str;
    for (const auto& k : r.elements[1].elements) EXPECT_TRUE(seen.insert(k.str).second) << k.str;
    ASSERT_LT(++rounds, 1000);
  } while (cursor != "0");
  EXPECT_EQ(seen, want);
  Reply all = R({"SCAN", "0", "COUNT", "1000"});
  EXPECT_EQ(all.elements[0].str, "0");
  EXPECT_EQ(all.elements[1].elements.size(), 250u);
  ExpectError({"SCAN", "123456789"}, "ERR invalid cursor");
  Reply keys = R({"KEYS", "user:1?"});
  std::set<std::string> got;
  for (const auto& k : keys.elements) got.insert(k.str);
  EXPECT_EQ(got, (std::set<std::string>{"user:11", "user:13", "user:15", "user:17", "user:19"}));
  ExpectInt({"DBSIZE"}, 250);
  ExpectOk({"FLUSHALL"});
  ExpectInt({"DBSIZE"}, 0);
}

TEST_P(CommandsTest, PipelineRepliesInOrderWithReadYourWrites) {
  std::vector<std::vector<std::string>> cmds;
  for (int i = 0; i < 500; ++i) {
    std::string k = "p" + std::to_string(i % 10);
    cmds.push_back({"SET", k, std::to_string(i)});
    cmds.push_back({"GET", k});
  }
  auto replies = c_->Pipeline(cmds);
  ASSERT_TRUE(replies.ok()) << replies.status().ToString();
  ASSERT_EQ(replies->size(), 1000u);
  for (int i = 0; i < 500; ++i) {
    EXPECT_EQ((*replies)[2 * i].str, "OK");
    EXPECT_EQ((*replies)[2 * i + 1].str, std::to_string(i)) << i;
  }
}

TEST_P(CommandsTest, ClientLibraryTypedBatchApi) {
  std::map<std::string, std::string> kv;
  for (int i = 0; i < 100; ++i) kv["b" + std::to_string(i)] = std::string(i, '\0') + "v";
  ASSERT_TRUE(c_->BatchSet(kv).ok());
  std::vector<std::string> keys = {"b0", "b99", "none"};
  auto got = c_->BatchGet(keys);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ((*got)[0], kv["b0"]);
  EXPECT_EQ((*got)[1], kv["b99"]);
  EXPECT_FALSE((*got)[2].has_value());
  auto n = c_->BatchDelete({"b0", "b1", "none"});
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 2);
  ASSERT_TRUE(c_->BatchSet({{"ttl1", "x"}, {"ttl2", "y"}}, std::chrono::milliseconds(60000)).ok());
  EXPECT_GT(R({"PTTL", "ttl2"}).integer, 50000);
  ASSERT_TRUE(c_->Set("single", "s").ok());
  EXPECT_EQ(**c_->Get("single"), "s");
  EXPECT_EQ(*c_->Del({"single"}), 1);
  auto pool_cfg = client::DefaultPoolConfig({GetParam() ? flind_.tcp_addr() : flind_.unix_addr()});
  client::Pool pool(pool_cfg);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&pool, t] {
      for (int i = 0; i < 50; ++i) {
        std::string k = "pool" + std::to_string(t) + ":" + std::to_string(i);
        EXPECT_TRUE(pool.BatchSet({{k, "1"}, {k + "b", "2"}}).ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  auto cnt = pool.BatchGet({"pool0:0", "pool3:49b"});
  ASSERT_TRUE(cnt.ok());
  EXPECT_EQ((*cnt)[1], "2");
}

TEST_P(CommandsTest, ImportStagingAndExportSnapshot) {
  Reply id = R({"IMPORT.BEGIN"});
  ASSERT_EQ(id.type, T::kBulk);
  ExpectInt({"IMPORT.ADD", id.str, "i1", "a", "0", "i2", "b", "0"}, 2);
  ExpectInt({"EXISTS", "i1"}, 0);  // staged rows are invisible
  ExpectError({"IMPORT.ADD", id.str, "i3", "c", "soon"}, "ERR IMPORT.ADD: expire-at-ms");
  ExpectInt({"IMPORT.COMMIT", id.str}, 2);
  ExpectBulk({"GET", "i2"}, "b");
  ExpectError({"IMPORT.COMMIT", id.str}, "ERR no such import");
  Reply id2 = R({"IMPORT.BEGIN"});
  ExpectInt({"IMPORT.ADD", id2.str, "i9", "z", "0"}, 1);
  ExpectOk({"IMPORT.ABORT", id2.str});
  ExpectInt({"EXISTS", "i9"}, 0);

  ExpectOk({"MSET", "x:1", "1", "x:2", std::string("\0\1", 2), "y:1", "3"});
  ExpectInt({"PEXPIRE", "x:1", "100000"}, 1);
  Reply ex = R({"EXPORT.BEGIN", "x:"});
  ASSERT_EQ(ex.type, T::kBulk);
  ExpectOk({"SET", "x:3", "after"});  // not in the snapshot
  Reply rows = R({"EXPORT.NEXT", ex.str, "1"});
  ASSERT_EQ(rows.elements.size(), 1u);
  EXPECT_EQ(rows.elements[0].elements[0].str, "x:1");
  EXPECT_GT(rows.elements[0].elements[2].integer, WallMillis());
  rows = R({"EXPORT.NEXT", ex.str, "10"});
  ASSERT_EQ(rows.elements.size(), 1u);
  EXPECT_EQ(rows.elements[0].elements[1].str, std::string("\0\1", 2));
  EXPECT_EQ(rows.elements[0].elements[2].integer, 0);
  rows = R({"EXPORT.NEXT", ex.str, "10"});
  EXPECT_EQ(rows.elements.size(), 0u);
  ExpectError({"EXPORT.NEXT", ex.str, "10"}, "ERR no such export");
}

}  // namespace
}  // namespace flin::test
