// Binary encoding of Raft messages, entries, hard state and configuration
// changes: compact (LEB128 little-endian varints, length-prefixed strings),
// versioned by a leading byte. Decoders parse untrusted bytes from the
// network or disk: malformed input yields Status::Corruption, never a crash
// and never an allocation larger than the input justifies.
#pragma once

#include <string>
#include <string_view>

#include "base/status.h"
#include "raft/types.h"

namespace flin::raft {

// Appends the encoding to *out.
void EncodeMessage(const Message& m, std::string* out);
Status DecodeMessage(std::string_view in, Message* m);

void EncodeEntry(const Entry& e, std::string* out);
Status DecodeEntry(std::string_view in, Entry* e);

void EncodeHardState(const HardState& hs, std::string* out);
Status DecodeHardState(std::string_view in, HardState* hs);

void EncodeConfState(const ConfState& cs, std::string* out);
Status DecodeConfState(std::string_view in, ConfState* cs);

void EncodeSnapshotMeta(const SnapshotMeta& meta, std::string* out);
Status DecodeSnapshotMeta(std::string_view in, SnapshotMeta* meta);

// The payload of a kConfChange entry.
std::string EncodeConfChange(const ConfChange& cc);
Status DecodeConfChange(std::string_view in, ConfChange* cc);

}  // namespace flin::raft
