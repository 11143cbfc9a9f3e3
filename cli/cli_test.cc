// Unit tests for flin's pure parts: quoting, reply formatting, JSON values,
// shell completion candidates and generated scripts, usage-error exit codes.
#include <gtest/gtest.h>

#include <cctype>
#include <fstream>
#include <sstream>

#include "base/strings.h"
#include "cli/app.h"
#include "cli/args.h"
#include "cli/cluster.h"
#include "cli/completion.h"
#include "cli/exit_codes.h"
#include "cli/output.h"
#include "cli/repl.h"
#include "net/command_spec.h"

namespace flin::cli {
namespace {

using client::Reply;
using Kind = SplitResult::Kind;

std::vector<std::string> Split(std::string_view line) {
  SplitResult r = SplitArgs(line);
  EXPECT_EQ(r.kind, Kind::kOk) << line;
  return r.args;
}

TEST(SplitArgsTest, BlanksAndQuotes) {
  EXPECT_EQ(Split("  set  a   b "), (std::vector<std::string>{"set", "a", "b"}));
  EXPECT_EQ(Split("set k \"hello world\""), (std::vector<std::string>{"set", "k", "hello world"}));
  EXPECT_EQ(Split("set k 'it\\'s'"), (std::vector<std::string>{"set", "k", "it's"}));
  EXPECT_EQ(Split("set k '\\n'"), (std::vector<std::string>{"set", "k", "\\n"}));
  EXPECT_EQ(Split("set k \"a\\x00b\\n\\t\\\\\\\"\""),
            (std::vector<std::string>{"set", "k", std::string("a\0b\n\t\\\"", 7)}));
  EXPECT_EQ(Split("set k \"\""), (std::vector<std::string>{"set", "k", ""}));
  EXPECT_TRUE(Split("   ").empty());
}

TEST(SplitArgsTest, UnclosedQuoteIsIncomplete) {
  EXPECT_EQ(SplitArgs("set k \"line one").kind, Kind::kIncomplete);
  EXPECT_EQ(SplitArgs("set k 'x").kind, Kind::kIncomplete);
  SplitResult joined = SplitArgs("set k \"line one\nline two\"");
  ASSERT_EQ(joined.kind, Kind::kOk);
  EXPECT_EQ(joined.args[2], "line one\nline two");
}

TEST(SplitArgsTest, QuoteMustEndWord) {
  SplitResult r = SplitArgs("get \"a\"b");
  EXPECT_EQ(r.kind, Kind::kError);
  EXPECT_FALSE(r.error.empty());
}

TEST(QuoteTest, DisplayFormRoundTrips) {
  const std::string binary("a\0b\xff\"\\\n\r\t", 9);
  EXPECT_EQ(QuoteForDisplay(binary), "\"a\\x00b\\xff\\\"\\\\\\n\\r\\t\"");
  EXPECT_EQ(QuoteForDisplay("héllo"), "\"héllo\"");
  for (std::string s :
       {binary, std::string("plain"), std::string(""), std::string("a b"), std::string("it's")}) {
    SplitResult r = SplitArgs("set " + QuoteArg(s));
    ASSERT_EQ(r.kind, Kind::kOk) << s;
    ASSERT_EQ(r.args.size(), 2u);
    EXPECT_EQ(r.args[1], s);
  }
  EXPECT_EQ(QuoteArg("plain"), "plain");
}

TEST(Utf8Test, Validity) {
  EXPECT_TRUE(IsUtf8("héllo ✓ 😀"));
  EXPECT_FALSE(IsUtf8("\xff"));
  EXPECT_FALSE(IsUtf8("\xc0\xaf"));             // overlong '/'
  EXPECT_FALSE(IsUtf8("\xed\xa0\x80"));         // surrogate
  EXPECT_FALSE(IsUtf8("\xe2\x9c"));             // truncated
  EXPECT_TRUE(IsUtf8(std::string("a\0b", 3)));  // NUL is valid UTF-8
}

Reply Bulk(std::string s) {
  Reply r;
  r.type = Reply::Type::kBulk;
  r.str = std::move(s);
  return r;
}
Reply Int(int64_t v) {
  Reply r;
  r.type = Reply::Type::kInteger;
  r.integer = v;
  return r;
}
Reply Array(std::vector<Reply> e) {
  Reply r;
  r.type = Reply::Type::kArray;
  r.elements = std::move(e);
  return r;
}

TEST(FormatTest, HumanLikeRedisCli) {
  EXPECT_EQ(FormatHuman(Bulk("a")), "\"a\"");
  EXPECT_EQ(FormatHuman(Int(3)), "(integer) 3");
  EXPECT_EQ(FormatHuman(Reply{}), "(nil)");
  EXPECT_EQ(FormatHuman(Array({})), "(empty array)");
  Reply err;
  err.type = Reply::Type::kError;
  err.str = "ERR boom";
  EXPECT_EQ(FormatHuman(err), "(error) ERR boom");
  EXPECT_EQ(FormatHuman(Array({Bulk("a"), Reply{}})), "1) \"a\"\n2) (nil)");
  EXPECT_EQ(FormatHuman(Array({Bulk("0"), Array({Bulk("k1"), Bulk("k2")})})),
            "1) \"0\"\n2) 1) \"k1\"\n   2) \"k2\"");
  std::vector<Reply> ten(10, Bulk("x"));
  std::string human = FormatHuman(Array(ten));
  EXPECT_EQ(human.substr(0, 8), " 1) \"x\"\n");
  EXPECT_NE(human.find("\n10) \"x\""), std::string::npos);
  EXPECT_EQ(FormatHuman(Int(1), /*color=*/true), "\x1b[2m(integer) \x1b[0m1");
}

TEST(FormatTest, PlainIsRawBytes) {
  EXPECT_EQ(FormatPlain(Bulk(std::string("a\0b", 3))), std::string("a\0b", 3));
  EXPECT_EQ(FormatPlain(Array({Bulk("a"), Reply{}, Bulk("c")})), "a\n\nc");
  EXPECT_EQ(FormatPlain(Array({Bulk("a"), Bulk("b")}), '\0'), std::string("a\0b", 3));
  EXPECT_EQ(FormatPlain(Int(-2)), "-2");
}

TEST(JsonTest, ValuesAndBinary) {
  EXPECT_EQ(DumpJson(ValueToJson("héllo")), "\"héllo\"");
  EXPECT_EQ(DumpJson(ValueToJson(std::string("a\0b", 3))), "\"a\\u0000b\"");
  EXPECT_EQ(DumpJson(ValueToJson("\xff\xfe")), "{\"base64\":\"//4=\"}");
  EXPECT_EQ(ToBase64(""), "");
  EXPECT_EQ(ToBase64("f"), "Zg==");
  EXPECT_EQ(ToBase64("fo"), "Zm8=");
  EXPECT_EQ(ToBase64("foo"), "Zm9v");
  EXPECT_EQ(DumpJson(ReplyToJson(Array({Bulk("a"), Reply{}, Int(2)}))), "[\"a\",null,2]");
}

TEST(PrinterTest, ListsWithNulAndJson) {
  char* buf = nullptr;
  size_t len = 0;
  std::FILE* f = open_memstream(&buf, &len);
  {
    OutputOptions o;
    o.mode = OutputMode::kPlain;
    o.nul = true;
    Printer p(o, f);
    p.BeginList();
    p.ListItem("a\nb");
    p.ListNil();
    p.ListItem("");
    p.EndList();
    OutputOptions j;
    j.mode = OutputMode::kJson;
    Printer pj(j, f);
    pj.BeginList();
    pj.ListItem("x");
    pj.ListItem("\xff");
    pj.EndList();
    OutputOptions pl;
    Printer pp(pl, f);
    pp.BeginList();
    pp.ListItem("1");
    pp.ListItem("2");
    pp.EndList();
  }
  std::fclose(f);
  std::string out(buf, len);
  std::free(buf);
  EXPECT_EQ(out, std::string("a\nb\0\0\0", 6) + "[\"x\",{\"base64\":\"/w==\"}]\n" + "1\n2\n");
}

TEST(ShellCompletionTest, CommandsAndKeywords) {
  auto m = CompleteShellWord("", "m");
  EXPECT_EQ(m, (std::vector<std::string>{"mdel", "mget", "mset", "msetex", "msetnx"}));
  auto upper = CompleteShellWord("", "MG");
  EXPECT_EQ(upper, (std::vector<std::string>{"MGET"}));
  auto set_kw = CompleteShellWord("SET k v ", "");
  for (const char* kw : {"NX", "XX", "GET", "EX", "PX", "EXAT", "PXAT", "KEEPTTL"}) {
    EXPECT_NE(std::find(set_kw.begin(), set_kw.end(), kw), set_kw.end()) << kw;
  }
  EXPECT_EQ(CompleteShellWord("set k v ", "ke"), (std::vector<std::string>{"keepttl"}));
  EXPECT_EQ(CompleteShellWord("help ", "pers"), (std::vector<std::string>{"persist"}));
  EXPECT_EQ(CompleteShellWord("", "he"), (std::vector<std::string>{"hello", "help"}));
  EXPECT_TRUE(CompleteShellWord("nosuchcmd ", "").empty());
}

TEST(ShellHelpTest, ListsEveryCommand) {
  std::string all = ShellHelp("");
  for (const net::CommandSpec& spec : net::AllCommands()) {
    EXPECT_NE(all.find(ToUpper(spec.name)), std::string::npos) << spec.name;
  }
  EXPECT_NE(ShellHelp("mset").find("MSET key value [key value ...]"), std::string::npos);
  EXPECT_NE(ShellHelp("nope").find("unknown command"), std::string::npos);
}

TEST(CompletionScriptTest, GeneratedFromTheApp) {
  CLI::App app;
  AppState state;
  BuildApp(app, &state);
  ProgramSpec spec = ProgramSpecFromApp(app, "flin");
  std::vector<std::string> names;
  for (const auto& c : spec.commands) names.push_back(c.name);
  for (const char* cmd : {"get", "set", "del", "mget", "mset", "mdel", "exists", "ttl", "expire",
                          "persist", "keys", "scan", "ping", "info", "shell", "completion"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), cmd), names.end()) << cmd;
  }
  bool color_choices = false;
  for (const OptionSpec& o : spec.options) {
    if (o.names.back() == "--color") {
      color_choices = o.choices == std::vector<std::string>{"auto", "always", "never"};
    }
    if (o.names.back() == "--json") {
      EXPECT_FALSE(o.takes_value);
    }
    if (o.names.back() == "--addr") {
      EXPECT_TRUE(o.takes_value);
    }
  }
  EXPECT_TRUE(color_choices);
  for (const char* shell : {"bash", "zsh", "fish"}) {
    std::string script = GenerateCompletion(app, shell);
    EXPECT_NE(script.find("mget"), std::string::npos) << shell;
    EXPECT_NE(script.find("no-newline"), std::string::npos) << shell;
    EXPECT_NE(GenerateFlindCompletion(shell).find("data-dir"), std::string::npos) << shell;
  }
}

