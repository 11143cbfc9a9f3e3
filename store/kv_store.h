// KvStore: the key-value state machine on SQLite (state.db).
//
// Schema (DESIGN.md "Storage"): kv(key BLOB PRIMARY KEY, value BLOB NOT NULL,
// expires_at INTEGER) WITHOUT ROWID with a partial index on expires_at; meta
// holding schema_version, applied_index and cluster_id; staging tables for
// atomic imports.
//
// Write buffer (DESIGN.md "Performance"): Apply() does not touch SQLite for
// the common writes (SET, MSET, DEL, EXPIRE, PERSIST, driver metadata). It
// records each key's newest state in an in-memory buffer (RowSet: an arena
// and a hash table), so a write costs a hash probe and a copy and its
// acknowledgement never waits for a B-tree upsert. Reads look in the buffer first, then SQLite. The
// apply thread writes the buffer to SQLite in the background (FlushStep): it freezes the buffer as
// a "generation" covering every entry up to the applied index at that moment, writes the generation
// in key order a slice at a time into one open transaction, and commits once the whole generation
// is in, storing that generation's index as applied_index. So the committed state.db is always
// exactly the state after some entry, never a mix: a restart re-applies the entries above it from
// the Raft log, and keys written many times in a generation are written to SQLite once.
//
// Writes that work on ranges of SQLite rows (FLUSHALL, import staging) first
// write the whole buffer out (DrainAll; FLUSHALL drops it), run on SQLite
// alone and commit at once. Expiry sweeps delete only expired rows SQLite
// holds (see Apply). Range reads (SCAN, KEYS, DBSIZE, export) run on a Snapshot
// once committed_index() covers what they must see (the daemon waits for a
// generation commit: Engine::WhenCommitted).
//
// Thread-safety: the daemon serialises calls with one mutex (the store
// mutex), with these exceptions, which let SQLite work run without it:
// - SortFrozen, WriteSlice and CommitFrozen are called by the one thread
//   that applies and flushes (the daemon's apply thread) WITHOUT the mutex.
//   They touch only the frozen generation (nobody changes it; readers only
//   look rows up in it) and the main SQLite connection, which no other
//   thread uses meanwhile: other threads read through Reader and Snapshot
//   connections of their own, and a thread that must use the main
//   connection (a snapshot install) first excludes the flushing thread with
//   a mutex of the daemon's.
// - FinishRead and CommittedHasExpired run without the mutex on the
//   caller's own Reader; Snapshot likewise. A Reader or Snapshot belongs to
//   one thread at a time.
#pragma once

#include <sqlite3.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "base/status.h"
#include "store/command.h"
#include "store/row_cache.h"
#include "store/row_set.h"

namespace flin::store {

struct KvStoreOptions {
  int64_t cache_bytes = 64 << 20;     // SQLite page cache, of the main connection and each Reader
  size_t row_cache_bytes = 64 << 20;  // rows point reads fetched (RowCache); 0: none
};

class KvStore {
 public:
  static constexpr int kSchemaVersion = 1;

  // Opens or creates the database at `path`. Corruption / IOError name the file.
  static Result<std::unique_ptr<KvStore>> Open(const std::string& path,
                                               const KvStoreOptions& opts = {});
  ~KvStore();
  KvStore(const KvStore&) = delete;
  KvStore& operator=(const KvStore&) = delete;

  // Highest index applied (possibly only in the write buffer) / committed to
  // state.db.
  uint64_t applied_index() const { return applied_index_; }
  uint64_t committed_index() const { return committed_index_; }
  // Entries applied since the last commit.
  size_t uncommitted_entries() const { return applied_index_ - committed_index_; }
  // Memory held by the write buffer (both generations), approximately.
  size_t buffered_bytes() const {
    return active_.rows.bytes() + draining_unwritten_.load(std::memory_order_relaxed);
  }
  // Whether a frozen generation is being written to SQLite.
  bool flushing() const { return draining_on_; }

  // Background flushing, in phases (see Thread-safety):
  // Freeze (under the mutex): without a generation in progress, freezes the
  //   buffer into one covering every entry applied so far (even an empty
  //   one, to record an applied index that only no-ops advanced). Returns
  //   whether a generation is in progress afterwards.
  // SortFrozen (without the mutex): sorts its keys for writing (hundreds of
  //   ms for a million rows; WriteSlice does it otherwise).
  // WriteSlice (without the mutex): writes up to `max_rows` of its rows to
  //   SQLite, in key order, into one open transaction; true once all are in.
  // CommitFrozen (without the mutex): commits them with the generation's
  //   index as applied_index. The rows stay in the buffer meanwhile.
  // FinishFrozen (under the mutex): drops the generation from the buffer and
  //   publishes committed_index().
  bool Freeze();
  void SortFrozen();
  bool WriteSlice(size_t max_rows);
  void CommitFrozen();
  void FinishFrozen();
  // The phases in one call (single-threaded use): Freeze when `start`, one
  // slice, and once all is written the commit. Returns true when this call
  // committed (committed_index() moved).
  bool FlushStep(size_t max_rows, bool start);

