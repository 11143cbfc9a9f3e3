#include "store/kv_store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <thread>

namespace flin::store {
namespace {

namespace fs = std::filesystem;

class KvStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/flin-kv-XXXXXX";
    dir_ = mkdtemp(tmpl);
    Reopen();
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(dir_);
  }
  void Reopen() {
    store_.reset();
    auto r = KvStore::Open(dir_ + "/state.db");
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    store_ = std::move(r).value();
  }
  ApplyResult Do(Op op, std::vector<std::string_view> args, int64_t arg = 0, uint32_t flags = 0,
                 int64_t now = 1000) {
    Command c;
    c.op = op;
    c.args = std::move(args);
    c.arg = arg;
    c.flags = flags;
    c.now_ms = now;
    return store_->Apply(++index_, c);
  }
  std::optional<std::string> Value(std::string_view k, int64_t now = 1000) {
    auto r = store_->Get(k, now);
    EXPECT_TRUE(r.ok());
    if (!r->has_value()) return std::nullopt;
    return (*r)->value;
  }

  // Range reads run on committed state (the daemon waits for a commit
  // first): commit, then read through a fresh snapshot.
  int64_t Count(int64_t now) {
    EXPECT_TRUE(store_->Commit().ok());
    auto snap = store_->OpenSnapshot("");
    EXPECT_TRUE(snap.ok());
    auto n = (*snap)->CountLive(now);
    EXPECT_TRUE(n.ok()) << n.status().ToString();
    return n.ok() ? *n : -1;
  }
  std::vector<std::string> Scan(std::string_view after, std::string_view prefix, size_t limit,
                                int64_t now, std::string* last, size_t* examined) {
    EXPECT_TRUE(store_->Commit().ok());
    auto snap = store_->OpenSnapshot("");
    EXPECT_TRUE(snap.ok());
    std::vector<std::string> keys;
    EXPECT_TRUE((*snap)->ScanKeys(after, prefix, limit, now, &keys, last, examined).ok());
    return keys;
  }

  std::string dir_;
  std::unique_ptr<KvStore> store_;
  uint64_t index_ = 0;
};

TEST_F(KvStoreTest, SetGetDelAreBinarySafe) {
  std::string k("k\0\xff", 3), v("", 0);
  EXPECT_EQ(Do(Op::kSet, {k, v}).kind, ApplyResult::Kind::kOk);
  EXPECT_EQ(Value(k), "");
  EXPECT_EQ(Value("k"), std::nullopt);
  EXPECT_EQ(Do(Op::kDel, {k, "missing"}).n, 1);
  EXPECT_EQ(Value(k), std::nullopt);
}

TEST_F(KvStoreTest, SetConditionsAndGetOld) {
  EXPECT_EQ(Do(Op::kSet, {"a", "1"}, 0, kCondXx).kind, ApplyResult::Kind::kNil);
  EXPECT_EQ(Value("a"), std::nullopt);
  EXPECT_EQ(Do(Op::kSet, {"a", "1"}, 0, kCondNx).kind, ApplyResult::Kind::kOk);
  EXPECT_EQ(Do(Op::kSet, {"a", "2"}, 0, kCondNx).kind, ApplyResult::Kind::kNil);
  ApplyResult r = Do(Op::kSet, {"a", "3"}, 0, kGetOld);
  EXPECT_EQ(r.kind, ApplyResult::Kind::kBulk);
  EXPECT_EQ(r.str, "1");
  EXPECT_EQ(Value("a"), "3");
  EXPECT_EQ(Do(Op::kSet, {"b", "x"}, 0, kGetOld).kind, ApplyResult::Kind::kNil);
}

TEST_F(KvStoreTest, ExpiryIsDecidedByEntryTimeNotTheClock) {
  Do(Op::kSet, {"t", "v"}, /*expire_at=*/2000);
  EXPECT_EQ(Value("t", 1999), "v");
  EXPECT_EQ(Value("t", 2000), std::nullopt);
  // At entry time 2500 the key is gone, so NX succeeds and the TTL is cleared.
  EXPECT_EQ(Do(Op::kSet, {"t", "w"}, 0, kCondNx, 2500).kind, ApplyResult::Kind::kOk);
  auto item = store_->Get("t", 99999);
  ASSERT_TRUE(item.ok() && item->has_value());
  EXPECT_EQ((*item)->expires_at, 0);
  // KEEPTTL keeps an existing expiry.
  Do(Op::kSet, {"k", "1"}, 5000);
  Do(Op::kSet, {"k", "2"}, 0, kKeepTtl);
  EXPECT_EQ((*store_->Get("k", 1000))->expires_at, 5000);
}