TEST(ManPageTest, ListsEveryServerCommand) {
  std::ifstream in(std::string(FLIN_SOURCE_DIR) + "/man/flin.1.scd");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string page = ss.str();
  ASSERT_FALSE(page.empty());
  for (const net::CommandSpec& spec : net::AllCommands()) {
    const std::string name = ToUpper(spec.name);
    bool found = false;
    for (size_t at = page.find(name); at != std::string::npos; at = page.find(name, at + 1)) {
      const char before = at > 0 ? page[at - 1] : ' ';
      const char after = at + name.size() < page.size() ? page[at + name.size()] : ' ';
      if (!std::isalnum(static_cast<unsigned char>(before)) &&
          !std::isalnum(static_cast<unsigned char>(after))) {
        found = true;
        break;
      }
    }
    EXPECT_TRUE(found) << "man/flin.1.scd does not list " << name;
  }
}

int RunArgs(std::vector<const char*> args) {
  args.insert(args.begin(), "flin");
  return RunFlin(static_cast<int>(args.size()), args.data());
}

TEST(ExitCodeTest, UsageErrorsExitTwo) {
  testing::internal::CaptureStderr();
  EXPECT_EQ(RunArgs({"--no-such-flag"}), kExitUsage);
  EXPECT_EQ(RunArgs({"get"}), kExitUsage);
  EXPECT_EQ(RunArgs({"get", "a", "b"}), kExitUsage);
  EXPECT_EQ(RunArgs({"set", "k"}), kExitUsage);
  EXPECT_EQ(RunArgs({"mset", "a", "1", "b"}), kExitUsage);
  EXPECT_EQ(RunArgs({"set", "k", "v", "--ttl", "x"}), kExitUsage);
  EXPECT_EQ(RunArgs({"set", "k", "v", "--nx", "--xx"}), kExitUsage);
  EXPECT_EQ(RunArgs({"completion", "tcsh"}), kExitUsage);
  EXPECT_EQ(RunArgs({"nosuchcommand"}), kExitUsage);
  EXPECT_EQ(RunArgs({"--json", "--raw", "ping"}), kExitUsage);
  testing::internal::GetCapturedStderr();
}

