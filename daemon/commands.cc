#include "daemon/commands.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <signal.h>
#include <unistd.h>

#include <climits>
#include <sstream>

#include "base/check.h"
#include "base/clock.h"
#include "base/glob.h"
#include "base/log.h"
#include "base/strings.h"
#include "daemon/engine.h"
#include "daemon/server.h"
#include "daemon/session.h"

namespace flin::daemon {
namespace {

using store::Command;
using store::Op;

constexpr const char* kNotInt = "ERR value is not an integer or out of range";
constexpr const char* kSyntax = "ERR syntax error";
constexpr size_t kMaxCursors = 10000;
constexpr size_t kMaxExports = 16;
constexpr int64_t kExportIdleMs = 10 * 60 * 1000;

std::string WrongArgs(std::string_view name) {
  return "ERR wrong number of arguments for '" + ToLower(name) + "' command";
}

std::string InvalidExpire(std::string_view name) {
  return "ERR invalid expire time in '" + ToLower(name) + "' command";
}

std::string RandomId() {
  unsigned char b[12];
  FLIN_CHECK(RAND_bytes(b, sizeof b) == 1);
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : b) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

// Parses a SET/MSETEX expiry option value into an absolute Unix-ms deadline.
// Redis rejects non-positive values and anything that overflows.
bool AbsoluteExpiry(std::string_view unit, std::string_view value, int64_t now, int64_t* at,
                    std::string* err, std::string_view cmd) {
  auto v = ParseInt64(value);
  if (!v) {
    *err = kNotInt;
    return false;
  }
  if (*v <= 0) {
    *err = InvalidExpire(cmd);
    return false;
  }
  bool seconds = EqualsIgnoreCase(unit, "EX") || EqualsIgnoreCase(unit, "EXAT");
  bool relative = EqualsIgnoreCase(unit, "EX") || EqualsIgnoreCase(unit, "PX");
  int64_t ms = *v;
  if (seconds && __builtin_mul_overflow(*v, int64_t{1000}, &ms)) {
    *err = InvalidExpire(cmd);
    return false;
  }
  if (relative && __builtin_add_overflow(ms, now, &ms)) {
    *err = InvalidExpire(cmd);
    return false;
  }
  *at = ms;
  return true;
}

// Parses [NX|XX] [GET] [EX|PX|EXAT|PXAT n | KEEPTTL] options from args[from..].
struct SetOptions {
  uint32_t flags = 0;
  int64_t expire_at = 0;
};
bool ParseSetOptions(const Args& args, size_t from, bool allow_get, int64_t now, SetOptions* o,
                     std::string* err) {
  bool have_cond = false, have_exp = false;
  for (size_t i = from; i < args.size(); ++i) {
    std::string_view a = args[i];
    if (EqualsIgnoreCase(a, "NX") || EqualsIgnoreCase(a, "XX")) {
      if (have_cond) return *err = kSyntax, false;
      have_cond = true;
      o->flags |= EqualsIgnoreCase(a, "NX") ? store::kCondNx : store::kCondXx;
    } else if (allow_get && EqualsIgnoreCase(a, "GET")) {
      o->flags |= store::kGetOld;
    } else if (EqualsIgnoreCase(a, "KEEPTTL")) {
      if (have_exp) return *err = kSyntax, false;
      have_exp = true;
      o->flags |= store::kKeepTtl;
    } else if (EqualsIgnoreCase(a, "EX") || EqualsIgnoreCase(a, "PX") ||
               EqualsIgnoreCase(a, "EXAT") || EqualsIgnoreCase(a, "PXAT")) {
      if (have_exp || i + 1 >= args.size()) return *err = kSyntax, false;
      have_exp = true;
      if (!AbsoluteExpiry(a, args[i + 1], now, &o->expire_at, err, args[0])) return false;
      ++i;
    } else {
      return *err = kSyntax, false;
    }
  }
  return true;
}

}  // namespace

Commands::Commands(Server& server) : server_(server) {
  static const std::unordered_map<std::string_view, Handler> kByName = {
      {"ping", &Commands::Ping},
      {"echo", &Commands::Echo},
      {"quit", &Commands::Quit},
      {"shutdown", &Commands::Shutdown},
      {"hello", &Commands::Hello},
      {"auth", &Commands::Auth},
      {"client", &Commands::Client},
      {"select", &Commands::Select},
      {"command", &Commands::CommandInfo},
      {"info", &Commands::Info},
      {"dbsize", &Commands::DbSize},
      {"flushall", &Commands::FlushAll},
      {"config", &Commands::ConfigGet},
      {"get", &Commands::Get},
      {"set", &Commands::Set},
      {"mget", &Commands::MGet},
      {"mset", &Commands::MSet},
      {"msetnx", &Commands::MSetNx},
      {"msetex", &Commands::MSetEx},
      {"mdel", &Commands::Del},
      {"del", &Commands::Del},
      {"unlink", &Commands::Del},
      {"exists", &Commands::Exists},
      {"expire", &Commands::Expire},
      {"pexpire", &Commands::Expire},
      {"expireat", &Commands::Expire},
      {"pexpireat", &Commands::Expire},
      {"ttl", &Commands::Ttl},
      {"pttl", &Commands::Ttl},
      {"expiretime", &Commands::Ttl},
      {"pexpiretime", &Commands::Ttl},
      {"persist", &Commands::Persist},
      {"type", &Commands::Type},
      {"scan", &Commands::Scan},
      {"keys", &Commands::Keys},
      {"import.begin", &Commands::ImportBegin},
      {"import.add", &Commands::ImportAdd},
      {"import.commit", &Commands::ImportEnd},
      {"import.abort", &Commands::ImportEnd},
      {"export.begin", &Commands::ExportBegin},
      {"export.next", &Commands::ExportNext},
      {"export.end", &Commands::ExportEnd},
      {"cluster.status", &Commands::ClusterStatus},
      {"cluster.health", &Commands::ClusterHealth},
      {"cluster.add", &Commands::ClusterAdd},
      {"cluster.remove", &Commands::ClusterRemove},
      {"cluster.transfer", &Commands::ClusterTransfer},
      {"cluster.join", &Commands::ClusterJoin},
      {"consistency", &Commands::Consistency},
  };
  for (const net::CommandSpec& spec : net::AllCommands()) {
    auto it = kByName.find(spec.name);
    FLIN_CHECK(it != kByName.end()) << "no handler for command '" << spec.name << "'";
    handlers_.push_back(it->second);
  }
}

Commands::~Commands() = default;

void Commands::Execute(Session& s, const net::CommandSpec* spec, const Args& args) {
  if (!spec) {
    std::string msg =
        "ERR unknown command '" + Printable(args[0], 128) + "', with args beginning with: ";
    for (size_t i = 1; i < args.size() && i <= 8; ++i) msg += "'" + Printable(args[i], 64) + "' ";
    s.Reply().Error(msg);
    return;
  }
  if (!s.authenticated() && !(spec->flags & net::kCmdNoAuth)) {
    s.Reply().Error("NOAUTH Authentication required.");
    return;
  }
  if (!net::ArityOk(*spec, args.size())) {
    s.Reply().Error(WrongArgs(spec->name));
    return;
  }
  (this->*handlers_[spec - net::AllCommands().data()])(s, args);
}

void Commands::Propose(Session& s, store::Command& cmd, std::string ok_reply) {
  cmd.now_ms = WallMillis();
  size_t size = store::EncodedSize(cmd);
  uint64_t limit = server_.config().max_batch_bytes;
  if (size > limit) {
    s.Reply().Error("ERR batch of " + std::to_string(size) + " bytes exceeds max-batch-bytes (" +
                    std::to_string(limit) + "); split it into smaller batches");
    return;
  }
  std::string payload;
  store::EncodeCommand(cmd, &payload);
  size_t slot = s.BeginAsync();
  server_.engine().Propose(std::move(payload), [self = s.shared_from_this(), slot,
                                                ok = std::move(ok_reply)](store::ApplyResult r) {
    if (!ok.empty() && r.kind == store::ApplyResult::Kind::kOk) {
      r = store::ApplyResult::Bulk(ok);
    }
    self->Complete(slot, r);
  });
}

// ---- connection ----

void Commands::Ping(Session& s, const Args& a) {
  if (a.size() > 2) return s.Reply().Error(WrongArgs("ping"));
  if (a.size() == 2) return s.Reply().Bulk(a[1]);
  s.Reply().Status("PONG");
}

void Commands::Echo(Session& s, const Args& a) { s.Reply().Bulk(a[1]); }

void Commands::Quit(Session& s, const Args&) {
  s.Reply().Ok();
  s.CloseAfterReply();
}

// SHUTDOWN: the same clean stop as SIGTERM (finish accepted writes, write
// the last replies, close). SAVE/NOSAVE/NOW/FORCE change nothing: every
// acknowledged write is already durable in the log. Like Redis, no reply
// on success: the connection closes (redis-cli expects exactly that).
void Commands::Shutdown(Session& s, const Args& a) {
  for (size_t i = 1; i < a.size(); ++i) {
    if (EqualsIgnoreCase(a[i], "ABORT")) {
      return s.Reply().Error("ERR SHUTDOWN ABORT: flind has no delayed shutdown to abort");
    }
    if (!EqualsIgnoreCase(a[i], "NOSAVE") && !EqualsIgnoreCase(a[i], "SAVE") &&
        !EqualsIgnoreCase(a[i], "NOW") && !EqualsIgnoreCase(a[i], "FORCE")) {
      return s.Reply().Error(kSyntax);
    }
  }
  LOG_INFO << "SHUTDOWN from client " << s.id() << " (" << s.peer() << ")";
  s.CloseAfterReply();
  // Through the signal handler main() installed, so that there is one
  // shutdown path.
  ::kill(::getpid(), SIGTERM);
}

bool Commands::CheckAuthPassword(Session& s, std::string_view user, std::string_view pass) {
  const std::string& want = server_.config().requirepass;
  bool ok = !want.empty() && user == "default" && pass.size() == want.size() &&
            CRYPTO_memcmp(pass.data(), want.data(), want.size()) == 0;
  if (ok) s.set_authenticated(true);
  return ok;
}

void Commands::Auth(Session& s, const Args& a) {
  if (a.size() > 3) return s.Reply().Error(kSyntax);
  if (server_.config().requirepass.empty()) {
    return s.Reply().Error(
        "ERR AUTH <password> called without any password configured for the default user. "
        "Are you sure your configuration is correct?");
  }
  std::string_view user = a.size() == 3 ? a[1] : "default";
  if (!CheckAuthPassword(s, user, a.back())) {
    return s.Reply().Error("WRONGPASS invalid username-password pair or user is disabled.");
  }
  s.Reply().Ok();
}

void Commands::Hello(Session& s, const Args& a) {
  size_t i = 1;
  if (a.size() > 1) {
    auto ver = ParseInt64(a[1]);
    if (!ver) return s.Reply().Error("ERR Protocol version is not an integer or out of range");
    if (*ver != 2) return s.Reply().Error("NOPROTO unsupported protocol version");
    i = 2;
  }
  std::string setname;
  for (; i < a.size(); ++i) {
    if (EqualsIgnoreCase(a[i], "AUTH") && i + 2 < a.size()) {
      if (server_.config().requirepass.empty() || !CheckAuthPassword(s, a[i + 1], a[i + 2])) {
        return s.Reply().Error("WRONGPASS invalid username-password pair or user is disabled.");
      }
      i += 2;
    } else if (EqualsIgnoreCase(a[i], "SETNAME") && i + 1 < a.size()) {
      setname = a[++i];
    } else {
      return s.Reply().Error("ERR Syntax error in HELLO option '" + Printable(a[i]) + "'");
    }
  }
  if (!s.authenticated()) {
    return s.Reply().Error(
        "NOAUTH HELLO must be called with the client already authenticated, "
        "otherwise the HELLO <proto> AUTH <user> <pass> option can be used to "
        "authenticate the client and select the RESP protocol version at the "
        "same time");
  }
  if (!setname.empty()) s.set_name(setname);
  auto w = s.Reply();
  w.ArrayHeader(14);
  w.Bulk("server");
  w.Bulk("flin");
  w.Bulk("version");
  w.Bulk("0.1.0");
  w.Bulk("proto");
  w.Integer(2);
  w.Bulk("id");
  w.Integer(static_cast<int64_t>(s.id()));
  w.Bulk("mode");
  w.Bulk("standalone");
  w.Bulk("role");
  w.Bulk("master");
  w.Bulk("modules");
  w.ArrayHeader(0);
}

void Commands::Client(Session& s, const Args& a) {
  std::string sub = ToLower(a[1]);
  auto w = s.Reply();
  if (sub == "setname" && a.size() == 3) {
    for (char c : a[2]) {
      if (c <= ' ' || c > '~') {
        return w.Error("ERR Client names cannot contain spaces, newlines or special characters.");
      }
    }
    s.set_name(std::string(a[2]));
    w.Ok();
  } else if (sub == "getname" && a.size() == 2) {
    if (s.name().empty())
      w.Nil();
    else
      w.Bulk(s.name());
  } else if (sub == "id" && a.size() == 2) {
    w.Integer(static_cast<int64_t>(s.id()));
  } else if (sub == "setinfo" && a.size() == 4) {
    w.Ok();  // library name/version: accepted for client compatibility
  } else if (sub == "info" && a.size() == 2) {
    w.Bulk("id=" + std::to_string(s.id()) + " addr=" + s.peer() + " name=" + s.name() + "\n");
  } else {
    w.Error("ERR unknown subcommand or wrong number of arguments for '" + Printable(a[1]) +
            "'. Try CLIENT SETNAME, GETNAME, ID, SETINFO, INFO.");
  }
}

void Commands::Select(Session& s, const Args& a) {
  auto db = ParseInt64(a[1]);
  if (!db) return s.Reply().Error(kNotInt);
  if (*db != 0) return s.Reply().Error("ERR DB index is out of range");
  s.Reply().Ok();
}

// ---- server ----

void Commands::CommandInfo(Session& s, const Args& a) {
  auto w = s.Reply();
  auto info = [&](const net::CommandSpec& c) {
    w.ArrayHeader(10);
    w.Bulk(c.name);
    w.Integer(c.arity);
    int nflags = !!(c.flags & net::kCmdWrite) + !!(c.flags & net::kCmdRead) +
                 !!(c.flags & net::kCmdAdmin) + !!(c.flags & net::kCmdNoAuth);
    w.ArrayHeader(nflags);
    if (c.flags & net::kCmdWrite) w.Status("write");
    if (c.flags & net::kCmdRead) w.Status("readonly");
    if (c.flags & net::kCmdAdmin) w.Status("admin");
    if (c.flags & net::kCmdNoAuth) w.Status("no_auth");
    w.Integer(c.first_key);
    w.Integer(c.last_key);
    w.Integer(c.key_step);
    for (int i = 0; i < 4; ++i) w.ArrayHeader(0);  // acl categories, tips, key specs, subcommands
  };
  auto cmds = net::AllCommands();
  if (a.size() == 1) {
    w.ArrayHeader(cmds.size());
    for (const auto& c : cmds) info(c);
    return;
  }
  std::string sub = ToLower(a[1]);
  if (sub == "count") return w.Integer(static_cast<int64_t>(cmds.size()));
  if (sub == "list") {
    w.ArrayHeader(cmds.size());
    for (const auto& c : cmds) w.Bulk(c.name);
    return;
  }
  if (sub == "info") {
    w.ArrayHeader(a.size() - 2);
    for (size_t i = 2; i < a.size(); ++i) {
      const net::CommandSpec* c = net::FindCommand(a[i]);
      if (c)
        info(*c);
      else
        w.NilArray();
    }
    return;
  }
  if (sub == "docs") {
    // Flattened map name -> {summary, since, group, syntax}, as redis-cli reads it.
    std::vector<const net::CommandSpec*> list;
    if (a.size() == 2) {
      for (const auto& c : cmds) list.push_back(&c);
    } else {
      for (size_t i = 2; i < a.size(); ++i) {
        if (const auto* c = net::FindCommand(a[i])) list.push_back(c);
      }
    }
    w.ArrayHeader(list.size() * 2);
    for (const auto* c : list) {
      w.Bulk(c->name);
      w.ArrayHeader(6);
      w.Bulk("summary");
      w.Bulk(c->summary);
      w.Bulk("since");
      w.Bulk("0.1.0");
      w.Bulk("group");
      w.Bulk(c->group);
    }
    return;
  }
  w.Error("ERR unknown subcommand '" + Printable(a[1]) + "'. Try COMMAND COUNT, LIST, INFO, DOCS.");
}

std::string Commands::InfoText(std::string_view section) {
  std::string want = ToLower(section);
  bool all = want.empty() || want == "all" || want == "default" || want == "everything";
  const daemon::Config& c = server_.config();
  NodeStats ns = server_.engine().Stats();
  std::ostringstream o;
  if (all || want == "server") {
    o << "# Server\r\nflin_version:0.1.0\r\nredis_version:7.0.0\r\nredis_mode:standalone\r\n"
      << "process_id:" << getpid() << "\r\ntcp_port:" << server_.tcp_port() << "\r\n"
      << "uptime_in_seconds:" << (WallMillis() - server_.start_ms()) / 1000 << "\r\n"
      << "data_dir:" << c.data_dir << "\r\nunix_socket:" << (c.socket_none() ? "" : c.socket_path)
      << "\r\n\r\n";
  }
  if (all || want == "clients") {
    o << "# Clients\r\nconnected_clients:" << server_.connected_clients()
      << "\r\nmaxclients:" << c.max_clients << "\r\n\r\n";
  }
  if (all || want == "persistence") {
    o << "# Persistence\r\nlog_last_index:" << ns.last_index
      << "\r\nlog_synced_index:" << ns.synced_index << "\r\nlog_first_index:" << ns.log_first_index
      << "\r\nlog_disk_bytes:" << ns.log_disk_bytes << "\r\nlog_syncs:" << ns.log_syncs
      << "\r\nlog_compactions:" << ns.compactions << "\r\napplied_index:" << ns.applied_index
      << "\r\nstate_db_committed_index:" << ns.committed_to_db_index
      << "\r\nwrite_buffer_bytes:" << ns.write_buffer_bytes
      << "\r\nrow_cache_bytes:" << ns.row_cache.bytes << "\r\nrow_cache_rows:" << ns.row_cache.rows
      << "\r\nrow_cache_hits:" << ns.row_cache.hits
      << "\r\nrow_cache_misses:" << ns.row_cache.misses << "\r\n\r\n";
  }
  if (all || want == "stats") {
    const ServerStats& st = server_.stats();
    o << "# Stats\r\ntotal_connections_received:" << st.connections_received
      << "\r\nrejected_connections:" << st.rejected_connections
      << "\r\ntotal_commands_processed:" << st.commands
      << "\r\ntotal_net_input_bytes:" << st.bytes_in << "\r\nprotocol_errors:" << st.protocol_errors
      << "\r\nproposals:" << ns.proposals << "\r\n\r\n";
  }
  if (all || want == "replication" || want == "raft") {
    ClusterInfo ci = server_.engine().Info();
    size_t voters = 0;
    for (const ClusterMember& m : ci.members) voters += m.voter;
    o << "# Replication\r\nrole:" << (ci.role == "leader" || !ci.clustered ? "master" : "slave")
      << "\r\n\r\n# Raft\r\nraft_mode:" << (ci.clustered ? "cluster" : "standalone")
      << "\r\nraft_cluster_id:" << ci.cluster_id << "\r\nraft_node_id:" << ci.node_id
      << "\r\nraft_role:" << (ci.clustered ? ci.role : "leader")
      << "\r\nraft_leader_id:" << ci.leader_id << "\r\nraft_term:" << ci.term
      << "\r\nraft_members:" << ci.members.size() << "\r\nraft_voters:" << voters
      << "\r\nraft_commit_index:" << ci.commit_index
      << "\r\nraft_applied_index:" << ci.applied_index << "\r\nraft_last_index:" << ci.last_index
      << "\r\nraft_snapshots_created:" << ns.snapshots_created
      << "\r\nraft_snapshots_installed:" << ns.snapshots_installed << "\r\n\r\n";
  }
  return o.str();
}

void Commands::Info(Session& s, const Args& a) {
  if (a.size() > 2) return s.Reply().Error(kSyntax);
  std::string want = ToLower(a.size() == 2 ? a[1] : "");
  std::string text = InfoText(want);
  if (!(want.empty() || want == "all" || want == "default" || want == "everything" ||
        want == "keyspace")) {
    return s.Reply().Bulk(text);
  }
  // The key count is a range read: it waits for state.db, off the io thread.
  CountKeys(s, [text = std::move(text)](net::ReplyWriter& w, int64_t n) {
    std::string out = text + "# Keyspace\r\n";
    if (n > 0) out += "db0:keys=" + std::to_string(n) + ",expires=0,avg_ttl=0\r\n";
    w.Bulk(out + "\r\n");
  });
}

void Commands::CountKeys(Session& s, std::function<void(net::ReplyWriter&, int64_t)> reply) {
  auto n = std::make_shared<int64_t>(0);
  int64_t now = WallMillis();
  ReadCommitted(
      s,
      [n, now](store::KvStore::Snapshot& snap) {
        auto count = snap.CountLive(now);
        if (!count.ok()) return count.status();
        *n = *count;
        return Status::Ok();
      },
      [n, reply = std::move(reply)](net::ReplyWriter& w) { reply(w, *n); });
}

void Commands::ReadCommitted(Session& s, Engine::SnapshotRead read,
                             std::function<void(net::ReplyWriter&)> reply) {
  size_t slot = s.BeginAsync();
  server_.engine().ReadCommitted(
      std::move(read), [self = s.shared_from_this(), slot, reply = std::move(reply)](Status st) {
        std::string out;
        net::ReplyWriter w(&out);
        if (st.ok()) {
          reply(w);
        } else {
          w.Error("ERR " + st.message());
        }
        self->CompleteRaw(slot, std::move(out));
      });
}

void Commands::DbSize(Session& s, const Args&) {
  CountKeys(s, [](net::ReplyWriter& w, int64_t n) { w.Integer(n); });
}

void Commands::FlushAll(Session& s, const Args& a) {
  if (a.size() > 2 ||
      (a.size() == 2 && !EqualsIgnoreCase(a[1], "SYNC") && !EqualsIgnoreCase(a[1], "ASYNC"))) {
    return s.Reply().Error(kSyntax);
  }
  store::Command cmd;
  cmd.op = Op::kFlushAll;
  Propose(s, cmd);
}

void Commands::ConfigGet(Session& s, const Args& a) {
  if (!EqualsIgnoreCase(a[1], "GET")) {
    return s.Reply().Error("ERR CONFIG " + Printable(ToUpper(a[1])) +
                           " is not supported: flind is configured by flags or --config at start");
  }
  if (a.size() < 3) return s.Reply().Error(WrongArgs("config|get"));
  const daemon::Config& c = server_.config();
  const std::pair<std::string, std::string> table[] = {
      {"maxclients", std::to_string(c.max_clients)},
      {"timeout", std::to_string(c.timeout_seconds)},
      {"proto-max-bulk-len", std::to_string(c.max_bulk_len)},
      {"max-batch-bytes", std::to_string(c.max_batch_bytes)},
      {"client-output-buffer-limit", std::to_string(c.client_output_buffer_limit)},
      {"databases", "1"},
      {"save", ""},
      {"appendonly", "yes"},
      {"appendfsync", "always"},
      {"dir", c.data_dir},
  };
  std::vector<const std::pair<std::string, std::string>*> hits;
  for (const auto& kv : table) {
    for (size_t i = 2; i < a.size(); ++i) {
      if (GlobMatch(ToLower(a[i]), kv.first)) {
        hits.push_back(&kv);
        break;
      }
    }
  }
  auto w = s.Reply();
  w.ArrayHeader(hits.size() * 2);
  for (const auto* kv : hits) {
    w.Bulk(kv->first);
    w.Bulk(kv->second);
  }
}

// ---- keys ----

void Commands::Get(Session& s, const Args& a) {
  auto r = server_.engine().ReadKeys({a[1]}, /*want_values=*/true, WallMillis());
  auto w = s.Reply();
  if (!r.ok()) return w.Error("ERR " + r.status().message());
  if (!(*r)[0]) return w.Nil();
  w.Bulk((*r)[0]->value);
}

void Commands::Set(Session& s, const Args& a) {
  store::Command cmd;
  cmd.now_ms = WallMillis();
  SetOptions o;
  std::string err;
  if (!ParseSetOptions(a, 3, /*allow_get=*/true, cmd.now_ms, &o, &err)) {
    return s.Reply().Error(err);
  }
  cmd.op = Op::kSet;
  cmd.flags = o.flags;
  cmd.arg = o.expire_at;
  cmd.args = {a[1], a[2]};
  Propose(s, cmd);
}

void Commands::MGet(Session& s, const Args& a) {
  const uint64_t limit = server_.config().client_output_buffer_limit;
  std::string out;
  net::ReplyWriter w(&out);
  w.ArrayHeader(a.size() - 1);
  const std::string too_big = "ERR MGET reply exceeds client-output-buffer-limit (" +
                              std::to_string(limit) + " bytes); ask for fewer keys";
  // The limit also bounds the values the read copies (it stops there).
  auto r = server_.engine().ReadKeys(std::vector<std::string_view>(a.begin() + 1, a.end()),
                                     /*want_values=*/true, WallMillis(), limit);
  if (!r.ok()) {
    return s.Reply().Error(
        r.status().code() == Status::Code::kLimit ? too_big : "ERR " + r.status().message());
  }
  for (const auto& item : *r) {
    if (item)
      w.Bulk(item->value);
    else
      w.Nil();
    if (out.size() > limit) return s.Reply().Error(too_big);
  }
  s.Reply().out()->append(out);
}

void Commands::MSet(Session& s, const Args& a) {
  if (a.size() % 2 != 1) return s.Reply().Error(WrongArgs(a[0]));
  store::Command cmd;
  cmd.op = Op::kMSet;
  cmd.args.assign(a.begin() + 1, a.end());
  Propose(s, cmd);
}

void Commands::MSetNx(Session& s, const Args& a) {
  if (a.size() % 2 != 1) return s.Reply().Error(WrongArgs(a[0]));
  store::Command cmd;
  cmd.op = Op::kMSet;
  cmd.flags = store::kCondNx | store::kReplyInt;
  cmd.args.assign(a.begin() + 1, a.end());
  Propose(s, cmd);
}

// MSETEX numkeys key value [key value ...] [NX | XX] [EX|PX|EXAT|PXAT n | KEEPTTL]
void Commands::MSetEx(Session& s, const Args& a) {
  auto numkeys = ParseInt64(a[1]);
  if (!numkeys || *numkeys <= 0) {
    return s.Reply().Error("ERR invalid numkeys value: must be a positive integer");
  }
  if (static_cast<uint64_t>(*numkeys) > (a.size() - 2) / 2) {
    return s.Reply().Error("ERR wrong number of key-value pairs: numkeys is " +
                           std::to_string(*numkeys) + " but fewer pairs follow");
  }
  store::Command cmd;
  cmd.now_ms = WallMillis();
  SetOptions o;
  std::string err;
  size_t opts_from = 2 + static_cast<size_t>(*numkeys) * 2;
  if (!ParseSetOptions(a, opts_from, /*allow_get=*/false, cmd.now_ms, &o, &err)) {
    return s.Reply().Error(err);
  }
  cmd.op = Op::kMSet;
  cmd.flags = o.flags | store::kReplyInt;
  cmd.arg = o.expire_at;
  cmd.args.assign(a.begin() + 2, a.begin() + static_cast<ptrdiff_t>(opts_from));
  Propose(s, cmd);
}

void Commands::Del(Session& s, const Args& a) {
  store::Command cmd;
  cmd.op = Op::kDel;
  cmd.args.assign(a.begin() + 1, a.end());
  Propose(s, cmd);
}

void Commands::Exists(Session& s, const Args& a) {
  auto r = server_.engine().ReadKeys(std::vector<std::string_view>(a.begin() + 1, a.end()),
                                     /*want_values=*/false, WallMillis());
  if (!r.ok()) return s.Reply().Error("ERR " + r.status().message());
  int64_t n = 0;
  for (const auto& item : *r) n += item ? 1 : 0;
  s.Reply().Integer(n);
}

void Commands::Expire(Session& s, const Args& a) {
  std::string name = ToLower(a[0]);
  auto v = ParseInt64(a[2]);
  if (!v) return s.Reply().Error(kNotInt);
  int64_t now = WallMillis();
  bool seconds = name == "expire" || name == "expireat";
  bool relative = name == "expire" || name == "pexpire";
  int64_t at = *v;
  if ((seconds && __builtin_mul_overflow(at, int64_t{1000}, &at)) ||
      (relative && __builtin_add_overflow(at, now, &at))) {
    return s.Reply().Error(InvalidExpire(name));
  }
  store::Command cmd;
  cmd.now_ms = now;
  for (size_t i = 3; i < a.size(); ++i) {
    std::string opt = ToUpper(a[i]);
    if (opt == "NX")
      cmd.flags |= store::kExpNx;
    else if (opt == "XX")
      cmd.flags |= store::kExpXx;
    else if (opt == "GT")
      cmd.flags |= store::kExpGt;
    else if (opt == "LT")
      cmd.flags |= store::kExpLt;
    else
      return s.Reply().Error("ERR Unsupported option " + Printable(a[i]));
  }
  if ((cmd.flags & store::kExpNx) &&
      (cmd.flags & (store::kExpXx | store::kExpGt | store::kExpLt))) {
    return s.Reply().Error("ERR NX and XX, GT or LT options at the same time are not compatible");
  }
  if ((cmd.flags & store::kExpGt) && (cmd.flags & store::kExpLt)) {
    return s.Reply().Error("ERR GT and LT options at the same time are not compatible");
  }
  cmd.op = Op::kExpire;
  cmd.arg = at;
  cmd.args = {a[1]};
  Propose(s, cmd);
}

// TTL, PTTL, EXPIRETIME, PEXPIRETIME: -2 missing, -1 no expiry, else the
// remaining (rounded like Redis) or absolute time in seconds or ms.
void Commands::Ttl(Session& s, const Args& a) {
  std::string name = ToLower(a[0]);
  bool ms = name[0] == 'p';
  bool absolute = name.ends_with("expiretime");
  int64_t now = WallMillis();
  auto r = server_.engine().ReadKeys({a[1]}, /*want_values=*/false, now);
  auto w = s.Reply();
  if (!r.ok()) return w.Error("ERR " + r.status().message());
  if (!(*r)[0]) return w.Integer(-2);
  int64_t exp = (*r)[0]->expires_at;
  if (exp == 0) return w.Integer(-1);
  if (absolute) return w.Integer(ms ? exp : exp / 1000);
  int64_t left = std::max<int64_t>(exp - now, 0);
  w.Integer(ms ? left : (left + 500) / 1000);
}

void Commands::Persist(Session& s, const Args& a) {
  store::Command cmd;
  cmd.op = Op::kPersist;
  cmd.args = {a[1]};
  Propose(s, cmd);
}

void Commands::Type(Session& s, const Args& a) {
  auto r = server_.engine().ReadKeys({a[1]}, /*want_values=*/false, WallMillis());
  if (!r.ok()) return s.Reply().Error("ERR " + r.status().message());
  s.Reply().Status((*r)[0] ? "string" : "none");
}

// SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]. Cursors are opaque
// numbers mapped to the last key examined, so a key present for the whole
// iteration is always returned (Redis' guarantee) even as others change.
void Commands::Scan(Session& s, const Args& a) {
  auto cur = ParseInt64(a[1]);
  if (!cur || *cur < 0) return s.Reply().Error("ERR invalid cursor");
  std::string pattern;
  int64_t count = 10;
  bool type_ok = true;
  for (size_t i = 2; i < a.size(); i += 2) {
    if (i + 1 >= a.size()) return s.Reply().Error(kSyntax);
    if (EqualsIgnoreCase(a[i], "MATCH")) {
      pattern.assign(a[i + 1]);
    } else if (EqualsIgnoreCase(a[i], "COUNT")) {
      auto c = ParseInt64(a[i + 1]);
      if (!c) return s.Reply().Error(kNotInt);
      if (*c < 1) return s.Reply().Error(kSyntax);
      count = std::min<int64_t>(*c, 100000);
    } else if (EqualsIgnoreCase(a[i], "TYPE")) {
      type_ok = EqualsIgnoreCase(a[i + 1], "string");
    } else {
      return s.Reply().Error(kSyntax);
    }
  }
  std::string after;
  if (*cur != 0) {
    auto it = cursors_.find(static_cast<uint64_t>(*cur));
    if (it == cursors_.end()) return s.Reply().Error("ERR invalid cursor");
    after = it->second;
  }
  std::string prefix = pattern.empty() ? "" : GlobLiteralPrefix(pattern);
  struct Result {
    std::vector<std::string> keys;
    std::string last;
    size_t examined = 0;
  };
  auto r = std::make_shared<Result>();
  int64_t now = WallMillis();
  ReadCommitted(
      s,
      [r, after = std::move(after), prefix = std::move(prefix), count,
       now](store::KvStore::Snapshot& snap) {
        return snap.ScanKeys(after, prefix, static_cast<size_t>(count), now, &r->keys, &r->last,
                             &r->examined);
      },
      [this, r, count, type_ok, pattern = std::move(pattern)](net::ReplyWriter& w) {
        uint64_t next = 0;
        // More may follow; examined > count: the scan ran past the prefix.
        if (r->examined == static_cast<size_t>(count)) {
          next = next_cursor_++;
          cursors_[next] = r->last;
          cursor_order_.push_back(next);
          if (cursor_order_.size() > kMaxCursors) {
            cursors_.erase(cursor_order_.front());
            cursor_order_.pop_front();
          }
        }
        w.ArrayHeader(2);
        w.Bulk(std::to_string(next));
        size_t n = 0;
        if (type_ok) {
          for (const auto& k : r->keys) n += pattern.empty() || GlobMatch(pattern, k);
        }
        w.ArrayHeader(n);
        if (!type_ok) return;
        for (const auto& k : r->keys) {
          if (pattern.empty() || GlobMatch(pattern, k)) w.Bulk(k);
        }
      });
}

void Commands::Keys(Session& s, const Args& a) {
  std::string pattern(a[1]);
  std::string prefix = GlobLiteralPrefix(pattern);
  const uint64_t limit = server_.config().client_output_buffer_limit;
  auto out = std::make_shared<std::vector<std::string>>();
  int64_t now = WallMillis();
  // One read transaction on the reader thread: the keys of one committed
  // state, however many chunks they take.
  ReadCommitted(
      s,
      [out, pattern, prefix = std::move(prefix), limit, now](store::KvStore::Snapshot& snap) {
        size_t bytes = 0;
        std::string after;
        for (;;) {
          std::vector<std::string> keys;
          std::string last;
          size_t examined = 0;
          const size_t chunk = 4096;
          FLIN_RETURN_IF_ERROR(snap.ScanKeys(after, prefix, chunk, now, &keys, &last, &examined));
          for (auto& k : keys) {
            if (GlobMatch(pattern, k)) {
              bytes += k.size() + 16;
              out->push_back(std::move(k));
            }
          }
          if (bytes > limit) {
            return Status::InvalidArgument("KEYS reply exceeds client-output-buffer-limit (" +
                                           std::to_string(limit) + " bytes); use SCAN");
          }
          if (examined != chunk) return Status::Ok();
          after = last;
        }
      },
      [out](net::ReplyWriter& w) {
        w.ArrayHeader(out->size());
        for (const auto& k : *out) w.Bulk(k);
      });
}

// ---- bulk import / export ----

void Commands::ImportBegin(Session& s, const Args&) {
  store::Command cmd;
  cmd.op = Op::kImportBegin;
  std::string id = RandomId();
  cmd.args = {id};
  Propose(s, cmd, id);
}

void Commands::ImportAdd(Session& s, const Args& a) {
  if ((a.size() - 2) % 3 != 0) return s.Reply().Error(WrongArgs(a[0]));
  for (size_t i = 4; i < a.size(); i += 3) {
    auto v = ParseInt64(a[i]);
    if (!v || *v < 0) {
      return s.Reply().Error("ERR IMPORT.ADD: expire-at-ms of row " +
                             std::to_string((i - 2) / 3 + 1) + " is not a non-negative integer: '" +
                             Printable(a[i]) + "'");
    }
  }
  store::Command cmd;
  cmd.op = Op::kImportAdd;
  cmd.args.assign(a.begin() + 1, a.end());
  Propose(s, cmd);
}

void Commands::ImportEnd(Session& s, const Args& a) {
  store::Command cmd;
  cmd.op = EqualsIgnoreCase(a[0], "import.commit") ? Op::kImportCommit : Op::kImportAbort;
  cmd.args = {a[1]};
  Propose(s, cmd);
}

void Commands::ExportBegin(Session& s, const Args& a) {
  // The snapshot connection sees only committed state, and it must include
  // every write acknowledged so far: wait for state.db to cover them.
  size_t slot = s.BeginAsync();
  server_.engine().WhenCommitted([this, self = s.shared_from_this(), slot,
                                  prefix = std::string(a.size() > 1 ? a[1] : "")](Status st) {
    std::string out;
    net::ReplyWriter w(&out);
    ExportBegun(st, prefix, w);
    self->CompleteRaw(slot, std::move(out));
  });
}

void Commands::ExportBegun(Status st, std::string_view prefix, net::ReplyWriter& w) {
  if (!st.ok()) return w.Error("ERR " + st.message());
  int64_t now = WallMillis();
  for (auto it = exports_.begin(); it != exports_.end();) {
    if (now - it->second.last_used_ms > kExportIdleMs)
      it = exports_.erase(it);
    else
      ++it;
  }
  if (exports_.size() >= kMaxExports) {
    return w.Error("ERR too many exports in progress (" + std::to_string(kMaxExports) +
                   "); end one with EXPORT.END");
  }
  auto snap =
      server_.engine().WithStore([&](store::KvStore& kv) { return kv.OpenSnapshot(prefix); });
  if (!snap.ok()) return w.Error("ERR " + snap.status().message());
  std::string id = RandomId();
  exports_[id] = ExportState{std::move(snap).value(), now};
  w.Bulk(id);
}

void Commands::ExportNext(Session& s, const Args& a) {
  auto it = exports_.find(std::string(a[1]));
  if (it == exports_.end()) {
    return s.Reply().Error("ERR no such export '" + Printable(a[1]) + "' (finished or expired)");
  }
  auto count = ParseInt64(a[2]);
  if (!count || *count < 1) return s.Reply().Error(kNotInt);
  ExportState& e = it->second;
  e.last_used_ms = WallMillis();
  std::vector<store::KvStore::Snapshot::Row> rows;
  size_t want = static_cast<size_t>(std::min<int64_t>(*count, 100000));
  while (rows.empty() && !e.snap->done()) {
    Status st = e.snap->Next(want, e.last_used_ms, &rows);
    if (!st.ok()) {
      exports_.erase(it);
      return s.Reply().Error("ERR " + st.message());
    }
  }
  auto w = s.Reply();
  w.ArrayHeader(rows.size());
  for (const auto& r : rows) {
    w.ArrayHeader(3);
    w.Bulk(r.key);
    w.Bulk(r.value);
    w.Integer(r.expires_at);
  }
  if (rows.empty()) exports_.erase(it);
}

void Commands::ExportEnd(Session& s, const Args& a) {
  exports_.erase(std::string(a[1]));
  s.Reply().Ok();
}

}  // namespace flin::daemon

