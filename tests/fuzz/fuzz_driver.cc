// A standalone driver for libFuzzer-style targets, for compilers without
// libFuzzer (g++). It runs LLVMFuzzerTestOneInput over a seed corpus, then
// over a fixed number of mutations drawn from a fixed seed, so a CI run is
// short and every failure reproduces:
//
//   resp_fuzz [--iterations N] [--seed S] [--max-len BYTES] corpus_dir_or_file...
//
// A failing input is written to ./fuzz-crash-<pid>.bin before the process
// dies; pass that file back as the only argument to replay it.
//
// Without coverage feedback this is a smoke fuzzer: the mutations are biased
// towards protocol tokens so they reach the parser's error paths quickly.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

// The input being run, for the crash handler.
const std::string* g_current = nullptr;

void OnCrash(int sig) {
  if (g_current != nullptr) {
    char path[64];
    std::snprintf(path, sizeof(path), "fuzz-crash-%d.bin", static_cast<int>(getpid()));
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      ssize_t ignored = write(fd, g_current->data(), g_current->size());
      (void)ignored;
      close(fd);
      char msg[128];
      int n = std::snprintf(msg, sizeof(msg), "fuzz_driver: failing input written to ./%s\n", path);
      if (n > 0) ignored = write(2, msg, std::min<size_t>(static_cast<size_t>(n), sizeof(msg)));
    }
  }
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

void Run(const std::string& input) {
  g_current = &input;
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(input.data()), input.size());
  g_current = nullptr;
}

bool ReadFile(const std::filesystem::path& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  return true;
}

// Protocol fragments mutations splice in.
const std::vector<std::string>& Tokens() {
  static const std::vector<std::string> kTokens = {"\r\n",
                                                   "\r",
                                                   "\n",
                                                   "*",
                                                   "$",
                                                   "*1\r\n",
                                                   "*2\r\n",
                                                   "*0\r\n",
                                                   "*-1\r\n",
                                                   "$0\r\n\r\n",
                                                   "$1\r\nx\r\n",
                                                   "$3\r\nSET\r\n",
                                                   "-1",
                                                   "0",
                                                   "1048577",
                                                   "536870913",
                                                   "99999999999999999999",
                                                   "\"",
                                                   "'",
                                                   "\\",
                                                   "\\x41",
                                                   "\\x",
                                                   "\\'",
                                                   "\\\"",
                                                   " ",
                                                   "\t",
                                                   "\v",
                                                   std::string(1, '\0'),
                                                   "PING\r\n",
                                                   "SET k \"v v\"\r\n",
                                                   "\xff"};
  return kTokens;
}

std::string Mutate(std::string s, const std::vector<std::string>& pool, std::mt19937_64& rng,
                   size_t max_len) {
  auto pick = [&](size_t n) { return n == 0 ? size_t{0} : static_cast<size_t>(rng() % n); };
  const int rounds = 1 + static_cast<int>(rng() % 6);
  for (int i = 0; i < rounds; ++i) {
    switch (rng() % 9) {
      case 0:  // flip a bit
        if (!s.empty()) s[pick(s.size())] ^= static_cast<char>(1u << (rng() % 8));
        break;
      case 1:  // overwrite a byte
        if (!s.empty()) s[pick(s.size())] = static_cast<char>(rng());
        break;
      case 2:  // insert a random byte
        s.insert(pick(s.size() + 1), 1, static_cast<char>(rng()));
        break;
      case 3: {  // erase a range
        if (s.empty()) break;
        size_t at = pick(s.size());
        s.erase(at, 1 + pick(std::min<size_t>(16, s.size() - at)));
        break;
      }
      case 4: {  // duplicate a range
        if (s.empty()) break;
        size_t at = pick(s.size());
        size_t len = 1 + pick(std::min<size_t>(64, s.size() - at));
        s.insert(pick(s.size() + 1), s.substr(at, len));
        break;
      }
      case 5:
      case 6: {  // insert a protocol token
        const std::string& t = Tokens()[pick(Tokens().size())];
        s.insert(pick(s.size() + 1), t);
        break;
      }
      case 7: {  // splice with another corpus entry
        const std::string& other = pool[pick(pool.size())];
        s = s.substr(0, pick(s.size() + 1)) + other.substr(pick(other.size() + 1));
        break;
      }
      case 8:  // truncate
        s.resize(pick(s.size() + 1));
        break;
    }
  }
  if (s.size() > max_len) s.resize(max_len);
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t iterations = 20000;
  uint64_t seed = 1;
  size_t max_len = 4096;
  std::vector<std::string> paths;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if ((a == "--iterations" || a == "--seed" || a == "--max-len") && i + 1 < argc) {
      uint64_t v = std::strtoull(argv[++i], nullptr, 10);
      if (a == "--iterations") iterations = v;
      if (a == "--seed") seed = v;
      if (a == "--max-len") max_len = v;
    } else if (a == "-h" || a == "--help") {
      std::printf("usage: %s [--iterations N] [--seed S] [--max-len BYTES] corpus...\n", argv[0]);
      return 0;
    } else {
      paths.emplace_back(a);
    }
  }
  std::signal(SIGABRT, OnCrash);
  std::signal(SIGSEGV, OnCrash);
  std::signal(SIGBUS, OnCrash);
  std::signal(SIGFPE, OnCrash);
  std::signal(SIGILL, OnCrash);

  std::vector<std::string> corpus;
  for (const std::string& p : paths) {
    std::error_code ec;
    if (std::filesystem::is_directory(p, ec)) {
      std::vector<std::filesystem::path> files;
      for (const auto& entry : std::filesystem::directory_iterator(p)) {
        if (entry.is_regular_file()) files.push_back(entry.path());
      }
      std::sort(files.begin(), files.end());  // fixed order: runs reproduce
      for (const auto& f : files) {
        std::string data;
        if (ReadFile(f, &data)) corpus.push_back(std::move(data));
      }
    } else {
      std::string data;
      if (!ReadFile(p, &data)) {
        std::fprintf(stderr, "fuzz_driver: cannot read %s\n", p.c_str());
        return 2;
      }
      corpus.push_back(std::move(data));
    }
  }
  const auto start = std::chrono::steady_clock::now();
  for (const std::string& input : corpus) Run(input);
  if (corpus.empty()) corpus.emplace_back();

  // Mutants join the pool now and then, so mutations can stack up.
  std::vector<std::string> pool = corpus;
  std::mt19937_64 rng(seed);
  for (uint64_t i = 0; i < iterations; ++i) {
    std::string input = Mutate(pool[rng() % pool.size()], pool, rng, max_len);
    Run(input);
    if (i % 64 == 0 && pool.size() < 4096) pool.push_back(std::move(input));
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("fuzz_driver: %zu corpus inputs + %llu mutations (seed %llu) passed in %.2fs\n",
              corpus.size(), static_cast<unsigned long long>(iterations),
              static_cast<unsigned long long>(seed), secs);
  return 0;
}
