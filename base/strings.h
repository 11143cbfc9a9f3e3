// Small string helpers shared by the daemon and the CLI.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace flin {

// Strict base-10 int64: optional sign, digits only, no spaces, no overflow.
std::optional<int64_t> ParseInt64(std::string_view s);
// Case-insensitive ASCII equality.
bool EqualsIgnoreCase(std::string_view a, std::string_view b);
std::string ToLower(std::string_view s);
std::string ToUpper(std::string_view s);
// Printable rendering of binary data for logs and errors ("a\x00b").
std::string Printable(std::string_view s, size_t max_len = 64);

}  // namespace flin