  // Applies the command of entry `index` (> applied_index()). Results that are
  // client errors (e.g. IMPORT.ADD to an unknown import) change nothing.
  // A storage failure here is fatal (the entry cannot be skipped).
  ApplyResult Apply(uint64_t index, const Command& cmd);
  // Records that entry `index` needed no state change (e.g. a raft no-op).
  void MarkApplied(uint64_t index);
  // Writes the whole buffer to SQLite and commits: committed_index() becomes
  // applied_index(). Costs as much as the buffer holds; the daemon calls it
  // only where state.db must be complete (export, a snapshot file, cluster
  // bootstrap). Stopping does not: see ~KvStore.
  Status Commit();
  // Commits, then checkpoints the WAL into the main file so that everything
  // up to committed_index() is durable in state.db itself (before the Raft
  // log is compacted below it).
  Status Checkpoint();

  // Copies committed WAL frames into state.db through a second connection,
  // so neither the applying connection nor readers stall on a checkpoint
  // (automatic checkpoints are off on the main connection). Safe to call
  // without the store mutex, from one thread at a time.
  // Does nothing until the WAL holds kCheckpointFrames, unless forced. A
  // thread of the store's own runs it after every Commit() that leaves the
  // WAL that long, so callers need not.
  Status BackgroundCheckpoint(bool force = false);
  // SQLite's own default is 1,000 pages; a bigger WAL costs readers little
  // (the wal-index is a hash) and saves rewriting hot pages.
  static constexpr int kCheckpointFrames = 16384;
  // Like BackgroundCheckpoint (same connection, no store mutex needed, one
  // thread at a time), but reports whether every committed WAL frame is now
  // in state.db and synced: then committed_index() as of the last Commit()
  // is durable without the WAL, and the Raft log below it may be dropped.
  Result<bool> DurableBackgroundCheckpoint();

  // Driver metadata kept in the meta table beside applied_index, e.g. the
  // Raft configuration as of the applied index. PutMeta writes inside the
  // open apply transaction, so it commits atomically with the entries applied
  // before it. Names starting with "raft." are the cluster engine's.
  void PutMeta(std::string_view name, std::string_view value);
  Result<std::optional<std::string>> GetMeta(std::string_view name);

  // Copies the committed state of `db_path` into a new database file `dest`
  // (SQLite online backup through a connection of its own, in one step so
  // the copy is consistent while the applying connection keeps writing) and
  // fsyncs it. Used for Raft snapshots. Returns the copy's applied_index.
  static Result<uint64_t> BackupTo(const std::string& db_path, const std::string& dest);
  // Replaces this database's whole content with the database file `src` (a
  // received Raft snapshot) through the SQLite backup API on this very
  // connection, as one durable transaction (synchronous=FULL for it), so
  // other connections to state.db (exports) stay valid and see either the
  // old or the new content. Reloads the applied index from the new content.
  Status RestoreFrom(const std::string& src);
  // Reads a meta value from a database file that is not open (a snapshot).
  static Result<std::optional<std::string>> ReadMetaOf(const std::string& db_path,
                                                       std::string_view name);

  // Reads as of wall-clock now_ms (keys with expires_at <= now_ms are absent).
  // expires_at: 0 = no expiry.
  struct Item {
    std::string value;
    int64_t expires_at = 0;
  };

  // Point reads that hold the store mutex only to look in the write buffer.
  // A reading thread opens its own Reader (a read-only connection). PinRead,
  // under the mutex, takes each key's buffered state and, when a key is not
  // buffered, makes sure `r` has a read transaction on the matching
  // committed state; FinishRead, without the mutex, looks those keys up in
  // that transaction. The result
  // is the state when PinRead ran, across all keys (MGET stays atomic), and
  // no slice or commit of the background flush ever holds a reader up.
  // Rows of committed state read before are answered from the RowCache in
  // PinRead (no SQLite at all); FinishRead adds what it fetched to it.
  // items[i]: the live value (empty unless want_values) and expiry of
  // keys[i], or nullopt. The Reader keeps its read transaction between reads
  // until a commit makes it stale; call Release() after commits (the daemon
  // does), or it keeps the WAL from being checkpointed past it.
  class Reader {
   public:
    ~Reader();
    void Release();  // ends the read transaction, if one is open

