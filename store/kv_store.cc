#include "store/kv_store.h"

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "base/check.h"
#include "base/log.h"
#include "base/strings.h"

namespace flin::store {
namespace {

// sqlite3_bind_blob binds SQL NULL for a null pointer, even with length 0;
// an empty value must stay an empty blob.
void BindBlob(sqlite3_stmt* s, int i, std::string_view v) {
  sqlite3_bind_blob(s, i, v.data() ? v.data() : "", static_cast<int>(v.size()), SQLITE_STATIC);
}

std::string_view ColumnBlob(sqlite3_stmt* s, int i) {
  const void* p = sqlite3_column_blob(s, i);
  int n = sqlite3_column_bytes(s, i);
  return p ? std::string_view(static_cast<const char*>(p), static_cast<size_t>(n))
           : std::string_view();
}

int64_t ColumnExpiry(sqlite3_stmt* s, int i) {
  return sqlite3_column_type(s, i) == SQLITE_NULL ? 0 : sqlite3_column_int64(s, i);
}

bool Live(int64_t expires_at, int64_t now_ms) { return expires_at == 0 || expires_at > now_ms; }

// Resets a statement when the scope ends, so no statement holds a read lock
// or points at a caller's buffer longer than needed.
class StmtGuard {
 public:
  explicit StmtGuard(sqlite3_stmt* s) : s_(s) {}
  ~StmtGuard() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }

 private:
  sqlite3_stmt* s_;
};

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS kv(
  key BLOB PRIMARY KEY,
  value BLOB NOT NULL,
  expires_at INTEGER
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kv_expires_at ON kv(expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS meta(name TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS import_area(id BLOB PRIMARY KEY, next_seq INTEGER NOT NULL,
  touched_ms INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS import_row(id BLOB NOT NULL, seq INTEGER NOT NULL, key BLOB NOT NULL,
  value BLOB NOT NULL, expires_at INTEGER, PRIMARY KEY(id, seq)) WITHOUT ROWID;
)sql";

constexpr int64_t kImportIdleMs = 3600 * 1000;

}  // namespace

KvStore::KvStore(std::string path, sqlite3* db) : path_(std::move(path)), db_(db) {}

KvStore::~KvStore() {
  if (ckpt_thread_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(ckpt_mu_);
      ckpt_stop_ = true;
    }
    ckpt_cv_.notify_one();
    ckpt_thread_.join();
  }
  // Whatever the buffer holds (and a generation half written into the open
  // transaction) is dropped, not written: the Raft log keeps every entry
  // above committed_index(), and the next open replays them into the
  // buffer. So stopping costs nothing however full the buffer is.
  if (in_txn_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  for (sqlite3_stmt* s : {get_, upsert_, del_plain_, sweep_, has_expired_, set_applied_, put_meta_,
                          get_meta_, begin_, commit_}) {
    sqlite3_finalize(s);
  }
  sqlite3_close(checkpoint_db_);
  sqlite3_close(db_);
}

Status KvStore::SqlError(const char* what) const {
  std::string msg = path_ + ": " + what + ": " + sqlite3_errmsg(db_);
  int code = sqlite3_errcode(db_) & 0xff;
  if (code == SQLITE_CORRUPT || code == SQLITE_NOTADB) return Status::Corruption(msg);
  if (code == SQLITE_BUSY || code == SQLITE_LOCKED) return Status::Busy(msg);
  return Status::IOError(msg);
}

Status KvStore::Exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = path_ + ": " + (err ? err : "unknown error");
    sqlite3_free(err);
    int code = sqlite3_errcode(db_) & 0xff;
    if (code == SQLITE_CORRUPT || code == SQLITE_NOTADB) return Status::Corruption(msg);
    return Status::IOError(msg);
  }
  return Status::Ok();
}

Status KvStore::Prepare(const char* sql, sqlite3_stmt** stmt) {
  if (sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, stmt, nullptr) != SQLITE_OK) {
    return SqlError(sql);
  }
  return Status::Ok();
}

Result<std::unique_ptr<KvStore>> KvStore::Open(const std::string& path,
                                               const KvStoreOptions& opts) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(
      path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = path + ": cannot open: " + (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    sqlite3_close(db);
    return Status::IOError(msg);
  }
  std::unique_ptr<KvStore> store(new KvStore(path, db));
  FLIN_RETURN_IF_ERROR(store->Init(opts));
  return store;
}

Status KvStore::Init(const KvStoreOptions& opts) {
  // WAL + synchronous=NORMAL: commits do not fsync (the Raft log already made
  // the entries durable), but the file stays consistent across power loss.
  FLIN_RETURN_IF_ERROR(Exec("PRAGMA journal_mode=WAL"));
  FLIN_RETURN_IF_ERROR(Exec("PRAGMA synchronous=NORMAL"));
  FLIN_RETURN_IF_ERROR(Exec("PRAGMA temp_store=MEMORY"));
  // Checkpoints run from BackgroundCheckpoint's own connection instead of
  // inside a commit on this one (which would stall readers).
  FLIN_RETURN_IF_ERROR(Exec("PRAGMA wal_autocheckpoint=0"));
  // Tracks the WAL's length after each commit, so BackgroundCheckpoint can
  // skip work until enough frames piled up (copying a page once per many
  // commits instead of once per commit).
  sqlite3_wal_hook(
      db_,
      [](void* self, sqlite3*, const char*, int frames) {
        static_cast<KvStore*>(self)->wal_frames_.store(frames, std::memory_order_relaxed);
        return SQLITE_OK;
      },
      this);
  cache_bytes_ = opts.cache_bytes;
  row_cache_ = std::make_unique<RowCache>(opts.row_cache_bytes);
  std::string cache = "PRAGMA cache_size=-" + std::to_string(opts.cache_bytes / 1024);
  FLIN_RETURN_IF_ERROR(Exec(cache.c_str()));
  FLIN_RETURN_IF_ERROR(Exec(kSchema));

  sqlite3_stmt* s = nullptr;
  FLIN_RETURN_IF_ERROR(Prepare("SELECT name, value FROM meta", &s));
  bool have_version = false;
  Status st;
  while (sqlite3_step(s) == SQLITE_ROW) {
    std::string_view name(reinterpret_cast<const char*>(sqlite3_column_text(s, 0)));
    if (name == "schema_version") {
      have_version = true;
      int64_t v = sqlite3_column_int64(s, 1);
      if (v != kSchemaVersion) {
        st = Status::Corruption(path_ + ": schema version " + std::to_string(v) +
                                " is not supported (this flind knows " +
                                std::to_string(kSchemaVersion) + ")");
      }
    } else if (name == "applied_index") {
      applied_index_ = committed_index_ = static_cast<uint64_t>(sqlite3_column_int64(s, 1));
    }
  }
  sqlite3_finalize(s);
  FLIN_RETURN_IF_ERROR(st);
  if (!have_version) {
    FLIN_RETURN_IF_ERROR(
        Exec("INSERT INTO meta(name, value) VALUES('schema_version', 1), ('applied_index', 0)"));
  }

  FLIN_RETURN_IF_ERROR(Prepare("SELECT value, expires_at FROM kv WHERE key = ?1", &get_));
  FLIN_RETURN_IF_ERROR(Prepare(
      "INSERT INTO kv(key, value, expires_at) VALUES(?1, ?2, ?3) "
      "ON CONFLICT(key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
      &upsert_));
  FLIN_RETURN_IF_ERROR(Prepare("DELETE FROM kv WHERE key = ?1", &del_plain_));
  FLIN_RETURN_IF_ERROR(
      Prepare("DELETE FROM kv WHERE key IN (SELECT key FROM kv WHERE expires_at <= ?1 LIMIT ?2) "
              "RETURNING key",
              &sweep_));
  FLIN_RETURN_IF_ERROR(Prepare("SELECT 1 FROM kv WHERE expires_at <= ?1 LIMIT 1", &has_expired_));
  FLIN_RETURN_IF_ERROR(
      Prepare("UPDATE meta SET value = ?1 WHERE name = 'applied_index'", &set_applied_));
  FLIN_RETURN_IF_ERROR(
      Prepare("INSERT OR REPLACE INTO meta(name, value) VALUES(?1, ?2)", &put_meta_));
  FLIN_RETURN_IF_ERROR(Prepare("SELECT value FROM meta WHERE name = ?1", &get_meta_));
  FLIN_RETURN_IF_ERROR(Prepare("BEGIN IMMEDIATE", &begin_));
  FLIN_RETURN_IF_ERROR(Prepare("COMMIT", &commit_));
  ckpt_thread_ = std::thread([this] { CheckpointLoop(); });
  return Status::Ok();
}

