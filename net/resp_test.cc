// RequestParser and ReplyWriter: Redis' behaviour on valid and malformed
// input (texts from redis/redis src/networking.c and tests/unit/protocol.tcl),
// incremental parsing that yields the same commands however the bytes are
// split, linear work on slow or huge input, and exact reply bytes.
#include "net/resp.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <new>
#include <random>
#include <string>
#include <string_view>
#include <vector>

// Counts heap allocations so a test can assert the parser makes none on the
// hot path.
static std::atomic<uint64_t> g_allocations{0};

void* operator new(size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
// GCC 12 flags free() of what its inlined new returned, though it is malloc's.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

namespace flin::net {
namespace {

using namespace std::string_literals;
using Args = std::vector<std::string>;

// What a connection would see: the commands, then either an error or the
// bytes still waiting for more input.
struct Outcome {
  std::vector<Args> commands;
  std::string error;      // empty unless the stream ended in kError
  size_t unconsumed = 0;  // bytes left in the buffer at the end
  uint64_t bytes_scanned = 0;

  bool operator==(const Outcome& o) const {
    return commands == o.commands && error == o.error && unconsumed == o.unconsumed;
  }
};

std::ostream& operator<<(std::ostream& os, const Outcome& o) {
  os << "{commands:";
  for (const Args& c : o.commands) {
    os << " [";
    for (const std::string& a : c) os << '"' << a << "\" ";
    os << "]";
  }
  return os << " error:'" << o.error << "' unconsumed:" << o.unconsumed << "}";
}

// Feeds `input` to a fresh parser in pieces ending at `cuts` (sorted offsets;
// the last piece ends at input.size()), the way a connection does: append what
// was read, parse until incomplete, drop consumed bytes. The buffer is
// compacted now and then so the parser also sees its data move in memory.
Outcome FeedCuts(std::string_view input, const std::vector<size_t>& cuts,
                 RequestLimits limits = {}) {
  RequestParser parser(limits);
  Outcome out;
  std::string buf;
  size_t off = 0;  // start of unconsumed bytes in buf
  size_t fed = 0;
  std::vector<std::string_view> args;
  auto feed_to = [&](size_t end) {
    buf.append(input.substr(fed, end - fed));
    fed = end;
    for (;;) {
      size_t consumed = 12345;
      std::string_view data = std::string_view(buf).substr(off);
      auto r = parser.Parse(data, &consumed, &args);
      if (r == RequestParser::Result::kCommand) {
        EXPECT_GT(consumed, 0u);
        EXPECT_LE(consumed, data.size());
        EXPECT_FALSE(args.empty());
        Args copy;
        for (std::string_view a : args) copy.emplace_back(a);
        out.commands.push_back(std::move(copy));
        off += consumed;
        continue;
      }
      EXPECT_EQ(consumed, 0u);
      EXPECT_TRUE(args.empty());
      if (r == RequestParser::Result::kError) {
        out.error = parser.error();
        EXPECT_FALSE(out.error.empty());
        return false;
      }
      break;
    }
    if (off > 0 && off >= buf.size() / 2) {
      buf.erase(0, off);
      off = 0;
    }
    return true;
  };
  for (size_t cut : cuts) {
    if (cut <= fed || cut > input.size()) continue;
    if (!feed_to(cut)) break;
  }
  if (out.error.empty() && fed < input.size()) feed_to(input.size());
  if (out.error.empty()) out.unconsumed = buf.size() - off;
  out.bytes_scanned = parser.bytes_scanned();
  return out;
}

Outcome FeedAll(std::string_view input, RequestLimits limits = {}) {
  return FeedCuts(input, {}, limits);
}

Outcome FeedBytewise(std::string_view input, RequestLimits limits = {}) {
  std::vector<size_t> cuts;
  for (size_t i = 1; i <= input.size(); ++i) cuts.push_back(i);
  return FeedCuts(input, cuts, limits);
}

Outcome FeedChunks(std::string_view input, size_t chunk, RequestLimits limits = {}) {
  std::vector<size_t> cuts;
  for (size_t i = chunk; i < input.size(); i += chunk) cuts.push_back(i);
  return FeedCuts(input, cuts, limits);
}

std::string Encode(const Args& args) {
  std::string s = "*" + std::to_string(args.size()) + "\r\n";
  for (const std::string& a : args) s += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
  return s;
}

// The error a single input produces, checked to be the same fed at once and
// byte by byte (errors must not depend on how reads split the stream).
std::string ErrorOf(std::string_view input, RequestLimits limits = {}) {
  Outcome all = FeedAll(input, limits);
  Outcome bytewise = FeedBytewise(input, limits);
  EXPECT_EQ(all, bytewise) << "input: " << testing::PrintToString(std::string(input));
  EXPECT_TRUE(all.commands.empty());
  return all.error;
}

// ---------------------------------------------------------------------------
// Multibulk

TEST(RequestParserTest, ParsesMultibulkWithoutCopying) {
  const std::string input = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n";
  RequestParser parser;
  size_t consumed = 0;
  std::vector<std::string_view> args;
  ASSERT_EQ(parser.Parse(input, &consumed, &args), RequestParser::Result::kCommand);
  EXPECT_EQ(consumed, input.size());
  ASSERT_EQ(args.size(), 3u);
  EXPECT_EQ(args[0], "SET");
  EXPECT_EQ(args[1], "k");
  EXPECT_EQ(args[2], "value");
  for (std::string_view a : args) {
    EXPECT_GE(a.data(), input.data());
    EXPECT_LE(a.data() + a.size(), input.data() + input.size());
  }
  EXPECT_EQ(args[2].data(), input.data() + input.find("value"));
}

TEST(RequestParserTest, PipelinedCommandsOneAtATime) {
  const std::string first = Encode({"GET", "a"});
  const std::string second = Encode({"GET", "b"});
  const std::string input = first + second + "*1\r\n$4\r\nPI";
  RequestParser parser;
  size_t consumed = 0;
  std::vector<std::string_view> args;
  std::string_view data = input;
  ASSERT_EQ(parser.Parse(data, &consumed, &args), RequestParser::Result::kCommand);
  EXPECT_EQ(consumed, first.size());
  EXPECT_EQ(args[1], "a");
  data.remove_prefix(consumed);
  ASSERT_EQ(parser.Parse(data, &consumed, &args), RequestParser::Result::kCommand);
  EXPECT_EQ(consumed, second.size());
  EXPECT_EQ(args[1], "b");
  data.remove_prefix(consumed);
  EXPECT_EQ(parser.Parse(data, &consumed, &args), RequestParser::Result::kIncomplete);
  EXPECT_EQ(consumed, 0u);
  EXPECT_TRUE(args.empty());
  parser.Reset();
  EXPECT_EQ(parser.Parse({}, &consumed, &args), RequestParser::Result::kIncomplete);
}

TEST(RequestParserTest, EmptyAndNegativeMultibulkAreSkipped) {
  // Redis: "*-10\r\n" then PING answers PONG (protocol.tcl "Negative multibulk length").
  Outcome o = FeedAll("*0\r\n*-1\r\n*-10\r\n*1\r\n$4\r\nPING\r\n");
  ASSERT_EQ(o.commands.size(), 1u);
  EXPECT_EQ(o.commands[0], Args{"PING"});
  EXPECT_EQ(o.unconsumed, 0u);
  EXPECT_EQ(o.error, "");
}

TEST(RequestParserTest, SkippedCommandsAreConsumedWithTheNextOne) {
  RequestParser parser;
  size_t consumed = 99;
  std::vector<std::string_view> args;
  std::string buf = "\r\n*0\r\n";
  EXPECT_EQ(parser.Parse(buf, &consumed, &args), RequestParser::Result::kIncomplete);
  EXPECT_EQ(consumed, 0u);
  buf += "PING\r\n";
  ASSERT_EQ(parser.Parse(buf, &consumed, &args), RequestParser::Result::kCommand);
  EXPECT_EQ(consumed, buf.size());
  EXPECT_EQ(args, std::vector<std::string_view>{"PING"});
}

TEST(RequestParserTest, BinarySafeBulks) {
  const std::string value = "a\0b\r\nc\xff\r"s;
  Outcome o = FeedAll(Encode({"SET", "k\0"s, value, ""}));
  ASSERT_EQ(o.commands.size(), 1u);
  EXPECT_EQ(o.commands[0], (Args{"SET", "k\0"s, value, ""}));
  EXPECT_EQ(o.error, "");
}

TEST(RequestParserTest, MalformedMultibulkLength) {
  const std::string kInvalid = "Protocol error: invalid multibulk length";
  EXPECT_EQ(ErrorOf("*20000000\r\n"), kInvalid);  // protocol.tcl: out of range
  EXPECT_EQ(ErrorOf("*3000000000\r\n"), kInvalid);
  EXPECT_EQ(ErrorOf("*99999999999999999999999\r\n"), kInvalid);  // overflows int64
  EXPECT_EQ(ErrorOf("*abc\r\n"), kInvalid);
  EXPECT_EQ(ErrorOf("*\r\n"), kInvalid);
  EXPECT_EQ(ErrorOf("*+1\r\n"), kInvalid);  // string2ll takes no '+'
  EXPECT_EQ(ErrorOf("*01\r\n"), kInvalid);  // ... nor leading zeros
  EXPECT_EQ(ErrorOf("*-0\r\n"), kInvalid);  // ... nor "-0"
  EXPECT_EQ(ErrorOf("*-\r\n"), kInvalid);
  EXPECT_EQ(ErrorOf("* 1\r\n"), kInvalid);
  EXPECT_EQ(ErrorOf("*1 \r\n"), kInvalid);
  EXPECT_EQ(ErrorOf("*\0\r\n"s), kInvalid);  // NUL in a length
  EXPECT_EQ(ErrorOf("*1\0\r\n"s), kInvalid);
  EXPECT_EQ(ErrorOf("*1\rX$1\r\nx\r\n"), kInvalid);  // CR not followed by LF
}

TEST(RequestParserTest, MissingDollar) {
  // protocol.tcl "Wrong multibulk payload header" and "Multi bulk request not
  // followed by bulk arguments".
  EXPECT_EQ(ErrorOf("*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n"),
            "Protocol error: expected '$', got 'f'");
  EXPECT_EQ(ErrorOf("*1\r\nfoo\r\n"), "Protocol error: expected '$', got 'f'");
  EXPECT_EQ(ErrorOf("*1\r\n:1\r\n"), "Protocol error: expected '$', got ':'");
  EXPECT_EQ(ErrorOf("*1\r\n\0\r\n"s), "Protocol error: expected '$', got '\0'"s);
  // The offending byte is client data: CR/LF must not break the error line.
  EXPECT_EQ(ErrorOf("*1\r\n\r\n"), "Protocol error: expected '$', got ' '");
}

TEST(RequestParserTest, MalformedBulkLength) {
  const std::string kInvalid = "Protocol error: invalid bulk length";
  const std::string prefix = "*3\r\n$3\r\nSET\r\n$1\r\nx\r\n";
  EXPECT_EQ(ErrorOf(prefix + "$-10\r\n"), kInvalid);         // protocol.tcl
  EXPECT_EQ(ErrorOf(prefix + "$2000000000\r\n"), kInvalid);  // > 512 MB
  EXPECT_EQ(ErrorOf(prefix + "$blabla\r\n"), kInvalid);
  EXPECT_EQ(ErrorOf(prefix + "$-1\r\n"), kInvalid);  // nil is not an argument
  EXPECT_EQ(ErrorOf(prefix + "$\r\n"), kInvalid);
  EXPECT_EQ(ErrorOf(prefix + "$03\r\nabc\r\n"), kInvalid);
  EXPECT_EQ(ErrorOf(prefix + "$99999999999999999999\r\n"), kInvalid);
  EXPECT_EQ(ErrorOf(prefix + "$\0\r\n"s), kInvalid);
  EXPECT_EQ(ErrorOf(prefix + "$1\0\r\nx\r\n"s), kInvalid);
  EXPECT_EQ(ErrorOf(prefix + "$1\rXx\r\n"), kInvalid);
}

TEST(RequestParserTest, BulkMustEndWithCrlf) {
  EXPECT_EQ(ErrorOf("*1\r\n$3\r\nfooXY"), "Protocol error: expected CRLF after bulk");
  EXPECT_EQ(ErrorOf("*1\r\n$3\r\nfoo\rX"), "Protocol error: expected CRLF after bulk");
  EXPECT_EQ(ErrorOf("*1\r\n$3\r\nfoo\n\r"), "Protocol error: expected CRLF after bulk");
  // Only the length counts: a CRLF inside the payload is data.
  Outcome o = FeedAll("*1\r\n$4\r\n\r\n\r\n\r\n");
  ASSERT_EQ(o.commands.size(), 1u);
  EXPECT_EQ(o.commands[0], Args{"\r\n\r\n"});
}

TEST(RequestParserTest, TooLongHeaderLines) {
  RequestLimits small;
  small.max_inline_len = 16;
  // 16 bytes without CR are still a possible line; the 17th is not.
  Outcome waiting = FeedBytewise("*" + std::string(15, '1'), small);
  EXPECT_EQ(waiting.error, "");
  EXPECT_EQ(waiting.unconsumed, 16u);
  EXPECT_EQ(ErrorOf("*" + std::string(16, '1'), small),
            "Protocol error: too big mbulk count string");
  EXPECT_EQ(ErrorOf("*" + std::string(16, '1') + "\r\n", small),
            "Protocol error: too big mbulk count string");
  // A line of exactly 16 bytes is judged on its value.
  EXPECT_EQ(ErrorOf("*" + std::string(15, '1') + "\r\n", small),
            "Protocol error: invalid multibulk length");

  EXPECT_EQ(ErrorOf("*1\r\n$" + std::string(16, '1'), small),
            "Protocol error: too big bulk count string");
  // The cap applies before the '$' is checked, as in Redis.
  EXPECT_EQ(ErrorOf("*1\r\n" + std::string(100, 'X'), small),
            "Protocol error: too big bulk count string");

  // Default limit: 64 KB.
  EXPECT_EQ(ErrorOf("*" + std::string(64 * 1024, '1')),
            "Protocol error: too big mbulk count string");
  EXPECT_EQ(FeedAll("*" + std::string(64 * 1024 - 1, '1')).error, "");
}

TEST(RequestParserTest, ArgumentAndBulkLimits) {
  RequestLimits limits;
  limits.max_args = 3;
  limits.max_bulk_len = 5;
  Outcome ok = FeedAll(Encode({"a", "b", "12345"}), limits);
  ASSERT_EQ(ok.commands.size(), 1u);
  EXPECT_EQ(ok.error, "");
  EXPECT_EQ(ErrorOf(Encode({"a", "b", "c", "d"}), limits),
            "Protocol error: invalid multibulk length");
  EXPECT_EQ(ErrorOf(Encode({"a", "123456"}), limits), "Protocol error: invalid bulk length");

  // Defaults: 1M arguments (the header alone is accepted), 512 MB bulks.
  Outcome max_args = FeedAll("*1048576\r\n$1\r\nx\r\n");
  EXPECT_EQ(max_args.error, "");
  EXPECT_TRUE(max_args.commands.empty());
  EXPECT_EQ(ErrorOf("*1048577\r\n"), "Protocol error: invalid multibulk length");
  EXPECT_EQ(FeedAll("*1\r\n$536870912\r\n").error, "");
  EXPECT_EQ(ErrorOf("*1\r\n$536870913\r\n"), "Protocol error: invalid bulk length");
}

TEST(RequestParserTest, UnauthenticatedLimits) {
  RequestParser parser;
  parser.set_authenticated(false);
  size_t consumed = 0;
  std::vector<std::string_view> args;
  std::string eleven = "*11\r\n";
  EXPECT_EQ(parser.Parse(eleven, &consumed, &args), RequestParser::Result::kError);
  EXPECT_EQ(parser.error(), "Protocol error: unauthenticated multibulk length");

  parser.Reset();
  std::string ten = Encode(Args(10, "x"));
  EXPECT_EQ(parser.Parse(ten, &consumed, &args), RequestParser::Result::kCommand);
  std::string big = Encode({"AUTH", std::string(16 * 1024 + 1, 'p')});
  EXPECT_EQ(parser.Parse(big, &consumed, &args), RequestParser::Result::kError);
  EXPECT_EQ(parser.error(), "Protocol error: unauthenticated bulk length");

  parser.Reset();
  parser.set_authenticated(true);
  EXPECT_EQ(parser.Parse(big, &consumed, &args), RequestParser::Result::kCommand);
  EXPECT_EQ(parser.Parse(eleven, &consumed, &args), RequestParser::Result::kIncomplete);
}

TEST(RequestParserTest, ErrorIsStickyUntilReset) {
  RequestParser parser;
  size_t consumed = 0;
  std::vector<std::string_view> args;
  EXPECT_EQ(parser.Parse("*x\r\n", &consumed, &args), RequestParser::Result::kError);
  const std::string ping = Encode({"PING"});
  EXPECT_EQ(parser.Parse(ping, &consumed, &args), RequestParser::Result::kError);
  EXPECT_EQ(parser.error(), "Protocol error: invalid multibulk length");
  EXPECT_EQ(consumed, 0u);
  parser.Reset();
  EXPECT_EQ(parser.error(), "");
  EXPECT_EQ(parser.Parse(ping, &consumed, &args), RequestParser::Result::kCommand);
  EXPECT_EQ(consumed, ping.size());
}

TEST(RequestParserTest, ResetForgetsAPartialCommand) {
  RequestParser parser;
  size_t consumed = 0;
  std::vector<std::string_view> args;
  EXPECT_EQ(parser.Parse("*2\r\n$3\r\nGET\r\n$1", &consumed, &args),
            RequestParser::Result::kIncomplete);
  parser.Reset();
  EXPECT_EQ(parser.Parse("PING\r\n", &consumed, &args), RequestParser::Result::kCommand);
  EXPECT_EQ(args, std::vector<std::string_view>{"PING"});
}

// ---------------------------------------------------------------------------
// Inline

Args InlineArgs(std::string_view line) {
  Outcome o = FeedAll(line);
  EXPECT_EQ(o.error, "") << testing::PrintToString(std::string(line));
  EXPECT_EQ(o.commands.size(), 1u) << testing::PrintToString(std::string(line));
  EXPECT_EQ(o, FeedBytewise(line));
  return o.commands.empty() ? Args{} : o.commands[0];
}

TEST(RequestParserTest, InlineSplitting) {
  EXPECT_EQ(InlineArgs("PING\r\n"), Args{"PING"});
  EXPECT_EQ(InlineArgs("PING\n"), Args{"PING"});
  EXPECT_EQ(InlineArgs("PING\r\r\n"), Args{"PING"});
  EXPECT_EQ(InlineArgs("  SET\tk   v \t\r\n"), (Args{"SET", "k", "v"}));
  // \v and \f are blanks between arguments but not inside an unquoted one
  // (sdssplitargs).
  EXPECT_EQ(InlineArgs("\v\fGET a\vb\r\n"), (Args{"GET", "a\vb"}));
  EXPECT_EQ(InlineArgs("SET k a\0b\r\n"s), (Args{"SET", "k", "a\0b"s}));  // NUL is data
  EXPECT_EQ(InlineArgs("\0\r\n"s), Args{"\0"s});
}

TEST(RequestParserTest, InlineQuotesAndEscapes) {
  EXPECT_EQ(InlineArgs("SET k \"hello world\"\r\n"), (Args{"SET", "k", "hello world"}));
  EXPECT_EQ(InlineArgs("SET k \"\"\r\n"), (Args{"SET", "k", ""}));  // Redis 7 keeps empties
  EXPECT_EQ(InlineArgs("SET k ''\r\n"), (Args{"SET", "k", ""}));
  EXPECT_EQ(InlineArgs("\"\\n\\r\\t\\b\\a\\\\\\\"\\q\"\r\n"), Args{"\n\r\t\b\a\\\"q"});
  EXPECT_EQ(InlineArgs("\"\\x41\\x4a\\x00\\xfF\"\n"), Args{"AJ\0\xff"s});
  EXPECT_EQ(InlineArgs("\"\\x4\"\n"), Args{"x4"});  // not two hex digits
  EXPECT_EQ(InlineArgs("\"\\xZZ\"\n"), Args{"xZZ"});
  EXPECT_EQ(InlineArgs("'it\\'s'\n"), Args{"it's"});
  EXPECT_EQ(InlineArgs("'a\\nb\"'\n"), Args{"a\\nb\""});  // no escapes in single quotes
  EXPECT_EQ(InlineArgs("\"it's\" 'say \"hi\"'\n"), (Args{"it's", "say \"hi\""}));
  // A quote may open mid-argument; the closing one must end it.
  EXPECT_EQ(InlineArgs("a\"b c\" d\n"), (Args{"ab c", "d"}));
  EXPECT_EQ(InlineArgs("\"a\"\t\"b\"\n"), (Args{"a", "b"}));
  EXPECT_EQ(InlineArgs("\"a\"\vb\n"), (Args{"a", "b"}));
  EXPECT_EQ(InlineArgs("\"a\r\"\n"), Args{"a\r"});
}

TEST(RequestParserTest, InlineArgumentsPointIntoDataOrStorage) {
  const std::string input = "SET \"k 1\" value\r\n";
  RequestParser parser;
  size_t consumed = 0;
  std::vector<std::string_view> args;
  ASSERT_EQ(parser.Parse(input, &consumed, &args), RequestParser::Result::kCommand);
  EXPECT_EQ(consumed, input.size());
  ASSERT_EQ(args.size(), 3u);
  EXPECT_EQ(args[0].data(), input.data());  // unquoted: no copy
  EXPECT_EQ(args[2].data(), input.data() + input.find("value"));
  EXPECT_EQ(args[1], "k 1");
  std::string_view storage = parser.storage();
  EXPECT_GE(args[1].data(), storage.data());
  EXPECT_LE(args[1].data() + args[1].size(), storage.data() + storage.size());
}

TEST(RequestParserTest, UnbalancedQuotes) {
  const std::string kUnbalanced = "Protocol error: unbalanced quotes in request";
  EXPECT_EQ(ErrorOf("SET k \"abc\r\n"), kUnbalanced);
  EXPECT_EQ(ErrorOf("SET k 'abc\r\n"), kUnbalanced);
  EXPECT_EQ(ErrorOf("SET k \"a\"b\r\n"), kUnbalanced);
  EXPECT_EQ(ErrorOf("SET k 'a'b\r\n"), kUnbalanced);
  EXPECT_EQ(ErrorOf("SET k \"a\\\"\r\n"), kUnbalanced);  // escaped closing quote
  EXPECT_EQ(ErrorOf("SET k \"a\\\r\n"), kUnbalanced);    // backslash at the end
  EXPECT_EQ(ErrorOf("\"\n"), kUnbalanced);
}

TEST(RequestParserTest, BlankInlineLinesAreSkipped) {
  // protocol.tcl "Handle an empty query".
  Outcome o = FeedAll("\r\n\n   \t\r\n\"\"x\r\nPING\r\n");
  // '""x' is not blank: a closing quote followed by 'x' is an error.
  EXPECT_EQ(o.error, "Protocol error: unbalanced quotes in request");
  o = FeedAll("\r\n\n   \t\r\nPING\r\n");
  EXPECT_EQ(o.error, "");
  ASSERT_EQ(o.commands.size(), 1u);
  EXPECT_EQ(o.commands[0], Args{"PING"});
  EXPECT_EQ(o.unconsumed, 0u);
}

TEST(RequestParserTest, TooBigInlineRequest) {
  const size_t kMax = 64 * 1024;
  EXPECT_EQ(ErrorOf(std::string(kMax + 1, 'A')), "Protocol error: too big inline request");
  EXPECT_EQ(ErrorOf(std::string(kMax + 1, 'A') + "\n"), "Protocol error: too big inline request");
  // kMax bytes before the newline is the longest accepted line (the CR counts).
  Outcome waiting = FeedAll(std::string(kMax, 'A'));
  EXPECT_EQ(waiting.error, "");
  EXPECT_EQ(waiting.unconsumed, kMax);
  EXPECT_EQ(InlineArgs(std::string(kMax - 1, 'A') + "\r\n"), Args{std::string(kMax - 1, 'A')});
  EXPECT_EQ(ErrorOf(std::string(kMax, 'A') + "\r\n"), "Protocol error: too big inline request");
}

// ---------------------------------------------------------------------------
// Hostile input and incremental parsing

TEST(RequestParserTest, GarbageNeverCrashes) {
  std::mt19937_64 rng(42);
  std::string garbage(1 << 20, '\0');
  for (char& c : garbage) c = static_cast<char>(rng());
  for (char first : {'*', 'A', '$'}) {
    garbage[0] = first;
    Outcome all = FeedAll(garbage);
    EXPECT_EQ(all, FeedChunks(garbage, 4096));
    EXPECT_EQ(all, FeedChunks(garbage, 1000));
  }
  // A megabyte without a line end costs one bounded scan, not a megabyte one.
  std::string no_newline(1 << 20, 'x');
  Outcome o = FeedAll(no_newline);
  EXPECT_EQ(o.error, "Protocol error: too big inline request");
  EXPECT_LE(o.bytes_scanned, 64u * 1024 + 1);
  no_newline[0] = '*';
  EXPECT_EQ(FeedAll(no_newline).error, "Protocol error: too big mbulk count string");
}

TEST(RequestParserTest, ProtocolDesyncRegression) {
  // protocol.tcl "Protocol desync regression test": a '*' line that never
  // ends must be refused, not buffered forever.
  std::string input = "*\0"s;
  for (int i = 0; i < 100; ++i) input += std::string(1024, 'A') + "\n";
  EXPECT_EQ(FeedChunks(input, 1025).error, "Protocol error: too big mbulk count string");
}

std::string MixedPipeline() {
  std::string s;
  s += Encode({"SET", "key", "va\r\nlue"});
  s += "\r\n";                       // skipped blank line
  s += "*0\r\n";                     // skipped empty multibulk
  s += "GET \"k\\x00y\" 'a b'\r\n";  // inline with quotes
  s += Encode({"MSET", "a", "1", "b", "", "c", std::string(300, 'z')});
  s += "PING\n";
  s += "*-1\r\n";
  s += Encode({"DEL", "\0\0"s});
  s += "*2\r\n$4\r\nECHO\r\n$3\r\nabc";  // incomplete tail
  return s;
}

TEST(RequestParserTest, ByteByByteEqualsAllAtOnce) {
  const std::string input = MixedPipeline();
  Outcome all = FeedAll(input);
  ASSERT_EQ(all.error, "");
  ASSERT_EQ(all.commands.size(), 5u);
  EXPECT_EQ(all.commands[0], (Args{"SET", "key", "va\r\nlue"}));
  EXPECT_EQ(all.commands[1], (Args{"GET", "k\0y"s, "a b"}));
  EXPECT_EQ(all.commands[3], Args{"PING"});
  EXPECT_EQ(all.commands[4], (Args{"DEL", "\0\0"s}));
  EXPECT_EQ(all.unconsumed, std::string("*2\r\n$4\r\nECHO\r\n$3\r\nabc").size());
  EXPECT_EQ(all, FeedBytewise(input));
  for (size_t chunk : {2, 3, 7, 64}) EXPECT_EQ(all, FeedChunks(input, chunk)) << chunk;
}

TEST(RequestParserTest, BigBulkInSmallPiecesIsLinear) {
  const size_t kLen = 8 << 20;
  const std::string header = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$" + std::to_string(kLen) + "\r\n";
  std::string input = header + std::string(kLen, 'v') + "\r\n";
  RequestParser parser;
  std::vector<std::string_view> args;
  size_t consumed = 0;
  size_t calls = 0;
  RequestParser::Result r = RequestParser::Result::kIncomplete;
  EXPECT_EQ(parser.BytesWanted(), 0u);
  for (size_t have = 4096; r == RequestParser::Result::kIncomplete; have += 4096) {
    r = parser.Parse(std::string_view(input).substr(0, std::min(have, input.size())), &consumed,
                     &args);
    ++calls;
    if (r == RequestParser::Result::kIncomplete) {
      // Once the length is known the parser says how much it needs.
      EXPECT_EQ(parser.BytesWanted(), input.size());
      EXPECT_EQ(parser.BytesMissing(std::min(have, input.size())),
                input.size() - std::min(have, input.size()));
    }
  }
  ASSERT_EQ(r, RequestParser::Result::kCommand);
  EXPECT_EQ(consumed, input.size());
  ASSERT_EQ(args.size(), 3u);
  EXPECT_EQ(args[2].size(), kLen);
  EXPECT_EQ(args[2].data(), input.data() + header.size());
  EXPECT_EQ(parser.BytesWanted(), 0u);
  EXPECT_EQ(parser.BytesMissing(0), 0u);
  EXPECT_EQ(calls, input.size() / 4096 + 1);
  // 2048 calls, yet only the header bytes were ever examined.
  EXPECT_LE(parser.bytes_scanned(), 2 * header.size());
}

TEST(RequestParserTest, ManyArgumentsArrivingSlowlyIsLinear) {
  const size_t kArgs = 200000;
  std::string input = "*" + std::to_string(kArgs) + "\r\n";
  for (size_t i = 0; i < kArgs; ++i) input += "$1\r\n" + std::string(1, 'a' + i % 26) + "\r\n";
  Outcome o = FeedChunks(input, 5);
  ASSERT_EQ(o.error, "");
  ASSERT_EQ(o.commands.size(), 1u);
  ASSERT_EQ(o.commands[0].size(), kArgs);
  EXPECT_EQ(o.commands[0][kArgs - 1], std::string(1, 'a' + (kArgs - 1) % 26));
  // Each byte is looked at about once (a CR seen before its LF arrives is
  // looked at again); re-scanning from the start would be ~10^11.
  EXPECT_LE(o.bytes_scanned, 2 * input.size());
}

TEST(RequestParserTest, LongInlineLineArrivingSlowlyIsLinear) {
  std::string line;
  for (int i = 0; i < 6000; ++i) line += "arg" + std::to_string(i) + " ";
  line += "\r\n";
  ASSERT_LT(line.size(), 64u * 1024);
  Outcome o = FeedBytewise(line);
  ASSERT_EQ(o.commands.size(), 1u);
  EXPECT_EQ(o.commands[0].size(), 6000u);
  EXPECT_EQ(o.commands[0][5999], "arg5999");
  EXPECT_LE(o.bytes_scanned, 2 * line.size() + 2);
}

TEST(RequestParserTest, NoAllocationPerCommandOnceWarm) {
  std::string input;
  for (int i = 0; i < 200; ++i) {
    Args mset = {"MSET"};
    for (int k = 0; k < 10; ++k) {
      mset.push_back("key:" + std::to_string(i * 10 + k));
      mset.push_back(std::string(i % 50, 'v'));
    }
    input += Encode(mset);
    input += "GET key:" + std::to_string(i) + "\r\n";
    input += "SET \"k " + std::to_string(i) + "\" 'v'\r\n";
  }
  RequestParser parser;
  std::vector<std::string_view> args;
  args.reserve(64);
  // The first commands size the parser's reusable buffers.
  std::string_view data = input;
  size_t consumed = 0;
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(parser.Parse(data, &consumed, &args), RequestParser::Result::kCommand);
    data.remove_prefix(consumed);
  }
  size_t commands = 0;
  const uint64_t before = g_allocations.load();
  while (parser.Parse(data, &consumed, &args) == RequestParser::Result::kCommand) {
    data.remove_prefix(consumed);
    ++commands;
  }
  const uint64_t allocations = g_allocations.load() - before;
  EXPECT_EQ(commands, 597u);
  EXPECT_TRUE(data.empty());
  EXPECT_EQ(allocations, 0u);
}

// Random commands with random binary arguments, encoded as multibulk or as
// inline (every byte hex-escaped in double quotes), fed at random split
// points: the parser must return exactly what was encoded.
TEST(RequestParserTest, RandomRoundTrip) {
  std::mt19937_64 rng(20261126);
  auto uniform = [&](size_t lo, size_t hi) {
    return std::uniform_int_distribution<size_t>(lo, hi)(rng);
  };
  for (int round = 0; round < 50; ++round) {
    std::vector<Args> expected;
    std::string stream;
    const size_t commands = uniform(1, 40);
    for (size_t c = 0; c < commands; ++c) {
      Args args(uniform(1, 8));
      for (std::string& a : args) {
        a.resize(uniform(0, 1) ? uniform(0, 16) : uniform(0, 3000));
        for (char& ch : a) ch = static_cast<char>(uniform(0, 255));
      }
      std::string line;
      if (uniform(0, 3) == 0) {
        static const char kHex[] = "0123456789abcdef";
        for (const std::string& a : args) {
          line += " \"";
          for (unsigned char ch : a) {
            line += "\\x";
            line += kHex[ch >> 4];
            line += kHex[ch & 15];
          }
          line += "\"";
        }
        line += uniform(0, 1) ? "\r\n" : "\n";
      }
      // Inline lines are capped at 64 KB; longer commands go as multibulk.
      stream += !line.empty() && line.size() < 60000 ? line : Encode(args);
      expected.push_back(std::move(args));
    }
    std::vector<size_t> cuts;
    for (size_t n = uniform(0, 50); n > 0; --n) cuts.push_back(uniform(1, stream.size()));
    std::sort(cuts.begin(), cuts.end());
    Outcome o = FeedCuts(stream, cuts);
    EXPECT_EQ(o.error, "");
    EXPECT_EQ(o.unconsumed, 0u);
    ASSERT_EQ(o.commands.size(), expected.size()) << "round " << round;
    for (size_t i = 0; i < expected.size(); ++i) {
      EXPECT_EQ(o.commands[i], expected[i]) << "round " << round << " command " << i;
    }
  }
}

// ---------------------------------------------------------------------------
// ReplyWriter

TEST(ReplyWriterTest, ExactBytes) {
  std::string out;
  ReplyWriter w(&out);
  EXPECT_EQ(w.out(), &out);

  auto take = [&out] {
    std::string s = out;
    out.clear();
    return s;
  };
  w.Ok();
  EXPECT_EQ(take(), "+OK\r\n");
  w.Status("PONG");
  EXPECT_EQ(take(), "+PONG\r\n");
  w.Status("a\r\nb");
  EXPECT_EQ(take(), "+a  b\r\n");
  w.Status("");
  EXPECT_EQ(take(), "+\r\n");
  w.Error("ERR unknown command 'x'");
  EXPECT_EQ(take(), "-ERR unknown command 'x'\r\n");
  w.Error("ERR bad\nthing\r");
  EXPECT_EQ(take(), "-ERR bad thing \r\n");
  w.Integer(0);
  EXPECT_EQ(take(), ":0\r\n");
  w.Integer(-5);
  EXPECT_EQ(take(), ":-5\r\n");
  w.Integer(std::numeric_limits<int64_t>::max());
  EXPECT_EQ(take(), ":9223372036854775807\r\n");
  w.Integer(std::numeric_limits<int64_t>::min());
  EXPECT_EQ(take(), ":-9223372036854775808\r\n");
  w.Bulk("");
  EXPECT_EQ(take(), "$0\r\n\r\n");
  w.Bulk("a\0\r\nb"s);
  EXPECT_EQ(take(), "$5\r\na\0\r\nb\r\n"s);
  w.Nil();
  EXPECT_EQ(take(), "$-1\r\n");
  w.ArrayHeader(0);
  EXPECT_EQ(take(), "*0\r\n");
  w.ArrayHeader(12345);
  EXPECT_EQ(take(), "*12345\r\n");
  w.NilArray();
  EXPECT_EQ(take(), "*-1\r\n");
}

TEST(ReplyWriterTest, AppendsToExistingOutput) {
  std::string out = "+previous\r\n";
  ReplyWriter w(&out);
  w.ArrayHeader(2);
  w.Bulk("x");
  w.Nil();
  w.Error("ERR a\r\nb");  // sanitising must not touch earlier replies
  EXPECT_EQ(out, "+previous\r\n*2\r\n$1\r\nx\r\n$-1\r\n-ERR a  b\r\n");
}

TEST(ReplyWriterTest, RepliesAreParsableAsCommands) {
  // A bulk array is exactly a multibulk request: round-trip it.
  std::string out;
  ReplyWriter w(&out);
  const Args args = {"SET", "k\0"s, std::string(1000, 'x'), ""};
  w.ArrayHeader(args.size());
  for (const std::string& a : args) w.Bulk(a);
  EXPECT_EQ(out, Encode(args));
  Outcome o = FeedAll(out);
  ASSERT_EQ(o.commands.size(), 1u);
  EXPECT_EQ(o.commands[0], args);
}

}  // namespace
}  // namespace flin::net
