#include "daemon/config.h"

#include <arpa/inet.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <fstream>
#include <iostream>

#include "base/strings.h"

namespace flin::daemon {

std::string DefaultDataDir() {
  if (const char* x = std::getenv("XDG_DATA_HOME"); x && *x) return std::string(x) + "/flin";
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : ".") + "/.local/share/flin";
}

bool IsLoopbackHost(const std::string& host) {
  if (host == "localhost" || host == "::1") return true;
  in_addr a4{};
  if (inet_pton(AF_INET, host.c_str(), &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
  return false;
}

bool ParseConfig(int argc, char** argv, Config* c, int* exit_code) {
  CLI::App app{
      "flind: the Flin daemon, a durable replicated key-value store with atomic batches.\n"
      "Speaks RESP2 (the Redis protocol) on a unix socket and TCP. Runs in the foreground,\n"
      "logs to stderr, stops cleanly on SIGTERM/SIGINT.",
      "flind"};
  app.set_version_flag("--version", "flind 0.1.0");
  app.set_config("--config", "", "Read settings from a TOML/INI file (keys = flag names)");
  app.option_defaults()->always_capture_default();
  std::string log_level = "info";
  std::string requirepass_file;
  app.add_option("--data-dir", c->data_dir,
                 "Data directory (default $XDG_DATA_HOME/flin, else ~/.local/share/flin)");
  app.add_option("--socket", c->socket_path,
                 "Unix socket path, mode 0600 (default <data-dir>/flin.sock; 'none' disables)");
  app.add_option("--listen", c->listen, "TCP address HOST:PORT, or 'none' to disable");
  app.add_option("--requirepass", c->requirepass,
                 "Password clients must send with AUTH (needed to listen beyond loopback)");
  app.add_option("--requirepass-file", requirepass_file,
                 "Read the password from this file (first line)");
  app.add_option("--log-level", log_level, "debug, info, warn or error");
  app.add_option("--max-clients", c->max_clients, "Maximum simultaneous client connections")
      ->check(CLI::PositiveNumber);
  app.add_option("--max-bulk-len", c->max_bulk_len, "Largest single argument in bytes")
      ->check(CLI::PositiveNumber);
  app.add_option("--max-args", c->max_args, "Most arguments in one command")
      ->check(CLI::PositiveNumber);
  app.add_option("--max-batch-bytes", c->max_batch_bytes,
                 "Largest write batch (one MSET / entry) in bytes")
      ->check(CLI::PositiveNumber);
  app.add_option("--client-output-buffer-limit", c->client_output_buffer_limit,
                 "Most reply bytes buffered for one client before it is disconnected")
      ->check(CLI::PositiveNumber);
  app.add_option("--timeout", c->timeout_seconds,
                 "Close client connections idle this many seconds (0 = never)");
  app.add_option("--cache-mb", c->cache_mb,
                 "SQLite page cache per connection (apply, reads) in MiB")
      ->check(CLI::PositiveNumber);
  app.add_option("--row-cache-mb", c->row_cache_mb,
                 "Memory for rows GET/MGET read from state.db, answered from memory the next "
                 "time (MiB; 0 = off)");
  app.add_option("--apply-commit-ms", c->apply_commit_ms,
                 "Start writing applied entries to state.db at least this often (ms)")
      ->check(CLI::PositiveNumber);
  app.add_option("--write-buffer-mb", c->write_buffer_mb,
                 "Most applied writes (MiB) kept in memory ahead of state.db; more waits for "
                 "SQLite")
      ->check(CLI::PositiveNumber);
  app.add_option("--log-compact-mb", c->log_compact_mb,
                 "Compact the Raft log once it exceeds this many MiB")
      ->check(CLI::PositiveNumber);
  std::string secret_file;
  app.add_flag("--bootstrap", c->bootstrap,
               "Start a new cluster with this node as its only member (first start only)");
  app.add_option("--join", c->join,
                 "Join the cluster of the member whose client address is HOST:PORT (first start "
                 "only)");
  app.add_option("--initial-cluster", c->initial_cluster,
                 "Form a cluster from ID=PEERADDR,... given identically to every initial member "
                 "(first start only)");
  app.add_option("--node-id", c->node_id,
                 "This node's id (default 1 with --bootstrap, allocated with --join)")
      ->check(CLI::PositiveNumber);
  app.add_option("--peer-listen", c->peer_listen, "Raft peer transport address HOST:PORT");
  app.add_option("--peer-advertise", c->peer_advertise,
                 "Peer address other members dial (default: --peer-listen)");
  app.add_option("--cluster-secret-file", secret_file,
                 "File holding the shared cluster secret (required in cluster mode)");
  app.add_option("--request-timeout-ms", c->request_timeout_ms,
                 "How long a write or linearizable read waits for a leader/quorum before "
                 "-TRYAGAIN")
      ->check(CLI::PositiveNumber);
  app.add_option("--tick-ms", c->tick_ms, "Raft tick; elections time out after 10-20 ticks")
      ->check(CLI::Range(uint64_t{5}, uint64_t{10000}));
  app.add_option("--snapshot-entries", c->snapshot_entries,
                 "Snapshot state.db and compact the Raft log after this many applied entries")
      ->check(CLI::PositiveNumber);
  app.footer(
      "Files: <data-dir>/state.db (SQLite), <data-dir>/log/ (Raft log), <data-dir>/LOCK,\n"
      "<data-dir>/cluster.json and <data-dir>/snap/ (cluster mode).\n"
      "Environment: XDG_DATA_HOME, HOME. See flind(8).");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    *exit_code = app.exit(e);
    return false;
  } catch (const CLI::CallForVersion& e) {
    *exit_code = app.exit(e);
    return false;
  } catch (const CLI::ParseError& e) {
    std::cerr << "flind: " << e.what() << "\nRun 'flind --help' for usage.\n";
    *exit_code = 2;
    return false;
  }
  if (!log::ParseLevel(log_level, &c->log_level)) {
    std::cerr << "flind: --log-level: '" << log_level
              << "' is not one of debug, info, warn, error\n";
    *exit_code = 2;
    return false;
  }
  if (!requirepass_file.empty()) {
    std::ifstream in(requirepass_file);
    if (!in) {
      std::cerr << "flind: --requirepass-file: cannot read '" << requirepass_file << "'\n";
      *exit_code = 2;
      return false;
    }
    std::getline(in, c->requirepass);
    if (!c->requirepass.empty() && c->requirepass.back() == '\r') c->requirepass.pop_back();
    if (c->requirepass.empty()) {
      std::cerr << "flind: --requirepass-file: '" << requirepass_file
                << "' has an empty first line\n";
      *exit_code = 2;
      return false;
    }
  }
  if (!secret_file.empty()) {
    std::ifstream in(secret_file);
    if (!in) {
      std::cerr << "flind: --cluster-secret-file: cannot read '" << secret_file << "'\n";
      *exit_code = 2;
      return false;
    }
    std::string secret((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
    if (secret.empty()) {
      std::cerr << "flind: --cluster-secret-file: '" << secret_file << "' is empty\n";
      *exit_code = 2;
      return false;
    }
    c->cluster_secret = std::move(secret);
  }
  return true;
}

Status FinishConfig(Config* c) {
  if (c->data_dir.empty()) c->data_dir = DefaultDataDir();
  if (c->socket_path.empty()) c->socket_path = c->data_dir + "/flin.sock";
  if (c->socket_none() && c->listen_none()) {
    return Status::InvalidArgument("--socket none and --listen none: nothing to serve on");
  }
  if (!c->listen_none()) {
    std::string l = c->listen;
    size_t colon = l.rfind(':');
    if (colon == std::string::npos) {
      return Status::InvalidArgument("--listen '" + l + "': expected HOST:PORT or 'none'");
    }
    std::string host = l.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
      host = host.substr(1, host.size() - 2);
    }
    auto port = ParseInt64(l.substr(colon + 1));
    if (!port || *port < 0 || *port > 65535 || host.empty()) {
      return Status::InvalidArgument("--listen '" + l +
                                     "': expected HOST:PORT with a port 0-65535");
    }
    c->listen_host = host;
    c->listen_port = static_cast<uint16_t>(*port);
    // Protected mode: never expose an unauthenticated store beyond this host.
    if (!IsLoopbackHost(host) && c->requirepass.empty()) {
      return Status::InvalidArgument(
          "--listen " + l +
          " is not a loopback address and no password is set: refusing to expose an "
          "unauthenticated store (set --requirepass or --requirepass-file, or listen on "
          "127.0.0.1)");
    }
  }
  if (int{c->bootstrap} + int{!c->join.empty()} + int{!c->initial_cluster.empty()} > 1) {
    return Status::InvalidArgument(
        "--bootstrap, --join and --initial-cluster are alternatives: give one of them");
  }
  if (c->socket_path.size() >= 108) {
    return Status::InvalidArgument("--socket '" + c->socket_path +
                                   "' is longer than a unix socket path may be (107 bytes)");
  }
  return Status::Ok();
}

}  // namespace flin::daemon