   private:
    friend class KvStore;
    sqlite3* db_ = nullptr;
    sqlite3_stmt* get_ = nullptr;
    sqlite3_stmt* has_expired_ = nullptr;
    sqlite3_stmt* begin_ = nullptr;
    sqlite3_stmt* pin_ = nullptr;
    sqlite3_stmt* commit_ = nullptr;
    bool open_ = false;   // a read transaction is open
    uint64_t index_ = 0;  // committed_index() when it began
  };
  Result<std::unique_ptr<Reader>> OpenReader();
  struct PointRead {
    std::vector<std::optional<Item>> items;
    std::vector<uint8_t> buffered;  // items[i] came from the buffer or the row cache
    bool pinned = false;            // FinishRead has keys to look up on the Reader
    uint64_t cache_generation = 0;  // RowCache::generation() when pinned
    // Set by the caller: once the values copied exceed it, the read stops
    // with a kLimit status.
    size_t max_value_bytes = SIZE_MAX;
    size_t value_bytes = 0;
  };
  Status PinRead(Reader& r, const std::vector<std::string_view>& keys, int64_t now_ms,
                 bool want_values, PointRead* out);
  Status FinishRead(Reader& r, const std::vector<std::string_view>& keys, int64_t now_ms,
                    bool want_values, PointRead* out);
  RowCache::Stats row_cache_stats() const { return row_cache_->stats(); }
  // Whether committed state.db holds an expired row (a hint for sweeps;
  // without the mutex). Expired rows still in the buffer are not counted:
  // sweeps delete rows SQLite holds (see Apply).
  static Result<bool> CommittedHasExpired(Reader& r, int64_t now_ms);
  Result<std::optional<Item>> Get(std::string_view key, int64_t now_ms);
  Result<bool> Exists(std::string_view key, int64_t now_ms);
  // The expiry of a live key (0 = none) without copying its value;
  // nullopt when the key is absent.
  Result<std::optional<int64_t>> ExpiresAt(std::string_view key, int64_t now_ms);
  // Whether SQLite holds an expired row (rows written, committed or not;
  // the buffer is not looked at: sweeps delete what SQLite holds).
  Result<bool> HasExpired(int64_t now_ms);

  // A consistent read-only view of committed state.db through a connection
  // of its own (a WAL read transaction): range reads (SCAN, KEYS, DBSIZE,
  // export) run here, so they neither wait for nor hold up the applying
  // connection. It sees only what a generation commit put in state.db:
  // callers first wait until committed_index() covers what they must see.
  // Usable from one thread at a time, without the store mutex.
  class Snapshot {
   public:
    ~Snapshot();
    // Moves the view to the newest committed state (starts a read
    // transaction). Release() ends it, so that a view kept between reads
    // does not hold old WAL pages from being checkpointed.
    Status Refresh();
    void Release();
    // Up to `limit` live keys > `after` (or >= when after is empty) that
    // start with `prefix`, in key order. *examined counts rows looked at
    // (expired ones included; limit + 1 once past the prefix: the scan is
    // complete) and *last the last key looked at, for cursors.
    Status ScanKeys(std::string_view after, std::string_view prefix, size_t limit, int64_t now_ms,
                    std::vector<std::string>* keys, std::string* last, size_t* examined);
    // Keys with no expiry or one after now_ms.
    Result<int64_t> CountLive(int64_t now_ms);
    struct Row {
      std::string key, value;
      int64_t expires_at = 0;
    };
    // Export: examines up to `count` rows under the prefix given at open, after
    // those returned before, and appends the live ones (expired rows are
    // skipped, so a call may append none before the end); done() at the end.
    Status Next(size_t count, int64_t now_ms, std::vector<Row>* rows);
    bool done() const { return done_; }

   private:
    friend class KvStore;
    sqlite3* db_ = nullptr;
    Status Begin();
    sqlite3_stmt* stmt_ = nullptr;   // export rows
    sqlite3_stmt* scan_ = nullptr;   // ScanKeys
    sqlite3_stmt* count_ = nullptr;  // CountLive
    std::string prefix_, last_;
    bool started_ = false, done_ = false;
  };
  Result<std::unique_ptr<Snapshot>> OpenSnapshot(std::string_view prefix);

  const std::string& path() const { return path_; }