TEST_F(KvStoreTest, ExpireOptionsFollowRedis) {
  Do(Op::kSet, {"k", "v"});
  EXPECT_EQ(Do(Op::kExpire, {"k"}, 5000, kExpXx).n, 0);  // no TTL yet
  EXPECT_EQ(Do(Op::kExpire, {"k"}, 5000, kExpGt).n, 0);  // no TTL counts as infinite
  EXPECT_EQ(Do(Op::kExpire, {"k"}, 5000, kExpNx).n, 1);
  EXPECT_EQ(Do(Op::kExpire, {"k"}, 4000, kExpGt).n, 0);
  EXPECT_EQ(Do(Op::kExpire, {"k"}, 4000, kExpLt).n, 1);
  EXPECT_EQ((*store_->Get("k", 1000))->expires_at, 4000);
  EXPECT_EQ(Do(Op::kPersist, {"k"}).n, 1);
  EXPECT_EQ(Do(Op::kPersist, {"k"}).n, 0);
  EXPECT_EQ(Do(Op::kExpire, {"missing"}, 5000).n, 0);
  // An expiry in the past deletes the key.
  EXPECT_EQ(Do(Op::kExpire, {"k"}, 500).n, 1);
  EXPECT_EQ(Value("k"), std::nullopt);
}

TEST_F(KvStoreTest, MSetConditionsAreAllOrNothing) {
  Do(Op::kSet, {"b", "old"});
  EXPECT_EQ(Do(Op::kMSet, {"a", "1", "b", "2"}, 0, kCondNx | kReplyInt).n, 0);
  EXPECT_EQ(Value("a"), std::nullopt);
  EXPECT_EQ(Value("b"), "old");
  EXPECT_EQ(Do(Op::kMSet, {"a", "1", "b", "2"}, 0, kCondXx | kReplyInt).n, 0);
  EXPECT_EQ(Do(Op::kMSet, {"a", "1", "b", "2"}, 7000, kReplyInt).n, 1);
  EXPECT_EQ((*store_->Get("a", 1000))->expires_at, 7000);
  EXPECT_EQ(Do(Op::kMSet, {"a", "x", "a", "y"}).kind, ApplyResult::Kind::kOk);
  EXPECT_EQ(Value("a"), "y");  // later duplicate wins
}

TEST_F(KvStoreTest, DelCountsOnlyLiveKeys) {
  Do(Op::kSet, {"live", "1"});
  Do(Op::kSet, {"dead", "1"}, 1500);
  EXPECT_EQ(Do(Op::kDel, {"live", "dead", "none"}, 0, 0, 2000).n, 1);
}

TEST_F(KvStoreTest, SweepDeletesExpiredKeysBoundedly) {
  for (int i = 0; i < 10; ++i) {
    std::string k = "e" + std::to_string(i);
    Do(Op::kSet, {k, "v"}, 1500);
  }
  Do(Op::kSet, {"keep", "v"}, 99999);
  // Sweeps delete rows SQLite holds; buffered ones wait to be written out.
  EXPECT_FALSE(*store_->HasExpired(2000));
  EXPECT_EQ(Do(Op::kSweep, {}, 4, 0, 2000).n, 0);
  ASSERT_TRUE(store_->Commit().ok());
  EXPECT_TRUE(*store_->HasExpired(2000));
  EXPECT_EQ(Do(Op::kSweep, {}, 4, 0, 2000).n, 4);
  EXPECT_EQ(Do(Op::kSweep, {}, 100, 0, 2000).n, 6);
  EXPECT_FALSE(*store_->HasExpired(2000));
  EXPECT_EQ(Count(2000), 1);
}

// A sweep needs no drain: deleting a row SQLite holds that has expired
// changes nothing anyone can see, even when the buffer holds a newer
// version of the key, or a generation is half written.
TEST_F(KvStoreTest, SweepOfSQLiteRowsLeavesBufferedVersionsAlone) {
  Do(Op::kSet, {"a", "old"}, 1500);
  Do(Op::kSet, {"b", "old"}, 1500);
  Do(Op::kSet, {"c", "old"}, 1500);
  ASSERT_TRUE(store_->Commit().ok());
  Do(Op::kSet, {"a", "new"});                        // buffered, live, no expiry
  Do(Op::kSet, {"b", "new"}, 99999);                 // buffered, live until 99999
  EXPECT_FALSE(store_->FlushStep(1, true));          // "a" written, "b" not yet
  EXPECT_EQ(Do(Op::kSweep, {}, 100, 0, 2000).n, 2);  // c, and b's old row
  EXPECT_EQ(Value("a", 2000), "new");
  EXPECT_EQ(Value("b", 2000), "new");
  EXPECT_EQ(Value("c", 2000), std::nullopt);
  while (!store_->FlushStep(1, false)) {
  }
  ASSERT_TRUE(store_->Commit().ok());
  EXPECT_EQ(Value("a", 2000), "new");
  EXPECT_EQ(Value("b", 2000), "new");
  EXPECT_EQ(Count(2000), 2);
  Reopen();  // what a restart finds
  EXPECT_EQ(Value("b", 2000), "new");
  EXPECT_EQ(Value("c", 2000), std::nullopt);
}

