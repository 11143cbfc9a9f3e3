#include "cli/output.h"

#include "cli/args.h"

namespace flin::cli {
namespace {

constexpr std::string_view kRed = "\x1b[31m";
constexpr std::string_view kDim = "\x1b[2m";
constexpr std::string_view kReset = "\x1b[0m";

std::string Paint(std::string_view text, std::string_view colour, bool on) {
  if (!on) return std::string(text);
  std::string s(colour);
  s += text;
  s += kReset;
  return s;
}

void AppendHuman(const client::Reply& r, bool color, const std::string& indent, std::string* out) {
  using T = client::Reply::Type;
  switch (r.type) {
    case T::kStatus:
      *out += r.str;
      break;
    case T::kError:
      *out += Paint("(error) " + r.str, kRed, color);
      break;
    case T::kInteger:
      *out += Paint("(integer) ", kDim, color) + std::to_string(r.integer);
      break;
    case T::kBulk:
      *out += QuoteForDisplay(r.str);
      break;
    case T::kNil:
    case T::kNilArray:
      *out += Paint("(nil)", kDim, color);
      break;
    case T::kArray: {
      if (r.elements.empty()) {
        *out += Paint("(empty array)", kDim, color);
        break;
      }
      const size_t width = std::to_string(r.elements.size()).size();
      for (size_t i = 0; i < r.elements.size(); ++i) {
        std::string num = std::to_string(i + 1);
        std::string prefix = std::string(width - num.size(), ' ') + num + ") ";
        if (i > 0) *out += "\n" + indent;
        *out += Paint(prefix, kDim, color);
        AppendHuman(r.elements[i], color, indent + std::string(prefix.size(), ' '), out);
      }
      break;
    }
  }
}

void AppendPlain(const client::Reply& r, char sep, std::string* out) {
  using T = client::Reply::Type;
  switch (r.type) {
    case T::kStatus:
    case T::kError:
    case T::kBulk:
      *out += r.str;
      break;
    case T::kInteger:
      *out += std::to_string(r.integer);
      break;
    case T::kNil:
    case T::kNilArray:
      break;
    case T::kArray:
      for (size_t i = 0; i < r.elements.size(); ++i) {
        if (i > 0) out->push_back(sep);
        AppendPlain(r.elements[i], sep, out);
      }
      break;
  }
}

}  // namespace

std::string FormatHuman(const client::Reply& reply, bool color) {
  std::string out;
  AppendHuman(reply, color, "", &out);
  return out;
}

std::string FormatPlain(const client::Reply& reply, char sep) {
  std::string out;
  AppendPlain(reply, sep, &out);
  return out;
}

std::string ToBase64(std::string_view data) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < data.size(); i += 3) {
    uint32_t v = (uint8_t(data[i]) << 16) | (uint8_t(data[i + 1]) << 8) | uint8_t(data[i + 2]);
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
    out.push_back(kAlphabet[v & 63]);
  }
  if (i + 1 == data.size()) {
    uint32_t v = uint8_t(data[i]) << 16;
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out += "==";
  } else if (i + 2 == data.size()) {
    uint32_t v = (uint8_t(data[i]) << 16) | (uint8_t(data[i + 1]) << 8);
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
    out.push_back('=');
  }
  return out;
}

nlohmann::json ValueToJson(std::string_view value) {
  if (IsUtf8(value)) return nlohmann::json(std::string(value));
  return nlohmann::json{{"base64", ToBase64(value)}};
}

nlohmann::json ReplyToJson(const client::Reply& r) {
  using T = client::Reply::Type;
  switch (r.type) {
    case T::kStatus:
      return r.str;
    case T::kError:
      return nlohmann::json{{"error", ValueToJson(r.str)}};
    case T::kInteger:
      return r.integer;
    case T::kBulk:
      return ValueToJson(r.str);
    case T::kNil:
    case T::kNilArray:
      return nullptr;
    case T::kArray: {
      nlohmann::json arr = nlohmann::json::array();
      for (const auto& e : r.elements) arr.push_back(ReplyToJson(e));
      return arr;
    }
  }
  return nullptr;
}