TEST(ExitCodeTest, ConnectFailureExitsThree) {
  testing::internal::CaptureStderr();
  EXPECT_EQ(RunArgs({"--addr", "unix:/nonexistent/flin.sock", "get", "k"}), kExitConnect);
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("cannot connect to unix:/nonexistent/flin.sock"), std::string::npos) << err;
}

TEST(ExitCodeTest, StatusMapping) {
  EXPECT_EQ(ExitCodeFor(Status::Server("ERR x")), kExitServer);
  EXPECT_EQ(ExitCodeFor(Status::Unavailable("x")), kExitConnect);
  EXPECT_EQ(ExitCodeFor(Status::Timeout("x")), kExitConnect);
  EXPECT_EQ(ExitCodeFor(Status::InvalidArgument("x")), kExitUsage);
}

Reply StatusReply(std::string s) {
  Reply r;
  r.type = Reply::Type::kStatus;
  r.str = std::move(s);
  return r;
}

// Field/value pairs as CLUSTER.STATUS sends them.
Reply Fields(std::vector<std::pair<std::string, Reply>> fields) {
  std::vector<Reply> flat;
  for (auto& [name, value] : fields) {
    flat.push_back(Bulk(name));
    flat.push_back(std::move(value));
  }
  return Array(std::move(flat));
}

