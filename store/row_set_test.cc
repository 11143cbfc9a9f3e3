#include "store/row_set.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <string>

namespace flin::store {
namespace {

TEST(RowSetTest, NewestStateWinsAndIsFound) {
  RowSet rs;
  EXPECT_FALSE(rs.Find("a").has_value());
  rs.Put("a", "1", 0, false);
  rs.Put("b", "2", 50, false);
  rs.Put("a", "3", 7, false);
  rs.Put("c", "", 0, true);
  EXPECT_EQ(rs.size(), 3u);
  auto a = rs.Find("a");
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->value, "3");
  EXPECT_EQ(a->expires_at, 7);
  EXPECT_FALSE(a->deleted);
  auto c = rs.Find("c");
  ASSERT_TRUE(c.has_value());
  EXPECT_TRUE(c->deleted);
  EXPECT_FALSE(rs.Find("d").has_value());
  EXPECT_FALSE(rs.Find("").has_value());
}

TEST(RowSetTest, BinaryKeysAndBigValues) {
  RowSet rs;
  std::string k1("k\0x", 3), k2("k\0y", 3), big(3 << 20, 'v');  // bigger than a chunk
  rs.Put(k1, big, 0, false);
  rs.Put(k2, std::string("\0\xff", 2), 0, false);
  rs.Put("", "empty key", 0, false);
  EXPECT_EQ(rs.Find(k1)->value, big);
  EXPECT_EQ(rs.Find(k2)->value, std::string("\0\xff", 2));
  EXPECT_EQ(rs.Find("")->value, "empty key");
  EXPECT_FALSE(rs.Find(std::string_view("k", 1)).has_value());
  EXPECT_GE(rs.bytes(), big.size());
}

// Against std::map as the model: many keys (table growth), overwrites,
// then the whole set read back in key order in slices.
TEST(RowSetTest, MatchesAnOrderedMapAndReadsInKeyOrder) {
  RowSet rs;
  std::map<std::string, std::string> model;
  std::mt19937 rng(7);
  for (int i = 0; i < 50000; ++i) {
    std::string k = "key:" + std::to_string(rng() % 20000);
    std::string v = std::to_string(i);
    rs.Put(k, v, 0, false);
    model[k] = v;
  }
  EXPECT_EQ(rs.size(), model.size());
  for (const auto& [k, v] : model) ASSERT_EQ(rs.Find(k)->value, v) << k;
  std::vector<RowSet::Row> out;
  size_t calls = 0;
  while (rs.NextInOrder(777, &out)) ++calls;
  EXPECT_EQ(calls, model.size() / 777);
  ASSERT_EQ(out.size(), model.size());
  EXPECT_EQ(rs.unread(), 0u);
  size_t i = 0;
  for (const auto& [k, v] : model) {
    EXPECT_EQ(out[i].key, k);
    EXPECT_EQ(out[i].value, v);
    ++i;
  }
  // Rows stay findable until Clear.
  EXPECT_TRUE(rs.Find(model.begin()->first).has_value());
  rs.Clear();
  EXPECT_TRUE(rs.empty());
  EXPECT_EQ(rs.bytes(), 0u);
  EXPECT_FALSE(rs.Find(model.begin()->first).has_value());
  rs.Put("again", "1", 0, false);
  EXPECT_EQ(rs.Find("again")->value, "1");
}

// Keys that tie on the 16-byte sort prefix (long shared prefixes, NUL
// padding, a key that is a prefix of another) still come out in byte order.
TEST(RowSetTest, KeyOrderIsByteOrderPastTheSortPrefix) {
  RowSet rs;
  std::vector<std::string> keys = {"user:0000000000:b",
                                   "user:0000000000:a",
                                   "user:0000000000",
                                   std::string("ab\0", 3),
                                   "ab",
                                   std::string("ab\0\0", 4),
                                   "\xff\xff",
                                   "",
                                   "user:0000000000:a:1",
                                   "a"};
  for (const std::string& k : keys) rs.Put(k, "v", 0, false);
  std::sort(keys.begin(), keys.end());
  std::vector<RowSet::Row> out;
  rs.NextInOrder(100, &out);
  ASSERT_EQ(out.size(), keys.size());
  for (size_t i = 0; i < keys.size(); ++i) EXPECT_EQ(out[i].key, keys[i]) << i;
}

TEST(RowSetTest, RewritesCountInBytes) {
  RowSet rs;
  rs.Put("k", std::string(100, 'a'), 0, false);
  size_t one = rs.bytes();
  for (int i = 0; i < 20000; ++i) rs.Put("k", std::string(100, 'b'), 0, false);
  EXPECT_EQ(rs.size(), 1u);
  EXPECT_GT(rs.bytes(), one + 20000 * 100);
}

}  // namespace
}  // namespace flin::store