// Outside a transaction every statement opens and closes its own read
// transaction (WAL read lock, wal-index header check): a quarter of a
// point read's cost. Reads therefore join the open apply transaction, or
// open one that the next apply continues and the next Commit() ends. This
// connection is the only writer, so holding the write lock costs nobody.
void KvStore::HoldReadTxn() { BeginIfNeeded(); }

void KvStore::BeginIfNeeded() {
  if (in_txn_) return;
  int rc = sqlite3_step(begin_);
  sqlite3_reset(begin_);
  FLIN_CHECK(rc == SQLITE_DONE) << SqlError("BEGIN").ToString();
  in_txn_ = true;
}

Status KvStore::Commit() {
  DrainAll();
  if (!in_txn_ && applied_index_ == committed_index_) return Status::Ok();
  FLIN_RETURN_IF_ERROR(CommitTxn(applied_index_));
  committed_index_ = applied_index_;
  ForgetCachedRows();
  return Status::Ok();
}

void KvStore::ForgetCachedRows() {
  row_cache_->Clear();
  swept_keys_.clear();
}

// Ends the open transaction, recording that state.db now holds the state
// after entry `index` (the caller made sure it holds exactly that).
Status KvStore::CommitTxn(uint64_t index) {
  BeginIfNeeded();
  sqlite3_bind_int64(set_applied_, 1, static_cast<int64_t>(index));
  int rc = sqlite3_step(set_applied_);
  sqlite3_reset(set_applied_);
  if (rc != SQLITE_DONE) return SqlError("store applied_index");
  rc = sqlite3_step(commit_);
  sqlite3_reset(commit_);
  if (rc != SQLITE_DONE) return SqlError("COMMIT");
  in_txn_ = false;
  if (wal_frames_.load(std::memory_order_relaxed) >= kCheckpointFrames) {
    {
      std::lock_guard<std::mutex> lock(ckpt_mu_);
      ckpt_pending_ = true;
    }
    ckpt_cv_.notify_one();
  }
  return Status::Ok();
}

Status KvStore::Checkpoint() {
  FLIN_RETURN_IF_ERROR(Commit());
  int log_frames = 0, done_frames = 0;
  int rc = sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_TRUNCATE, &log_frames,
                                     &done_frames);
  if (rc == SQLITE_BUSY) return Status::Busy(path_ + ": checkpoint blocked by a reader");
  if (rc != SQLITE_OK) return SqlError("checkpoint");
  return Status::Ok();
}

// Buffered like rows, so that metadata commits together with the entries
// applied before it (a committed state.db never holds a newer Raft
// configuration than its applied_index).
void KvStore::PutMeta(std::string_view name, std::string_view value) {
  active_.meta[std::string(name)] = std::string(value);
}

void KvStore::WriteMeta(Generation& g) {
  if (g.meta.empty()) return;
  BeginIfNeeded();
  for (const auto& [name, value] : g.meta) {
    StmtGuard guard(put_meta_);
    sqlite3_bind_text(put_meta_, 1, name.data(), static_cast<int>(name.size()), SQLITE_STATIC);
    BindBlob(put_meta_, 2, value);
    int rc = sqlite3_step(put_meta_);
    FLIN_CHECK(rc == SQLITE_DONE) << SqlError("store meta").ToString();
  }
}

Result<std::optional<std::string>> KvStore::GetMeta(std::string_view name) {
  for (const Generation* g : {&active_, &draining_}) {
    auto it = g->meta.find(name);
    if (it != g->meta.end()) return std::optional<std::string>(it->second);
  }
  StmtGuard g(get_meta_);
  sqlite3_bind_text(get_meta_, 1, name.data(), static_cast<int>(name.size()), SQLITE_STATIC);
  int rc = sqlite3_step(get_meta_);
  if (rc == SQLITE_DONE) return std::optional<std::string>();
  if (rc != SQLITE_ROW) return SqlError("read meta");
  const void* p = sqlite3_column_blob(get_meta_, 0);
  int n = sqlite3_column_bytes(get_meta_, 0);
  return std::optional<std::string>(std::string(static_cast<const char*>(p), n));
}