TEST_F(KvStoreTest, AppliedIndexSurvivesOnlyWhenCommitted) {
  Do(Op::kSet, {"a", "1"});
  ASSERT_TRUE(store_->Commit().ok());
  Do(Op::kSet, {"b", "2"});
  EXPECT_EQ(store_->applied_index(), 2u);
  EXPECT_EQ(store_->committed_index(), 1u);
  Reopen();  // like a crash: what was not committed is for the log to replay
  EXPECT_EQ(store_->applied_index(), 1u);
  EXPECT_EQ(Value("a"), "1");
  EXPECT_EQ(Value("b"), std::nullopt);
}

// What another connection (a crash, a snapshot) would find in state.db:
// the committed applied_index and value of `key`.
std::pair<int64_t, std::optional<std::string>> Committed(const std::string& path,
                                                         std::string_view key) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* q = nullptr;
  sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE name = 'applied_index'", -1, &q, nullptr);
  EXPECT_EQ(sqlite3_step(q), SQLITE_ROW);
  int64_t applied = sqlite3_column_int64(q, 0);
  sqlite3_finalize(q);
  sqlite3_prepare_v2(db, "SELECT value FROM kv WHERE key = ?1", -1, &q, nullptr);
  sqlite3_bind_blob(q, 1, key.data(), static_cast<int>(key.size()), SQLITE_STATIC);
  std::optional<std::string> v;
  if (sqlite3_step(q) == SQLITE_ROW) {
    v.emplace(static_cast<const char*>(sqlite3_column_blob(q, 0)), sqlite3_column_bytes(q, 0));
  }
  sqlite3_finalize(q);
  sqlite3_close(db);
  return {applied, v};
}

// The write buffer: writes are readable at once, reach state.db a slice at a
// time, and are committed only as whole generations, so the committed file
// is always exactly the state after some entry.
TEST_F(KvStoreTest, WriteBufferCommitsWholeGenerationsOnly) {
  std::string db = dir_ + "/state.db";
  for (const char* k : {"k1", "k2", "k3", "k4", "k5"}) Do(Op::kSet, {k, "v"});  // 1..5
  EXPECT_EQ(Value("k3"), "v");
  EXPECT_GT(store_->buffered_bytes(), 0u);
  EXPECT_EQ(Committed(db, "k1"), std::make_pair(int64_t{0}, std::optional<std::string>()));

  EXPECT_FALSE(store_->FlushStep(2, /*start=*/true));  // generation 1..5, rows k1 k2
  EXPECT_TRUE(store_->flushing());
  Do(Op::kSet, {"k1", "new"});  // 6, into the next generation
  Do(Op::kDel, {"k5"});         // 7
  EXPECT_EQ(Value("k1"), "new");
  EXPECT_EQ(Value("k5"), std::nullopt);
  // Written but not committed: another connection sees nothing yet.
  EXPECT_EQ(Committed(db, "k1").second, std::nullopt);

  EXPECT_FALSE(store_->FlushStep(2, false));  // k3 k4
  EXPECT_TRUE(store_->FlushStep(2, false));   // k5, then the commit at 5
  EXPECT_FALSE(store_->flushing());
  EXPECT_EQ(store_->committed_index(), 5u);
  EXPECT_EQ(Committed(db, "k1"), std::make_pair(int64_t{5}, std::optional<std::string>("v")));
  EXPECT_EQ(Committed(db, "k5").second, "v");  // entry 7 is not in this generation
  EXPECT_EQ(Value("k1"), "new");
  EXPECT_EQ(Value("k5"), std::nullopt);

  EXPECT_FALSE(store_->FlushStep(100, false));  // no start: nothing happens
  EXPECT_TRUE(store_->FlushStep(100, true));    // generation 6..7
  EXPECT_EQ(store_->buffered_bytes(), 0u);
  EXPECT_EQ(Committed(db, "k1"), std::make_pair(int64_t{7}, std::optional<std::string>("new")));
  EXPECT_EQ(Committed(db, "k5").second, std::nullopt);
  EXPECT_EQ(Value("k2"), "v");  // now from SQLite
}

