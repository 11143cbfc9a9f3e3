// row_set_bench: the write buffer's generation walk (store/row_set), which
// every node's apply thread runs once per generation before writing it to
// SQLite.
//
//   BM_SortAndWalk/N/W  a generation of N distinct keys built from W writes
//                       (keys rewritten W/N times on average, as under MSET
//                       over a small key space: overwritten rows stay in the
//                       arena, so live rows are scattered), then Sort() and
//                       NextInOrder() over all of it, as the flush does.
//
// items_per_second: distinct keys sorted and handed out per second.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "store/row_set.h"

namespace flin::store {
namespace {

void BM_SortAndWalk(benchmark::State& state) {
  const size_t keys = static_cast<size_t>(state.range(0));
  const size_t writes = static_cast<size_t>(state.range(1));
  std::mt19937_64 rng(42);
  std::string value(64, 'v');
  char key[32];
  std::vector<RowSet::Row> out;
  int64_t rows = 0;
  for (auto _ : state) {
    state.PauseTiming();
    RowSet rs;
    for (size_t i = 0; i < writes; ++i) {
      // redis-benchmark's key shape: a prefix and a 12-digit number.
      std::snprintf(key, sizeof key, "k1:%012llu", static_cast<unsigned long long>(rng() % keys));
      rs.Put(key, value, 0, false);
    }
    state.ResumeTiming();
    rs.Sort();
    for (;;) {
      out.clear();
      bool more = rs.NextInOrder(256, &out);
      rows += out.size();
      benchmark::DoNotOptimize(out.data());
      if (!more) break;
    }
  }
  state.SetItemsProcessed(rows);
}
BENCHMARK(BM_SortAndWalk)
    ->Args({100'000, 1'000'000})
    ->Args({1'000'000, 1'000'000})
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace flin::store

BENCHMARK_MAIN();
