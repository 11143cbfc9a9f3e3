#include "net/client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>
#include <type_traits>
#include <utility>

#include "base/clock.h"
#include "base/strings.h"

namespace flin::client {
namespace {

constexpr size_t kReadChunk = 64 * 1024;

// Absolute deadline in MonoMillis, or -1 for "no limit".
int64_t DeadlineAfter(std::chrono::milliseconds timeout) {
  if (timeout.count() <= 0) return -1;
  return MonoMillis() + timeout.count();
}

// poll() timeout argument for a deadline: -1 = forever, 0 = expired.
int PollTimeout(int64_t deadline_ms) {
  if (deadline_ms < 0) return -1;
  int64_t left = deadline_ms - MonoMillis();
  if (left <= 0) return 0;
  return static_cast<int>(std::min<int64_t>(left, 1 << 30));
}

// poll() one fd, retrying on EINTR until the deadline. Returns revents (0 on
// timeout) or -errno. Callers poll only after the syscall they wait for
// said EAGAIN, so a passed deadline is a timeout even if poll() would
// report some (spurious or irrelevant) readiness: no loop can outlive it.
int PollFd(int fd, short events, int64_t deadline_ms) {
  for (;;) {
    if (deadline_ms >= 0 && MonoMillis() >= deadline_ms) return 0;
    pollfd p{fd, events, 0};
    int rc = ::poll(&p, 1, PollTimeout(deadline_ms));
    if (rc > 0) return p.revents;
    if (rc == 0) return 0;
    if (errno != EINTR) return -errno;
    if (deadline_ms >= 0 && MonoMillis() >= deadline_ms) return 0;
  }
}

std::string Ms(std::chrono::milliseconds d) { return std::to_string(d.count()) + " ms"; }

int NewSocket(int family) {
  int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
#ifdef SO_NOSIGPIPE
  // Platforms without MSG_NOSIGNAL: keep a closed peer from killing us.
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof(one));
#endif
  return fd;
}

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_;
};

// Waits for a non-blocking connect() to finish. Returns 0 when connected,
// an errno value on failure, or ETIMEDOUT at the deadline.
int FinishConnect(int fd, int64_t deadline_ms) {
  int ev = PollFd(fd, POLLOUT, deadline_ms);
  if (ev < 0) return -ev;
  if (ev == 0) return ETIMEDOUT;
  int err = 0;
  socklen_t len = sizeof(err);
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
  return err;
}

Status ConnectError(const Address& addr, int err, std::chrono::milliseconds timeout) {
  if (err == ETIMEDOUT) {
    return Status::Timeout("cannot connect to " + addr.ToString() + ": timed out after " +
                           Ms(timeout));
  }
  return Status::Unavailable("cannot connect to " + addr.ToString() + ": " + std::strerror(err));
}

Result<int> ConnectUnix(const Address& addr, const ConnectOptions& opts) {
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (addr.path.empty() || addr.path.size() >= sizeof(sa.sun_path)) {
    return Status::InvalidArgument("cannot connect to " + addr.ToString() +
                                   ": socket path must be 1 to " +
                                   std::to_string(sizeof(sa.sun_path) - 1) + " bytes");
  }
  std::memcpy(sa.sun_path, addr.path.data(), addr.path.size());
  Fd fd(NewSocket(AF_UNIX));
  if (fd.get() < 0) return ConnectError(addr, errno, opts.connect_timeout);
  const int64_t deadline = DeadlineAfter(opts.connect_timeout);
  for (;;) {
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0) break;
    int err = errno;
    if (err == EINTR) continue;
    if (err == EINPROGRESS) {
      err = FinishConnect(fd.get(), deadline);
      if (err != 0) return ConnectError(addr, err, opts.connect_timeout);
      break;
    }
    if (err == EAGAIN) {
      // Linux: the listener's backlog is full. There is nothing to poll on,
      // so back off briefly and try again until the deadline.
      if (deadline >= 0 && MonoMillis() >= deadline) {
        return ConnectError(addr, ETIMEDOUT, opts.connect_timeout);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      continue;
    }
    return ConnectError(addr, err, opts.connect_timeout);
  }
  return fd.release();
}

