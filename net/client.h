// The Flin client library: a synchronous RESP2 client for flind (and any
// Redis-protocol server), with timeouts, pipelining and a small pool.
//
// Thread-safety: a Connection is thread-compatible (one thread at a time).
// A Pool is thread-safe; each Acquire()d connection belongs to one thread
// until it is returned.
//
// Errors are values: every call returns Result<T> / Status whose code says
// what kind of failure it was:
//   Status::Code::kUnavailable  cannot connect / connection lost (ClientErrorKind::kConnection)
//   Status::Code::kTimeout      a read/write/connect deadline passed
//   Status::Code::kServer       the server replied with an error (message is its text,
//                               e.g. "ERR wrong number of arguments for 'get' command")
//   Status::Code::kProtocol     the server sent something that is not valid RESP2
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace flin::client {

// A parsed RESP2 reply.
struct Reply {
  enum class Type { kStatus, kError, kInteger, kBulk, kNil, kArray, kNilArray };
  Type type = Type::kNil;
  std::string str;  // kStatus, kError, kBulk
  int64_t integer = 0;
  std::vector<Reply> elements;  // kArray

  bool is_nil() const { return type == Type::kNil || type == Type::kNilArray; }
  bool is_error() const { return type == Type::kError; }
};

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

struct ConnectOptions {
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds read_timeout{5000};
  std::chrono::milliseconds write_timeout{5000};
  std::string password;  // sent with AUTH right after connecting when non-empty
};

class Connection {
 public:
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
  // Pipelining: all commands are written in one go, then all replies read.
  Result<std::vector<Reply>> Pipeline(const std::vector<std::vector<std::string>>& commands);

  // Typed helpers.
  Result<std::optional<std::string>> Get(std::string_view key);
  Status Set(std::string_view key, std::string_view value,
             std::chrono::milliseconds ttl = std::chrono::milliseconds{0});
  Result<int64_t> Del(const std::vector<std::string>& keys);
  // Atomic batch write (MSET, or MSETEX with PX when ttl > 0): all or nothing.
  Status BatchSet(const std::map<std::string, std::string>& kv,
                  std::chrono::milliseconds ttl = std::chrono::milliseconds{0});
  // MGET: one optional per key, in order; nullopt for a missing key.
  Result<std::vector<std::optional<std::string>>> BatchGet(const std::vector<std::string>& keys);
  // MDEL: returns how many of the keys existed.
  Result<int64_t> BatchDelete(const std::vector<std::string>& keys);

  // False once an I/O or protocol error has made the stream unusable.
  bool healthy() const { return healthy_; }
  const Address& address() const { return addr_; }

 private:
  Connection(Address addr, ConnectOptions opts, int fd);
  Address addr_;
  ConnectOptions opts_;
  int fd_ = -1;
  bool healthy_ = true;
  std::string rbuf_;
  size_t rpos_ = 0;
  friend class ConnectionIO;
};

struct PoolConfig {
  std::vector<Address> addrs;  // tried in order; the first that answers is used
  size_t max_idle = 8;         // idle connections kept per pool
  size_t max_open = 64;        // Acquire blocks (up to connect_timeout) beyond this
  ConnectOptions connect;
};
PoolConfig DefaultPoolConfig(const std::vector<std::string>& addrs);

class Pool {
 public:
  // Fails if an address in config does not parse; connects lazily.
  explicit Pool(PoolConfig config);
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // A connection handle that goes back to the pool (if still healthy) when
  // it is destroyed.
  class Lease {
   public:
    Lease(Pool* pool, std::unique_ptr<Connection> conn) : pool_(pool), conn_(std::move(conn)) {}
    Lease(Lease&&) = default;
    Lease& operator=(Lease&&) = default;
    ~Lease();
    Connection* operator->() { return conn_.get(); }
    Connection& operator*() { return *conn_; }

   private:
    Pool* pool_;
    std::unique_ptr<Connection> conn_;
  };
  Result<Lease> Acquire();

  // Convenience wrappers: acquire, run, release. Retries once on a fresh
  // connection when a pooled connection turns out to be dead before the
  // request was written (never after: a write may have been applied).
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
  PoolConfig config_;
  std::mutex mu_;
  std::vector<std::unique_ptr<Connection>> idle_;  // GUARDED_BY(mu_)
  size_t open_ = 0;                                // GUARDED_BY(mu_)
};

}  // namespace flin::client
