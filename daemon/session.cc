#include "daemon/session.h"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/read.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <cstring>
#include <optional>

#include "base/clock.h"
#include "base/log.h"
#include "daemon/commands.h"
#include "daemon/engine.h"
#include "daemon/server.h"
#include "net/command_spec.h"

namespace flin::daemon {
namespace {

constexpr size_t kMinRead = 16 * 1024;
constexpr size_t kShrinkAbove = 1 << 20;
// How far a pipelining client may run ahead of its unacknowledged writes.
constexpr size_t kMaxPendingWrites = 1024;
constexpr size_t kMaxDeferredOutput = 1 << 20;

net::RequestLimits LimitsFrom(const Config& c) {
  net::RequestLimits l;
  l.max_bulk_len = c.max_bulk_len;
  l.max_args = c.max_args;
  return l;
}

}  // namespace

Session::Session(Server& server, Socket socket, uint64_t id, bool is_unix)
    : server_(server),
      socket_(std::move(socket)),
      id_(id),
      is_unix_(is_unix),
      created_ms_(WallMillis()),
      last_active_ms_(MonoMillis()),
      parser_(LimitsFrom(server.config())),
      wake_(socket_.get_executor()) {
  if (is_unix) {
    peer_ = "unix";
  } else {
    // generic endpoints hold a sockaddr; render it for CLIENT/INFO and logs.
    std::error_code ec;
    auto ep = socket_.remote_endpoint(ec);
    if (!ec) {
      char host[64] = "?";
      const sockaddr* sa = ep.data();
      uint16_t port = 0;
      if (sa->sa_family == AF_INET) {
        auto* in = reinterpret_cast<const sockaddr_in*>(sa);
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        port = ntohs(in->sin_port);
      } else if (sa->sa_family == AF_INET6) {
        auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        port = ntohs(in6->sin6_port);
      }
      peer_ = std::string(host) + ":" + std::to_string(port);
    }
  }
  set_authenticated(server.config().requirepass.empty());
  std::error_code ec;
  socket_.non_blocking(true, ec);  // Flush writes directly when it can
}

Session::~Session() = default;

void Session::set_authenticated(bool v) {
  authenticated_ = v;
  // Before AUTH, the parser caps command size so a stranger cannot make the
  // server buffer large requests (Redis does the same).
  parser_.set_authenticated(v);
}

net::ReplyWriter Session::Reply() {
  if (slots_.empty() || !slots_.back().ready) slots_.emplace_back();
  return net::ReplyWriter(&slots_.back().data);
}

size_t Session::BeginAsync() {
  slots_.push_back(Slot{{}, false});
  ++pending_;
  return slots_.size() - 1;
}

void Session::CompleteRaw(size_t slot, std::string reply) {
  if (slot >= slots_.size() || slots_[slot].ready) return;  // session already torn down
  slots_[slot].data = std::move(reply);
  slots_[slot].ready = true;
  if (--pending_ == 0) wake_.cancel();
}

void Session::Complete(size_t slot, const store::ApplyResult& r) {
  std::string out;
  net::ReplyWriter w(&out);
  switch (r.kind) {
    case store::ApplyResult::Kind::kOk:
      w.Ok();
      break;
    case store::ApplyResult::Kind::kInt:
      w.Integer(r.n);
      break;
    case store::ApplyResult::Kind::kNil:
      w.Nil();
      break;
    case store::ApplyResult::Kind::kBulk:
      w.Bulk(r.str);
      break;
    case store::ApplyResult::Kind::kError:
      w.Error(r.str);
      break;
  }
  CompleteRaw(slot, std::move(out));
}

size_t Session::pending_output() const {
  size_t n = 0;
  for (const Slot& s : slots_) n += s.data.size();
  return n;
}

void Session::Shutdown() {
  shutdown_ = true;
  std::error_code ec;
  // SHUT_RD wakes a pending read with EOF but lets a reply being written finish.
  socket_.shutdown(asio::socket_base::shutdown_receive, ec);
}

void Session::EnsureReadSpace(size_t want) {
  size_t need = in_len_ + std::max(want, kMinRead);
  if (in_cap_ >= need && in_cap_ - in_len_ >= kMinRead / 4) return;
  size_t cap = std::max(need, in_cap_ * 2);
  std::unique_ptr<char[]> n(new char[cap]);
  if (in_len_) std::memcpy(n.get(), in_.get(), in_len_);
  in_ = std::move(n);
  in_cap_ = cap;
}

asio::awaitable<void> Session::WaitPending() {
  while (pending_ > 0) {
    wake_.expires_at(asio::steady_timer::time_point::max());
    std::error_code ec;
    co_await wake_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

asio::awaitable<bool> Session::ReadBarrier() {
  struct State {
    explicit State(const asio::any_io_executor& ex)
        : timer(ex, asio::steady_timer::time_point::max()) {}
    std::optional<Status> result;
    asio::steady_timer timer;
  };
  uint64_t covers = bytes_read_;
  auto st = std::make_shared<State>(socket_.get_executor());
  server_.engine().ReadBarrier([st](Status s) {
    st->result = std::move(s);
    st->timer.cancel();
  });
  while (!st->result) {
    std::error_code ec;
    co_await st->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  if (!st->result->ok()) {
    const std::string& m = st->result->message();
    Reply().Error(m.rfind("TRYAGAIN", 0) == 0 || m.rfind("ERR", 0) == 0 ? m : "ERR " + m);
    co_return false;
  }
  barrier_covers_ = std::max(barrier_covers_, covers);
  co_return true;
}

asio::awaitable<void> Session::Flush() {
  if (slots_.empty()) co_return;
  std::vector<asio::const_buffer> bufs;
  bufs.reserve(slots_.size());
  size_t total = 0;
  for (const Slot& s : slots_) {
    if (!s.data.empty()) {
      bufs.emplace_back(asio::buffer(s.data));
      total += s.data.size();
    }
  }
  // Most replies fit the socket buffer: write them directly (one syscall)
  // and only go through the reactor for what did not fit.
  std::error_code ec;
  size_t n = bufs.empty() ? 0 : socket_.write_some(bufs, ec);
  if (ec && ec != asio::error::would_block && ec != asio::error::try_again) {
    throw std::system_error(ec);
  }
  if (n < total) {
    size_t skip = n;
    std::vector<asio::const_buffer> rest;
    for (const auto& b : bufs) {
      if (skip >= b.size()) {
        skip -= b.size();
        continue;
      }
      rest.push_back(b + skip);
      skip = 0;
    }
    co_await asio::async_write(socket_, rest, asio::use_awaitable);
  }
  slots_.clear();
}

asio::awaitable<void> Session::IdleWatchdog() {
  auto self = shared_from_this();
  const int64_t limit_ms = static_cast<int64_t>(server_.config().timeout_seconds) * 1000;
  asio::steady_timer t(socket_.get_executor());
  while (!closed_) {
    t.expires_after(std::chrono::milliseconds(std::min<int64_t>(limit_ms, 1000)));
    std::error_code ec;
    co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (!closed_ && pending_ == 0 && MonoMillis() - last_active_ms_ > limit_ms) {
      LOG_DEBUG << "client " << id_ << " idle for " << limit_ms << " ms: closing";
      std::error_code ec2;
      socket_.close(ec2);
      break;
    }
  }
}

asio::awaitable<void> Session::Run() {
  auto self = shared_from_this();
  const Config& config = server_.config();
  if (config.timeout_seconds > 0) {
    asio::co_spawn(socket_.get_executor(), IdleWatchdog(), asio::detached);
  }
  Commands& commands = server_.commands();
  try {
    bool close = false;
    while (!close && !shutdown_) {
      EnsureReadSpace(parser_.BytesMissing(in_len_));
      const size_t space = in_cap_ - in_len_;
      size_t n = co_await socket_.async_read_some(asio::buffer(in_.get() + in_len_, space),
                                                  asio::use_awaitable);
      // A read that left room drained the socket: no need to ask the kernel
      // below whether more is waiting (an ioctl per request at -P 1).
      const bool drained = n < space;
      in_len_ += n;
      bytes_read_ += n;
      last_active_ms_ = MonoMillis();
      server_.stats().bytes_in += n;
      size_t pos = 0;
      while (!close) {
        size_t consumed = 0;
        auto r = parser_.Parse(std::string_view(in_.get() + pos, in_len_ - pos), &consumed, &args_);
        if (r == net::RequestParser::Result::kIncomplete) break;
        if (r == net::RequestParser::Result::kError) {
          // Redis: reply with the protocol error, then close this connection only.
          Reply().Error("ERR " + parser_.error());
          LOG_DEBUG << "client " << id_ << " (" << peer_ << "): " << parser_.error();
          server_.stats().protocol_errors++;
          close = true;
          break;
        }
        pos += consumed;
        if (args_.empty()) continue;
        const net::CommandSpec* spec = net::FindCommand(args_[0]);
        if (spec && (spec->flags & (net::kCmdRead | net::kCmdAfterOwnWrites)) && pending_ > 0) {
          co_await WaitPending();
        }
        if (spec && (spec->flags & net::kCmdRead)) {
          // Cluster mode: a linearizable read needs a barrier requested
          // after the read arrived; one barrier covers every command that
          // had arrived when it was requested (a pipeline of reads shares it).
          uint64_t end = bytes_read_ - in_len_ + pos;
          if (authenticated_ && !stale_reads_ && end > barrier_covers_ &&
              server_.engine().clustered()) {
            if (!co_await ReadBarrier()) {
              server_.stats().commands++;
              continue;
            }
          }
        }
        commands.Execute(*this, spec, args_);
        server_.stats().commands++;
        if (close_after_reply_) close = true;
        if (pending_output() > config.client_output_buffer_limit) {
          LOG_WARN << "client " << id_ << " (" << peer_ << ") exceeded client-output-buffer-limit ("
                   << config.client_output_buffer_limit << " bytes): closing";
          // Drop the buffered replies but keep the slots of writes still in
          // flight: their completions must find them (and count down).
          for (Slot& slot : slots_) {
            if (slot.ready) std::string().swap(slot.data);
          }
          Reply().Error("ERR reply exceeds client-output-buffer-limit (" +
                        std::to_string(config.client_output_buffer_limit) +
                        " bytes): closing the connection");
          close = true;
        }
      }
      if (pos > 0) {
        in_len_ -= pos;
        // A partial command now starts at offset 0: the parser's saved
        // progress is relative to the command start, so it stays valid.
        if (in_len_) std::memmove(in_.get(), in_.get() + pos, in_len_);
      }
      if (pending_ > 0 && !close && !drained) {
        // More of this client's pipeline is already here: read and propose
        // it too, so one group commit covers it, instead of waiting for
        // these writes first. Bounded, so replies keep flowing.
        std::error_code aec;
        size_t avail = socket_.available(aec);
        if (!aec && avail > 0 && pending_ < kMaxPendingWrites &&
            pending_output() < kMaxDeferredOutput) {
          continue;
        }
      }
      if (pending_ > 0) co_await WaitPending();
      co_await Flush();
      if (in_len_ == 0 && in_cap_ > kShrinkAbove) {
        in_.reset();
        in_cap_ = 0;
      }
    }
  } catch (const std::system_error& e) {
    // EOF, reset, or a closed socket: a normal end for a client.
    if (e.code() != asio::error::eof && e.code() != asio::error::connection_reset &&
        e.code() != asio::error::operation_aborted && e.code() != asio::error::broken_pipe &&
        e.code() != asio::error::bad_descriptor) {
      LOG_DEBUG << "client " << id_ << ": " << e.what();
    }
  }
  // Writes this client proposed may still complete; their slots must stay
  // valid until then (Complete ignores them afterwards).
  if (pending_ > 0) co_await WaitPending();
  closed_ = true;
  std::error_code ec;
  socket_.close(ec);
  server_.Forget(this);
}

}  // namespace flin::daemon
