// The Flin client library: a synchronous RESP2 client for flind (and any
// Redis-protocol server), with timeouts, pipelining and a small pool.
//
// Thread-safety: a Connection is thread-compatible (one thread at a time).
// A Pool is thread-safe; each Acquire()d connection belongs to one thread
// until it is returned.
//
// Errors are values: every call returns Result<T> / Status whose code says
// what kind of failure it was:
//   Status::Code::kUnavailable  cannot connect / connection lost
//   Status::Code::kTimeout      a read/write/connect deadline passed
//   Status::Code::kServer       the server replied with an error (message is its text,
//                               e.g. "ERR wrong number of arguments for 'get' command")
//   Status::Code::kProtocol     the server sent something that is not valid RESP2,
//                               or a reply of the wrong shape for a typed helper
//   Status::Code::kInvalidArgument  a bad address, an empty command
// Connection errors already name the address ("cannot connect to
// unix:/x: No such file or directory"); callers need not prefix it again.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "net/reply_parser.h"

namespace flin::client {

// Reply (a parsed RESP2 reply) is defined in net/reply_parser.h.

// Where to connect: "unix:/path/to/sock", "/abs/path.sock", "host:port",
// "[::1]:port". Parse errors name the bad address.
struct Address {
  enum class Kind { kUnix, kTcp };
  Kind kind = Kind::kTcp;
  std::string path;  // kUnix
  std::string host;  // kTcp
  uint16_t port = 0;
  static Result<Address> Parse(std::string_view text);
  std::string ToString() const;
};

// Timeouts are per call: connect_timeout bounds Connect() (name lookup
// excepted), write_timeout bounds sending one request (or one whole
// pipeline), read_timeout bounds receiving all of its replies once sent.
// A zero or negative value means no limit.
struct ConnectOptions {
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds read_timeout{5000};
  std::chrono::milliseconds write_timeout{5000};
  std::string password;  // sent with AUTH right after connecting when non-empty
  // Read consistency for this connection: "" or "linearizable" (the
  // server's default: nothing is sent, the handshake stays free) or "stale"
  // (CONSISTENCY stale is sent right after AUTH; reads may then be served
  // from the local replica without asking the leader). The value is passed
  // to the server as is; the server rejects unknown levels.
  std::string consistency;
};

class Connection {
 public:
  // Connects (non-blocking, bounded by opts.connect_timeout; TCP_NODELAY on
  // TCP), sends AUTH when opts.password is set, then CONSISTENCY when
  // opts.consistency asks for a non-default level. Errors: Unavailable
  // ("cannot connect to unix:/x: No such file or directory"), Timeout,
  // InvalidArgument (unix path too long), Server (AUTH or CONSISTENCY
  // refused: the server's text).
  static Result<std::unique_ptr<Connection>> Connect(const Address& addr,
                                                     const ConnectOptions& opts = {});
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Sends one command and reads its reply. A server error reply is returned
  // as a Reply of type kError (not a failed Result), so callers that need the
  // raw reply (the CLI, tests) see it; the typed helpers below turn it into
  // Status::Server.
  Result<Reply> Command(const std::vector<std::string_view>& args);
  // Pipelining: all commands are written in one go, then all replies read
  // (replies that arrive while a large request is still being written are
  // drained meanwhile, so a server that stops reading when its output
  // buffer fills cannot deadlock us). One Reply per command, in order; a
  // failing command is a kError element, not a failed Result.
  Result<std::vector<Reply>> Pipeline(const std::vector<std::vector<std::string>>& commands);

  // Typed helpers. An error reply becomes Status::Server(text); a reply of
  // the wrong shape becomes Status::Protocol (the stream stays usable).
  Result<std::optional<std::string>> Get(std::string_view key);
  Status Set(std::string_view key, std::string_view value,
             std::chrono::milliseconds ttl = std::chrono::milliseconds{0});
  // DEL; zero keys return 0 without a round trip.
  Result<int64_t> Del(const std::vector<std::string>& keys);
  // Atomic batch write (MSET, or MSETEX with PX when ttl > 0): all or nothing.
  Status BatchSet(const std::map<std::string, std::string>& kv,
                  std::chrono::milliseconds ttl = std::chrono::milliseconds{0});
  // MGET: one optional per key, in order; nullopt for a missing key.
  Result<std::vector<std::optional<std::string>>> BatchGet(const std::vector<std::string>& keys);
  // MDEL: returns how many of the keys existed.
  // BatchSet/BatchGet/BatchDelete with no keys succeed without a round trip.
  Result<int64_t> BatchDelete(const std::vector<std::string>& keys);