Result<int> ConnectTcp(const Address& addr, const ConnectOptions& opts) {
  const int64_t deadline = DeadlineAfter(opts.connect_timeout);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string port = std::to_string(addr.port);
  int rc = ::getaddrinfo(addr.host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0) {
    std::string why = rc == EAI_SYSTEM ? std::strerror(errno) : ::gai_strerror(rc);
    return Status::Unavailable("cannot connect to " + addr.ToString() + ": cannot resolve '" +
                               addr.host + "': " + why);
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard(res, &::freeaddrinfo);
  int last_err = ECONNREFUSED;
  // Every resolved address (IPv6 and IPv4 for "localhost") gets a turn
  // within the one connect deadline.
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    Fd fd(NewSocket(ai->ai_family));
    if (fd.get() < 0) {
      last_err = errno;
      continue;
    }
    int err = 0;
    if (::connect(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0) {
      err = errno;
      if (err == EINPROGRESS || err == EINTR) err = FinishConnect(fd.get(), deadline);
    }
    if (err == 0) {
      int one = 1;
      ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      ::setsockopt(fd.get(), SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
      return fd.release();
    }
    last_err = err;
    if (err == ETIMEDOUT) break;
  }
  return ConnectError(addr, last_err, opts.connect_timeout);
}

Status Unexpected(const Reply& r, std::string_view command) {
  if (r.is_error()) return Status::Server(r.str);
  return Status::Protocol("unexpected " + std::string(ReplyTypeName(r.type)) + " reply to " +
                          std::string(command) + ": " + DebugString(r));
}

bool IsOk(const Reply& r) { return r.type == Reply::Type::kStatus && r.str == "OK"; }

const Status& StatusOf(const Status& s) { return s; }
template <typename T>
const Status& StatusOf(const Result<T>& r) {
  return r.status();
}

}  // namespace

// ---------------------------------------------------------------------------
// Address

Result<Address> Address::Parse(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return Status::InvalidArgument("invalid address '" + Printable(text, 200) +
                                   "': " + std::string(why));
  };
  constexpr std::string_view kExpected = "expected unix:/path or host:port";
  Address a;
  if (text.starts_with("unix:")) {
    a.kind = Kind::kUnix;
    a.path = std::string(text.substr(5));
    if (a.path.empty()) return bad("empty unix socket path");
    return a;
  }
  if (text.starts_with("/")) {
    a.kind = Kind::kUnix;
    a.path = std::string(text);
    return a;
  }
  a.kind = Kind::kTcp;
  std::string_view host, port;
  if (text.starts_with("[")) {
    size_t close = text.find(']');
    if (close == std::string_view::npos) return bad("missing ']' after IPv6 host");
    host = text.substr(1, close - 1);
    std::string_view rest = text.substr(close + 1);
    if (!rest.starts_with(":")) return bad(kExpected);
    port = rest.substr(1);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return bad(kExpected);
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return bad("write IPv6 hosts in brackets, e.g. [::1]:7379");
    }
  }
  if (host.empty()) return bad(kExpected);
  auto p = ParseInt64(port);
  if (port.empty() || port[0] == '+' || port[0] == '-' || !p || *p < 1 || *p > 65535) {
    return bad("port must be a number from 1 to 65535");
  }
  a.host = std::string(host);
  a.port = static_cast<uint16_t>(*p);
  return a;
}

