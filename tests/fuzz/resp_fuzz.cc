// Fuzz target for net::RequestParser (libFuzzer entry point; fuzz_driver.cc
// runs it without libFuzzer under g++).
//
// The input is a raw client byte stream. Each input is parsed under default
// and under tiny limits, once fed whole and again fed in pieces (random split
// points, and byte by byte when short), and the checks are:
//   - no crash, no sanitizer report, no uncaught exception;
//   - the Parse contract: consumed <= data size, kCommand has arguments and
//     consumed > 0, kIncomplete has consumed == 0 and no arguments, kError has
//     a "Protocol error: " text and stays sticky;
//   - every argument lies inside the data passed in or inside storage();
//   - the commands and the final error are the same however the stream is
//     split (the parser's saved progress never changes the result);
//   - work is linear: bytes_scanned() is bounded by a small multiple of the
//     input size plus the number of calls;
//   - every command survives a round trip through the multibulk encoding;
//   - the first line, parsed as an inline command, splits exactly as a
//     straightforward port of Redis' sdssplitargs (below) splits it.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "net/resp.h"

namespace {

using flin::net::RequestLimits;
using flin::net::RequestParser;

[[noreturn]] void Fail(const char* what, std::string_view detail = {}) {
  std::fprintf(stderr, "resp_fuzz: invariant broken: %s %.*s\n", what,
               static_cast<int>(std::min<size_t>(detail.size(), 200)), detail.data());
  std::abort();
}

void Check(bool cond, const char* what, std::string_view detail = {}) {
  if (!cond) Fail(what, detail);
}

struct Outcome {
  std::vector<std::vector<std::string>> commands;
  std::string error;
  size_t unconsumed = 0;
  bool operator==(const Outcome& o) const {
    return commands == o.commands && error == o.error && unconsumed == o.unconsumed;
  }
};

bool Within(std::string_view inner, std::string_view outer) {
  if (inner.empty()) return true;  // an empty view may point anywhere valid
  const char* b = outer.data();
  return inner.data() >= b && inner.data() + inner.size() <= b + outer.size();
}

uint64_t Next(uint64_t* state) {  // splitmix64: splits depend only on the input
  uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

std::string Encode(const std::vector<std::string>& args) {
  std::string s = "*" + std::to_string(args.size()) + "\r\n";
  for (const std::string& a : args) s += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
  return s;
}

// Feeds `input` in pieces ending at the offsets `next_cut` returns (0 = the
// rest), checking the Parse contract on every call.
template <typename NextCut>
Outcome Feed(std::string_view input, const RequestLimits& limits, bool authenticated,
             NextCut next_cut) {
  RequestParser parser(limits);
  parser.set_authenticated(authenticated);
  Outcome out;
  std::string buf;
  size_t off = 0;
  size_t fed = 0;
  uint64_t calls = 0;
  std::vector<std::string_view> args;
  while (fed < input.size() && out.error.empty()) {
    size_t cut = next_cut(fed);
    if (cut <= fed || cut > input.size()) cut = input.size();
    buf.append(input.substr(fed, cut - fed));
    fed = cut;
    for (;;) {
      std::string_view data = std::string_view(buf).substr(off);
      size_t consumed = ~size_t{0};
      ++calls;
      auto r = parser.Parse(data, &consumed, &args);
      Check(consumed <= data.size(), "consumed > size");
      if (r == RequestParser::Result::kCommand) {
        Check(consumed > 0, "command with consumed == 0");
        Check(!args.empty(), "command without arguments");
        std::vector<std::string> copy;
        for (std::string_view a : args) {
          Check(Within(a, data) || Within(a, parser.storage()), "argument outside data/storage");
          copy.emplace_back(a);
        }
        out.commands.push_back(std::move(copy));
        off += consumed;
        continue;
      }
      Check(consumed == 0, "consumed != 0 without a command");
      Check(args.empty(), "arguments without a command");
      if (r == RequestParser::Result::kError) {
        out.error = parser.error();
        Check(out.error.rfind("Protocol error: ", 0) == 0, "bad error text", out.error);
        Check(out.error.find_first_of("\r\n") == std::string::npos, "CR/LF in error text");
        size_t again = 1;
        Check(parser.Parse(data, &again, &args) == RequestParser::Result::kError && again == 0,
              "error not sticky");
        break;
      }
      size_t wanted = parser.BytesWanted();
      Check(wanted == 0 || wanted > data.size(), "BytesWanted already satisfied");
      break;
    }
    if (off > 0 && off >= buf.size() / 2) {  // move the data, as a real buffer would
      buf.erase(0, off);
      off = 0;
    }
  }
  if (out.error.empty()) out.unconsumed = buf.size() - off;
  // Each byte is searched about once, digits and inline lines once more, and
  // a CR whose LF has not arrived once per call.
  Check(parser.bytes_scanned() <= 3 * input.size() + calls, "non-linear scanning");
  return out;
}

void RunConfig(std::string_view input, const RequestLimits& limits, bool authenticated,
               uint64_t seed) {
  Outcome whole = Feed(input, limits, authenticated, [](size_t) { return size_t{0}; });

  uint64_t state = seed;
  Outcome split = Feed(input, limits, authenticated, [&](size_t fed) {
    uint64_t r = Next(&state);
    size_t step = (r & 3) == 0 ? 1 + (r >> 8) % 3 : 1 + (r >> 8) % 97;
    return fed + step;
  });
  Check(whole == split, "whole and split feeds disagree");

  if (input.size() <= 4096) {
    Outcome bytewise = Feed(input, limits, authenticated, [](size_t fed) { return fed + 1; });
    Check(whole == bytewise, "whole and byte-by-byte feeds disagree");
  }

  for (const auto& command : whole.commands) {
    std::string encoded = Encode(command);
    RequestLimits roomy;  // the command passed `limits`; its encoding need not
    RequestParser parser(roomy);
    size_t consumed = 0;
    std::vector<std::string_view> args;
    Check(parser.Parse(encoded, &consumed, &args) == RequestParser::Result::kCommand,
          "re-encoded command does not parse", encoded);
    Check(consumed == encoded.size(), "re-encoded command not fully consumed");
    Check(args.size() == command.size(), "re-encoded command changed arity");
    for (size_t i = 0; i < args.size(); ++i) {
      Check(args[i] == command[i], "re-encoded argument differs");
    }
  }
}

bool IsSpaceC(int c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

int Hex(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Redis' sdssplitargs, transcribed character by character, except that the
// end of the line (not NUL) terminates it: the parser's faster splitter must
// agree with it on every line. False on unbalanced quotes.
bool ReferenceSplit(std::string_view line, std::vector<std::string>* out) {
  auto at = [&](size_t i) -> int {
    return i < line.size() ? static_cast<unsigned char>(line[i]) : -1;
  };
  size_t p = 0;
  for (;;) {
    while (at(p) != -1 && IsSpaceC(at(p))) p++;
    if (at(p) == -1) return true;
    bool inq = false, insq = false, done = false;
    std::string current;
    while (!done) {
      const int c = at(p);
      if (inq) {
        if (c == '\\' && at(p + 1) == 'x' && Hex(at(p + 2)) >= 0 && Hex(at(p + 3)) >= 0) {
          current += static_cast<char>(Hex(at(p + 2)) * 16 + Hex(at(p + 3)));
          p += 3;
        } else if (c == '\\' && at(p + 1) != -1) {
          p++;
          int e = at(p);
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
          current += static_cast<char>(e);
        } else if (c == '"') {
          if (at(p + 1) != -1 && !IsSpaceC(at(p + 1))) return false;
          done = true;
        } else if (c == -1) {
          return false;
        } else {
          current += static_cast<char>(c);
        }
      } else if (insq) {
        if (c == '\\' && at(p + 1) == '\'') {
          p++;
          current += '\'';
        } else if (c == '\'') {
          if (at(p + 1) != -1 && !IsSpaceC(at(p + 1))) return false;
          done = true;
        } else if (c == -1) {
          return false;
        } else {
          current += static_cast<char>(c);
        }
      } else {
        switch (c) {
          case ' ':
          case '\n':
          case '\r':
          case '\t':
          case -1:
            done = true;
            break;
          case '"':
            inq = true;
            break;
          case '\'':
            insq = true;
            break;
          default:
            current += static_cast<char>(c);
            break;
        }
      }
      if (c != -1) p++;
    }
    out->push_back(std::move(current));
  }
}

void CheckInlineAgainstReference(std::string_view input) {
  std::string_view line = input.substr(0, input.find('\n'));
  if (line.empty() || line[0] == '*' || line.size() > RequestLimits{}.max_inline_len) return;
  std::string request(line);
  request += '\n';
  if (line.back() == '\r') line.remove_suffix(1);  // the parser strips one CR before LF
  std::vector<std::string> expected;
  const bool balanced = ReferenceSplit(line, &expected);

  RequestParser parser;
  size_t consumed = 0;
  std::vector<std::string_view> args;
  auto r = parser.Parse(request, &consumed, &args);
  if (!balanced) {
    Check(r == RequestParser::Result::kError &&
              parser.error() == "Protocol error: unbalanced quotes in request",
          "reference says unbalanced, parser disagrees", request);
  } else if (expected.empty()) {
    Check(r == RequestParser::Result::kIncomplete, "reference says blank line", request);
  } else {
    Check(r == RequestParser::Result::kCommand && consumed == request.size(),
          "reference split a command, parser did not", request);
    Check(args.size() == expected.size(), "inline arity differs from reference", request);
    for (size_t i = 0; i < args.size(); ++i) {
      Check(args[i] == expected[i], "inline argument differs from reference", request);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  // The input alone decides the split points and whether the client counts as
  // authenticated, so every failure reproduces from the input.
  uint64_t hash = 1469598103934665603ull;
  for (unsigned char c : input) hash = (hash ^ c) * 1099511628211ull;
  const bool authenticated = (hash & 1) == 0;

  RunConfig(input, RequestLimits{}, authenticated, hash);

  RequestLimits tiny;
  tiny.max_bulk_len = 64;
  tiny.max_args = 8;
  tiny.max_inline_len = 32;
  tiny.unauth_max_args = 3;
  tiny.unauth_max_bulk_len = 16;
  RunConfig(input, tiny, authenticated, hash >> 1);

  CheckInlineAgainstReference(input);
  return 0;
}