  // False once an I/O, timeout or protocol error has made the stream
  // unusable (a late reply could otherwise be taken for the next one's).
  // Every later call then fails with Unavailable.
  bool healthy() const { return healthy_; }
  const Address& address() const { return addr_; }

 private:
  Connection(Address addr, ConnectOptions opts, int fd);
  // Writes `request`, then reads `count` replies into *out.
  Status RoundTrip(std::string_view request, size_t count, std::vector<Reply>* out);
  Result<Reply> RoundTrip1(std::string_view request);
  Status WriteRequest(std::string_view request);
  // One recv() into parser_. When nothing is available: waits until
  // `deadline_ms` (MonoMillis; <0 = none) if `wait`, else returns Ok at once.
  Status ReadSome(int64_t deadline_ms, bool* eof, bool wait = true);
  Status Broken(Status why);
  // Cheap non-blocking check used by the pool before reusing an idle
  // connection: false when the peer has closed it or sent unsolicited bytes.
  bool LooksAlive();

  Address addr_;
  ConnectOptions opts_;
  int fd_ = -1;
  bool healthy_ = true;
  Status broken_;  // why healthy_ became false
  ReplyParser parser_;
  size_t requests_ = 0;           // round trips started; 0 = fresh connection
  size_t last_request_sent_ = 0;  // bytes of the last request the kernel accepted
  friend class Pool;
};

struct PoolConfig {
  std::vector<Address> addrs;  // tried in order; the first that answers is used
  size_t max_idle = 8;         // idle connections kept per pool
  size_t max_open = 64;        // Acquire blocks (up to connect_timeout) beyond this
  ConnectOptions connect;
  // Set by DefaultPoolConfig when an address does not parse; the Pool then
  // returns it from every call instead of connecting.
  Status address_error;
};
// max_idle 8, max_open 64, connect 2 s, read/write 5 s. An address that does
// not parse is reported through PoolConfig::address_error.
PoolConfig DefaultPoolConfig(const std::vector<std::string>& addrs);

class Pool {
 public:
  // Fails if an address in config does not parse; connects lazily.
  explicit Pool(PoolConfig config);
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // A connection handle that goes back to the pool (if still healthy) when
  // it is destroyed. Move-only; the Pool must outlive its leases.
  class Lease {
   public:
    Lease(Pool* pool, std::unique_ptr<Connection> conn) : pool_(pool), conn_(std::move(conn)) {}
    Lease(Lease&& other) noexcept : pool_(other.pool_), conn_(std::move(other.conn_)) {}
    Lease& operator=(Lease&& other) noexcept;
    ~Lease();
    Connection* operator->() { return conn_.get(); }
    Connection& operator*() { return *conn_; }
    Connection* get() { return conn_.get(); }

   private:
    Pool* pool_;
    std::unique_ptr<Connection> conn_;
  };
  // Reuses an idle connection that still looks alive (most recently used
  // first), else connects to the first address that answers. When max_open
  // connections are out, waits up to connect_timeout for one to come back
  // (Timeout otherwise).
  Result<Lease> Acquire();

  // Introspection for tests and stats.
  size_t IdleCount();
  size_t OpenCount();

  // Convenience wrappers: acquire, run, release. Retries once on a fresh
  // connection when a pooled connection turns out to be dead before the
  // request was written (never after: a write may have been applied).
  // Precisely: a reused idle connection that failed with zero request bytes
  // accepted by the kernel, or, for the read-only Get/BatchGet, one whose
  // connection was lost (Unavailable) at any point. Timeouts never retry.
  Result<std::optional<std::string>> Get(std::string_view key);
  Status Set(std::string_view key, std::string_view value,
             std::chrono::milliseconds ttl = std::chrono::milliseconds{0});
  Result<int64_t> Del(const std::vector<std::string>& keys);
  Status BatchSet(const std::map<std::string, std::string>& kv,
                  std::chrono::milliseconds ttl = std::chrono::milliseconds{0});
  Result<std::vector<std::optional<std::string>>> BatchGet(const std::vector<std::string>& keys);
  Result<int64_t> BatchDelete(const std::vector<std::string>& keys);

 private:
  void Release(std::unique_ptr<Connection> conn);
  Result<std::unique_ptr<Connection>> ConnectAny();
  template <typename Fn>
  auto Run(bool read_only, Fn&& fn);

  PoolConfig config_;
  std::mutex mu_;
  std::condition_variable slot_freed_;             // signalled when open_ drops
  std::vector<std::unique_ptr<Connection>> idle_;  // GUARDED_BY(mu_)
  size_t open_ = 0;                                // GUARDED_BY(mu_) idle + leased
};

}  // namespace flin::client
