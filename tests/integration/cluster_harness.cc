#include "tests/integration/cluster_harness.h"

#include <signal.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "base/check.h"

namespace flin::test {

namespace fs = std::filesystem;
using client::Reply;

namespace {

std::string Loopback(uint16_t port) { return "127.0.0.1:" + std::to_string(port); }

std::string Tail(const std::string& text, size_t lines) {
  size_t start = text.size();
  for (size_t n = 0; n <= lines; ++n) {
    if (start == 0) return text;
    size_t nl = text.rfind('\n', start - 1);
    if (nl == std::string::npos) return text;
    start = nl;
  }
  return text.substr(start + 1);
}

bool IntField(const Reply& r, int64_t* out) {
  if (r.type == Reply::Type::kInteger) {
    *out = r.integer;
    return true;
  }
  if (r.type == Reply::Type::kBulk || r.type == Reply::Type::kStatus) {
    try {
      size_t used = 0;
      *out = std::stoll(r.str, &used);
      return used == r.str.size();
    } catch (...) {
      return false;
    }
  }
  return false;
}

Status ParseMember(const Reply& r, MemberStatus* m) {
  if (r.type != Reply::Type::kArray || r.elements.size() % 2 != 0) {
    return Status::Protocol("member entry is not a field/value array: " + client::DebugString(r));
  }
  for (size_t i = 0; i + 1 < r.elements.size(); i += 2) {
    const std::string& f = r.elements[i].str;
    const Reply& v = r.elements[i + 1];
    int64_t n = 0;
    if (f == "id" && IntField(v, &n)) {
      m->id = static_cast<uint64_t>(n);
    } else if (f == "peer_addr") {
      m->peer_addr = v.str;
    } else if (f == "kind") {
      m->kind = v.str;
    } else if (f == "match" && IntField(v, &n)) {
      m->match = n;
    } else if (f == "lag" && IntField(v, &n)) {
      m->lag = n;
    } else if (f == "self" && IntField(v, &n)) {
      m->self = n != 0;
    } else if (f == "leader" && IntField(v, &n)) {
      m->leader = n != 0;
    }
  }
  return Status::Ok();
}

// The dialer id in the HELLO frame every peer connection opens with (see
// net/peer_transport.h): frame header [u32 length][u32 crc][u8 kind=16],
// then "FLINPEER", u32 version, u64 cluster id, u64 dialer id (little
// endian). 0 when the bytes are not a HELLO.
constexpr size_t kHelloPrefix = 9 + 8 + 4 + 8 + 8;
TcpProxy::Tag DialerIdFromHello(std::string_view prefix) {
  if (prefix.size() < kHelloPrefix || prefix[8] != 16 || prefix.substr(9, 8) != "FLINPEER") {
    return 0;
  }
  uint64_t id = 0;
  for (int i = 7; i >= 0; --i) id = id << 8 | static_cast<uint8_t>(prefix[29 + i]);
  return id;
}

}  // namespace

const MemberStatus* NodeStatus::member(uint64_t id) const {
  for (const auto& m : members) {
    if (m.id == id) return &m;
  }
  return nullptr;
}

std::string NodeStatus::ToString() const {
  std::ostringstream o;
  o << "node " << node_id << " " << role << " leader=" << leader_id << " term=" << term
    << " commit=" << commit_index << " applied=" << applied_index << " last=" << last_index
    << " members=[";
  for (size_t i = 0; i < members.size(); ++i) {
    const auto& m = members[i];
    o << (i ? " " : "") << m.id << ":" << m.kind << "@" << m.peer_addr << "/match=" << m.match;
  }
  o << "]";
  return o.str();
}

Result<NodeStatus> ParseClusterStatus(const Reply& reply) {
  if (reply.is_error()) return Status::Server(reply.str);
  if (reply.type != Reply::Type::kArray || reply.elements.size() % 2 != 0) {
    return Status::Protocol("CLUSTER.STATUS is not a field/value array: " +
                            client::DebugString(reply));
  }
  NodeStatus s;
  bool have_role = false, have_applied = false;
  for (size_t i = 0; i + 1 < reply.elements.size(); i += 2) {
    const std::string& f = reply.elements[i].str;
    const Reply& v = reply.elements[i + 1];
    int64_t n = 0;
    if (f == "mode") {
      s.mode = v.str;
    } else if (f == "cluster_id") {
      s.cluster_id = v.str;
    } else if (f == "role") {
      s.role = v.str;
      have_role = true;
    } else if (f == "members") {
      if (v.type != Reply::Type::kArray) return Status::Protocol("members is not an array");
      for (const auto& e : v.elements) {
        MemberStatus m;
        FLIN_RETURN_IF_ERROR(ParseMember(e, &m));
        s.members.push_back(m);
      }
    } else if (IntField(v, &n)) {
      auto u = static_cast<uint64_t>(n);
      if (f == "node_id") s.node_id = u;
      if (f == "leader_id") s.leader_id = u;
      if (f == "term") s.term = u;
      if (f == "commit_index") s.commit_index = u;
      if (f == "applied_index") {
        s.applied_index = u;
        have_applied = true;
      }
      if (f == "last_index") s.last_index = u;
    }
  }
  if (!have_role || !have_applied) {
    return Status::Protocol("CLUSTER.STATUS lacks role or applied_index: " +
                            client::DebugString(reply));
  }
  return s;
}

Cluster::Cluster(ClusterOptions opts) : opts_(std::move(opts)) {
  secret_path_ = root_.path() + "/secret";
  std::random_device rd;
  std::ofstream(secret_path_) << "flin-test-secret-" << rd() << rd() << "\n";
}

Cluster::~Cluster() {
  for (auto& [id, n] : nodes_) {
    if (n->flind->running()) n->flind->Terminate(std::chrono::seconds(15));
  }
}

Cluster::Node& Cluster::node(uint64_t id) {
  std::lock_guard<std::mutex> l(nodes_mu_);
  auto it = nodes_.find(id);
  FLIN_CHECK(it != nodes_.end()) << "no node " << id;
  return *it->second;
}

const Cluster::Node& Cluster::node(uint64_t id) const {
  std::lock_guard<std::mutex> l(nodes_mu_);
  auto it = nodes_.find(id);
  FLIN_CHECK(it != nodes_.end()) << "no node " << id;
  return *it->second;
}

std::vector<std::string> Cluster::CommonArgs(const Node& n) const {
  std::vector<std::string> a = {"--peer-listen",
                                Loopback(n.peer_port),
                                "--peer-advertise",
                                advertised(n),
                                "--cluster-secret-file",
                                secret_path_,
                                "--tick-ms",
                                std::to_string(opts_.tick_ms),
                                "--request-timeout-ms",
                                std::to_string(opts_.request_timeout_ms)};
  if (opts_.snapshot_entries > 0) {
    a.push_back("--snapshot-entries");
    a.push_back(std::to_string(opts_.snapshot_entries));
  }
  for (const auto& e : opts_.extra_args) a.push_back(e);
  return a;
}

std::string Cluster::advertised(const Node& n) const {
  return Loopback(n.inbound ? n.inbound->port() : n.peer_port);
}

Status Cluster::SetUpPeer(Node* n) {
  n->peer_port = FreePort();
  if (!opts_.proxies) return Status::Ok();
  if (!proxy_) proxy_ = std::make_unique<TcpProxy>();
  auto l = proxy_->AddLink(n->peer_port);
  if (!l.ok()) return l.status();
  n->inbound = *l;
  n->inbound->SetTagger(kHelloPrefix, DialerIdFromHello);
  return Status::Ok();
}

bool Cluster::Start(std::string* why) {
  FLIN_CHECK(nodes_.empty()) << "Start() twice";
  std::string list;
  for (int i = 1; i <= opts_.nodes; ++i) {
    auto n = std::make_unique<Node>();
    n->id = static_cast<uint64_t>(i);
    Status s = SetUpPeer(n.get());
    if (!s.ok()) {
      if (why) *why = s.ToString();
      return false;
    }
    list += (list.empty() ? "" : ",") + std::to_string(i) + "=" + advertised(*n);
    nodes_[n->id] = std::move(n);
  }
  for (auto& [id, n] : nodes_) {
    fs::create_directories(root_.path() + "/n" + std::to_string(id));
    Flind::Options fo;
    fo.data_dir = root_.path() + "/n" + std::to_string(id) + "/data";
    fo.extra_args = CommonArgs(*n);
    fo.extra_args.push_back("--node-id");
    fo.extra_args.push_back(std::to_string(id));
    fo.extra_args.push_back("--initial-cluster");
    fo.extra_args.push_back(list);
    n->flind = std::make_unique<Flind>(fo);
  }
  for (auto& [id, n] : nodes_) {
    std::string w;
    if (!n->flind->Start(&w)) {
      if (why) *why = "node " + std::to_string(id) + " did not start: " + w;
      return false;
    }
  }
  return true;
}

std::vector<uint64_t> Cluster::ids() const {
  std::lock_guard<std::mutex> l(nodes_mu_);
  std::vector<uint64_t> out;
  for (const auto& [id, n] : nodes_) out.push_back(id);
  return out;
}

std::vector<uint64_t> Cluster::up_ids() const {
  std::lock_guard<std::mutex> l(nodes_mu_);
  std::vector<uint64_t> out;
  for (const auto& [id, n] : nodes_) {
    if (n->flind && n->flind->running() && !n->stopped) out.push_back(id);
  }
  return out;
}

Flind& Cluster::flind(uint64_t id) { return *node(id).flind; }

std::string Cluster::client_addr(uint64_t id) const { return Loopback(node(id).flind->port()); }

uint16_t Cluster::peer_port(uint64_t id) const { return node(id).peer_port; }

std::unique_ptr<client::Connection> Cluster::Connect(uint64_t id,
                                                     client::ConnectOptions opts) const {
  const Node& n = node(id);
  if (!n.flind || !n.flind->running()) return nullptr;
  auto addr = client::Address::Parse(n.flind->unix_addr());
  if (!addr.ok()) return nullptr;
  auto c = client::Connection::Connect(*addr, opts);
  if (!c.ok()) return nullptr;
  return std::move(c).value();
}

Result<Reply> Cluster::Command(uint64_t id, const std::vector<std::string_view>& args) const {
  client::ConnectOptions o;
  o.connect_timeout = std::chrono::milliseconds(1000);
  o.read_timeout = std::chrono::milliseconds(opts_.request_timeout_ms + 5000);
  auto c = Connect(id, o);
  if (!c) return Status::Unavailable("cannot connect to node " + std::to_string(id));
  return c->Command(args);
}

Result<NodeStatus> Cluster::StatusOf(uint64_t id) const {
  client::ConnectOptions o;
  o.connect_timeout = std::chrono::milliseconds(500);
  o.read_timeout = std::chrono::milliseconds(1000);
  auto c = Connect(id, o);
  if (!c) return Status::Unavailable("cannot connect to node " + std::to_string(id));
  auto r = c->Command({"CLUSTER.STATUS"});
  if (!r.ok()) return r.status();
  return ParseClusterStatus(*r);
}

uint64_t Cluster::WaitLeader(std::chrono::milliseconds deadline,
                             std::vector<uint64_t> among) const {
  if (among.empty()) among = up_ids();
  uint64_t found = 0;
  WaitFor(
      [&] {
        if (AnyDied(among)) return true;  // no point waiting
        uint64_t leader = 0;
        bool leader_says_so = false;
        for (uint64_t id : among) {
          auto s = StatusOf(id);
          if (!s.ok() || s->leader_id == 0) return false;
          if (leader != 0 && s->leader_id != leader) return false;
          leader = s->leader_id;
          if (id == leader) leader_says_so = s->role == "leader";
        }
        if (!leader_says_so) return false;
        found = leader;
        return true;
      },
      deadline);
  return found;
}

bool Cluster::WaitConverged(std::chrono::milliseconds deadline, std::vector<uint64_t> among) const {
  if (among.empty()) among = up_ids();
  bool converged = false;
  WaitFor(
      [&] {
        if (AnyDied(among)) return true;
        std::vector<NodeStatus> st;
        for (uint64_t id : among) {
          auto s = StatusOf(id);
          if (!s.ok()) return false;
          st.push_back(*s);
        }
        uint64_t leader = st.empty() ? 0 : st[0].leader_id;
        const NodeStatus* ls = nullptr;
        for (const auto& s : st) {
          if (s.leader_id != leader || leader == 0) return false;
          if (s.node_id == leader) ls = &s;
        }
        if (!ls || ls->role != "leader" || ls->commit_index != ls->last_index) return false;
        for (const auto& s : st) {
          if (s.applied_index != ls->commit_index) return false;
        }
        converged = true;
        return true;
      },
      deadline);
  return converged;
}

bool Cluster::AnyDied(const std::vector<uint64_t>& ids) const {
  for (uint64_t id : ids) {
    const Node& n = node(id);
    if (n.flind && n.flind->running() && !n.flind->Alive()) return true;
  }
  return false;
}

void Cluster::Kill9(uint64_t id) {
  Node& n = node(id);
  if (n.stopped) n.flind->Signal(SIGCONT);
  n.flind->Kill9();
  n.stopped = false;
}

void Cluster::Stop(uint64_t id) {
  Node& n = node(id);
  n.flind->Signal(SIGSTOP);
  n.stopped = true;
}

void Cluster::Cont(uint64_t id) {
  Node& n = node(id);
  n.flind->Signal(SIGCONT);
  n.stopped = false;
}

bool Cluster::stopped(uint64_t id) const { return node(id).stopped; }

int Cluster::Terminate(uint64_t id) {
  Node& n = node(id);
  n.stopped = false;
  return n.flind->Terminate(std::chrono::seconds(15));
}

bool Cluster::Restart(uint64_t id, std::string* why) {
  Node& n = node(id);
  FLIN_CHECK(!n.flind->running()) << "Restart of a running node " << id;
  return n.flind->Start(why);
}

void Cluster::Wipe(uint64_t id) {
  Node& n = node(id);
  FLIN_CHECK(!n.flind->running()) << "Wipe of a running node " << id;
  std::error_code ec;
  fs::remove_all(n.flind->data_dir(), ec);
}

void Cluster::SetSecretFile(uint64_t id, const std::string& path) {
  Flind& f = *node(id).flind;
  auto args = f.extra_args();
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] == "--cluster-secret-file") args[i + 1] = path;
  }
  f.set_extra_args(std::move(args));
}

