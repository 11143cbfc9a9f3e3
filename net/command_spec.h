// The command table as data (Redis' src/commands/*.json in spirit): name,
// arity, flags, key positions, syntax and a one-line summary. flind's
// dispatcher, flin's REPL help and completion, the shell completions and the
// man pages are all generated from this one list.
// Thread-safety: immutable after static initialisation.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

namespace flin::net {

enum CommandFlag : uint32_t {
  kCmdRead = 1u << 0,        // reads the keyspace (linearizable unless stale)
  kCmdWrite = 1u << 1,       // proposes an entry
  kCmdAdmin = 1u << 2,       // server / cluster administration
  kCmdNoAuth = 1u << 3,      // allowed before AUTH (AUTH HELLO PING QUIT)
  kCmdConnection = 1u << 4,  // touches only the connection (PING ECHO QUIT ...)
  // Runs after this connection's earlier writes are applied, like a read,
  // but without a read's leader round trip in a cluster (INFO: its key
  // count includes a SET pipelined before it, and a node cut off from the
  // leader still answers it).
  kCmdAfterOwnWrites = 1u << 5,
};

struct CommandSpec {
  std::string_view name;  // lower case, e.g. "mset"
  // Redis convention: N > 0 means exactly N arguments including the name;
  // N < 0 means at least -N.
  int arity;
  uint32_t flags;
  // Redis convention for key positions (1-based; last_key -1 = last arg).
  int first_key, last_key, key_step;
  std::string_view group;    // "string", "generic", "connection", "server", "cluster"
  std::string_view syntax;   // "MSET key value [key value ...]"
  std::string_view summary;  // one line, no trailing period
};

std::span<const CommandSpec> AllCommands();
// Case-insensitive lookup; nullptr when unknown.
const CommandSpec* FindCommand(std::string_view name);
// True when argc (including the command name) satisfies spec.arity.
bool ArityOk(const CommandSpec& spec, size_t argc);

}  // namespace flin::net
