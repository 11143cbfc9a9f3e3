// Unit tests for the client-side RESP2 wire format: request encoding and the
// incremental reply parser, byte by byte, no sockets.
#include "net/reply_parser.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "base/strings.h"

namespace flin::client {
namespace {

using namespace std::string_literals;

// Parses `wire` fed in one piece; expects exactly the replies given and no
// leftover bytes.
std::vector<Reply> ParseAll(std::string_view wire) {
  ReplyParser p;
  p.Feed(wire);
  std::vector<Reply> out;
  for (;;) {
    auto r = p.Next();
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok() || !r.value()) break;
    out.push_back(std::move(*r.value()));
  }
  EXPECT_EQ(p.buffered(), 0u);
  EXPECT_TRUE(p.idle());
  return out;
}

Status ParseError(std::string_view wire) {
  ReplyParser p;
  p.Feed(wire);
  for (;;) {
    auto r = p.Next();
    if (!r.ok()) return r.status();
    if (!r.value()) return Status::Ok();
  }
}

TEST(EncodeCommandTest, MultibulkIsBinarySafe) {
  std::string out;
  EncodeCommand(std::vector<std::string_view>{"SET", "k", "a\0\r\nb"s}, &out);
  EXPECT_EQ(out, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\na\0\r\nb\r\n"s);
  EncodeCommand(std::vector<std::string>{"GET", ""}, &out);
  EXPECT_EQ(out.substr(out.size() - 19), "*2\r\n$3\r\nGET\r\n$0\r\n\r\n");
}

TEST(ReplyParserTest, EveryType) {
  auto r = ParseAll(
      "+OK\r\n-ERR bad thing\r\n:42\r\n:-7\r\n$5\r\nhello\r\n$0\r\n\r\n$-1\r\n"
      "*-1\r\n*0\r\n*2\r\n$1\r\na\r\n:1\r\n");
  ASSERT_EQ(r.size(), 10u);
  EXPECT_EQ(r[0], Reply::Status("OK"));
  EXPECT_EQ(r[1], Reply::Error("ERR bad thing"));
  EXPECT_TRUE(r[1].is_error());
  EXPECT_EQ(r[2], Reply::Integer(42));
  EXPECT_EQ(r[3], Reply::Integer(-7));
  EXPECT_EQ(r[4], Reply::Bulk("hello"));
  EXPECT_EQ(r[5], Reply::Bulk(""));
  EXPECT_EQ(r[6].type, Reply::Type::kNil);
  EXPECT_TRUE(r[6].is_nil());
  EXPECT_EQ(r[7].type, Reply::Type::kNilArray);
  EXPECT_TRUE(r[7].is_nil());
  EXPECT_EQ(r[8], Reply::Array({}));
  EXPECT_FALSE(r[8].is_nil());
  EXPECT_EQ(r[9], Reply::Array({Reply::Bulk("a"), Reply::Integer(1)}));
}

TEST(ReplyParserTest, IntegerExtremes) {
  auto r = ParseAll(":9223372036854775807\r\n:-9223372036854775808\r\n:0\r\n");
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].integer, INT64_MAX);
  EXPECT_EQ(r[1].integer, INT64_MIN);
  EXPECT_EQ(r[2].integer, 0);
}

TEST(ReplyParserTest, BulkIsBinarySafe) {
  std::string payload = "a\0b\r\nc\r"s + "\n\n$-1\r\n"s;
  std::string wire = "$" + std::to_string(payload.size()) + "\r\n" + payload + "\r\n";
  auto r = ParseAll(wire);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0], Reply::Bulk(payload));
}

TEST(ReplyParserTest, NestedArraysWithNils) {
  auto r = ParseAll("*3\r\n*2\r\n$1\r\nx\r\n*1\r\n$-1\r\n*-1\r\n*2\r\n*0\r\n+OK\r\n:5\r\n");
  ASSERT_EQ(r.size(), 2u);
  Reply want = Reply::Array({
      Reply::Array({Reply::Bulk("x"), Reply::Array({Reply::Nil()})}),
      Reply::NilArray(),
      Reply::Array({Reply::Array({}), Reply::Status("OK")}),
  });
  EXPECT_EQ(r[0], want) << DebugString(r[0]);
  EXPECT_EQ(r[1], Reply::Integer(5));
}