TcpProxy::Link* Cluster::inbound(uint64_t id) {
  Node& n = node(id);
  FLIN_CHECK(n.inbound) << "node " << id << " has no proxy (ClusterOptions::proxies)";
  return n.inbound;
}

void Cluster::CutLink(uint64_t from, uint64_t to) { inbound(to)->CutTag(from); }

void Cluster::CutLinkOneWay(uint64_t from, uint64_t to) {
  inbound(to)->CutTagOneWay(from, TcpProxy::Direction::kToTarget);
}

void Cluster::Partition(uint64_t a, uint64_t b) {
  CutLink(a, b);
  CutLink(b, a);
}

void Cluster::Isolate(uint64_t id) {
  inbound(id)->Cut();
  for (auto& [other, n] : nodes_) {
    if (other != id && n->inbound) n->inbound->CutTag(id);
  }
}

void Cluster::HealAll() {
  for (auto& [id, n] : nodes_) {
    if (!n->inbound) continue;
    // A connection that swallowed bytes now has a hole in its stream, which
    // real TCP never produces (it retransmits or gives up on the
    // connection): reset it, as TCP eventually would, instead of handing the
    // receiver a torn frame.
    auto st = n->inbound->stats();
    uint64_t dropped = st.dropped_to_target + st.dropped_from_target;
    if (dropped > n->dropped_at_heal) {
      n->dropped_at_heal = dropped;
      n->inbound->Reset();
    }
    n->inbound->Heal();
  }
}

