// Commands: flind's command handlers. The table itself (names, arity, flags)
// is data in net/command_spec; this file binds each entry to a handler.
// Handlers validate everything before proposing, so a rejected command
// writes nothing. Writes become store::Command entries proposed to the Node;
// point reads through Engine::ReadKeys; range reads (SCAN, KEYS,
// DBSIZE, INFO keyspace, export) to committed state.db on the reader thread
// (Engine::ReadCommitted). Handlers format replies only
// through net::ReplyWriter (one reply layer).
// Thread-safety: io thread only.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "daemon/engine.h"
#include "net/command_spec.h"
#include "net/resp.h"
#include "store/command.h"
#include "store/kv_store.h"

namespace flin::daemon {

class Server;
class Session;
using Args = std::vector<std::string_view>;

class Commands {
 public:
  explicit Commands(Server& server);
  ~Commands();
  // spec is nullptr for an unknown command.
  void Execute(Session& s, const net::CommandSpec* spec, const Args& args);

 private:
  using Handler = void (Commands::*)(Session&, const Args&);
  struct ExportState {
    std::unique_ptr<store::KvStore::Snapshot> snap;
    int64_t last_used_ms = 0;
  };

  // Proposes cmd (stamped with the wall clock) and replies when applied.
  // `ok_reply`, when set, replaces a +OK result (e.g. IMPORT.BEGIN's id).
  void Propose(Session& s, store::Command& cmd, std::string ok_reply = {});

  void Ping(Session&, const Args&);
  void Echo(Session&, const Args&);
  void Quit(Session&, const Args&);
  void Shutdown(Session&, const Args&);
  void Hello(Session&, const Args&);
  void Auth(Session&, const Args&);
  void Client(Session&, const Args&);
  void Select(Session&, const Args&);
  void CommandInfo(Session&, const Args&);
  void Info(Session&, const Args&);
  void DbSize(Session&, const Args&);
  void FlushAll(Session&, const Args&);
  void ConfigGet(Session&, const Args&);
  void Get(Session&, const Args&);
  void Set(Session&, const Args&);
  void MGet(Session&, const Args&);
  void MSet(Session&, const Args&);
  void MSetNx(Session&, const Args&);
  void MSetEx(Session&, const Args&);
  void Del(Session&, const Args&);
  void Exists(Session&, const Args&);
  void Expire(Session&, const Args&);
  void Ttl(Session&, const Args&);
  void Persist(Session&, const Args&);
  void Type(Session&, const Args&);
  void Scan(Session&, const Args&);
  void Keys(Session&, const Args&);
  void ImportBegin(Session&, const Args&);
  void ImportAdd(Session&, const Args&);
  void ImportEnd(Session&, const Args&);
  void ExportBegin(Session&, const Args&);
  void ExportNext(Session&, const Args&);
  void ExportEnd(Session&, const Args&);
  void ClusterStatus(Session&, const Args&);
  void ClusterHealth(Session&, const Args&);
  void ClusterAdd(Session&, const Args&);
  void ClusterRemove(Session&, const Args&);
  void ClusterTransfer(Session&, const Args&);
  void ClusterJoin(Session&, const Args&);
  void Consistency(Session&, const Args&);

  bool CheckAuthPassword(Session& s, std::string_view user, std::string_view pass);
  // Every INFO section but the keyspace (a range read).
  std::string InfoText(std::string_view section);
  // Runs `read` through Engine::ReadCommitted and replies with reply(w) on
  // the io thread (or the read's error), in this command's place in the
  // session's reply order.
  void ReadCommitted(Session& s, Engine::SnapshotRead read,
                     std::function<void(net::ReplyWriter&)> reply);
  void ExportBegun(Status st, std::string_view prefix, net::ReplyWriter& w);
  // Counts live keys in committed state.db (ReadCommitted), then reply(w, n).
  void CountKeys(Session& s, std::function<void(net::ReplyWriter&, int64_t)> reply);

  Server& server_;
  std::vector<Handler> handlers_;                      // parallel to net::AllCommands()
  std::unordered_map<uint64_t, std::string> cursors_;  // SCAN cursor -> last key
  std::deque<uint64_t> cursor_order_;
  uint64_t next_cursor_ = 1;
  std::unordered_map<std::string, ExportState> exports_;
};

}  // namespace flin::daemon
