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