Result<uint64_t> Cluster::AddNode(const AddOptions& add) {
  uint64_t leader = WaitLeader();
  if (leader == 0) return Status::Unavailable("no leader to add a node through");
  auto n = std::make_unique<Node>();
  FLIN_RETURN_IF_ERROR(SetUpPeer(n.get()));
  auto r = Command(leader, {"CLUSTER.ADD", advertised(*n)});
  if (!r.ok()) return r.status();
  if (r->is_error()) return Status::Server(r->str);
  if (r->type != Reply::Type::kInteger || r->integer <= 0) {
    return Status::Protocol("CLUSTER.ADD replied " + client::DebugString(*r));
  }
  n->id = static_cast<uint64_t>(r->integer);
  {
    std::lock_guard<std::mutex> l(nodes_mu_);
    FLIN_CHECK(!nodes_.count(n->id)) << "CLUSTER.ADD reused id " << n->id;
  }
  fs::create_directories(root_.path() + "/n" + std::to_string(n->id));
  Flind::Options fo;
  fo.data_dir = root_.path() + "/n" + std::to_string(n->id) + "/data";
  fo.wait_ready = add.wait_ready;
  fo.extra_args = CommonArgs(*n);
  if (!add.secret_file.empty()) {
    for (size_t i = 0; i + 1 < fo.extra_args.size(); ++i) {
      if (fo.extra_args[i] == "--cluster-secret-file") fo.extra_args[i + 1] = add.secret_file;
    }
  }
  for (const std::string& a : {std::string("--node-id"), std::to_string(n->id),
                               std::string("--join"), client_addr(leader)}) {
    fo.extra_args.push_back(a);
  }
  n->flind = std::make_unique<Flind>(fo);
  uint64_t id = n->id;
  Flind& f = *n->flind;
  {
    std::lock_guard<std::mutex> l(nodes_mu_);
    nodes_[id] = std::move(n);
  }
  std::string why;
  if (!f.Start(&why)) {
    return Status::Unavailable("node " + std::to_string(id) + " did not start: " + why);
  }
  return id;
}

Status Cluster::RemoveNode(uint64_t id) {
  uint64_t leader = WaitLeader();
  if (leader == 0) return Status::Unavailable("no leader to remove a node through");
  std::string arg = std::to_string(id);
  auto r = Command(leader, {"CLUSTER.REMOVE", arg});
  if (!r.ok()) return r.status();
  if (r->is_error()) return Status::Server(r->str);
  return Status::Ok();
}

std::string Cluster::Logs(size_t lines) const {
  std::string out;
  for (const auto& [id, n] : nodes_) {
    out += "---- node " + std::to_string(id) + " log (tail) ----\n";
    if (n->flind) out += Tail(n->flind->log(), lines);
  }
  return out;
}

}  // namespace flin::test