Result<uint64_t> KvStore::BackupTo(const std::string& db_path, const std::string& dest) {
  sqlite3* src = nullptr;
  sqlite3* dst = nullptr;
  auto close_both = [&] {
    sqlite3_close(src);
    sqlite3_close(dst);
  };
  if (sqlite3_open_v2(db_path.c_str(), &src, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr) !=
      SQLITE_OK) {
    close_both();
    return Status::IOError(db_path + ": cannot open for backup");
  }
  ::unlink(dest.c_str());
  if (sqlite3_open_v2(dest.c_str(), &dst,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    Status st = Status::IOError(dest + ": cannot create: " + sqlite3_errmsg(dst));
    close_both();
    return st;
  }
  sqlite3_backup* b = sqlite3_backup_init(dst, "main", src, "main");
  if (!b) {
    Status st = Status::IOError(dest + ": backup: " + sqlite3_errmsg(dst));
    close_both();
    return st;
  }
  // One step copies every page under one read transaction: a consistent
  // copy even while the daemon's connection keeps committing (WAL readers
  // do not block the writer).
  int rc = sqlite3_backup_step(b, -1);
  sqlite3_backup_finish(b);
  if (rc != SQLITE_DONE) {
    Status st = Status::IOError(dest + ": backup step: " + sqlite3_errstr(rc));
    close_both();
    return st;
  }
  // The copy is a standalone file: no WAL, so it can be streamed as is.
  if (sqlite3_exec(dst, "PRAGMA journal_mode=DELETE", nullptr, nullptr, nullptr) != SQLITE_OK) {
    Status st = Status::IOError(dest + ": " + sqlite3_errmsg(dst));
    close_both();
    return st;
  }
  uint64_t applied = 0;
  sqlite3_stmt* q = nullptr;
  if (sqlite3_prepare_v2(dst, "SELECT value FROM meta WHERE name = 'applied_index'", -1, &q,
                         nullptr) == SQLITE_OK &&
      sqlite3_step(q) == SQLITE_ROW) {
    applied = static_cast<uint64_t>(sqlite3_column_int64(q, 0));
  }
  sqlite3_finalize(q);
  close_both();
  int fd = ::open(dest.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 || ::fsync(fd) != 0) {
    if (fd >= 0) ::close(fd);
    return Status::IOError(dest + ": fsync failed");
  }
  ::close(fd);
  return applied;
}

Status KvStore::RestoreFrom(const std::string& src_path) {
  FLIN_RETURN_IF_ERROR(Commit());
  sqlite3* src = nullptr;
  if (sqlite3_open_v2(src_path.c_str(), &src, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    sqlite3_close(src);
    return Status::IOError(src_path + ": cannot open");
  }
  FLIN_RETURN_IF_ERROR(Exec("PRAGMA synchronous=FULL"));
  sqlite3_backup* b = sqlite3_backup_init(db_, "main", src, "main");
  int rc = b ? sqlite3_backup_step(b, -1) : sqlite3_errcode(db_);
  if (b) sqlite3_backup_finish(b);
  Status st = Exec("PRAGMA synchronous=NORMAL");
  sqlite3_close(src);
  if (rc != SQLITE_DONE) {
    return Status::IOError(path_ + ": restore from " + src_path + ": " + sqlite3_errstr(rc) + " (" +
                           sqlite3_errmsg(db_) + ")");
  }
  FLIN_RETURN_IF_ERROR(st);
  sqlite3_stmt* q = nullptr;
  FLIN_RETURN_IF_ERROR(Prepare("SELECT value FROM meta WHERE name = 'applied_index'", &q));
  rc = sqlite3_step(q);
  int64_t applied = rc == SQLITE_ROW ? sqlite3_column_int64(q, 0) : -1;
  sqlite3_finalize(q);
  if (applied < 0) return Status::Corruption(src_path + ": no applied_index in the snapshot");
  applied_index_ = committed_index_ = static_cast<uint64_t>(applied);
  ForgetCachedRows();
  return Status::Ok();
}

Result<std::optional<std::string>> KvStore::ReadMetaOf(const std::string& db_path,
                                                       std::string_view name) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr) !=
      SQLITE_OK) {
    sqlite3_close(db);
    return Status::IOError(db_path + ": cannot open");
  }
  sqlite3_stmt* q = nullptr;
  Result<std::optional<std::string>> out = std::optional<std::string>();
  if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE name = ?1", -1, &q, nullptr) !=
      SQLITE_OK) {
    out = Status::Corruption(db_path + ": not a Flin state database: " + sqlite3_errmsg(db));
  } else {
    sqlite3_bind_text(q, 1, name.data(), static_cast<int>(name.size()), SQLITE_STATIC);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
      if (sqlite3_column_type(q, 0) == SQLITE_INTEGER) {
        out = std::optional<std::string>(std::to_string(sqlite3_column_int64(q, 0)));
      } else {
        const void* p = sqlite3_column_blob(q, 0);
        out = std::optional<std::string>(
            std::string(static_cast<const char*>(p), sqlite3_column_bytes(q, 0)));
      }
    } else if (rc != SQLITE_DONE) {
      out = Status::Corruption(db_path + ": " + sqlite3_errmsg(db));
    }
  }
  sqlite3_finalize(q);
  sqlite3_close(db);
  return out;
}

Result<bool> KvStore::DurableBackgroundCheckpoint() {
  std::lock_guard<std::mutex> lock(ckpt_conn_mu_);
  FLIN_RETURN_IF_ERROR(CheckpointLocked(/*force=*/true));
  int log_frames = -1, done_frames = -1;
  // PASSIVE copies every committed frame no reader still needs and syncs
  // state.db once all of them are in (this connection runs with the default
  // synchronous=FULL). A second call reports the totals after the first.
  int rc = sqlite3_wal_checkpoint_v2(checkpoint_db_, nullptr, SQLITE_CHECKPOINT_PASSIVE,
                                     &log_frames, &done_frames);
  if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
    return Status::IOError(path_ + ": checkpoint: " + sqlite3_errmsg(checkpoint_db_));
  }
  LOG_DEBUG << "durable checkpoint rc " << rc << " log " << log_frames << " done " << done_frames;
  return rc == SQLITE_OK && log_frames >= 0 && log_frames == done_frames;
}

Status KvStore::BackgroundCheckpoint(bool force) {
  std::lock_guard<std::mutex> lock(ckpt_conn_mu_);
  return CheckpointLocked(force);
}

// The checkpointer thread: copying WAL frames into state.db (and the fsync
// at the end) is IO the applying thread should not wait for.
void KvStore::CheckpointLoop() {
  pthread_setname_np(pthread_self(), "flind-ckpt");
  std::unique_lock<std::mutex> lock(ckpt_mu_);
  for (;;) {
    ckpt_cv_.wait(lock, [&] { return ckpt_pending_ || ckpt_stop_; });
    if (ckpt_stop_) return;
    ckpt_pending_ = false;
    lock.unlock();
    Status s = BackgroundCheckpoint(/*force=*/true);
    if (!s.ok()) LOG_WARN << s.ToString();
    lock.lock();
  }
}

Status KvStore::CheckpointLocked(bool force) {
  if (!checkpoint_db_) {
    int rc = sqlite3_open_v2(path_.c_str(), &checkpoint_db_,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) {
      sqlite3_close(checkpoint_db_);
      checkpoint_db_ = nullptr;
      return Status::IOError(path_ + ": cannot open checkpoint connection");
    }
    // A connection learns that the database is in WAL mode only when it
    // first reads it; until then a checkpoint through it silently does
    // nothing (and reports -1 frames).
    rc = sqlite3_exec(checkpoint_db_, "PRAGMA schema_version", nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) {
      Status st =
          Status::IOError(path_ + ": checkpoint connection: " + sqlite3_errmsg(checkpoint_db_));
      sqlite3_close(checkpoint_db_);
      checkpoint_db_ = nullptr;
      return st;
    }
  }
  // SQLite's own default is 1,000 pages; a bigger WAL costs readers little
  // (the wal-index is a hash) and saves rewriting hot pages.
  if (!force && wal_frames_.load(std::memory_order_relaxed) < kCheckpointFrames) {
    return Status::Ok();
  }
  int rc = sqlite3_wal_checkpoint_v2(checkpoint_db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr,
                                     nullptr);
  if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
    return Status::IOError(path_ + ": checkpoint: " + sqlite3_errmsg(checkpoint_db_));
  }
  return Status::Ok();
}