TEST(ReplyParserTest, DeepNestingWithinLimit) {
  std::string wire;
  for (int i = 0; i < 100; ++i) wire += "*1\r\n";
  wire += ":1\r\n";
  auto r = ParseAll(wire);
  ASSERT_EQ(r.size(), 1u);
  const Reply* cur = &r[0];
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(cur->type, Reply::Type::kArray);
    ASSERT_EQ(cur->elements.size(), 1u);
    cur = &cur->elements[0];
  }
  EXPECT_EQ(*cur, Reply::Integer(1));
}

// Every reply type, nested arrays and binary bulks, fed one split at every
// byte boundary (and byte by byte): the result must not depend on how the
// bytes arrive.
TEST(ReplyParserTest, SplitAtEveryByte) {
  const std::string wire =
      "+OK\r\n-ERR x\r\n:123\r\n$6\r\na\r\n\0bc\r\n$-1\r\n*-1\r\n*0\r\n"
      "*3\r\n$1\r\na\r\n*2\r\n:1\r\n$-1\r\n+s\r\n"s;
  const std::vector<Reply> want = ParseAll(wire);
  ASSERT_EQ(want.size(), 8u);

  for (size_t split = 0; split <= wire.size(); ++split) {
    ReplyParser p;
    std::vector<Reply> got;
    auto drain = [&] {
      for (;;) {
        auto r = p.Next();
        ASSERT_TRUE(r.ok()) << "split " << split << ": " << r.status().ToString();
        if (!r.value()) return;
        got.push_back(std::move(*r.value()));
      }
    };
    p.Feed(std::string_view(wire).substr(0, split));
    drain();
    p.Feed(std::string_view(wire).substr(split));
    drain();
    EXPECT_EQ(got, want) << "split at " << split;
    EXPECT_TRUE(p.idle());
  }

  ReplyParser p;
  std::vector<Reply> got;
  for (char c : wire) {
    char* dst = p.PrepareFeed(16);
    dst[0] = c;
    p.CommitFeed(1);
    for (;;) {
      auto r = p.Next();
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      if (!r.value()) break;
      got.push_back(std::move(*r.value()));
    }
  }
  EXPECT_EQ(got, want);
}

TEST(ReplyParserTest, IncompleteInputWaits) {
  ReplyParser p;
  p.Feed("$10\r\nhello");
  auto r = p.Next();
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r.value());
  EXPECT_FALSE(p.idle());
  p.Feed("world\r");
  r = p.Next();
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r.value());
  p.Feed("\n");
  r = p.Next();
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(r.value());
  EXPECT_EQ(*r.value(), Reply::Bulk("helloworld"));
  EXPECT_TRUE(p.idle());
}

TEST(ReplyParserTest, LargeBulkInChunks) {
  std::string payload(3 << 20, 'v');
  for (size_t i = 0; i < payload.size(); i += 4097) payload[i] = static_cast<char>(i % 251);
  std::string wire = "$" + std::to_string(payload.size()) + "\r\n" + payload + "\r\n+after\r\n";
  ReplyParser p;
  std::vector<Reply> got;
  for (size_t off = 0; off < wire.size(); off += 65536) {
    p.Feed(std::string_view(wire).substr(off, 65536));
    for (;;) {
      auto r = p.Next();
      ASSERT_TRUE(r.ok());
      if (!r.value()) break;
      got.push_back(std::move(*r.value()));
    }
  }
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].str.size(), payload.size());
  EXPECT_TRUE(got[0].str == payload);
  EXPECT_EQ(got[1], Reply::Status("after"));
}

struct Malformed {
  std::string wire;
  std::string expect_in_message;
};

