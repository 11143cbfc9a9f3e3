// The replicated write commands: what a client's write becomes before it is
// proposed, and how it is encoded into a log entry's payload.
//
// Determinism: every command carries `now_ms`, the proposer's wall clock at
// propose time. Apply uses it as "now" for expiry decisions (is this key
// live? is this EXPIRE in the past?) and never reads a clock, so every
// replica and every replay computes the same result (DESIGN.md "Storage").
//
// Encoding (little-endian): u8 version(=1) | u8 op | u32 flags | i64 now_ms |
// i64 arg | u32 argc | argc × (u32 len | bytes). A decoded Command's args are
// string_views into the payload, so decoding allocates only the vector.
// Thread-compatible value types.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace flin::store {

enum class Op : uint8_t {
  kNoop = 0,  // raft no-op / barrier
  kSet = 1,   // args: key value; arg: expire_at_ms (0 none); flags: kCond*, kKeepTtl, kGet
  kMSet =
      2,     // args: k v k v ...; arg: expire_at_ms; flags: kCondNx/kCondXx (all-or-none), kKeepTtl
  kDel = 3,  // args: keys; result: number of live keys deleted
  kExpire = 4,   // args: key; arg: expire_at_ms (<= now_ms deletes); flags: kExp*
  kPersist = 5,  // args: key
  kFlushAll = 6,
  kSweep = 7,         // arg: max keys; deletes keys with expires_at <= now_ms
  kImportAdd = 8,     // args: id, then (key value expire_at_ms-decimal) triples
  kImportCommit = 9,  // args: id
  kImportAbort = 10,  // args: id
  kImportBegin = 11,  // args: id
};

enum CommandFlags : uint32_t {
  kCondNx = 1u << 0,  // only if absent (MSET: only if all absent)
  kCondXx = 1u << 1,  // only if present (MSET: only if all present)
  kKeepTtl = 1u << 2,
  kGetOld = 1u << 3,  // SET ... GET: reply with the previous value
  kExpNx = 1u << 4,   // EXPIRE conditions (Redis 7)
  kExpXx = 1u << 5,
  kExpGt = 1u << 6,
  kExpLt = 1u << 7,
  kReplyInt = 1u << 8,  // MSET family: reply :1/:0 (MSETNX, MSETEX) instead of +OK
};

struct Command {
  Op op = Op::kNoop;
  uint32_t flags = 0;
  int64_t now_ms = 0;
  int64_t arg = 0;
  std::vector<std::string_view> args;
};

// Appends the encoding of `cmd` to *out.
void EncodeCommand(const Command& cmd, std::string* out);
// Size EncodeCommand will append (for batch-size limits before encoding).
size_t EncodedSize(const Command& cmd);
// Decodes `payload`; args point into payload. Corruption on malformed input.
Status DecodeCommand(std::string_view payload, Command* cmd);

// What applying a command produced; becomes the client's reply.
struct ApplyResult {
  enum class Kind : uint8_t { kOk, kInt, kNil, kBulk, kError };
  Kind kind = Kind::kOk;
  int64_t n = 0;
  std::string str;  // kBulk value, or kError text including its prefix ("ERR ...")

  static ApplyResult Ok() { return {}; }
  static ApplyResult Int(int64_t v) { return {Kind::kInt, v, {}}; }
  static ApplyResult Nil() { return {Kind::kNil, 0, {}}; }
  static ApplyResult Bulk(std::string s) { return {Kind::kBulk, 0, std::move(s)}; }
  static ApplyResult Error(std::string s) { return {Kind::kError, 0, std::move(s)}; }
};

}  // namespace flin::store
