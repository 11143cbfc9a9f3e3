// `flin import` / `flin export` end to end: the real flin binary against a
// real flind (one per test, in its own temp dir, unix socket only). Checks
// round trips of hostile content through every format, error positions and
// exit codes, --resume-from after a partial import, --atomic, --reject-file,
// --dry-run, and that memory stays flat on a ~100 MB input.
//
// FLIN_BIN and FLIND_BIN are the binaries under test (set by CMake).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "net/client.h"

extern char** environ;

namespace flin {
namespace {

namespace fs = std::filesystem;
using client::Connection;
using client::Reply;

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(data.data(), static_cast<std::streamsize>(data.size()));
}

struct RunResult {
  int exit_code = -1;
  std::string out, err;
  long max_rss_kb = 0;
};

// Runs argv with stdin from stdin_path (or /dev/null), capturing stdout and
// stderr through files in dir.
RunResult RunProcess(const std::vector<std::string>& argv, const std::string& dir,
                     const std::string& stdin_path = "/dev/null") {
  static int seq = 0;
  std::string out_path = dir + "/out." + std::to_string(++seq);
  std::string err_path = dir + "/err." + std::to_string(seq);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, stdin_path.c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&fa, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid;
  RunResult r;
  int rc = posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    r.err = "spawn failed";
    return r;
  }
  int status = 0;
  struct rusage ru {};
  wait4(pid, &status, 0, &ru);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.max_rss_kb = ru.ru_maxrss;
  r.out = ReadFile(out_path);
  r.err = ReadFile(err_path);
  return r;
}

class ImportExportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/flin-import-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    StartServer();
  }

  void TearDown() override {
    StopServer();
    if (!HasFailure()) fs::remove_all(dir_);
  }

  void StartServer() {
    data_dir_ = dir_ + "/data" + std::to_string(++servers_);
    fs::create_directories(data_dir_);
    socket_ = data_dir_ + "/flin.sock";
    std::vector<std::string> argv = {FLIND_BIN, "--data-dir",  data_dir_, "--listen",
                                     "none",    "--log-level", "warn"};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    std::string log = data_dir_ + "/flind.log";
    posix_spawn_file_actions_addopen(&fa, 2, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ASSERT_EQ(posix_spawn(&server_pid_, FLIND_BIN, &fa, nullptr, args.data(), environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    // Ready when PING answers on the socket.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    auto addr = client::Address::Parse("unix:" + socket_);
    ASSERT_TRUE(addr.ok());
    while (std::chrono::steady_clock::now() < deadline) {
      auto c = Connection::Connect(addr.value());
      if (c.ok()) {
        auto r = (*c)->Command({"PING"});
        if (r.ok() && r->str == "PONG") {
          conn_ = std::move(c.value());
          return;
        }
      }
      int status;
      ASSERT_EQ(waitpid(server_pid_, &status, WNOHANG), 0) << "flind exited: " << ReadFile(log);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // poll interval, not a sync
    }
    FAIL() << "flind did not answer PING: " << ReadFile(log);
  }

  void StopServer() {
    conn_.reset();
    if (server_pid_ > 0) {
      kill(server_pid_, SIGTERM);
      int status;
      waitpid(server_pid_, &status, 0);
      server_pid_ = -1;
    }
  }

  RunResult Flin(std::vector<std::string> args, const std::string& stdin_path = "/dev/null") {
    args.insert(args.begin(), {FLIN_BIN, "--addr", "unix:" + socket_});
    return RunProcess(args, dir_, stdin_path);
  }

  Reply Cmd(const std::vector<std::string_view>& args) {
    auto r = conn_->Command(args);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r.value() : Reply{};
  }
  int64_t DbSize() { return Cmd({"DBSIZE"}).integer; }

  // key -> (value, absolute expiry ms or -1)
  std::map<std::string, std::pair<std::string, int64_t>> Dump() {
    std::map<std::string, std::pair<std::string, int64_t>> out;
    Reply keys = Cmd({"KEYS", "*"});
    for (const Reply& k : keys.elements) {
      Reply v = Cmd({"GET", k.str});
      Reply e = Cmd({"PEXPIRETIME", k.str});
      out[k.str] = {v.str, e.integer};
    }
    return out;
  }

  std::string Path(const std::string& name) { return dir_ + "/" + name; }

  std::string dir_, data_dir_, socket_;
  int servers_ = 0;
  pid_t server_pid_ = -1;
  std::unique_ptr<Connection> conn_;
};

// Values that break naive CSV/JSON handling.
std::map<std::string, std::string> HostileData() {
  std::map<std::string, std::string> kv;
  kv["quote"] = "say \"hi\", then \"\"bye\"\"";
  kv["comma"] = "a,b,,c,";
  kv["newline"] = "line1\nline2\n";
  kv["crlf"] = "line1\r\nline2\r";
  kv["nul"] = std::string("before\0after\0", 13);
  kv["invalid-utf8"] = "\xff\xfe\xc3\x28 \x80";
  kv["utf8"] = "h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80";
  kv["empty"] = "";
  kv["json-looking"] = R"({"base64":"aGk="})";
  kv["tabs"] = "a\tb\t";
  kv["leading space"] = "  x  ";
  kv["bom"] = "\xEF\xBB\xBFstarts with a BOM";
  kv[std::string("binary\0key\xff", 12)] = "binary key";
  kv["key,with\"quotes\nand newline"] = "v";
  std::string big(1 << 20, 'x');
  std::mt19937 rng(7);
  for (auto& c : big) c = static_cast<char>(rng());
  kv["one-megabyte"] = big;
  return kv;
}

TEST_F(ImportExportTest, HostileRoundTripThroughEveryFormat) {
  auto kv = HostileData();
  int i = 0;
  for (const auto& [k, v] : kv) {
    // Every third key has a TTL, so expiry must survive the round trip too.
    if (i++ % 3 == 0) {
      ASSERT_FALSE(Cmd({"SET", k, v, "PX", "3600000"}).is_error());
    } else {
      ASSERT_FALSE(Cmd({"SET", k, v}).is_error());
    }
  }
  auto before = Dump();
  ASSERT_EQ(before.size(), kv.size());
  for (const char* fmt : {"json", "jsonl", "csv", "tsv"}) {
    SCOPED_TRACE(fmt);
    std::string file = Path(std::string("export.") + fmt);
    RunResult e = Flin({"export", "-o", file});
    ASSERT_EQ(e.exit_code, 0) << e.err;
    ASSERT_FALSE(Cmd({"FLUSHALL"}).is_error());
    ASSERT_EQ(DbSize(), 0);
    RunResult im = Flin({"import", file});
    ASSERT_EQ(im.exit_code, 0) << im.err;
    EXPECT_EQ(Dump(), before);
  }
  // Export to stdout and import from stdin.
  RunResult e = Flin({"export", "--format", "jsonl"});
  ASSERT_EQ(e.exit_code, 0) << e.err;
  WriteFile(Path("stdin.jsonl"), e.out);
  ASSERT_FALSE(Cmd({"FLUSHALL"}).is_error());
  RunResult im = Flin({"import", "--format", "jsonl", "-"}, Path("stdin.jsonl"));
  ASSERT_EQ(im.exit_code, 0) << im.err;
  EXPECT_EQ(Dump(), before);
}

TEST_F(ImportExportTest, ExportPrefixAndJsonShape) {
  Cmd({"SET", "app:1", "one"});
  Cmd({"SET", "app:2", "two", "PX", "60000"});
  Cmd({"SET", "other", "x"});
  RunResult e = Flin({"export", "--prefix", "app:", "--format", "json"});
  ASSERT_EQ(e.exit_code, 0) << e.err;
  EXPECT_EQ(e.out.rfind("[\n{\"key\":\"app:1\",\"value\":\"one\"},\n{\"key\":\"app:2\",\"value\":"
                        "\"two\",\"expire_at\":",
                        0),
            0u)
      << e.out;
  EXPECT_EQ(e.out.find("other"), std::string::npos);
}

TEST_F(ImportExportTest, CsvWithBomCrlfQuotesAndColumns) {
  WriteFile(Path("users.csv"),
            "\xEF\xBB\xBFid,name,note\r\n1,Ann,\"likes \"\"quotes\"\", commas\"\r\n2,Bob,\"two\r\n"
            "lines\"\r\n");
  RunResult r = Flin(
      {"import", "--key-col", "id", "--value-col", "note", "--prefix", "u:", Path("users.csv")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Cmd({"GET", "u:1"}).str, "likes \"quotes\", commas");
  EXPECT_EQ(Cmd({"GET", "u:2"}).str, "two\r\nlines");
  // Without a value column the whole row is stored as a JSON object.
  r = Flin({"import", "--key-col", "id", Path("users.csv")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Cmd({"GET", "1"}).str, R"({"id":"1","name":"Ann","note":"likes \"quotes\", commas"})");
}

TEST_F(ImportExportTest, EmptyFilesImportNothing) {
  for (const char* name : {"empty.csv", "empty.json", "empty.jsonl", "empty.tsv"}) {
    WriteFile(Path(name), "");
    RunResult r = Flin({"import", Path(name)});
    EXPECT_EQ(r.exit_code, 0) << name << ": " << r.err;
  }
  EXPECT_EQ(DbSize(), 0);
}

TEST_F(ImportExportTest, TruncatedFilesFailWithPositionAndWriteNothing) {
  WriteFile(Path("trunc.csv"), "key,value\na,1\nb,\"unterminated\n");
  RunResult r = Flin({"import", Path("trunc.csv")});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find(Path("trunc.csv") + ":3:3: unterminated quoted field"), std::string::npos)
      << r.err;
  WriteFile(Path("trunc.json"), "[{\"key\":\"a\",\"value\":\"1\"},\n{\"key\":\"b\",\"va");
  r = Flin({"import", Path("trunc.json")});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find(Path("trunc.json") + ":2:"), std::string::npos) << r.err;
  EXPECT_EQ(DbSize(), 0);
}

TEST_F(ImportExportTest, DuplicateKeysLastOneWins) {
  std::string csv = "key,value\n";
  for (int i = 0; i < 50; ++i) csv += "dup," + std::to_string(i) + "\n";
  WriteFile(Path("dup.csv"), csv);
  // Small batches: the duplicates span many pipelined batches.
  RunResult r = Flin({"import", "--batch-size", "3", Path("dup.csv")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Cmd({"GET", "dup"}).str, "49");
  ASSERT_FALSE(Cmd({"FLUSHALL"}).is_error());
  r = Flin({"import", "--atomic", "--batch-size", "3", Path("dup.csv")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Cmd({"GET", "dup"}).str, "49");
}

TEST_F(ImportExportTest, PartialImportPrintsResumeFromThatCompletesIt) {
  std::string good, bad;
  good = bad = "key,value,ttl\n";
  for (int i = 0; i < 2500; ++i) {
    std::string line = "k" + std::to_string(i) + ",v" + std::to_string(i) + ",\n";
    good += line;
    bad += i == 2300 ? "k2300,v2300,not-a-number\n" : line;
  }
  WriteFile(Path("bad.csv"), bad);
  WriteFile(Path("good.csv"), good);
  // One connection: batches commit in input order, so exactly the first two
  // batches are in.
  RunResult r = Flin({"import", "--connections", "1", "--batch-size", "1000", Path("bad.csv")});
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_NE(r.err.find(Path("bad.csv") + ":2302:13: ttl \"not-a-number\""), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("--resume-from 2000"), std::string::npos) << r.err;
  EXPECT_EQ(DbSize(), 2000);
  r = Flin({"import", "--batch-size", "1000", "--resume-from", "2000", Path("good.csv")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(DbSize(), 2500);
  EXPECT_EQ(Cmd({"GET", "k2499"}).str, "v2499");
  // Several connections: rows are spread by key, so what is committed is not
  // a prefix; the printed --resume-from still completes the import.
  ASSERT_FALSE(Cmd({"FLUSHALL"}).is_error());
  r = Flin({"import", "--connections", "3", "--batch-size", "200", Path("bad.csv")});
  EXPECT_EQ(r.exit_code, 5) << r.err;
  size_t at = r.err.find("--resume-from ");
  ASSERT_NE(at, std::string::npos) << r.err;
  const std::string resume = std::to_string(std::stoll(r.err.substr(at + 14)));
  EXPECT_LE(std::stoll(resume), 2300);
  r = Flin({"import", "--resume-from", resume, Path("good.csv")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(DbSize(), 2500);
  // An error in the first batch writes nothing: exit 2 (bad input).
  ASSERT_FALSE(Cmd({"FLUSHALL"}).is_error());
  r = Flin({"import", "--batch-size", "5000", Path("bad.csv")});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(DbSize(), 0);
}

TEST_F(ImportExportTest, AtomicImportIsAllOrNothing) {
  std::string jsonl;
  for (int i = 0; i < 3000; ++i) {
    jsonl += "{\"key\":\"a" + std::to_string(i) + "\",\"value\":\"" + std::to_string(i) + "\"}\n";
  }
  WriteFile(Path("good.jsonl"), jsonl);
  WriteFile(Path("bad.jsonl"), jsonl + "{\"key\":\"broken\"}\n");
  RunResult r = Flin({"import", "--atomic", "--batch-size", "500", Path("bad.jsonl")});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find(Path("bad.jsonl") + ":3001:1: the row has no \"value\""), std::string::npos)
      << r.err;
  EXPECT_EQ(DbSize(), 0);
  r = Flin({"import", "--atomic", "--batch-size", "500", "--ttl", "100", Path("good.jsonl")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(DbSize(), 3000);
  int64_t pttl = Cmd({"PTTL", "a42"}).integer;
  EXPECT_GT(pttl, 0);
  EXPECT_LE(pttl, 100000);
}

TEST_F(ImportExportTest, RejectFileCollectsBadRows) {
  WriteFile(Path("mixed.jsonl"),
            "{\"key\":\"a\",\"value\":\"1\"}\nnot json at all\n{\"key\":\"b\",\"value\":\"2\","
            "\"ttl\":\"x\"}\n{\"key\":\"c\",\"value\":\"3\"}\n");
  RunResult r = Flin({"import", "--reject-file", Path("rejects.jsonl"), Path("mixed.jsonl")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(DbSize(), 2);
  std::string rejects = ReadFile(Path("rejects.jsonl"));
  EXPECT_NE(rejects.find("\"row\":\"not json at all\""), std::string::npos) << rejects;
  EXPECT_NE(rejects.find("mixed.jsonl:3:1:"), std::string::npos) << rejects;
  EXPECT_NE(r.out.find("2 rejected"), std::string::npos) << r.out;
}

TEST_F(ImportExportTest, DryRunWritesNothing) {
  WriteFile(Path("d.json"), R"({"a": "1", "b": {"nested": true}})");
  RunResult r = Flin({"import", "--dry-run", Path("d.json")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("validated 2 rows"), std::string::npos) << r.out;
  EXPECT_EQ(DbSize(), 0);
}

TEST_F(ImportExportTest, UsageErrors) {
  RunResult r = Flin({"import", Path("no-such-file.csv")});
  EXPECT_EQ(r.exit_code, 2);
  WriteFile(Path("data.txt"), "x");
  r = Flin({"import", Path("data.txt")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--format"), std::string::npos) << r.err;
  r = Flin({"import", "--atomic", "--resume-from", "3", "--format", "csv", Path("data.txt")});
  EXPECT_EQ(r.exit_code, 2);
}

TEST_F(ImportExportTest, CannotConnectExits3) {
  WriteFile(Path("one.csv"), "key,value\na,1\n");
  RunResult r = RunProcess(
      {FLIN_BIN, "--addr", "unix:" + dir_ + "/nobody.sock", "import", Path("one.csv")}, dir_);
  EXPECT_EQ(r.exit_code, 3) << r.err;
}

// A ~100 MB input must not be loaded: the importing process stays far below
// the input size (ru_maxrss of the child).
TEST_F(ImportExportTest, MemoryStaysFlatOnALargeFile) {
#if defined(__SANITIZE_ADDRESS__)
  // ASan's quarantine keeps freed memory resident: RSS says nothing here.
  GTEST_SKIP() << "peak RSS is not meaningful under AddressSanitizer";
#endif
  const std::string csv_path = Path("large.csv");
  const std::string json_path = Path("large.json");
  {
    std::ofstream csv(csv_path, std::ios::binary);
    std::ofstream json(json_path, std::ios::binary);
    csv << "key,value\n";
    json << "[\n";
    std::string value(1000, 'v');
    for (int i = 0; i < 100000; ++i) {
      csv << "key" << i << "," << value << "\n";
      json << (i ? ",\n" : "") << "{\"key\":\"key" << i << "\",\"value\":\"" << value << "\"}";
    }
    json << "\n]\n";
  }
  ASSERT_GT(fs::file_size(csv_path), 100'000'000u);
  RunResult r = Flin({"import", "--quiet", csv_path});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(DbSize(), 100000);
  std::printf("peak RSS importing a 100 MB CSV: %ld KB\n", r.max_rss_kb);
  EXPECT_LT(r.max_rss_kb, 80 * 1024) << "import of a 100 MB CSV used " << r.max_rss_kb << " KB";
  r = Flin({"import", "--dry-run", "--quiet", json_path});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::printf("peak RSS validating a 100 MB JSON: %ld KB\n", r.max_rss_kb);
  EXPECT_LT(r.max_rss_kb, 40 * 1024) << "dry run of a 100 MB JSON used " << r.max_rss_kb << " KB";
}

}  // namespace
}  // namespace flin
