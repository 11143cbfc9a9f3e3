// The client side of RESP2: the Reply value, request encoding, and an
// incremental reply parser. Kept apart from the sockets in net/client.cc so
// the wire format can be tested byte by byte without a server.
//
// Thread-safety: ReplyParser is thread-compatible (one thread at a time);
// EncodeCommand is a pure function.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace flin::client {

// A parsed RESP2 reply.
struct Reply {
  enum class Type { kStatus, kError, kInteger, kBulk, kNil, kArray, kNilArray };
  Type type = Type::kNil;
  std::string str;  // kStatus, kError, kBulk
  int64_t integer = 0;
  std::vector<Reply> elements;  // kArray

  bool is_nil() const { return type == Type::kNil || type == Type::kNilArray; }
  bool is_error() const { return type == Type::kError; }

  // Convenience constructors (tests, fakes).
  static Reply Status(std::string s);
  static Reply Error(std::string s);
  static Reply Integer(int64_t v);
  static Reply Bulk(std::string s);
  static Reply Nil();
  static Reply Array(std::vector<Reply> elements);
  static Reply NilArray();

  friend bool operator==(const Reply& a, const Reply& b);
};

// "status", "error", "integer", "bulk", "nil", "array", "nil-array".
const char* ReplyTypeName(Reply::Type type);
// A short readable rendering for error messages and test failures,
// e.g. `["a", nil, 3]`. Long strings are cut.
std::string DebugString(const Reply& reply);

// Appends the RESP2 multibulk encoding of one command to *out
// ("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"). Binary safe.
void EncodeCommand(const std::vector<std::string_view>& args, std::string* out);
void EncodeCommand(const std::vector<std::string>& args, std::string* out);

struct ReplyParserLimits {
  // A status/error/integer line or a length header longer than this without
  // a CRLF is rejected rather than buffered forever.
  size_t max_line = 1 << 20;
  int64_t max_bulk_len = int64_t{1} << 32;  // 4 GiB
  int64_t max_array_len = int64_t{1} << 32;
  size_t max_depth = 512;  // nesting of arrays
};

// Incremental RESP2 reply parser. Feed it bytes as they arrive and call
// Next() until it yields nothing; a partial reply is kept (arrays already
// parsed are not re-parsed, a partial bulk waits until its bytes are all
// buffered). Malformed input yields Status::Protocol naming what was wrong,
// after which the parser stays failed: the byte stream cannot be
// resynchronised.
class ReplyParser {
 public:
  explicit ReplyParser(ReplyParserLimits limits = {});

  void Feed(std::string_view bytes);
  // Zero-copy feeding for socket reads: write up to `n` bytes at the returned
  // pointer, then call CommitFeed with how many were written (before any
  // other call on the parser).
  char* PrepareFeed(size_t n);
  void CommitFeed(size_t n);

  // A complete reply, std::nullopt when more bytes are needed, or
  // Status::Protocol.
  Result<std::optional<Reply>> Next();

  // Bytes fed but not yet consumed by a complete reply.
  size_t buffered() const { return end_ - pos_; }
  // True when no reply is partially parsed and nothing is buffered.
  bool idle() const { return buffered() == 0 && stack_.empty(); }
  const Status& error() const { return error_; }

 private:
  struct Frame {
    Reply array;
    size_t remaining;
  };
  enum class Step { kNeedMore, kScalar, kArrayStarted };
  // Parses one reply header (and the payload of a bulk string) at pos_:
  // kScalar with *out set for a complete non-array reply (including empty
  // and nil arrays), kArrayStarted when a non-empty array header was pushed
  // onto stack_, kNeedMore when the bytes at pos_ are incomplete (pos_ is
  // left unchanged then).
  Result<Step> ParseOne(Reply* out);
  // The line at `at` without its CRLF, nullopt when the CRLF has not
  // arrived yet; *next is set past the CRLF.
  Result<std::optional<std::string_view>> ReadLine(size_t at, size_t* next);
  Status Fail(std::string msg);
  void Compact();

  ReplyParserLimits limits_;
  std::string buf_;  // bytes [pos_, end_) are fed and unconsumed
  size_t pos_ = 0;
  size_t end_ = 0;
  std::vector<Frame> stack_;
  Status error_;
};

}  // namespace flin::client
