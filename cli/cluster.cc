#include "cli/cluster.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <thread>

#include "base/strings.h"
#include "cli/app.h"
#include "cli/exit_codes.h"

namespace flin::cli {
namespace {

using client::Reply;
using Clock = std::chrono::steady_clock;

// How often `health --wait` asks again.
constexpr auto kHealthPollInterval = std::chrono::milliseconds(100);
constexpr auto kDefaultHealthWait = std::chrono::seconds(30);

bool IsString(const Reply& r) {
  return r.type == Reply::Type::kBulk || r.type == Reply::Type::kStatus;
}

// An integer field: RESP integer, or a bulk/status string of digits (some
// servers send numbers as strings).
Result<int64_t> IntField(const Reply& r, std::string_view name) {
  if (r.type == Reply::Type::kInteger) return r.integer;
  if (IsString(r)) {
    if (auto v = ParseInt64(r.str)) return *v;
  }
  return Status::Protocol("CLUSTER.STATUS field '" + std::string(name) +
                          "' is not an integer: " + client::DebugString(r));
}

Result<std::string> StringField(const Reply& r, std::string_view name) {
  if (IsString(r)) return r.str;
  if (r.type == Reply::Type::kNil) return std::string();
  return Status::Protocol("CLUSTER.STATUS field '" + std::string(name) +
                          "' is not a string: " + client::DebugString(r));
}

// Walks a flat [field, value, field, value, ...] array.
Status ForEachField(const Reply& r, std::string_view what,
                    const std::function<Status(std::string_view, const Reply&)>& fn) {
  if (r.type != Reply::Type::kArray || r.elements.size() % 2 != 0) {
    return Status::Protocol("unexpected " + std::string(what) +
                            " reply: " + client::DebugString(r));
  }
  for (size_t i = 0; i < r.elements.size(); i += 2) {
    if (!IsString(r.elements[i])) {
      return Status::Protocol("unexpected " + std::string(what) +
                              " field name: " + client::DebugString(r.elements[i]));
    }
    FLIN_RETURN_IF_ERROR(fn(r.elements[i].str, r.elements[i + 1]));
  }
  return Status::Ok();
}

Result<ClusterMember> ParseMember(const Reply& r) {
  ClusterMember m;
  Status st = ForEachField(r, "CLUSTER.STATUS member", [&](std::string_view f, const Reply& v) {
    if (f == "id") {
      auto x = IntField(v, f);
      if (!x.ok()) return x.status();
      m.id = static_cast<uint64_t>(*x);
    } else if (f == "peer_addr") {
      auto x = StringField(v, f);
      if (!x.ok()) return x.status();
      m.peer_addr = *x;
    } else if (f == "kind") {
      auto x = StringField(v, f);
      if (!x.ok()) return x.status();
      m.kind = *x;
    } else if (f == "match" || f == "lag" || f == "self" || f == "leader") {
      auto x = IntField(v, f);
      if (!x.ok()) return x.status();
      if (f == "match") m.match = *x;
      if (f == "lag") m.lag = *x;
      if (f == "self") m.self = *x != 0;
      if (f == "leader") m.leader = *x != 0;
    }
    return Status::Ok();
  });
  if (!st.ok()) return st;
  return m;
}

std::string Dash(std::string_view s) { return s.empty() ? "-" : std::string(s); }
std::string Known(int64_t v) { return v < 0 ? "-" : std::to_string(v); }
std::string MemberRole(const ClusterMember& m) { return m.leader ? "leader" : "follower"; }

std::string PadRight(std::string s, size_t width) {
  if (s.size() < width) s.append(width - s.size(), ' ');
  return s;
}
std::string PadLeft(const std::string& s, size_t width) {
  return s.size() < width ? std::string(width - s.size(), ' ') + s : s;
}

// The client address a new node should --join: the one flin talked to. A
// unix socket cannot be joined, so then the node's TCP port (from INFO) on
// loopback is the best guess; *note says so.
std::string JoinAddress(Session& s, client::Connection& conn, std::string* note) {
  auto addr = client::Address::Parse(s.address());
  if (addr.ok() && addr->kind == client::Address::Kind::kTcp) return addr->ToString();
  auto info = conn.Command({"INFO", "server"});
  if (info.ok() && info->type == Reply::Type::kBulk) {
    size_t at = info->str.find("tcp_port:");
    if (at != std::string::npos) {
      size_t end = info->str.find_first_of("\r\n", at);
      std::string port = info->str.substr(at + 9, end == std::string::npos ? end : end - at - 9);
      auto p = ParseInt64(port);
      if (p && *p > 0 && *p < 65536) {
        *note = "flin talked to " + s.address() + "; 127.0.0.1:" + port +
                " is that member's TCP port: from another machine use a host name it is "
                "reachable by.";
        return "127.0.0.1:" + port;
      }
    }
  }
  *note = "flin talked to " + s.address() +
          ", which a new node cannot join: use a member's TCP --listen address.";
  return "HOST:PORT";
}

// Sends one command on a fresh connection; error replies come back as
// Reply{kError}.
Result<Reply> CallOnce(Session& s, const std::vector<std::string>& args) {
  auto conn = s.Connect();
  if (!conn.ok()) return conn.status();
  std::vector<std::string_view> views(args.begin(), args.end());
  return (*conn)->Command(views);
}

// Runs args and prints the (+OK) reply; error replies fail.
int SimpleCommand(Session& s, const std::vector<std::string>& args) {
  auto reply = CallOnce(s, args);
  if (!reply.ok()) return s.Fail(reply.status());
  if (reply->is_error()) return s.Fail(Status::Server(reply->str));
  s.printer().Reply(*reply);
  return kExitOk;
}

int RunStatus(Session& s) {
  auto reply = CallOnce(s, {"CLUSTER.STATUS"});
  if (!reply.ok()) return s.Fail(reply.status());
  if (reply->is_error()) return s.Fail(Status::Server(reply->str));
  auto st = ParseClusterStatus(*reply);
  if (!st.ok()) return s.Fail(st.status());
  Printer& p = s.printer();
  switch (p.mode()) {
    case OutputMode::kJson:
      p.Json(ClusterStatusToJson(*st));
      break;
    case OutputMode::kHuman:
      p.Line(FormatClusterStatusHuman(*st));
      break;
    case OutputMode::kPlain:
      p.Line(FormatClusterStatusPlain(*st));
      break;
  }
  return kExitOk;
}

struct AddArgs {
  std::string peer_addr;
  uint64_t id = 0;
};

int RunAdd(Session& s, const AddArgs& a) {
  auto conn = s.Connect();
  if (!conn.ok()) return s.Fail(conn.status());
  std::vector<std::string> args = {"CLUSTER.ADD", a.peer_addr};
  if (a.id != 0) args.push_back(std::to_string(a.id));
  std::vector<std::string_view> views(args.begin(), args.end());
  auto reply = (*conn)->Command(views);
  if (!reply.ok()) return s.Fail(reply.status());
  if (reply->is_error()) return s.Fail(Status::Server(reply->str));
  if (reply->type != Reply::Type::kInteger || reply->integer <= 0) {
    return s.Fail(Status::Protocol("unexpected CLUSTER.ADD reply: " + client::DebugString(*reply)));
  }
  const uint64_t id = static_cast<uint64_t>(reply->integer);
  std::string note;
  const std::string join = JoinAddress(s, **conn, &note);
  const std::string start = FlindStartCommand(id, join, a.peer_addr);
  Printer& p = s.printer();
  if (p.mode() == OutputMode::kJson) {
    p.Json({{"id", id}, {"peer_addr", a.peer_addr}, {"join", join}, {"start", start}});
    return kExitOk;
  }
  std::string hint = "Start the new node with:\n  " + start +
                     "\nusing the cluster's secret file (and the --data-dir/--listen it should "
                     "have). The leader makes it a voter once it has caught up.";
  if (!note.empty()) hint += "\nNote: " + note;
  if (p.mode() == OutputMode::kHuman) {
    p.Line("Added node " + std::to_string(id) + " as a learner at " + a.peer_addr + ".\n" + hint);
  } else {
    // Scripts read the id from stdout; the how-to goes to stderr.
    p.Line(std::to_string(id));
    if (!p.options().quiet) std::fprintf(stderr, "%s\n", hint.c_str());
  }
  return kExitOk;
}

struct HealthArgs {
  bool wait = false;
  std::string timeout;  // DURATION; empty = default
  std::chrono::milliseconds wait_for{kDefaultHealthWait};
};

int RunHealth(Session& s, const HealthArgs& a) {
  if (!a.wait) {
    // One check; --timeout (if given) caps its deadlines.
    auto conn = a.timeout.empty() || a.wait_for.count() == 0 ? s.Connect() : s.Connect(a.wait_for);
    if (!conn.ok()) return s.Fail(conn.status());
    auto reply = (*conn)->Command({"CLUSTER.HEALTH"});
    if (!reply.ok()) return s.Fail(reply.status());
    if (reply->is_error()) return s.Fail(Status::Server(reply->str));
    s.printer().Reply(*reply);
    return kExitOk;
  }
  const bool forever = a.wait_for.count() == 0;
  const auto deadline = Clock::now() + a.wait_for;
  std::unique_ptr<client::Connection> conn;
  std::string last;  // why the node was not healthy at the last try
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (!forever && left.count() <= 0) break;
    if (!conn || !conn->healthy()) {
      conn.reset();
      // Each try is bounded by what is left of the wait (at least a little,
      // so the last try can still connect).
      auto c = forever ? s.Connect() : s.Connect(std::max(left, std::chrono::milliseconds(50)));
      if (c.ok()) {
        conn = std::move(*c);
      } else {
        const Status& st = c.status();
        // Not up yet (or restarting): keep waiting. Anything else (a bad
        // address, a refused password) will not change by waiting.
        if (st.code() != Status::Code::kUnavailable && st.code() != Status::Code::kTimeout &&
            !(st.code() == Status::Code::kServer && IsTryAgain(st.message()))) {
          return s.Fail(st);
        }
        last = st.message();
      }
    }
    if (conn) {
      auto reply = conn->Command({"CLUSTER.HEALTH"});
      if (!reply.ok()) {
        const Status& st = reply.status();
        if (st.code() != Status::Code::kUnavailable && st.code() != Status::Code::kTimeout) {
          return s.Fail(st);
        }
        last = st.message();
        conn.reset();
      } else if (reply->is_error()) {
        if (!IsTryAgain(reply->str)) return s.Fail(Status::Server(reply->str));
        last = reply->str;
      } else {
        s.printer().Reply(*reply);
        return kExitOk;
      }
    }
    const auto now = Clock::now();
    if (!forever && now >= deadline) break;
    const auto nap = forever ? kHealthPollInterval
                             : std::min<Clock::duration>(kHealthPollInterval, deadline - now);
    std::this_thread::sleep_for(nap);
  }
  const std::string waited = a.timeout.empty() ? "30s" : a.timeout;
  return s.Fail(Status::Unavailable("not healthy after " + waited + ": " + last));
}

}  // namespace

