// Splitting a REPL or piped-mode line into command arguments, with
// redis-cli's quoting rules (sdssplitargs): words separated by blanks,
// "double quotes" with C escapes (\n \r \t \b \a \\ \" \xHH) and
// 'single quotes' where only \' is special. Also the reverse: rendering a
// value the way redis-cli shows it ("a\x00b").
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace flin::cli {

struct SplitResult {
  enum class Kind {
    kOk,          // args holds the words
    kIncomplete,  // a quote is still open: read another line, join with '\n', retry
    kError,       // malformed (e.g. a closing quote followed by a non-blank); error says why
  };
  Kind kind = Kind::kOk;
  std::vector<std::string> args;
  std::string error;
};

SplitResult SplitArgs(std::string_view line);

// redis-cli's display form of a bulk string: double-quoted, with \n \r \t \a
// \b \\ \" escaped and other non-printable bytes as \xHH. Valid UTF-8 above
// ASCII is kept as is so non-English text stays readable.
std::string QuoteForDisplay(std::string_view s);

// Quotes a word for SplitArgs only when it needs it (blank, quote, backslash,
// non-printable or empty), so Quote(x) round-trips through SplitArgs.
std::string QuoteArg(std::string_view s);

// True when s is well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF).
bool IsUtf8(std::string_view s);

}  // namespace flin::cli