Reply Member(int64_t id, std::string addr, std::string kind, int64_t match, int64_t lag, int self,
             int leader) {
  return Fields({{"id", Int(id)},
                 {"peer_addr", Bulk(std::move(addr))},
                 {"kind", Bulk(std::move(kind))},
                 {"match", Int(match)},
                 {"lag", Int(lag)},
                 {"self", Int(self)},
                 {"leader", Int(leader)}});
}

// A leader's view of a 3-voter cluster with a learner catching up.
Reply LeaderStatusReply() {
  return Fields({{"mode", Bulk("cluster")},
                 {"cluster_id", Bulk("00ff12ab34cd56ef")},
                 {"node_id", Int(2)},
                 {"role", Bulk("leader")},
                 {"leader_id", Int(2)},
                 {"term", Int(7)},
                 {"commit_index", Int(1200)},
                 {"applied_index", Int(1199)},
                 {"last_index", Int(1201)},
                 {"members", Array({Member(1, "10.0.0.1:7380", "voter", 1200, 1, 0, 0),
                                    Member(2, "10.0.0.2:7380", "voter", 1201, 0, 1, 1),
                                    Member(3, "10.0.0.3:7380", "voter", 1201, 0, 0, 0),
                                    Member(12, "10.0.0.12:7380", "learner", 20, 1181, 0, 0)})}});
}

TEST(ClusterStatusTest, ParsesTheFlatReply) {
  auto st = ParseClusterStatus(LeaderStatusReply());
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_EQ(st->mode, "cluster");
  EXPECT_EQ(st->cluster_id, "00ff12ab34cd56ef");
  EXPECT_EQ(st->node_id, 2u);
  EXPECT_EQ(st->role, "leader");
  EXPECT_EQ(st->leader_id, 2u);
  EXPECT_EQ(st->term, 7);
  EXPECT_EQ(st->commit_index, 1200);
  EXPECT_EQ(st->applied_index, 1199);
  EXPECT_EQ(st->last_index, 1201);
  ASSERT_EQ(st->members.size(), 4u);
  EXPECT_EQ(st->members[3].id, 12u);
  EXPECT_EQ(st->members[3].kind, "learner");
  EXPECT_EQ(st->members[3].lag, 1181);
  EXPECT_TRUE(st->members[1].self);
  EXPECT_TRUE(st->members[1].leader);
  EXPECT_FALSE(st->members[0].leader);
}