Result<ClusterStatus> ParseClusterStatus(const Reply& reply) {
  ClusterStatus st;
  bool have_mode = false;
  Status s = ForEachField(reply, "CLUSTER.STATUS", [&](std::string_view f, const Reply& v) {
    auto str = [&](std::string* out) -> Status {
      auto x = StringField(v, f);
      if (!x.ok()) return x.status();
      *out = *x;
      return Status::Ok();
    };
    auto num = [&](auto* out) -> Status {
      auto x = IntField(v, f);
      if (!x.ok()) return x.status();
      *out = static_cast<std::remove_pointer_t<decltype(out)>>(*x);
      return Status::Ok();
    };
    if (f == "mode") {
      have_mode = true;
      return str(&st.mode);
    }
    if (f == "cluster_id") return str(&st.cluster_id);
    if (f == "role") return str(&st.role);
    if (f == "node_id") return num(&st.node_id);
    if (f == "leader_id") return num(&st.leader_id);
    if (f == "term") return num(&st.term);
    if (f == "commit_index") return num(&st.commit_index);
    if (f == "applied_index") return num(&st.applied_index);
    if (f == "last_index") return num(&st.last_index);
    if (f == "members") {
      if (v.type != Reply::Type::kArray) {
        return Status::Protocol("CLUSTER.STATUS members is not an array: " +
                                client::DebugString(v));
      }
      for (const Reply& e : v.elements) {
        auto m = ParseMember(e);
        if (!m.ok()) return m.status();
        st.members.push_back(std::move(*m));
      }
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;
  if (!have_mode) {
    return Status::Protocol("CLUSTER.STATUS reply has no 'mode' field: " +
                            client::DebugString(reply));
  }
  return st;
}

std::string FormatClusterStatusHuman(const ClusterStatus& st) {
  if (st.standalone()) {
    return "Standalone: this flind is not part of a cluster (applied index " +
           std::to_string(st.applied_index) + ").";
  }
  std::string out;
  auto row = [&](std::string_view label, const std::string& value) {
    out += PadRight(std::string(label) + ":", 10) + value + "\n";
  };
  row("Cluster", Dash(st.cluster_id));
  row("Node", std::to_string(st.node_id) + " (" + Dash(st.role) + ")");
  row("Leader", st.leader_id == 0 ? std::string("unknown") : std::to_string(st.leader_id));
  row("Term", std::to_string(st.term));
  row("Commit", std::to_string(st.commit_index));
  row("Applied", std::to_string(st.applied_index));
  row("Last", std::to_string(st.last_index));
  out += "\n";
  std::vector<std::vector<std::string>> rows = {
      {"ID", "PEER ADDRESS", "KIND", "ROLE", "MATCH", "LAG", ""}};
  for (const ClusterMember& m : st.members) {
    rows.push_back({std::to_string(m.id), Dash(m.peer_addr), Dash(m.kind), MemberRole(m),
                    Known(m.match), Known(m.lag), m.self ? "(this node)" : ""});
  }
  std::vector<size_t> width(rows[0].size(), 0);
  for (const auto& r : rows) {
    for (size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  }
  for (size_t k = 0; k < rows.size(); ++k) {
    const auto& r = rows[k];
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      if (i > 0) line += "  ";
      // Numbers line up on the right.
      const bool numeric = i == 4 || i == 5;
      line += numeric ? PadLeft(r[i], width[i]) : PadRight(r[i], width[i]);
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line;
    if (k + 1 < rows.size()) out += "\n";
  }
  if (st.members.empty()) out += "\n(no members known)";
  return out;
}

std::string FormatClusterStatusPlain(const ClusterStatus& st) {
  std::string out;
  out += "mode " + Dash(st.mode) + "\n";
  out += "cluster_id " + Dash(st.cluster_id) + "\n";
  out += "node_id " + std::to_string(st.node_id) + "\n";
  out += "role " + Dash(st.role) + "\n";
  out += "leader_id " + std::to_string(st.leader_id) + "\n";
  out += "term " + std::to_string(st.term) + "\n";
  out += "commit_index " + std::to_string(st.commit_index) + "\n";
  out += "applied_index " + std::to_string(st.applied_index) + "\n";
  out += "last_index " + std::to_string(st.last_index);
  for (const ClusterMember& m : st.members) {
    out += "\nmember " + std::to_string(m.id) + " " + Dash(m.peer_addr) + " " + Dash(m.kind) + " " +
           MemberRole(m) + " " + std::to_string(m.match) + " " + std::to_string(m.lag) + " " +
           (m.self ? "1" : "0");
  }
  return out;
}

nlohmann::json ClusterStatusToJson(const ClusterStatus& st) {
  auto known = [](int64_t v) { return v < 0 ? nlohmann::json(nullptr) : nlohmann::json(v); };
  nlohmann::json members = nlohmann::json::array();
  for (const ClusterMember& m : st.members) {
    members.push_back({{"id", m.id},
                       {"peer_addr", m.peer_addr},
                       {"kind", m.kind},
                       {"role", MemberRole(m)},
                       {"match", known(m.match)},
                       {"lag", known(m.lag)},
                       {"self", m.self},
                       {"leader", m.leader}});
  }
  nlohmann::json j = nlohmann::json::object();
  j["mode"] = st.mode;
  j["cluster_id"] = st.cluster_id;
  j["node_id"] = st.node_id;
  j["role"] = st.role;
  j["leader_id"] = st.leader_id == 0 ? nlohmann::json(nullptr) : nlohmann::json(st.leader_id);
  j["term"] = st.term;
  j["commit_index"] = st.commit_index;
  j["applied_index"] = st.applied_index;
  j["last_index"] = st.last_index;
  j["members"] = std::move(members);
  return j;
}

Result<std::chrono::milliseconds> ParseDuration(std::string_view text) {
  auto bad = [&] {
    return Status::InvalidArgument("invalid duration '" + Printable(text, 40) +
                                   "': expected a number with an optional unit ms, s, m or h "
                                   "(e.g. 500ms, 30s, 2m)");
  };
  size_t unit_at = 0;
  while (unit_at < text.size() &&
         ((text[unit_at] >= '0' && text[unit_at] <= '9') || text[unit_at] == '.')) {
    ++unit_at;
  }
  std::string_view number = text.substr(0, unit_at);
  std::string_view unit = text.substr(unit_at);
  if (number.empty() || number == "." || std::count(number.begin(), number.end(), '.') > 1) {
    return bad();
  }
  double scale_ms;
  if (unit == "ms") {
    scale_ms = 1;
  } else if (unit.empty() || unit == "s") {
    scale_ms = 1000;
  } else if (unit == "m") {
    scale_ms = 60 * 1000;
  } else if (unit == "h") {
    scale_ms = 3600 * 1000;
  } else {
    return bad();
  }
  const double value = std::stod(std::string(number)) * scale_ms;
  // A year is plenty for anything a CLI waits for.
  if (!std::isfinite(value) || value > 365.0 * 24 * 3600 * 1000) return bad();
  return std::chrono::milliseconds(static_cast<int64_t>(std::ceil(value)));
}

std::string FlindStartCommand(uint64_t id, std::string_view join, std::string_view peer_addr) {
  return "flind --node-id " + std::to_string(id) + " --join " + std::string(join) +
         " --peer-listen " + std::string(peer_addr) + " --cluster-secret-file SECRET_FILE";
}

bool IsTryAgain(std::string_view error_text) {
  return error_text.starts_with("TRYAGAIN") && (error_text.size() == 8 || error_text[8] == ' ');
}

void AddClusterCommands(CLI::App& app,
                        const std::function<void(std::function<int(Session&)>)>& set_action) {
  auto* cluster =
      app.add_subcommand("cluster", "Cluster membership: status, add, remove, transfer-leader");
  cluster->require_subcommand(1);
  cluster->fallthrough();
  // cluster status
  {
    auto* cmd = cluster->add_subcommand(
        "status", "Show the cluster: id, this node's role, leader, term, indexes and members");
    cmd->fallthrough();
    cmd->callback([=] { set_action([](Session& s) { return RunStatus(s); }); });
  }
  // cluster add
  {
    auto a = std::make_shared<AddArgs>();
    auto* cmd = cluster->add_subcommand(
        "add", "Add a node (as a learner) at PEER-ADDR; prints its id and how to start it");
    cmd->fallthrough();
    cmd->add_option("PEER-ADDR", a->peer_addr, "The new node's peer (Raft) address HOST:PORT")
        ->required()
        ->type_name("HOST:PORT")
        ->check([](const std::string& v) -> std::string {
          auto addr = client::Address::Parse(v);
          if (!addr.ok()) return addr.status().message();
          if (addr->kind != client::Address::Kind::kTcp) {
            return "the peer address must be HOST:PORT, not a unix socket";
          }
          return "";
        });
    cmd->add_option("--id", a->id, "Use this node id instead of letting the leader pick one")
        ->type_name("N")
        ->check(CLI::PositiveNumber);
    cmd->callback([=] { set_action([a](Session& s) { return RunAdd(s, *a); }); });
  }
  // cluster remove
  {
    auto id = std::make_shared<uint64_t>(0);
    auto* cmd = cluster->add_subcommand(
        "remove", "Remove node ID from the cluster (returns once the removal is committed)");
    cmd->fallthrough();
    cmd->add_option("ID", *id, "Node id (see cluster status)")
        ->required()
        ->check(CLI::PositiveNumber);
    cmd->callback([=] {
      set_action([id](Session& s) {
        return SimpleCommand(s, {"CLUSTER.REMOVE", std::to_string(*id)});
      });
    });
  }
  // cluster transfer-leader
  {
    auto id = std::make_shared<uint64_t>(0);
    auto* cmd = cluster->add_subcommand(
        "transfer-leader", "Move leadership to node ID (default: the most up-to-date other voter)");
    cmd->fallthrough();
    cmd->add_option("ID", *id, "Node id of the new leader")->check(CLI::PositiveNumber);
    cmd->callback([=] {
      set_action([id](Session& s) {
        std::vector<std::string> args = {"CLUSTER.TRANSFER"};
        if (*id != 0) args.push_back(std::to_string(*id));
        return SimpleCommand(s, args);
      });
    });
  }
  // health
  {
    auto a = std::make_shared<HealthArgs>();
    auto* cmd = app.add_subcommand(
        "health",
        "Exit 0 when the node knows a leader and has applied what is committed (exit 3 if not)");
    cmd->add_flag("-w,--wait", a->wait,
                  "Poll until healthy (connection errors count as not yet) or --timeout passes");
    cmd->add_option("--timeout", a->timeout,
                    "How long --wait waits: 500ms, 30s, 2m... (default 30s; 0 = forever)")
        ->type_name("DURATION")
        ->check([](const std::string& v) -> std::string {
          auto d = ParseDuration(v);
          return d.ok() ? "" : d.status().message();
        });
    cmd->callback([=] {
      if (!a->timeout.empty()) a->wait_for = *ParseDuration(a->timeout);
      set_action([a](Session& s) { return RunHealth(s, *a); });
    });
  }
}

}  // namespace flin::cli