void KvStore::MarkApplied(uint64_t index) {
  FLIN_CHECK(index > applied_index_) << index << " <= " << applied_index_;
  applied_index_ = index;
}

// ---- write buffer ----

std::optional<RowSet::Row> KvStore::FindPending(std::string_view key) const {
  if (auto r = active_.rows.Find(key)) return r;
  // A draining row already written to SQLite is still found here, with the
  // very state SQLite now has.
  if (draining_on_) return draining_.rows.Find(key);
  return std::nullopt;
}

void KvStore::Buffer(std::string_view key, std::string_view value, int64_t expires_at,
                     bool deleted) {
  active_.rows.Put(key, value, expires_at, deleted);
}

void KvStore::WriteRows(Generation& g, size_t max_rows) {
  if (g.rows.empty() || g.rows.unread() == 0) return;
  BeginIfNeeded();
  scratch_.clear();
  // Key order: neighbouring rows share B-tree pages, so each page is found
  // and dirtied once per run of keys instead of once per key.
  g.rows.NextInOrder(max_rows, &scratch_);
  for (const RowSet::Row& r : scratch_) {
    if (r.deleted) {
      StmtGuard guard(del_plain_);
      BindBlob(del_plain_, 1, r.key);
      int rc = sqlite3_step(del_plain_);
      FLIN_CHECK(rc == SQLITE_DONE) << SqlError("delete during flush").ToString();
    } else {
      Upsert(r.key, r.value, r.expires_at);
    }
  }
  scratch_.clear();
}

void KvStore::SortFrozen() {
  if (draining_on_) draining_.rows.Sort();
}

void KvStore::DrainAll(bool drop_rows) {
  // Older generation first: a key in both ends with the active state.
  for (Generation* g : {&draining_, &active_}) {
    if (!drop_rows) WriteRows(*g, SIZE_MAX);
    WriteMeta(*g);
    g->rows.Clear();
    g->meta.clear();
  }
  draining_on_ = false;
  draining_unwritten_.store(0, std::memory_order_relaxed);
}

bool KvStore::Freeze() {
  if (draining_on_) return true;
  if (applied_index_ == committed_index_) return false;
  std::swap(draining_, active_);  // draining_ was empty
  draining_on_ = true;
  draining_index_ = applied_index_;
  draining_unwritten_.store(draining_.rows.bytes(), std::memory_order_relaxed);
  // Reads pinned from here on find this generation's keys in the buffer;
  // fills of reads pinned before may hold their old rows and are dropped,
  // so that CommitFrozen's erase of these keys from the row cache is final.
  row_cache_->Invalidate();
  return true;
}

bool KvStore::WriteSlice(size_t max_rows) {
  FLIN_CHECK(draining_on_) << "WriteSlice without a frozen generation";
  WriteRows(draining_, max_rows);
  draining_unwritten_.store(draining_.unwritten_bytes(), std::memory_order_relaxed);
  if (draining_.rows.unread() == 0) return true;
  // Write this slice's dirty pages to the WAL now (uncommitted frames,
  // invisible to readers). Otherwise they pile up in the page cache and the
  // COMMIT writes all of them at once: 210 ms for a generation of 1 M rows.
  // Keys go in order, so a page written out here is rarely dirtied again in
  // this generation.
  int rc = sqlite3_db_cacheflush(db_);
  FLIN_CHECK(rc == SQLITE_OK || rc == SQLITE_BUSY) << SqlError("cache flush").ToString();
  return false;
}

void KvStore::CommitFrozen() {
  FLIN_CHECK(draining_on_ && draining_.rows.unread() == 0) << "CommitFrozen before the last slice";
  WriteMeta(draining_);
  // The row cache must not show these keys' old rows once the buffer stops
  // shadowing them (FinishFrozen). Done here, without the store mutex:
  // erasing a million keys takes a while.
  row_cache_->Erase([this](const auto& fn) { draining_.rows.ForEachKey(fn); });
  // SQLite now holds the last commit's state plus every change up to
  // draining_index_: exactly the state after draining_index_. Readers'
  // connections see it from here on; the buffer still holds the same rows
  // until FinishFrozen, so a reader sees the same state either way.
  Status s = CommitTxn(draining_index_);
  FLIN_CHECK(s.ok()) << "state.db commit failed: " << s.ToString();
}

void KvStore::FinishFrozen() {
  FLIN_CHECK(draining_on_ && !in_txn_) << "FinishFrozen before CommitFrozen";
  draining_.rows.Clear();
  draining_.meta.clear();
  draining_on_ = false;
  draining_unwritten_.store(0, std::memory_order_relaxed);
  committed_index_ = draining_index_;
  if (!swept_keys_.empty()) {
    // Readers pinned from now on see the sweeps' deletions; a fill from one
    // pinned before could still bring back a swept row, so it is dropped,
    // and rows filled until now are erased.
    row_cache_->Invalidate();
    for (const std::string& k : swept_keys_) row_cache_->EraseOne(k);
    swept_keys_.clear();
  }
}

bool KvStore::FlushStep(size_t max_rows, bool start) {
  if (!draining_on_ && (!start || !Freeze())) return false;
  if (!WriteSlice(max_rows)) return false;
  CommitFrozen();
  FinishFrozen();
  return true;
}

// ---- apply ----

std::optional<int64_t> KvStore::LiveExpiry(std::string_view key, int64_t now_ms, std::string* old) {
  if (auto p = FindPending(key)) {
    if (p->deleted || !Live(p->expires_at, now_ms)) return std::nullopt;
    if (old) old->assign(p->value);
    return p->expires_at;
  }
  HoldReadTxn();
  StmtGuard g(get_);
  BindBlob(get_, 1, key);
  int rc = sqlite3_step(get_);
  if (rc == SQLITE_DONE) return std::nullopt;
  FLIN_CHECK(rc == SQLITE_ROW) << SqlError("read during apply").ToString();
  int64_t exp = ColumnExpiry(get_, 1);
  if (!Live(exp, now_ms)) return std::nullopt;
  if (old) old->assign(ColumnBlob(get_, 0));
  return exp;
}

void KvStore::Upsert(std::string_view key, std::string_view value, int64_t expires_at) {
  StmtGuard g(upsert_);
  BindBlob(upsert_, 1, key);
  BindBlob(upsert_, 2, value);
  if (expires_at > 0)
    sqlite3_bind_int64(upsert_, 3, expires_at);
  else
    sqlite3_bind_null(upsert_, 3);
  int rc = sqlite3_step(upsert_);
  FLIN_CHECK(rc == SQLITE_DONE) << SqlError("write during apply").ToString();
}

