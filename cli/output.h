// How flin prints replies: human (redis-cli style, for terminals), plain
// (exact bytes, for pipes and --raw) and JSON (--json). Formatting is pure
// (returns strings) so it is unit-tested without a server; Printer adds the
// stdout plumbing, -0 and --no-newline.
//
// Thread-safety: Printer is thread-compatible.
#pragma once

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "net/client.h"

namespace flin::cli {

enum class OutputMode {
  kHuman,  // 1) "a"  (integer) 3  (nil): stdout is a terminal
  kPlain,  // raw bytes, one item per line: stdout is not a terminal, or --raw
  kJson,   // --json
};

struct OutputOptions {
  OutputMode mode = OutputMode::kPlain;
  bool color = false;       // ANSI colours in human mode (terminal and no NO_COLOR)
  bool nul = false;         // -0: list items terminated by NUL instead of newline
  bool no_newline = false;  // --no-newline: no newline after the last item
  bool quiet = false;       // --quiet: nothing on stdout
};

// redis-cli's terminal rendering of a reply, without a trailing newline.
std::string FormatHuman(const client::Reply& reply, bool color = false);
// redis-cli's --raw rendering: bulk bytes as is, arrays one element per
// `sep`, nil as the empty string; no trailing separator.
std::string FormatPlain(const client::Reply& reply, char sep = '\n');

std::string ToBase64(std::string_view data);
// A value as JSON: a string when it is valid UTF-8, else {"base64": "..."}.
nlohmann::json ValueToJson(std::string_view value);
// Generic reply to JSON: status -> string, integer -> number, bulk ->
// ValueToJson, nil -> null, array -> array, error -> {"error": "..."}.
nlohmann::json ReplyToJson(const client::Reply& reply);
// Compact JSON text; invalid UTF-8 never reaches here (ValueToJson) except in
// object keys, which are repaired with U+FFFD.
std::string DumpJson(const nlohmann::json& j);

class Printer {
 public:
  explicit Printer(OutputOptions opts, std::FILE* out = stdout) : opts_(opts), out_(out) {}

  const OutputOptions& options() const { return opts_; }
  OutputMode mode() const { return opts_.mode; }

  // One value (GET): human -> "value" quoted, plain -> exact bytes with no
  // newline when stdout is not a terminal, json -> string/base64.
  void Value(std::string_view value, bool add_newline);
  // A generic server reply in the current mode, followed by a newline
  // (human/json) or the plain separator.
  void Reply(const client::Reply& reply);
  // A list streamed item by item (KEYS, SCAN, MGET): call Begin, Item..., End.
  void BeginList();
  void ListItem(std::string_view item);
  void ListNil();
  void EndList();
  // Raw text followed by newline (respects --quiet and --no-newline).
  void Line(std::string_view text);
  // A JSON document followed by newline.
  void Json(const nlohmann::json& j);
  void Flush() { std::fflush(out_); }

 private:
  void Write(std::string_view s);
  void Newline();
  OutputOptions opts_;
  std::FILE* out_;
  size_t list_index_ = 0;
  bool list_pending_sep_ = false;
};

}  // namespace flin::cli
