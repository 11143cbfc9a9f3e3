// etcd_load: write load for etcd v3 through its JSON gRPC gateway, the etcd
// side of `bench/compare --cluster`. C keep-alive HTTP/1.1 connections, each
// with one request in flight (like redis-benchmark -c C -P 1), share N
// requests. Each request is a put (POST /v3/kv/put) or, with --ops K > 1, a
// transaction of K puts (POST /v3/kv/txn), which etcd commits as one Raft
// entry: the counterpart of an MSET of K keys. Keys are <prefix> plus a
// 12-digit number drawn uniformly from [0, keyspace) (redis-benchmark -r), or
// numbered 0..N*K-1 with --sequential so a test can count them afterwards.
// The K keys of one txn are always distinct (etcd rejects duplicates).
//
// Prints two CSV lines (header, figures): requests/s, keys/s, p50 and p99
// latency in ms, and errors. Exits 1 if any request failed.
//
//   etcd_load --endpoints 127.0.0.1:2379[,HOST:PORT...] [-n N] [-c C] [-d BYTES]
//             [-r KEYSPACE | --sequential] [--ops K] [--prefix P] [--name W]
//
// One thread drives all connections: on the project's 2-core machines the
// server, not the client, is meant to be the bottleneck, and redis-benchmark
// on the Flin side is single-threaded too.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <asio/co_spawn.hpp>
#include <asio/connect.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "bench/etcd_load/http.h"

namespace {

using asio::awaitable;
using asio::use_awaitable;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;

struct Endpoint {
  std::string host;
  std::string port;
  std::string host_port;  // for the Host header
};

struct Options {
  std::vector<Endpoint> endpoints;
  uint64_t requests = 10000;
  int connections = 50;
  uint64_t keyspace = 100000;
  bool sequential = false;
  int ops = 1;
  size_t value_bytes = 64;
  std::string prefix = "etcd_load/";
  std::string name;
  uint64_t seed = 0;
};

// Everything the connections share. One thread runs them all, so plain
// fields are enough.
struct Run {
  const Options* options;
  std::string value_b64;
  uint64_t next = 0;  // next request number to hand out
  uint64_t done = 0;
  uint64_t errors = 0;
  std::string first_error;
  std::vector<uint32_t> latencies_us;
  std::mt19937_64 rng;
};

std::string KeyFor(Run& run, uint64_t request, int op) {
  const Options& o = *run.options;
  uint64_t n = o.sequential ? request * o.ops + op
                            : std::uniform_int_distribution<uint64_t>(0, o.keyspace - 1)(run.rng);
  char digits[32];
  snprintf(digits, sizeof digits, "%012" PRIu64, n);
  return o.prefix + digits;
}

std::string BuildRequest(Run& run, const Endpoint& ep, uint64_t request) {
  const Options& o = *run.options;
  if (o.ops == 1) {
    return flin::bench::HttpPost(ep.host_port, "/v3/kv/put",
                                 flin::bench::PutBody(KeyFor(run, request, 0), run.value_b64));
  }
  std::vector<std::string> keys;
  keys.reserve(o.ops);
  // etcd refuses a txn that puts one key twice ("duplicate key given in txn
  // request"), so random keys are redrawn until the K keys differ.
  for (int i = 0; i < o.ops; ++i) {
    std::string key = KeyFor(run, request, i);
    while (std::find(keys.begin(), keys.end(), key) != keys.end()) key = KeyFor(run, request, i);
    keys.push_back(std::move(key));
  }
  return flin::bench::HttpPost(ep.host_port, "/v3/kv/txn",
                               flin::bench::TxnPutBody(keys, run.value_b64));
}

void RecordError(Run& run, std::string what) {
  ++run.errors;
  if (run.first_error.empty()) run.first_error = std::move(what);
}

// A gateway reply to a put or txn is 200 with a "header" object; failures
// are non-200 with {"error":...}. A txn without compares always succeeds,
// so "succeeded":false would mean the body was not understood.
bool ReplyOk(const flin::bench::HttpResponse& r, bool txn) {
  if (r.status != 200) return false;
  if (r.body.find("\"header\"") == std::string::npos) return false;
  if (r.body.find("\"error\"") != std::string::npos) return false;
  if (txn && r.body.find("\"succeeded\":true") == std::string::npos) return false;
  return true;
}

awaitable<void> Connection(Run& run, const Endpoint& ep) {
  auto executor = co_await asio::this_coro::executor;
  tcp::resolver resolver(executor);
  tcp::socket socket(executor);
  std::string buf;
  int failed_connects = 0;
  while (run.next < run.options->requests) {
    if (!socket.is_open()) {
      try {
        auto addrs = co_await resolver.async_resolve(ep.host, ep.port, use_awaitable);
        co_await asio::async_connect(socket, addrs, use_awaitable);
        socket.set_option(tcp::no_delay(true));
        buf.clear();
      } catch (const std::exception& e) {
        RecordError(run, "connect to " + ep.host_port + ": " + e.what());
        asio::error_code ignored;
        socket.close(ignored);
        // A dead endpoint would otherwise spin; give up on it after a few tries
        // and let the other connections finish the run.
        if (++failed_connects >= 3) co_return;
        continue;
      }
    }
    uint64_t request = run.next++;
    std::string wire = BuildRequest(run, ep, request);
    Clock::time_point start = Clock::now();
    try {
      co_await asio::async_write(socket, asio::buffer(wire), use_awaitable);
      flin::bench::HttpResponse response;
      for (;;) {
        auto parsed = flin::bench::ParseHttpResponse(buf, &response);
        if (!parsed.ok()) throw std::runtime_error(parsed.status().ToString());
        if (*parsed > 0) {
          buf.erase(0, *parsed);
          break;
        }
        char chunk[4096];
        size_t n = co_await socket.async_read_some(asio::buffer(chunk), use_awaitable);
        buf.append(chunk, n);
      }
      auto us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start);
      ++run.done;
      if (ReplyOk(response, run.options->ops > 1)) {
        run.latencies_us.push_back(
            static_cast<uint32_t>(std::min<int64_t>(us.count(), UINT32_MAX)));
      } else {
        RecordError(
            run, "HTTP " + std::to_string(response.status) + ": " + response.body.substr(0, 300));
      }
      if (!response.keep_alive) socket.close();
    } catch (const std::exception& e) {
      ++run.done;
      RecordError(run, std::string("request to ") + ep.host_port + ": " + e.what());
      asio::error_code ignored;
      socket.close(ignored);
    }
  }
}