std::string Address::ToString() const {
  if (kind == Kind::kUnix) return "unix:" + path;
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

// ---------------------------------------------------------------------------
// Connection

Connection::Connection(Address addr, ConnectOptions opts, int fd)
    : addr_(std::move(addr)), opts_(std::move(opts)), fd_(fd) {}

Connection::~Connection() {
  if (fd_ >= 0) ::close(fd_);
}

Result<std::unique_ptr<Connection>> Connection::Connect(const Address& addr,
                                                        const ConnectOptions& opts) {
  Result<int> fd =
      addr.kind == Address::Kind::kUnix ? ConnectUnix(addr, opts) : ConnectTcp(addr, opts);
  if (!fd.ok()) return fd.status();
  std::unique_ptr<Connection> conn(new Connection(addr, opts, fd.value()));
  if (!opts.password.empty()) {
    auto r = conn->Command({"AUTH", opts.password});
    if (!r.ok()) return r.status();
    if (!IsOk(r.value())) return Unexpected(r.value(), "AUTH");
  }
  // The default level costs no round trip; anything else is the server's
  // to accept or refuse.
  if (!opts.consistency.empty() && !EqualsIgnoreCase(opts.consistency, "linearizable")) {
    auto r = conn->Command({"CONSISTENCY", opts.consistency});
    if (!r.ok()) return r.status();
    if (!IsOk(r.value())) return Unexpected(r.value(), "CONSISTENCY");
  }
  // The handshake is part of connecting: a pooled connection that only
  // authenticated (or set its consistency) counts as fresh.
  conn->requests_ = 0;
  return conn;
}

Status Connection::Broken(Status why) {
  if (healthy_) {
    healthy_ = false;
    broken_ = why;
  }
  return why;
}

Status Connection::ReadSome(int64_t deadline_ms, bool* eof, bool wait) {
  *eof = false;
  for (;;) {
    char* p = parser_.PrepareFeed(kReadChunk);
    ssize_t n = ::recv(fd_, p, kReadChunk, 0);
    if (n > 0) {
      parser_.CommitFeed(static_cast<size_t>(n));
      return Status::Ok();
    }
    parser_.CommitFeed(0);
    if (n == 0) {
      *eof = true;
      return Status::Ok();
    }
    int err = errno;
    if (err == EINTR) continue;
    if (err != EAGAIN && err != EWOULDBLOCK) {
      return Status::Unavailable("connection to " + addr_.ToString() +
                                 " lost while reading: " + std::strerror(err));
    }
    if (!wait) return Status::Ok();
    int ev = PollFd(fd_, POLLIN, deadline_ms);
    if (ev < 0) {
      return Status::Unavailable("connection to " + addr_.ToString() +
                                 " lost: poll: " + std::strerror(-ev));
    }
    if (ev == 0) {
      return Status::Timeout("no reply from " + addr_.ToString() + " within " +
                             Ms(opts_.read_timeout));
    }
  }
}

Status Connection::WriteRequest(std::string_view request) {
  const int64_t deadline = DeadlineAfter(opts_.write_timeout);
  size_t off = 0;
  bool peer_eof = false;  // then only POLLOUT matters (an EOF stays readable)
  while (off < request.size()) {
    ssize_t n = ::send(fd_, request.data() + off, request.size() - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += static_cast<size_t>(n);
      last_request_sent_ = off;
      continue;
    }
    int err = errno;
    if (n < 0 && err == EINTR) continue;
    if (n < 0 && err != EAGAIN && err != EWOULDBLOCK) {
      return Status::Unavailable("connection to " + addr_.ToString() +
                                 " lost while writing: " + std::strerror(err));
    }
    // The socket buffer is full. Drain replies meanwhile: the server may
    // have stopped reading until we read what it already answered.
    int ev = PollFd(fd_, peer_eof ? POLLOUT : (POLLOUT | POLLIN), deadline);
    if (ev < 0) {
      return Status::Unavailable("connection to " + addr_.ToString() +
                                 " lost: poll: " + std::strerror(-ev));
    }
    if (ev == 0) {
      return Status::Timeout("writing to " + addr_.ToString() + " timed out after " +
                             Ms(opts_.write_timeout) + " (" + std::to_string(off) + " of " +
                             std::to_string(request.size()) + " bytes sent)");
    }
    if ((ev & POLLIN) && !peer_eof) {
      // On EOF keep going: send() then reports the real error (EPIPE), and
      // what the server said before closing stays in parser_ for the
      // error message.
      FLIN_RETURN_IF_ERROR(ReadSome(-1, &peer_eof, /*wait=*/false));
    } else if (ev & (POLLERR | POLLHUP)) {
      // Let send() report the precise error on the next iteration.
      continue;
    }
  }
  return Status::Ok();
}

Status Connection::RoundTrip(std::string_view request, size_t count, std::vector<Reply>* out) {
  if (!healthy_) {
    return Status::Unavailable("connection to " + addr_.ToString() +
                               " is unusable after an earlier error: " + broken_.message());
  }
  ++requests_;
  last_request_sent_ = 0;
  out->clear();
  out->reserve(count);
  if (Status s = WriteRequest(request); !s.ok()) {
    // The request is incomplete, so the connection is done for. A server
    // that refuses a client (max clients, protocol error) says why before
    // closing; pass that on.
    bool eof = false;
    for (int i = 0; i < 4 && !eof && parser_.buffered() < kReadChunk; ++i) {
      size_t before = parser_.buffered();
      if (!ReadSome(-1, &eof, /*wait=*/false).ok() || parser_.buffered() == before) break;
    }
    auto said = parser_.Next();
    if (said.ok() && said.value() && said.value()->is_error()) {
      std::string msg = s.message() + " (server said: " + said.value()->str + ")";
      s = s.code() == Status::Code::kTimeout ? Status::Timeout(std::move(msg))
                                             : Status::Unavailable(std::move(msg));
    }
    return Broken(std::move(s));
  }
  const int64_t deadline = DeadlineAfter(opts_.read_timeout);
  while (out->size() < count) {
    auto next = parser_.Next();
    if (!next.ok()) {
      return Broken(Status::Protocol("invalid reply from " + addr_.ToString() + ": " +
                                     next.status().message()));
    }
    if (next.value()) {
      out->push_back(std::move(*next.value()));
      continue;
    }
    bool eof = false;
    if (Status s = ReadSome(deadline, &eof); !s.ok()) return Broken(std::move(s));
    if (eof) {
      std::string msg = "connection to " + addr_.ToString() + " closed by the server";
      if (count > 1) {
        msg +=
            " after " + std::to_string(out->size()) + " of " + std::to_string(count) + " replies";
        // A server that hits a protocol error or a limit says so, then closes.
        if (!out->empty() && out->back().is_error()) {
          msg += " (last: " + out->back().str + ")";
        }
      }
      return Broken(Status::Unavailable(std::move(msg)));
    }
  }
  return Status::Ok();
}

Result<Reply> Connection::RoundTrip1(std::string_view request) {
  std::vector<Reply> replies;
  FLIN_RETURN_IF_ERROR(RoundTrip(request, 1, &replies));
  return std::move(replies[0]);
}

Result<Reply> Connection::Command(const std::vector<std::string_view>& args) {
  if (args.empty()) return Status::InvalidArgument("empty command");
  std::string req;
  EncodeCommand(args, &req);
  return RoundTrip1(req);
}

Result<std::vector<Reply>> Connection::Pipeline(
    const std::vector<std::vector<std::string>>& commands) {
  std::string req;
  for (const auto& c : commands) {
    if (c.empty()) return Status::InvalidArgument("empty command in pipeline");
    EncodeCommand(c, &req);
  }
  std::vector<Reply> replies;
  if (commands.empty()) return replies;
  FLIN_RETURN_IF_ERROR(RoundTrip(req, commands.size(), &replies));
  return replies;
}

Result<std::optional<std::string>> Connection::Get(std::string_view key) {
  auto r = Command({"GET", key});
  if (!r.ok()) return r.status();
  Reply& reply = r.value();
  if (reply.type == Reply::Type::kBulk) return std::optional<std::string>(std::move(reply.str));
  if (reply.type == Reply::Type::kNil) return std::optional<std::string>();
  return Unexpected(reply, "GET");
}

Status Connection::Set(std::string_view key, std::string_view value,
                       std::chrono::milliseconds ttl) {
  std::string ms;
  std::vector<std::string_view> args{"SET", key, value};
  if (ttl.count() > 0) {
    ms = std::to_string(ttl.count());
    args.push_back("PX");
    args.push_back(ms);
  }
  auto r = Command(args);
  if (!r.ok()) return r.status();
  if (IsOk(r.value())) return Status::Ok();
  return Unexpected(r.value(), "SET");
}

Result<int64_t> Connection::Del(const std::vector<std::string>& keys) {
  if (keys.empty()) return int64_t{0};
  std::vector<std::string_view> args{"DEL"};
  args.insert(args.end(), keys.begin(), keys.end());
  auto r = Command(args);
  if (!r.ok()) return r.status();
  if (r.value().type == Reply::Type::kInteger) return r.value().integer;
  return Unexpected(r.value(), "DEL");
}

Status Connection::BatchSet(const std::map<std::string, std::string>& kv,
                            std::chrono::milliseconds ttl) {
  if (kv.empty()) return Status::Ok();
  std::vector<std::string_view> args;
  args.reserve(kv.size() * 2 + 4);
  std::string numkeys, ms;
  const bool with_ttl = ttl.count() > 0;
  if (with_ttl) {
    numkeys = std::to_string(kv.size());
    args.push_back("MSETEX");
    args.push_back(numkeys);
  } else {
    args.push_back("MSET");
  }
  for (const auto& [k, v] : kv) {
    args.push_back(k);
    args.push_back(v);
  }
  if (with_ttl) {
    ms = std::to_string(ttl.count());
    args.push_back("PX");
    args.push_back(ms);
  }
  auto r = Command(args);
  if (!r.ok()) return r.status();
  const Reply& reply = r.value();
  // Redis 8.4 answers MSETEX with :1 (all set) / :0 (NX/XX refused); MSET
  // and flind answer +OK.
  if (IsOk(reply)) return Status::Ok();
  if (with_ttl && reply.type == Reply::Type::kInteger) {
    if (reply.integer == 1) return Status::Ok();
    return Status::Server("MSETEX set none of the keys (reply " + std::to_string(reply.integer) +
                          ")");
  }
  return Unexpected(reply, with_ttl ? "MSETEX" : "MSET");
}

Result<std::vector<std::optional<std::string>>> Connection::BatchGet(
    const std::vector<std::string>& keys) {
  std::vector<std::optional<std::string>> values;
  if (keys.empty()) return values;
  std::vector<std::string_view> args{"MGET"};
  args.insert(args.end(), keys.begin(), keys.end());
  auto r = Command(args);
  if (!r.ok()) return r.status();
  Reply& reply = r.value();
  if (reply.type != Reply::Type::kArray) return Unexpected(reply, "MGET");
  if (reply.elements.size() != keys.size()) {
    return Status::Protocol("MGET of " + std::to_string(keys.size()) + " keys returned " +
                            std::to_string(reply.elements.size()) + " values");
  }
  values.reserve(keys.size());
  for (Reply& e : reply.elements) {
    if (e.type == Reply::Type::kBulk) {
      values.emplace_back(std::move(e.str));
    } else if (e.type == Reply::Type::kNil) {
      values.emplace_back();
    } else {
      return Status::Protocol("unexpected " + std::string(ReplyTypeName(e.type)) +
                              " element in MGET reply: " + DebugString(e));
    }
  }
  return values;
}

Result<int64_t> Connection::BatchDelete(const std::vector<std::string>& keys) {
  if (keys.empty()) return int64_t{0};
  std::vector<std::string_view> args{"MDEL"};
  args.insert(args.end(), keys.begin(), keys.end());
  auto r = Command(args);
  if (!r.ok()) return r.status();
  if (r.value().type == Reply::Type::kInteger) return r.value().integer;
  return Unexpected(r.value(), "MDEL");
}

bool Connection::LooksAlive() {
  if (!healthy_ || !parser_.idle()) return false;
  pollfd p{fd_, POLLIN, 0};
  int rc = ::poll(&p, 1, 0);
  if (rc == 0) return true;
  if (rc < 0) return errno == EINTR;
  if (p.revents & (POLLERR | POLLHUP | POLLNVAL)) return false;
  // Readable while idle: either EOF (the server closed it, e.g. its idle
  // timeout) or bytes nobody asked for. Both make it unusable.
  return false;
}

// ---------------------------------------------------------------------------
// Pool

PoolConfig DefaultPoolConfig(const std::vector<std::string>& addrs) {
  PoolConfig config;
  config.max_idle = 8;
  config.max_open = 64;
  config.connect.connect_timeout = std::chrono::milliseconds(2000);
  config.connect.read_timeout = std::chrono::milliseconds(5000);
  config.connect.write_timeout = std::chrono::milliseconds(5000);
  for (const auto& text : addrs) {
    auto a = Address::Parse(text);
    if (!a.ok()) {
      if (config.address_error.ok()) config.address_error = a.status();
      continue;
    }
    config.addrs.push_back(std::move(a.value()));
  }
  return config;
}

Pool::Pool(PoolConfig config) : config_(std::move(config)) {
  if (config_.max_open == 0) config_.max_open = 1;
}

Pool::~Pool() {
  std::lock_guard lock(mu_);
  // A lease outliving its pool would later return its connection to freed
  // memory; fail loudly here instead.
  FLIN_CHECK(open_ == idle_.size())
      << "Pool destroyed with " << open_ - idle_.size() << " connection(s) still leased";
  idle_.clear();
}

Pool::Lease& Pool::Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    if (conn_ && pool_) pool_->Release(std::move(conn_));
    pool_ = other.pool_;
    conn_ = std::move(other.conn_);
  }
  return *this;
}

