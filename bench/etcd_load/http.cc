#include "bench/etcd_load/http.h"

#include <cstdint>

#include "base/strings.h"

namespace flin::bench {

namespace {

constexpr char kBase64Alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// Appends a JSON string literal; keys and values reach here base64-encoded or
// as plain ASCII paths, so only '"' and '\' need escaping.
void AppendQuoted(std::string* out, std::string_view s) {
  out->push_back('"');
  for (char c : s) {
    if (c == '"' || c == '\\') out->push_back('\\');
    out->push_back(c);
  }
  out->push_back('"');
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool ParseHex(std::string_view s, size_t* out) {
  if (s.empty() || s.size() > 15) return false;
  size_t v = 0;
  for (char c : s) {
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      d = c - 'A' + 10;
    } else {
      return false;
    }
    v = v * 16 + d;
  }
  *out = v;
  return true;
}

}  // namespace

std::string Base64Encode(std::string_view data) {
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    uint32_t v = (uint8_t(data[i]) << 16) | (uint8_t(data[i + 1]) << 8) | uint8_t(data[i + 2]);
    out.push_back(kBase64Alphabet[(v >> 18) & 63]);
    out.push_back(kBase64Alphabet[(v >> 12) & 63]);
    out.push_back(kBase64Alphabet[(v >> 6) & 63]);
    out.push_back(kBase64Alphabet[v & 63]);
  }
  size_t rest = data.size() - i;
  if (rest > 0) {
    uint32_t v = uint8_t(data[i]) << 16;
    if (rest == 2) v |= uint8_t(data[i + 1]) << 8;
    out.push_back(kBase64Alphabet[(v >> 18) & 63]);
    out.push_back(kBase64Alphabet[(v >> 12) & 63]);
    out.push_back(rest == 2 ? kBase64Alphabet[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

std::string PutBody(std::string_view key, std::string_view value_b64) {
  std::string out = "{\"key\":";
  AppendQuoted(&out, Base64Encode(key));
  out += ",\"value\":";
  AppendQuoted(&out, value_b64);
  out += "}";
  return out;
}

std::string TxnPutBody(const std::vector<std::string>& keys, std::string_view value_b64) {
  std::string out = "{\"success\":[";
  for (size_t i = 0; i < keys.size(); ++i) {
    if (i > 0) out += ",";
    out += "{\"request_put\":";
    out += PutBody(keys[i], value_b64);
    out += "}";
  }
  out += "]}";
  return out;
}

std::string HttpPost(std::string_view host_port, std::string_view path, std::string_view body) {
  std::string out;
  out.reserve(body.size() + 128);
  out += "POST ";
  out += path;
  out += " HTTP/1.1\r\nHost: ";
  out += host_port;
  out += "\r\nContent-Type: application/json\r\nContent-Length: ";
  out += std::to_string(body.size());
  out += "\r\n\r\n";
  out += body;
  return out;
}

Result<size_t> ParseHttpResponse(std::string_view buf, HttpResponse* out) {
  size_t head_end = buf.find("\r\n\r\n");
  if (head_end == std::string_view::npos) {
    if (buf.size() > 64 * 1024) return Status::Protocol("HTTP response head over 64 KiB");
    return size_t{0};
  }
  std::string_view head = buf.substr(0, head_end);
  size_t line_end = head.find("\r\n");
  std::string_view status_line = head.substr(0, line_end);
  // "HTTP/1.1 200 OK"
  if (status_line.substr(0, 5) != "HTTP/" || status_line.size() < 12 || status_line[8] != ' ') {
    return Status::Protocol("bad HTTP status line: " + Printable(status_line));
  }
  auto code = ParseInt64(status_line.substr(9, 3));
  if (!code || *code < 100 || *code > 999) {
    return Status::Protocol("bad HTTP status code: " + Printable(status_line));
  }
  bool http10 = status_line.substr(0, 8) == "HTTP/1.0";
  bool keep_alive = !http10;
  bool chunked = false;
  long long content_length = -1;
  std::string_view rest =
      line_end == std::string_view::npos ? std::string_view() : head.substr(line_end + 2);
  while (!rest.empty()) {
    size_t eol = rest.find("\r\n");
    std::string_view line = rest.substr(0, eol);
    rest = eol == std::string_view::npos ? std::string_view() : rest.substr(eol + 2);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
      return Status::Protocol("bad HTTP header line: " + Printable(line));
    }
    std::string_view name = Trim(line.substr(0, colon));
    std::string_view value = Trim(line.substr(colon + 1));
    if (EqualsIgnoreCase(name, "content-length")) {
      auto n = ParseInt64(value);
      if (!n || *n < 0) return Status::Protocol("bad Content-Length: " + Printable(value));
      content_length = *n;
    } else if (EqualsIgnoreCase(name, "transfer-encoding")) {
      chunked = EqualsIgnoreCase(value, "chunked");
      if (!chunked) return Status::Protocol("unsupported Transfer-Encoding: " + Printable(value));
    } else if (EqualsIgnoreCase(name, "connection")) {
      if (EqualsIgnoreCase(value, "close")) keep_alive = false;
      if (EqualsIgnoreCase(value, "keep-alive")) keep_alive = true;
    }
  }
  size_t pos = head_end + 4;
  std::string body;
  if (chunked) {
    // chunk = size-in-hex [;ext] CRLF data CRLF; last chunk has size 0, then
    // optional trailers and a blank line.
    for (;;) {
      size_t eol = buf.find("\r\n", pos);
      if (eol == std::string_view::npos) return size_t{0};
      std::string_view size_text = buf.substr(pos, eol - pos);
      size_text = Trim(size_text.substr(0, size_text.find(';')));
      size_t size;
      if (!ParseHex(size_text, &size)) {
        return Status::Protocol("bad chunk size: " + Printable(size_text));
      }
      pos = eol + 2;
      if (size == 0) break;
      if (buf.size() < pos + size + 2) return size_t{0};
      if (buf.substr(pos + size, 2) != "\r\n")
        return Status::Protocol("chunk not followed by CRLF");
      body.append(buf.substr(pos, size));
      pos += size + 2;
    }
    for (;;) {  // trailers up to the blank line
      size_t eol = buf.find("\r\n", pos);
      if (eol == std::string_view::npos) return size_t{0};
      bool blank = eol == pos;
      pos = eol + 2;
      if (blank) break;
    }
  } else if (content_length >= 0) {
    if (buf.size() - pos < static_cast<size_t>(content_length)) return size_t{0};
    body.assign(buf.substr(pos, content_length));
    pos += content_length;
  } else if (*code != 204 && *code != 304 && *code >= 200) {
    return Status::Protocol("HTTP response without Content-Length or chunked body");
  }
  out->status = static_cast<int>(*code);
  out->body = std::move(body);
  out->keep_alive = keep_alive;
  return pos;
}

}  // namespace flin::bench
