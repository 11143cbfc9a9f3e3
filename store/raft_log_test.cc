#include "store/raft_log.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

namespace flin::store {
namespace {

namespace fs = std::filesystem;

// Record sizes of the format documented in raft_log.h.
constexpr size_t kRecordHeader = 9;
constexpr size_t kEntryOverhead = kRecordHeader + 17;

class TempDir {
 public:
  // `memory`: on tmpfs when there is one, for tests that rewrite and reopen
  // files thousands of times (ext4 truncation is slow; the format is the same).
  explicit TempDir(bool memory = false) {
    const char* env = std::getenv("TMPDIR");
    std::string base = env && *env ? env : "/tmp";
    if (memory && ::access("/dev/shm", W_OK) == 0) base = "/dev/shm";
    std::string tmpl = base + "/flin_raft_log_test.XXXXXX";
    char* made = ::mkdtemp(tmpl.data());
    if (made == nullptr) std::abort();
    path_ = made;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string log() const { return path_ + "/log"; }

 private:
  std::string path_;
};

// Data derived from (index, term) so any mix-up shows.
std::string DataFor(uint64_t index, uint64_t term, size_t size) {
  std::string d;
  d.reserve(size);
  uint64_t x = index * 0x9e3779b97f4a7c15ull + term;
  for (size_t k = 0; k < size; ++k) {
    x ^= x >> 13;
    x *= 0xff51afd7ed558ccdull;
    d.push_back(static_cast<char>(x >> 56));
  }
  return d;
}

LogEntry Entry(uint64_t index, uint64_t term, size_t size = 100) {
  return LogEntry{index, term, static_cast<uint8_t>(index % 3), DataFor(index, term, size)};
}

std::vector<LogEntry> Range(uint64_t lo, uint64_t hi, uint64_t term, size_t size = 100) {
  std::vector<LogEntry> v;
  for (uint64_t i = lo; i <= hi; ++i) v.push_back(Entry(i, term, size));
  return v;
}

std::unique_ptr<RaftLog> MustOpen(const std::string& dir, RaftLogOptions opts = {}) {
  auto r = RaftLog::Open(dir, opts);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  if (!r.ok()) return nullptr;
  return std::move(r).value();
}

RaftLogOptions Small(size_t segment_bytes = 4096, size_t cache_bytes = 64 << 20) {
  RaftLogOptions o;
  o.segment_bytes = segment_bytes;
  o.cache_bytes = cache_bytes;
  return o;
}

// For tests that reopen a log hundreds of times to check the format and
// recovery logic: fsync is what makes them slow and they cannot observe it
// (the files are never lost, the process "crashes" by editing them).
RaftLogOptions NoSync(RaftLogOptions o) {
  o.unsafe_no_sync = true;
  return o;
}

std::vector<LogEntry> ReadAll(const RaftLog& log) {
  std::vector<LogEntry> out;
  Status s = log.Entries(log.FirstIndex(), log.LastIndex() + 1, SIZE_MAX, &out);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return out;
}

// Expects entries lo..hi of `log` to be exactly `want`.
void ExpectEntries(const RaftLog& log, const std::vector<LogEntry>& want) {
  ASSERT_FALSE(want.empty());
  std::vector<LogEntry> got;
  Status s = log.Entries(want.front().index, want.back().index + 1, SIZE_MAX, &got);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_EQ(got.size(), want.size());
  for (size_t k = 0; k < want.size(); ++k) {
    ASSERT_EQ(got[k], want[k]) << "at index " << want[k].index;
    auto t = log.Term(want[k].index);
    ASSERT_TRUE(t.ok());
    ASSERT_EQ(*t, want[k].term);
  }
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good());
}

size_t CountSegmentFiles(const std::string& dir) {
  size_t n = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == ".log") ++n;
  }
  return n;
}

TEST(RaftLogTest, EmptyLog) {
  TempDir tmp;
  auto log = MustOpen(tmp.log());
  ASSERT_TRUE(log);
  EXPECT_EQ(log->FirstIndex(), 1u);
  EXPECT_EQ(log->LastIndex(), 0u);
  EXPECT_EQ(log->SyncedIndex(), 0u);
  EXPECT_EQ(*log->Term(0), 0u);
  EXPECT_EQ(log->Term(1).status().code(), Status::Code::kUnavailable);
  uint64_t synced = 99;
  ASSERT_TRUE(log->Sync(&synced).ok());
  EXPECT_EQ(synced, 0u);
  log.reset();
  log = MustOpen(tmp.log());
  EXPECT_EQ(log->LastIndex(), 0u);
}