Pool::Lease::~Lease() {
  if (conn_ && pool_) pool_->Release(std::move(conn_));
}

size_t Pool::IdleCount() {
  std::lock_guard lock(mu_);
  return idle_.size();
}

size_t Pool::OpenCount() {
  std::lock_guard lock(mu_);
  return open_;
}

void Pool::Release(std::unique_ptr<Connection> conn) {
  std::unique_ptr<Connection> drop;
  {
    std::lock_guard lock(mu_);
    if (conn->healthy() && conn->parser_.idle() && idle_.size() < config_.max_idle) {
      idle_.push_back(std::move(conn));
    } else {
      drop = std::move(conn);
      --open_;
    }
  }
  slot_freed_.notify_one();
  // `drop` closes its socket here, outside the lock.
}

Result<std::unique_ptr<Connection>> Pool::ConnectAny() {
  if (config_.addrs.empty()) return Status::InvalidArgument("no server address configured");
  Status first_error;
  std::string all;
  for (const Address& addr : config_.addrs) {
    auto c = Connection::Connect(addr, config_.connect);
    if (c.ok()) return c;
    // AUTH refused is the server's verdict, not an unreachable server.
    if (c.status().code() == Status::Code::kServer) return c.status();
    if (first_error.ok()) first_error = c.status();
    if (!all.empty()) all += "; ";
    all += c.status().message();
  }
  if (config_.addrs.size() == 1) return first_error;
  if (first_error.code() == Status::Code::kTimeout) {
    return Status::Timeout("no server answered: " + all);
  }
  return Status::Unavailable("no server answered: " + all);
}

