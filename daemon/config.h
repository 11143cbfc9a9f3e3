// flind's configuration: every setting is a command-line flag and, with the
// same name, a key of the --config file (CLI11's TOML/INI format).
// Thread-compatible value type; read-only once the daemon runs.
#pragma once

#include <cstdint>
#include <string>

#include "base/log.h"
#include "base/status.h"

namespace flin::daemon {

struct Config {
  std::string data_dir;                   // default: $XDG_DATA_HOME/flin, else ~/.local/share/flin
  std::string socket_path;                // default: <data_dir>/flin.sock; "none" disables
  std::string listen = "127.0.0.1:7379";  // "none" disables TCP
  std::string requirepass;                // from --requirepass or --requirepass-file
  log::Level log_level = log::Level::kInfo;

  // Limits (each has a clear error when hit).
  uint64_t max_clients = 10000;
  uint64_t max_bulk_len = 64ull << 20;     // one argument
  uint64_t max_args = 1024 * 1024;         // arguments per command
  uint64_t max_batch_bytes = 64ull << 20;  // one write entry (a whole MSET)
  uint64_t client_output_buffer_limit = 256ull << 20;
  uint64_t timeout_seconds = 0;  // idle client timeout; 0 = never (Redis' default)

  // Storage tuning.
  uint64_t cache_mb = 256;      // SQLite page cache
  uint64_t row_cache_mb = 128;  // rows point reads fetched, kept in memory (0: off)
  // Start a write-buffer generation at least this often. Longer generations
  // write a key rewritten within one to SQLite once: at 50 ms, cluster
  // MSET(100) over 100k keys upserted nearly every write and spent up to 7
  // us of CPU per key (3.7-4.2 at 250 ms; docs/PERFORMANCE.md).
  uint64_t apply_commit_ms = 250;
  uint64_t write_buffer_mb = 256;  // applied writes buffered in memory before SQLite
  uint64_t log_compact_mb = 256;   // compact the log once it is this big

  // Cluster (see flind(8) "CLUSTERS"). Without bootstrap/join/initial_cluster
  // and without a cluster.json in the data dir, flind runs standalone.
  bool bootstrap = false;
  std::string join;             // a member's client address HOST:PORT
  std::string initial_cluster;  // ID=HOST:PORT,...
  uint64_t node_id = 0;
  std::string peer_listen = "127.0.0.1:7380";
  std::string peer_advertise;  // default: peer_listen
  std::string cluster_secret;  // from --cluster-secret-file
  uint64_t request_timeout_ms = 5000;
  uint64_t tick_ms = 100;
  uint64_t snapshot_entries = 100000;
  bool cluster_flags() const { return bootstrap || !join.empty() || !initial_cluster.empty(); }

  // TCP host/port split from `listen` (valid when !listen_none()).
  std::string listen_host;
  uint16_t listen_port = 0;
  bool listen_none() const { return listen == "none"; }
  bool socket_none() const { return socket_path == "none"; }
};

// Parses argv. On --help/--version prints and sets *exit_code (0); on a bad
// flag/config prints a clear error and sets *exit_code (2). Returns false in
// both cases: the caller exits with *exit_code.
bool ParseConfig(int argc, char** argv, Config* config, int* exit_code);

// Resolves defaults and checks cross-field rules (protected mode).
Status FinishConfig(Config* config);

// True for 127.0.0.0/8, ::1 and "localhost".
bool IsLoopbackHost(const std::string& host);

}  // namespace flin::daemon