TEST(RaftLogTest, AppendSyncReopenRoundTrip) {
  TempDir tmp;
  std::vector<LogEntry> want;
  for (uint64_t i = 1; i <= 100; ++i) want.push_back(Entry(i, 1 + i / 30, i * 7 % 250));
  want[4].data = std::string("a\0b\xff", 4);  // binary data survives
  want[5].data.clear();
  {
    auto log = MustOpen(tmp.log());
    ASSERT_TRUE(log->Append(std::span(want).first(60)).ok());
    ASSERT_TRUE(log->Append(std::span(want).subspan(60)).ok());
    EXPECT_EQ(log->LastIndex(), 100u);
    EXPECT_EQ(log->SyncedIndex(), 0u);  // buffered only
    ExpectEntries(*log, want);          // readable before Sync
    uint64_t synced = 0;
    ASSERT_TRUE(log->Sync(&synced).ok());
    EXPECT_EQ(synced, 100u);
    EXPECT_EQ(log->SyncedIndex(), 100u);
  }
  auto log = MustOpen(tmp.log());
  EXPECT_EQ(log->FirstIndex(), 1u);
  EXPECT_EQ(log->LastIndex(), 100u);
  EXPECT_EQ(log->SyncedIndex(), 100u);
  ExpectEntries(*log, want);
  // And the log keeps going after a reopen.
  ASSERT_TRUE(log->Append(Range(101, 110, 5)).ok());
  ASSERT_TRUE(log->Sync().ok());
  log.reset();
  log = MustOpen(tmp.log());
  EXPECT_EQ(log->LastIndex(), 110u);
  ExpectEntries(*log, Range(101, 110, 5));
  ExpectEntries(*log, want);
}

TEST(RaftLogTest, UnsyncedAppendsAreLostLikeInACrash) {
  TempDir tmp;
  {
    auto log = MustOpen(tmp.log());
    ASSERT_TRUE(log->Append(Range(1, 10, 1)).ok());
    ASSERT_TRUE(log->Sync().ok());
    ASSERT_TRUE(log->Append(Range(11, 20, 1)).ok());
    ASSERT_TRUE(log->SetHardState({9, 9, 9}).ok());
  }
  auto log = MustOpen(tmp.log());
  EXPECT_EQ(log->LastIndex(), 10u);
  EXPECT_EQ(log->hard_state(), LogHardState{});
}

TEST(RaftLogTest, PreallocatesSegments) {
  TempDir tmp;
  auto log = MustOpen(tmp.log(), Small(1 << 20));
  ASSERT_TRUE(log->Append(Range(1, 3, 1)).ok());
  ASSERT_TRUE(log->Sync().ok());
  auto segs = log->Segments();
  ASSERT_EQ(segs.size(), 1u);
  EXPECT_EQ(fs::file_size(segs[0].path), 1u << 20);
  EXPECT_EQ(fs::path(segs[0].path).filename(), "00000000000000000001.log");
  EXPECT_EQ(log->DiskBytes(), segs[0].used_bytes);
  EXPECT_GT(segs[0].used_bytes, 3 * (kEntryOverhead + 100));
}

TEST(RaftLogTest, WorksWithoutPreallocation) {
  TempDir tmp;
  RaftLogOptions o = Small(8192);
  o.preallocate = false;
  {
    auto log = MustOpen(tmp.log(), o);
    ASSERT_TRUE(log->Append(Range(1, 300, 2)).ok());
    ASSERT_TRUE(log->Sync().ok());
    auto segs = log->Segments();
    EXPECT_EQ(fs::file_size(segs.back().path), segs.back().used_bytes);
  }
  auto log = MustOpen(tmp.log(), o);
  EXPECT_EQ(log->LastIndex(), 300u);
  ExpectEntries(*log, Range(1, 300, 2));
}