Result<Pool::Lease> Pool::Acquire() {
  if (!config_.address_error.ok()) return config_.address_error;
  const auto timeout = config_.connect.connect_timeout;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::unique_lock lock(mu_);
  for (;;) {
    while (!idle_.empty()) {
      std::unique_ptr<Connection> c = std::move(idle_.back());
      idle_.pop_back();
      if (c->LooksAlive()) return Lease(this, std::move(c));
      --open_;  // dropped: closing a dead socket under the lock is cheap
    }
    if (open_ < config_.max_open) {
      ++open_;
      lock.unlock();
      auto c = ConnectAny();
      if (c.ok()) return Lease(this, std::move(c.value()));
      lock.lock();
      --open_;
      lock.unlock();
      slot_freed_.notify_one();
      return c.status();
    }
    if (timeout.count() <= 0) {
      slot_freed_.wait(lock);
    } else if (slot_freed_.wait_until(lock, deadline) == std::cv_status::timeout && idle_.empty() &&
               open_ >= config_.max_open) {
      return Status::Timeout("connection pool exhausted: " + std::to_string(config_.max_open) +
                             " connections in use and none released within " + Ms(timeout));
    }
  }
}

template <typename Fn>
auto Pool::Run(bool read_only, Fn&& fn) {
  using R = std::invoke_result_t<Fn, Connection&>;
  for (int attempt = 0;; ++attempt) {
    auto lease = Acquire();
    if (!lease.ok()) return R(lease.status());
    Connection& c = *lease.value();
    const bool reused = c.requests_ > 0;
    R r = fn(c);
    const Status& s = StatusOf(r);
    if (s.ok() || attempt > 0 || !reused || c.healthy()) return r;
    // The connection broke. Retrying is safe only if the server cannot have
    // seen the request, or the request only reads.
    const bool unsent = c.last_request_sent_ == 0;
    const bool lost = s.code() == Status::Code::kUnavailable;
    if (!(unsent || (read_only && lost))) return r;
  }
}