// A key already expired stays in SQLite until a sweep: it reads as absent.
bool KvStore::DeleteKey(std::string_view key, int64_t now_ms) {
  if (!LiveExpiry(key, now_ms, nullptr)) return false;
  Buffer(key, {}, 0, true);
  return true;
}

// The key must exist (the caller checked it is live).
void KvStore::SetExpiry(std::string_view key, int64_t expires_at) {
  std::string value;
  bool found = LiveExpiry(key, INT64_MIN, &value).has_value();
  FLIN_CHECK(found) << "SetExpiry on a missing key";
  Buffer(key, value, expires_at, false);
}

ApplyResult KvStore::ApplySet(const Command& cmd) {
  FLIN_CHECK(cmd.args.size() == 2);
  std::string old;
  bool want_old = cmd.flags & kGetOld;
  std::optional<int64_t> exp = LiveExpiry(cmd.args[0], cmd.now_ms, want_old ? &old : nullptr);
  bool ok = !((cmd.flags & kCondNx) && exp) && !((cmd.flags & kCondXx) && !exp);
  if (ok) {
    int64_t new_exp = (cmd.flags & kKeepTtl) ? exp.value_or(0) : cmd.arg;
    Buffer(cmd.args[0], cmd.args[1], new_exp, false);
  }
  if (want_old) return exp ? ApplyResult::Bulk(std::move(old)) : ApplyResult::Nil();
  return ok ? ApplyResult::Ok() : ApplyResult::Nil();
}

ApplyResult KvStore::ApplyMSet(const Command& cmd) {
  FLIN_CHECK(cmd.args.size() % 2 == 0);
  bool keep = cmd.flags & kKeepTtl;
  if (cmd.flags & (kCondNx | kCondXx)) {
    // All-or-nothing condition over the whole batch, checked before any write.
    for (size_t i = 0; i < cmd.args.size(); i += 2) {
      bool live = LiveExpiry(cmd.args[i], cmd.now_ms, nullptr).has_value();
      if ((cmd.flags & kCondNx) ? live : !live) return ApplyResult::Int(0);
    }
  }
  if (!keep) active_.rows.Prefetch(cmd.args, 0, 2);
  // In argument order: a key given twice ends with its last value.
  for (size_t i = 0; i < cmd.args.size(); i += 2) {
    int64_t exp = cmd.arg;
    if (keep) exp = LiveExpiry(cmd.args[i], cmd.now_ms, nullptr).value_or(0);
    Buffer(cmd.args[i], cmd.args[i + 1], exp, false);
  }
  return (cmd.flags & kReplyInt) ? ApplyResult::Int(1) : ApplyResult::Ok();
}

ApplyResult KvStore::ApplyExpire(const Command& cmd) {
  FLIN_CHECK(cmd.args.size() == 1);
  std::optional<int64_t> cur = LiveExpiry(cmd.args[0], cmd.now_ms, nullptr);
  if (!cur) return ApplyResult::Int(0);
  int64_t at = cmd.arg;
  // Redis 7 EXPIRE options; a key without expiry counts as an infinite TTL.
  if ((cmd.flags & kExpNx) && *cur != 0) return ApplyResult::Int(0);
  if ((cmd.flags & kExpXx) && *cur == 0) return ApplyResult::Int(0);
  if ((cmd.flags & kExpGt) && (*cur == 0 || at <= *cur)) return ApplyResult::Int(0);
  if ((cmd.flags & kExpLt) && *cur != 0 && at >= *cur) return ApplyResult::Int(0);
  if (at <= cmd.now_ms) {
    DeleteKey(cmd.args[0], cmd.now_ms);
  } else {
    SetExpiry(cmd.args[0], at);
  }
  return ApplyResult::Int(1);
}

ApplyResult KvStore::ApplyImport(const Command& cmd) {
  FLIN_CHECK(!cmd.args.empty());
  std::string_view id = cmd.args[0];
  auto run = [&](const char* sql, auto&& bind) -> int64_t {
    sqlite3_stmt* s = nullptr;
    FLIN_CHECK(sqlite3_prepare_v2(db_, sql, -1, &s, nullptr) == SQLITE_OK) << sqlite3_errmsg(db_);
    bind(s);
    int64_t v = -1;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) v = sqlite3_column_int64(s, 0);
    FLIN_CHECK(rc == SQLITE_DONE) << SqlError(sql).ToString();
    sqlite3_finalize(s);
    return v;
  };
  auto bind_id = [&](sqlite3_stmt* s) { BindBlob(s, 1, id); };
  int64_t next_seq = run("SELECT next_seq FROM import_area WHERE id = ?1", bind_id);
  std::string unknown =
      "ERR no such import '" + Printable(id) + "' (it was committed, aborted or expired)";

  switch (cmd.op) {
    case Op::kImportBegin:
      if (next_seq >= 0) return ApplyResult::Error("ERR import '" + Printable(id) + "' exists");
      run("INSERT INTO import_area(id, next_seq, touched_ms) VALUES(?1, 0, ?2)",
          [&](sqlite3_stmt* s) {
            BindBlob(s, 1, id);
            sqlite3_bind_int64(s, 2, cmd.now_ms);
          });
      return ApplyResult::Ok();
    case Op::kImportAdd: {
      if (next_seq < 0) return ApplyResult::Error(unknown);
      sqlite3_stmt* s = nullptr;
      FLIN_CHECK(sqlite3_prepare_v2(db_,
                                    "INSERT INTO import_row(id, seq, key, value, expires_at) "
                                    "VALUES(?1, ?2, ?3, ?4, ?5)",
                                    -1, &s, nullptr) == SQLITE_OK);
      int64_t n = 0;
      for (size_t i = 1; i + 3 <= cmd.args.size(); i += 3) {
        int64_t exp = ParseInt64(cmd.args[i + 2]).value_or(0);
        BindBlob(s, 1, id);
        sqlite3_bind_int64(s, 2, next_seq + n);
        BindBlob(s, 3, cmd.args[i]);
        BindBlob(s, 4, cmd.args[i + 1]);
        if (exp > 0)
          sqlite3_bind_int64(s, 5, exp);
        else
          sqlite3_bind_null(s, 5);
        FLIN_CHECK(sqlite3_step(s) == SQLITE_DONE) << SqlError("stage import row").ToString();
        sqlite3_reset(s);
        ++n;
      }
      sqlite3_finalize(s);
      run("UPDATE import_area SET next_seq = ?2, touched_ms = ?3 WHERE id = ?1",
          [&](sqlite3_stmt* st) {
            BindBlob(st, 1, id);
            sqlite3_bind_int64(st, 2, next_seq + n);
            sqlite3_bind_int64(st, 3, cmd.now_ms);
          });
      return ApplyResult::Int(n);
    }
    case Op::kImportCommit: {
      if (next_seq < 0) return ApplyResult::Error(unknown);
      auto bind_now = [&](sqlite3_stmt* s) {
        BindBlob(s, 1, id);
        sqlite3_bind_int64(s, 2, cmd.now_ms);
      };
      int64_t keys =
          run("SELECT count(DISTINCT key) FROM import_row WHERE id = ?1 AND "
              "(expires_at IS NULL OR expires_at > ?2)",
              bind_now);
      // ORDER BY seq: for a key staged twice, the later row is applied last and wins.
      run("INSERT INTO kv(key, value, expires_at) SELECT key, value, expires_at FROM import_row "
          "WHERE id = ?1 AND (expires_at IS NULL OR expires_at > ?2) ORDER BY seq "
          "ON CONFLICT(key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
          bind_now);
      run("DELETE FROM import_row WHERE id = ?1", bind_id);
      run("DELETE FROM import_area WHERE id = ?1", bind_id);
      return ApplyResult::Int(keys);
    }
    case Op::kImportAbort:
      if (next_seq < 0) return ApplyResult::Error(unknown);
      run("DELETE FROM import_row WHERE id = ?1", bind_id);
      run("DELETE FROM import_area WHERE id = ?1", bind_id);
      return ApplyResult::Ok();
    default:
      FLIN_CHECK(false) << "not an import op";
  }
  return ApplyResult::Ok();
}

