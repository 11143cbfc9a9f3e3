#include "store/row_cache.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>
#include <vector>

namespace flin::store {
namespace {

RowCache::Row Present(std::string_view value, int64_t expires_at = 0) {
  return RowCache::Row{true, expires_at, value};
}

std::optional<std::string> Value(RowCache& c, std::string_view key) {
  RowCache::Lock l(c);
  auto r = l.Find(key);
  if (!r) return std::nullopt;
  return r->present ? std::string(r->value) : std::string("<absent>");
}

void Fill(RowCache& c, std::string_view key, const RowCache::Row& row) {
  RowCache::Lock l(c);
  l.Fill(l.generation(), key, row);
}

TEST(RowCacheTest, FindsWhatWasFilledAndCountsHitsAndMisses) {
  RowCache c(1 << 20);
  EXPECT_FALSE(Value(c, "a"));
  Fill(c, "a", Present("1", 99));
  Fill(c, "gone", RowCache::Row{});
  std::string bin("k\0z", 3);
  Fill(c, bin, Present(std::string("\0\xff", 2)));
  EXPECT_EQ(Value(c, "a"), "1");
  EXPECT_EQ(Value(c, "gone"), "<absent>");
  EXPECT_EQ(Value(c, bin), std::string("\0\xff", 2));
  EXPECT_FALSE(Value(c, std::string("k\0y", 3)));
  {
    RowCache::Lock l(c);
    EXPECT_EQ(l.Find("a")->expires_at, 99);
  }
  auto st = c.stats();
  EXPECT_EQ(st.rows, 3u);
  EXPECT_EQ(st.hits, 4u);
  EXPECT_EQ(st.misses, 2u);
  // Refilling a key replaces its row.
  Fill(c, "a", Present("2"));
  EXPECT_EQ(Value(c, "a"), "2");
  EXPECT_EQ(c.stats().rows, 3u);
}

TEST(RowCacheTest, AFillPinnedBeforeAnInvalidationIsDropped) {
  RowCache c(1 << 20);
  uint64_t pinned;
  {
    RowCache::Lock l(c);
    pinned = l.generation();
  }
  c.Invalidate();  // a generation froze after the read was pinned
  {
    RowCache::Lock l(c);
    l.Fill(pinned, "k", Present("old"));
  }
  EXPECT_FALSE(Value(c, "k"));
  // A read pinned after it fills as usual.
  Fill(c, "k", Present("new"));
  EXPECT_EQ(Value(c, "k"), "new");
  // Clear drops rows and in-flight fills alike.
  {
    RowCache::Lock l(c);
    pinned = l.generation();
  }
  c.Clear();
  EXPECT_FALSE(Value(c, "k"));
  {
    RowCache::Lock l(c);
    l.Fill(pinned, "k", Present("old"));
  }
  EXPECT_FALSE(Value(c, "k"));
  EXPECT_EQ(c.stats().bytes, 0u);
}

TEST(RowCacheTest, EraseTakesTheGivenKeysOnly) {
  RowCache c(64 << 20);
  for (int i = 0; i < 10000; ++i) Fill(c, "k" + std::to_string(i), Present("v"));
  std::vector<std::string> gone;
  for (int i = 0; i < 10000; i += 2) gone.push_back("k" + std::to_string(i));
  gone.push_back("never-cached");
  c.Erase([&](const auto& fn) {
    for (const std::string& k : gone) fn(k);
  });
  EXPECT_EQ(c.stats().rows, 5000u);
  EXPECT_FALSE(Value(c, "k0"));
  EXPECT_FALSE(Value(c, "k9998"));
  EXPECT_EQ(Value(c, "k1"), "v");
  EXPECT_EQ(Value(c, "k9999"), "v");
  c.EraseOne("k1");
  EXPECT_FALSE(Value(c, "k1"));
}

TEST(RowCacheTest, StaysWithinItsBudgetDroppingTheLeastRecentlyUsed) {
  const size_t budget = 64 << 10;
  RowCache c(budget);
  std::string v(100, 'x');
  Fill(c, "hot", Present(v));
  for (int i = 0; i < 2000; ++i) {
    Fill(c, "k" + std::to_string(i), Present(v));
    EXPECT_TRUE(Value(c, "hot")) << i;  // used all along: never the one to go
    ASSERT_LE(c.stats().bytes, budget);
  }
  EXPECT_FALSE(Value(c, "k0"));
  EXPECT_EQ(Value(c, "k1999"), v);
  EXPECT_GT(c.stats().rows, 100u);
  // A row bigger than an eighth of the budget is not kept at all.
  Fill(c, "big", Present(std::string(budget / 8, 'b')));
  EXPECT_FALSE(Value(c, "big"));
  EXPECT_EQ(Value(c, "hot"), v);
}

// The table under churn: fills, refills, erases and evictions against a
// model. A hit must always be the row last filled for that key; with room
// for everything, nothing filled and not erased may be missing.
TEST(RowCacheTest, RandomChurnMatchesAModel) {
  for (size_t budget : {size_t{256} << 10, size_t{64} << 20}) {
    RowCache c(budget);
    std::map<std::string, std::string> model;
    std::mt19937 rng(budget);
    for (int step = 0; step < 60000; ++step) {
      std::string key = "k" + std::to_string(rng() % 3000);
      switch (rng() % 4) {
        case 0:
        case 1: {
          std::string v(rng() % 200, static_cast<char>('a' + step % 26));
          Fill(c, key, Present(v));
          model[key] = v;
          break;
        }
        case 2:
          c.EraseOne(key);
          model.erase(key);
          break;
        case 3: {
          auto got = Value(c, key);
          auto it = model.find(key);
          if (it == model.end()) {
            ASSERT_FALSE(got) << key;
          } else if (got) {
            ASSERT_EQ(*got, it->second) << key;
          } else {
            ASSERT_LT(budget, size_t{1} << 20) << key << " missing with room to spare";
          }
          break;
        }
      }
      ASSERT_LE(c.stats().bytes, budget);
    }
    size_t found = 0;
    for (const auto& [k, v] : model) {
      auto got = Value(c, k);
      if (got) {
        EXPECT_EQ(*got, v);
        found++;
      }
    }
    EXPECT_EQ(found, c.stats().rows);
    if (budget > (1 << 20)) {
      EXPECT_EQ(found, model.size());
    }
  }
}

TEST(RowCacheTest, ABudgetOfZeroKeepsNothing) {
  RowCache c(0);
  EXPECT_FALSE(c.enabled());
  Fill(c, "a", Present("1"));
  EXPECT_FALSE(Value(c, "a"));
  EXPECT_EQ(c.stats().rows, 0u);
}

}  // namespace
}  // namespace flin::store
