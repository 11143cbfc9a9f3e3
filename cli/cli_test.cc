// Unit tests for flin's pure parts: quoting, reply formatting, JSON values,
// shell completion candidates and generated scripts, usage-error exit codes.
#include <gtest/gtest.h>

#include <cctype>
#include <fstream>
#include <sstream>

#include "base/strings.h"
#include "cli/app.h"
#include "cli/args.h"
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

}  // namespace
}  // namespace flin::cli