bool ParseEndpoints(const std::string& list, std::vector<Endpoint>* out, std::string* error) {
  size_t start = 0;
  while (start <= list.size()) {
    size_t comma = list.find(',', start);
    std::string item =
        list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    start = comma == std::string::npos ? list.size() + 1 : comma + 1;
    if (item.rfind("http://", 0) == 0) item = item.substr(7);
    while (!item.empty() && item.back() == '/') item.pop_back();
    size_t colon = item.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == item.size()) {
      *error = "endpoint '" + item + "' is not HOST:PORT";
      return false;
    }
    out->push_back({item.substr(0, colon), item.substr(colon + 1), item});
  }
  return true;
}

double Percentile(const std::vector<uint32_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t rank = static_cast<size_t>(std::ceil(p * sorted.size()));
  if (rank == 0) rank = 1;
  return sorted[std::min(rank, sorted.size()) - 1] / 1000.0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  std::string endpoints;
  CLI::App app{"Write load for etcd v3 through its JSON gRPC gateway"};
  app.add_option("--endpoints", endpoints, "Client URLs HOST:PORT[,HOST:PORT...]")->required();
  app.add_option("-n,--requests", o.requests, "Total requests")->check(CLI::PositiveNumber);
  app.add_option("-c,--connections", o.connections, "Concurrent keep-alive connections")
      ->check(CLI::Range(1, 10000));
  app.add_option("-r,--keyspace", o.keyspace, "Random keys drawn from [0, KEYSPACE)")
      ->check(CLI::PositiveNumber);
  app.add_flag("--sequential", o.sequential, "Number keys 0..N*OPS-1 instead of random keys");
  app.add_option("--ops", o.ops, "Puts per request; > 1 sends a /v3/kv/txn")
      ->check(CLI::Range(1, 10000));
  app.add_option("-d,--value-bytes", o.value_bytes, "Value size in bytes");
  app.add_option("--prefix", o.prefix, "Key prefix");
  app.add_option("--name", o.name, "Workload name in the output (default put or txn<OPS>)");
  app.add_option("--seed", o.seed, "Random seed (default: from the clock)");
  CLI11_PARSE(app, argc, argv);
  std::string error;
  if (!ParseEndpoints(endpoints, &o.endpoints, &error)) {
    fprintf(stderr, "etcd_load: %s\n", error.c_str());
    return 2;
  }
  if (!o.sequential && static_cast<uint64_t>(o.ops) > o.keyspace) {
    fprintf(stderr, "etcd_load: --ops %d needs a keyspace of at least %d distinct keys\n", o.ops,
            o.ops);
    return 2;
  }
  if (o.name.empty()) o.name = o.ops == 1 ? "put" : "txn" + std::to_string(o.ops);

  Run run;
  run.options = &o;
  run.value_b64 = flin::bench::Base64Encode(std::string(o.value_bytes, 'x'));
  run.rng.seed(o.seed != 0 ? o.seed : Clock::now().time_since_epoch().count());
  run.latencies_us.reserve(o.requests);

  asio::io_context io(1);
  int connections = static_cast<int>(std::min<uint64_t>(o.connections, o.requests));
  for (int i = 0; i < connections; ++i) {
    const Endpoint& ep = o.endpoints[i % o.endpoints.size()];
    asio::co_spawn(io, Connection(run, ep), asio::detached);
  }
  Clock::time_point start = Clock::now();
  io.run();
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();

  std::vector<uint32_t>& lat = run.latencies_us;
  std::sort(lat.begin(), lat.end());
  uint64_t ok = lat.size();
  double rps = seconds > 0 ? ok / seconds : 0;
  printf(
      "workload,endpoints,connections,requests,ops,value_bytes,seconds,requests_per_s,keys_per_s,"
      "p50_ms,p99_ms,errors\n");
  printf("%s,%zu,%d,%" PRIu64 ",%d,%zu,%.3f,%.0f,%.0f,%.3f,%.3f,%" PRIu64 "\n", o.name.c_str(),
         o.endpoints.size(), connections, ok, o.ops, o.value_bytes, seconds, rps, rps * o.ops,
         Percentile(lat, 0.50), Percentile(lat, 0.99), run.errors);
  if (run.errors > 0 || ok != o.requests) {
    fprintf(stderr, "etcd_load: %" PRIu64 " of %" PRIu64 " requests failed; first: %s\n",
            o.requests - ok, o.requests, run.first_error.c_str());
    return 1;
  }
  return 0;
}