TEST(ClusterStatusTest, ToleratesNewFieldsAndNumbersAsStrings) {
  Reply r = Fields({{"mode", StatusReply("cluster")},
                    {"shiny_new_field", Array({Int(1)})},
                    {"term", Bulk("9")},
                    {"members", Array({Fields({{"id", Bulk("3")}, {"extra", Int(1)}})})}});
  auto st = ParseClusterStatus(r);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_EQ(st->term, 9);
  ASSERT_EQ(st->members.size(), 1u);
  EXPECT_EQ(st->members[0].id, 3u);
  EXPECT_EQ(st->members[0].match, -1);  // absent: unknown
}

TEST(ClusterStatusTest, RejectsMalformedReplies) {
  for (const Reply& bad : {Bulk("cluster"), Array({Bulk("mode")}), Fields({{"term", Int(1)}}),
                           Fields({{"mode", Bulk("cluster")}, {"term", Bulk("x")}}),
                           Fields({{"mode", Bulk("cluster")}, {"members", Int(3)}}),
                           Fields({{"mode", Bulk("cluster")}, {"members", Array({Int(1)})}}),
                           Array({Int(1), Bulk("x")})}) {
    auto st = ParseClusterStatus(bad);
    ASSERT_FALSE(st.ok()) << DebugString(bad);
    EXPECT_EQ(st.status().code(), Status::Code::kProtocol) << st.status().ToString();
  }
}

TEST(ClusterStatusTest, HumanFormat) {
  auto st = ParseClusterStatus(LeaderStatusReply());
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(FormatClusterStatusHuman(*st),
            "Cluster:  00ff12ab34cd56ef\n"
            "Node:     2 (leader)\n"
            "Leader:   2\n"
            "Term:     7\n"
            "Commit:   1200\n"
            "Applied:  1199\n"
            "Last:     1201\n"
            "\n"
            "ID  PEER ADDRESS    KIND     ROLE      MATCH   LAG\n"
            "1   10.0.0.1:7380   voter    follower   1200     1\n"
            "2   10.0.0.2:7380   voter    leader     1201     0  (this node)\n"
            "3   10.0.0.3:7380   voter    follower   1201     0\n"
            "12  10.0.0.12:7380  learner  follower     20  1181");
  // A follower: no leader known yet, match/lag unknown.
  ClusterStatus f = *st;
  f.role = "candidate";
  f.leader_id = 0;
  for (auto& m : f.members) {
    m.match = m.lag = -1;
    m.leader = false;
  }
  std::string out = FormatClusterStatusHuman(f);
  EXPECT_NE(out.find("Leader:   unknown\n"), std::string::npos) << out;
  EXPECT_NE(out.find("\n1   10.0.0.1:7380   voter    follower      -    -\n"), std::string::npos)
      << out;
}

TEST(ClusterStatusTest, PlainAndJsonFormats) {
  auto st = ParseClusterStatus(LeaderStatusReply());
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(FormatClusterStatusPlain(*st),
            "mode cluster\n"
            "cluster_id 00ff12ab34cd56ef\n"
            "node_id 2\n"
            "role leader\n"
            "leader_id 2\n"
            "term 7\n"
            "commit_index 1200\n"
            "applied_index 1199\n"
            "last_index 1201\n"
            "member 1 10.0.0.1:7380 voter follower 1200 1 0\n"
            "member 2 10.0.0.2:7380 voter leader 1201 0 1\n"
            "member 3 10.0.0.3:7380 voter follower 1201 0 0\n"
            "member 12 10.0.0.12:7380 learner follower 20 1181 0");
  nlohmann::json j = ClusterStatusToJson(*st);
  EXPECT_EQ(j["mode"], "cluster");
  EXPECT_EQ(j["leader_id"], 2);
  EXPECT_EQ(j["commit_index"], 1200);
  ASSERT_TRUE(j["members"].is_array());
  ASSERT_EQ(j["members"].size(), 4u);
  EXPECT_EQ(DumpJson(j["members"][1]),
            "{\"id\":2,\"kind\":\"voter\",\"lag\":0,\"leader\":true,\"match\":1201,"
            "\"peer_addr\":\"10.0.0.2:7380\",\"role\":\"leader\",\"self\":true}");
  ClusterStatus unknown = *st;
  unknown.leader_id = 0;
  unknown.members[0].match = -1;
  unknown.members[0].lag = -1;
  j = ClusterStatusToJson(unknown);
  EXPECT_TRUE(j["leader_id"].is_null());
  EXPECT_TRUE(j["members"][0]["match"].is_null());
  EXPECT_TRUE(j["members"][0]["lag"].is_null());
}