// Conditional writes and expiry decisions read the buffer, not SQLite.
TEST_F(KvStoreTest, ConditionsSeeBufferedState) {
  Do(Op::kSet, {"a", "1"});
  ASSERT_TRUE(store_->Commit().ok());
  EXPECT_EQ(Do(Op::kDel, {"a"}).n, 1);  // buffered deletion of a committed row
  EXPECT_EQ(Do(Op::kSet, {"a", "2"}, 0, kCondXx).kind, ApplyResult::Kind::kNil);
  EXPECT_EQ(Do(Op::kSet, {"a", "2"}, 0, kCondNx).kind, ApplyResult::Kind::kOk);
  ApplyResult old = Do(Op::kSet, {"a", "3"}, 0, kGetOld);
  EXPECT_EQ(old.str, "2");
  EXPECT_EQ(Do(Op::kExpire, {"a"}, 5000).n, 1);  // expires at 5000, buffered
  auto ttl = store_->ExpiresAt("a", 1000);
  ASSERT_TRUE(ttl.ok() && ttl->has_value());
  EXPECT_EQ(**ttl, 5000);
  EXPECT_FALSE(*store_->HasExpired(5000));  // sweeps wait until it is in SQLite
  EXPECT_EQ(Value("a", 6000), std::nullopt);
  EXPECT_EQ(Do(Op::kPersist, {"a"}).n, 1);
  EXPECT_EQ(Value("a", 6000), "3");
}

// Driver metadata commits with the rows of its generation, never ahead.
TEST_F(KvStoreTest, MetaIsBufferedWithItsGeneration) {
  std::string db = dir_ + "/state.db";
  Do(Op::kSet, {"a", "1"});
  store_->PutMeta("raft.test", "one");
  ASSERT_TRUE(store_->FlushStep(100, true));
  Do(Op::kSet, {"b", "1"});
  Do(Op::kSet, {"c", "1"});
  store_->PutMeta("raft.test", "two");
  EXPECT_EQ(**store_->GetMeta("raft.test"), "two");
  EXPECT_EQ(**KvStore::ReadMetaOf(db, "raft.test"), "one");
  EXPECT_FALSE(store_->FlushStep(1, true));  // row b written, not yet committed
  EXPECT_EQ(**KvStore::ReadMetaOf(db, "raft.test"), "one");
  EXPECT_TRUE(store_->FlushStep(1, false));
  EXPECT_EQ(**KvStore::ReadMetaOf(db, "raft.test"), "two");
}

// SQL-level operations write the whole buffer first (FLUSHALL drops it).
TEST_F(KvStoreTest, RangeOperationsSeeTheBuffer) {
  Do(Op::kSet, {"u:1", "x"});
  ASSERT_TRUE(store_->Commit().ok());
  Do(Op::kSet, {"u:2", "x"});
  Do(Op::kDel, {"u:1"});
  Do(Op::kSet, {"u:3", "x"});
  store_->PutMeta("raft.test", "kept");
  EXPECT_FALSE(store_->FlushStep(1, true));  // a generation half written
  Do(Op::kSet, {"u:4", "x"});
  // FLUSHALL drops buffered rows unwritten, but not buffered metadata.
  EXPECT_EQ(Do(Op::kFlushAll, {}).kind, ApplyResult::Kind::kOk);
  EXPECT_EQ(store_->committed_index(), store_->applied_index());
  EXPECT_EQ(**KvStore::ReadMetaOf(dir_ + "/state.db", "raft.test"), "kept");
  EXPECT_EQ(Value("u:3"), std::nullopt);
  EXPECT_EQ(Value("u:4"), std::nullopt);
  EXPECT_EQ(Value("u:2"), std::nullopt);
  EXPECT_EQ(Count(1000), 0);
  Do(Op::kSet, {"t", "x"}, 1500);  // expires at 1500
  ASSERT_TRUE(store_->Commit().ok());
  EXPECT_EQ(Do(Op::kSweep, {}, 10, 0, 2000).n, 1);
  EXPECT_EQ(Count(0), 0);
}

