#include "store/command.h"

#include <gtest/gtest.h>

namespace flin::store {
namespace {

TEST(CommandTest, RoundTripIsExactAndBinarySafe) {
  std::string k("a\0b", 3), v("\r\n\xff", 3);
  Command c;
  c.op = Op::kMSet;
  c.flags = kCondNx | kReplyInt;
  c.now_ms = 1700000000123;
  c.arg = -5;
  c.args = {k, v, "", "x"};
  std::string enc;
  EncodeCommand(c, &enc);
  EXPECT_EQ(enc.size(), EncodedSize(c));
  Command d;
  ASSERT_TRUE(DecodeCommand(enc, &d).ok());
  EXPECT_EQ(d.op, Op::kMSet);
  EXPECT_EQ(d.flags, c.flags);
  EXPECT_EQ(d.now_ms, c.now_ms);
  EXPECT_EQ(d.arg, -5);
  ASSERT_EQ(d.args.size(), 4u);
  EXPECT_EQ(d.args[0], k);
  EXPECT_EQ(d.args[1], v);
  EXPECT_EQ(d.args[2], "");
  EXPECT_EQ(d.args[3], "x");
}

TEST(CommandTest, EveryTruncationIsRejected) {
  Command c;
  c.op = Op::kSet;
  c.args = {"key", "value"};
  std::string enc;
  EncodeCommand(c, &enc);
  for (size_t n = 0; n < enc.size(); ++n) {
    Command d;
    EXPECT_FALSE(DecodeCommand(std::string_view(enc).substr(0, n), &d).ok()) << n;
  }
  Command d;
  EXPECT_FALSE(DecodeCommand(enc + "x", &d).ok());
}

TEST(CommandTest, HostileHeadersAreRejected) {
  Command c;
  c.op = Op::kDel;
  c.args = {"k"};
  std::string enc;
  EncodeCommand(c, &enc);
  std::string bad_version = enc;
  bad_version[0] = 9;
  Command d;
  EXPECT_EQ(DecodeCommand(bad_version, &d).code(), Status::Code::kCorruption);
  std::string bad_op = enc;
  bad_op[1] = 99;
  EXPECT_FALSE(DecodeCommand(bad_op, &d).ok());
  std::string huge_argc = enc;
  huge_argc[22] = '\xff';
  huge_argc[23] = '\xff';
  huge_argc[24] = '\xff';
  huge_argc[25] = '\x7f';
  EXPECT_FALSE(DecodeCommand(huge_argc, &d).ok());
}

}  // namespace
}  // namespace flin::store