TEST(RaftLogTest, AppendRejectsBadRanges) {
  TempDir tmp;
  auto log = MustOpen(tmp.log());
  ASSERT_TRUE(log->Append(Range(1, 5, 1)).ok());
  EXPECT_EQ(log->Append(Range(7, 8, 1)).code(), Status::Code::kInvalidArgument);  // gap
  std::vector<LogEntry> holes = {Entry(6, 1), Entry(8, 1)};
  EXPECT_EQ(log->Append(holes).code(), Status::Code::kInvalidArgument);  // not contiguous
  EXPECT_EQ(log->Append(Range(0, 1, 1)).code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(log->LastIndex(), 5u);
  EXPECT_TRUE(log->Append({}).ok());
  ASSERT_TRUE(log->CompactTo(3, 1).ok());
  EXPECT_EQ(log->Append(Range(3, 6, 2)).code(), Status::Code::kInvalidArgument);
  EXPECT_TRUE(log->Append(Range(4, 6, 2)).ok());  // just above the compaction point
  EXPECT_EQ(log->LastIndex(), 6u);
}

TEST(RaftLogTest, ConflictTruncationSurvivesReopen) {
  TempDir tmp;
  {
    auto log = MustOpen(tmp.log(), Small());
    ASSERT_TRUE(log->Append(Range(1, 100, 1)).ok());  // spans several segments
    ASSERT_TRUE(log->Sync().ok());
    ASSERT_GT(log->Segments().size(), 3u);
    // §5.3: a leader of term 2 overwrites from index 7 on.
    ASSERT_TRUE(log->Append(Range(7, 9, 2)).ok());
    EXPECT_EQ(log->LastIndex(), 9u);
    EXPECT_EQ(log->SyncedIndex(), 6u);
    uint64_t synced = 0;
    ASSERT_TRUE(log->Sync(&synced).ok());
    EXPECT_EQ(synced, 9u);
  }
  auto log = MustOpen(tmp.log(), Small());
  EXPECT_EQ(log->LastIndex(), 9u);
  ExpectEntries(*log, Range(1, 6, 1));
  ExpectEntries(*log, Range(7, 9, 2));
  // Truncate again inside what was just written, then grow past the old end.
  ASSERT_TRUE(log->Append(Range(9, 150, 3)).ok());
  ASSERT_TRUE(log->Sync().ok());
  log.reset();
  log = MustOpen(tmp.log(), Small());
  EXPECT_EQ(log->LastIndex(), 150u);
  ExpectEntries(*log, Range(7, 8, 2));
  ExpectEntries(*log, Range(9, 150, 3));
}

TEST(RaftLogTest, TruncationOfUnsyncedEntriesBeforeSync) {
  TempDir tmp;
  auto log = MustOpen(tmp.log());
  ASSERT_TRUE(log->Append(Range(1, 10, 1)).ok());
  ASSERT_TRUE(log->Append(Range(5, 6, 2)).ok());
  ExpectEntries(*log, Range(1, 4, 1));
  ExpectEntries(*log, Range(5, 6, 2));
  uint64_t synced = 0;
  ASSERT_TRUE(log->Sync(&synced).ok());
  EXPECT_EQ(synced, 6u);
  log.reset();
  log = MustOpen(tmp.log());
  EXPECT_EQ(log->LastIndex(), 6u);
  ExpectEntries(*log, Range(5, 6, 2));
}

TEST(RaftLogTest, HardStateSurvivesAndLastWins) {
  TempDir tmp;
  {
    auto log = MustOpen(tmp.log());
    ASSERT_TRUE(log->SetHardState({1, 2, 0}).ok());
    ASSERT_TRUE(log->Append(Range(1, 3, 1)).ok());
    ASSERT_TRUE(log->SetHardState({3, 1, 2}).ok());
    EXPECT_EQ(log->hard_state(), (LogHardState{3, 1, 2}));
    ASSERT_TRUE(log->Sync().ok());
    ASSERT_TRUE(log->SetHardState({4, 0, 3}).ok());
    ASSERT_TRUE(log->Sync().ok());
  }
  auto log = MustOpen(tmp.log());
  EXPECT_EQ(log->hard_state(), (LogHardState{4, 0, 3}));
  EXPECT_EQ(log->LastIndex(), 3u);
}

TEST(RaftLogTest, CompactionDeletesSegmentsAndSurvivesReopen) {
  TempDir tmp;
  const auto opts = Small(4096);
  {
    auto log = MustOpen(tmp.log(), opts);
    // The hard state lands in the first segment, which compaction deletes.
    ASSERT_TRUE(log->SetHardState({7, 3, 150}).ok());
    ASSERT_TRUE(log->Append(Range(1, 100, 7)).ok());
    ASSERT_TRUE(log->Append(Range(101, 200, 8)).ok());
    ASSERT_TRUE(log->Sync().ok());
    const size_t before = CountSegmentFiles(tmp.log());
    ASSERT_GE(before, 6u);
    const uint64_t disk_before = log->DiskBytes();

    ASSERT_TRUE(log->CompactTo(150, 8).ok());
    EXPECT_EQ(log->FirstIndex(), 151u);
    EXPECT_EQ(log->LastIndex(), 200u);
    EXPECT_EQ(*log->Term(150), 8u);
    EXPECT_EQ(log->Term(149).status().code(), Status::Code::kNotFound);
    std::vector<LogEntry> out;
    EXPECT_EQ(log->Entries(150, 152, SIZE_MAX, &out).code(), Status::Code::kNotFound);
    ExpectEntries(*log, Range(151, 200, 8));
    const size_t after = CountSegmentFiles(tmp.log());
    EXPECT_LT(after, before - 3);
    EXPECT_EQ(after, log->Segments().size());
    EXPECT_LT(log->DiskBytes(), disk_before);
    // The first remaining segment holds entry 151: nothing needed was deleted.
    EXPECT_LE(log->Segments().front().seq, 1 + (before * 3) / 4);

    EXPECT_TRUE(log->CompactTo(120, 7).ok());  // already compacted: no-op
    EXPECT_EQ(log->FirstIndex(), 151u);
    EXPECT_EQ(log->CompactTo(201, 8).code(), Status::Code::kInvalidArgument);
    EXPECT_EQ(log->CompactTo(160, 7).code(), Status::Code::kInvalidArgument);  // wrong term
  }
  auto log = MustOpen(tmp.log(), opts);
  EXPECT_EQ(log->FirstIndex(), 151u);
  EXPECT_EQ(log->LastIndex(), 200u);
  EXPECT_EQ(*log->Term(150), 8u);
  EXPECT_EQ(log->hard_state(), (LogHardState{7, 3, 150}));
  ExpectEntries(*log, Range(151, 200, 8));

  // Compact everything: the log is empty, and stays so across a reopen.
  ASSERT_TRUE(log->CompactTo(200, 8).ok());
  EXPECT_EQ(log->FirstIndex(), 201u);
  EXPECT_EQ(log->LastIndex(), 200u);
  log.reset();
  log = MustOpen(tmp.log(), opts);
  EXPECT_EQ(log->FirstIndex(), 201u);
  EXPECT_EQ(log->LastIndex(), 200u);
  EXPECT_EQ(*log->Term(200), 8u);
  ASSERT_TRUE(log->Append(Range(201, 210, 9)).ok());
  ASSERT_TRUE(log->Sync().ok());
  log.reset();
  log = MustOpen(tmp.log(), opts);
  ExpectEntries(*log, Range(201, 210, 9));
  EXPECT_EQ(*log->Term(200), 8u);
}

// After a conflict truncation the live entries are written after superseded
// ones; compaction then keeps segments that start with stale entries. Replay
// must still rebuild exactly the live log, for every compaction point.
TEST(RaftLogTest, CompactionAfterTruncationIntoOlderSegments) {
  for (uint64_t point = 5; point <= 140; point += 5) {
    SCOPED_TRACE("compaction point " + std::to_string(point));
    TempDir tmp;
    const auto opts = NoSync(Small(4096));
    std::vector<LogEntry> live = Range(1, 9, 1);
    {
      auto log = MustOpen(tmp.log(), opts);
      ASSERT_TRUE(log->Append(Range(1, 100, 1)).ok());
      ASSERT_TRUE(log->Sync().ok());
      ASSERT_TRUE(log->Append(Range(10, 150, 2)).ok());
      ASSERT_TRUE(log->Sync().ok());
      ASSERT_TRUE(log->SetHardState({2, 1, point}).ok());
      ASSERT_TRUE(log->CompactTo(point, point < 10 ? 1 : 2).ok());
    }
    auto more = Range(10, 150, 2);
    live.insert(live.end(), more.begin(), more.end());
    live.erase(live.begin(), live.begin() + static_cast<ptrdiff_t>(point));
    auto log = MustOpen(tmp.log(), opts);
    ASSERT_EQ(log->FirstIndex(), point + 1);
    ASSERT_EQ(log->LastIndex(), 150u);
    EXPECT_EQ(*log->Term(point), point < 10 ? 1u : 2u);
    EXPECT_EQ(log->hard_state(), (LogHardState{2, 1, point}));
    ExpectEntries(*log, live);
  }
}

TEST(RaftLogTest, ResetToSnapshot) {
  TempDir tmp;
  const auto opts = Small(4096);
  {
    auto log = MustOpen(tmp.log(), opts);
    ASSERT_TRUE(log->Append(Range(1, 120, 1)).ok());
    ASSERT_TRUE(log->SetHardState({3, 2, 100}).ok());
    ASSERT_TRUE(log->Sync().ok());
    ASSERT_GT(CountSegmentFiles(tmp.log()), 2u);
    ASSERT_TRUE(log->Append(Range(121, 130, 1)).ok());  // unsynced, dropped by the reset

    ASSERT_TRUE(log->ResetTo(1000, 5).ok());
    EXPECT_EQ(log->FirstIndex(), 1001u);
    EXPECT_EQ(log->LastIndex(), 1000u);
    EXPECT_EQ(log->SyncedIndex(), 1000u);
    EXPECT_EQ(*log->Term(1000), 5u);
    EXPECT_EQ(log->Term(999).status().code(), Status::Code::kNotFound);
    EXPECT_EQ(CountSegmentFiles(tmp.log()), 1u);
    EXPECT_EQ(log->Append(Range(5, 6, 5)).code(), Status::Code::kInvalidArgument);
    ASSERT_TRUE(log->Append(Range(1001, 1010, 5)).ok());
    ASSERT_TRUE(log->Sync().ok());
  }
  {
    auto log = MustOpen(tmp.log(), opts);
    EXPECT_EQ(log->FirstIndex(), 1001u);
    EXPECT_EQ(log->LastIndex(), 1010u);
    EXPECT_EQ(*log->Term(1000), 5u);
    EXPECT_EQ(log->hard_state(), (LogHardState{3, 2, 100}));
    ExpectEntries(*log, Range(1001, 1010, 5));
    // Reset backwards (a snapshot behind our log) works too.
    ASSERT_TRUE(log->ResetTo(50, 4).ok());
    EXPECT_EQ(log->LastIndex(), 50u);
    EXPECT_EQ(log->SyncedIndex(), 50u);
  }
  auto log = MustOpen(tmp.log(), opts);
  EXPECT_EQ(log->FirstIndex(), 51u);
  EXPECT_EQ(log->LastIndex(), 50u);
  EXPECT_EQ(*log->Term(50), 4u);
}

TEST(RaftLogTest, RollsOverManySegmentsAndReadsBackFromDisk) {
  TempDir tmp;
  // A tiny cache forces old entries to be read back with pread.
  const auto opts = NoSync(Small(4096, 2000));
  std::mt19937_64 rng(42);
  std::vector<LogEntry> want;
  {
    auto log = MustOpen(tmp.log(), opts);
    for (uint64_t i = 1; i <= 3000; ++i) {
      want.push_back(Entry(i, 1 + i / 1000, rng() % 300));
      if (i % 37 == 0) {
        ASSERT_TRUE(log->Append(std::span(want).subspan(i - 37)).ok());
        ASSERT_TRUE(log->Sync().ok());
      }
    }
    ASSERT_TRUE(log->Append(std::span(want).subspan(3000 - 3000 % 37)).ok());
    // One record bigger than a whole segment gets a segment of its own.
    want.push_back(Entry(3001, 3, 10000));
    ASSERT_TRUE(log->Append(std::span(want).last(1)).ok());
    ASSERT_TRUE(log->Sync().ok());
    EXPECT_GT(log->Segments().size(), 100u);
    ExpectEntries(*log, want);
    for (const auto& seg : log->Segments()) {
      if (seg.seq != log->Segments().back().seq) {
        EXPECT_TRUE(seg.sealed);
        EXPECT_EQ(fs::file_size(seg.path), seg.used_bytes);  // sealed: cut to size
      }
    }
  }
  auto log = MustOpen(tmp.log(), opts);
  EXPECT_EQ(log->LastIndex(), 3001u);
  ExpectEntries(*log, want);
}

TEST(RaftLogTest, EntriesByteLimitAndErrors) {
  TempDir tmp;
  auto log = MustOpen(tmp.log(), Small(4096, 0));
  ASSERT_TRUE(log->Append(Range(1, 20, 1, 100)).ok());
  for (int pass = 0; pass < 2; ++pass) {  // from the cache, then from disk
    std::vector<LogEntry> out;
    ASSERT_TRUE(log->Entries(3, 21, 250, &out).ok());
    ASSERT_EQ(out.size(), 2u);  // 200 bytes fit, a third would not
    EXPECT_EQ(out[0].index, 3u);
    out.clear();
    ASSERT_TRUE(log->Entries(3, 21, 10, &out).ok());
    ASSERT_EQ(out.size(), 1u);  // always at least one
    out.clear();
    ASSERT_TRUE(log->Entries(3, 3, 10, &out).ok());
    EXPECT_TRUE(out.empty());
    EXPECT_EQ(log->Entries(5, 22, 10, &out).code(), Status::Code::kUnavailable);
    EXPECT_EQ(log->Entries(0, 2, 10, &out).code(), Status::Code::kNotFound);
    EXPECT_EQ(log->Entries(5, 4, 10, &out).code(), Status::Code::kInvalidArgument);
    ASSERT_TRUE(log->Sync().ok());  // cache_bytes 0: everything is evicted after this
  }
  ExpectEntries(*log, Range(1, 20, 1, 100));
}

// The crash test: entries 1..20 are synced; 21..23 and a hard state are
// written by a later Sync whose fdatasync we pretend never finished, so the
// file may end anywhere inside them, followed by zeros (preallocated space),
// nothing, or garbage. Every such file must reopen without error to the
// synced prefix plus whole records, and keep working afterwards.
TEST(RaftLogTest, CrashAtEveryByteOfTheTail) {
  TempDir tmp(/*memory=*/true);
  const auto opts = NoSync(Small(8 << 10));
  const std::vector<size_t> sizes = {100, 1, 257};
  uint64_t synced_end, full_end;
  std::string seg_path, image;
  {
    auto log = MustOpen(tmp.log(), opts);
    ASSERT_TRUE(log->Append(Range(1, 20, 1)).ok());
    ASSERT_TRUE(log->Sync().ok());
    synced_end = log->Segments().back().used_bytes;
    for (size_t k = 0; k < sizes.size(); ++k) {
      ASSERT_TRUE(log->Append(Range(21 + k, 21 + k, 2, sizes[k])).ok());
    }
    ASSERT_TRUE(log->SetHardState({2, 1, 20}).ok());
    ASSERT_TRUE(log->Sync().ok());
    ASSERT_EQ(log->Segments().size(), 1u);
    full_end = log->Segments().back().used_bytes;
    seg_path = log->Segments().back().path;
  }
  image = ReadFile(seg_path);
  ASSERT_EQ(image.size(), 8u << 10);
  std::vector<uint64_t> ends;  // end offset of each new entry record
  uint64_t pos = synced_end;
  for (size_t s : sizes) ends.push_back(pos += kEntryOverhead + s);
  ASSERT_EQ(full_end, pos + kRecordHeader + 24);

  std::mt19937_64 rng(7);
  for (int mode = 0; mode < 3; ++mode) {
    for (uint64_t cut = synced_end; cut <= full_end; ++cut) {
      SCOPED_TRACE("mode " + std::to_string(mode) + " cut at " + std::to_string(cut));
      std::string bytes = image.substr(0, cut);
      if (mode == 1) bytes.resize(image.size(), '\0');  // preallocated zeros
      if (mode == 2) {  // garbage: every byte differs from what was there
        for (uint64_t k = cut; k < full_end + 64; ++k) {
          bytes.push_back(static_cast<char>(image[k] ^ static_cast<char>(1 + rng() % 255)));
        }
      }
      WriteFile(seg_path, bytes);
      // A record survives when it ends before the cut, or when the zeros that
      // replace its last bytes are what it held anyway.
      auto intact = [&](uint64_t end) {
        if (end <= cut) return true;
        return mode == 1 && std::all_of(image.begin() + static_cast<ptrdiff_t>(cut),
                                        image.begin() + static_cast<ptrdiff_t>(end),
                                        [](char c) { return c == 0; });
      };
      uint64_t expect_last = 20;
      for (uint64_t e : ends) {
        if (!intact(e)) break;
        ++expect_last;
      }
      const bool hs_intact = expect_last == 23 && intact(full_end);
      {
        auto log = MustOpen(tmp.log(), opts);
        ASSERT_TRUE(log);
        ASSERT_EQ(log->LastIndex(), expect_last);
        ExpectEntries(*log, Range(1, 20, 1));
        for (uint64_t i = 21; i <= expect_last; ++i) {
          ExpectEntries(*log, Range(i, i, 2, sizes[i - 21]));
        }
        EXPECT_EQ(log->hard_state(), (hs_intact ? LogHardState{2, 1, 20} : LogHardState{}));
        // The torn bytes are gone: a new record written now survives.
        ASSERT_TRUE(log->Append(Range(expect_last + 1, expect_last + 1, 3, 50)).ok());
        ASSERT_TRUE(log->Sync().ok());
      }
      auto log = MustOpen(tmp.log(), opts);
      ASSERT_TRUE(log);
      ASSERT_EQ(log->LastIndex(), expect_last + 1);
      ExpectEntries(*log, Range(expect_last + 1, expect_last + 1, 3, 50));
    }
  }
}

// Pages of an unfinished write persist in any order: record 22 can be lost
// while record 23 after it made it to disk. Recovery cuts at 22; a new 22 of
// the same size must not bring the stale 23 back to life behind it.
TEST(RaftLogTest, CrashWithAHoleDoesNotResurrectLaterRecords) {
  TempDir tmp(/*memory=*/true);
  const auto opts = NoSync(Small(8 << 10));
  std::string seg_path;
  uint64_t hole_start;
  {
    auto log = MustOpen(tmp.log(), opts);
    ASSERT_TRUE(log->Append(Range(1, 21, 1)).ok());
    ASSERT_TRUE(log->Sync().ok());
    hole_start = log->Segments().back().used_bytes;
    ASSERT_TRUE(log->Append(Range(22, 23, 1)).ok());
    ASSERT_TRUE(log->Sync().ok());
    seg_path = log->Segments().back().path;
  }
  std::string image = ReadFile(seg_path);
  std::fill_n(image.begin() + static_cast<ptrdiff_t>(hole_start), kEntryOverhead + 100, '\0');
  WriteFile(seg_path, image);
  {
    auto log = MustOpen(tmp.log(), opts);
    ASSERT_EQ(log->LastIndex(), 21u);
    ASSERT_TRUE(log->Append(Range(22, 22, 2)).ok());
    ASSERT_TRUE(log->Sync().ok());
  }
  auto log = MustOpen(tmp.log(), opts);
  EXPECT_EQ(log->LastIndex(), 22u);
  ExpectEntries(*log, Range(22, 22, 2));
}

TEST(RaftLogTest, CrashInsideABigRecordAtRandomOffsets) {
  TempDir tmp;
  const auto opts = NoSync(Small(1 << 20));
  std::string seg_path, image;
  uint64_t synced_end;
  {
    auto log = MustOpen(tmp.log(), opts);
    ASSERT_TRUE(log->Append(Range(1, 5, 1)).ok());
    ASSERT_TRUE(log->Sync().ok());
    synced_end = log->Segments().back().used_bytes;
    ASSERT_TRUE(log->Append(Range(6, 6, 1, 300000)).ok());
    ASSERT_TRUE(log->Sync().ok());
    seg_path = log->Segments().back().path;
  }
  image = ReadFile(seg_path);
  std::mt19937_64 rng(11);
  for (int round = 0; round < 40; ++round) {
    const uint64_t cut = synced_end + rng() % (kEntryOverhead + 300000);
    SCOPED_TRACE("cut at " + std::to_string(cut));
    std::string bytes = image;
    std::fill(bytes.begin() + static_cast<ptrdiff_t>(cut), bytes.end(), '\0');
    if (round % 2) bytes.resize(cut);
    WriteFile(seg_path, bytes);
    auto log = MustOpen(tmp.log(), opts);
    ASSERT_TRUE(log);
    EXPECT_EQ(log->LastIndex(), 5u);
    ExpectEntries(*log, Range(1, 5, 1));
  }
}

// A crash while a new segment is being created leaves an empty or partial
// file after a sealed one.
TEST(RaftLogTest, CrashWhileCreatingASegment) {
  TempDir tmp;
  const auto opts = Small(4096);
  std::string last_path;
  {
    auto log = MustOpen(tmp.log(), opts);
    ASSERT_TRUE(log->Append(Range(1, 60, 1)).ok());
    ASSERT_TRUE(log->Sync().ok());
    last_path = log->Segments().back().path;
  }
  const std::string image = ReadFile(last_path);
  for (size_t cut : {size_t{0}, size_t{5}, size_t{28}}) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    const auto segs_before = CountSegmentFiles(tmp.log());
    // Replace the last segment by a fresh one with a partial header.
    auto r = MustOpen(tmp.log(), opts);
    const uint64_t last = r->LastIndex();
    r.reset();
    WriteFile(last_path, image.substr(0, cut));
    auto log = MustOpen(tmp.log(), opts);
    ASSERT_TRUE(log);
    EXPECT_EQ(CountSegmentFiles(tmp.log()), segs_before - 1);
    EXPECT_LT(log->LastIndex(), last);
    ExpectEntries(*log, Range(1, log->LastIndex(), 1));
    ASSERT_TRUE(log->Append(Range(log->LastIndex() + 1, 60, 1)).ok());
    ASSERT_TRUE(log->Sync().ok());
    log.reset();
    log = MustOpen(tmp.log(), opts);
    ExpectEntries(*log, Range(1, 60, 1));
    last_path = log->Segments().back().path;
  }
}

