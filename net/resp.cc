#include "net/resp.h"

#include <algorithm>
#include <charconv>
#include <cstring>

#include "base/check.h"

namespace flin::net {
namespace {

constexpr size_t kNpos = std::string_view::npos;
// A command's span list is kept between commands to avoid allocating, but not
// when one huge command made it big: that memory would sit idle per client.
constexpr size_t kMaxRetainedSpans = 64 * 1024;
// Initial room for a multibulk's arguments: a hostile "*1000000\r\n" must not
// make us allocate for a million arguments before any of them arrives.
constexpr size_t kInitialSpans = 1024;

// isspace() in the C locale, without the locale lookup.
bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

// What ends an unquoted inline argument (sdssplitargs; it also stops at NUL
// because it works on C strings, but NUL is ordinary data here).
bool IsTokenEnd(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Redis' string2ll: optional '-', no '+', no leading zeros, no spaces, "-0"
// rejected, 64-bit range. Matching it exactly keeps "$03" and "*+1" the
// protocol errors they are in Redis.
bool ParseRedisInt(std::string_view s, int64_t* out) {
  if (s.empty() || s.size() > 20) return false;
  if (s.size() == 1 && s[0] == '0') {
    *out = 0;
    return true;
  }
  size_t i = 0;
  bool negative = false;
  if (s[0] == '-') {
    negative = true;
    i = 1;
    if (s.size() == 1) return false;
  }
  if (s[i] < '1' || s[i] > '9') return false;
  uint64_t v = 0;
  const uint64_t limit = negative ? uint64_t{1} << 63 : (uint64_t{1} << 63) - 1;
  for (; i < s.size(); ++i) {
    char c = s[i];
    if (c < '0' || c > '9') return false;
    uint64_t digit = static_cast<uint64_t>(c - '0');
    if (v > (limit - digit) / 10) return false;
    v = v * 10 + digit;
  }
  *out = negative ? static_cast<int64_t>(0 - v) : static_cast<int64_t>(v);
  return true;
}

}  // namespace

RequestParser::RequestParser(RequestLimits limits) : limits_(limits) {}

void RequestParser::Reset() {
  phase_ = Phase::kStart;
  failed_ = false;
  pos_ = 0;
  scan_ = 0;
  remaining_ = 0;
  bulk_len_ = 0;
  span_count_ = 0;
  storage_.clear();
  error_.clear();
}

size_t RequestParser::BytesWanted() const {
  if (phase_ != Phase::kBulkBody) return 0;
  return pos_ + static_cast<size_t>(bulk_len_) + 2;
}

RequestParser::Result RequestParser::Fail(std::string message) {
  // The text goes on the wire as one error line (the byte after "got '" is
  // client data): keep it one line, as Redis' addReplyErrorFormat does.
  for (char& c : message) {
    if (c == '\r' || c == '\n') c = ' ';
  }
  error_ = std::move(message);
  failed_ = true;
  return Result::kError;
}

size_t RequestParser::FindLineEnd(std::string_view data, char terminator) {
  // No valid line is longer than max_inline_len, so never look further: a
  // megabyte of garbage costs one bounded scan, not a megabyte one.
  size_t limit = pos_ + limits_.max_inline_len + 1;
  if (limit < pos_) limit = kNpos;  // max_inline_len near SIZE_MAX
  const size_t end = std::min(data.size(), limit);
  if (scan_ >= end) return kNpos;
  const void* hit = std::memchr(data.data() + scan_, terminator, end - scan_);
  if (hit == nullptr) {
    bytes_scanned_ += end - scan_;
    scan_ = end;
    return kNpos;
  }
  size_t at = static_cast<size_t>(static_cast<const char*>(hit) - data.data());
  bytes_scanned_ += at - scan_ + 1;
  // Stay on the terminator: when the byte after a '\r' has not arrived yet,
  // the next call finds it again at the cost of one byte.
  scan_ = at;
  return at;
}

bool RequestParser::LineTooLong(std::string_view data) const {
  return data.size() - pos_ > limits_.max_inline_len;
}

RequestParser::Result RequestParser::Parse(std::string_view data, size_t* consumed,
                                           std::vector<std::string_view>* args) {
  *consumed = 0;
  args->clear();
  if (failed_) return Result::kError;
  FLIN_CHECK(data.size() >= pos_) << "RequestParser::Parse: data shrank from " << pos_ << " to "
                                  << data.size() << " bytes after kIncomplete";
  const size_t size = data.size();
  for (;;) {
    switch (phase_) {
      case Phase::kStart:
        if (pos_ >= size) return Result::kIncomplete;
        scan_ = pos_;
        phase_ = data[pos_] == '*' ? Phase::kCount : Phase::kInline;
        break;

      case Phase::kInline: {
        size_t nl = FindLineEnd(data, '\n');
        if (nl == kNpos) {
          if (LineTooLong(data)) return Fail("Protocol error: too big inline request");
          return Result::kIncomplete;
        }
        size_t end = nl;
        if (end > pos_ && data[end - 1] == '\r') --end;
        if (!SplitInline(data, pos_, end)) {
          return Fail("Protocol error: unbalanced quotes in request");
        }
        pos_ = nl + 1;
        if (span_count_ == 0) {  // blank line: Redis skips it
          phase_ = Phase::kStart;
          break;
        }
        Emit(data, consumed, args);
        return Result::kCommand;
      }

      case Phase::kCount: {
        size_t cr = FindLineEnd(data, '\r');
        if (cr == kNpos) {
          if (LineTooLong(data)) return Fail("Protocol error: too big mbulk count string");
          return Result::kIncomplete;
        }
        if (cr + 1 >= size) return Result::kIncomplete;
        int64_t n = 0;
        std::string_view digits = data.substr(pos_ + 1, cr - pos_ - 1);
        bytes_scanned_ += digits.size();
        // Redis trusts the byte after '\r' to be '\n'; a desynchronised
        // stream is better stopped here.
        if (data[cr + 1] != '\n' || !ParseRedisInt(digits, &n) ||
            (n > 0 && static_cast<uint64_t>(n) > limits_.max_args)) {
          return Fail("Protocol error: invalid multibulk length");
        }
        if (!authenticated_ && n > 0 && static_cast<uint64_t>(n) > limits_.unauth_max_args) {
          return Fail("Protocol error: unauthenticated multibulk length");
        }
        pos_ = cr + 2;
        if (n <= 0) {  // "*0" and "*-1" are empty commands: Redis skips them
          phase_ = Phase::kStart;
          break;
        }
        remaining_ = n;
        span_count_ = 0;
        if (spans_.size() < kInitialSpans) {
          spans_.resize(std::min(static_cast<size_t>(n), kInitialSpans));
        }
        scan_ = pos_;
        phase_ = Phase::kBulkHeader;
        break;
      }

      case Phase::kBulkHeader: {
        size_t cr = FindLineEnd(data, '\r');
        if (cr == kNpos) {
          if (LineTooLong(data)) return Fail("Protocol error: too big bulk count string");
          return Result::kIncomplete;
        }
        if (cr + 1 >= size) return Result::kIncomplete;
        if (data[pos_] != '$') {
          std::string message = "Protocol error: expected '$', got '";
          message += data[pos_];
          message += '\'';
          return Fail(std::move(message));
        }
        int64_t len = 0;
        std::string_view digits = data.substr(pos_ + 1, cr - pos_ - 1);
        bytes_scanned_ += digits.size();
        if (data[cr + 1] != '\n' || !ParseRedisInt(digits, &len) || len < 0 ||
            static_cast<uint64_t>(len) > limits_.max_bulk_len) {
          return Fail("Protocol error: invalid bulk length");
        }
        if (!authenticated_ && static_cast<uint64_t>(len) > limits_.unauth_max_bulk_len) {
          return Fail("Protocol error: unauthenticated bulk length");
        }
        bulk_len_ = len;
        pos_ = cr + 2;
        phase_ = Phase::kBulkBody;
        break;
      }

      case Phase::kBulkBody: {
        // The payload is never scanned: only its length and trailing CRLF
        // matter, so a huge bulk costs O(1) per call however it is split.
        const size_t len = static_cast<size_t>(bulk_len_);
        if (size - pos_ < len + 2) return Result::kIncomplete;
        if (data[pos_ + len] != '\r' || data[pos_ + len + 1] != '\n') {
          return Fail("Protocol error: expected CRLF after bulk");
        }
        AddSpan(pos_, len, false);
        pos_ += len + 2;
        if (--remaining_ == 0) {
          Emit(data, consumed, args);
          return Result::kCommand;
        }
        scan_ = pos_;
        phase_ = Phase::kBulkHeader;
        break;
      }
    }
  }
}

void RequestParser::Emit(std::string_view data, size_t* consumed,
                         std::vector<std::string_view>* args) {
  args->resize(span_count_);
  std::string_view* out = args->data();
  for (size_t i = 0; i < span_count_; ++i) {
    const Span& span = spans_[i];
    const char* base = span.in_storage ? storage_.data() : data.data();
    out[i] = std::string_view(base + span.offset, span.length);
  }
  *consumed = pos_;
  phase_ = Phase::kStart;
  pos_ = 0;
  scan_ = 0;
  remaining_ = 0;
  bulk_len_ = 0;
  span_count_ = 0;
  if (spans_.size() > kMaxRetainedSpans) std::vector<Span>().swap(spans_);
}

void RequestParser::GrowSpans() { spans_.resize(std::max<size_t>(16, spans_.size() * 2)); }

bool RequestParser::SplitInline(std::string_view data, size_t begin, size_t end) {
  span_count_ = 0;
  storage_.clear();
  bytes_scanned_ += end - begin;
  const char* s = data.data();
  size_t i = begin;
  for (;;) {
    while (i < end && IsSpace(s[i])) ++i;
    if (i == end) return true;

    // Most inline arguments have no quotes: point into the caller's data.
    const size_t start = i;
    while (i < end && !IsTokenEnd(s[i]) && s[i] != '"' && s[i] != '\'') ++i;
    if (i == end || IsTokenEnd(s[i])) {
      AddSpan(start, i - start, false);
      if (i < end) ++i;
      continue;
    }

    // A quote: unquote into storage_. Output never exceeds the line, so one
    // reservation covers every argument of the line.
    if (storage_.capacity() < end - begin) storage_.reserve(end - begin);
    const size_t out_start = storage_.size();
    storage_.append(s + start, i - start);
    bool in_double = false;
    bool in_single = false;
    for (bool done = false; !done;) {
      if (in_double) {
        if (i >= end) return false;
        const char c = s[i];
        if (c == '\\' && i + 3 < end && s[i + 1] == 'x' && HexValue(s[i + 2]) >= 0 &&
            HexValue(s[i + 3]) >= 0) {
          storage_.push_back(static_cast<char>(HexValue(s[i + 2]) * 16 + HexValue(s[i + 3])));
          i += 4;
        } else if (c == '\\' && i + 1 < end) {
          char e = s[i + 1];
          switch (e) {
            case 'n':
              e = '\n';
              break;
            case 'r':
              e = '\r';
              break;
            case 't':
              e = '\t';
              break;
            case 'b':
              e = '\b';
              break;
            case 'a':
              e = '\a';
              break;
            default:
              break;
          }
          storage_.push_back(e);
          i += 2;
        } else if (c == '"') {
          // The closing quote must be followed by a blank or the end.
          if (i + 1 < end && !IsSpace(s[i + 1])) return false;
          ++i;
          done = true;
        } else {
          storage_.push_back(c);
          ++i;
        }
      } else if (in_single) {
        if (i >= end) return false;
        const char c = s[i];
        if (c == '\\' && i + 1 < end && s[i + 1] == '\'') {
          storage_.push_back('\'');
          i += 2;
        } else if (c == '\'') {
          if (i + 1 < end && !IsSpace(s[i + 1])) return false;
          ++i;
          done = true;
        } else {
          storage_.push_back(c);
          ++i;
        }
      } else {
        if (i >= end) break;
        const char c = s[i];
        ++i;
        if (IsTokenEnd(c)) {
          done = true;
        } else if (c == '"') {
          in_double = true;
        } else if (c == '\'') {
          in_single = true;
        } else {
          storage_.push_back(c);
        }
      }
    }
    AddSpan(out_start, storage_.size() - out_start, true);
  }
}

void ReplyWriter::Line(char prefix, std::string_view s) {
  const size_t start = out_->size() + 1;
  out_->push_back(prefix);
  out_->append(s);
  char* p = out_->data();
  for (size_t i = start, n = out_->size(); i < n; ++i) {
    if (p[i] == '\r' || p[i] == '\n') p[i] = ' ';
  }
  out_->append("\r\n", 2);
}

template <typename Int>
static void AppendNumberLine(std::string* out, char prefix, Int v) {
  char buf[24];
  buf[0] = prefix;
  auto [end, ec] = std::to_chars(buf + 1, buf + sizeof(buf) - 2, v);
  end[0] = '\r';
  end[1] = '\n';
  out->append(buf, static_cast<size_t>(end + 2 - buf));
}

void ReplyWriter::Status(std::string_view s) { Line('+', s); }
void ReplyWriter::Error(std::string_view s) { Line('-', s); }
void ReplyWriter::Integer(int64_t v) { AppendNumberLine(out_, ':', v); }

void ReplyWriter::Bulk(std::string_view s) {
  AppendNumberLine(out_, '$', s.size());
  out_->append(s);
  out_->append("\r\n", 2);
}

void ReplyWriter::Nil() { out_->append("$-1\r\n", 5); }
void ReplyWriter::ArrayHeader(size_t n) { AppendNumberLine(out_, '*', n); }
void ReplyWriter::NilArray() { out_->append("*-1\r\n", 5); }
void ReplyWriter::Ok() { out_->append("+OK\r\n", 5); }

}  // namespace flin::net