TEST(ClusterStatusTest, Standalone) {
  Reply r = Fields({{"mode", Bulk("standalone")},
                    {"cluster_id", Bulk("")},
                    {"node_id", Int(0)},
                    {"role", Bulk("standalone")},
                    {"leader_id", Int(0)},
                    {"term", Int(0)},
                    {"commit_index", Int(42)},
                    {"applied_index", Int(42)},
                    {"last_index", Int(42)},
                    {"members", Array({Member(0, "", "voter", 42, 0, 1, 1)})}});
  auto st = ParseClusterStatus(r);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_TRUE(st->standalone());
  EXPECT_EQ(FormatClusterStatusHuman(*st),
            "Standalone: this flind is not part of a cluster (applied index 42).");
  std::string plain = FormatClusterStatusPlain(*st);
  EXPECT_EQ(plain.substr(0, 31), "mode standalone\ncluster_id -\nno") << plain;
  EXPECT_NE(plain.find("\nmember 0 - voter leader 42 0 1"), std::string::npos) << plain;
}

TEST(DurationTest, UnitsAndErrors) {
  using std::chrono::milliseconds;
  EXPECT_EQ(*ParseDuration("30s"), milliseconds(30000));
  EXPECT_EQ(*ParseDuration("30"), milliseconds(30000));
  EXPECT_EQ(*ParseDuration("500ms"), milliseconds(500));
  EXPECT_EQ(*ParseDuration("1.5s"), milliseconds(1500));
  EXPECT_EQ(*ParseDuration("2m"), milliseconds(120000));
  EXPECT_EQ(*ParseDuration("1h"), milliseconds(3600000));
  EXPECT_EQ(*ParseDuration("0"), milliseconds(0));
  EXPECT_EQ(*ParseDuration("0.0001s"), milliseconds(1));  // rounded up, never to 0
  for (const char* bad : {"", "s", "-1s", "1.2.3s", "5x", "5 s", "1e3", ".", "1000000000h"}) {
    auto d = ParseDuration(bad);
    ASSERT_FALSE(d.ok()) << bad;
    EXPECT_EQ(d.status().code(), Status::Code::kInvalidArgument) << bad;
  }
}

TEST(ClusterCommandTest, TryAgainIsUnavailable) {
  EXPECT_TRUE(IsTryAgain("TRYAGAIN no leader"));
  EXPECT_TRUE(IsTryAgain("TRYAGAIN"));
  EXPECT_FALSE(IsTryAgain("TRYAGAINX"));
  EXPECT_FALSE(IsTryAgain("ERR TRYAGAIN"));
  EXPECT_EQ(ExitCodeFor(Status::Server("TRYAGAIN catching up: applied 3 of 9")), kExitConnect);
  EXPECT_EQ(ExitCodeFor(Status::Server("ERR this node is not part of a cluster")), kExitServer);
}

TEST(ClusterCommandTest, StartCommand) {
  EXPECT_EQ(FlindStartCommand(4, "10.0.0.1:7379", "10.0.0.4:7380"),
            "flind --node-id 4 --join 10.0.0.1:7379 --peer-listen 10.0.0.4:7380 "
            "--cluster-secret-file SECRET_FILE");
}