Status OpenStatus(const std::string& dir, RaftLogOptions opts) {
  return RaftLog::Open(dir, opts).status();
}

TEST(RaftLogTest, CorruptionInAnOlderSegmentIsReported) {
  TempDir tmp;
  const auto opts = Small(4096);
  std::vector<LogSegmentInfo> segs;
  {
    auto log = MustOpen(tmp.log(), opts);
    ASSERT_TRUE(log->Append(Range(1, 150, 1)).ok());
    ASSERT_TRUE(log->Sync().ok());
    segs = log->Segments();
  }
  ASSERT_GE(segs.size(), 4u);
  const std::string victim = segs[1].path;
  const std::string good = ReadFile(victim);
  std::mt19937_64 rng(3);
  for (int round = 0; round < 30; ++round) {
    std::string bad = good;
    const size_t at = rng() % bad.size();
    bad[at] = static_cast<char>(bad[at] ^ (1 + rng() % 255));
    WriteFile(victim, bad);
    Status s = OpenStatus(tmp.log(), opts);
    ASSERT_EQ(s.code(), Status::Code::kCorruption) << "flipped byte " << at;
    const std::string& m = s.message();
    EXPECT_NE(m.find(victim), std::string::npos) << m;
    const size_t o = m.find("at offset ");
    ASSERT_NE(o, std::string::npos) << m;
    const uint64_t reported = std::stoull(m.substr(o + 10));
    // The damaged record starts at or before the flipped byte, within one record.
    EXPECT_LE(reported, at) << m;
    EXPECT_GT(reported + kEntryOverhead + 100, at) << m;
  }
  // A shortened older segment (its footer gone) is corruption as well.
  WriteFile(victim, good.substr(0, good.size() - 17));
  Status s = OpenStatus(tmp.log(), opts);
  EXPECT_EQ(s.code(), Status::Code::kCorruption);
  EXPECT_NE(s.message().find(victim), std::string::npos) << s.message();
  // So is a missing segment in the middle.
  WriteFile(victim, good);
  ASSERT_TRUE(OpenStatus(tmp.log(), opts).ok());
  fs::remove(segs[2].path);
  s = OpenStatus(tmp.log(), opts);
  EXPECT_EQ(s.code(), Status::Code::kCorruption);
  EXPECT_NE(s.message().find(segs[2].path), std::string::npos) << s.message();
}

