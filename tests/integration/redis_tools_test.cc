// Real Redis tools against flind, unchanged: redis-cli (one-shot commands
// over TCP and the unix socket, --pipe mass insertion, piped interactive
// input) and redis-benchmark.
#include <gtest/gtest.h>

#include "tests/integration/harness.h"

namespace flin::test {
namespace {

class RedisToolsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    ASSERT_TRUE(flind_.Start(&why)) << why;
  }
  ProcResult Cli(std::vector<std::string> args, bool unix_socket = false,
                 std::string_view input = {}) {
    std::vector<std::string> argv = {"redis-cli"};
    if (unix_socket) {
      argv.insert(argv.end(), {"-s", flind_.socket_path()});
    } else {
      argv.insert(argv.end(), {"-h", "127.0.0.1", "-p", std::to_string(flind_.port())});
    }
    argv.insert(argv.end(), args.begin(), args.end());
    return RunProcess(argv, input);
  }
  Flind flind_;
};

TEST_F(RedisToolsTest, RedisCliOneShotCommands) {
  for (bool unix_socket : {false, true}) {
    EXPECT_EQ(Cli({"PING"}, unix_socket).out, "PONG\n");
    EXPECT_EQ(Cli({"MSET", "a", "1", "b", "2", "c", "3"}, unix_socket).out, "OK\n");
    EXPECT_EQ(Cli({"MGET", "a", "nope", "c"}, unix_socket).out, "1\n\n3\n");
    EXPECT_EQ(Cli({"MDEL", "a", "b", "zzz"}, unix_socket).out, "2\n");
    EXPECT_EQ(Cli({"EXISTS", "a", "c"}, unix_socket).out, "1\n");
    EXPECT_EQ(Cli({"SET", "t", "v", "EX", "100"}, unix_socket).out, "OK\n");
    EXPECT_EQ(Cli({"TTL", "t"}, unix_socket).out, "100\n");
    EXPECT_EQ(Cli({"DEL", "c", "t"}, unix_socket).out, "2\n");
  }
  ProcResult r = Cli({"GET"});
  // Same bytes as redis-cli against redis-server 7 (an error line, then a blank line).
  EXPECT_EQ(r.out, "ERR wrong number of arguments for 'get' command\n\n");
  r = Cli({"--no-raw", "MGET", "x", "y"});
  EXPECT_EQ(r.out, "1) (nil)\n2) (nil)\n");
}

// Every command in the table, through redis-cli, with the output redis-cli
// prints for it (the same as against redis-server for the Redis commands).
TEST_F(RedisToolsTest, EveryCommandThroughRedisCli) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"PING"}, "PONG\n"},
      {{"ECHO", "hi"}, "hi\n"},
      {{"HELLO", "2"}, "server\nflin\nversion\n0.1.0\nproto\n2\n"},
      {{"CLIENT", "SETNAME", "x"}, "OK\n"},
      {{"SELECT", "0"}, "OK\n"},
      {{"SET", "k", "v", "EX", "100", "NX"}, "OK\n"},
      {{"SET", "k", "w", "XX", "GET", "KEEPTTL"}, "v\n"},
      {{"GET", "k"}, "w\n"},
      {{"TTL", "k"}, "100\n"},
      {{"MSET", "a", "1", "b", "2"}, "OK\n"},
      {{"MSETNX", "a", "1", "c", "3"}, "0\n"},
      {{"MSETEX", "2", "d", "4", "e", "5", "PX", "100000"}, "1\n"},
      {{"MGET", "a", "b", "zz"}, "1\n2\n\n"},
      {{"EXISTS", "a", "b", "zz"}, "2\n"},
      {{"EXPIRE", "a", "100"}, "1\n"},
      {{"PEXPIRE", "a", "100000", "LT"}, "0\n"},
      {{"EXPIREAT", "b", "99999999999"}, "1\n"},
      {{"PEXPIREAT", "b", "99999999999000"}, "1\n"},
      {{"EXPIRETIME", "b"}, "99999999999\n"},
      {{"PEXPIRETIME", "b"}, "99999999999000\n"},
      {{"PTTL", "nope"}, "-2\n"},
      {{"PERSIST", "b"}, "1\n"},
      {{"TYPE", "b"}, "string\n"},
      {{"KEYS", "[ab]"}, "a\nb\n"},
      {{"SCAN", "0", "MATCH", "[de]", "COUNT", "100"}, "0\nd\ne\n"},
      {{"DBSIZE"}, "5\n"},
      {{"MDEL", "d", "e", "zz"}, "2\n"},
      {{"DEL", "a"}, "1\n"},
      {{"UNLINK", "b", "k"}, "2\n"},
      {{"CONFIG", "GET", "appendfsync"}, "appendfsync\nalways\n"},
      {{"COMMAND", "COUNT"}, ""},  // checked below: a number
      {{"FLUSHALL"}, "OK\n"},
      {{"DBSIZE"}, "0\n"},
  };
  for (const auto& [args, want] : cases) {
    ProcResult r = Cli(args);
    EXPECT_EQ(r.exit_code, 0) << args[0];
    if (!want.empty()) EXPECT_EQ(r.out.substr(0, want.size()), want) << args[0] << " " << r.out;
  }
  EXPECT_GT(std::stoi(Cli({"COMMAND", "COUNT"}).out), 30);
  EXPECT_NE(Cli({"INFO", "keyspace"}).out.find("# Keyspace"), std::string::npos);
  std::string id = Cli({"IMPORT.BEGIN"}).out;
  ASSERT_FALSE(id.empty());
  id.pop_back();
  EXPECT_EQ(Cli({"IMPORT.ADD", id, "ik", "iv", "0"}).out, "1\n");
  EXPECT_EQ(Cli({"IMPORT.COMMIT", id}).out, "1\n");
  std::string ex = Cli({"EXPORT.BEGIN"}).out;
  ex.pop_back();
  EXPECT_EQ(Cli({"EXPORT.NEXT", ex, "10"}).out, "ik\niv\n0\n");
  EXPECT_EQ(Cli({"EXPORT.END", ex}).out, "OK\n");
  std::string id2 = Cli({"IMPORT.BEGIN"}).out;
  id2.pop_back();
  EXPECT_EQ(Cli({"IMPORT.ABORT", id2}).out, "OK\n");
  EXPECT_EQ(Cli({"QUIT"}).out, "OK\n");
}

