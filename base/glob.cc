#include "base/glob.h"

namespace flin {
namespace {

// Iterative glob matcher with single-star backtracking; same semantics as
// Redis' stringmatchlen (util.c) without its recursion depth problem.
bool MatchClass(std::string_view p, size_t* pi, unsigned char c) {
  // p[*pi] is just past '['.
  size_t i = *pi;
  bool negate = false, matched = false;
  if (i < p.size() && p[i] == '^') {
    negate = true;
    ++i;
  }
  while (i < p.size() && p[i] != ']') {
    if (p[i] == '\\' && i + 1 < p.size()) {
      ++i;
      if (static_cast<unsigned char>(p[i]) == c) matched = true;
      ++i;
    } else if (i + 2 < p.size() && p[i + 1] == '-' && p[i + 2] != ']') {
      unsigned char lo = p[i], hi = p[i + 2];
      if (lo > hi) std::swap(lo, hi);
      if (c >= lo && c <= hi) matched = true;
      i += 3;
    } else {
      if (static_cast<unsigned char>(p[i]) == c) matched = true;
      ++i;
    }
  }
  *pi = i < p.size() ? i + 1 : i;  // skip ']' (an unterminated class ends the pattern)
  return negate ? !matched : matched;
}

}  // namespace

bool GlobMatch(std::string_view p, std::string_view t) {
  size_t pi = 0, ti = 0;
  size_t star_p = std::string_view::npos, star_t = 0;
  while (ti < t.size()) {
    if (pi < p.size()) {
      char pc = p[pi];
      if (pc == '*') {
        while (pi < p.size() && p[pi] == '*') ++pi;
        if (pi == p.size()) return true;
        star_p = pi;
        star_t = ti;
        continue;
      }
      if (pc == '?') {
        ++pi;
        ++ti;
        continue;
      }
      if (pc == '[') {
        size_t np = pi + 1;
        if (MatchClass(p, &np, static_cast<unsigned char>(t[ti]))) {
          pi = np;
          ++ti;
          continue;
        }
      } else {
        size_t np = pi;
        if (pc == '\\' && pi + 1 < p.size()) np = pi + 1;
        if (p[np] == t[ti]) {
          pi = np + 1;
          ++ti;
          continue;
        }
      }
    }
    if (star_p == std::string_view::npos) return false;
    pi = star_p;
    ti = ++star_t;
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

std::string GlobLiteralPrefix(std::string_view p) {
  std::string out;
  for (size_t i = 0; i < p.size(); ++i) {
    char c = p[i];
    if (c == '*' || c == '?' || c == '[') break;
    if (c == '\\') {
      if (i + 1 >= p.size()) break;
      c = p[++i];
    }
    out.push_back(c);
  }
  return out;
}

}  // namespace flin
