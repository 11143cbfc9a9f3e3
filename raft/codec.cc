#include "raft/codec.h"

#include <algorithm>

namespace flin::raft {
namespace {

constexpr uint8_t kVersion = 1;
// Flag bits of a message.
constexpr uint8_t kFlagReject = 1;
constexpr uint8_t kFlagForce = 2;
constexpr uint8_t kFlagSnapshotLast = 4;

void PutVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

void PutBytes(std::string_view s, std::string* out) {
  PutVarint(s.size(), out);
  out->append(s);
}

// A bounds-checked cursor over untrusted input. Every getter returns false
// (and leaves the reader failed) instead of reading past the end.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}

  bool Varint(uint64_t* v) {
    uint64_t result = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= in_.size()) return false;
      uint8_t byte = static_cast<uint8_t>(in_[pos_++]);
      if (shift == 63 && byte > 1) return false;  // overflows 64 bits
      result |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) {
        *v = result;
        return true;
      }
    }
    return false;
  }
  bool Byte(uint8_t* b) {
    if (pos_ >= in_.size()) return false;
    *b = static_cast<uint8_t>(in_[pos_++]);
    return true;
  }
  bool Bytes(std::string* s) {
    uint64_t n;
    if (!Varint(&n) || n > remaining()) return false;
    s->assign(in_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  size_t remaining() const { return in_.size() - pos_; }
  bool done() const { return pos_ == in_.size(); }

 private:
  std::string_view in_;
  size_t pos_ = 0;
};

Status Bad(const char* what) { return Status::Corruption(std::string("raft codec: ") + what); }

void PutEntry(const Entry& e, std::string* out) {
  PutVarint(e.term, out);
  PutVarint(e.index, out);
  out->push_back(static_cast<char>(e.type));
  PutBytes(e.data, out);
}

bool GetEntry(Reader* r, Entry* e) {
  uint8_t type;
  if (!r->Varint(&e->term) || !r->Varint(&e->index) || !r->Byte(&type)) {
    return false;
  }
  if (type > static_cast<uint8_t>(EntryType::kNoop)) return false;
  e->type = static_cast<EntryType>(type);
  return r->Bytes(&e->data);
}

void PutIds(const std::vector<NodeId>& ids, std::string* out) {
  PutVarint(ids.size(), out);
  for (NodeId id : ids) PutVarint(id, out);
}

bool GetIds(Reader* r, std::vector<NodeId>* ids) {
  uint64_t n;
  // Each id takes at least one byte: a count beyond the input is garbage.
  if (!r->Varint(&n) || n > r->remaining()) return false;
  ids->clear();
  ids->reserve(n);
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t id;
    if (!r->Varint(&id) || id == kNoNode) return false;
    ids->push_back(id);
  }
  return std::is_sorted(ids->begin(), ids->end()) &&
         std::adjacent_find(ids->begin(), ids->end()) == ids->end();
}

void PutConfState(const ConfState& cs, std::string* out) {
  PutIds(cs.voters, out);
  PutIds(cs.learners, out);
}

bool GetConfState(Reader* r, ConfState* cs) {
  return GetIds(r, &cs->voters) && GetIds(r, &cs->learners);
}

void PutMeta(const SnapshotMeta& meta, std::string* out) {
  PutVarint(meta.index, out);
  PutVarint(meta.term, out);
  PutConfState(meta.conf, out);
}

bool GetMeta(Reader* r, SnapshotMeta* meta) {
  return r->Varint(&meta->index) && r->Varint(&meta->term) && GetConfState(r, &meta->conf);
}

}  // namespace

void EncodeMessage(const Message& m, std::string* out) {
  out->push_back(static_cast<char>(kVersion));
  out->push_back(static_cast<char>(m.type));
  PutVarint(m.from, out);
  PutVarint(m.to, out);
  PutVarint(m.term, out);
  PutVarint(m.log_term, out);
  PutVarint(m.index, out);
  PutVarint(m.commit, out);
  uint8_t flags = (m.reject ? kFlagReject : 0) | (m.force ? kFlagForce : 0) |
                  (m.snapshot_last ? kFlagSnapshotLast : 0);
  out->push_back(static_cast<char>(flags));
  PutVarint(m.reject_hint, out);
  PutVarint(m.read_seq, out);
  PutBytes(m.context, out);
  PutVarint(m.entries.size(), out);
  for (const Entry& e : m.entries) PutEntry(e, out);
  if (m.type == MessageType::kSnapshot) {
    PutMeta(m.snapshot, out);
    PutVarint(m.snapshot_offset, out);
    PutBytes(m.snapshot_data, out);
  }
}