TEST(RaftLogTest, IgnoresUnrelatedFiles) {
  TempDir tmp;
  {
    auto log = MustOpen(tmp.log());
    ASSERT_TRUE(log->Append(Range(1, 3, 1)).ok());
    ASSERT_TRUE(log->Sync().ok());
  }
  WriteFile(tmp.log() + "/README", "hello");
  WriteFile(tmp.log() + "/123.log", "not a segment");
  auto log = MustOpen(tmp.log());
  EXPECT_EQ(log->LastIndex(), 3u);
}

// A real crash: a child process appends and syncs in a loop, telling the
// parent each index Sync() reported durable; the parent kill -9s it at a
// seeded moment. Every reported index must be there after a reopen, and the
// next child continues the same log.
TEST(RaftLogTest, KillNineNeverLosesASyncedEntry) {
  TempDir tmp;
  const auto opts = Small(32 << 10);
  std::mt19937_64 rng(23);
  uint64_t max_reported = 0;
  for (int round = 0; round < 4; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    const uint64_t kill_after = 20 + rng() % 200;  // reports before the kill
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(fds[0]);
      auto r = RaftLog::Open(tmp.log(), opts);
      if (!r.ok()) ::_exit(2);
      auto& log = *r;
      std::mt19937_64 crng(static_cast<uint64_t>(round));
      for (;;) {
        const uint64_t from = log->LastIndex() + 1;
        const uint64_t n = 1 + crng() % 10;
        std::vector<LogEntry> batch;
        for (uint64_t i = from; i < from + n; ++i) batch.push_back(Entry(i, 1, i % 150));
        uint64_t synced = 0;
        if (!log->Append(batch).ok() || !log->Sync(&synced).ok()) ::_exit(3);
        if (::write(fds[1], &synced, sizeof synced) != sizeof synced) ::_exit(4);
      }
    }
    ::close(fds[1]);
    uint64_t reports = 0, v = 0;
    while (::read(fds[0], &v, sizeof v) == sizeof v) {
      ASSERT_GE(v, max_reported);
      max_reported = v;
      if (++reports == kill_after) ::kill(pid, SIGKILL);
    }
    ::close(fds[0]);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status)) << "child exited with " << WEXITSTATUS(status);
    auto log = MustOpen(tmp.log(), opts);
    ASSERT_TRUE(log);
    ASSERT_GE(log->LastIndex(), max_reported);
    std::vector<LogEntry> want;
    for (uint64_t i = 1; i <= log->LastIndex(); ++i) want.push_back(Entry(i, 1, i % 150));
    ExpectEntries(*log, want);
  }
  EXPECT_GT(max_reported, 80u);
}

