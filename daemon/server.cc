#include "daemon/server.h"

#include <sys/stat.h>
#include <unistd.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include "base/clock.h"
#include "base/log.h"
#include "daemon/commands.h"
#include "daemon/session.h"

namespace flin::daemon {

Server::Server(asio::io_context& io, const Config& config, Engine& engine)
    : io_(io),
      config_(config),
      engine_(engine),
      commands_(std::make_unique<Commands>(*this)),
      start_ms_(WallMillis()) {}

Server::~Server() = default;

uint16_t Server::tcp_port() const {
  std::error_code ec;
  return tcp_ ? tcp_->local_endpoint(ec).port() : 0;
}

Status Server::Start() {
  if (!config_.socket_none()) {
    // The data-dir lock is held, so a socket file left here is stale.
    ::unlink(config_.socket_path.c_str());
    unix_ = std::make_unique<asio::local::stream_protocol::acceptor>(io_);
    std::error_code ec;
    unix_->open(asio::local::stream_protocol(), ec);
    // Create the socket file as 0600 from the start (no window where others
    // could connect).
    mode_t old = ::umask(0177);
    if (!ec) unix_->bind(asio::local::stream_protocol::endpoint(config_.socket_path), ec);
    ::umask(old);
    if (!ec) unix_->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return Status::IOError("cannot listen on unix socket " + config_.socket_path + ": " +
                             ec.message());
    }
    LOG_INFO << "listening on unix:" << config_.socket_path;
    asio::co_spawn(io_, AcceptUnix(), asio::detached);
  }
  if (!config_.listen_none()) {
    std::error_code ec;
    auto addr = asio::ip::make_address(config_.listen_host, ec);
    if (ec && config_.listen_host == "localhost")
      addr = asio::ip::make_address("127.0.0.1");
    else if (ec) {
      return Status::InvalidArgument("--listen " + config_.listen + ": '" + config_.listen_host +
                                     "' is not an IP address");
    }
    asio::ip::tcp::endpoint ep(addr, config_.listen_port);
    tcp_ = std::make_unique<asio::ip::tcp::acceptor>(io_);
    tcp_->open(ep.protocol(), ec);
    if (!ec) tcp_->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) tcp_->bind(ep, ec);
    if (!ec) tcp_->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return Status::IOError("cannot listen on " + config_.listen + ": " + ec.message());
    }
    LOG_INFO << "listening on " << config_.listen_host << ":" << tcp_port();
    asio::co_spawn(io_, AcceptTcp(), asio::detached);
  }
  return Status::Ok();
}

template <typename Sock>
void Server::Admit(Sock sock, bool is_unix) {
  stats_.connections_received++;
  if (sessions_.size() >= config_.max_clients) {
    stats_.rejected_connections++;
    static const char kFull[] = "-ERR max number of clients reached\r\n";
    std::error_code ec;
    asio::write(sock, asio::buffer(kFull, sizeof kFull - 1), ec);
    sock.close(ec);
    LOG_WARN << "rejected a connection: max-clients (" << config_.max_clients << ") reached";
    return;
  }
  if (!is_unix) {
    std::error_code ec;
    sock.set_option(asio::ip::tcp::no_delay(true), ec);
  }
  auto s = std::make_shared<Session>(*this, Session::Socket(std::move(sock)), next_id_++, is_unix);
  sessions_.emplace(s.get(), s);
  asio::co_spawn(io_, s->Run(), asio::detached);
}

asio::awaitable<void> Server::AcceptTcp() {
  while (tcp_ && tcp_->is_open()) {
    std::error_code ec;
    auto sock = co_await tcp_->async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (ec == asio::error::operation_aborted || !tcp_->is_open()) break;
    if (ec) {
      // EMFILE and friends: log, back off a little, keep serving.
      LOG_WARN << "accept: " << ec.message();
      asio::steady_timer t(io_, std::chrono::milliseconds(50));
      co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    Admit(std::move(sock), false);
  }
}

asio::awaitable<void> Server::AcceptUnix() {
  while (unix_ && unix_->is_open()) {
    std::error_code ec;
    auto sock = co_await unix_->async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (ec == asio::error::operation_aborted || !unix_->is_open()) break;
    if (ec) {
      LOG_WARN << "accept: " << ec.message();
      asio::steady_timer t(io_, std::chrono::milliseconds(50));
      co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    Admit(std::move(sock), true);
  }
}

void Server::StopAccepting() {
  std::error_code ec;
  if (tcp_) tcp_->close(ec);
  if (unix_) {
    unix_->close(ec);
    ::unlink(config_.socket_path.c_str());
  }
}

void Server::ShutdownSessions() {
  for (auto& [ptr, weak] : sessions_) {
    if (auto s = weak.lock()) s->Shutdown();
  }
}

void Server::Forget(Session* s) { sessions_.erase(s); }

}  // namespace flin::daemon
