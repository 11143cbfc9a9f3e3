#include "net/command_spec.h"

#include <array>
#include <unordered_map>

#include "base/strings.h"

namespace flin::net {
namespace {

constexpr uint32_t R = kCmdRead, W = kCmdWrite, A = kCmdAdmin, N = kCmdNoAuth, C = kCmdConnection,
                   O = kCmdAfterOwnWrites;

constexpr std::array kCommands = std::to_array<CommandSpec>({
    // connection
    {"ping", -1, C | N, 0, 0, 0, "connection", "PING [message]", "Check the server answers"},
    {"echo", 2, C, 0, 0, 0, "connection", "ECHO message", "Return the message"},
    {"quit", -1, C | N, 0, 0, 0, "connection", "QUIT", "Close the connection"},
    {"hello", -1, C | N, 0, 0, 0, "connection", "HELLO [2 [AUTH username password] [SETNAME name]]",
     "Handshake: protocol version 2 only, optional AUTH"},
    {"auth", -2, C | N, 0, 0, 0, "connection", "AUTH [username] password",
     "Authenticate the connection"},
    {"client", -2, C, 0, 0, 0, "connection", "CLIENT SETNAME name | GETNAME | ID | SETINFO ...",
     "Connection settings (name, id, consistency level)"},
    {"select", 2, C, 0, 0, 0, "connection", "SELECT 0", "Only database 0 exists"},
    // server
    {"command", -1, A, 0, 0, 0, "server", "COMMAND [COUNT | DOCS | INFO name ...]",
     "Describe the command table"},
    {"info", -1, A | O, 0, 0, 0, "server", "INFO [section]",
     "Server, storage and replication state"},
    {"dbsize", 1, R, 0, 0, 0, "server", "DBSIZE", "Number of live keys"},
    {"flushall", -1, W, 0, 0, 0, "server", "FLUSHALL [SYNC | ASYNC]", "Delete every key"},
    {"shutdown", -1, A, 0, 0, 0, "server", "SHUTDOWN [NOSAVE | SAVE] [NOW] [FORCE]",
     "Stop this flind cleanly, as SIGTERM does (every write is already durable)"},
    {"config", -2, A, 0, 0, 0, "server", "CONFIG GET parameter", "Read configuration values"},
    // string
    {"get", 2, R, 1, 1, 1, "string", "GET key", "Value of a key"},
    {"set", -3, W, 1, 1, 1, "string",
     "SET key value [NX | XX] [GET] [EX seconds | PX milliseconds | EXAT unix-seconds | "
     "PXAT unix-milliseconds | KEEPTTL]",
     "Set a key's value, optionally with a TTL and conditions"},
    {"mget", -2, R, 1, -1, 1, "string", "MGET key [key ...]",
     "Values of several keys (nil if missing)"},
    {"mset", -3, W, 1, -1, 2, "string", "MSET key value [key value ...]",
     "Set several keys atomically"},
    {"msetnx", -3, W, 1, -1, 2, "string", "MSETNX key value [key value ...]",
     "Set several keys atomically, only if none exists"},
    {"msetex", -4, W, 2, -1, 2, "string",
     "MSETEX numkeys key value [key value ...] [NX | XX] [EX seconds | PX milliseconds | "
     "EXAT unix-seconds | PXAT unix-milliseconds | KEEPTTL]",
     "Set several keys atomically with a shared TTL and condition"},
    {"mdel", -2, W, 1, -1, 1, "generic", "MDEL key [key ...]",
     "Delete several keys atomically; returns how many existed"},
    // generic
    {"del", -2, W, 1, -1, 1, "generic", "DEL key [key ...]",
     "Delete keys; returns how many existed"},
    {"unlink", -2, W, 1, -1, 1, "generic", "UNLINK key [key ...]", "Same as DEL"},
    {"exists", -2, R, 1, -1, 1, "generic", "EXISTS key [key ...]", "Count the keys that exist"},
    {"expire", -3, W, 1, 1, 1, "generic", "EXPIRE key seconds [NX | XX | GT | LT]",
     "Set a key's time to live in seconds"},
    {"pexpire", -3, W, 1, 1, 1, "generic", "PEXPIRE key milliseconds [NX | XX | GT | LT]",
     "Set a key's time to live in milliseconds"},
    {"expireat", -3, W, 1, 1, 1, "generic", "EXPIREAT key unix-seconds [NX | XX | GT | LT]",
     "Set a key's expiry as a Unix time in seconds"},
    {"pexpireat", -3, W, 1, 1, 1, "generic", "PEXPIREAT key unix-milliseconds [NX | XX | GT | LT]",
     "Set a key's expiry as a Unix time in milliseconds"},
    {"ttl", 2, R, 1, 1, 1, "generic", "TTL key",
     "Remaining time to live in seconds (-1 no expiry, -2 missing)"},
    {"pttl", 2, R, 1, 1, 1, "generic", "PTTL key",
     "Remaining time to live in milliseconds (-1 no expiry, -2 missing)"},
    {"expiretime", 2, R, 1, 1, 1, "generic", "EXPIRETIME key",
     "Absolute expiry as a Unix time in seconds"},
    {"pexpiretime", 2, R, 1, 1, 1, "generic", "PEXPIRETIME key",
     "Absolute expiry as a Unix time in milliseconds"},
    {"persist", 2, W, 1, 1, 1, "generic", "PERSIST key", "Remove a key's expiry"},
    {"type", 2, R, 1, 1, 1, "generic", "TYPE key", "Type of the value stored at key"},
    {"scan", -2, R, 0, 0, 0, "generic", "SCAN cursor [MATCH pattern] [COUNT count]",
     "Iterate over keys"},
    {"keys", 2, R, 0, 0, 0, "generic", "KEYS pattern", "All keys matching a glob pattern"},
    // bulk: server side of `flin import --atomic` and `flin export`
    {"import.begin", 1, W, 0, 0, 0, "bulk", "IMPORT.BEGIN",
     "Open a staging area for an atomic import; returns its id"},
    {"import.add", -5, W, 0, 0, 0, "bulk",
     "IMPORT.ADD id key value expire-at-ms [key value expire-at-ms ...]",
     "Stage rows (invisible until IMPORT.COMMIT); expire-at-ms 0 means no expiry"},
    {"import.commit", 2, W, 0, 0, 0, "bulk", "IMPORT.COMMIT id",
     "Make every staged row visible at once; returns the number of keys"},
    {"import.abort", 2, W, 0, 0, 0, "bulk", "IMPORT.ABORT id", "Discard a staging area"},
    {"export.begin", -1, R, 0, 0, 0, "bulk", "EXPORT.BEGIN [prefix]",
     "Open a consistent snapshot for export; returns its id"},
    {"export.next", 3, R, 0, 0, 0, "bulk", "EXPORT.NEXT id count",
     "Next rows of a snapshot as [key, value, expire-at-ms]; empty when done"},
    {"export.end", 2, R, 0, 0, 0, "bulk", "EXPORT.END id", "Release an export snapshot"},
    // cluster: membership and health (see flind(8) "CLUSTERS")
    {"cluster.status", 1, A, 0, 0, 0, "cluster", "CLUSTER.STATUS",
     "Members, roles, leader, term, commit/applied index and lag"},
    {"cluster.health", 1, A, 0, 0, 0, "cluster", "CLUSTER.HEALTH",
     "+OK once this node knows a leader and has applied what it knows committed"},
    {"cluster.add", -2, A, 0, 0, 0, "cluster", "CLUSTER.ADD peer-addr [id]",
     "Add a learner at peer-addr (promoted to voter once caught up); returns its id"},
    {"cluster.remove", 2, A, 0, 0, 0, "cluster", "CLUSTER.REMOVE id", "Remove a member"},
    {"cluster.transfer", -1, A, 0, 0, 0, "cluster", "CLUSTER.TRANSFER [id]",
     "Hand leadership to node id (default: the most up-to-date other voter)"},
    {"cluster.join", 4, A, 0, 0, 0, "cluster", "CLUSTER.JOIN id peer-addr mac",
     "Used by flind --join: add the calling node (authenticated by the cluster secret)"},
    {"consistency", -1, C, 0, 0, 0, "connection", "CONSISTENCY [linearizable | stale]",
     "This connection's read consistency (default linearizable)"},
});

}  // namespace

std::span<const CommandSpec> AllCommands() { return kCommands; }

const CommandSpec* FindCommand(std::string_view name) {
  // Runs for every request: lower-case into a small buffer and hash, instead
  // of comparing against every name.
  static const auto* const kIndex = [] {
    auto* m = new std::unordered_map<std::string_view, const CommandSpec*>();
    for (const CommandSpec& c : kCommands) m->emplace(c.name, &c);
    return m;
  }();
  char buf[32];
  if (name.size() > sizeof buf) return nullptr;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    buf[i] = (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
  }
  auto it = kIndex->find(std::string_view(buf, name.size()));
  return it == kIndex->end() ? nullptr : it->second;
}

bool ArityOk(const CommandSpec& spec, size_t argc) {
  if (spec.arity >= 0) return argc == static_cast<size_t>(spec.arity);
  return argc >= static_cast<size_t>(-spec.arity);
}

}  // namespace flin::net