TEST(RaftLogTest, SecondOpenOfTheSameDirectoryIsBusy) {
  TempDir tmp;
  auto log = MustOpen(tmp.log());
  EXPECT_EQ(RaftLog::Open(tmp.log()).status().code(), Status::Code::kBusy);
  log.reset();
  EXPECT_TRUE(RaftLog::Open(tmp.log()).ok());
}

// One thread appends while another loops Sync and a third reads. Every index
// a Sync reported durable must be there, intact, after a reopen.
TEST(RaftLogTest, ConcurrentAppendSyncAndRead) {
  TempDir tmp;
  const auto opts = Small(64 << 10, 32 << 10);
  constexpr uint64_t kTotal = 20000;
  std::atomic<bool> done{false};
  std::atomic<uint64_t> max_synced{0};
  std::atomic<uint64_t> syncs{0};
  {
    auto log = MustOpen(tmp.log(), opts);
    std::thread appender([&] {
      std::mt19937_64 rng(5);
      uint64_t next = 1;
      while (next <= kTotal) {
        const uint64_t n = std::min<uint64_t>(1 + rng() % 20, kTotal - next + 1);
        std::vector<LogEntry> batch;
        for (uint64_t i = next; i < next + n; ++i) batch.push_back(Entry(i, 1, i % 200));
        ASSERT_TRUE(log->Append(batch).ok());
        if (next % 7 == 0) {
          ASSERT_TRUE(log->SetHardState({1, 1, next}).ok());
        }
        next += n;
      }
      done = true;
    });
    std::thread syncer([&] {
      uint64_t prev = 0;
      while (!done || prev < kTotal / 2) {
        uint64_t s = 0;
        ASSERT_TRUE(log->Sync(&s).ok());
        ASSERT_GE(s, prev);
        prev = s;
        max_synced = s;
        ++syncs;
      }
    });
    std::thread reader([&] {
      std::mt19937_64 rng(9);
      while (!done) {
        const uint64_t last = log->LastIndex();
        if (last == 0) continue;
        const uint64_t lo = 1 + rng() % last;
        std::vector<LogEntry> out;
        ASSERT_TRUE(log->Entries(lo, std::min(last, lo + 50) + 1, 4096, &out).ok());
        for (const auto& e : out) ASSERT_EQ(e, Entry(e.index, 1, e.index % 200));
      }
    });
    appender.join();
    syncer.join();
    reader.join();
    // No final Sync: whatever was not covered is lost, as in a crash.
  }
  EXPECT_GT(syncs.load(), 1u);
  auto log = MustOpen(tmp.log(), opts);
  ASSERT_GE(log->LastIndex(), max_synced.load());
  std::vector<LogEntry> want;
  for (uint64_t i = 1; i <= log->LastIndex(); ++i) want.push_back(Entry(i, 1, i % 200));
  ExpectEntries(*log, want);
}