std::string DumpJson(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void Printer::Write(std::string_view s) {
  if (opts_.quiet || s.empty()) return;
  std::fwrite(s.data(), 1, s.size(), out_);
}

void Printer::Newline() {
  if (!opts_.no_newline) Write("\n");
}

void Printer::Value(std::string_view value, bool add_newline) {
  switch (opts_.mode) {
    case OutputMode::kHuman:
      Write(QuoteForDisplay(value));
      Newline();
      break;
    case OutputMode::kPlain:
      Write(value);
      if (add_newline) Newline();
      break;
    case OutputMode::kJson:
      Json(ValueToJson(value));
      break;
  }
}

void Printer::Reply(const client::Reply& reply) {
  switch (opts_.mode) {
    case OutputMode::kHuman:
      Write(FormatHuman(reply, opts_.color));
      Newline();
      break;
    case OutputMode::kPlain: {
      const char sep = opts_.nul ? '\0' : '\n';
      if (reply.type == client::Reply::Type::kArray) {
        BeginList();
        for (const auto& e : reply.elements) {
          if (e.is_nil()) {
            ListNil();
          } else {
            ListItem(FormatPlain(e, sep));
          }
        }
        EndList();
      } else {
        Write(FormatPlain(reply, sep));
        Newline();
      }
      break;
    }
    case OutputMode::kJson:
      Json(ReplyToJson(reply));
      break;
  }
}

void Printer::BeginList() {
  list_index_ = 0;
  list_pending_sep_ = false;
  if (opts_.mode == OutputMode::kJson) Write("[");
}

void Printer::ListItem(std::string_view item) {
  ++list_index_;
  switch (opts_.mode) {
    case OutputMode::kHuman:
      Write(Paint(std::to_string(list_index_) + ") ", kDim, opts_.color));
      Write(QuoteForDisplay(item));
      Write("\n");
      break;
    case OutputMode::kPlain:
      // Items are terminated (find -print0 style) so `xargs -0` and
      // `read -d ''` see every item, including an empty last one.
      if (list_pending_sep_) Write("\n");
      Write(item);
      if (opts_.nul) {
        if (!opts_.quiet) std::fwrite("", 1, 1, out_);
      } else {
        list_pending_sep_ = true;
      }
      break;
    case OutputMode::kJson:
      if (list_index_ > 1) Write(",");
      Write(DumpJson(ValueToJson(item)));
      break;
  }
}

void Printer::ListNil() {
  ++list_index_;
  switch (opts_.mode) {
    case OutputMode::kHuman:
      Write(Paint(std::to_string(list_index_) + ") ", kDim, opts_.color));
      Write(Paint("(nil)", kDim, opts_.color));
      Write("\n");
      break;
    case OutputMode::kPlain:
      if (list_pending_sep_) Write("\n");
      if (opts_.nul) {
        if (!opts_.quiet) std::fwrite("", 1, 1, out_);
      } else {
        list_pending_sep_ = true;
      }
      break;
    case OutputMode::kJson:
      if (list_index_ > 1) Write(",");
      Write("null");
      break;
  }
}

void Printer::EndList() {
  switch (opts_.mode) {
    case OutputMode::kHuman:
      if (list_index_ == 0) {
        Write(Paint("(empty array)", kDim, opts_.color));
        Write("\n");
      }
      break;
    case OutputMode::kPlain:
      if (list_pending_sep_) Newline();
      break;
    case OutputMode::kJson:
      Write("]");
      Newline();
      break;
  }
  list_pending_sep_ = false;
}

void Printer::Line(std::string_view text) {
  Write(text);
  Newline();
}

void Printer::Json(const nlohmann::json& j) {
  Write(DumpJson(j));
  Newline();
}

}  // namespace flin::cli