TEST(ReplyParserTest, MalformedInputIsAProtocolError) {
  const std::vector<Malformed> cases = {
      {"?what\r\n", "unknown reply type byte 0x3f"},
      {"\x01\r\n", "unknown reply type byte 0x01"},
      {"hello\r\n", "unknown reply type byte 0x68"},
      {":12a\r\n", "invalid integer reply '12a'"},
      {":\r\n", "invalid integer reply ''"},
      {": 1\r\n", "invalid integer reply"},
      {":99999999999999999999\r\n", "invalid integer reply"},
      {"$abc\r\n", "invalid bulk length 'abc'"},
      {"$\r\n", "invalid bulk length"},
      {"$-2\r\n", "negative bulk length -2"},
      {"$3\r\nabcd\r\n", "not followed by CRLF"},
      {"$3\r\nabc\n\n", "not followed by CRLF"},
      {"*x\r\n", "invalid array length 'x'"},
      {"*-5\r\n", "negative array length -5"},
      {"+OK\n", "bare LF"},
      {"+OK\rX\n", "CR not followed by LF"},
      {"*2\r\n:1\r\n:2\n", "bare LF"},
      {"*1\r\n!\r\n", "unknown reply type byte 0x21"},
  };
  for (const auto& c : cases) {
    Status s = ParseError(c.wire);
    EXPECT_EQ(s.code(), Status::Code::kProtocol) << Printable(c.wire) << " -> " << s.ToString();
    EXPECT_NE(s.message().find(c.expect_in_message), std::string::npos)
        << Printable(c.wire) << " -> " << s.message();
  }
}

TEST(ReplyParserTest, LimitsAreEnforced) {
  ReplyParserLimits limits;
  limits.max_line = 16;
  limits.max_bulk_len = 100;
  limits.max_array_len = 10;
  limits.max_depth = 3;
  auto parse = [&](std::string_view wire) {
    ReplyParser p(limits);
    p.Feed(wire);
    return p.Next().status();
  };
  EXPECT_NE(parse("+" + std::string(40, 'a')).message().find("reply line longer than 16"),
            std::string::npos);
  EXPECT_NE(parse("$101\r\n").message().find("bulk length 101 exceeds the limit of 100"),
            std::string::npos);
  EXPECT_NE(parse("*11\r\n").message().find("array length 11 exceeds"), std::string::npos);
  EXPECT_NE(parse("*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n").message().find("nested deeper than 3"),
            std::string::npos);
  EXPECT_TRUE(parse("*1\r\n*1\r\n*1\r\n:1\r\n").ok());
  EXPECT_TRUE(parse("$100\r\n").ok());  // just incomplete
}

TEST(ReplyParserTest, StaysFailedAfterAnError) {
  ReplyParser p;
  p.Feed(":x\r\n+OK\r\n");
  EXPECT_EQ(p.Next().status().code(), Status::Code::kProtocol);
  auto again = p.Next();
  EXPECT_EQ(again.status().code(), Status::Code::kProtocol);
  EXPECT_EQ(p.error().code(), Status::Code::kProtocol);
}

TEST(ReplyParserTest, ManyRepliesCompactTheBuffer) {
  ReplyParser p;
  std::string one = "$100\r\n" + std::string(100, 'z') + "\r\n";
  size_t count = 0;
  for (int round = 0; round < 2000; ++round) {
    p.Feed(one);
    auto r = p.Next();
    ASSERT_TRUE(r.ok());
    ASSERT_TRUE(r.value());
    ++count;
  }
  EXPECT_EQ(count, 2000u);
  EXPECT_TRUE(p.idle());
}

// --- randomized: a seeded generator, printed on failure ---------------------