ApplyResult KvStore::Apply(uint64_t index, const Command& cmd) {
  FLIN_CHECK(index > applied_index_) << "apply " << index << " after " << applied_index_;
  switch (cmd.op) {
    case Op::kFlushAll:
    case Op::kImportBegin:
    case Op::kImportAdd:
    case Op::kImportCommit:
    case Op::kImportAbort: {
      // These run SQL over SQLite's rows (and import_* tables), so SQLite
      // must hold the whole state first; the open transaction then holds
      // exactly the state after this entry. (FLUSHALL deletes every row:
      // buffered rows need not be written first, only dropped.) Readers see
      // the buffer plus committed state.db, and the buffer is now empty:
      // commit before anyone reads.
      DrainAll(/*drop_rows=*/cmd.op == Op::kFlushAll);
      BeginIfNeeded();
      applied_index_ = index;
      ApplyResult r = ApplyOp(cmd);
      Status s = CommitTxn(index);
      FLIN_CHECK(s.ok()) << "state.db commit failed: " << s.ToString();
      committed_index_ = index;
      ForgetCachedRows();
      return r;
    }
    case Op::kSweep:
      // Garbage collection of rows SQLite holds: an expired row is absent to
      // every read and every conditional write already, so deleting it
      // changes no visible state whether or not the buffer holds a newer
      // version of the key (that version wins). No drain, no commit of its
      // own: it rides with the next generation, and readers never wait for
      // it. Expired rows still in the buffer are swept once written out.
      BeginIfNeeded();
      applied_index_ = index;
      return ApplyOp(cmd);
    default:
      applied_index_ = index;
      return ApplyOp(cmd);
  }
}

ApplyResult KvStore::ApplyOp(const Command& cmd) {
  switch (cmd.op) {
    case Op::kNoop:
      return ApplyResult::Ok();
    case Op::kSet:
      return ApplySet(cmd);
    case Op::kMSet:
      return ApplyMSet(cmd);
    case Op::kDel: {
      int64_t n = 0;
      for (std::string_view k : cmd.args) n += DeleteKey(k, cmd.now_ms) ? 1 : 0;
      return ApplyResult::Int(n);
    }
    case Op::kExpire:
      return ApplyExpire(cmd);
    case Op::kPersist: {
      std::optional<int64_t> cur = LiveExpiry(cmd.args.at(0), cmd.now_ms, nullptr);
      if (!cur || *cur == 0) return ApplyResult::Int(0);
      SetExpiry(cmd.args[0], 0);
      return ApplyResult::Int(1);
    }
    case Op::kFlushAll:
      FLIN_CHECK(Exec("DELETE FROM kv").ok()) << sqlite3_errmsg(db_);
      return ApplyResult::Ok();
    case Op::kSweep: {
      StmtGuard g(sweep_);
      sqlite3_bind_int64(sweep_, 1, cmd.now_ms);
      sqlite3_bind_int64(sweep_, 2, cmd.arg);
      int64_t n = 0;
      int rc;
      while ((rc = sqlite3_step(sweep_)) == SQLITE_ROW) {
        n++;
        if (row_cache_->enabled()) swept_keys_.emplace_back(ColumnBlob(sweep_, 0));
      }
      FLIN_CHECK(rc == SQLITE_DONE) << SqlError("sweep").ToString();
      // Staging areas of abandoned imports go too (deterministic: entry time).
      sqlite3_stmt* s = nullptr;
      FLIN_CHECK(sqlite3_prepare_v2(db_,
                                    "DELETE FROM import_row WHERE id IN (SELECT id FROM "
                                    "import_area WHERE touched_ms < ?1)",
                                    -1, &s, nullptr) == SQLITE_OK);
      sqlite3_bind_int64(s, 1, cmd.now_ms - kImportIdleMs);
      FLIN_CHECK(sqlite3_step(s) == SQLITE_DONE);
      sqlite3_finalize(s);
      FLIN_CHECK(sqlite3_prepare_v2(db_, "DELETE FROM import_area WHERE touched_ms < ?1", -1, &s,
                                    nullptr) == SQLITE_OK);
      sqlite3_bind_int64(s, 1, cmd.now_ms - kImportIdleMs);
      FLIN_CHECK(sqlite3_step(s) == SQLITE_DONE);
      sqlite3_finalize(s);
      return ApplyResult::Int(n);
    }
    case Op::kImportBegin:
    case Op::kImportAdd:
    case Op::kImportCommit:
    case Op::kImportAbort:
      return ApplyImport(cmd);
  }
  return ApplyResult::Error("ERR unknown operation in log entry");
}

// ---- reads ----

Result<std::optional<KvStore::Item>> KvStore::Get(std::string_view key, int64_t now_ms) {
  if (auto p = FindPending(key)) {
    if (p->deleted || !Live(p->expires_at, now_ms)) return std::optional<Item>();
    return std::optional<Item>(Item{std::string(p->value), p->expires_at});
  }
  HoldReadTxn();
  StmtGuard g(get_);
  BindBlob(get_, 1, key);
  int rc = sqlite3_step(get_);
  if (rc == SQLITE_DONE) return std::optional<Item>();
  if (rc != SQLITE_ROW) return SqlError("GET");
  int64_t exp = ColumnExpiry(get_, 1);
  if (!Live(exp, now_ms)) return std::optional<Item>();
  return std::optional<Item>(Item{std::string(ColumnBlob(get_, 0)), exp});
}

