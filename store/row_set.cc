#include "store/row_set.h"

#include <algorithm>
#include <cstring>
#include <functional>

#include "base/check.h"

namespace flin::store {

struct RowSet::Record {
  uint32_t key_len;
  uint32_t value_len;
  int64_t expires_at;
  bool deleted;
  const char* data() const { return reinterpret_cast<const char*>(this + 1); }
  char* data() { return reinterpret_cast<char*>(this + 1); }
  std::string_view key() const { return {data(), key_len}; }
};

namespace {
constexpr size_t kChunkBytes = 1 << 20;
constexpr size_t kAlign = alignof(std::max_align_t);
// Rows fetched ahead of the one being read when walking rows out of arena
// order: enough misses in flight to hide memory latency.
constexpr size_t kPrefetchAhead = 16;
// A row's header and the start of its key (the part Sort reads).
void PrefetchRow(const void* rec) {
  if (!rec) return;
  __builtin_prefetch(rec);
  __builtin_prefetch(static_cast<const char*>(rec) + 64);
}
}  // namespace

uint64_t RowSet::Hash(std::string_view key) { return std::hash<std::string_view>{}(key); }

RowSet::Row RowSet::ToRow(const Record* r) {
  return Row{r->key(), std::string_view(r->data() + r->key_len, r->value_len), r->expires_at,
             r->deleted};
}

RowSet::Record* RowSet::Append(std::string_view key, std::string_view value, int64_t expires_at,
                               bool deleted) {
  FLIN_CHECK(key.size() <= UINT32_MAX && value.size() <= UINT32_MAX);
  size_t need = (sizeof(Record) + key.size() + value.size() + kAlign - 1) & ~(kAlign - 1);
  if (need > cur_left_) {
    // Rows bigger than a chunk get a chunk of their own.
    size_t size = std::max(need, kChunkBytes);
    chunks_.emplace_back(new char[size]);
    cur_ = chunks_.back().get();
    cur_left_ = size;
    arena_bytes_ += size;
  }
  auto* r = reinterpret_cast<Record*>(cur_);
  r->key_len = static_cast<uint32_t>(key.size());
  r->value_len = static_cast<uint32_t>(value.size());
  r->expires_at = expires_at;
  r->deleted = deleted;
  if (!key.empty()) std::memcpy(r->data(), key.data(), key.size());
  if (!value.empty()) std::memcpy(r->data() + key.size(), value.data(), value.size());
  cur_ += need;
  cur_left_ -= need;
  return r;
}

void RowSet::Grow() {
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(old.empty() ? 1024 : old.size() * 2, Slot{});
  size_t mask = slots_.size() - 1;
  for (const Slot& s : old) {
    if (!s.rec) continue;
    size_t i = s.hash & mask;
    while (slots_[i].rec) i = (i + 1) & mask;
    slots_[i] = s;
  }
}

void RowSet::Put(std::string_view key, std::string_view value, int64_t expires_at, bool deleted) {
  FLIN_CHECK(order_.empty()) << "RowSet::Put while being read in order";
  if ((count_ + 1) * 2 > slots_.size()) Grow();
  uint64_t h = Hash(key);
  size_t mask = slots_.size() - 1;
  size_t i = h & mask;
  while (slots_[i].rec && !(slots_[i].hash == h && slots_[i].rec->key() == key)) {
    i = (i + 1) & mask;
  }
  if (!slots_[i].rec) ++count_;
  slots_[i] = Slot{h, Append(key, value, expires_at, deleted)};
}

std::optional<RowSet::Row> RowSet::Find(std::string_view key) const {
  if (count_ == 0) return std::nullopt;
  uint64_t h = Hash(key);
  size_t mask = slots_.size() - 1;
  for (size_t i = h & mask; slots_[i].rec; i = (i + 1) & mask) {
    if (slots_[i].hash == h && slots_[i].rec->key() == key) return ToRow(slots_[i].rec);
  }
  return std::nullopt;
}

void RowSet::Prefetch(const std::vector<std::string_view>& keys, size_t first,
                      size_t stride) const {
  if (slots_.empty()) return;
  size_t mask = slots_.size() - 1;
  for (size_t k = first; k < keys.size(); k += stride) {
    __builtin_prefetch(&slots_[Hash(keys[k]) & mask]);
  }
  for (size_t k = first; k < keys.size(); k += stride) {
    uint64_t h = Hash(keys[k]);
    const Slot& s = slots_[h & mask];
    if (s.rec && s.hash == h) __builtin_prefetch(s.rec);
  }
}

void RowSet::Sort() {
  if (order_.empty() && count_ > 0 && next_ == 0) {
    // Sorting pointers compares keys through a cache miss each time (about
    // a second for 1.5 M rows, all of it stalling applies and readers).
    // Sorting the keys' first 16 bytes as two big-endian integers held in
    // the array itself needs the rows only to break ties.
    struct Item {
      uint64_t hi, lo;
      const Record* rec;
    };
    auto prefix = [](std::string_view k, size_t at) {
      uint64_t v = 0;
      for (size_t i = 0; i < 8; ++i) {
        v = (v << 8) | (at + i < k.size() ? static_cast<unsigned char>(k[at + i]) : 0);
      }
      return v;
    };
    std::vector<Item> items;
    items.reserve(count_);
    // The slots point at rows all over the arena: each read of a key is a
    // cache miss (89% of this function in a profile, a quarter of a
    // follower's CPU under MSET load). Prefetching rows a few slots ahead
    // lets those misses overlap instead of queueing.
    const size_t n = slots_.size();
    for (size_t i = 0; i < n; ++i) {
      if (i + kPrefetchAhead < n) PrefetchRow(slots_[i + kPrefetchAhead].rec);
      const Record* r = slots_[i].rec;
      if (r) items.push_back(Item{prefix(r->key(), 0), prefix(r->key(), 8), r});
    }
    // Zero padding makes "ab" and "ab\0" tie on the prefix; the full key
    // compare orders them (shorter first), as it does every other tie.
    std::sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
      if (a.hi != b.hi) return a.hi < b.hi;
      if (a.lo != b.lo) return a.lo < b.lo;
      return a.rec->key() < b.rec->key();
    });
    std::vector<const Record*> order;
    order.reserve(count_);
    for (const Item& it : items) order.push_back(it.rec);
    order_ = std::move(order);
  }
}

bool RowSet::NextInOrder(size_t max_rows, std::vector<Row>* out) {
  Sort();
  // Key order is arena order only by chance: prefetch as Sort does.
  for (size_t n = 0; n < max_rows && next_ < order_.size(); ++n) {
    if (next_ + kPrefetchAhead < order_.size()) PrefetchRow(order_[next_ + kPrefetchAhead]);
    out->push_back(ToRow(order_[next_++]));
  }
  return next_ < order_.size();
}

void RowSet::Clear() { *this = RowSet(); }

void RowSet::ForEachKey(const std::function<void(std::string_view)>& fn) const {
  for (const Slot& s : slots_) {
    if (s.rec) fn(s.rec->key());
  }
}

}  // namespace flin::store
