// RESP2, server side: the request parser flind runs over every byte a client
// sends, and the one reply layer command handlers write through.
//
// RequestParser follows Redis 7 (networking.c processMultibulkBuffer and
// processInlineBuffer, sds.c sdssplitargs) so that every Redis client, and
// every malformed input, behaves as it does against redis-server, including the
// error texts. It is incremental: when a command is incomplete it remembers how
// far it got, so a 500 MB bulk arriving in 4 KB reads or a million-argument
// command arriving slowly costs time linear in its size, not quadratic. On the
// multibulk path nothing is copied and nothing is allocated per argument: the
// arguments are string_views into the caller's buffer.
//
// ReplyWriter appends RESP2 replies to a std::string; handlers never format
// protocol by hand.
//
// Thread-safety: both classes are thread-compatible (one thread at a time per
// object); a connection owns its own parser.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace flin::net {

struct RequestLimits {
  size_t max_bulk_len = 512ull * 1024 * 1024;  // Redis proto-max-bulk-len
  size_t max_args = 1024 * 1024;               // Redis' multibulk cap
  size_t max_inline_len = 64 * 1024;           // Redis PROTO_INLINE_MAX_SIZE
  // Redis 7 caps requests from clients that still have to AUTH, so a stranger
  // cannot make the server buffer megabytes. Applied only while
  // set_authenticated(false).
  size_t unauth_max_args = 10;
  size_t unauth_max_bulk_len = 16 * 1024;
};

class RequestParser {
 public:
  explicit RequestParser(RequestLimits limits = {});

  RequestParser(const RequestParser&) = delete;
  RequestParser& operator=(const RequestParser&) = delete;

  enum class Result { kCommand, kIncomplete, kError };

  // Parses at most one command from the front of `data`, which must start at
  // the first byte the caller has not had consumed yet.
  //
  // kCommand: *consumed = bytes used (including any empty commands skipped
  //   before it); *args holds the arguments (at least one). They are
  //   string_views into `data`, or into parser-owned storage for inline
  //   arguments that needed unquoting; valid until the next Parse/Reset.
  //   Empty commands (an empty or all-blank inline line, "*0\r\n",
  //   "*-1\r\n") are skipped, as Redis does.
  // kIncomplete: more bytes are needed; *consumed = 0 and *args is empty. The
  //   caller keeps the bytes and calls again with the same prefix plus more
  //   data (the buffer may have moved in memory). The parser keeps its
  //   progress, so nothing is scanned twice. Empty commands skipped so far are
  //   consumed together with the next real command; they count against the
  //   caller's buffer limit meanwhile.
  // kError: error() is the Redis text without the leading "ERR ", e.g.
  //   "Protocol error: invalid multibulk length". The caller replies
  //   "-ERR <error()>" and closes the connection. The parser stays in the
  //   error state (every later Parse returns kError) until Reset().
  //
  // Precondition: after kIncomplete, `data` is at least as long as before.
  Result Parse(std::string_view data, size_t* consumed, std::vector<std::string_view>* args);

  const std::string& error() const { return error_; }

  // Forgets any partial command and the error state (a fresh connection).
  void Reset();

  // The TOTAL size `data` should have before the next call is worth making,
  // counted from the start of `data` as passed to Parse (the unconsumed bytes
  // already buffered are included; this is not the number still missing).
  // Known while the parser waits for the body of a bulk, so a reader can size
  // its buffer once instead of doing many small reads:
  //   buffer capacity >= max(BytesWanted(), buffered + min_read)
  // 0 if unknown (then read whatever arrives).
  size_t BytesWanted() const;
  // Convenience: how many more bytes must arrive after `buffered` (the size
  // of `data` at the last Parse) for BytesWanted() to be met; 0 if unknown or
  // already met.
  size_t BytesMissing(size_t buffered) const {
    size_t wanted = BytesWanted();
    return wanted > buffered ? wanted - buffered : 0;
  }

  // Redis 7 applies unauth_max_args / unauth_max_bulk_len to clients that
  // must still AUTH. Defaults to true (no extra caps).
  void set_authenticated(bool authenticated) { authenticated_ = authenticated; }
  bool authenticated() const { return authenticated_; }

  const RequestLimits& limits() const { return limits_; }

  // Bytes examined so far (line searches, number parsing, inline splitting);
  // bulk payloads are never examined. Lets tests assert that feeding a
  // command in many pieces costs linear, not quadratic, work.
  uint64_t bytes_scanned() const { return bytes_scanned_; }

  // The parser-owned storage inline arguments may point into (for checkers).
  std::string_view storage() const { return storage_; }

 private:
  enum class Phase {
    kStart,       // at the first byte of a command
    kInline,      // looking for the '\n' that ends an inline command
    kCount,       // looking for the '\r' that ends "*<n>"
    kBulkHeader,  // looking for the '\r' that ends "$<len>"
    kBulkBody,    // waiting for <len> bytes plus CRLF
  };
  // Where an argument lives: in the caller's data or in storage_.
  struct Span {
    size_t offset;
    size_t length;
    bool in_storage;
  };

  Result Fail(std::string message);
  // Searches from scan_ for `terminator` within the longest line the limits
  // allow (max_inline_len bytes after pos_); npos if absent. scan_ advances
  // so no byte is searched twice across calls.
  size_t FindLineEnd(std::string_view data, char terminator);
  // True when more than max_inline_len bytes follow pos_ (and no line end).
  bool LineTooLong(std::string_view data) const;
  // Splits data[begin, end) like sdssplitargs into spans_. False on
  // unbalanced quotes.
  bool SplitInline(std::string_view data, size_t begin, size_t end);
  void AddSpan(size_t offset, size_t length, bool in_storage) {
    if (span_count_ == spans_.size()) GrowSpans();
    spans_[span_count_++] = Span{offset, length, in_storage};
  }
  void GrowSpans();
  // Hands the finished command to the caller and readies the next one.
  void Emit(std::string_view data, size_t* consumed, std::vector<std::string_view>* args);

  RequestLimits limits_;
  bool authenticated_ = true;
  Phase phase_ = Phase::kStart;
  bool failed_ = false;
  size_t pos_ = 0;         // offset of the element being parsed
  size_t scan_ = 0;        // bytes before this offset were already searched
  int64_t remaining_ = 0;  // bulks still to read
  int64_t bulk_len_ = 0;
  // The current command's arguments are spans_[0, span_count_); spans_ only
  // grows (until a huge command), so adding an argument never allocates.
  std::vector<Span> spans_;
  size_t span_count_ = 0;
  std::string storage_;
  std::string error_;
  uint64_t bytes_scanned_ = 0;
};

// Appends RESP2 replies to a std::string it does not own (one reply layer:
// handlers never format protocol by hand). Status and error texts must be one
// line: CR and LF in them are replaced by spaces, as Redis does.
class ReplyWriter {
 public:
  explicit ReplyWriter(std::string* out) : out_(out) {}

  void Status(std::string_view s);  // +s\r\n
  // -s\r\n; s includes the prefix, e.g. "ERR unknown command 'x'".
  void Error(std::string_view s);
  void Integer(int64_t v);        // :v\r\n
  void Bulk(std::string_view s);  // $len\r\ns\r\n (binary safe)
  void Nil();                     // $-1\r\n
  void ArrayHeader(size_t n);     // *n\r\n
  void NilArray();                // *-1\r\n
  void Ok();                      // +OK\r\n
  std::string* out() { return out_; }

 private:
  void Line(char prefix, std::string_view s);

  std::string* out_;
};

}  // namespace flin::net