Result<bool> KvStore::Exists(std::string_view key, int64_t now_ms) {
  if (auto p = FindPending(key)) return !p->deleted && Live(p->expires_at, now_ms);
  HoldReadTxn();
  StmtGuard g(get_);
  BindBlob(get_, 1, key);
  int rc = sqlite3_step(get_);
  if (rc == SQLITE_DONE) return false;
  if (rc != SQLITE_ROW) return SqlError("EXISTS");
  return Live(ColumnExpiry(get_, 1), now_ms);
}

Result<std::optional<int64_t>> KvStore::ExpiresAt(std::string_view key, int64_t now_ms) {
  if (auto p = FindPending(key)) {
    if (p->deleted || !Live(p->expires_at, now_ms)) return std::optional<int64_t>();
    return std::optional<int64_t>(p->expires_at);
  }
  HoldReadTxn();
  StmtGuard g(get_);
  BindBlob(get_, 1, key);
  int rc = sqlite3_step(get_);
  if (rc == SQLITE_DONE) return std::optional<int64_t>();
  if (rc != SQLITE_ROW) return SqlError("TTL");
  int64_t exp = ColumnExpiry(get_, 1);
  if (!Live(exp, now_ms)) return std::optional<int64_t>();
  return std::optional<int64_t>(exp);
}

// ---- point reads off the store mutex ----

KvStore::Reader::~Reader() {
  Release();
  for (sqlite3_stmt* st : {get_, has_expired_, begin_, pin_, commit_}) sqlite3_finalize(st);
  sqlite3_close(db_);
}

void KvStore::Reader::Release() {
  if (!open_) return;
  sqlite3_step(commit_);
  sqlite3_reset(commit_);
  open_ = false;
}