Status DecodeMessage(std::string_view in, Message* m) {
  Reader r(in);
  uint8_t version, type, flags;
  if (!r.Byte(&version)) return Bad("empty message");
  if (version != kVersion) return Bad("unknown message version");
  if (!r.Byte(&type)) return Bad("truncated message");
  if (type < 1 || type > kMaxMessageType) return Bad("unknown message type");
  *m = Message();
  m->type = static_cast<MessageType>(type);
  if (!r.Varint(&m->from) || !r.Varint(&m->to) || !r.Varint(&m->term) || !r.Varint(&m->log_term) ||
      !r.Varint(&m->index) || !r.Varint(&m->commit) || !r.Byte(&flags) ||
      !r.Varint(&m->reject_hint) || !r.Varint(&m->read_seq) || !r.Bytes(&m->context)) {
    return Bad("truncated message header");
  }
  if (flags & ~(kFlagReject | kFlagForce | kFlagSnapshotLast)) {
    return Bad("unknown message flags");
  }
  m->reject = flags & kFlagReject;
  m->force = flags & kFlagForce;
  m->snapshot_last = flags & kFlagSnapshotLast;
  uint64_t n;
  // An entry takes at least 4 bytes, which bounds a garbage count.
  if (!r.Varint(&n) || n > r.remaining() / 4) return Bad("bad entry count");
  m->entries.resize(n);
  for (uint64_t i = 0; i < n; ++i) {
    if (!GetEntry(&r, &m->entries[i])) return Bad("truncated entry");
  }
  if (m->type == MessageType::kSnapshot) {
    if (!GetMeta(&r, &m->snapshot) || !r.Varint(&m->snapshot_offset) ||
        !r.Bytes(&m->snapshot_data)) {
      return Bad("truncated snapshot chunk");
    }
  }
  if (!r.done()) return Bad("trailing bytes after message");
  return Status::Ok();
}

void EncodeEntry(const Entry& e, std::string* out) { PutEntry(e, out); }

Status DecodeEntry(std::string_view in, Entry* e) {
  Reader r(in);
  if (!GetEntry(&r, e)) return Bad("truncated entry");
  if (!r.done()) return Bad("trailing bytes after entry");
  return Status::Ok();
}

void EncodeHardState(const HardState& hs, std::string* out) {
  PutVarint(hs.term, out);
  PutVarint(hs.vote, out);
  PutVarint(hs.commit, out);
}

Status DecodeHardState(std::string_view in, HardState* hs) {
  Reader r(in);
  if (!r.Varint(&hs->term) || !r.Varint(&hs->vote) || !r.Varint(&hs->commit)) {
    return Bad("truncated hard state");
  }
  if (!r.done()) return Bad("trailing bytes after hard state");
  return Status::Ok();
}

void EncodeConfState(const ConfState& cs, std::string* out) { PutConfState(cs, out); }

Status DecodeConfState(std::string_view in, ConfState* cs) {
  Reader r(in);
  if (!GetConfState(&r, cs)) return Bad("malformed configuration");
  if (!r.done()) return Bad("trailing bytes after configuration");
  return Status::Ok();
}

void EncodeSnapshotMeta(const SnapshotMeta& meta, std::string* out) { PutMeta(meta, out); }

Status DecodeSnapshotMeta(std::string_view in, SnapshotMeta* meta) {
  Reader r(in);
  if (!GetMeta(&r, meta)) return Bad("malformed snapshot meta");
  if (!r.done()) return Bad("trailing bytes after snapshot meta");
  return Status::Ok();
}

std::string EncodeConfChange(const ConfChange& cc) {
  std::string out;
  out.push_back(static_cast<char>(cc.type));
  PutVarint(cc.node, &out);
  // Optional trailing context, so entries without one stay two fields long.
  if (!cc.context.empty()) PutBytes(cc.context, &out);
  return out;
}

Status DecodeConfChange(std::string_view in, ConfChange* cc) {
  Reader r(in);
  uint8_t type;
  if (!r.Byte(&type) || type > static_cast<uint8_t>(ConfChangeType::kRemoveNode)) {
    return Bad("bad conf change type");
  }
  cc->type = static_cast<ConfChangeType>(type);
  if (!r.Varint(&cc->node) || cc->node == kNoNode) {
    return Bad("bad conf change node");
  }
  cc->context.clear();
  if (!r.done() && !r.Bytes(&cc->context)) return Bad("malformed conf change context");
  if (!r.done()) return Bad("trailing bytes after conf change");
  return Status::Ok();
}

}  // namespace flin::raft