 private:
  KvStore(std::string path, sqlite3* db);
  Status Init(const KvStoreOptions& opts);
  Status Exec(const char* sql);
  Status Prepare(const char* sql, sqlite3_stmt** stmt);
  Status SqlError(const char* what) const;
  void BeginIfNeeded();
  void HoldReadTxn();

  // The write buffer: a generation of rows (RowSet) plus driver metadata.
  struct Generation {
    RowSet rows;
    std::map<std::string, std::string, std::less<>> meta;
    // Memory of rows not yet written to SQLite (what bounds the buffer).
    size_t unwritten_bytes() const {
      return rows.empty() ? 0 : rows.bytes() / rows.size() * rows.unread();
    }
  };
  // The newest buffered state of `key`, or nullopt when SQLite has it.
  std::optional<RowSet::Row> FindPending(std::string_view key) const;
  void Buffer(std::string_view key, std::string_view value, int64_t expires_at, bool deleted);
  // Writes up to max_rows rows of `g`, in key order, into the open
  // transaction (same connection: reads see them at once).
  void WriteRows(Generation& g, size_t max_rows);
  void WriteMeta(Generation& g);
  // Writes everything buffered into the open transaction; afterwards SQLite
  // alone holds the applied state. With drop_rows, buffered rows are dropped
  // instead of written (for FLUSHALL, which deletes every row); driver
  // metadata is written either way.
  void DrainAll(bool drop_rows = false);
  Status CommitTxn(uint64_t index);

  // Apply helpers.
  std::optional<int64_t> LiveExpiry(std::string_view key, int64_t now_ms, std::string* old);
  void Upsert(std::string_view key, std::string_view value, int64_t expires_at);
  bool DeleteKey(std::string_view key, int64_t now_ms);
  void SetExpiry(std::string_view key, int64_t expires_at);
  ApplyResult ApplyOp(const Command& cmd);
  ApplyResult ApplySet(const Command& cmd);
  ApplyResult ApplyMSet(const Command& cmd);
  ApplyResult ApplyExpire(const Command& cmd);
  ApplyResult ApplyImport(const Command& cmd);

  std::string path_;
  sqlite3* db_;
  int64_t cache_bytes_ = 0;           // page cache of the main connection and of Readers
  sqlite3* checkpoint_db_ = nullptr;  // used only by BackgroundCheckpoint
  bool in_txn_ = false;
  Status CheckpointLocked(bool force);
  void CheckpointLoop();
  std::mutex ckpt_conn_mu_;  // serializes use of checkpoint_db_
  std::mutex ckpt_mu_;
  std::condition_variable ckpt_cv_;
  bool ckpt_pending_ = false;  // GUARDED_BY(ckpt_mu_)
  bool ckpt_stop_ = false;     // GUARDED_BY(ckpt_mu_)
  std::thread ckpt_thread_;
  std::atomic<int> wal_frames_{0};  // WAL length after the last commit (wal hook)
  uint64_t applied_index_ = 0;
  uint64_t committed_index_ = 0;
  Generation active_;    // receives applies
  Generation draining_;  // frozen, being written to SQLite
  bool draining_on_ = false;
  uint64_t draining_index_ = 0;  // the applied index draining_ brings SQLite to
  // draining_'s memory not yet written to SQLite (WriteSlice updates it
  // without the mutex; buffered_bytes() reads it under the mutex).
  std::atomic<size_t> draining_unwritten_{0};

  std::vector<RowSet::Row> scratch_;  // rows being written by WriteRows

  // Committed rows for point reads (see RowCache for how it stays equal to
  // committed state). Keys that sweeps deleted in the open transaction are
  // erased once it commits: sweeps delete expired rows, which reads already
  // treat as absent, but a cached copy would come back if the clock did.
  std::unique_ptr<RowCache> row_cache_;
  std::vector<std::string> swept_keys_;
  // After a commit that rewrote rows nobody tracked (FLUSHALL, imports,
  // Commit(), a restore): the cache may hold any of them.
  void ForgetCachedRows();

  sqlite3_stmt* get_ = nullptr;
  sqlite3_stmt* upsert_ = nullptr;
  sqlite3_stmt* del_plain_ = nullptr;
  sqlite3_stmt* sweep_ = nullptr;
  sqlite3_stmt* has_expired_ = nullptr;
  sqlite3_stmt* set_applied_ = nullptr;
  sqlite3_stmt* put_meta_ = nullptr;
  sqlite3_stmt* get_meta_ = nullptr;
  sqlite3_stmt* begin_ = nullptr;
  sqlite3_stmt* commit_ = nullptr;
};

}  // namespace flin::store
