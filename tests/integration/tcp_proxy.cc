#include "tests/integration/tcp_proxy.h"

#include <array>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <atomic>
#include <future>
#include <map>
#include <set>

namespace flin::test {
namespace {

using asio::awaitable;
using asio::ip::tcp;

// One proxied connection: the accepted socket and the one dialed to the target.
struct Pipe {
  explicit Pipe(tcp::socket accepted)
      : client(std::move(accepted)), server(client.get_executor()) {}
  tcp::socket client;
  tcp::socket server;
  TcpProxy::Tag tag = 0;
  bool closed = false;
};

// What is cut, for all connections or for one tag.
struct Rule {
  bool cut = false;
  std::array<bool, 2> drop = {false, false};  // by direction index
};

class LinkImpl : public TcpProxy::Link, public std::enable_shared_from_this<LinkImpl> {
 public:
  LinkImpl(asio::io_context& io, uint16_t target_port)
      : io_(io),
        acceptor_(io),
        target_(asio::ip::address_v4::loopback(), target_port),
        target_port_(target_port) {}

  Status Listen(uint16_t listen_port) {
    std::error_code ec;
    tcp::endpoint ep(asio::ip::address_v4::loopback(), listen_port);
    acceptor_.open(ep.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(ep, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return Status::IOError("proxy cannot listen on 127.0.0.1:" + std::to_string(listen_port) +
                             ": " + ec.message());
    }
    port_ = acceptor_.local_endpoint().port();
    asio::co_spawn(io_, AcceptLoop(shared_from_this()), asio::detached);
    return Status::Ok();
  }

  uint16_t port() const override { return port_; }
  uint16_t target_port() const override { return target_port_; }

  void Cut() override {
    OnIo([this] {
      all_.cut = true;
      CloseAll();
    });
  }
  void CutOneWay(TcpProxy::Direction d) override {
    OnIo([this, d] { all_.drop[Index(d)] = true; });
  }
  void Heal() override {
    OnIo([this] {
      all_ = Rule{};
      tags_.clear();
    });
  }
  void SetTagger(size_t prefix_bytes, TcpProxy::Tagger tagger) override {
    OnIo([&] {
      prefix_bytes_ = prefix_bytes;
      tagger_ = std::move(tagger);
    });
  }
  void CutTag(TcpProxy::Tag tag) override {
    OnIo([this, tag] {
      tags_[tag].cut = true;
      auto pipes = pipes_;
      for (const auto& p : pipes) {
        if (p->tag == tag) Close(p);
      }
    });
  }
  void CutTagOneWay(TcpProxy::Tag tag, TcpProxy::Direction d) override {
    OnIo([this, tag, d] { tags_[tag].drop[Index(d)] = true; });
  }
  void HealTag(TcpProxy::Tag tag) override {
    OnIo([this, tag] { tags_.erase(tag); });
  }
  void Reset() override {
    OnIo([this] { CloseAll(); });
  }

  TcpProxy::Stats stats() const override {
    TcpProxy::Stats s;
    s.accepted = accepted_;
    s.refused = refused_;
    s.open = open_;
    s.bytes_to_target = bytes_[0];
    s.bytes_from_target = bytes_[1];
    s.dropped_to_target = dropped_[0];
    s.dropped_from_target = dropped_[1];
    return s;
  }

  // On the io thread: closes the acceptor and every connection, so that all
  // pending operations finish and the io_context runs out of work.
  void Shutdown() {
    std::error_code ec;
    acceptor_.close(ec);
    CloseAll();
  }

 private:
  static int Index(TcpProxy::Direction d) { return d == TcpProxy::Direction::kToTarget ? 0 : 1; }

  // Runs fn on the io thread and waits for it.
  void OnIo(std::function<void()> fn) {
    std::promise<void> done;
    asio::post(io_, [&] {
      fn();
      done.set_value();
    });
    done.get_future().wait();
  }

  void Close(const std::shared_ptr<Pipe>& p) {
    if (p->closed) return;
    p->closed = true;
    std::error_code ec;
    p->client.close(ec);
    p->server.close(ec);
    pipes_.erase(p);
    --open_;
  }

  void CloseAll() {
    auto pipes = pipes_;  // Close() erases from pipes_
    for (const auto& p : pipes) Close(p);
  }

  static awaitable<void> AcceptLoop(std::shared_ptr<LinkImpl> self) {
    for (;;) {
      std::error_code ec;
      tcp::socket socket =
          co_await self->acceptor_.async_accept(asio::redirect_error(asio::use_awaitable, ec));
      if (!self->acceptor_.is_open()) co_return;
      if (ec) continue;  // e.g. the dialer gave up before we accepted
      if (self->all_.cut) {
        ++self->refused_;
        std::error_code ignored;
        socket.close(ignored);
        continue;
      }
      ++self->open_;
      auto pipe = std::make_shared<Pipe>(std::move(socket));
      self->pipes_.insert(pipe);
      asio::co_spawn(self->io_, Forward(self, pipe), asio::detached);
    }
  }

  bool Cut(const Pipe& p) const {
    if (all_.cut) return true;
    auto it = tags_.find(p.tag);
    return it != tags_.end() && it->second.cut;
  }
  bool Drops(const Pipe& p, int dir) const {
    if (all_.drop[dir]) return true;
    auto it = tags_.find(p.tag);
    return it != tags_.end() && it->second.drop[dir];
  }

  static awaitable<void> Forward(std::shared_ptr<LinkImpl> self, std::shared_ptr<Pipe> pipe) {
    std::error_code ec;
    // With a tagger: hold the dialer's first bytes until the tag is known.
    std::string prefix;
    if (self->tagger_) {
      std::array<char, 4096> buf;
      while (prefix.size() < self->prefix_bytes_ && !pipe->closed) {
        size_t n = co_await pipe->client.async_read_some(
            asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
        if (ec) break;
        prefix.append(buf.data(), n);
      }
      if (pipe->closed) co_return;
      pipe->tag = self->tagger_(prefix);
      if (self->Cut(*pipe)) {
        ++self->refused_;
        self->Close(pipe);
        co_return;
      }
    }
    ++self->accepted_;
    co_await pipe->server.async_connect(self->target_,
                                        asio::redirect_error(asio::use_awaitable, ec));
    if (ec || pipe->closed) {
      self->Close(pipe);
      co_return;
    }
    if (!prefix.empty()) {
      if (self->Drops(*pipe, 0)) {
        self->dropped_[0] += prefix.size();
      } else {
        size_t w = co_await asio::async_write(pipe->server, asio::buffer(prefix),
                                              asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {
          self->Close(pipe);
          co_return;
        }
        self->bytes_[0] += w;
      }
    }
    std::error_code ignored;
    pipe->server.set_option(tcp::no_delay(true), ignored);
    pipe->client.set_option(tcp::no_delay(true), ignored);
    asio::co_spawn(self->io_, Copy(self, pipe, 0), asio::detached);
    asio::co_spawn(self->io_, Copy(self, pipe, 1), asio::detached);
  }

  // Copies one direction (0: client -> server, 1: server -> client) until
  // either side fails; then closes both, as a cut would.
  static awaitable<void> Copy(std::shared_ptr<LinkImpl> self, std::shared_ptr<Pipe> pipe, int dir) {
    tcp::socket& from = dir == 0 ? pipe->client : pipe->server;
    tcp::socket& to = dir == 0 ? pipe->server : pipe->client;
    std::array<char, 16384> buf;
    while (!pipe->closed) {
      std::error_code ec;
      size_t n = co_await from.async_read_some(asio::buffer(buf),
                                               asio::redirect_error(asio::use_awaitable, ec));
      if (ec || pipe->closed) break;
      if (self->Drops(*pipe, dir)) {
        self->dropped_[dir] += n;
        continue;
      }
      size_t w = co_await asio::async_write(to, asio::buffer(buf.data(), n),
                                            asio::redirect_error(asio::use_awaitable, ec));
      if (ec) break;
      self->bytes_[dir] += w;
    }
    self->Close(pipe);
  }

  asio::io_context& io_;
  tcp::acceptor acceptor_;
  tcp::endpoint target_;
  uint16_t target_port_;
  uint16_t port_ = 0;
  // io thread only:
  Rule all_;
  std::map<TcpProxy::Tag, Rule> tags_;
  size_t prefix_bytes_ = 0;
  TcpProxy::Tagger tagger_;
  std::set<std::shared_ptr<Pipe>> pipes_;
  // Read from any thread:
  std::atomic<uint64_t> accepted_{0}, refused_{0}, open_{0};
  std::array<std::atomic<uint64_t>, 2> bytes_{}, dropped_{};
};

}  // namespace

struct TcpProxy::Impl {
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  std::mutex mu;
  std::vector<std::shared_ptr<LinkImpl>> links;  // guarded by mu
  std::thread thread;
};

TcpProxy::TcpProxy() : impl_(std::make_shared<Impl>()) {
  impl_->thread = std::thread([impl = impl_.get()] { impl->io.run(); });
}

TcpProxy::~TcpProxy() {
  std::vector<std::shared_ptr<LinkImpl>> links;
  {
    std::lock_guard<std::mutex> l(impl_->mu);
    links = impl_->links;
  }
  asio::post(impl_->io, [links] {
    for (const auto& link : links) link->Shutdown();
  });
  // With every socket closed, all coroutines finish and run() returns.
  impl_->work.reset();
  impl_->thread.join();
}

Result<TcpProxy::Link*> TcpProxy::AddLink(uint16_t target_port, uint16_t listen_port) {
  auto link = std::make_shared<LinkImpl>(impl_->io, target_port);
  std::promise<Status> done;
  asio::post(impl_->io, [&] { done.set_value(link->Listen(listen_port)); });
  Status s = done.get_future().get();
  if (!s.ok()) return s;
  std::lock_guard<std::mutex> l(impl_->mu);
  impl_->links.push_back(link);
  return static_cast<Link*>(link.get());
}

}  // namespace flin::test
