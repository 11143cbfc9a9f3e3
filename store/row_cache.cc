#include "store/row_cache.h"

#include <cstring>
#include <functional>
#include <new>

namespace flin::store {

uint64_t RowCache::Hash(std::string_view key) { return std::hash<std::string_view>{}(key); }

size_t RowCache::FindSlot(std::string_view key, uint64_t hash) const {
  if (table_.empty()) return 0;
  size_t mask = table_.size() - 1;
  for (size_t i = hash & mask;; i = (i + 1) & mask) {
    const Slot& s = table_[i];
    if (!s.e) return table_.size();
    if (s.hash == hash && s.e->key() == key) return i;
  }
}

std::optional<RowCache::Row> RowCache::Lock::Find(std::string_view key) {
  RowCache& c = c_;
  size_t i = c.FindSlot(key, Hash(key));
  if (i >= c.table_.size()) {
    c.misses_++;
    return std::nullopt;
  }
  Entry* e = c.table_[i].e;
  e->referenced = true;
  c.hits_++;
  return Row{e->present, e->expires_at, e->value()};
}

void RowCache::Lock::Fill(uint64_t generation, std::string_view key, const Row& row) {
  RowCache& c = c_;
  if (!c.enabled() || generation != c.generation_) return;
  // One row may take at most 1/8 of the budget, so a few big values do not
  // push out everything else.
  if (key.size() + row.value.size() + kOverhead > c.budget_ / 8) return;
  c.EraseLocked(key);
  auto* e = static_cast<Entry*>(::operator new(sizeof(Entry) + key.size() + row.value.size()));
  uint64_t hash = Hash(key);
  *e = Entry{hash,
             static_cast<uint32_t>(key.size()),
             static_cast<uint32_t>(row.value.size()),
             row.expires_at,
             /*clock_pos=*/0,  // set below, once evictions have settled clock_
             row.present,
             false};
  char* d = reinterpret_cast<char*>(e + 1);
  if (!key.empty()) std::memcpy(d, key.data(), key.size());
  if (!row.value.empty()) std::memcpy(d + key.size(), row.value.data(), row.value.size());
  c.bytes_ += Cost(*e);
  while (c.bytes_ > c.budget_ && !c.clock_.empty()) c.EvictOne();
  if ((c.clock_.size() + 1) * 2 > c.table_.size()) c.Grow();
  e->clock_pos = static_cast<uint32_t>(c.clock_.size());
  c.clock_.push_back(e);
  size_t mask = c.table_.size() - 1;
  size_t i = hash & mask;
  while (c.table_[i].e) i = (i + 1) & mask;
  c.table_[i] = Slot{hash, e};
}

void RowCache::Grow() {
  std::vector<Slot> old = std::move(table_);
  table_.assign(old.empty() ? 1024 : old.size() * 2, Slot{});
  size_t mask = table_.size() - 1;
  for (const Slot& s : old) {
    if (!s.e) continue;
    size_t i = s.hash & mask;
    while (table_[i].e) i = (i + 1) & mask;
    table_[i] = s;
  }
}

void RowCache::EraseSlot(size_t slot) {
  Entry* e = table_[slot].e;
  // Backward-shift deletion: move later members of the probe run into the
  // hole, so lookups never need tombstones.
  size_t mask = table_.size() - 1;
  size_t hole = slot;
  for (size_t j = (slot + 1) & mask; table_[j].e; j = (j + 1) & mask) {
    size_t home = table_[j].hash & mask;
    // j may move into the hole unless its home lies cyclically in (hole, j].
    bool home_after_hole = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
    if (!home_after_hole) {
      table_[hole] = table_[j];
      hole = j;
    }
  }
  table_[hole] = Slot{};
  // Swap-remove from the clock ring.
  Entry* last = clock_.back();
  clock_[e->clock_pos] = last;
  last->clock_pos = e->clock_pos;
  clock_.pop_back();
  if (hand_ >= clock_.size()) hand_ = 0;
  bytes_ -= Cost(*e);
  ::operator delete(e);
}

void RowCache::EraseLocked(std::string_view key) {
  size_t i = FindSlot(key, Hash(key));
  if (i < table_.size()) EraseSlot(i);
}

void RowCache::EvictOne() {
  for (;;) {
    if (hand_ >= clock_.size()) hand_ = 0;
    Entry* e = clock_[hand_];
    if (e->referenced) {
      e->referenced = false;
      hand_++;
      continue;
    }
    // The hand stays: the swap-remove puts an unvisited entry here.
    EraseSlot(FindSlot(e->key(), e->hash));
    return;
  }
}

void RowCache::Invalidate() {
  std::lock_guard<std::mutex> lock(mu_);
  generation_++;
}

void RowCache::EraseOne(std::string_view key) {
  std::lock_guard<std::mutex> lock(mu_);
  EraseLocked(key);
}

void RowCache::FreeAll() {
  for (Entry* e : clock_) ::operator delete(e);
  clock_.clear();
  table_.clear();
  hand_ = 0;
  bytes_ = 0;
}

void RowCache::Clear() {
  std::vector<Entry*> old;
  {
    std::lock_guard<std::mutex> lock(mu_);
    generation_++;
    old.swap(clock_);
    std::vector<Slot>().swap(table_);
    hand_ = 0;
    bytes_ = 0;
  }
  // Freed outside the mutex: a big cache takes a while.
  for (Entry* e : old) ::operator delete(e);
}

RowCache::Stats RowCache::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return Stats{hits_, misses_, bytes_, clock_.size()};
}

}  // namespace flin::store
