// log_bench: the durable Raft log's write path (store/raft_log).
//
//   BM_AppendSync/E/P   one thread: Append a group of E entries of 100 bytes,
//                       then Sync (one write + one fdatasync). P=1 with
//                       fallocate'd segments, P=0 without.
//   BM_GroupCommit/C    C proposer threads each append one entry and wait
//                       until it is durable; one syncer thread loops Sync, so
//                       one fdatasync covers whatever arrived meanwhile (the
//                       group commit flind relies on).
//
// Counters: entries/s, syncs/s, and entries per sync. The log lives in a
// fresh directory under $FLIN_BENCH_DIR (default: $TMPDIR or /tmp); put it on
// the disk you care about, not on tmpfs.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "store/raft_log.h"

namespace flin::store {
namespace {

constexpr size_t kEntryBytes = 100;

class BenchDir {
 public:
  BenchDir() {
    const char* env = std::getenv("FLIN_BENCH_DIR");
    if (env == nullptr || *env == '\0') env = std::getenv("TMPDIR");
    std::string tmpl = std::string(env && *env ? env : "/tmp") + "/flin_log_bench.XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    path_ = tmpl;
  }
  ~BenchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string log() const { return path_ + "/log"; }

 private:
  std::string path_;
};

std::unique_ptr<RaftLog> OpenOrDie(const std::string& dir, RaftLogOptions opts,
                                   benchmark::State& state) {
  auto r = RaftLog::Open(dir, opts);
  if (!r.ok()) {
    state.SkipWithError(r.status().ToString().c_str());
    return nullptr;
  }
  return std::move(r).value();
}

void BM_AppendSync(benchmark::State& state) {
  const auto group = static_cast<uint64_t>(state.range(0));
  RaftLogOptions opts;
  opts.preallocate = state.range(1) != 0;
  BenchDir dir;
  auto log = OpenOrDie(dir.log(), opts, state);
  if (!log) return;
  std::vector<LogEntry> batch(group);
  for (auto& e : batch) {
    e.term = 1;
    e.data.assign(kEntryBytes, 'x');
  }
  uint64_t next = 1;
  for (auto _ : state) {
    for (auto& e : batch) e.index = next++;
    Status s = log->Append(batch);
    if (s.ok()) s = log->Sync();
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      return;
    }
  }
  const auto iters = static_cast<double>(state.iterations());
  state.counters["entries/s"] = benchmark::Counter(iters * group, benchmark::Counter::kIsRate);
  state.counters["syncs/s"] = benchmark::Counter(iters, benchmark::Counter::kIsRate);
  state.counters["entries/sync"] = static_cast<double>(group);
  state.SetBytesProcessed(static_cast<int64_t>(iters * group * kEntryBytes));
}
BENCHMARK(BM_AppendSync)
    ->ArgNames({"entries", "prealloc"})
    ->ArgsProduct({{1, 10, 100}, {1, 0}})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// Proposers wait for durability the way flind's request handlers do.
void BM_GroupCommit(benchmark::State& state) {
  const int proposers = static_cast<int>(state.range(0));
  constexpr uint64_t kPerIteration = 2000;
  BenchDir dir;
  auto log = OpenOrDie(dir.log(), RaftLogOptions{}, state);
  if (!log) return;
  std::mutex mu;  // assigns indexes, as the Raft leader does
  std::condition_variable synced_cv;
  std::condition_variable work_cv;  // wakes the syncer
  uint64_t next = 1;
  uint64_t synced = 0;
  uint64_t syncs = 0;
  std::chrono::steady_clock::duration sync_time{};
  std::atomic<bool> stop{false};
  std::atomic<bool> failed{false};
  std::thread syncer([&] {
    while (true) {
      {
        std::unique_lock<std::mutex> lock(mu);
        work_cv.wait(lock, [&] { return stop.load() || next - 1 > synced; });
        if (stop) return;
      }
      uint64_t s = 0;
      const auto t0 = std::chrono::steady_clock::now();
      if (!log->Sync(&s).ok()) failed = true;
      sync_time += std::chrono::steady_clock::now() - t0;
      std::lock_guard<std::mutex> lock(mu);
      synced = s;
      ++syncs;
      synced_cv.notify_all();
    }
  });
  const std::string payload(kEntryBytes, 'x');
  for (auto _ : state) {
    const uint64_t end = next + kPerIteration;
    std::vector<std::thread> threads;
    for (int t = 0; t < proposers; ++t) {
      threads.emplace_back([&] {
        std::unique_lock<std::mutex> lock(mu);
        while (next < end && !failed) {
          const uint64_t mine = next++;
          LogEntry e{mine, 1, 0, payload};
          if (!log->Append(std::span(&e, 1)).ok()) failed = true;
          work_cv.notify_one();
          synced_cv.wait(lock, [&] { return synced >= mine || failed.load(); });
        }
      });
    }
    for (auto& t : threads) t.join();
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    stop = true;
  }
  work_cv.notify_one();
  syncer.join();
  if (failed) {
    state.SkipWithError("append or sync failed");
    return;
  }
  const double entries = static_cast<double>(state.iterations() * kPerIteration);
  state.counters["entries/s"] = benchmark::Counter(entries, benchmark::Counter::kIsRate);
  state.counters["syncs/s"] =
      benchmark::Counter(static_cast<double>(syncs), benchmark::Counter::kIsRate);
  state.counters["entries/sync"] = entries / static_cast<double>(syncs ? syncs : 1);
  // Time inside Sync(): the rest of a cycle is waking proposers.
  state.counters["us/sync"] =
      std::chrono::duration<double, std::micro>(sync_time).count() / (syncs ? syncs : 1);
}
BENCHMARK(BM_GroupCommit)
    ->ArgName("proposers")
    ->Arg(1)
    ->Arg(8)
    ->Arg(64)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace flin::store

BENCHMARK_MAIN();