TEST_F(RedisToolsTest, RedisCliPipedSessionAndPipeMode) {
  // Interactive-style input on stdin, one command per line.
  ProcResult r = Cli({}, false, "SET k1 \"hello world\"\nGET k1\nMSET x 1 y 2\nMGET x y\n");
  EXPECT_EQ(r.out, "OK\nhello world\nOK\n1\n2\n");
  // --pipe: raw protocol mass insertion, as in the Redis docs.
  std::string proto;
  for (int i = 0; i < 2000; ++i) {
    std::string k = "pipe:" + std::to_string(i);
    proto += "*3\r\n$3\r\nSET\r\n$" + std::to_string(k.size()) + "\r\n" + k + "\r\n$1\r\nv\r\n";
  }
  r = Cli({"--pipe"}, true, proto);
  EXPECT_EQ(r.exit_code, 0) << r.err << r.out;
  EXPECT_NE(r.out.find("errors: 0, replies: 2000"), std::string::npos) << r.out;
  EXPECT_EQ(Cli({"DBSIZE"}).out, "2003\n");
  r = Cli({"--scan", "--pattern", "pipe:19*"});
  int lines = 0;
  for (char c : r.out) lines += c == '\n';
  EXPECT_EQ(lines, 111);  // pipe:19, pipe:190-199, pipe:1900-1999
}

// `redis-cli shutdown`, as scripts use it: flind stops cleanly (exit 0)
// and keeps every acknowledged write; bad arguments change nothing.
TEST_F(RedisToolsTest, RedisCliShutdownStopsCleanly) {
  EXPECT_EQ(Cli({"SET", "kept", "v"}).out, "OK\n");
  ProcResult r = Cli({"SHUTDOWN", "LATER"});
  EXPECT_NE(r.out.find("ERR syntax error"), std::string::npos) << r.out;
  r = Cli({"SHUTDOWN", "ABORT"});
  EXPECT_NE(r.out.find("ERR SHUTDOWN ABORT"), std::string::npos) << r.out;
  EXPECT_TRUE(flind_.Alive());
  r = Cli({"SHUTDOWN", "NOSAVE"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.out, "") << r.out;
  ASSERT_TRUE(WaitFor([&] { return !flind_.Alive(); }, std::chrono::seconds(30)));
  EXPECT_EQ(flind_.last_exit_status(), 0) << flind_.log();
  std::string why;
  ASSERT_TRUE(flind_.Start(&why)) << why;
  EXPECT_EQ(Cli({"GET", "kept"}).out, "v\n");
}

TEST_F(RedisToolsTest, RedisBenchmarkRunsUnchanged) {
  ProcResult r =
      RunProcess({"redis-benchmark", "-h", "127.0.0.1", "-p", std::to_string(flind_.port()), "-n",
                  "2000", "-c", "10", "-r", "1000", "-t", "set,get,mset", "-q"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  for (const char* t : {"SET:", "GET:", "MSET (10 keys):"}) {
    EXPECT_NE(r.out.find(t), std::string::npos) << t << " missing from:\n" << r.out;
  }
  EXPECT_EQ(r.out.find("ERR"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace flin::test
