#include "net/reply_parser.h"

#include <cstring>

#include "base/strings.h"

namespace flin::client {

Reply Reply::Status(std::string s) {
  Reply r;
  r.type = Type::kStatus;
  r.str = std::move(s);
  return r;
}
Reply Reply::Error(std::string s) {
  Reply r;
  r.type = Type::kError;
  r.str = std::move(s);
  return r;
}
Reply Reply::Integer(int64_t v) {
  Reply r;
  r.type = Type::kInteger;
  r.integer = v;
  return r;
}
Reply Reply::Bulk(std::string s) {
  Reply r;
  r.type = Type::kBulk;
  r.str = std::move(s);
  return r;
}
Reply Reply::Nil() { return Reply(); }
Reply Reply::Array(std::vector<Reply> elements) {
  Reply r;
  r.type = Type::kArray;
  r.elements = std::move(elements);
  return r;
}
Reply Reply::NilArray() {
  Reply r;
  r.type = Type::kNilArray;
  return r;
}

bool operator==(const Reply& a, const Reply& b) {
  if (a.type != b.type) return false;
  switch (a.type) {
    case Reply::Type::kStatus:
    case Reply::Type::kError:
    case Reply::Type::kBulk:
      return a.str == b.str;
    case Reply::Type::kInteger:
      return a.integer == b.integer;
    case Reply::Type::kArray:
      return a.elements == b.elements;
    case Reply::Type::kNil:
    case Reply::Type::kNilArray:
      return true;
  }
  return false;
}

const char* ReplyTypeName(Reply::Type type) {
  switch (type) {
    case Reply::Type::kStatus:
      return "status";
    case Reply::Type::kError:
      return "error";
    case Reply::Type::kInteger:
      return "integer";
    case Reply::Type::kBulk:
      return "bulk";
    case Reply::Type::kNil:
      return "nil";
    case Reply::Type::kArray:
      return "array";
    case Reply::Type::kNilArray:
      return "nil-array";
  }
  return "?";
}

namespace {

void AppendDebug(const Reply& r, std::string* out, int budget) {
  switch (r.type) {
    case Reply::Type::kStatus:
      *out += "+" + Printable(r.str);
      return;
    case Reply::Type::kError:
      *out += "(error) " + Printable(r.str);
      return;
    case Reply::Type::kInteger:
      *out += std::to_string(r.integer);
      return;
    case Reply::Type::kBulk:
      *out += "\"" + Printable(r.str) + "\"";
      return;
    case Reply::Type::kNil:
      *out += "nil";
      return;
    case Reply::Type::kNilArray:
      *out += "nil-array";
      return;
    case Reply::Type::kArray:
      *out += "[";
      for (size_t i = 0; i < r.elements.size(); ++i) {
        if (i > 0) *out += ", ";
        if (static_cast<int>(i) >= budget) {
          *out += "... (" + std::to_string(r.elements.size()) + " elements)";
          break;
        }
        AppendDebug(r.elements[i], out, budget / 2);
      }
      *out += "]";
      return;
  }
}

template <typename Args>
void EncodeCommandImpl(const Args& args, std::string* out) {
  size_t need = 16;
  for (const auto& a : args) need += a.size() + 16;
  out->reserve(out->size() + need);
  *out += '*';
  *out += std::to_string(args.size());
  *out += "\r\n";
  for (const auto& a : args) {
    *out += '$';
    *out += std::to_string(a.size());
    *out += "\r\n";
    out->append(a.data(), a.size());
    *out += "\r\n";
  }
}

}  // namespace

std::string DebugString(const Reply& reply) {
  std::string out;
  AppendDebug(reply, &out, 16);
  return out;
}

void EncodeCommand(const std::vector<std::string_view>& args, std::string* out) {
  EncodeCommandImpl(args, out);
}
void EncodeCommand(const std::vector<std::string>& args, std::string* out) {
  EncodeCommandImpl(args, out);
}

namespace {
constexpr size_t kShrinkAbove = 1 << 20;
}  // namespace

ReplyParser::ReplyParser(ReplyParserLimits limits) : limits_(limits) {}

void ReplyParser::Feed(std::string_view bytes) {
  char* dst = PrepareFeed(bytes.size());
  if (!bytes.empty()) std::memcpy(dst, bytes.data(), bytes.size());
  CommitFeed(bytes.size());
}

char* ReplyParser::PrepareFeed(size_t n) {
  Compact();
  // buf_ only grows (to a high-water mark), so a read into spare room costs
  // no zero-filling after the first time.
  if (buf_.size() - end_ < n) buf_.resize(end_ + n);
  return buf_.data() + end_;
}

void ReplyParser::CommitFeed(size_t n) {
  FLIN_CHECK(end_ + n <= buf_.size()) << "CommitFeed beyond PrepareFeed";
  end_ += n;
}

void ReplyParser::Compact() {
  if (pos_ == 0) return;
  if (pos_ == end_) {
    pos_ = end_ = 0;
    // Do not keep a buffer sized for one huge reply on an idle connection.
    if (buf_.size() > kShrinkAbove) {
      buf_.resize(kShrinkAbove);
      buf_.shrink_to_fit();
    }
  } else if (pos_ >= 64 * 1024 && pos_ * 2 >= end_) {
    // Amortised: only move the tail once the consumed prefix dominates.
    std::memmove(buf_.data(), buf_.data() + pos_, end_ - pos_);
    end_ -= pos_;
    pos_ = 0;
  }
}

Status ReplyParser::Fail(std::string msg) {
  error_ = Status::Protocol(std::move(msg));
  return error_;
}

Result<std::optional<std::string_view>> ReplyParser::ReadLine(size_t at, size_t* next) {
  // RESP lines end in CRLF and never contain a bare CR or LF; finding either
  // one first tells a well-formed line from garbage.
  const char* begin = buf_.data() + at;
  size_t avail = end_ - at;
  size_t scan = std::min(avail, limits_.max_line + 2);
  for (size_t i = 0; i < scan; ++i) {
    char c = begin[i];
    if (c == '\n') return Fail("bare LF in reply line (expected CRLF)");
    if (c == '\r') {
      if (i + 1 == avail) return std::optional<std::string_view>();
      if (begin[i + 1] != '\n') return Fail("CR not followed by LF in reply line");
      *next = at + i + 2;
      return std::optional<std::string_view>(std::string_view(begin, i));
    }
  }
  if (avail > limits_.max_line) {
    return Fail("reply line longer than " + std::to_string(limits_.max_line) +
                " bytes without CRLF");
  }
  return std::optional<std::string_view>();
}

Result<ReplyParser::Step> ReplyParser::ParseOne(Reply* out) {
  if (pos_ >= end_) return Step::kNeedMore;
  const char type = buf_[pos_];
  size_t next = 0;
  auto line_or = ReadLine(pos_ + 1, &next);
  if (!line_or.ok()) return line_or.status();
  if (!line_or.value()) return Step::kNeedMore;
  std::string_view line = *line_or.value();

  switch (type) {
    case '+':
    case '-':
      *out = type == '+' ? Reply::Status(std::string(line)) : Reply::Error(std::string(line));
      pos_ = next;
      return Step::kScalar;
    case ':': {
      auto v = ParseInt64(line);
      if (!v) return Fail("invalid integer reply '" + Printable(line) + "'");
      *out = Reply::Integer(*v);
      pos_ = next;
      return Step::kScalar;
    }
    case '$': {
      auto len = ParseInt64(line);
      if (!len) return Fail("invalid bulk length '" + Printable(line) + "'");
      if (*len == -1) {
        *out = Reply::Nil();
        pos_ = next;
        return Step::kScalar;
      }
      if (*len < 0) return Fail("negative bulk length " + std::to_string(*len));
      if (*len > limits_.max_bulk_len) {
        return Fail("bulk length " + std::to_string(*len) + " exceeds the limit of " +
                    std::to_string(limits_.max_bulk_len));
      }
      const size_t n = static_cast<size_t>(*len);
      if (end_ - next < n + 2) return Step::kNeedMore;
      if (buf_[next + n] != '\r' || buf_[next + n + 1] != '\n') {
        return Fail("bulk string of length " + std::to_string(n) + " not followed by CRLF");
      }
      *out = Reply::Bulk(buf_.substr(next, n));
      pos_ = next + n + 2;
      return Step::kScalar;
    }
    case '*': {
      auto len = ParseInt64(line);
      if (!len) return Fail("invalid array length '" + Printable(line) + "'");
      if (*len == -1) {
        *out = Reply::NilArray();
        pos_ = next;
        return Step::kScalar;
      }
      if (*len < 0) return Fail("negative array length " + std::to_string(*len));
      if (*len > limits_.max_array_len) {
        return Fail("array length " + std::to_string(*len) + " exceeds the limit of " +
                    std::to_string(limits_.max_array_len));
      }
      pos_ = next;
      if (*len == 0) {
        *out = Reply::Array({});
        return Step::kScalar;
      }
      if (stack_.size() >= limits_.max_depth) {
        return Fail("arrays nested deeper than " + std::to_string(limits_.max_depth));
      }
      Frame frame{Reply::Array({}), static_cast<size_t>(*len)};
      // Reserve modestly: the length is untrusted until the elements arrive.
      frame.array.elements.reserve(std::min<size_t>(frame.remaining, 1024));
      stack_.push_back(std::move(frame));
      return Step::kArrayStarted;
    }
    default: {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "0x%02x", static_cast<unsigned char>(type));
      return Fail(std::string("unknown reply type byte ") + hex + " ('" +
                  Printable(std::string_view(&type, 1)) + "')");
    }
  }
}

Result<std::optional<Reply>> ReplyParser::Next() {
  if (!error_.ok()) return error_;
  for (;;) {
    Reply r;
    auto step = ParseOne(&r);
    if (!step.ok()) return step.status();
    if (step.value() == Step::kNeedMore) return std::optional<Reply>();
    if (step.value() == Step::kArrayStarted) continue;
    // A complete value: attach it to the innermost open array, closing
    // every array it completes.
    while (!stack_.empty()) {
      Frame& top = stack_.back();
      top.array.elements.push_back(std::move(r));
      if (--top.remaining > 0) break;
      r = std::move(top.array);
      stack_.pop_back();
    }
    if (stack_.empty()) return std::optional<Reply>(std::move(r));
  }
}

}  // namespace flin::client
