#include "raft/storage.h"

#include <gtest/gtest.h>

namespace flin::raft {
namespace {

std::vector<Entry> Ents(uint64_t from, std::vector<uint64_t> terms) {
  std::vector<Entry> out;
  for (uint64_t t : terms) out.push_back(Entry{t, from++, EntryType::kNormal, "d"});
  return out;
}

TEST(MemoryStorage, AppendTruncatesConflicts) {
  MemoryStorage s;
  auto e = Ents(1, {1, 1, 2, 2});
  ASSERT_TRUE(s.Append(&e).ok());
  EXPECT_EQ(s.FirstIndex(), 1u);
  EXPECT_EQ(s.LastIndex(), 4u);
  auto e2 = Ents(3, {3});
  ASSERT_TRUE(s.Append(&e2).ok());
  EXPECT_EQ(s.LastIndex(), 3u);
  EXPECT_EQ(s.Term(3).value(), 3u);
  auto gap = Ents(6, {3});
  EXPECT_FALSE(s.Append(&gap).ok());
}

TEST(MemoryStorage, EntriesRespectsByteCapButReturnsOne) {
  MemoryStorage s;
  auto e = Ents(1, {1, 1, 1, 1});
  ASSERT_TRUE(s.Append(&e).ok());
  std::vector<Entry> out;
  ASSERT_TRUE(s.Entries(1, 5, 0, &out).ok());
  EXPECT_EQ(out.size(), 1u);
  out.clear();
  ASSERT_TRUE(s.Entries(1, 5, 2 * EntryCost(Entry{1, 1, EntryType::kNormal, "d"}), &out).ok());
  EXPECT_EQ(out.size(), 2u);
}

TEST(MemoryStorage, SnapshotAndCompact) {
  MemoryStorage s;
  auto e = Ents(1, {1, 1, 2, 2, 3});
  ASSERT_TRUE(s.Append(&e).ok());
  ConfState conf{{1, 2, 3}, {}};
  ASSERT_TRUE(s.CreateSnapshot(4, conf).ok());
  EXPECT_FALSE(s.Compact(5).ok());  // beyond the snapshot
  ASSERT_TRUE(s.Compact(4).ok());
  EXPECT_EQ(s.FirstIndex(), 5u);
  EXPECT_EQ(s.LastIndex(), 5u);
  EXPECT_EQ(s.Term(4).value(), 2u);
  EXPECT_FALSE(s.Term(3).ok());
  std::vector<Entry> out;
  EXPECT_FALSE(s.Entries(4, 5, 100, &out).ok());
  SnapshotMeta meta = s.Snapshot().value();
  EXPECT_EQ(meta.index, 4u);
  EXPECT_EQ(meta.term, 2u);
  EXPECT_EQ(meta.conf, conf);
}

TEST(MemoryStorage, BootstrapAndApplySnapshot) {
  MemoryStorage s;
  ConfState conf{{1, 2, 3}, {}};
  ASSERT_TRUE(s.Bootstrap(conf).ok());
  EXPECT_FALSE(s.Bootstrap(conf).ok());
  HardState hs;
  ConfState got;
  ASSERT_TRUE(s.InitialState(&hs, &got).ok());
  EXPECT_EQ(hs, (HardState{1, kNoNode, 1}));
  EXPECT_EQ(got, conf);
  EXPECT_EQ(s.FirstIndex(), 2u);
  EXPECT_EQ(s.LastIndex(), 1u);
  ASSERT_TRUE(s.ApplySnapshot(SnapshotMeta{10, 4, conf}).ok());
  EXPECT_EQ(s.FirstIndex(), 11u);
  EXPECT_EQ(s.Term(10).value(), 4u);
  auto e = Ents(11, {4});
  ASSERT_TRUE(s.Append(&e).ok());
  EXPECT_EQ(s.LastIndex(), 11u);
}

TEST(ConfChangeTest, ApplyKeepsListsSortedAndDisjoint) {
  ConfState cs{{1, 3}, {}};
  cs = ApplyConfChange(cs, {ConfChangeType::kAddLearner, 2});
  EXPECT_EQ(cs.learners, (std::vector<NodeId>{2}));
  cs = ApplyConfChange(cs, {ConfChangeType::kAddVoter, 2});
  EXPECT_EQ(cs.voters, (std::vector<NodeId>{1, 2, 3}));
  EXPECT_TRUE(cs.learners.empty());
  cs = ApplyConfChange(cs, {ConfChangeType::kAddLearner, 1});
  EXPECT_EQ(cs.voters, (std::vector<NodeId>{2, 3}));
  EXPECT_EQ(cs.learners, (std::vector<NodeId>{1}));
  cs = ApplyConfChange(cs, {ConfChangeType::kRemoveNode, 1});
  EXPECT_FALSE(cs.Contains(1));
}

}  // namespace
}  // namespace flin::raft