TEST(ClusterCommandTest, UsageErrorsExitTwo) {
  testing::internal::CaptureStderr();
  EXPECT_EQ(RunArgs({"cluster"}), kExitUsage);
  EXPECT_EQ(RunArgs({"cluster", "nosuch"}), kExitUsage);
  EXPECT_EQ(RunArgs({"cluster", "add"}), kExitUsage);
  EXPECT_EQ(RunArgs({"cluster", "add", "unix:/tmp/x.sock"}), kExitUsage);
  EXPECT_EQ(RunArgs({"cluster", "add", "nohost"}), kExitUsage);
  EXPECT_EQ(RunArgs({"cluster", "add", "h:7380", "--id", "0"}), kExitUsage);
  EXPECT_EQ(RunArgs({"cluster", "add", "h:7380", "--id", "x"}), kExitUsage);
  EXPECT_EQ(RunArgs({"cluster", "remove"}), kExitUsage);
  EXPECT_EQ(RunArgs({"cluster", "remove", "two"}), kExitUsage);
  EXPECT_EQ(RunArgs({"cluster", "remove", "1", "2"}), kExitUsage);
  EXPECT_EQ(RunArgs({"cluster", "transfer-leader", "-3"}), kExitUsage);
  EXPECT_EQ(RunArgs({"cluster", "status", "extra"}), kExitUsage);
  EXPECT_EQ(RunArgs({"health", "--timeout", "soon"}), kExitUsage);
  EXPECT_EQ(RunArgs({"health", "--timeout", "-1s"}), kExitUsage);
  EXPECT_EQ(RunArgs({"--consistency", "eventual", "ping"}), kExitUsage);
  EXPECT_EQ(RunArgs({"--consistency", "", "ping"}), kExitUsage);
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("--consistency: must be linearizable or stale, not 'eventual'"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("invalid duration 'soon'"), std::string::npos) << err;
}

TEST(ClusterCommandTest, ConnectFailureExitsThree) {
  testing::internal::CaptureStderr();
  EXPECT_EQ(RunArgs({"--addr", "unix:/nonexistent/flin.sock", "cluster", "status"}), kExitConnect);
  EXPECT_EQ(RunArgs({"--addr", "unix:/nonexistent/flin.sock", "health"}), kExitConnect);
  EXPECT_EQ(RunArgs({"--addr", "unix:/nonexistent/flin.sock", "cluster", "add", "h:1"}),
            kExitConnect);
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("cannot connect to unix:/nonexistent/flin.sock"), std::string::npos) << err;
}

TEST(CompletionScriptTest, NestedClusterCommands) {
  CLI::App app;
  AppState state;
  BuildApp(app, &state);
  ProgramSpec spec = ProgramSpecFromApp(app, "flin");
  const CommandSpecForCompletion* cluster = nullptr;
  for (const auto& c : spec.commands) {
    if (c.name == "cluster") cluster = &c;
  }
  ASSERT_NE(cluster, nullptr);
  std::vector<std::string> nested;
  for (const auto& n : cluster->subcommands) nested.push_back(n.name);
  EXPECT_EQ(nested, (std::vector<std::string>{"status", "add", "remove", "transfer-leader"}));
  bool has_id = false;
  for (const auto& o : cluster->subcommands[1].options) has_id |= o.names.back() == "--id";
  EXPECT_TRUE(has_id);
  for (const auto& o : spec.options) {
    if (o.names.back() == "--consistency") {
      EXPECT_EQ(o.choices, (std::vector<std::string>{"linearizable", "stale"}));
    }
  }
  for (const char* shell : {"bash", "zsh", "fish"}) {
    std::string script = GenerateCompletion(app, shell);
    EXPECT_NE(script.find("transfer-leader"), std::string::npos) << shell;
    EXPECT_NE(script.find("health"), std::string::npos) << shell;
    std::string flind = GenerateFlindCompletion(shell);
    for (const char* flag :
         {"bootstrap", "initial-cluster", "cluster-secret-file", "peer-listen", "peer-advertise",
          "node-id", "request-timeout-ms", "tick-ms", "snapshot-entries"}) {
      EXPECT_NE(flind.find(flag), std::string::npos) << shell << " " << flag;
    }
  }
}

}  // namespace
}  // namespace flin::cli
