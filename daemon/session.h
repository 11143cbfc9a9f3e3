// Session: one client connection (unix or TCP). One coroutine per
// connection reads, parses every complete command in the buffer
// (pipelining), executes them in order, and writes all their replies with one
// gathered write. Writes are proposed without waiting, so a pipeline of N
// writes shares one group commit; a read that follows a pending write on
// the same connection waits for it (read-your-writes).
//
// Thread-safety: a Session lives on the io thread; node callbacks reach it
// through asio::post, so no locking is needed.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/generic/stream_protocol.hpp>
#include <asio/steady_timer.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "net/resp.h"
#include "store/command.h"

namespace flin::daemon {

class Server;

class Session : public std::enable_shared_from_this<Session> {
 public:
  using Socket = asio::generic::stream_protocol::socket;
  Session(Server& server, Socket socket, uint64_t id, bool is_unix);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  asio::awaitable<void> Run();
  // Ends the session once its current replies are written.
  void Shutdown();

  // ---- used by command handlers ----
  // Writer for an immediate reply (appended after all earlier replies).
  net::ReplyWriter Reply();
  // Reserves a reply slot to be filled later by Complete (e.g. a write
  // waiting for its entry to be applied).
  size_t BeginAsync();
  void Complete(size_t slot, const store::ApplyResult& result);
  void CompleteRaw(size_t slot, std::string reply);
  // Close after the replies so far are written (QUIT).
  void CloseAfterReply() { close_after_reply_ = true; }

  uint64_t id() const { return id_; }
  bool is_unix() const { return is_unix_; }
  bool authenticated() const { return authenticated_; }
  void set_authenticated(bool v);
  const std::string& name() const { return name_; }
  void set_name(std::string n) { name_ = std::move(n); }
  const std::string& peer() const { return peer_; }
  int64_t created_ms() const { return created_ms_; }
  size_t pending_output() const;
  // CONSISTENCY stale: reads skip the Raft read barrier (cluster mode).
  bool stale_reads() const { return stale_reads_; }
  void set_stale_reads(bool v) { stale_reads_ = v; }

 private:
  struct Slot {
    std::string data;
    bool ready = true;
  };
  asio::awaitable<void> WaitPending();
  // Waits for a linearizable read barrier; false (and an error reply
  // written) when none could be had.
  asio::awaitable<bool> ReadBarrier();
  asio::awaitable<void> Flush();
  asio::awaitable<void> IdleWatchdog();
  void EnsureReadSpace(size_t want);

  Server& server_;
  Socket socket_;
  uint64_t id_;
  bool is_unix_;
  std::string peer_;
  int64_t created_ms_;
  int64_t last_active_ms_;
  net::RequestParser parser_;
  std::vector<std::string_view> args_;

  // Input buffer: [0, in_len_) holds unparsed bytes.
  std::unique_ptr<char[]> in_;
  size_t in_cap_ = 0, in_len_ = 0;

  std::vector<Slot> slots_;
  size_t pending_ = 0;
  asio::steady_timer wake_;
  bool authenticated_ = false;
  bool close_after_reply_ = false;
  bool shutdown_ = false;
  bool closed_ = false;
  bool stale_reads_ = false;
  // Bytes read up to the last completed read barrier: commands that arrived
  // before it may be served without another (they were invoked before it).
  uint64_t bytes_read_ = 0;
  uint64_t barrier_covers_ = 0;
  std::string name_;
};

}  // namespace flin::daemon
