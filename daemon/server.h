// Server: the listeners (unix socket, TCP) and the set of live sessions.
// Lives on the io thread.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/local/stream_protocol.hpp>
#include <cstdint>
#include <memory>
#include <unordered_map>

#include "base/status.h"
#include "daemon/config.h"

namespace flin::daemon {

class Commands;
class Engine;
class Session;

struct ServerStats {
  uint64_t connections_received = 0;
  uint64_t rejected_connections = 0;
  uint64_t commands = 0;
  uint64_t protocol_errors = 0;
  uint64_t bytes_in = 0;
};

class Server {
 public:
  Server(asio::io_context& io, const Config& config, Engine& engine);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds the unix socket (mode 0600) and the TCP listener; starts accepting.
  Status Start();
  // Stops accepting new connections (first step of a clean shutdown).
  void StopAccepting();
  // Ends every session once its in-flight replies are written.
  void ShutdownSessions();

  const Config& config() const { return config_; }
  Engine& engine() { return engine_; }
  Commands& commands() { return *commands_; }
  ServerStats& stats() { return stats_; }
  size_t connected_clients() const { return sessions_.size(); }
  int64_t start_ms() const { return start_ms_; }
  uint16_t tcp_port() const;
  void Forget(Session* s);

 private:
  asio::awaitable<void> AcceptTcp();
  asio::awaitable<void> AcceptUnix();
  template <typename Sock>
  void Admit(Sock sock, bool is_unix);

  asio::io_context& io_;
  const Config& config_;
  Engine& engine_;
  std::unique_ptr<Commands> commands_;
  std::unique_ptr<asio::ip::tcp::acceptor> tcp_;
  std::unique_ptr<asio::local::stream_protocol::acceptor> unix_;
  std::unordered_map<Session*, std::weak_ptr<Session>> sessions_;
  uint64_t next_id_ = 1;
  int64_t start_ms_;
  ServerStats stats_;
};

}  // namespace flin::daemon
