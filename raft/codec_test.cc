#include "raft/codec.h"

#include <gtest/gtest.h>

#include <random>

namespace flin::raft {
namespace {

Message Sample() {
  Message m;
  m.type = MessageType::kAppend;
  m.from = 3;
  m.to = 1;
  m.term = 7;
  m.log_term = 6;
  m.index = 1ull << 40;
  m.commit = 99;
  m.reject = true;
  m.force = true;
  m.reject_hint = 12;
  m.read_seq = 300;
  m.context = std::string("ctx\0bytes", 9);
  m.entries.push_back(Entry{7, (1ull << 40) + 1, EntryType::kNormal, "hello"});
  m.entries.push_back(Entry{7, (1ull << 40) + 2, EntryType::kConfChange,
                            EncodeConfChange({ConfChangeType::kAddLearner, 9})});
  m.entries.push_back(Entry{7, (1ull << 40) + 3, EntryType::kNoop, ""});
  return m;
}

TEST(RaftCodec, MessageRoundTrip) {
  Message m = Sample();
  std::string bytes;
  EncodeMessage(m, &bytes);
  Message got;
  ASSERT_TRUE(DecodeMessage(bytes, &got).ok());
  EXPECT_EQ(got, m);
}

TEST(RaftCodec, SnapshotChunkRoundTrip) {
  Message m;
  m.type = MessageType::kSnapshot;
  m.from = 1;
  m.to = 2;
  m.term = 4;
  m.snapshot = SnapshotMeta{1000, 3, ConfState{{1, 2, 3}, {5}}};
  m.snapshot_offset = 65536;
  m.snapshot_data = std::string(1000, 'x');
  m.snapshot_last = true;
  std::string bytes;
  EncodeMessage(m, &bytes);
  Message got;
  ASSERT_TRUE(DecodeMessage(bytes, &got).ok());
  EXPECT_EQ(got, m);
}

TEST(RaftCodec, EveryMessageTypeRoundTrips) {
  for (int t = 1; t <= kMaxMessageType; ++t) {
    Message m = Sample();
    m.type = static_cast<MessageType>(t);
    std::string bytes;
    EncodeMessage(m, &bytes);
    Message got;
    ASSERT_TRUE(DecodeMessage(bytes, &got).ok()) << t;
    EXPECT_EQ(got, m) << MessageTypeName(m.type);
  }
}

TEST(RaftCodec, EntryHardStateConfRoundTrip) {
  Entry e{5, 6, EntryType::kNormal, std::string(300, '\xff')};
  std::string b;
  EncodeEntry(e, &b);
  Entry e2;
  ASSERT_TRUE(DecodeEntry(b, &e2).ok());
  EXPECT_EQ(e2, e);

  HardState hs{~0ull, 3, 1ull << 63};
  b.clear();
  EncodeHardState(hs, &b);
  HardState hs2;
  ASSERT_TRUE(DecodeHardState(b, &hs2).ok());
  EXPECT_EQ(hs2, hs);

  SnapshotMeta meta{10, 2, ConfState{{1, 4}, {7, 8}}};
  b.clear();
  EncodeSnapshotMeta(meta, &b);
  SnapshotMeta meta2;
  ASSERT_TRUE(DecodeSnapshotMeta(b, &meta2).ok());
  EXPECT_EQ(meta2, meta);

  ConfChange cc;
  ASSERT_TRUE(DecodeConfChange(EncodeConfChange({ConfChangeType::kRemoveNode, 42}), &cc).ok());
  EXPECT_EQ(cc, (ConfChange{ConfChangeType::kRemoveNode, 42}));
  ConfChange with_ctx{ConfChangeType::kAddLearner, 7, "127.0.0.1:7380"};
  ASSERT_TRUE(DecodeConfChange(EncodeConfChange(with_ctx), &cc).ok());
  EXPECT_EQ(cc, with_ctx);
  std::string cut = EncodeConfChange(with_ctx);
  cut.pop_back();
  EXPECT_FALSE(DecodeConfChange(cut, &cc).ok());
}

TEST(RaftCodec, EveryTruncationIsRejected) {
  std::string bytes;
  EncodeMessage(Sample(), &bytes);
  for (size_t n = 0; n < bytes.size(); ++n) {
    Message m;
    Status s = DecodeMessage(std::string_view(bytes).substr(0, n), &m);
    EXPECT_FALSE(s.ok()) << "prefix of " << n << " bytes accepted";
    EXPECT_EQ(s.code(), Status::Code::kCorruption);
  }
  Message m;
  EXPECT_FALSE(DecodeMessage(bytes + "x", &m).ok());  // trailing garbage
}

TEST(RaftCodec, RejectsBadFields) {
  std::string bytes;
  EncodeMessage(Sample(), &bytes);
  Message m;
  std::string bad = bytes;
  bad[0] = 9;  // version
  EXPECT_FALSE(DecodeMessage(bad, &m).ok());
  bad = bytes;
  bad[1] = 0;  // type
  EXPECT_FALSE(DecodeMessage(bad, &m).ok());
  bad = bytes;
  bad[1] = 99;
  EXPECT_FALSE(DecodeMessage(bad, &m).ok());
  // A varint longer than 64 bits.
  HardState hs;
  EXPECT_FALSE(DecodeHardState(std::string(11, '\xff'), &hs).ok());
  // Unsorted configuration, or node id 0.
  ConfState cs;
  std::string c1 = "\x02\x05\x03\x00";
  EXPECT_FALSE(DecodeConfState(c1, &cs).ok());
  std::string c2("\x01\x00\x00", 3);
  EXPECT_FALSE(DecodeConfState(c2, &cs).ok());
  ConfChange cc;
  EXPECT_FALSE(DecodeConfChange(std::string("\x07\x01", 2), &cc).ok());
  EXPECT_FALSE(DecodeConfChange(std::string("\x00\x00", 2), &cc).ok());
}

TEST(RaftCodec, HugeCountsDoNotAllocate) {
  // A header claiming 2^60 entries in a 30-byte message.
  std::string bytes;
  Message m0;
  m0.from = 1;
  m0.to = 2;
  m0.term = 1;
  EncodeMessage(m0, &bytes);
  bytes.pop_back();  // entry count 0
  bytes += "\x80\x80\x80\x80\x80\x80\x80\x80\x10";
  Message m;
  EXPECT_FALSE(DecodeMessage(bytes, &m).ok());
}

TEST(RaftCodec, RandomGarbageNeverCrashes) {
  std::mt19937_64 rng(42);
  std::string good;
  EncodeMessage(Sample(), &good);
  int accepted = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string b = good;
    int flips = 1 + rng() % 4;
    for (int f = 0; f < flips; ++f) b[rng() % b.size()] = static_cast<char>(rng());
    if (rng() % 3 == 0) b.resize(rng() % b.size());
    Message m;
    if (DecodeMessage(b, &m).ok()) ++accepted;
    std::string pure(rng() % 64, '\0');
    for (char& ch : pure) ch = static_cast<char>(rng());
    (void)DecodeMessage(pure, &m);
  }
  EXPECT_LT(accepted, 20000);
}

}  // namespace
}  // namespace flin::raft