void Serialize(const Reply& r, std::string* out) {
  switch (r.type) {
    case Reply::Type::kStatus:
      *out += "+" + r.str + "\r\n";
      return;
    case Reply::Type::kError:
      *out += "-" + r.str + "\r\n";
      return;
    case Reply::Type::kInteger:
      *out += ":" + std::to_string(r.integer) + "\r\n";
      return;
    case Reply::Type::kBulk:
      *out += "$" + std::to_string(r.str.size()) + "\r\n" + r.str + "\r\n";
      return;
    case Reply::Type::kNil:
      *out += "$-1\r\n";
      return;
    case Reply::Type::kNilArray:
      *out += "*-1\r\n";
      return;
    case Reply::Type::kArray:
      *out += "*" + std::to_string(r.elements.size()) + "\r\n";
      for (const Reply& e : r.elements) Serialize(e, out);
      return;
  }
}

Reply RandomReply(std::mt19937_64& rng, int depth) {
  auto pick = [&](int n) { return static_cast<int>(rng() % n); };
  auto text = [&](bool binary) {
    std::string t(pick(20), 'a');
    for (char& c : t) {
      c = binary ? static_cast<char>(rng()) : static_cast<char>('a' + pick(26));
    }
    return t;
  };
  switch (pick(depth < 4 ? 7 : 6)) {
    case 0:
      return Reply::Status(text(false));
    case 1:
      return Reply::Error("ERR " + text(false));
    case 2:
      return Reply::Integer(static_cast<int64_t>(rng()));
    case 3:
      return Reply::Bulk(text(true));
    case 4:
      return Reply::Nil();
    case 5:
      return Reply::NilArray();
    default: {
      std::vector<Reply> elements(pick(6));
      for (Reply& e : elements) e = RandomReply(rng, depth + 1);
      return Reply::Array(std::move(elements));
    }
  }
}

TEST(ReplyParserRandomTest, RoundTripsInRandomChunks) {
  const uint64_t seed = 20261126;
  std::mt19937_64 rng(seed);
  for (int round = 0; round < 300; ++round) {
    std::vector<Reply> want(1 + rng() % 8);
    std::string wire;
    for (Reply& r : want) {
      r = RandomReply(rng, 0);
      Serialize(r, &wire);
    }
    ReplyParser p;
    std::vector<Reply> got;
    for (size_t off = 0; off < wire.size();) {
      size_t n = std::min<size_t>(1 + rng() % 40, wire.size() - off);
      p.Feed(std::string_view(wire).substr(off, n));
      off += n;
      for (;;) {
        auto r = p.Next();
        ASSERT_TRUE(r.ok()) << "seed " << seed << " round " << round << ": "
                            << r.status().ToString();
        if (!r.value()) break;
        got.push_back(std::move(*r.value()));
      }
    }
    ASSERT_EQ(got, want) << "seed " << seed << " round " << round;
    ASSERT_TRUE(p.idle());
  }
}

TEST(ReplyParserRandomTest, CorruptedInputNeverCrashes) {
  // Flip bytes of valid replies: the parser must return replies, ask for
  // more, or fail with Protocol; never crash or loop.
  const uint64_t seed = 77;
  std::mt19937_64 rng(seed);
  int errors = 0;
  for (int round = 0; round < 2000; ++round) {
    std::string wire;
    Serialize(RandomReply(rng, 0), &wire);
    for (int flips = 1 + rng() % 3; flips > 0; --flips) {
      wire[rng() % wire.size()] = static_cast<char>(rng());
    }
    ReplyParser p;
    p.Feed(wire);
    for (int i = 0; i < 1000; ++i) {
      auto r = p.Next();
      if (!r.ok()) {
        ASSERT_EQ(r.status().code(), Status::Code::kProtocol) << "seed " << seed;
        ++errors;
        break;
      }
      if (!r.value()) break;
    }
  }
  EXPECT_GT(errors, 0);
}

TEST(ReplyDebugStringTest, Readable) {
  Reply r = Reply::Array({Reply::Bulk("a\nb"), Reply::Nil(), Reply::Integer(3),
                          Reply::Error("ERR x"), Reply::Status("OK")});
  EXPECT_EQ(DebugString(r), "[\"a\\x0ab\", nil, 3, (error) ERR x, +OK]");
}

}  // namespace
}  // namespace flin::client