namespace flin::daemon {

// ---- cluster ----

void Commands::ClusterStatus(Session& s, const Args&) {
  ClusterInfo ci = server_.engine().Info();
  net::ReplyWriter w = s.Reply();
  w.ArrayHeader(20);
  w.Bulk("mode");
  w.Bulk(ci.clustered ? "cluster" : "standalone");
  w.Bulk("cluster_id");
  w.Bulk(ci.cluster_id);
  w.Bulk("node_id");
  w.Integer(static_cast<int64_t>(ci.node_id));
  w.Bulk("role");
  w.Bulk(ci.role);
  w.Bulk("leader_id");
  w.Integer(static_cast<int64_t>(ci.leader_id));
  w.Bulk("term");
  w.Integer(static_cast<int64_t>(ci.term));
  w.Bulk("commit_index");
  w.Integer(static_cast<int64_t>(ci.commit_index));
  w.Bulk("applied_index");
  w.Integer(static_cast<int64_t>(ci.applied_index));
  w.Bulk("last_index");
  w.Integer(static_cast<int64_t>(ci.last_index));
  w.Bulk("members");
  w.ArrayHeader(ci.members.size());
  for (const ClusterMember& m : ci.members) {
    w.ArrayHeader(14);
    w.Bulk("id");
    w.Integer(static_cast<int64_t>(m.id));
    w.Bulk("peer_addr");
    w.Bulk(m.peer_addr);
    w.Bulk("kind");
    w.Bulk(m.voter ? "voter" : "learner");
    w.Bulk("match");
    w.Integer(m.match);
    w.Bulk("lag");
    w.Integer(m.lag);
    w.Bulk("self");
    w.Integer(m.self);
    w.Bulk("leader");
    w.Integer(m.leader);
  }
}

void Commands::ClusterHealth(Session& s, const Args&) {
  ClusterInfo ci = server_.engine().Info();
  if (!ci.clustered) return s.Reply().Ok();
  if (ci.leader_id == 0) return s.Reply().Error("TRYAGAIN no leader");
  bool member = false;
  for (const ClusterMember& m : ci.members) member |= m.self;
  if (!member) {
    return s.Reply().Error(
        "TRYAGAIN this node is not in the configuration yet (waiting for the leader's snapshot)");
  }
  if (ci.applied_index < ci.commit_index) {
    return s.Reply().Error("TRYAGAIN catching up: applied " + std::to_string(ci.applied_index) +
                           " of " + std::to_string(ci.commit_index));
  }
  s.Reply().Ok();
}

namespace {
// Error texts from the engine already start with a RESP error code.
std::string ErrorText(const Status& st) {
  const std::string& m = st.message();
  if (m.rfind("ERR ", 0) == 0 || m.rfind("TRYAGAIN ", 0) == 0) return m;
  return "ERR " + m;
}
}  // namespace

void Commands::ClusterAdd(Session& s, const Args& a) {
  if (a.size() > 3) return s.Reply().Error(kSyntax);
  uint64_t id = 0;
  if (a.size() == 3) {
    auto v = ParseInt64(a[2]);
    if (!v || *v <= 0) return s.Reply().Error("ERR node id must be a positive integer");
    id = static_cast<uint64_t>(*v);
  }
  size_t slot = s.BeginAsync();
  server_.engine().AddMember(
      std::string(a[1]), id, [self = s.shared_from_this(), slot](Result<uint64_t> r) {
        if (!r.ok()) {
          return self->Complete(slot, store::ApplyResult::Error(ErrorText(r.status())));
        }
        self->Complete(slot, store::ApplyResult::Int(static_cast<int64_t>(*r)));
      });
}

void Commands::ClusterRemove(Session& s, const Args& a) {
  auto v = ParseInt64(a[1]);
  if (!v || *v <= 0) return s.Reply().Error("ERR node id must be a positive integer");
  size_t slot = s.BeginAsync();
  server_.engine().RemoveMember(
      static_cast<uint64_t>(*v), [self = s.shared_from_this(), slot](Status st) {
        self->Complete(
            slot, st.ok() ? store::ApplyResult::Ok() : store::ApplyResult::Error(ErrorText(st)));
      });
}

void Commands::ClusterTransfer(Session& s, const Args& a) {
  if (a.size() > 2) return s.Reply().Error(kSyntax);
  uint64_t id = 0;
  if (a.size() == 2) {
    auto v = ParseInt64(a[1]);
    if (!v || *v <= 0) return s.Reply().Error("ERR node id must be a positive integer");
    id = static_cast<uint64_t>(*v);
  }
  size_t slot = s.BeginAsync();
  server_.engine().TransferLeader(id, [self = s.shared_from_this(), slot](Status st) {
    self->Complete(slot,
                   st.ok() ? store::ApplyResult::Ok() : store::ApplyResult::Error(ErrorText(st)));
  });
}

void Commands::ClusterJoin(Session& s, const Args& a) {
  auto v = ParseInt64(a[1]);
  if (!v || *v < 0) return s.Reply().Error("ERR node id must be a non-negative integer");
  size_t slot = s.BeginAsync();
  server_.engine().Join(static_cast<uint64_t>(*v), std::string(a[2]), std::string(a[3]),
                        [self = s.shared_from_this(), slot](Result<Engine::JoinReply> r) {
                          std::string out;
                          net::ReplyWriter w(&out);
                          if (!r.ok()) {
                            w.Error(ErrorText(r.status()));
                          } else {
                            w.ArrayHeader(3);
                            w.Integer(static_cast<int64_t>(r->id));
                            w.Bulk(r->cluster_id);
                            w.Bulk(r->members);
                          }
                          self->CompleteRaw(slot, std::move(out));
                        });
}

void Commands::Consistency(Session& s, const Args& a) {
  if (a.size() > 2) return s.Reply().Error(kSyntax);
  if (a.size() == 1) return s.Reply().Bulk(s.stale_reads() ? "stale" : "linearizable");
  if (EqualsIgnoreCase(a[1], "stale")) {
    s.set_stale_reads(true);
  } else if (EqualsIgnoreCase(a[1], "linearizable")) {
    s.set_stale_reads(false);
  } else {
    return s.Reply().Error("ERR consistency must be 'linearizable' or 'stale', not '" +
                           Printable(a[1], 64) + "'");
  }
  s.Reply().Ok();
}

}  // namespace flin::daemon
