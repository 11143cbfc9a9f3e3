#include "cli/import_export.h"

#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <iterator>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "base/strings.h"
#include "cli/exit_codes.h"

namespace flin::cli {

using nlohmann::json;

// ---------------------------------------------------------------------------
// Small helpers.

bool IsValidUtf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    unsigned char c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    int n;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (end - p <= n) return false;
    for (int i = 1; i <= n; ++i) {
      if ((p[i] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i] & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    p += n + 1;
  }
  return true;
}

namespace {
constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
}  // namespace

std::string Base64Encode(std::string_view data) {
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  size_t i = 0;
  const auto* d = reinterpret_cast<const unsigned char*>(data.data());
  for (; i + 3 <= data.size(); i += 3) {
    uint32_t v = (d[i] << 16) | (d[i + 1] << 8) | d[i + 2];
    out.push_back(kB64[v >> 18]);
    out.push_back(kB64[(v >> 12) & 63]);
    out.push_back(kB64[(v >> 6) & 63]);
    out.push_back(kB64[v & 63]);
  }
  size_t rest = data.size() - i;
  if (rest > 0) {
    uint32_t v = d[i] << 16;
    if (rest == 2) v |= d[i + 1] << 8;
    out.push_back(kB64[v >> 18]);
    out.push_back(kB64[(v >> 12) & 63]);
    out.push_back(rest == 2 ? kB64[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

std::optional<std::string> Base64Decode(std::string_view text) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;  // '-' and '_': the URL-safe alphabet
    if (c == '/' || c == '_') return 63;
    return -1;
  };
  // Padding is optional; it may only appear at the end.
  size_t len = text.size();
  while (len > 0 && text[len - 1] == '=') --len;
  if (text.size() - len > 2 || len % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(len * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < len; ++i) {
    int v = val(text[i]);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return out;
}

namespace {

void AppendJsonString(std::string* out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      case '\b':
        out->append("\\b");
        break;
      case '\f':
        out->append("\\f");
        break;
      default:
        if (c < 0x20 || c == 0x7F) {
          out->append("\\u00");
          out->push_back(kHex[c >> 4]);
          out->push_back(kHex[c & 15]);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

}  // namespace

void AppendJsonText(std::string* out, std::string_view s) {
  if (IsValidUtf8(s)) {
    AppendJsonString(out, s);
  } else {
    out->append("{\"base64\":\"");
    out->append(Base64Encode(s));
    out->append("\"}");
  }
}

std::optional<Format> FormatFromName(std::string_view name) {
  std::string n = ToLower(name);
  if (n == "json") return Format::kJson;
  if (n == "jsonl" || n == "ndjson") return Format::kJsonl;
  if (n == "csv") return Format::kCsv;
  if (n == "tsv") return Format::kTsv;
  return std::nullopt;
}

std::optional<Format> FormatFromPath(std::string_view path) {
  size_t slash = path.find_last_of('/');
  std::string_view base = slash == std::string_view::npos ? path : path.substr(slash + 1);
  size_t dot = base.find_last_of('.');
  if (dot == std::string_view::npos) return std::nullopt;
  return FormatFromName(base.substr(dot + 1));
}

namespace {

// ---------------------------------------------------------------------------
// Row fields: conversions shared by the JSON and CSV readers.

// Seconds (possibly fractional) to whole milliseconds; nullopt unless > 0
// and sane (at most ~ 292 years).
std::optional<int64_t> TtlSecondsToMs(double seconds) {
  if (!(seconds > 0) || seconds > 9.2e15 / 1000) return std::nullopt;
  int64_t ms = static_cast<int64_t>(std::llround(seconds * 1000));
  return ms > 0 ? std::optional<int64_t>(ms) : std::nullopt;
}

std::optional<double> ParseNumber(std::string_view s) {
  if (s.empty() || s.size() > 64) return std::nullopt;
  std::string tmp(s);
  char* end = nullptr;
  errno = 0;
  double d = std::strtod(tmp.c_str(), &end);
  if (end != tmp.c_str() + tmp.size() || errno != 0 || !std::isfinite(d)) return std::nullopt;
  return d;
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A JSON value as SAX delivered it, without building a DOM for scalars.
struct JVal {
  enum class Kind { kString, kInt, kUInt, kFloat, kBool, kNull, kDom };
  Kind kind = Kind::kNull;
  std::string str;  // kString; kFloat: the number's text as written
  int64_t i = 0;
  uint64_t u = 0;
  double d = 0;
  bool b = false;
  json dom;
};

// {"base64": "..."} -> the decoded bytes; nullopt when dom is not that shape.
// *bad is set when it has the shape but the text is not base64.
std::optional<std::string> AsBase64Object(const json& dom, bool* bad) {
  *bad = false;
  if (!dom.is_object() || dom.size() != 1) return std::nullopt;
  auto it = dom.find("base64");
  if (it == dom.end() || !it->is_string()) return std::nullopt;
  auto decoded = Base64Decode(it->get_ref<const std::string&>());
  if (!decoded) *bad = true;
  return decoded;
}

// The stored value: strings as they are, {"base64":...} decoded, anything
// else as its compact JSON text.
Result<std::string> ValueText(JVal& v) {
  switch (v.kind) {
    case JVal::Kind::kString:
      return std::move(v.str);
    case JVal::Kind::kInt:
      return std::to_string(v.i);
    case JVal::Kind::kUInt:
      return std::to_string(v.u);
    case JVal::Kind::kFloat:
      return std::move(v.str);
    case JVal::Kind::kBool:
      return std::string(v.b ? "true" : "false");
    case JVal::Kind::kNull:
      return std::string("null");
    case JVal::Kind::kDom: {
      bool bad;
      auto b = AsBase64Object(v.dom, &bad);
      if (bad) return Status::InvalidArgument("\"base64\" is not valid base64");
      if (b) return std::move(*b);
      return v.dom.dump();
    }
  }
  return Status::InvalidArgument("unexpected value");
}

Result<std::string> KeyText(JVal& v) {
  switch (v.kind) {
    case JVal::Kind::kString:
      return std::move(v.str);
    case JVal::Kind::kInt:
      return std::to_string(v.i);
    case JVal::Kind::kUInt:
      return std::to_string(v.u);
    case JVal::Kind::kDom: {
      bool bad;
      auto b = AsBase64Object(v.dom, &bad);
      if (bad) return Status::InvalidArgument("\"key\": \"base64\" is not valid base64");
      if (b) return std::move(*b);
      break;
    }
    default:
      break;
  }
  return Status::InvalidArgument("\"key\" must be a string, an integer or {\"base64\": ...}");
}

Result<double> NumberOf(const JVal& v, std::string_view field) {
  switch (v.kind) {
    case JVal::Kind::kInt:
      return static_cast<double>(v.i);
    case JVal::Kind::kUInt:
      return static_cast<double>(v.u);
    case JVal::Kind::kFloat:
      return v.d;
    case JVal::Kind::kString:
      if (auto d = ParseNumber(v.str)) return *d;
      break;
    default:
      break;
  }
  return Status::InvalidArgument("\"" + std::string(field) + "\" must be a number");
}

// ---------------------------------------------------------------------------
// JSON and JSONL rows through nlohmann's SAX interface: the whole document is
// never held, only the row being read (and a DOM of a nested value, when a
// value is an object or array).

class JsonRowSax {
 public:
  enum class Mode {
    kDocument,  // a .json file: an array of row objects or an object of key: value
    kLine,      // one JSONL line: a row object
  };
  JsonRowSax(Mode mode, RowSink* sink, std::function<TextPos()> pos)
      : mode_(mode), sink_(sink), pos_(std::move(pos)) {}

  // The error that stopped the parse; ok when the sink stopped it or when
  // the row was handed to OnBadRow and skipped.
  const Status& error() const { return error_; }
  bool stopped_by_sink() const { return stopped_by_sink_; }
  // For kLine: the raw line (for OnBadRow) and its line number.
  void set_line(std::string_view raw, uint64_t line) {
    raw_line_ = raw;
    line_ = line;
    depth_ = 0;
    top_ = Top::kUnknown;
    row_error_ = Status::Ok();
  }
  uint64_t rows() const { return rows_; }

  // --- nlohmann SAX interface.
  bool null() {
    JVal v;
    v.kind = JVal::Kind::kNull;
    return Scalar(std::move(v), json(nullptr));
  }
  bool boolean(bool b) {
    JVal v;
    v.kind = JVal::Kind::kBool;
    v.b = b;
    return Scalar(std::move(v), json(b));
  }
  bool number_integer(json::number_integer_t n) {
    JVal v;
    v.kind = JVal::Kind::kInt;
    v.i = n;
    return Scalar(std::move(v), json(n));
  }
  bool number_unsigned(json::number_unsigned_t n) {
    JVal v;
    v.kind = JVal::Kind::kUInt;
    v.u = n;
    return Scalar(std::move(v), json(n));
  }
  bool number_float(json::number_float_t d, const std::string& s) {
    JVal v;
    v.kind = JVal::Kind::kFloat;
    v.d = d;
    v.str = s;
    return Scalar(std::move(v), json(d));
  }
  bool string(std::string& s) {
    if (!capture_.empty()) return Scalar(JVal{}, json(std::move(s)));
    JVal v;
    v.kind = JVal::Kind::kString;
    v.str = std::move(s);
    return Scalar(std::move(v), json());
  }
  bool binary(json::binary_t&) { return Fail(pos_(), "binary values are not JSON"); }
  bool start_object(std::size_t) { return StartContainer(/*object=*/true); }
  bool end_object() { return EndContainer(); }
  bool start_array(std::size_t) { return StartContainer(/*object=*/false); }
  bool end_array() { return EndContainer(); }
  bool key(std::string& k) {
    if (!capture_.empty()) {
      capture_key_ = std::move(k);
      return true;
    }
    if (top_ == Top::kMap && depth_ == 1) {
      // {"key": value, ...}: each member is a row.
      row_ = ImportRow();
      row_.key = std::move(k);
      row_.pos = KeyPos(row_.key);
      field_ = Field::kValue;
      return true;
    }
    // A field of a row object.
    if (k == "key") {
      field_ = Field::kKey;
    } else if (k == "value") {
      field_ = Field::kValue;
    } else if (k == "ttl") {
      field_ = Field::kTtl;
    } else if (k == "expire_at") {
      field_ = Field::kExpireAt;
    } else {
      field_ = Field::kIgnore;
      RowError("unknown field \"" + k +
               "\" (a row has \"key\", \"value\", \"ttl\", \"expire_at\")");
    }
    return true;
  }
  bool parse_error(std::size_t position, const std::string& last_token,
                   const nlohmann::detail::exception& ex) {
    // nlohmann's message: "[json.exception.parse_error.101] parse error at
    // line L, column C: syntax error while parsing ...". Keep the part after
    // the position; take the position from nlohmann (it counts lines of the
    // whole document) or, for a JSONL line, our line number.
    std::string what = ex.what();
    size_t at = what.find("syntax error");
    std::string msg = at == std::string::npos ? what : what.substr(at);
    TextPos p;
    unsigned long line = 0, col = 0;
    size_t lp = what.find("at line ");
    if (lp != std::string::npos &&
        std::sscanf(what.c_str() + lp, "at line %lu, column %lu", &line, &col) == 2) {
      p.line = line;
      p.column = col;
    } else {
      p = pos_();
    }
    if (mode_ == Mode::kLine) p.line = line_;
    if (mode_ == Mode::kLine && !sink_->OnBadRow(InputError(p, msg), raw_line_)) {
      error_ = InputError(p, msg);
    } else if (mode_ == Mode::kDocument) {
      error_ = InputError(p, msg);
    }
    return false;
  }

 private:
  enum class Top { kUnknown, kArray, kMap, kRow };
  enum class Field { kNone, kKey, kValue, kTtl, kExpireAt, kIgnore };

  TextPos KeyPos(const std::string& k) {
    // The lexer stops right after the key's closing quote.
    TextPos p = pos_();
    if (mode_ == Mode::kLine) p.line = line_;
    uint64_t back = k.size() + 2;
    p.column = p.column > back ? p.column - back : 1;
    return p;
  }

  // Stops the parse. A bad JSONL line is a bad row (the next line is
  // intact); in a document, the error stops the import.
  bool Fail(TextPos p, std::string_view what) {
    if (mode_ == Mode::kLine) {
      p.line = line_;
      Status st = InputError(p, what);
      if (!sink_->OnBadRow(st, raw_line_)) error_ = st;
      return false;
    }
    error_ = InputError(p, what);
    return false;
  }
  void RowError(std::string what) {
    if (row_error_.ok()) row_error_ = InputError(row_.pos, what);
  }

  bool StartContainer(bool object) {
    if (!capture_.empty() || (InRowValue())) {
      // A nested value: build a DOM for it.
      json node = object ? json::object() : json::array();
      if (capture_.empty()) {
        capture_root_ = std::move(node);
        capture_.push_back(&capture_root_);
      } else {
        json* parent = capture_.back();
        json* child;
        if (parent->is_object()) {
          child = &(*parent)[capture_key_];
          *child = std::move(node);
        } else {
          parent->push_back(std::move(node));
          child = &parent->back();
        }
        capture_.push_back(child);
      }
      ++depth_;
      return true;
    }
    if (depth_ == 0) {
      if (mode_ == Mode::kLine) {
        if (!object) return Fail(pos_(), "expected a JSON object (a row) on this line");
        top_ = Top::kRow;
        BeginRow();
      } else {
        top_ = object ? Top::kMap : Top::kArray;
      }
      ++depth_;
      return true;
    }
    if (top_ == Top::kArray && depth_ == 1) {
      if (!object) {
        TextPos p = pos_();
        p.column = p.column > 1 ? p.column - 1 : 1;
        return Fail(p, "expected a row object {\"key\": ..., \"value\": ...} in the array");
      }
      BeginRow();
      ++depth_;
      return true;
    }
    return Fail(pos_(), "unexpected nesting");
  }

  bool EndContainer() {
    --depth_;
    if (!capture_.empty()) {
      capture_.pop_back();
      if (capture_.empty()) {
        JVal v;
        v.kind = JVal::Kind::kDom;
        v.dom = std::move(capture_root_);
        capture_root_ = json();
        return Deliver(std::move(v));
      }
      return true;
    }
    if ((top_ == Top::kArray && depth_ == 1) || (top_ == Top::kRow && depth_ == 0)) {
      return EndRow();
    }
    return true;
  }

  // True when the next value is a field value (or map member value) of a row.
  bool InRowValue() const {
    if (top_ == Top::kMap) return depth_ == 1;
    if (top_ == Top::kArray) return depth_ == 2;
    if (top_ == Top::kRow) return depth_ == 1;
    return false;
  }

  bool Scalar(JVal v, json dom_value) {
    if (!capture_.empty()) {
      json* parent = capture_.back();
      if (v.kind == JVal::Kind::kString) dom_value = json(std::move(v.str));
      if (parent->is_object()) {
        (*parent)[capture_key_] = std::move(dom_value);
      } else {
        parent->push_back(std::move(dom_value));
      }
      return true;
    }
    if (depth_ == 0) {
      return Fail(pos_(), mode_ == Mode::kLine
                              ? "expected a JSON object (a row) on this line"
                              : "expected a JSON array of rows or an object of key: value");
    }
    if (top_ == Top::kArray && depth_ == 1) {
      TextPos p = pos_();
      p.column = p.column > 1 ? p.column - 1 : 1;
      return Fail(p, "expected a row object {\"key\": ..., \"value\": ...} in the array");
    }
    return Deliver(std::move(v));
  }

  void BeginRow() {
    row_ = ImportRow();
    row_.pos = pos_();
    if (mode_ == Mode::kLine) {
      row_.pos.line = line_;
    } else {
      row_.pos.column = row_.pos.column > 1 ? row_.pos.column - 1 : 1;
    }
    has_key_ = has_value_ = false;
    row_error_ = Status::Ok();
    field_ = Field::kNone;
  }

  bool Deliver(JVal v) {
    if (top_ == Top::kMap) {
      auto text = ValueText(v);
      ++rows_;
      if (!text.ok()) return BadRow(InputError(row_.pos, text.status().message()));
      row_.value = std::move(text.value());
      return sink_->OnRow(row_) || StopBySink();
    }
    switch (field_) {
      case Field::kKey: {
        auto k = KeyText(v);
        if (!k.ok()) {
          RowError(k.status().message());
        } else {
          row_.key = std::move(k.value());
          has_key_ = true;
        }
        break;
      }
      case Field::kValue: {
        auto t = ValueText(v);
        if (!t.ok()) {
          RowError("\"value\": " + t.status().message());
        } else {
          row_.value = std::move(t.value());
          has_value_ = true;
        }
        break;
      }
      case Field::kTtl: {
        if (v.kind == JVal::Kind::kNull) break;
        auto d = NumberOf(v, "ttl");
        std::optional<int64_t> ms;
        if (d.ok()) ms = TtlSecondsToMs(d.value());
        if (!ms) {
          RowError("\"ttl\" must be a positive number of seconds");
        } else {
          row_.ttl_ms = *ms;
        }
        break;
      }
      case Field::kExpireAt: {
        if (v.kind == JVal::Kind::kNull) break;
        auto d = NumberOf(v, "expire_at");
        if (!d.ok() || d.value() < 0 || d.value() > 9.2e18 || d.value() != std::floor(d.value())) {
          RowError("\"expire_at\" must be a Unix time in milliseconds (an integer, 0 = none)");
        } else {
          row_.expire_at_ms = static_cast<int64_t>(d.value());
        }
        break;
      }
      case Field::kNone:
      case Field::kIgnore:
        break;
    }
    field_ = Field::kNone;
    return true;
  }

  bool EndRow() {
    ++rows_;
    if (row_error_.ok() && !has_key_) RowError("the row has no \"key\"");
    if (row_error_.ok() && !has_value_) RowError("the row has no \"value\"");
    if (row_error_.ok() && row_.ttl_ms > 0 && row_.expire_at_ms > 0) {
      RowError("the row has both \"ttl\" and \"expire_at\"");
    }
    if (!row_error_.ok()) return BadRow(row_error_);
    return sink_->OnRow(row_) || StopBySink();
  }

  bool BadRow(const Status& st) {
    if (sink_->OnBadRow(st, mode_ == Mode::kLine ? raw_line_ : std::string_view())) return true;
    error_ = st;
    return false;
  }
  bool StopBySink() {
    stopped_by_sink_ = true;
    return false;
  }

  Mode mode_;
  RowSink* sink_;
  std::function<TextPos()> pos_;
  std::string_view raw_line_;
  uint64_t line_ = 0;
  int depth_ = 0;
  Top top_ = Top::kUnknown;
  Field field_ = Field::kNone;
  ImportRow row_;
  bool has_key_ = false;
  bool has_value_ = false;
  Status row_error_;
  Status error_;
  bool stopped_by_sink_ = false;
  uint64_t rows_ = 0;
  std::vector<json*> capture_;
  json capture_root_;
  std::string capture_key_;
};

// An input iterator over a ByteReader, so that nlohmann reads the file in
// one pass through our buffer (and our line/column tracking).
class ByteIterator {
 public:
  using iterator_category = std::input_iterator_tag;
  using value_type = char;
  using difference_type = std::ptrdiff_t;
  using pointer = const char*;
  using reference = char;

  explicit ByteIterator(ByteReader* r) : r_(r) {}
  char operator*() const { return static_cast<char>(r_->Peek()); }
  ByteIterator& operator++() {
    r_->Get();
    return *this;
  }
  ByteIterator operator++(int) {
    ByteIterator tmp = *this;
    r_->Get();
    return tmp;
  }
  // Only comparison with the end iterator (r_ == nullptr) is meaningful.
  bool operator==(const ByteIterator& o) const { return AtEnd() == o.AtEnd(); }
  bool operator!=(const ByteIterator& o) const { return !(*this == o); }

 private:
  bool AtEnd() const { return r_ == nullptr || r_->Peek() < 0; }
  ByteReader* r_;
};

Status ReadJsonDocument(ByteReader* in, RowSink* sink) {
  in->SkipBom();
  JsonRowSax sax(JsonRowSax::Mode::kDocument, sink, [in] { return in->pos(); });
  if (in->Peek() < 0) {
    if (!in->status().ok()) return in->status();
    return Status::Ok();  // an empty file has no rows
  }
  bool ok = json::sax_parse(ByteIterator(in), ByteIterator(nullptr), &sax);
  if (!in->status().ok()) return in->status();
  if (ok || sax.stopped_by_sink()) return Status::Ok();
  if (!sax.error().ok()) return sax.error();
  return InputError(in->pos(), "invalid JSON");
}

// The fast path for the common JSONL line: a flat object whose "key" and
// "value" are strings and whose "ttl"/"expire_at" are plain integers. It
// returns false for anything else (nested or non-string values, odd field
// names, any syntax it does not expect, errors), and the line then goes
// through nlohmann's parser, which gives the exact error. Several times
// faster than building a parser per line.
class FastJsonLine {
 public:
  static bool Parse(std::string_view line, ImportRow* row) {
    FastJsonLine p(line);
    return p.Row(row);
  }

 private:
  explicit FastJsonLine(std::string_view s) : p_(s.data()), end_(s.data() + s.size()) {}

  void Ws() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\r' || *p_ == '\n')) ++p_;
  }
  bool Eat(char c) {
    Ws();
    if (p_ < end_ && *p_ == c) {
      ++p_;
      return true;
    }
    return false;
  }
  static int Hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  bool Hex4(uint32_t* out) {
    if (end_ - p_ < 4) return false;
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      int h = Hex(p_[i]);
      if (h < 0) return false;
      v = (v << 4) | static_cast<uint32_t>(h);
    }
    p_ += 4;
    *out = v;
    return true;
  }
  static void AppendUtf8(uint32_t cp, std::string* out) {
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }
  bool String(std::string* out) {
    out->clear();
    if (!Eat('"')) return false;
    bool non_ascii = false;
    for (;;) {
      const char* start = p_;
      while (p_ < end_ && *p_ != '"' && *p_ != '\\') {
        unsigned char c = static_cast<unsigned char>(*p_);
        if (c < 0x20) return false;  // raw control characters are not JSON
        non_ascii |= c >= 0x80;
        ++p_;
      }
      out->append(start, p_);
      if (p_ >= end_) return false;
      if (*p_ == '"') {
        ++p_;
        break;
      }
      ++p_;  // backslash
      if (p_ >= end_) return false;
      char e = *p_++;
      switch (e) {
        case '"':
        case '\\':
        case '/':
          out->push_back(e);
          break;
        case 'b':
          out->push_back('\b');
          break;
        case 'f':
          out->push_back('\f');
          break;
        case 'n':
          out->push_back('\n');
          break;
        case 'r':
          out->push_back('\r');
          break;
        case 't':
          out->push_back('\t');
          break;
        case 'u': {
          uint32_t cp;
          if (!Hex4(&cp)) return false;
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            uint32_t lo;
            if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u') return false;
            p_ += 2;
            if (!Hex4(&lo) || lo < 0xDC00 || lo > 0xDFFF) return false;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            return false;
          }
          AppendUtf8(cp, out);
          break;
        }
        default:
          return false;
      }
    }
    return !non_ascii || IsValidUtf8(*out);
  }
  bool Integer(int64_t* out) {
    Ws();
    const char* start = p_;
    int64_t v = 0;
    while (p_ < end_ && *p_ >= '0' && *p_ <= '9') {
      if (v > (INT64_MAX - 9) / 10) return false;
      v = v * 10 + (*p_ - '0');
      ++p_;
    }
    if (p_ == start || (p_ - start > 1 && *start == '0')) return false;
    // A fraction or exponent is for the slow path.
    if (p_ < end_ && (*p_ == '.' || *p_ == 'e' || *p_ == 'E')) return false;
    *out = v;
    return true;
  }
  bool Row(ImportRow* row) {
    if (!Eat('{')) return false;
    bool has_key = false, has_value = false, has_ttl = false, has_exp = false;
    std::string name;
    if (!Eat('}')) {
      for (;;) {
        if (!String(&name) || !Eat(':')) return false;
        if (name == "key" && !has_key) {
          if (!String(&row->key)) return false;
          has_key = true;
        } else if (name == "value" && !has_value) {
          if (!String(&row->value)) return false;
          has_value = true;
        } else if (name == "ttl" && !has_ttl) {
          int64_t t;
          if (!Integer(&t) || t <= 0 || t > 9'000'000'000'000) return false;
          row->ttl_ms = t * 1000;
          has_ttl = true;
        } else if (name == "expire_at" && !has_exp) {
          if (!Integer(&row->expire_at_ms)) return false;
          has_exp = true;
        } else {
          return false;
        }
        if (Eat(',')) continue;
        if (Eat('}')) break;
        return false;
      }
    }
    Ws();
    return p_ == end_ && has_key && has_value && !(has_ttl && has_exp);
  }

  const char* p_;
  const char* end_;
};

Status ReadJsonLines(ByteReader* in, RowSink* sink) {
  in->SkipBom();
  JsonRowSax sax(JsonRowSax::Mode::kLine, sink, [] { return TextPos{}; });
  std::string line;
  uint64_t line_no = 0;
  ImportRow fast_row;
  while (in->ReadLine(&line)) {
    ++line_no;
    size_t i = 0;
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    if (i == line.size()) continue;  // blank lines are allowed
    fast_row = ImportRow();
    if (FastJsonLine::Parse(line, &fast_row)) {
      fast_row.pos = TextPos{line_no, 1};
      if (!sink->OnRow(fast_row)) return Status::Ok();
      continue;
    }
    sax.set_line(line, line_no);
    bool ok = json::sax_parse(line.data(), line.data() + line.size(), &sax);
    if (!ok) {
      if (sax.stopped_by_sink()) return Status::Ok();
      if (!sax.error().ok()) return sax.error();
      // Otherwise the bad line was handed to OnBadRow and skipped.
    }
  }
  return in->status();
}

// CSV/TSV with a header row.
Status ReadCsv(ByteReader* in, char delimiter, const ColumnOptions& columns, RowSink* sink) {
  CsvReader csv(in, CsvOptions{delimiter});
  std::vector<std::string> header;
  auto first = csv.Next(&header);
  if (!first.ok()) return first.status();
  if (!first.value()) return Status::Ok();  // empty file
  const TextPos header_pos = csv.record_pos();
  auto find = [&](const std::string& name, bool required, const char* what) -> Result<int> {
    if (name.empty()) return -1;
    for (size_t i = 0; i < header.size(); ++i) {
      if (header[i] == name) return static_cast<int>(i);
    }
    if (auto n = ParseInt64(name); n && *n >= 1 && static_cast<size_t>(*n) <= header.size()) {
      return static_cast<int>(*n - 1);
    }
    if (!required) return -1;
    std::string cols;
    for (size_t i = 0; i < header.size(); ++i) cols += (i ? ", " : "") + header[i];
    return InputError(header_pos, std::string("no ") + what + " column \"" + name +
                                      "\" in the header (columns: " + cols + ")");
  };
  auto key_col =
      find(columns.key_col.empty() ? "key" : columns.key_col, !columns.key_col.empty(), "key");
  if (!key_col.ok()) return key_col.status();
  int key_idx = key_col.value() < 0 ? 0 : key_col.value();
  auto value_col = find(columns.value_col.empty() ? "value" : columns.value_col,
                        !columns.value_col.empty(), "value");
  if (!value_col.ok()) return value_col.status();
  auto ttl_col =
      find(columns.ttl_col.empty() ? "ttl" : columns.ttl_col, !columns.ttl_col.empty(), "ttl");
  if (!ttl_col.ok()) return ttl_col.status();
  auto exp_col = find(columns.expire_at_col.empty() ? "expire_at" : columns.expire_at_col,
                      !columns.expire_at_col.empty(), "expire_at");
  if (!exp_col.ok()) return exp_col.status();
  const int value_idx = value_col.value(), ttl_idx = ttl_col.value(), exp_idx = exp_col.value();
  if (value_idx == key_idx) {
    return InputError(header_pos, "the key column and the value column are the same column");
  }

  std::vector<std::string> fields;
  ImportRow row;
  std::string raw;
  for (;;) {
    auto more = csv.Next(&fields);
    if (!more.ok()) return more.status();
    if (!more.value()) return Status::Ok();
    row = ImportRow();
    row.pos = csv.record_pos();
    auto bad = [&](TextPos p, std::string what) {
      raw.clear();
      for (size_t i = 0; i < fields.size(); ++i) {
        if (i) raw.push_back(delimiter);
        AppendCsvField(&raw, fields[i], delimiter, fields.size() == 1);
      }
      return sink->OnBadRow(InputError(p, what), raw);
    };
    if (fields.size() != header.size()) {
      if (!bad(row.pos, "expected " + std::to_string(header.size()) +
                            " fields (as in the header), found " + std::to_string(fields.size()))) {
        return InputError(row.pos, "expected " + std::to_string(header.size()) +
                                       " fields (as in the header), found " +
                                       std::to_string(fields.size()));
      }
      continue;
    }
    std::optional<std::pair<TextPos, std::string>> error;
    if (ttl_idx >= 0 && !fields[ttl_idx].empty()) {
      auto d = ParseNumber(fields[ttl_idx]);
      std::optional<int64_t> ms;
      if (d) ms = TtlSecondsToMs(*d);
      if (!ms) {
        error.emplace(csv.field_pos()[ttl_idx], "ttl \"" + Printable(fields[ttl_idx]) +
                                                    "\" is not a positive number of seconds");
      } else {
        row.ttl_ms = *ms;
      }
    }
    if (!error && exp_idx >= 0 && !fields[exp_idx].empty()) {
      auto n = ParseInt64(fields[exp_idx]);
      if (!n || *n < 0) {
        error.emplace(csv.field_pos()[exp_idx], "expire_at \"" + Printable(fields[exp_idx]) +
                                                    "\" is not a Unix time in milliseconds");
      } else {
        row.expire_at_ms = *n;
      }
    }
    if (!error && row.ttl_ms > 0 && row.expire_at_ms > 0) {
      error.emplace(row.pos, "the row has both a ttl and an expire_at");
    }
    if (error) {
      if (!bad(error->first, error->second)) return InputError(error->first, error->second);
      continue;
    }
    if (value_idx >= 0) {
      row.value = std::move(fields[value_idx]);
    } else {
      // No value column: the whole row (but its expiry columns) as a JSON
      // object, columns in header order.
      std::string& v = row.value;
      v.push_back('{');
      bool first_member = true;
      for (size_t i = 0; i < fields.size(); ++i) {
        if (static_cast<int>(i) == ttl_idx || static_cast<int>(i) == exp_idx) continue;
        if (!first_member) v.push_back(',');
        first_member = false;
        AppendJsonText(&v, header[i]);
        v.push_back(':');
        AppendJsonText(&v, fields[i]);
      }
      v.push_back('}');
    }
    row.key = std::move(fields[key_idx]);
    if (!sink->OnRow(row)) return Status::Ok();
  }
}

}  // namespace

Status ReadRows(ByteReader* in, Format format, const ColumnOptions& columns, RowSink* sink) {
  try {
    switch (format) {
      case Format::kJson:
        return ReadJsonDocument(in, sink);
      case Format::kJsonl:
        return ReadJsonLines(in, sink);
      case Format::kCsv:
        return ReadCsv(in, ',', columns, sink);
      case Format::kTsv:
        return ReadCsv(in, '\t', columns, sink);
    }
  } catch (const std::exception& e) {
    return InputError(in->pos(), e.what());
  }
  return Status::InvalidArgument("unknown format");
}

// ---------------------------------------------------------------------------
// Import.

namespace {

// Chosen with bench/import/run on the 2-core dev machine (200k-row CSV,
// several runs each): 4 connections x 4 batches in flight x 1000 rows was
// the fastest (~190k rows/s median vs ~150k for 2 in flight, ~140k for one
// connection, no gain from 2000-5000 rows per batch). flind commits one
// batch per connection read, so parallel connections are what fill its group
// commit. The byte cap keeps memory flat (and under the server's
// --max-batch-bytes) when values are large.
constexpr size_t kDefaultBatchSize = 1000;
constexpr size_t kDefaultPipeline = 4;
constexpr size_t kDefaultConnections = 4;
constexpr size_t kMaxBatchBytes = 512 << 10;
// Distinct expiries kept open at once; rows with other expiries ship the
// oldest open batch first.
constexpr size_t kMaxOpenGroups = 16;
constexpr uint64_t kNoRow = UINT64_MAX;

struct ImportOptions {
  std::vector<std::string> files;
  std::string format;
  std::string prefix;
  double ttl_seconds = 0;
  size_t batch_size = kDefaultBatchSize;
  size_t pipeline = kDefaultPipeline;
  size_t connections = kDefaultConnections;
  bool atomic = false;
  bool dry_run = false;
  bool quiet = false;
  std::string reject_file;
  uint64_t resume_from = 0;
  ColumnOptions columns;
};

struct Batch {
  enum class Expiry { kNone, kPx, kPxat, kStaged };
  Expiry expiry = Expiry::kNone;
  int64_t ms = 0;
  std::vector<std::string> args;
  uint64_t rows = 0;
  uint64_t first_row = kNoRow;
  size_t bytes = 0;
};

std::string HumanBytes(double b) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  int u = 0;
  while (b >= 1000 && u < 4) {
    b /= 1000;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", b, units[u]);
  return buf;
}

std::string WithCommas(uint64_t n) {
  std::string s = std::to_string(n);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(i, ",");
  return s;
}

// One connection and the thread that writes batches on it, in order, up to
// `pipeline` batches per round trip.
struct Writer {
  std::unique_ptr<client::Connection> conn;
  std::thread thread;
  std::deque<Batch> queue;     // GUARDED_BY(Importer::mu_)
  std::condition_variable cv;  // queue got a batch, or closed
};

// The reader side (this thread) turns rows into batches. Rows are sharded
// over the writers by key hash, so every key's rows go through one
// connection in input order (the last duplicate wins) while the writers'
// batches meet in the server's group commit. Each writer keeps up to
// `pipeline` batches in flight.
class Importer : public RowSink {
 public:
  Importer(const ImportOptions& opts, std::vector<std::unique_ptr<client::Connection>> conns,
           std::FILE* reject, bool progress)
      : opts_(opts), reject_(reject), progress_(progress) {
    for (auto& c : conns) {
      auto w = std::make_unique<Writer>();
      w->conn = std::move(c);
      writers_.push_back(std::move(w));
    }
    if (opts_.ttl_seconds > 0) default_ttl_ms_ = TtlSecondsToMs(opts_.ttl_seconds).value_or(0);
    start_ = std::chrono::steady_clock::now();
  }
  ~Importer() override {
    if (!finished_) Finish(false);
  }

  bool dry_run() const { return writers_.empty(); }
  client::Connection& first_conn() { return *writers_[0]->conn; }

  // --atomic: opens the staging area. Errors: the connection's or server's.
  Status BeginAtomic() {
    const std::vector<std::string_view> args = {"IMPORT.BEGIN"};
    auto r = first_conn().Command(args);
    if (!r.ok()) return r.status();
    if (r->is_error()) return Status::Server(r->str);
    if (r->type != client::Reply::Type::kBulk && r->type != client::Reply::Type::kStatus) {
      return Status::Protocol("IMPORT.BEGIN did not answer with an id");
    }
    staging_id_ = r->str;
    return Status::Ok();
  }
  // Makes the staged rows visible; returns the number of keys.
  Result<int64_t> CommitAtomic() {
    const std::vector<std::string_view> args = {"IMPORT.COMMIT", staging_id_};
    auto r = first_conn().Command(args);
    if (!r.ok()) return r.status();
    if (r->is_error()) return Status::Server(r->str);
    return r->integer;
  }
  void AbortAtomic() {
    if (staging_id_.empty()) return;
    for (auto& w : writers_) {
      if (!w->conn->healthy()) continue;
      const std::vector<std::string_view> args = {"IMPORT.ABORT", staging_id_};
      (void)w->conn->Command(args);  // best effort: the server drops it after an hour anyway
      return;
    }
  }

  void Start() {
    for (auto& w : writers_) {
      Writer* wp = w.get();
      wp->thread = std::thread([this, wp] { WriterLoop(wp); });
    }
  }

  void SetFile(const std::string& name, ByteReader* reader) {
    if (reader_ != nullptr) bytes_done_ += reader_->bytes_consumed();
    file_ = name;
    reader_ = reader;
  }
  void set_total_bytes(int64_t total) { total_bytes_ = total; }

  bool OnRow(ImportRow& row) override {
    const uint64_t idx = next_row_++;
    if (idx < opts_.resume_from) return true;
    if (failed_.load(std::memory_order_relaxed)) return false;
    if (progress_ && (idx & 1023) == 0) MaybeProgress(false);
    Batch::Expiry expiry = Batch::Expiry::kNone;
    int64_t ms = 0;
    if (row.expire_at_ms > 0) {
      if (row.expire_at_ms <= NowMs()) {
        ++expired_;
        return true;
      }
      expiry = Batch::Expiry::kPxat;
      ms = row.expire_at_ms;
    } else if (row.ttl_ms > 0 || default_ttl_ms_ > 0) {
      expiry = Batch::Expiry::kPx;
      ms = row.ttl_ms > 0 ? row.ttl_ms : default_ttl_ms_;
    }
    ++rows_ok_;
    if (dry_run()) return true;
    std::string key = opts_.prefix.empty() ? std::move(row.key) : opts_.prefix + row.key;
    const size_t shard = writers_.size() == 1 ? 0 : std::hash<std::string>()(key) % writers_.size();
    Batch* b;
    if (opts_.atomic) {
      b = OpenBatch(shard, Batch::Expiry::kStaged, 0);
      if (expiry == Batch::Expiry::kPx) ms += NowMs();
      b->bytes += key.size() + row.value.size() + 16;
      b->args.push_back(std::move(key));
      b->args.push_back(std::move(row.value));
      b->args.push_back(std::to_string(expiry == Batch::Expiry::kNone ? 0 : ms));
    } else {
      b = OpenBatch(shard, expiry, ms);
      b->bytes += key.size() + row.value.size() + 16;
      b->args.push_back(std::move(key));
      b->args.push_back(std::move(row.value));
    }
    ++b->rows;
    b->first_row = std::min(b->first_row, idx);
    if (b->rows >= opts_.batch_size || b->bytes >= kMaxBatchBytes) Ship(b);
    return !failed_.load(std::memory_order_relaxed);
  }

  bool OnBadRow(const Status& error, std::string_view raw) override {
    const uint64_t idx = next_row_++;
    if (idx < opts_.resume_from) return true;
    if (reject_ != nullptr) {
      std::string line = "{\"file\":";
      AppendJsonText(&line, file_);
      line += ",\"error\":";
      AppendJsonText(&line, file_ + ":" + error.message());
      line += ",\"row\":";
      AppendJsonText(&line, raw);
      line += "}\n";
      std::fwrite(line.data(), 1, line.size(), reject_);
      ++rejected_;
      return true;
    }
    bad_row_ = idx;
    return false;
  }

  // After an input error that ReadRows returned (not through OnBadRow).
  void NoteInputError() { bad_row_ = std::min(bad_row_, next_row_); }

  // Ships the open batches when flush (the input ended well), then waits for
  // the writers to drain their queues.
  void Finish(bool flush) {
    finished_ = true;
    if (flush && !failed_) {
      while (!open_.empty()) Ship(&open_.front());
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      closed_ = true;
    }
    for (auto& w : writers_) w->cv.notify_all();
    for (auto& w : writers_) {
      if (w->thread.joinable()) w->thread.join();
    }
    if (progress_) MaybeProgress(true);
  }

  // The first row not known to be written: every row before it is committed
  // (or was skipped or rejected), so `--resume-from` it loses nothing. Rows
  // after it that were committed are written again, with the same values.
  uint64_t ResumePoint() const {
    uint64_t r = std::min(bad_row_, failed_row_);
    for (const Batch& b : open_) r = std::min(r, b.first_row);
    for (const auto& w : writers_) {
      for (const Batch& b : w->queue) r = std::min(r, b.first_row);
    }
    if (r == kNoRow) r = next_row_;
    return std::max(r, opts_.resume_from);
  }

  bool failed() const { return failed_.load(); }
  const Status& write_status() const { return write_status_; }
  uint64_t committed_rows() const { return committed_rows_.load(); }
  uint64_t rows_ok() const { return rows_ok_; }
  uint64_t rejected() const { return rejected_; }
  uint64_t expired() const { return expired_; }
  double elapsed() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  Batch* OpenBatch(size_t shard, Batch::Expiry expiry, int64_t ms) {
    for (size_t i = 0; i < open_.size(); ++i) {
      Batch& b = open_[i];
      if (open_shard_[i] == shard && b.expiry == expiry && b.ms == ms) return &b;
    }
    if (open_.size() >= kMaxOpenGroups * writers_.size()) {
      auto oldest = std::min_element(
          open_.begin(), open_.end(),
          [](const Batch& a, const Batch& b) { return a.first_row < b.first_row; });
      Ship(&*oldest);
    }
    Batch& b = open_.emplace_back();
    open_shard_.push_back(shard);
    b.expiry = expiry;
    b.ms = ms;
    switch (expiry) {
      case Batch::Expiry::kNone:
        b.args.reserve(1 + 2 * std::min<size_t>(opts_.batch_size, 4096));
        b.args.emplace_back("MSET");
        break;
      case Batch::Expiry::kPx:
      case Batch::Expiry::kPxat:
        b.args.emplace_back("MSETEX");
        b.args.emplace_back();  // numkeys, filled in by Ship
        break;
      case Batch::Expiry::kStaged:
        b.args.reserve(2 + 3 * std::min<size_t>(opts_.batch_size, 4096));
        b.args.emplace_back("IMPORT.ADD");
        b.args.emplace_back(staging_id_);
        break;
    }
    return &b;
  }

  // Moves *b (an element of open_) to its writer's queue, waiting for room.
  void Ship(Batch* b) {
    if (b->expiry == Batch::Expiry::kPx || b->expiry == Batch::Expiry::kPxat) {
      b->args[1] = std::to_string(b->rows);
      b->args.emplace_back(b->expiry == Batch::Expiry::kPx ? "PX" : "PXAT");
      b->args.emplace_back(std::to_string(b->ms));
    }
    const size_t i = static_cast<size_t>(b - open_.data());
    Writer& w = *writers_[open_shard_[i]];
    Batch batch = std::move(*b);
    open_.erase(open_.begin() + i);
    open_shard_.erase(open_shard_.begin() + i);
    std::unique_lock<std::mutex> lock(mu_);
    space_cv_.wait(lock, [&] { return w.queue.size() < opts_.pipeline || failed_.load(); });
    // After a failure the batch stays queued (unsent): ResumePoint counts it.
    w.queue.push_back(std::move(batch));
    lock.unlock();
    w.cv.notify_one();
  }

  void WriterLoop(Writer* w) {
    std::vector<Batch> group;
    std::vector<std::vector<std::string>> cmds;
    for (;;) {
      group.clear();
      cmds.clear();
      {
        std::unique_lock<std::mutex> lock(mu_);
        w->cv.wait(lock, [&] { return !w->queue.empty() || closed_ || failed_.load(); });
        if (w->queue.empty() || failed_.load()) return;
        while (!w->queue.empty() && group.size() < opts_.pipeline) {
          group.push_back(std::move(w->queue.front()));
          w->queue.pop_front();
        }
      }
      space_cv_.notify_all();
      for (Batch& b : group) cmds.push_back(std::move(b.args));
      auto replies = w->conn->Pipeline(cmds);
      cmds.clear();
      Status error;
      uint64_t failed_row = kNoRow;
      if (!replies.ok()) {
        // Unknown which of these were applied: redo them all.
        error = replies.status();
        for (const Batch& b : group) failed_row = std::min(failed_row, b.first_row);
      } else if (replies->size() != group.size()) {
        error = Status::Protocol("pipeline returned the wrong number of replies");
        for (const Batch& b : group) failed_row = std::min(failed_row, b.first_row);
      } else {
        for (size_t i = 0; i < group.size(); ++i) {
          const client::Reply& r = (*replies)[i];
          if (r.is_error()) {
            if (error.ok()) error = Status::Server(r.str);
            failed_row = std::min(failed_row, group[i].first_row);
          } else {
            committed_rows_ += group[i].rows;
          }
        }
      }
      if (!error.ok()) {
        std::lock_guard<std::mutex> lock(mu_);
        if (!failed_.load()) write_status_ = error;
        failed_row_ = std::min(failed_row_, failed_row);
        failed_ = true;
        space_cv_.notify_all();
        for (auto& other : writers_) other->cv.notify_all();
        return;
      }
    }
  }

  void MaybeProgress(bool final) {
    auto now = std::chrono::steady_clock::now();
    if (!final && now - last_progress_ < std::chrono::milliseconds(250)) return;
    last_progress_ = now;
    if (final) {
      std::fputs("\r\033[K", stderr);
      return;
    }
    double secs = std::chrono::duration<double>(now - start_).count();
    uint64_t rows = opts_.atomic || dry_run() ? rows_ok_ : committed_rows_.load();
    uint64_t bytes = bytes_done_ + (reader_ ? reader_->bytes_consumed() : 0);
    std::string line = "\r\033[K" + WithCommas(rows) + " rows";
    if (secs > 0.2) line += ", " + WithCommas(static_cast<uint64_t>(rows / secs)) + " rows/s";
    line += ", " + HumanBytes(static_cast<double>(bytes));
    if (total_bytes_ > 0) {
      line += " of " + HumanBytes(static_cast<double>(total_bytes_));
      if (bytes > 0 && secs > 0.5) {
        double eta = secs * (static_cast<double>(total_bytes_) - bytes) / bytes;
        char buf[32];
        std::snprintf(buf, sizeof buf, ", ETA %d:%02d", static_cast<int>(eta) / 60,
                      static_cast<int>(eta) % 60);
        line += buf;
      }
    }
    std::fputs(line.c_str(), stderr);
    std::fflush(stderr);
  }

  const ImportOptions& opts_;
  std::FILE* reject_;
  bool progress_;
  bool finished_ = false;
  int64_t default_ttl_ms_ = 0;
  std::string staging_id_;
  std::string file_;
  ByteReader* reader_ = nullptr;
  uint64_t bytes_done_ = 0;
  int64_t total_bytes_ = -1;
  std::chrono::steady_clock::time_point start_, last_progress_;

  // Reader-side state.
  uint64_t next_row_ = 0;
  uint64_t rows_ok_ = 0;
  uint64_t rejected_ = 0;
  uint64_t expired_ = 0;
  uint64_t bad_row_ = kNoRow;
  std::vector<Batch> open_;
  std::vector<size_t> open_shard_;  // the writer of each open_ batch

  // Shared with the writers.
  std::vector<std::unique_ptr<Writer>> writers_;
  std::mutex mu_;
  std::condition_variable space_cv_;  // a queue has room, or failed_
  bool closed_ = false;               // GUARDED_BY(mu_)
  Status write_status_;               // GUARDED_BY(mu_)
  uint64_t failed_row_ = kNoRow;      // GUARDED_BY(mu_)
  std::atomic<bool> failed_{false};
  std::atomic<uint64_t> committed_rows_{0};
};

int ExitForStatus(const Status& st) {
  switch (st.code()) {
    case Status::Code::kUnavailable:
    case Status::Code::kTimeout:
    case Status::Code::kIOError:
      return kExitConnect;
    default:
      return kExitServer;
  }
}

int RunImport(const ImportOptions& opts, const Connector& connect) {
  auto usage = [](const std::string& msg) {
    std::fprintf(stderr, "flin import: %s\n", msg.c_str());
    return static_cast<int>(kExitUsage);
  };
  if (opts.batch_size == 0) return usage("--batch-size must be at least 1");
  if (opts.pipeline == 0) return usage("--pipeline must be at least 1");
  if (opts.connections == 0 || opts.connections > 64) {
    return usage("--connections must be between 1 and 64");
  }
  if (opts.ttl_seconds < 0 || (opts.ttl_seconds > 0 && !TtlSecondsToMs(opts.ttl_seconds))) {
    return usage("--ttl must be a positive number of seconds");
  }
  if (opts.atomic && opts.resume_from > 0) {
    return usage("--resume-from cannot be used with --atomic (an atomic import is all or nothing)");
  }
  // Resolve every file and format before writing anything.
  std::vector<std::pair<std::unique_ptr<ByteReader>, Format>> inputs;
  int64_t total = 0;
  int stdin_count = 0;
  for (const std::string& f : opts.files) {
    std::optional<Format> format;
    if (!opts.format.empty()) {
      format = FormatFromName(opts.format);
      if (!format) return usage("unknown --format \"" + opts.format + "\" (json, jsonl, csv, tsv)");
    } else {
      format = FormatFromPath(f);
      if (!format) {
        return usage("cannot tell the format of " + (f == "-" ? std::string("stdin") : f) +
                     " from its name: use --format json|jsonl|csv|tsv");
      }
    }
    if (f == "-" && ++stdin_count > 1) return usage("'-' (stdin) can be given only once");
    auto reader = ByteReader::Open(f);
    if (!reader.ok()) return usage(reader.status().message());
    if (total >= 0) total = (*reader)->size() >= 0 ? total + (*reader)->size() : -1;
    inputs.emplace_back(std::move(reader.value()), *format);
  }
  std::FILE* reject = nullptr;
  if (!opts.reject_file.empty()) {
    reject = std::fopen(opts.reject_file.c_str(), "w");
    if (reject == nullptr) {
      return usage("cannot open --reject-file " + opts.reject_file + ": " + std::strerror(errno));
    }
  }
  struct Closer {
    std::FILE* f;
    ~Closer() {
      if (f) std::fclose(f);
    }
  } reject_closer{reject};

  std::vector<std::unique_ptr<client::Connection>> conns;
  if (!opts.dry_run) {
    for (size_t i = 0; i < opts.connections; ++i) {
      auto c = connect();
      if (!c.ok()) {
        std::fprintf(stderr, "flin import: cannot connect: %s\n", c.status().message().c_str());
        return kExitConnect;
      }
      conns.push_back(std::move(c.value()));
    }
  }
  const bool progress = !opts.quiet && ::isatty(STDERR_FILENO);
  Importer imp(opts, std::move(conns), reject, progress);
  imp.set_total_bytes(total);
  if (opts.atomic && !opts.dry_run) {
    Status st = imp.BeginAtomic();
    if (!st.ok()) {
      std::fprintf(stderr, "flin import: IMPORT.BEGIN failed: %s\n", st.message().c_str());
      return ExitForStatus(st);
    }
  }
  imp.Start();
  std::string input_error;
  for (auto& [reader, format] : inputs) {
    imp.SetFile(reader->name(), reader.get());
    Status st = ReadRows(reader.get(), format, opts.columns, &imp);
    if (!st.ok()) {
      input_error =
          st.code() == Status::Code::kIOError ? st.message() : reader->name() + ":" + st.message();
      imp.NoteInputError();
      break;
    }
    if (imp.failed()) break;
  }
  imp.Finish(/*flush=*/input_error.empty());
  if (!input_error.empty()) std::fprintf(stderr, "flin import: %s\n", input_error.c_str());

  auto summary = [&](const char* verb, uint64_t rows, const std::string& extra) {
    if (opts.quiet) return;
    double secs = imp.elapsed();
    std::string s = std::string(verb) + " " + WithCommas(rows) + " rows" + extra;
    char buf[64];
    std::snprintf(buf, sizeof buf, " in %.2f s (%s rows/s)", secs,
                  WithCommas(static_cast<uint64_t>(secs > 0 ? rows / secs : 0)).c_str());
    s += buf;
    if (imp.rejected() > 0) {
      s += "; " + WithCommas(imp.rejected()) + " rejected (see " + opts.reject_file + ")";
    }
    if (imp.expired() > 0) s += "; " + WithCommas(imp.expired()) + " skipped (already expired)";
    std::printf("%s\n", s.c_str());
    std::fflush(stdout);
  };

  if (opts.dry_run) {
    if (!input_error.empty()) return kExitUsage;
    summary("dry run: validated", imp.rows_ok(), ", nothing written");
    return kExitOk;
  }
  if (opts.atomic) {
    if (!input_error.empty() || imp.failed()) {
      imp.AbortAtomic();
      if (imp.failed()) {
        std::fprintf(stderr, "flin import: %s\n", imp.write_status().message().c_str());
      }
      std::fprintf(stderr, "flin import: nothing was imported (the atomic import was aborted)\n");
      return !input_error.empty() ? kExitUsage : ExitForStatus(imp.write_status());
    }
    auto keys = imp.CommitAtomic();
    if (!keys.ok()) {
      std::fprintf(stderr, "flin import: IMPORT.COMMIT failed: %s\n",
                   keys.status().message().c_str());
      imp.AbortAtomic();
      return ExitForStatus(keys.status());
    }
    summary("imported", imp.rows_ok(),
            " atomically (" + WithCommas(static_cast<uint64_t>(keys.value())) + " keys)");
    return kExitOk;
  }
  if (input_error.empty() && !imp.failed()) {
    summary("imported", imp.committed_rows(), "");
    return kExitOk;
  }
  if (imp.failed()) {
    std::fprintf(stderr, "flin import: write failed: %s\n", imp.write_status().message().c_str());
  }
  const uint64_t resume = imp.ResumePoint();
  const uint64_t committed = imp.committed_rows();
  if (committed > 0) {
    std::fprintf(stderr, "flin import: %s rows were committed before the error\n",
                 WithCommas(committed).c_str());
  } else {
    std::fprintf(stderr, "flin import: nothing was written\n");
  }
  if (resume > 0) {
    std::fprintf(stderr,
                 "flin import: to continue without redoing them, run the same command with "
                 "--resume-from %llu\n",
                 static_cast<unsigned long long>(resume));
  }
  if (committed > 0) return kExitPartial;
  return !input_error.empty() ? kExitUsage : ExitForStatus(imp.write_status());
}

// ---------------------------------------------------------------------------
// Export.

struct ExportOptions {
  std::string prefix;
  std::string format;
  std::string output;
  size_t count = 1000;
  bool quiet = false;
};

int RunExport(const ExportOptions& opts, const Connector& connect) {
  Format format = Format::kJsonl;
  if (!opts.format.empty()) {
    auto f = FormatFromName(opts.format);
    if (!f) {
      std::fprintf(stderr, "flin export: unknown --format \"%s\" (json, jsonl, csv, tsv)\n",
                   opts.format.c_str());
      return kExitUsage;
    }
    format = *f;
  } else if (!opts.output.empty() && opts.output != "-") {
    format = FormatFromPath(opts.output).value_or(Format::kJsonl);
  }
  auto c = connect();
  if (!c.ok()) {
    std::fprintf(stderr, "flin export: cannot connect: %s\n", c.status().message().c_str());
    return kExitConnect;
  }
  client::Connection& conn = *c.value();
  std::vector<std::string_view> begin = {"EXPORT.BEGIN"};
  if (!opts.prefix.empty()) begin.push_back(opts.prefix);
  auto b = conn.Command(begin);
  if (!b.ok() || b->is_error()) {
    Status st = b.ok() ? Status::Server(b->str) : b.status();
    std::fprintf(stderr, "flin export: EXPORT.BEGIN failed: %s\n", st.message().c_str());
    return ExitForStatus(st);
  }
  const std::string id = b->str;
  auto end_snapshot = [&] {
    if (!conn.healthy()) return;
    const std::vector<std::string_view> args = {"EXPORT.END", id};
    (void)conn.Command(args);
  };

  std::FILE* out = stdout;
  bool to_file = !opts.output.empty() && opts.output != "-";
  if (to_file) {
    out = std::fopen(opts.output.c_str(), "w");
    if (out == nullptr) {
      std::fprintf(stderr, "flin export: cannot open %s: %s\n", opts.output.c_str(),
                   std::strerror(errno));
      end_snapshot();
      return kExitUsage;
    }
  }
  const char delim = format == Format::kTsv ? '\t' : ',';
  std::string buf;
  buf.reserve(2 << 20);
  if (format == Format::kCsv || format == Format::kTsv) {
    buf += "key";
    buf += delim;
    buf += "value";
    buf += delim;
    buf += "expire_at\n";
  } else if (format == Format::kJson) {
    buf += "[";
  }
  uint64_t n = 0;
  // Start small (values may be megabytes each), then size each request to
  // about 4 MB of rows.
  size_t count = std::min<size_t>(opts.count, 64);
  Status error;
  bool write_error = false;
  for (;;) {
    const std::string count_text = std::to_string(count);
    const std::vector<std::string_view> next = {"EXPORT.NEXT", id, count_text};
    auto r = conn.Command(next);
    if (!r.ok()) {
      error = r.status();
      break;
    }
    if (r->is_error()) {
      error = Status::Server(r->str);
      break;
    }
    if (r->type != client::Reply::Type::kArray) {
      error = Status::Protocol("EXPORT.NEXT did not answer with an array");
      break;
    }
    if (r->elements.empty()) break;
    size_t reply_bytes = 0;
    for (const client::Reply& item : r->elements) {
      if (item.type != client::Reply::Type::kArray || item.elements.size() != 3 ||
          item.elements[0].type != client::Reply::Type::kBulk ||
          item.elements[1].type != client::Reply::Type::kBulk ||
          item.elements[2].type != client::Reply::Type::kInteger) {
        error = Status::Protocol("EXPORT.NEXT item is not [key, value, expire_at]");
        break;
      }
      const std::string& key = item.elements[0].str;
      const std::string& value = item.elements[1].str;
      const int64_t exp = item.elements[2].integer;
      reply_bytes += key.size() + value.size();
      switch (format) {
        case Format::kJson:
        case Format::kJsonl:
          if (format == Format::kJson) buf += n == 0 ? "\n" : ",\n";
          buf += "{\"key\":";
          AppendJsonText(&buf, key);
          buf += ",\"value\":";
          AppendJsonText(&buf, value);
          if (exp > 0) {
            buf += ",\"expire_at\":";
            buf += std::to_string(exp);
          }
          buf += format == Format::kJson ? "}" : "}\n";
          break;
        case Format::kCsv:
        case Format::kTsv:
          AppendCsvField(&buf, key, delim);
          buf += delim;
          AppendCsvField(&buf, value, delim);
          buf += delim;
          if (exp > 0) buf += std::to_string(exp);
          buf += '\n';
          break;
      }
      ++n;
      if (buf.size() >= (1 << 20)) {
        if (std::fwrite(buf.data(), 1, buf.size(), out) != buf.size()) write_error = true;
        buf.clear();
      }
    }
    if (!error.ok() || write_error) break;
    // Keep one reply around a few MB whatever the value sizes.
    size_t avg = reply_bytes / r->elements.size() + 1;
    count = std::clamp<size_t>((4u << 20) / avg, 1, opts.count);
  }
  if (format == Format::kJson) buf += n == 0 ? "]\n" : "\n]\n";
  if (error.ok() && !write_error) {
    if (std::fwrite(buf.data(), 1, buf.size(), out) != buf.size()) write_error = true;
  }
  if (std::fflush(out) != 0 || std::ferror(out)) write_error = true;
  if (to_file && std::fclose(out) != 0) write_error = true;
  if (!error.ok() || write_error) {
    end_snapshot();
    if (write_error) {
      std::fprintf(stderr, "flin export: cannot write %s: %s\n",
                   to_file ? opts.output.c_str() : "stdout", std::strerror(errno));
      return kExitUsage;
    }
    std::fprintf(stderr, "flin export: %s (after %llu keys)\n", error.message().c_str(),
                 static_cast<unsigned long long>(n));
    return ExitForStatus(error);
  }
  if (!opts.quiet && to_file) {
    std::fprintf(stderr, "exported %s keys to %s\n", WithCommas(n).c_str(), opts.output.c_str());
  }
  return kExitOk;
}

bool ParentQuiet(CLI::App* app) {
  for (CLI::App* a = app->get_parent(); a != nullptr; a = a->get_parent()) {
    if (CLI::Option* o = a->get_option_no_throw("--quiet"); o != nullptr && o->count() > 0) {
      return true;
    }
  }
  return false;
}

}  // namespace

void AddImportExportCommands(CLI::App& app, Connector connect, int* exit_code) {
  auto io = std::make_shared<ImportOptions>();
  CLI::App* imp = app.add_subcommand(
      "import", "Bulk-load keys from JSON, JSONL, CSV or TSV files (streaming, pipelined batches)");
  imp->footer(
      "Formats: JSON: an object {\"key\": value, ...} or an array of {\"key\":..., "
      "\"value\":..., \"ttl\": seconds, \"expire_at\": unix-ms}; JSONL: one such row object "
      "per line; CSV/TSV: a header row, then one row per record (RFC 4180 quoting). Values that "
      "are not strings are stored as their compact JSON text; {\"base64\": \"...\"} stores "
      "binary. Duplicate keys: the last row wins. Rows are numbered from 0 across all files; on "
      "error the command prints the --resume-from that continues the import. Exit codes: 0 ok, "
      "2 bad input or flags (nothing written), 3 cannot connect, 4 server error (nothing "
      "written), 5 partial import (some batches committed).");
  imp->add_option("files", io->files, "Input files, '-' for stdin")->required();
  imp->add_option("--format", io->format,
                  "json, jsonl, csv or tsv (default: from each file's extension)");
  imp->add_option("--prefix", io->prefix, "Prepend this to every key");
  imp->add_option("--ttl", io->ttl_seconds,
                  "Expire every key after SECONDS (rows with their own ttl/expire_at keep it)");
  imp->add_option("--key-col", io->columns.key_col,
                  "CSV/TSV: the key column, by header name or 1-based number (default: \"key\", "
                  "else the first column)");
  imp->add_option("--value-col", io->columns.value_col,
                  "CSV/TSV: the value column (default: \"value\"; without one, the whole row "
                  "is stored as a JSON object)");
  imp->add_option("--ttl-col", io->columns.ttl_col,
                  "CSV/TSV: a column of TTLs in seconds (default: \"ttl\" if present)");
  imp->add_option("--expire-at-col", io->columns.expire_at_col,
                  "CSV/TSV: a column of absolute expiry times in Unix ms (default: \"expire_at\" "
                  "if present)");
  imp->add_option("--batch-size", io->batch_size, "Rows per write batch")
      ->default_val(kDefaultBatchSize);
  imp->add_option("--pipeline", io->pipeline, "Write batches kept in flight at once")
      ->default_val(kDefaultPipeline);
  imp->add_option("--connections", io->connections,
                  "Connections writing in parallel (rows are spread by key, so each key's rows "
                  "keep their order)")
      ->default_val(kDefaultConnections);
  imp->add_flag("--atomic", io->atomic,
                "All or nothing: stage every row on the server, make them visible at once");
  imp->add_flag("--dry-run", io->dry_run, "Validate and count rows; write nothing");
  imp->add_option("--reject-file", io->reject_file,
                  "Write bad rows to this file (one JSON object per line) and go on");
  imp->add_option("--resume-from", io->resume_from,
                  "Skip the first N rows (as printed by a failed import)");
  imp->add_flag("-q,--quiet", io->quiet, "No progress and no summary");
  imp->callback([io, connect, exit_code, imp] {
    ImportOptions opts = *io;
    opts.quiet = opts.quiet || ParentQuiet(imp);
    *exit_code = RunImport(opts, connect);
  });

  auto eo = std::make_shared<ExportOptions>();
  CLI::App* ex = app.add_subcommand(
      "export", "Stream a consistent snapshot of the keys (or those under a prefix) to a file");
  ex->footer(
      "Rows are {\"key\", \"value\", \"expire_at\" (Unix ms, only for keys with a TTL)}; "
      "keys and values that are not valid UTF-8 are written as {\"base64\": \"...\"} in "
      "JSON/JSONL and as raw bytes (quoted) in CSV. `flin import` reads every format back.");
  ex->add_option("--prefix", eo->prefix, "Only keys starting with this prefix");
  ex->add_option("--format", eo->format,
                 "json, jsonl, csv or tsv (default: from -o's extension, else jsonl)");
  ex->add_option("-o,--output", eo->output, "Write to this file instead of stdout");
  ex->add_option("--count", eo->count, "Rows fetched per EXPORT.NEXT round trip")
      ->default_val(1000);
  ex->add_flag("-q,--quiet", eo->quiet, "No summary on stderr");
  ex->callback([eo, connect, exit_code, ex] {
    ExportOptions opts = *eo;
    opts.quiet = opts.quiet || ParentQuiet(ex);
    if (opts.count == 0) opts.count = 1;
    *exit_code = RunExport(opts, connect);
  });
}

}  // namespace flin::cli