// Same, with conflict truncations racing the syncs: what survives a reopen
// must be a consistent log that contains everything last reported durable.
TEST(RaftLogTest, ConcurrentTruncationAndSync) {
  TempDir tmp;
  const auto opts = Small(16 << 10, 16 << 10);
  std::atomic<bool> done{false};
  std::vector<LogEntry> final_log;
  uint64_t final_synced = 0;
  {
    auto log = MustOpen(tmp.log(), opts);
    std::thread syncer([&] {
      while (!done) {
        ASSERT_TRUE(log->Sync().ok());
      }
    });
    std::mt19937_64 rng(17);
    uint64_t term = 1;
    for (int round = 0; round < 3000; ++round) {
      const uint64_t last = log->LastIndex();
      uint64_t from = last + 1;
      if (rng() % 4 == 0 && last > 5) {
        from = last - rng() % 5;  // overwrite a short suffix with a newer term
        ++term;
      }
      ASSERT_TRUE(log->Append(Range(from, from + rng() % 4, term, 20 + rng() % 60)).ok());
    }
    done = true;
    syncer.join();
    ASSERT_TRUE(log->Sync(&final_synced).ok());
    EXPECT_EQ(final_synced, log->LastIndex());
    final_log = ReadAll(*log);
  }
  auto log = MustOpen(tmp.log(), opts);
  EXPECT_EQ(ReadAll(*log), final_log);
}

}  // namespace
}  // namespace flin::store
