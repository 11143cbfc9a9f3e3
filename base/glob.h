// Redis-compatible glob matching for KEYS and SCAN MATCH: `*`, `?`, `[abc]`,
// `[^a]`, `[a-z]` and `\x` escapes, over binary-safe strings.
#pragma once

#include <string>
#include <string_view>

namespace flin {

bool GlobMatch(std::string_view pattern, std::string_view text);

// The literal prefix every match must start with ("user:*" -> "user:"),
// letting a store turn a pattern into a range scan.
std::string GlobLiteralPrefix(std::string_view pattern);

}  // namespace flin
