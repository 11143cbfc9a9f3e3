// RowSet: one generation of KvStore's write buffer. Holds the newest state
// of each key written since the generation began (a value with its expiry,
// or a deletion) and hands the rows out in key order for writing to SQLite.
//
// Why not std::map / std::unordered_map: with a million buffered keys each
// insert into a node-based container costs a few cache misses plus three
// allocations (node, key, value), and that was most of an MSET's CPU. Here a
// row is appended to an arena of large chunks (no allocation per row), and
// an open-addressing table of (hash, row) pairs finds it: one probe into a
// compact array. Overwriting a key appends a new row and repoints the slot;
// the old bytes stay in the arena until Clear(), and count in bytes(), so a
// key rewritten a million times is bounded like a million keys.
//
// Thread-compatible.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

namespace flin::store {

class RowSet {
 public:
  struct Row {
    std::string_view key, value;  // point into the arena: valid until Clear()
    int64_t expires_at = 0;       // 0 = no expiry
    bool deleted = false;
  };

  RowSet() = default;
  RowSet(RowSet&&) noexcept = default;
  RowSet& operator=(RowSet&&) noexcept = default;
  RowSet(const RowSet&) = delete;
  RowSet& operator=(const RowSet&) = delete;

  // Records the newest state of `key` (copies the bytes).
  void Put(std::string_view key, std::string_view value, int64_t expires_at, bool deleted);
  // The newest state of `key`, if this set has one.
  std::optional<Row> Find(std::string_view key) const;
  // Hints that `keys` are about to be Put: each Put of a large set waits on
  // two cache misses (its table slot, then an old row's key to compare), so
  // a batch first starts all slot loads, then all row loads, and the misses
  // overlap instead of queueing.
  void Prefetch(const std::vector<std::string_view>& keys, size_t first, size_t stride) const;

  bool empty() const { return count_ == 0; }
  size_t size() const { return count_; }  // distinct keys
  // Memory held: arena chunks plus the table.
  size_t bytes() const { return arena_bytes_ + slots_.size() * sizeof(Slot); }

  // Key-ordered reading for the flush: Sort() (or the first NextInOrder)
  // sorts the distinct keys; each NextInOrder call appends up to `max_rows`
  // rows to *out and returns false once every row has been handed out. No
  // Put() may happen between the sort and Clear(). Sort() reads the rows and
  // writes only the order, so Find() calls may run alongside it.
  void Sort();
  bool sorted() const { return count_ == 0 || !order_.empty(); }
  bool NextInOrder(size_t max_rows, std::vector<Row>* out);
  // Rows not yet handed out by NextInOrder.
  size_t unread() const { return count_ - next_; }

  // Calls fn(key) for each distinct key, in no particular order.
  void ForEachKey(const std::function<void(std::string_view)>& fn) const;

  // Drops every row and frees the arena.
  void Clear();

 private:
  struct Record;  // header, then key bytes, then value bytes
  struct Slot {
    uint64_t hash = 0;
    Record* rec = nullptr;
  };
  static uint64_t Hash(std::string_view key);
  static Row ToRow(const Record* r);
  Record* Append(std::string_view key, std::string_view value, int64_t expires_at, bool deleted);
  void Grow();

  std::vector<std::unique_ptr<char[]>> chunks_;
  char* cur_ = nullptr;  // free space in the last chunk
  size_t cur_left_ = 0;
  size_t arena_bytes_ = 0;
  std::vector<Slot> slots_;  // power-of-two size, at most half full
  size_t count_ = 0;
  std::vector<const Record*> order_;  // built by the first NextInOrder
  size_t next_ = 0;
};

}  // namespace flin::store