// A snapshot sees committed generations only: never the buffer, never a
// generation half written into the open transaction; Refresh moves it on.
TEST_F(KvStoreTest, SnapshotSeesOnlyCommittedGenerations) {
  Do(Op::kSet, {"a", "x"});
  Do(Op::kSet, {"b", "x"}, 1500);  // expires at 1500
  ASSERT_TRUE(store_->Commit().ok());
  auto snap = store_->OpenSnapshot("");
  ASSERT_TRUE(snap.ok());
  KvStore::Snapshot& s = **snap;
  EXPECT_EQ(*s.CountLive(1000), 2);
  EXPECT_EQ(*s.CountLive(1500), 1);  // expired rows are not counted
  Do(Op::kSet, {"c", "x"});
  Do(Op::kDel, {"a"});
  EXPECT_FALSE(store_->FlushStep(1, true));  // half of the generation written
  ASSERT_TRUE(s.Refresh().ok());
  EXPECT_EQ(*s.CountLive(1000), 2);
  std::vector<std::string> keys;
  std::string last;
  size_t examined = 0;
  ASSERT_TRUE(s.ScanKeys("", "", 10, 1000, &keys, &last, &examined).ok());
  EXPECT_EQ(keys, (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(store_->FlushStep(1, false));  // the generation commits
  EXPECT_EQ(*s.CountLive(1000), 2);          // still the old read transaction
  ASSERT_TRUE(s.Refresh().ok());
  keys.clear();
  ASSERT_TRUE(s.ScanKeys("", "", 10, 1000, &keys, &last, &examined).ok());
  EXPECT_EQ(keys, (std::vector<std::string>{"b", "c"}));
  EXPECT_EQ(*s.CountLive(1600), 1);
  s.Release();
}

// The daemon's apply thread sorts, writes and commits a frozen generation
// without the store mutex while readers look keys up (PinRead/FinishRead
// on their own connection). Every read sees each key's one true value.
TEST_F(KvStoreTest, FlushPhasesRunBesideReaders) {
  const int n = 20000;
  std::vector<std::string> keys;
  for (int i = 0; i < n; ++i) keys.push_back("s:" + std::to_string((i * 7919) % n));
  for (int i = 0; i < n; i += 100) {
    std::vector<std::string_view> args;
    for (int j = i; j < std::min(n, i + 100); ++j) {
      args.push_back(keys[j]);
      args.push_back(keys[j]);
    }
    Do(Op::kMSet, args);
  }
  ASSERT_TRUE(store_->Freeze());
  auto reader = store_->OpenReader();
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  std::atomic<bool> committed{false};
  std::thread flusher([&] {
    store_->SortFrozen();
    while (!store_->WriteSlice(256)) {
    }
    store_->CommitFrozen();
    committed = true;
  });
  int rounds = 0;
  for (int i = 0; !committed || rounds < 3; i = (i + 89) % n, ++rounds) {
    std::vector<std::string_view> ks = {keys[i], keys[(i + 1) % n], "absent"};
    KvStore::PointRead read;
    ASSERT_TRUE(store_->PinRead(**reader, ks, 1000, true, &read).ok());
    ASSERT_TRUE(store_->FinishRead(**reader, ks, 1000, true, &read).ok());
    ASSERT_TRUE(read.items[0].has_value()) << ks[0];
    EXPECT_EQ(read.items[0]->value, ks[0]);
    EXPECT_EQ(read.items[1]->value, ks[1]);
    EXPECT_FALSE(read.items[2].has_value());
  }
  flusher.join();
  store_->FinishFrozen();
  EXPECT_EQ(store_->committed_index(), store_->applied_index());
  EXPECT_EQ(Count(1000), n);
  std::string last;
  size_t examined = 0;
  auto first = Scan("", "s:", 3, 1000, &last, &examined);
  EXPECT_EQ(first, (std::vector<std::string>{"s:0", "s:1", "s:10"}));
}

// A point read is one state across its keys: what PinRead took from the
// buffer and what FinishRead finds in state.db belong together, even if a
// generation commits in between.
TEST_F(KvStoreTest, PointReadIsOneStateAcrossKeys) {
  Do(Op::kSet, {"a", "1"});
  ASSERT_TRUE(store_->Commit().ok());
  Do(Op::kSet, {"b", "1"});  // buffered
  auto reader = store_->OpenReader();
  ASSERT_TRUE(reader.ok());
  std::vector<std::string_view> ks = {"a", "b"};
  KvStore::PointRead read;
  ASSERT_TRUE(store_->PinRead(**reader, ks, 1000, true, &read).ok());
  EXPECT_TRUE(read.pinned);
  Do(Op::kMSet, {"a", "2", "b", "2"});  // one batch: both or neither
  while (!store_->FlushStep(1, true)) {
  }
  ASSERT_TRUE(store_->FinishRead(**reader, ks, 1000, true, &read).ok());
  EXPECT_EQ(read.items[0]->value, "1");
  EXPECT_EQ(read.items[1]->value, "1");
  // A new read sees the batch whole.
  ASSERT_TRUE(store_->PinRead(**reader, ks, 1000, true, &read).ok());
  ASSERT_TRUE(store_->FinishRead(**reader, ks, 1000, true, &read).ok());
  EXPECT_EQ(read.items[0]->value, "2");
  EXPECT_EQ(read.items[1]->value, "2");
  // Values past the caller's budget stop the read: in state.db, in the row
  // cache (a and b are cached now) and in the buffer.
  Do(Op::kMSet, {"c", "4", "d", "4"});
  while (!store_->FlushStep(1, true)) {
  }
  read.max_value_bytes = 1;
  std::vector<std::string_view> cd = {"c", "d"};
  ASSERT_TRUE(store_->PinRead(**reader, cd, 1000, true, &read).ok());
  EXPECT_EQ(store_->FinishRead(**reader, cd, 1000, true, &read).code(), Status::Code::kLimit);
  EXPECT_EQ(store_->PinRead(**reader, ks, 1000, true, &read).code(), Status::Code::kLimit);
  Do(Op::kSet, {"a", "3"});
  Do(Op::kSet, {"b", "3"});
  EXPECT_EQ(store_->PinRead(**reader, ks, 1000, true, &read).code(), Status::Code::kLimit);
  read.max_value_bytes = SIZE_MAX;
  // Expired and deleted keys read as absent; values only when asked for.
  Do(Op::kSet, {"t", "x"}, 1500);
  Do(Op::kDel, {"a"});
  std::vector<std::string_view> ks2 = {"a", "t", "b"};
  ASSERT_TRUE(store_->PinRead(**reader, ks2, 2000, false, &read).ok());
  ASSERT_TRUE(store_->FinishRead(**reader, ks2, 2000, false, &read).ok());
  EXPECT_FALSE(read.items[0].has_value());
  EXPECT_FALSE(read.items[1].has_value());
  ASSERT_TRUE(read.items[2].has_value());
  EXPECT_EQ(read.items[2]->value, "");
}

// What a point read through `r` returns for each key ("" for a key read
// without its value).
std::vector<std::optional<std::string>> PointRead(KvStore& kv, KvStore::Reader& r,
                                                  std::vector<std::string_view> keys, int64_t now,
                                                  bool want_values = true) {
  KvStore::PointRead read;
  EXPECT_TRUE(kv.PinRead(r, keys, now, want_values, &read).ok());
  EXPECT_TRUE(kv.FinishRead(r, keys, now, want_values, &read).ok());
  std::vector<std::optional<std::string>> out;
  for (auto& item : read.items) {
    out.push_back(item ? std::optional<std::string>(item->value) : std::nullopt);
  }
  return out;
}

using Values = std::vector<std::optional<std::string>>;

// The row cache answers repeated reads of committed rows, and what it
// answers follows every generation commit.
TEST_F(KvStoreTest, RowCacheAnswersRepeatedReadsAndFollowsCommits) {
  Do(Op::kMSet, {"a", "1", "b", "1"});
  ASSERT_TRUE(store_->Commit().ok());
  auto reader = store_->OpenReader();
  ASSERT_TRUE(reader.ok());
  EXPECT_EQ(PointRead(*store_, **reader, {"a", "b", "none"}, 1000), (Values{"1", "1", {}}));
  auto before = store_->row_cache_stats();
  EXPECT_EQ(before.rows, 3u);  // absent keys too
  KvStore::PointRead read;
  std::vector<std::string_view> ks = {"a", "b", "none"};
  ASSERT_TRUE(store_->PinRead(**reader, ks, 1000, true, &read).ok());
  EXPECT_FALSE(read.pinned);  // all three answered without SQLite
  EXPECT_EQ(store_->row_cache_stats().hits, before.hits + 3);
  // Overwrite, delete and create, committed: the cache shows none of the
  // old rows afterwards.
  Do(Op::kSet, {"a", "2"});
  Do(Op::kDel, {"b"});
  Do(Op::kSet, {"none", "3"});
  EXPECT_EQ(PointRead(*store_, **reader, {"a", "b", "none"}, 1000), (Values{"2", {}, "3"}));
  while (!store_->FlushStep(1, true)) {
  }
  EXPECT_EQ(PointRead(*store_, **reader, {"a", "b", "none"}, 1000), (Values{"2", {}, "3"}));
  EXPECT_EQ(PointRead(*store_, **reader, {"a", "b", "none"}, 1000), (Values{"2", {}, "3"}));
  // Expiry is decided at read time, also for cached rows; EXISTS-style reads
  // (no values) are answered too.
  Do(Op::kSet, {"t", "x"}, 1500);
  ASSERT_TRUE(store_->Commit().ok());
  EXPECT_EQ(PointRead(*store_, **reader, {"t"}, 1000), (Values{"x"}));
  EXPECT_EQ(PointRead(*store_, **reader, {"t"}, 1000), (Values{"x"}));
  EXPECT_EQ(PointRead(*store_, **reader, {"t"}, 1500), (Values{{}}));
  EXPECT_EQ(PointRead(*store_, **reader, {"t", "a"}, 1000, false), (Values{"", ""}));
}

// A sweep deletes expired rows in the open transaction. Once that commits,
// the row is gone from the cache as from SQLite: a clock set back must not
// bring the value back from memory alone.
TEST_F(KvStoreTest, SweptRowsLeaveTheRowCache) {
  Do(Op::kSet, {"t", "x"}, 1500);
  ASSERT_TRUE(store_->Commit().ok());
  auto reader = store_->OpenReader();
  ASSERT_TRUE(reader.ok());
  EXPECT_EQ(PointRead(*store_, **reader, {"t"}, 1000), (Values{"x"}));  // cached
  EXPECT_EQ(Do(Op::kSweep, {}, 100, 0, 2000).n, 1);
  while (!store_->FlushStep(100, true)) {
  }
  auto v = store_->Get("t", 1000);  // SQLite: no row left
  ASSERT_TRUE(v.ok());
  EXPECT_FALSE(v->has_value());
  EXPECT_EQ(PointRead(*store_, **reader, {"t"}, 1000), (Values{{}}));
}

// Commits that rewrite rows wholesale (FLUSHALL, an import, a snapshot
// restore) leave nothing stale in the cache.
TEST_F(KvStoreTest, WholesaleRewritesEmptyTheRowCache) {
  Do(Op::kSet, {"a", "1"});
  ASSERT_TRUE(store_->Commit().ok());
  std::string backup = dir_ + "/backup.db";
  ASSERT_TRUE(KvStore::BackupTo(dir_ + "/state.db", backup).ok());
  auto reader = store_->OpenReader();
  ASSERT_TRUE(reader.ok());
  EXPECT_EQ(PointRead(*store_, **reader, {"a", "i"}, 1000), (Values{"1", {}}));
  Do(Op::kFlushAll, {});
  EXPECT_EQ(PointRead(*store_, **reader, {"a", "i"}, 1000), (Values{{}, {}}));
  EXPECT_EQ(Do(Op::kImportBegin, {"imp"}).kind, ApplyResult::Kind::kOk);
  EXPECT_EQ(Do(Op::kImportAdd, {"imp", "i", "imported", "0"}).n, 1);
  EXPECT_EQ(PointRead(*store_, **reader, {"a", "i"}, 1000), (Values{{}, {}}));
  EXPECT_EQ(Do(Op::kImportCommit, {"imp"}).n, 1);
  EXPECT_EQ(PointRead(*store_, **reader, {"a", "i"}, 1000), (Values{{}, "imported"}));
  ASSERT_TRUE(store_->RestoreFrom(backup).ok());
  EXPECT_EQ(PointRead(*store_, **reader, {"a", "i"}, 1000), (Values{"1", {}}));
}

// --row-cache-mb 0: reads go to SQLite every time, with the same answers.
TEST_F(KvStoreTest, ReadsWorkWithoutTheRowCache) {
  store_.reset();
  KvStoreOptions opts;
  opts.row_cache_bytes = 0;
  auto r = KvStore::Open(dir_ + "/state.db", opts);
  ASSERT_TRUE(r.ok());
  store_ = std::move(r).value();
  Do(Op::kSet, {"a", "1"});
  ASSERT_TRUE(store_->Commit().ok());
  auto reader = store_->OpenReader();
  ASSERT_TRUE(reader.ok());
  EXPECT_EQ(PointRead(*store_, **reader, {"a", "b"}, 1000), (Values{"1", {}}));
  KvStore::PointRead read;
  std::vector<std::string_view> ks = {"a"};
  ASSERT_TRUE(store_->PinRead(**reader, ks, 1000, true, &read).ok());
  EXPECT_TRUE(read.pinned);
  ASSERT_TRUE(store_->FinishRead(**reader, ks, 1000, true, &read).ok());
  EXPECT_EQ(store_->row_cache_stats().rows, 0u);
}

TEST_F(KvStoreTest, ScanWalksInKeyOrderWithPrefix) {
  for (const char* k : {"u:1", "u:2", "u:3", "v:1", "a"}) Do(Op::kSet, {k, "x"});
  std::string last;
  size_t examined = 0;
  EXPECT_EQ(Scan("", "u:", 2, 1000, &last, &examined), (std::vector<std::string>{"u:1", "u:2"}));
  EXPECT_EQ(examined, 2u);
  EXPECT_EQ(Scan(last, "u:", 2, 1000, &last, &examined), (std::vector<std::string>{"u:3"}));
  EXPECT_GT(examined, 2u);  // ran past the prefix: complete
}

TEST_F(KvStoreTest, ImportStagingIsInvisibleUntilCommit) {
  EXPECT_EQ(Do(Op::kImportAdd, {"imp", "k", "v", "0"}).kind, ApplyResult::Kind::kError);
  EXPECT_EQ(Do(Op::kImportBegin, {"imp"}).kind, ApplyResult::Kind::kOk);
  EXPECT_EQ(Do(Op::kImportAdd, {"imp", "k1", "a", "0", "k2", "b", "0"}).n, 2);
  EXPECT_EQ(Do(Op::kImportAdd, {"imp", "k1", "c", "9000"}).n, 1);
  EXPECT_EQ(Value("k1"), std::nullopt);
  EXPECT_EQ(Do(Op::kImportCommit, {"imp"}).n, 2);
  EXPECT_EQ(Value("k1"), "c");
  EXPECT_EQ((*store_->Get("k1", 1000))->expires_at, 9000);
  EXPECT_EQ(Value("k2"), "b");
  EXPECT_EQ(Do(Op::kImportCommit, {"imp"}).kind, ApplyResult::Kind::kError);
}

TEST_F(KvStoreTest, SnapshotIsConsistentWhileWritesContinue) {
  for (int i = 0; i < 100; ++i) {
    std::string k = "k" + std::to_string(1000 + i);
    Do(Op::kSet, {k, "v1"});
  }
  ASSERT_TRUE(store_->Commit().ok());
  auto snap = store_->OpenSnapshot("");
  ASSERT_TRUE(snap.ok());
  Do(Op::kMSet, {"k1000", "v2", "k1099", "v2", "zzz", "new"});
  ASSERT_TRUE(store_->Commit().ok());
  std::vector<KvStore::Snapshot::Row> rows;
  while (!(*snap)->done()) ASSERT_TRUE((*snap)->Next(7, 1000, &rows).ok());
  ASSERT_EQ(rows.size(), 100u);
  for (const auto& r : rows) EXPECT_EQ(r.value, "v1") << r.key;
}

TEST_F(KvStoreTest, BackupRestoreReplacesContentWhileOtherConnectionsStayValid) {
  // The leader's side: some state, copied with the backup API.
  Do(Op::kMSet, {"a", "1", "b", "2"});
  store_->PutMeta("raft.applied_term", "7");
  ASSERT_TRUE(store_->Commit().ok());
  auto copied = KvStore::BackupTo(dir_ + "/state.db", dir_ + "/snap.db");
  ASSERT_TRUE(copied.ok()) << copied.status().ToString();
  EXPECT_EQ(*copied, index_);
  auto term = KvStore::ReadMetaOf(dir_ + "/snap.db", "raft.applied_term");
  ASSERT_TRUE(term.ok() && term->has_value());
  EXPECT_EQ(**term, "7");

  // A follower with other state and an export reading it.
  auto other = KvStore::Open(dir_ + "/other.db");
  ASSERT_TRUE(other.ok());
  Command c;
  c.op = Op::kMSet;
  c.args = {"x", "9"};
  for (uint64_t i = 1; i <= 50; ++i) (*other)->Apply(i, c);
  ASSERT_TRUE((*other)->Commit().ok());
  auto exp = (*other)->OpenSnapshot("");
  ASSERT_TRUE(exp.ok());

  ASSERT_TRUE((*other)->RestoreFrom(dir_ + "/snap.db").ok());
  EXPECT_EQ((*other)->applied_index(), index_);
  auto a = (*other)->Get("a", 1000);
  ASSERT_TRUE(a.ok() && a->has_value());
  EXPECT_EQ((*a)->value, "1");
  auto x = (*other)->Get("x", 1000);
  ASSERT_TRUE(x.ok());
  EXPECT_FALSE(x->has_value());
  // The export still reads its own (old) snapshot.
  std::vector<KvStore::Snapshot::Row> rows;
  ASSERT_TRUE((*exp)->Next(10, 1000, &rows).ok());
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].key, "x");
  exp->reset();
  // The restored content survives a reopen, and applying continues after it.
  c.args = {"c", "3"};
  (*other)->Apply(index_ + 1, c);
  ASSERT_TRUE((*other)->Commit().ok());
  other->reset();
  auto again = KvStore::Open(dir_ + "/other.db");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->applied_index(), index_ + 1);
  auto b = (*again)->Get("b", 1000);
  ASSERT_TRUE(b.ok() && b->has_value());
  EXPECT_EQ((*b)->value, "2");
  EXPECT_FALSE(KvStore::ReadMetaOf(dir_ + "/missing.db", "x").ok());
}

}  // namespace
}  // namespace flin::store