Result<std::unique_ptr<KvStore::Reader>> KvStore::OpenReader() {
  auto r = std::unique_ptr<Reader>(new Reader());
  auto prepare = [&](const char* sql, sqlite3_stmt** st) {
    return sqlite3_prepare_v2(r->db_, sql, -1, st, nullptr) == SQLITE_OK;
  };
  // Point reads now come through this connection: give it the page cache
  // the main connection has (SQLite's default, 2 MB, made GETs read most
  // pages from the OS again).
  std::string cache = "PRAGMA cache_size=-" + std::to_string(cache_bytes_ / 1024);
  if (sqlite3_open_v2(path_.c_str(), &r->db_, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK ||
      sqlite3_exec(r->db_, cache.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK ||
      !prepare("SELECT value, expires_at FROM kv WHERE key = ?1", &r->get_) ||
      !prepare("SELECT 1 FROM kv WHERE expires_at <= ?1 LIMIT 1", &r->has_expired_) ||
      !prepare("BEGIN", &r->begin_) || !prepare("SELECT 1 FROM meta LIMIT 1", &r->pin_) ||
      !prepare("COMMIT", &r->commit_)) {
    return Status::IOError(path_ + ": cannot open a reader connection: " +
                           (r->db_ ? sqlite3_errmsg(r->db_) : "out of memory"));
  }
  return r;
}

// A read stops copying values once they exceed the caller's budget (a
// reply that big would be refused anyway), instead of holding them all.
static Status ValueBudgetExceeded(const KvStore::PointRead& read) {
  return Status::Limit("values exceed " + std::to_string(read.max_value_bytes) + " bytes");
}

Status KvStore::PinRead(Reader& r, const std::vector<std::string_view>& keys, int64_t now_ms,
                        bool want_values, PointRead* out) {
  out->items.assign(keys.size(), std::nullopt);
  out->buffered.assign(keys.size(), 0);
  out->pinned = false;
  out->value_bytes = 0;
  auto take = [&](size_t i, bool live, std::string_view value, int64_t expires_at) {
    out->buffered[i] = 1;
    if (!live) return true;
    out->items[i] = Item{want_values ? std::string(value) : std::string(), expires_at};
    out->value_bytes += out->items[i]->value.size();
    return out->value_bytes <= out->max_value_bytes;
  };
  bool miss = false;
  for (size_t i = 0; i < keys.size(); ++i) {
    auto p = FindPending(keys[i]);
    if (!p) {
      miss = true;
      continue;
    }
    if (!take(i, !p->deleted && Live(p->expires_at, now_ms), p->value, p->expires_at)) {
      return ValueBudgetExceeded(*out);
    }
  }
  if (miss && row_cache_->enabled()) {
    // The cache holds committed rows: it answers for exactly the keys the
    // buffer does not shadow, with the state SQLite would give.
    miss = false;
    RowCache::Lock cache(*row_cache_);
    out->cache_generation = cache.generation();
    for (size_t i = 0; i < keys.size(); ++i) {
      if (out->buffered[i]) continue;
      auto c = cache.Find(keys[i]);
      if (!c) {
        miss = true;
        continue;
      }
      if (!take(i, c->present && Live(c->expires_at, now_ms), c->value, c->expires_at)) {
        return ValueBudgetExceeded(*out);
      }
    }
  }
  if (!miss) return Status::Ok();
  // The reader's read transaction must hold the committed state that goes
  // with the buffer as it is now: state.db as of committed_index_. One
  // begun since the last commit still does, and is kept (starting one per
  // read costs more than the lookup). Otherwise start one now, while the
  // buffer cannot change: a transaction starts at its first read. (A commit
  // racing with this is harmless: the buffer keeps a generation's rows until
  // its commit is over, and they equal what it committed.)
  if (r.open_ && r.index_ == committed_index_) {
    out->pinned = true;
    return Status::Ok();
  }
  r.Release();
  int rc = sqlite3_step(r.begin_);
  sqlite3_reset(r.begin_);
  if (rc == SQLITE_DONE) {
    r.open_ = true;
    rc = sqlite3_step(r.pin_);
    sqlite3_reset(r.pin_);
  }
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
    Status st = Status::IOError(std::string("read: ") + sqlite3_errmsg(r.db_));
    r.Release();
    return st;
  }
  r.index_ = committed_index_;
  out->pinned = true;
  return Status::Ok();
}

Status KvStore::FinishRead(Reader& r, const std::vector<std::string_view>& keys, int64_t now_ms,
                           bool want_values, PointRead* out) {
  if (!out->pinned) return Status::Ok();
  out->pinned = false;
  // Rows fetched here that the cache can answer for later: absent keys, and
  // live ones with their value (an expired row is left out: it would need
  // its value should the clock go back).
  std::vector<size_t> fills;
  for (size_t i = 0; i < keys.size(); ++i) {
    if (out->buffered[i]) continue;
    StmtGuard g(r.get_);
    BindBlob(r.get_, 1, keys[i]);
    int rc = sqlite3_step(r.get_);
    if (rc == SQLITE_ROW) {
      int64_t exp = ColumnExpiry(r.get_, 1);
      if (Live(exp, now_ms)) {
        out->items[i] = Item{want_values ? std::string(ColumnBlob(r.get_, 0)) : std::string(), exp};
        out->value_bytes += out->items[i]->value.size();
        if (out->value_bytes > out->max_value_bytes) return ValueBudgetExceeded(*out);
        if (want_values) fills.push_back(i);
      }
    } else if (rc == SQLITE_DONE) {
      fills.push_back(i);
    } else {
      Status st = Status::IOError(std::string("read: ") + sqlite3_errmsg(r.db_));
      r.Release();
      return st;
    }
  }
  if (!fills.empty() && row_cache_->enabled()) {
    RowCache::Lock cache(*row_cache_);
    for (size_t i : fills) {
      const auto& item = out->items[i];
      RowCache::Row row;
      if (item) row = RowCache::Row{true, item->expires_at, item->value};
      cache.Fill(out->cache_generation, keys[i], row);
    }
  }
  return Status::Ok();
}

Result<bool> KvStore::CommittedHasExpired(Reader& r, int64_t now_ms) {
  StmtGuard g(r.has_expired_);
  sqlite3_bind_int64(r.has_expired_, 1, now_ms);
  int rc = sqlite3_step(r.has_expired_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return Status::IOError(std::string("expiry check: ") + sqlite3_errmsg(r.db_));
}

// Looks at rows SQLite holds (the sweep's domain), not at the buffer.
Result<bool> KvStore::HasExpired(int64_t now_ms) {
  HoldReadTxn();
  StmtGuard g(has_expired_);
  sqlite3_bind_int64(has_expired_, 1, now_ms);
  int rc = sqlite3_step(has_expired_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return SqlError("expiry check");
}

// ---- snapshots: range reads on committed state ----

KvStore::Snapshot::~Snapshot() {
  for (sqlite3_stmt* st : {stmt_, scan_, count_}) sqlite3_finalize(st);
  if (db_) sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr);
  sqlite3_close(db_);
}

Result<std::unique_ptr<KvStore::Snapshot>> KvStore::OpenSnapshot(std::string_view prefix) {
  auto snap = std::unique_ptr<Snapshot>(new Snapshot());
  int rc = sqlite3_open_v2(path_.c_str(), &snap->db_, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) return Status::IOError(path_ + ": cannot open snapshot connection");
  // count(*) of the whole table walks the narrowest b-tree it can; the
  // expired rows are then counted through the partial expires_at index (a
  // live count with a WHERE on every row is ~3.5x slower on 1 M rows).
  if (sqlite3_prepare_v2(snap->db_,
                         "SELECT key, value, expires_at FROM kv WHERE key >= ?1 ORDER BY key "
                         "LIMIT ?2",
                         -1, &snap->stmt_, nullptr) != SQLITE_OK ||
      sqlite3_prepare_v2(snap->db_,
                         "SELECT key, expires_at FROM kv WHERE key >= ?1 ORDER BY key LIMIT ?2", -1,
                         &snap->scan_, nullptr) != SQLITE_OK ||
      sqlite3_prepare_v2(snap->db_,
                         "SELECT (SELECT count(*) FROM kv) - (SELECT count(*) FROM kv WHERE "
                         "expires_at IS NOT NULL AND expires_at <= ?1)",
                         -1, &snap->count_, nullptr) != SQLITE_OK) {
    return Status::IOError(path_ + ": snapshot: " + sqlite3_errmsg(snap->db_));
  }
  snap->prefix_.assign(prefix);
  FLIN_RETURN_IF_ERROR(snap->Begin());
  return snap;
}

Status KvStore::Snapshot::Begin() {
  // The read transaction (and so the snapshot) starts at the first read
  // after BEGIN; do that read now so later commits stay invisible.
  if (sqlite3_exec(db_, "BEGIN; SELECT count(*) FROM meta;", nullptr, nullptr, nullptr) !=
      SQLITE_OK) {
    return Status::IOError(std::string("snapshot: ") + sqlite3_errmsg(db_));
  }
  return Status::Ok();
}

Status KvStore::Snapshot::Refresh() {
  Release();
  return Begin();
}

void KvStore::Snapshot::Release() {
  if (sqlite3_get_autocommit(db_) == 0) sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr);
}

Status KvStore::Snapshot::ScanKeys(std::string_view after, std::string_view prefix, size_t limit,
                                   int64_t now_ms, std::vector<std::string>* keys,
                                   std::string* last, size_t* examined) {
  // "key > after" is "key >= after + \0" in byte order.
  std::string start(after);
  if (!after.empty()) start.push_back('\0');
  if (start < prefix) start.assign(prefix);
  StmtGuard g(scan_);
  BindBlob(scan_, 1, start);
  sqlite3_bind_int64(scan_, 2, static_cast<int64_t>(limit));
  *examined = 0;
  int rc;
  while ((rc = sqlite3_step(scan_)) == SQLITE_ROW) {
    std::string_view k = ColumnBlob(scan_, 0);
    if (k.substr(0, prefix.size()) != prefix) {
      *examined = limit + 1;  // past the prefix: the scan is complete
      break;
    }
    ++*examined;
    last->assign(k);
    if (Live(ColumnExpiry(scan_, 1), now_ms)) keys->emplace_back(k);
  }
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
    return Status::IOError(std::string("SCAN: ") + sqlite3_errmsg(db_));
  }
  return Status::Ok();
}

Result<int64_t> KvStore::Snapshot::CountLive(int64_t now_ms) {
  StmtGuard g(count_);
  sqlite3_bind_int64(count_, 1, now_ms);
  if (sqlite3_step(count_) != SQLITE_ROW) {
    return Status::IOError(std::string("DBSIZE: ") + sqlite3_errmsg(db_));
  }
  return sqlite3_column_int64(count_, 0);
}

Status KvStore::Snapshot::Next(size_t count, int64_t now_ms, std::vector<Row>* rows) {
  if (done_ || count == 0) return Status::Ok();
  std::string start = last_;
  if (started_) start.push_back('\0');
  if (start < prefix_) start = prefix_;
  started_ = true;
  sqlite3_reset(stmt_);
  BindBlob(stmt_, 1, start);
  sqlite3_bind_int64(stmt_, 2, static_cast<int64_t>(count));
  size_t seen = 0;
  int rc;
  while ((rc = sqlite3_step(stmt_)) == SQLITE_ROW) {
    std::string_view k = ColumnBlob(stmt_, 0);
    if (k.substr(0, prefix_.size()) != prefix_) {
      done_ = true;
      break;
    }
    ++seen;
    last_.assign(k);
    int64_t exp = ColumnExpiry(stmt_, 2);
    if (Live(exp, now_ms))
      rows->push_back(Row{std::string(k), std::string(ColumnBlob(stmt_, 1)), exp});
  }
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
    return Status::IOError(std::string("snapshot read: ") + sqlite3_errmsg(db_));
  }
  if (seen < count) done_ = true;
  sqlite3_reset(stmt_);
  return Status::Ok();
}

}  // namespace flin::store
