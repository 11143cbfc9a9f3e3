// flind: the Flin daemon. Foreground process (systemd style): parses flags,
// locks the data dir, opens the node (log + state.db, replaying what
// state.db had not committed), serves RESP2 on a unix socket and TCP, and
// stops cleanly on SIGTERM/SIGINT: stop accepting, finish in-flight
// batches, write the last replies, close SQLite.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/redirect_error.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <optional>
#include <thread>

#include "base/clock.h"
#include "base/log.h"
#include "daemon/cluster_node.h"
#include "daemon/config.h"
#include "daemon/node.h"
#include "daemon/server.h"
#include "store/command.h"

namespace flin::daemon {
namespace {

// Holds <data-dir>/LOCK with flock for the life of the process: a second
// flind on the same data dir is refused with the holder's pid.
Result<int> LockDataDir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::IOError("cannot create data dir " + dir + ": " + ec.message());
  ::chmod(dir.c_str(), 0700);
  std::string path = dir + "/LOCK";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return Status::FromErrno("cannot open " + path, errno);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    char buf[32] = {0};
    ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    std::string pid = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "unknown";
    while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
    ::close(fd);
    return Status::Busy("data dir " + dir + " is in use by another flind (pid " + pid +
                        "); stop it first or choose another --data-dir");
  }
  std::string pid = std::to_string(getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) < 0) {
    return Status::FromErrno("cannot write " + path, errno);
  }
  return fd;
}

uint64_t CommittedIndex(Engine& node) {
  return node.WithStore([](store::KvStore& kv) { return kv.committed_index(); });
}

// Proposes bounded sweeps of expired keys. Expiry decisions use the entry's
// timestamp, so every replica deletes the same keys.
asio::awaitable<void> ExpirySweeper(Engine& node, asio::io_context& io, bool* stopping) {
  asio::steady_timer t(io);
  constexpr int64_t kBatch = 1000;
  // HasExpired looks at committed state.db, where a sweep's deletions show
  // only after the next generation commit: after a sweep that found
  // nothing, wait for that commit instead of proposing empty sweeps.
  std::optional<uint64_t> idle_at_commit;
  while (!*stopping) {
    t.expires_after(std::chrono::milliseconds(100));
    std::error_code ec;
    co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (*stopping) break;
    if (!node.ShouldSweep()) continue;
    if (idle_at_commit && CommittedIndex(node) == *idle_at_commit) continue;
    idle_at_commit.reset();
    auto has = node.HasExpired(WallMillis());
    if (!has.ok() || !*has) continue;
    store::Command cmd;
    cmd.op = store::Op::kSweep;
    cmd.now_ms = WallMillis();
    cmd.arg = kBatch;
    std::string payload;
    store::EncodeCommand(cmd, &payload);
    // Wait for this sweep to apply before checking again (one in flight).
    asio::steady_timer done(io, asio::steady_timer::time_point::max());
    int64_t swept = -1;
    node.Propose(std::move(payload), [&done, &swept](store::ApplyResult r) {
      if (r.kind == store::ApplyResult::Kind::kInt) swept = r.n;
      done.cancel();
    });
    co_await done.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (swept == 0) idle_at_commit = CommittedIndex(node);
  }
}

int Run(int argc, char** argv) {
  Config config;
  int exit_code = 0;
  if (!ParseConfig(argc, argv, &config, &exit_code)) return exit_code;
  Status st = FinishConfig(&config);
  if (!st.ok()) {
    std::cerr << "flind: " << st.message() << "\n";
    return 2;
  }
  log::SetLevel(config.log_level);
  auto lock = LockDataDir(config.data_dir);
  if (!lock.ok()) {
    std::cerr << "flind: " << lock.status().message() << "\n";
    return 1;
  }

  asio::io_context io(1);
  NodeOptions nopts;
  nopts.data_dir = config.data_dir;
  nopts.cache_bytes = static_cast<int64_t>(config.cache_mb) << 20;
  nopts.row_cache_bytes = static_cast<size_t>(config.row_cache_mb) << 20;
  nopts.apply_commit_ms = static_cast<int64_t>(config.apply_commit_ms);
  nopts.log_compact_bytes = config.log_compact_mb << 20;
  nopts.write_buffer_bytes = static_cast<size_t>(config.write_buffer_mb) << 20;
  std::unique_ptr<Engine> engine;
  Status open_status;
  if (config.cluster_flags() || ClusterNode::IsClusterDataDir(config.data_dir)) {
    ClusterOptions copts;
    copts.node = nopts;
    copts.bootstrap = config.bootstrap;
    copts.join = config.join;
    copts.initial_cluster = config.initial_cluster;
    copts.node_id = config.node_id;
    copts.peer_listen = config.peer_listen;
    copts.peer_advertise = config.peer_advertise;
    copts.secret = config.cluster_secret;
    copts.requirepass = config.requirepass;
    copts.tick_ms = static_cast<int64_t>(config.tick_ms);
    copts.request_timeout_ms = static_cast<int64_t>(config.request_timeout_ms);
    copts.snapshot_entries = config.snapshot_entries;
    auto cn = ClusterNode::Open(copts, io);
    if (cn.ok()) {
      engine = std::move(cn).value();
    } else {
      open_status = cn.status();
    }
  } else {
    auto n = Node::Open(nopts, io);
    if (n.ok()) {
      engine = std::move(n).value();
    } else {
      open_status = n.status();
    }
  }
  if (!engine) {
    std::cerr << "flind: cannot open data dir " << config.data_dir << ": " << open_status.message()
              << "\n";
    return 1;
  }
  Engine* node = engine.get();
  Server server(io, config, *node);
  st = server.Start();
  if (!st.ok()) {
    std::cerr << "flind: " << st.message() << "\n";
    node->Stop();
    return 1;
  }
  LOG_INFO << "flind ready (pid " << getpid() << ", data dir " << config.data_dir << ")";

  bool stopping = false;
  asio::co_spawn(io, ExpirySweeper(*node, io, &stopping), asio::detached);
  asio::signal_set signals(io, SIGINT, SIGTERM);
  std::thread stopper;
  asio::steady_timer deadline(io);
  signals.async_wait([&](std::error_code ec, int sig) {
    if (ec) return;
    LOG_INFO << "signal " << sig << ": shutting down";
    stopping = true;
    server.StopAccepting();
    // Node::Stop blocks until accepted batches are durable and applied; run
    // it off the io thread so their replies can still be written.
    stopper = std::thread([&] {
      node->Stop();
      asio::post(io, [&] {
        server.ShutdownSessions();
        // Wait for sessions to write their last replies, but never longer
        // than 5 s: clients that do not read must not hold the shutdown.
        asio::co_spawn(
            io,
            [&]() -> asio::awaitable<void> {
              int64_t until = MonoMillis() + 5000;
              while (server.connected_clients() > 0 && MonoMillis() < until) {
                deadline.expires_after(std::chrono::milliseconds(10));
                co_await deadline.async_wait(asio::use_awaitable);
              }
              io.stop();
            },
            asio::detached);
      });
    });
  });
  ::signal(SIGPIPE, SIG_IGN);
  io.run();
  if (stopper.joinable()) stopper.join();
  node->Stop();
  LOG_INFO << "flind stopped cleanly";
  ::close(*lock);
  return 0;
}

}  // namespace
}  // namespace flin::daemon

int main(int argc, char** argv) { return flin::daemon::Run(argc, argv); }
