#include "tests/sim/linearizability.h"

#include <gtest/gtest.h>

namespace flin::sim {
namespace {

HistoryOp W(const std::string& v, uint64_t call, uint64_t ret) {
  return HistoryOp{true, "k", v, call, ret};
}
HistoryOp R(const std::string& v, uint64_t call, uint64_t ret) {
  return HistoryOp{false, "k", v, call, ret};
}

TEST(Linearizability, SequentialHistory) {
  EXPECT_TRUE(CheckLinearizable({R("", 1, 2), W("a", 3, 4), R("a", 5, 6)}).ok);
}

TEST(Linearizability, StaleReadAfterWriteIsCaught) {
  EXPECT_FALSE(CheckLinearizable({W("a", 1, 2), W("b", 3, 4), R("a", 5, 6)}).ok);
  EXPECT_FALSE(CheckLinearizable({W("a", 1, 2), R("", 3, 4)}).ok);
}

TEST(Linearizability, ConcurrentOpsMayOrderEitherWay) {
  EXPECT_TRUE(CheckLinearizable({W("a", 1, 10), R("a", 2, 3), R("", 4, 5)}).ok == false);
  EXPECT_TRUE(CheckLinearizable({W("a", 1, 10), R("", 2, 3), R("a", 4, 5)}).ok);
}

TEST(Linearizability, UnknownWriteMayTakeEffectLateOrNever) {
  EXPECT_TRUE(CheckLinearizable({W("a", 1, kNeverReturned), R("", 2, 3)}).ok);
  EXPECT_TRUE(CheckLinearizable({W("a", 1, kNeverReturned), R("", 2, 3), R("a", 4, 5)}).ok);
  // ...but not un-happen once seen.
  EXPECT_FALSE(CheckLinearizable({W("a", 1, kNeverReturned), R("a", 2, 3), R("", 4, 5)}).ok);
}

TEST(Linearizability, KeysAreIndependent) {
  std::vector<HistoryOp> h = {W("a", 1, 2), R("a", 3, 4)};
  h.push_back(HistoryOp{false, "other", "", 5, 6});
  EXPECT_TRUE(CheckLinearizable(h).ok);
  h.push_back(HistoryOp{false, "other", "a", 7, 8});
  LinearizabilityResult r = CheckLinearizable(h);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.key, "other");
}

}  // namespace
}  // namespace flin::sim
