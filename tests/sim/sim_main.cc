// raft_sim: runs the deterministic Raft simulator over a range of seeds.
//
//   raft_sim --seeds 125 --first-seed 1        # CI: 125 seeds
//   raft_sim --seed 4242 --steps 20000 -v      # replay one seed exactly
//   raft_sim --seeds 10000 --steps 100000      # long soak
//   raft_sim --unsafe-commit --expect-violation --seeds 300
//       # proves the checkers bite: succeeds only if some seed fails
//
// Exit status: 0 when every seed passed (or, with --expect-violation, when
// at least one seed was caught), 1 otherwise, 2 on bad usage.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "tests/sim/sim.h"

namespace {

void Usage(const char* argv0) {
  fprintf(stderr,
          "usage: %s [--seed S | --seeds N [--first-seed S]] [--steps M]\n"
          "          [--mix random|storm] [--unsafe-commit] [--expect-violation] [-v]\n",
          argv0);
}

bool ParseU64(const char* s, uint64_t* out) {
  char* end = nullptr;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0') return false;
  *out = v;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t first_seed = 1, seeds = 1, steps = 20000;
  std::string mix = "random";
  bool single = false, unsafe = false, expect_violation = false, verbose = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](uint64_t* out) {
      if (i + 1 >= argc || !ParseU64(argv[i + 1], out)) {
        Usage(argv[0]);
        exit(2);
      }
      ++i;
    };
    if (a == "--seed") {
      value(&first_seed);
      single = true;
    } else if (a == "--first-seed") {
      value(&first_seed);
    } else if (a == "--seeds") {
      value(&seeds);
    } else if (a == "--steps") {
      value(&steps);
    } else if (a == "--mix") {
      if (i + 1 >= argc) {
        Usage(argv[0]);
        return 2;
      }
      mix = argv[++i];
      if (mix != "random" && mix != "storm") {
        Usage(argv[0]);
        return 2;
      }
    } else if (a == "--unsafe-commit") {
      unsafe = true;
    } else if (a == "--expect-violation") {
      expect_violation = true;
    } else if (a == "-v" || a == "--verbose") {
      verbose = true;
    } else {
      Usage(argv[0]);
      return 2;
    }
  }
  if (single) seeds = 1;
  auto start = std::chrono::steady_clock::now();
  uint64_t passed = 0, failed = 0, inconclusive = 0;
  for (uint64_t s = first_seed; s < first_seed + seeds; ++s) {
    flin::sim::SimOptions opt;
    opt.seed = s;
    opt.steps = static_cast<int>(steps);
    opt.unsafe_commit = unsafe;
    opt.mix = mix;
    opt.verbose = verbose;
    flin::sim::SimResult r = flin::sim::RunSimulation(opt);
    if (r.linearizability_inconclusive) ++inconclusive;
    if (verbose || single) {
      printf(
          "seed %lu: %s | mix: %s | committed=%lu ops=%lu acked=%lu reads=%lu "
          "elections=%lu snapshots=%lu confchanges=%lu crashes=%lu\n",
          s, r.ok ? "ok" : "FAILED", r.mix.c_str(), r.committed, r.client_ops, r.acked_writes,
          r.reads, r.elections, r.snapshots_installed, r.conf_changes, r.crashes);
    }
    if (r.ok) {
      ++passed;
      continue;
    }
    ++failed;
    printf(
        "SIMULATION FAILURE seed=%lu: %s\n  mix: %s\n  replay: %s --seed %lu --steps %lu --mix "
        "%s%s -v\n",
        s, r.failure.c_str(), r.mix.c_str(), argv[0], s, steps, mix.c_str(),
        unsafe ? " --unsafe-commit" : "");
    if (expect_violation) break;  // one catch is the proof
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  printf(
      "raft_sim: seeds %lu..%lu, %lu steps each: %lu ok, %lu failed, %lu inconclusive "
      "linearizability checks, %.1fs\n",
      first_seed, first_seed + passed + failed - 1, steps, passed, failed, inconclusive, secs);
  if (expect_violation) {
    if (failed > 0) {
      printf("the deliberately broken rule was caught, as it must be\n");
      return 0;
    }
    printf("the deliberately broken rule was NOT caught: the checkers are too weak\n");
    return 1;
  }
  return failed == 0 ? 0 : 1;
}
