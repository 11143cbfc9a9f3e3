// RowCache: rows of committed state.db that point reads looked up recently,
// kept in memory so that a repeated GET costs a hash probe instead of a
// B-tree descent. Profiles of GET -P 16 showed SQLite's lookup
// (sqlite3BtreeIndexMoveto and its key compares) as half the io thread.
//
// What it holds: for a key, what state.db as of KvStore::committed_index()
// holds for it (a value with its expiry, or "no row"). The write buffer
// shadows it, as it shadows SQLite: KvStore consults the cache only for keys
// the buffer does not hold. KvStore keeps the cache equal to committed state:
// - Keys a generation writes are erased before its commit becomes visible
//   through the cache (they are buffered until then, so no read sees the
//   cache's old copy meanwhile).
// - Commits that rewrite arbitrary rows (FLUSHALL, import, snapshot
//   install) clear it.
// - A fill (a row a reader fetched from SQLite, without the store mutex)
//   carries the generation number current when its read was pinned, and is
//   dropped if an invalidation has started since: otherwise a read pinned
//   before a commit could put the pre-commit row back after the erase.
//
// Bounded by a byte budget; rows not read for longest go first (CLOCK). Thread-safe
// (its own mutex, taken after the store mutex when both are held).
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace flin::store {

class RowCache {
 public:
  // budget_bytes 0 disables the cache.
  explicit RowCache(size_t budget_bytes) : budget_(budget_bytes) {}
  ~RowCache() { FreeAll(); }
  RowCache(const RowCache&) = delete;
  RowCache& operator=(const RowCache&) = delete;

  struct Row {
    bool present = false;  // false: state.db has no row for the key
    int64_t expires_at = 0;
    std::string_view value;  // valid while the lock is held
  };

  bool enabled() const { return budget_ > 0; }

  // Holds the cache's mutex; Find and Fill go through one.
  class Lock {
   public:
    explicit Lock(RowCache& c) : c_(c), lock_(c.mu_) {}
    // The number a read pinned now carries to Fill.
    uint64_t generation() const { return c_.generation_; }
    // Counts a hit or a miss.
    std::optional<Row> Find(std::string_view key);
    // Stores what a read pinned at `generation` fetched for `key`, unless an
    // invalidation started since (then it may be stale and is dropped).
    void Fill(uint64_t generation, std::string_view key, const Row& row);

   private:
    RowCache& c_;
    std::lock_guard<std::mutex> lock_;
  };

  // Starts an invalidation: fills of reads pinned before this are dropped.
  void Invalidate();
  // Erases keys (taking the mutex for a bounded run of keys at a time, so
  // readers are not held up by a big generation). Calls each(fn) where fn
  // is a callable taking a key.
  template <class Each>
  void Erase(const Each& each);
  void EraseOne(std::string_view key);
  // Drops everything (and starts an invalidation).
  void Clear();

  struct Stats {
    uint64_t hits = 0, misses = 0;
    size_t bytes = 0, rows = 0;
  };
  Stats stats() const;

 private:
  // One allocation per row: this header, then the key, then the value.
  struct Entry {
    uint64_t hash;
    uint32_t key_len, value_len;
    int64_t expires_at;
    uint32_t clock_pos;  // index in clock_
    bool present;
    bool referenced;  // used since the clock hand last passed
    const char* data() const { return reinterpret_cast<const char*>(this + 1); }
    std::string_view key() const { return {data(), key_len}; }
    std::string_view value() const { return {data() + key_len, value_len}; }
  };
  // Open addressing (linear probing, backward-shift erase) over (hash,
  // entry): a lookup touches one slot run and one entry. A node-based map
  // plus an LRU list took five cache misses per hit and was 40% of GET.
  struct Slot {
    uint64_t hash = 0;
    Entry* e = nullptr;
  };
  static size_t Cost(const Entry& e) { return e.key_len + e.value_len + kOverhead; }
  // Entry header, table slots, clock slot, allocator: roughly.
  static constexpr size_t kOverhead = sizeof(Entry) + 3 * sizeof(Slot) + sizeof(Entry*) + 16;
  static uint64_t Hash(std::string_view key);
  size_t FindSlot(std::string_view key, uint64_t hash) const;  // table_.size() if absent
  void EraseSlot(size_t slot);
  void EraseLocked(std::string_view key);
  void EvictOne();  // CLOCK: the first entry not referenced since the hand passed
  void Grow();
  void FreeAll();

  const size_t budget_;
  mutable std::mutex mu_;
  std::vector<Slot> table_;    // power-of-two size, at most half full
  std::vector<Entry*> clock_;  // every entry once, in no particular order
  size_t hand_ = 0;
  size_t bytes_ = 0;
  uint64_t generation_ = 0;
  uint64_t hits_ = 0, misses_ = 0;
};

template <class Each>
void RowCache::Erase(const Each& each) {
  if (!enabled()) return;
  constexpr size_t kRun = 4096;
  std::unique_lock<std::mutex> lock(mu_);
  // Nothing cached: nothing to erase, and no fill can bring back a key
  // being erased (Invalidate came first).
  if (clock_.empty()) return;
  size_t n = 0;
  each([&](std::string_view key) {
    if (++n % kRun == 0) {
      lock.unlock();
      lock.lock();
    }
    if (!clock_.empty()) EraseLocked(key);
  });
}

}  // namespace flin::store