Result<std::optional<std::string>> Pool::Get(std::string_view key) {
  return Run(true, [&](Connection& c) { return c.Get(key); });
}

Status Pool::Set(std::string_view key, std::string_view value, std::chrono::milliseconds ttl) {
  return Run(false, [&](Connection& c) { return c.Set(key, value, ttl); });
}

Result<int64_t> Pool::Del(const std::vector<std::string>& keys) {
  if (keys.empty()) return int64_t{0};
  return Run(false, [&](Connection& c) { return c.Del(keys); });
}

Status Pool::BatchSet(const std::map<std::string, std::string>& kv, std::chrono::milliseconds ttl) {
  if (kv.empty()) return Status::Ok();
  return Run(false, [&](Connection& c) { return c.BatchSet(kv, ttl); });
}

Result<std::vector<std::optional<std::string>>> Pool::BatchGet(
    const std::vector<std::string>& keys) {
  if (keys.empty()) return std::vector<std::optional<std::string>>{};
  return Run(true, [&](Connection& c) { return c.BatchGet(keys); });
}

Result<int64_t> Pool::BatchDelete(const std::vector<std::string>& keys) {
  if (keys.empty()) return int64_t{0};
  return Run(false, [&](Connection& c) { return c.BatchDelete(keys); });
}

}  // namespace flin::client
