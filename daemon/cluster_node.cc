#include "daemon/cluster_node.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "base/check.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/strings.h"
#include "net/client.h"
#include "raft/codec.h"

namespace flin::daemon {

namespace fs = std::filesystem;

namespace {

// First byte of every peer transport payload.
enum Kind : uint8_t {
  kRaftMsg = 1,     // raft::EncodeMessage
  kForwardReq = 2,  // u64 req_id | u8 what | u64 id | bytes addr | bytes payload
  kForwardResp = 3  // u64 req_id | u8 code | u64 index | u64 value | u8 kind | i64 n | bytes str
};

constexpr size_t kSnapshotChunk = 1 << 20;
constexpr const char* kMetaConf = "raft.conf";
constexpr const char* kMetaMembers = "raft.members";
constexpr const char* kMetaAppliedTerm = "raft.applied_term";

void PutU64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}
void PutStr(std::string* out, std::string_view s) {
  PutU64(out, s.size());
  out->append(s);
}

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool U8(uint8_t* v) {
    if (in_.size() < 1) return false;
    *v = static_cast<uint8_t>(in_[0]);
    in_.remove_prefix(1);
    return true;
  }
  bool U64(uint64_t* v) {
    if (in_.size() < 8) return false;
    uint64_t r = 0;
    for (int i = 0; i < 8; ++i) r |= uint64_t{static_cast<uint8_t>(in_[i])} << (8 * i);
    in_.remove_prefix(8);
    *v = r;
    return true;
  }
  bool Str(std::string_view* s) {
    uint64_t n;
    if (!U64(&n) || n > in_.size()) return false;
    *s = in_.substr(0, n);
    in_.remove_prefix(n);
    return true;
  }

 private:
  std::string_view in_;
};

std::string Hex(const unsigned char* p, size_t n) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    s.push_back(d[p[i] >> 4]);
    s.push_back(d[p[i] & 15]);
  }
  return s;
}

std::string Hex64(uint64_t v) {
  char buf[17];
  snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

uint64_t RandomU64() {
  uint64_t v = 0;
  while (v == 0) FLIN_CHECK(RAND_bytes(reinterpret_cast<unsigned char*>(&v), sizeof v) == 1);
  return v;
}

int64_t NowMs() { return MonoMillis(); }

// "id=addr,id=addr" <-> map. Used by --initial-cluster, the members meta
// value and the CLUSTER.JOIN reply.
Result<std::map<uint64_t, std::string>> ParseMembers(std::string_view text, const char* what) {
  std::map<uint64_t, std::string> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t comma = text.find(',', pos);
    std::string_view item =
        text.substr(pos, comma == std::string_view::npos ? text.npos : comma - pos);
    pos = comma == std::string_view::npos ? text.size() : comma + 1;
    if (item.empty()) continue;
    size_t eq = item.find('=');
    auto id = eq == item.npos ? std::nullopt : ParseInt64(item.substr(0, eq));
    if (!id || *id <= 0 || eq + 1 >= item.size()) {
      return Status::InvalidArgument(std::string(what) + ": bad member '" + std::string(item) +
                                     "': expected ID=HOST:PORT with a positive ID");
    }
    if (!out.emplace(static_cast<uint64_t>(*id), std::string(item.substr(eq + 1))).second) {
      return Status::InvalidArgument(std::string(what) + ": node id " + std::to_string(*id) +
                                     " appears twice");
    }
  }
  return out;
}

std::string FormatMembers(const std::map<uint64_t, std::string>& m) {
  std::string s;
  for (const auto& [id, addr] : m) {
    if (!s.empty()) s += ",";
    s += std::to_string(id) + "=" + addr;
  }
  return s;
}

std::string JoinMac(const std::string& secret, uint64_t id, std::string_view addr) {
  std::string msg = "flin-join|" + std::to_string(id) + "|" + std::string(addr);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), mac, &len);
  return Hex(mac, len);
}

Status FsyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno("open " + dir, errno);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return Status::FromErrno("fsync " + dir, err);
  return Status::Ok();
}

Status WriteFileDurably(const std::string& path, const std::string& data) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Status::FromErrno("cannot write " + tmp, errno);
  bool ok = ::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size()) &&
            ::fsync(fd) == 0;
  int err = errno;
  ::close(fd);
  if (!ok) return Status::FromErrno("cannot write " + tmp, err);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return Status::FromErrno("rename " + tmp, errno);
  return FsyncDir(fs::path(path).parent_path().string());
}

std::string SnapshotName(uint64_t index, uint64_t term) {
  return std::to_string(index) + "-" + std::to_string(term) + ".db";
}

std::string EncodeConf(const raft::ConfState& c) {
  std::string s;
  raft::EncodeConfState(c, &s);
  return s;
}

const char* RoleText(raft::Role r, bool learner) {
  if (learner) return "learner";
  switch (r) {
    case raft::Role::kLeader:
      return "leader";
    case raft::Role::kCandidate:
      return "candidate";
    case raft::Role::kPreCandidate:
      return "precandidate";
    case raft::Role::kFollower:
      break;
  }
  return "follower";
}

}  // namespace

// While the apply thread completes a batch of requests, the callbacks it
// would post to the io thread one by one are collected here and posted as
// one handler: one io-thread wake-up per batch instead of one per request.
thread_local std::vector<std::function<void()>>* tls_post_batch = nullptr;

void ClusterNode::PostOrBatch(std::function<void()> f) {
  if (tls_post_batch) {
    tls_post_batch->push_back(std::move(f));
  } else {
    Post(std::move(f));
  }
}

bool ClusterNode::IsClusterDataDir(const std::string& data_dir) {
  std::error_code ec;
  return fs::exists(data_dir + "/cluster.json", ec);
}

ClusterNode::ClusterNode(ClusterOptions options, asio::io_context& io)
    : Engine(io), opts_(std::move(options)) {
  if (opts_.peer_advertise.empty()) opts_.peer_advertise = opts_.peer_listen;
  snap_dir_ = opts_.node.data_dir + "/snap";
}

ClusterNode::~ClusterNode() { Stop(); }

uint16_t ClusterNode::peer_port() const { return transport_ ? transport_->port() : 0; }

Result<std::unique_ptr<ClusterNode>> ClusterNode::Open(const ClusterOptions& options,
                                                       asio::io_context& io) {
  std::unique_ptr<ClusterNode> node(new ClusterNode(options, io));
  FLIN_RETURN_IF_ERROR(node->Init());
  return node;
}

// Asks a member (over its client port, as a RESP command) to add this node.
Status ClusterNode::InitialJoin(uint64_t* node_id, uint64_t* cluster_id, std::string* members) {
  auto addr = client::Address::Parse(opts_.join);
  if (!addr.ok()) return Status::InvalidArgument("--join: " + addr.status().message());
  client::ConnectOptions copts;
  copts.password = opts_.requirepass;
  copts.read_timeout = std::chrono::milliseconds(opts_.request_timeout_ms + 5000);
  std::string mac = JoinMac(opts_.secret, opts_.node_id, opts_.peer_advertise);
  std::string id_text = std::to_string(opts_.node_id);
  Status last;
  // A member may be between leaders for a moment: retry TRYAGAIN for a while.
  int64_t until = NowMs() + 30000;
  while (NowMs() < until) {
    auto conn = client::Connection::Connect(*addr, copts);
    if (!conn.ok()) {
      last = conn.status();
    } else {
      auto r = (*conn)->Command({"CLUSTER.JOIN", id_text, opts_.peer_advertise, mac});
      if (r.ok() && r->type == client::Reply::Type::kArray && r->elements.size() == 3 &&
          r->elements[0].type == client::Reply::Type::kInteger) {
        *node_id = static_cast<uint64_t>(r->elements[0].integer);
        auto cid = std::stoull(r->elements[1].str, nullptr, 16);
        *cluster_id = cid;
        *members = r->elements[2].str;
        return Status::Ok();
      }
      if (!r.ok() || r->is_error()) {
        last = r.ok() ? Status::Server(r->str) : r.status();
        if (last.message().rfind("TRYAGAIN", 0) != 0) break;
      } else {
        last = Status::Protocol("unexpected reply to CLUSTER.JOIN: " + client::DebugString(*r));
        break;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return Status::Unavailable("--join " + opts_.join + ": " + last.message());
}

Status ClusterNode::Init() {
  const std::string& dir = opts_.node.data_dir;
  if (opts_.secret.empty()) {
    return Status::InvalidArgument(
        "cluster mode needs a cluster secret: pass --cluster-secret-file FILE (the same file on "
        "every node)");
  }
  std::error_code ec;
  fs::create_directories(snap_dir_, ec);
  if (ec) return Status::IOError("cannot create " + snap_dir_ + ": " + ec.message());

  std::string cluster_file = dir + "/cluster.json";
  bool fresh = !fs::exists(cluster_file, ec);
  std::map<uint64_t, std::string> initial_members;
  raft::ConfState initial_conf;
  bool seed_state = false;  // bootstrap/initial-cluster: write the index-1 snapshot state
  std::string joined_members;
  if (fresh) {
    int modes =
        int{opts_.bootstrap} + int{!opts_.join.empty()} + int{!opts_.initial_cluster.empty()};
    if (modes != 1) {
      return Status::InvalidArgument(
          "data dir " + dir +
          " holds no cluster yet: give exactly one of --bootstrap, --join ADDR, --initial-cluster "
          "LIST");
    }
    if (fs::exists(dir + "/state.db", ec) || fs::exists(dir + "/log", ec)) {
      return Status::InvalidArgument(
          "data dir " + dir +
          " holds a standalone store: a cluster starts from an empty data dir (export the data "
          "with `flin export`, then import it into the cluster)");
    }
    if (opts_.bootstrap) {
      node_id_ = opts_.node_id ? opts_.node_id : 1;
      cluster_id_ = RandomU64();
      initial_members[node_id_] = opts_.peer_advertise;
      seed_state = true;
    } else if (!opts_.initial_cluster.empty()) {
      auto m = ParseMembers(opts_.initial_cluster, "--initial-cluster");
      if (!m.ok()) return m.status();
      initial_members = std::move(m).value();
      if (opts_.node_id == 0) {
        return Status::InvalidArgument("--initial-cluster needs --node-id (this node's id in it)");
      }
      if (!initial_members.count(opts_.node_id)) {
        return Status::InvalidArgument("--node-id " + std::to_string(opts_.node_id) +
                                       " is not in --initial-cluster " + opts_.initial_cluster);
      }
      node_id_ = opts_.node_id;
      // Every initial member derives the same cluster id from the same list.
      unsigned char md[EVP_MAX_MD_SIZE];
      unsigned int len = 0;
      std::string canon = "flin-cluster|" + FormatMembers(initial_members);
      EVP_Digest(canon.data(), canon.size(), md, &len, EVP_sha256(), nullptr);
      std::memcpy(&cluster_id_, md, sizeof cluster_id_);
      if (cluster_id_ == 0) cluster_id_ = 1;
      seed_state = true;
    } else {
      FLIN_RETURN_IF_ERROR(InitialJoin(&node_id_, &cluster_id_, &joined_members));
    }
    for (const auto& [id, addr] : initial_members) initial_conf.voters.push_back(id);
  }

  auto log = store::RaftLog::Open(dir + "/log");
  if (!log.ok()) return log.status();
  log_ = std::move(log).value();
  store::KvStoreOptions kv_opts;
  kv_opts.cache_bytes = opts_.node.cache_bytes;
  kv_opts.row_cache_bytes = opts_.node.row_cache_bytes;
  auto kv = store::KvStore::Open(dir + "/state.db", kv_opts);
  if (!kv.ok()) return kv.status();
  store_ = std::move(kv).value();

  if (fresh) {
    if (seed_state) {
      // raft/README.md "Bootstrap": every initial member starts from the same
      // snapshot at index 1, term 1 holding the initial configuration.
      store_->MarkApplied(1);
      store_->PutMeta(kMetaConf, EncodeConf(initial_conf));
      store_->PutMeta(kMetaMembers, FormatMembers(initial_members));
      store_->PutMeta(kMetaAppliedTerm, "1");
      FLIN_RETURN_IF_ERROR(store_->Checkpoint());
      FLIN_RETURN_IF_ERROR(log_->ResetTo(1, 1));
      FLIN_RETURN_IF_ERROR(log_->SetHardState({1, 0, 1}));
      FLIN_RETURN_IF_ERROR(log_->Sync());
    } else {
      // A joining node starts empty; it learns the state from a snapshot.
      // The members are kept so it can answer the leader before that.
      store_->PutMeta(kMetaMembers, joined_members);
      FLIN_RETURN_IF_ERROR(store_->Checkpoint());
    }
    nlohmann::json j = {{"cluster_id", Hex64(cluster_id_)}, {"node_id", node_id_}};
    FLIN_RETURN_IF_ERROR(WriteFileDurably(cluster_file, j.dump() + "\n"));
    LOG_INFO << "data dir " << dir << " now belongs to cluster " << Hex64(cluster_id_)
             << " as node " << node_id_;
  } else {
    std::ifstream in(cluster_file);
    nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_discarded() || !j.contains("cluster_id") || !j.contains("node_id")) {
      return Status::Corruption(cluster_file + ": not a valid cluster file");
    }
    cluster_id_ = std::stoull(j["cluster_id"].get<std::string>(), nullptr, 16);
    node_id_ = j["node_id"].get<uint64_t>();
    if (opts_.node_id && opts_.node_id != node_id_) {
      return Status::InvalidArgument("--node-id " + std::to_string(opts_.node_id) + ": data dir " +
                                     dir + " belongs to node " + std::to_string(node_id_) +
                                     " of cluster " + Hex64(cluster_id_));
    }
    if (opts_.bootstrap || !opts_.join.empty() || !opts_.initial_cluster.empty()) {
      LOG_INFO << "data dir already belongs to cluster " << Hex64(cluster_id_) << " as node "
               << node_id_ << ": --bootstrap/--join/--initial-cluster ignored";
    }
  }
  cluster_hex_ = Hex64(cluster_id_);

  // Configuration and members as of the applied index.
  auto conf_blob = store_->GetMeta(kMetaConf);
  if (!conf_blob.ok()) return conf_blob.status();
  if (*conf_blob) {
    FLIN_RETURN_IF_ERROR(raft::DecodeConfState(**conf_blob, &applied_conf_));
  }
  auto members_blob = store_->GetMeta(kMetaMembers);
  if (!members_blob.ok()) return members_blob.status();
  if (*members_blob) {
    auto m = ParseMembers(**members_blob, "state.db members");
    if (!m.ok()) return m.status();
    applied_members_ = std::move(m).value();
  }
  uint64_t applied_term = 0;
  if (auto t = store_->GetMeta(kMetaAppliedTerm); t.ok() && *t) {
    applied_term = static_cast<uint64_t>(ParseInt64(**t).value_or(0));
  }

  // The log and state.db must fit together (raft/README.md "Restart").
  uint64_t applied = store_->applied_index();
  if (applied > 0) {
    auto t = log_->Term(applied);
    if (applied > log_->LastIndex() || (t.ok() && *t != applied_term) ||
        (!t.ok() && log_->FirstIndex() <= applied)) {
      // state.db is ahead of the log (a snapshot was installed and the
      // process stopped before the log was reset): restart the log there.
      LOG_INFO << "log restarts after state.db's applied index " << applied;
      FLIN_RETURN_IF_ERROR(log_->ResetTo(applied, applied_term));
    } else if (applied + 1 < log_->FirstIndex()) {
      return Status::Corruption("data dir " + dir + ": state.db is at index " +
                                std::to_string(applied) + " but the log starts at " +
                                std::to_string(log_->FirstIndex()));
    }
    store::LogHardState hs = log_->hard_state();
    if (hs.commit < applied) {
      hs.commit = applied;
      FLIN_RETURN_IF_ERROR(log_->SetHardState(hs));
      FLIN_RETURN_IF_ERROR(log_->Sync());
    }
  }
  applied_.store(applied);
  applied_term_ = applied_term;
  term_starts_ = {{applied, applied_term}};
  last_snapshot_index_ = applied;
  FLIN_RETURN_IF_ERROR(LoadSnapshots());

  storage_ = std::make_unique<RaftStorage>(log_.get());
  storage_->set_initial_conf(applied_conf_);
  if (loaded_snapshot_.index) storage_->set_snapshot(loaded_snapshot_);
  raft::Config rc;
  rc.id = node_id_;
  rc.storage = storage_.get();
  rc.applied = applied;
  rc.random_seed = RandomU64();
  // At most 64 x 256 KiB of entries in flight per follower: enough to keep
  // a LAN busy, small enough that the transport's queues never fill.
  rc.max_size_per_msg = 256 << 10;
  rc.max_inflight_msgs = 64;
  auto r = raft::Raft::Create(rc);
  if (!r.ok()) return r.status();
  raft_ = std::move(r).value();
  members_ = applied_members_;

  net::PeerTransportOptions topts;
  topts.node_id = node_id_;
  topts.cluster_id = cluster_id_;
  topts.secret = opts_.secret;
  topts.listen = opts_.peer_listen;
  transport_ = std::make_unique<net::PeerTransport>(
      peer_io_, topts, [this](uint64_t from, std::string_view p) { OnPeerMessage(from, p); });
  FLIN_RETURN_IF_ERROR(transport_->Start());
  peer_work_.emplace(peer_io_.get_executor());
  peer_thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "flind-peers");
    peer_io_.run();
  });
  for (const auto& [id, addr] : members_) {
    if (id != node_id_) transport_->SetPeer(id, addr);
  }
  LOG_INFO << "cluster " << cluster_hex_ << " node " << node_id_ << ": peers on "
           << opts_.peer_listen << ", applied index " << applied << ", log [" << log_->FirstIndex()
           << ", " << log_->LastIndex() << "], members " << FormatMembers(members_);
  // A cluster of one elects itself without waiting for an election timeout.
  if (raft_->conf().voters == std::vector<uint64_t>{node_id_}) raft_->Campaign();
  PublishInfo();
  raft_thread_ = std::thread([this] { RaftLoop(); });
  apply_thread_ = std::thread([this] { ApplyLoop(); });
  return Status::Ok();
}

// Registers the newest complete snapshot file; removes partial downloads.
Status ClusterNode::LoadSnapshots() {
  std::error_code ec;
  uint64_t best_index = 0, best_term = 0;
  std::string best;
  for (const auto& de : fs::directory_iterator(snap_dir_, ec)) {
    std::string name = de.path().filename().string();
    if (name.ends_with(".part") || name.ends_with(".tmp") || name.starts_with("recv-")) {
      fs::remove(de.path(), ec);
      continue;
    }
    unsigned long long i = 0, t = 0;
    if (sscanf(name.c_str(), "%llu-%llu.db", &i, &t) == 2 && i > best_index) {
      best_index = i;
      best_term = t;
      best = de.path().string();
    }
  }
  if (best.empty()) return Status::Ok();
  auto conf = store::KvStore::ReadMetaOf(best, kMetaConf);
  if (!conf.ok() || !*conf) {
    LOG_WARN << "ignoring snapshot " << best << ": no configuration in it";
    return Status::Ok();
  }
  raft::SnapshotMeta meta;
  meta.index = best_index;
  meta.term = best_term;
  FLIN_RETURN_IF_ERROR(raft::DecodeConfState(**conf, &meta.conf));
  loaded_snapshot_ = meta;
  last_snapshot_index_ = std::max(last_snapshot_index_, best_index);
  return Status::Ok();
}

// ---------------------------------------------------------------------------
// Entry points (io thread, or any thread).

void ClusterNode::Wake() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    wake_ = true;
  }
  cv_.notify_one();
}

void ClusterNode::Submit(Request r) {
  std::unique_lock<std::mutex> lock(mu_);
  if (stopping_) {
    lock.unlock();
    Outcome o = Failed("ERR server is shutting down");
    r.done(std::move(o));
    return;
  }
  requests_.push_back(std::move(r));
  wake_ = true;
  lock.unlock();
  cv_.notify_one();
}

ClusterNode::Outcome ClusterNode::Failed(const std::string& text) const {
  Outcome o;
  o.code = Code::kFailed;
  o.result = store::ApplyResult::Error(text);
  return o;
}

void ClusterNode::Propose(std::string payload, Done done) {
  proposals_.fetch_add(1, std::memory_order_relaxed);
  Request r;
  r.what = What::kWrite;
  r.payload = std::move(payload);
  r.deadline_ms = NowMs() + opts_.request_timeout_ms;
  r.done = [this, done = std::move(done)](Outcome o) {
    if (o.code != Code::kOk) {
      PostOrBatch([done, res = std::move(o.result)]() mutable { done(std::move(res)); });
      return;
    }
    // Reply once this node applied the entry too: read-your-writes for the
    // client even when it then reads stale data from this node.
    AfterApplied(o.index, [done, res = std::move(o.result)]() mutable { done(std::move(res)); });
  };
  Submit(std::move(r));
}

void ClusterNode::ReadBarrier(StatusDone done) {
  std::unique_lock<std::mutex> lock(mu_);
  if (stopping_) {
    lock.unlock();
    Post([done = std::move(done)] { done(Status::Unavailable("ERR server is shutting down")); });
    return;
  }
  reads_.push_back(std::move(done));
  wake_ = true;
  lock.unlock();
  cv_.notify_one();
}

// A membership request; `done` gets its outcome on the io thread.
ClusterNode::Request ClusterNode::AdminRequest(What what, uint64_t id,
                                               std::function<void(Outcome)> done) {
  Request r;
  r.what = what;
  r.id = id;
  r.deadline_ms = NowMs() + opts_.request_timeout_ms;
  r.done = [this, done = std::move(done)](Outcome o) {
    Post([done, o = std::move(o)] { done(o); });
  };
  return r;
}

void ClusterNode::AddMember(std::string peer_addr, uint64_t id, IdDone done) {
  Request r = AdminRequest(What::kAdd, id, [done = std::move(done)](const Outcome& o) {
    if (o.code == Code::kOk) return done(o.value);
    done(Status::Unavailable(o.result.str));
  });
  r.addr = std::move(peer_addr);
  Submit(std::move(r));
}

void ClusterNode::RemoveMember(uint64_t id, StatusDone done) {
  Submit(AdminRequest(What::kRemove, id, [done = std::move(done)](const Outcome& o) {
    done(o.code == Code::kOk ? Status::Ok() : Status::Unavailable(o.result.str));
  }));
}

void ClusterNode::TransferLeader(uint64_t id, StatusDone done) {
  Submit(AdminRequest(What::kTransfer, id, [done = std::move(done)](const Outcome& o) {
    done(o.code == Code::kOk ? Status::Ok() : Status::Unavailable(o.result.str));
  }));
}

void ClusterNode::Join(uint64_t id, std::string peer_addr, std::string mac,
                       std::function<void(Result<JoinReply>)> done) {
  std::string want = JoinMac(opts_.secret, id, peer_addr);
  if (mac.size() != want.size() || CRYPTO_memcmp(mac.data(), want.data(), want.size()) != 0) {
    LOG_WARN << "refused CLUSTER.JOIN from " << peer_addr << ": wrong cluster secret";
    Post([done = std::move(done)] {
      done(Status::InvalidArgument("ERR join refused: the joining node's cluster secret differs"));
    });
    return;
  }
  AddMember(peer_addr, id, [this, done = std::move(done), peer_addr](Result<uint64_t> r) {
    if (!r.ok()) return done(r.status());
    JoinReply reply;
    reply.id = *r;
    reply.cluster_id = cluster_hex_;
    std::map<uint64_t, std::string> m;
    {
      std::lock_guard<std::mutex> lock(info_mu_);
      for (const ClusterMember& cm : info_.members) m[cm.id] = cm.peer_addr;
    }
    m[*r] = peer_addr;
    reply.members = FormatMembers(m);
    done(std::move(reply));
  });
}

// io thread: everything a peer sends arrives here.
void ClusterNode::OnPeerMessage(uint64_t from, std::string_view payload) {
  if (payload.empty()) return;
  uint8_t kind = static_cast<uint8_t>(payload[0]);
  payload.remove_prefix(1);
  // Decoded before taking mu_, which the raft thread needs for every turn.
  raft::Message m;
  if (kind == kRaftMsg) {
    Status s = raft::DecodeMessage(payload, &m);
    if (!s.ok()) {
      LOG_WARN << "bad raft message from node " << from << ": " << s.ToString();
      return;
    }
    if (m.from != from) {
      LOG_WARN << "node " << from << " sent a message claiming to be from node " << m.from;
      return;
    }
  }
  std::unique_lock<std::mutex> lock(mu_);
  if (stopping_) return;
  switch (kind) {
    case kRaftMsg:
      inbox_.push_back(std::move(m));
      break;
    case kForwardReq:
      forwarded_in_.emplace_back(from, std::string(payload));
      break;
    case kForwardResp:
      forward_replies_.emplace_back(payload);
      break;
    default:
      LOG_WARN << "unknown peer message kind " << int{kind} << " from node " << from;
      return;
  }
  wake_ = true;
  lock.unlock();
  cv_.notify_one();
}

// ---------------------------------------------------------------------------
// The raft thread.

void ClusterNode::RaftLoop() {
  pthread_setname_np(pthread_self(), "flind-raft");
  using Clock = std::chrono::steady_clock;
  const auto tick = std::chrono::milliseconds(opts_.tick_ms);
  auto next_tick = Clock::now() + tick;
  std::vector<raft::Message> inbox;
  std::vector<std::pair<uint64_t, std::string>> fwd_in;
  std::vector<std::string> fwd_replies;
  std::vector<Request> requests;
  std::vector<StatusDone> reads;
  std::vector<raft::SnapshotMeta> created;
  std::vector<std::pair<uint64_t, uint64_t>> durable_points;
  std::vector<std::pair<uint64_t, bool>> reports;
  bool stopping = false;
  // A clean stop first drains: the leader hands leadership to the most
  // up-to-date voter (clients see no election timeout), and requests already
  // proposed or forwarded get their answers. Bounded, so a stop never hangs.
  bool draining = false;
  int64_t drain_until = 0;
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_until(lock, next_tick, [&] { return wake_ || (stopping_ && !draining); });
      wake_ = false;
      stopping = stopping_;
      inbox.swap(inbox_);
      fwd_in.swap(forwarded_in_);
      fwd_replies.swap(forward_replies_);
      requests.swap(requests_);
      reads.swap(reads_);
      created.swap(snapshots_created_);
      durable_points.swap(durable_points_);
      reports.swap(snapshot_reports_);
    }
    if (stopping && !draining) {
      draining = true;
      drain_until = NowMs() + 3000;
      if (raft_->role() == raft::Role::kLeader && raft_->conf().voters.size() > 1) {
        uint64_t target = 0, best = 0;
        for (uint64_t id : raft_->conf().voters) {
          const raft::Progress* pr = raft_->progress(id);
          if (id != node_id_ && pr && (target == 0 || pr->match > best)) {
            target = id;
            best = pr->match;
          }
        }
        if (target && raft_->TransferLeader(target).ok()) {
          LOG_INFO << "stopping: handing leadership to node " << target;
        }
      }
    }
    if (draining) {
      bool transferring = raft_->role() == raft::Role::kLeader && raft_->lead_transferee() != 0;
      if (NowMs() >= drain_until || (pending_.empty() && forwarded_out_.empty() && !transferring)) {
        break;
      }
    }
    for (raft::Message& m : inbox) {
      if (m.type == raft::MessageType::kSnapshot && !AcceptSnapshotChunk(m)) continue;
      Status s = raft_->Step(std::move(m));
      if (!s.ok()) LOG_DEBUG << "raft step: " << s.ToString();
    }
    inbox.clear();
    for (auto& [to, ok] : reports) raft_->ReportSnapshot(to, ok);
    reports.clear();
    for (const raft::SnapshotMeta& meta : created) OnSnapshotCreated(meta);
    created.clear();
    for (const auto& [index, term] : durable_points) CompactLog(index);
    durable_points.clear();
    while (Clock::now() >= next_tick) {
      raft_->Tick();
      next_tick += tick;
      OnTick(++ticks_);
    }
    for (auto& [from, body] : fwd_in) HandleForwarded(from, body);
    fwd_in.clear();
    for (const std::string& body : fwd_replies) HandleForwardReply(body);
    fwd_replies.clear();
    HandleRequests(requests);
    requests.clear();
    if (!reads.empty()) {
      // One ReadIndex for every read that arrived since the last one.
      uint64_t ctx = next_read_ctx_++;
      ReadRound& round = read_rounds_[ctx];
      round.dones.swap(reads);
      round.deadline_ms = NowMs() + opts_.request_timeout_ms;
      if (raft_->leader() != raft::kNoNode) {
        round.asked = true;
        round.asked_tick = ticks_;
        std::string c;
        PutU64(&c, ctx);
        raft_->ReadIndex(std::move(c));
      }
    }
    while (raft_->HasReady()) {
      raft::Ready rd = raft_->GetReady();
      HandleReady(rd);
      raft_->Advance();
    }
    // Received snapshots the core declined (already covered by the log)
    // will never be installed: drop their files.
    for (auto it = received_.begin(); it != received_.end();) {
      if (it->first.first <= raft_->commit_index()) {
        std::error_code ec;
        fs::remove(it->second, ec);
        it = received_.erase(it);
      } else {
        ++it;
      }
    }
    uint64_t leader = raft_->leader();
    if (leader != last_leader_) {
      last_leader_ = leader;
      is_leader_.store(leader == node_id_);
      if (leader != raft::kNoNode) {
        LOG_INFO << "node " << node_id_ << ": leader is node " << leader << " (term "
                 << raft_->term() << ")";
        std::vector<Request> again(std::make_move_iterator(waiting_.begin()),
                                   std::make_move_iterator(waiting_.end()));
        waiting_.clear();
        HandleRequests(again);
        while (raft_->HasReady()) {
          raft::Ready rd = raft_->GetReady();
          HandleReady(rd);
          raft_->Advance();
        }
      }
      PublishInfo();
    }
  }
  FailAll("ERR server is shutting down");
  std::lock_guard<std::mutex> lock(apply_mu_);
  raft_done_ = true;
  apply_cv_.notify_one();
}

void ClusterNode::FailAll(const std::string& why) {
  for (auto& [i, p] : pending_) p.done(Failed(why + "; the write's outcome is unknown"));
  pending_.clear();
  for (auto& [id, r] : forwarded_out_) r.done(Failed(why + "; the write's outcome is unknown"));
  forwarded_out_.clear();
  for (Request& r : waiting_) r.done(Failed(why));
  waiting_.clear();
  std::vector<Request> left;
  {
    std::lock_guard<std::mutex> lock(mu_);
    left.swap(requests_);
    ReadRound& round = read_rounds_[0];
    for (StatusDone& d : reads_) round.dones.push_back(std::move(d));
    reads_.clear();
  }
  for (Request& r : left) r.done(Failed(why));
  auto fail_read = [&](StatusDone& d) {
    Post([d = std::move(d), why] { d(Status::Unavailable(why)); });
  };
  for (auto& [c, round] : read_rounds_) {
    for (StatusDone& d : round.dones) fail_read(d);
  }
  read_rounds_.clear();
  for (Transfer& t : transfers_) t.done(Failed(why));
  transfers_.clear();
}

void ClusterNode::OnTick(uint64_t tick) {
  int64_t now = NowMs();
  const std::string waited = std::to_string(opts_.request_timeout_ms) + " ms";
  // Requests still waiting for a leader: never proposed, safe to retry.
  while (!waiting_.empty() && waiting_.front().deadline_ms <= now) {
    waiting_.front().done(Failed("TRYAGAIN no leader: no quorum reachable from node " +
                                 std::to_string(node_id_) + " within " + waited +
                                 "; the request was not applied"));
    waiting_.pop_front();
  }
  if (!waiting_.empty() && raft_->leader() != raft::kNoNode) {
    std::vector<Request> again(std::make_move_iterator(waiting_.begin()),
                               std::make_move_iterator(waiting_.end()));
    waiting_.clear();
    HandleRequests(again);
  }
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->second.deadline_ms <= now) {
      it->second.done(Failed("TRYAGAIN the write was not committed within " + waited +
                             " (no quorum?); its outcome is unknown"));
      it = pending_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto it = forwarded_out_.begin(); it != forwarded_out_.end();) {
    if (it->second.deadline_ms <= now) {
      it->second.done(Failed("TRYAGAIN no answer from the leader within " + waited +
                             "; the request's outcome is unknown"));
      it = forwarded_out_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto it = read_rounds_.begin(); it != read_rounds_.end();) {
    ReadRound& round = it->second;
    if (round.deadline_ms <= now) {
      for (StatusDone& d : round.dones) {
        Post([d = std::move(d), waited] {
          d(Status::Unavailable("TRYAGAIN no leader confirmed a linearizable read within " +
                                waited + " (CONSISTENCY stale reads this node's data)"));
        });
      }
      it = read_rounds_.erase(it);
      continue;
    }
    // The ReadIndex request or its answer may have been lost (no leader
    // then, a message dropped): ask again; a duplicate answer is ignored.
    if ((!round.asked || tick - round.asked_tick >= 5) && raft_->leader() != raft::kNoNode) {
      round.asked = true;
      round.asked_tick = tick;
      std::string c;
      PutU64(&c, it->first);
      raft_->ReadIndex(std::move(c));
    }
    ++it;
  }
  for (auto it = transfers_.begin(); it != transfers_.end();) {
    if (raft_->leader() == it->target) {
      Outcome o;
      o.value = it->target;
      it->done(std::move(o));
      it = transfers_.erase(it);
    } else if (it->deadline_ms <= now) {
      it->done(Failed("TRYAGAIN leadership did not move to node " + std::to_string(it->target) +
                      " within " + waited));
      it = transfers_.erase(it);
    } else {
      ++it;
    }
  }
  // Learners that caught up become voters (thesis §4.2.1). One change at a
  // time; the core refuses while another is pending or the learner lags.
  if (raft_->role() == raft::Role::kLeader) {
    for (uint64_t id : raft_->conf().learners) {
      const raft::Progress* pr = raft_->progress(id);
      if (pr && pr->match + 100 >= raft_->last_index() && pr->recent_active) {
        auto idx = raft_->ProposeConfChange({raft::ConfChangeType::kAddVoter, id, members_[id]});
        if (idx.ok()) {
          LOG_INFO << "node " << id << " caught up (match " << pr->match << "): promoting to voter";
        }
        break;
      }
    }
  }
  if (storage_->snapshot_wanted()) {
    storage_->clear_snapshot_wanted();
    snapshot_requested_.store(true);
    std::lock_guard<std::mutex> lock(apply_mu_);
    apply_cv_.notify_one();
  }
  if (tick % 5 == 0) PublishInfo();
}

void ClusterNode::HandleRequests(std::vector<Request>& reqs) {
  if (reqs.empty()) return;
  std::vector<Request> writes;
  for (Request& r : reqs) {
    if (raft_->role() == raft::Role::kLeader) {
      if (r.what == What::kWrite) {
        writes.push_back(std::move(r));
      } else {
        ProposeAdmin(r);
      }
    } else if (raft_->leader() != raft::kNoNode) {
      Forward(std::move(r));
    } else {
      waiting_.push_back(std::move(r));
    }
  }
  if (!writes.empty()) ProposeWrites(writes);
}

void ClusterNode::ProposeWrites(std::vector<Request>& writes) {
  std::vector<std::string> data;
  data.reserve(writes.size());
  for (Request& r : writes) data.push_back(std::move(r.payload));
  auto first = raft_->ProposeBatch(data);
  if (!first.ok()) {
    // Refused (a leadership transfer is under way): never proposed.
    for (Request& r : writes) {
      r.payload = std::move(data[&r - writes.data()]);
      waiting_.push_back(std::move(r));
    }
    return;
  }
  uint64_t term = raft_->term();
  for (size_t i = 0; i < writes.size(); ++i) {
    Pending p;
    p.term = term;
    p.what = What::kWrite;
    p.deadline_ms = writes[i].deadline_ms;
    p.done = std::move(writes[i].done);
    auto [it, inserted] = pending_.try_emplace(*first + i, std::move(p));
    if (!inserted) {
      // An older proposal at this index was overwritten by this leader's log.
      it->second.done(
          Failed("TRYAGAIN leadership changed before the write committed; it was not "
                 "applied"));
      it->second = std::move(p);
    }
  }
}

void ClusterNode::ProposeAdmin(Request& r) {
  const raft::ConfState& conf = raft_->conf();
  raft::ConfChange cc;
  cc.node = r.id;
  switch (r.what) {
    case What::kAdd: {
      if (r.addr.empty()) {
        r.done(Failed("ERR CLUSTER.ADD needs the new node's peer address"));
        return;
      }
      if (r.id == 0) {
        uint64_t max_id = node_id_;
        for (const auto& [id, addr] : members_) max_id = std::max(max_id, id);
        for (uint64_t id : conf.voters) max_id = std::max(max_id, id);
        for (uint64_t id : conf.learners) max_id = std::max(max_id, id);
        r.id = max_id + 1;
      } else if (conf.Contains(r.id)) {
        auto it = members_.find(r.id);
        if (conf.IsVoter(r.id)) {
          // A voter that lost its data dir also lost its vote: letting it
          // back in under the same id could let it vote twice in a term.
          r.done(Failed("ERR node " + std::to_string(r.id) +
                        " is a voter; remove it first (CLUSTER.REMOVE " + std::to_string(r.id) +
                        "), then add or join it again"));
          return;
        }
        if (it != members_.end() && it->second == r.addr) {
          Outcome o;  // already a member at that address: nothing to do
          o.value = r.id;
          o.index = raft_->commit_index();
          r.done(std::move(o));
          return;
        }
        r.done(Failed("ERR node " + std::to_string(r.id) + " is already a member (at " +
                      (it == members_.end() ? "?" : it->second) + "); remove it first"));
        return;
      }
      for (const auto& [id, addr] : members_) {
        if (addr == r.addr && id != r.id) {
          r.done(Failed("ERR peer address " + r.addr + " is already node " + std::to_string(id) +
                        "'s"));
          return;
        }
      }
      cc.type = raft::ConfChangeType::kAddLearner;
      cc.node = r.id;
      cc.context = r.addr;
      break;
    }
    case What::kRemove:
      if (!conf.Contains(r.id)) {
        r.done(Failed("ERR node " + std::to_string(r.id) + " is not a member"));
        return;
      }
      cc.type = raft::ConfChangeType::kRemoveNode;
      break;
    case What::kTransfer: {
      uint64_t target = r.id;
      if (target == 0) {
        uint64_t best = 0;
        for (uint64_t id : conf.voters) {
          const raft::Progress* pr = raft_->progress(id);
          if (id == node_id_ || !pr) continue;
          if (target == 0 || pr->match > best) {
            target = id;
            best = pr->match;
          }
        }
        if (target == 0) {
          r.done(Failed("ERR no other voter to transfer leadership to"));
          return;
        }
      }
      if (target == node_id_) {
        Outcome o;
        o.value = target;
        r.done(std::move(o));
        return;
      }
      if (!conf.IsVoter(target)) {
        r.done(Failed("ERR node " + std::to_string(target) + " is not a voter"));
        return;
      }
      Status s = raft_->TransferLeader(target);
      if (!s.ok()) {
        r.done(Failed("ERR " + s.message()));
        return;
      }
      transfers_.push_back(Transfer{target, r.deadline_ms, std::move(r.done)});
      return;
    }
    case What::kWrite:
      FLIN_CHECK(false);
  }
  auto idx = raft_->ProposeConfChange(cc);
  if (!idx.ok()) {
    r.done(Failed("TRYAGAIN " + idx.status().message()));
    return;
  }
  Pending p;
  p.term = raft_->term();
  p.what = r.what;
  p.value = r.id;
  p.deadline_ms = r.deadline_ms;
  p.done = std::move(r.done);
  pending_[*idx] = std::move(p);
  LOG_INFO << "proposed membership change at index " << *idx << ": "
           << (r.what == What::kAdd ? "add learner " : "remove node ") << r.id
           << (r.addr.empty() ? "" : " at " + r.addr);
}

void ClusterNode::Forward(Request r) {
  uint64_t id = next_req_id_++;
  std::string msg(1, static_cast<char>(kForwardReq));
  PutU64(&msg, id);
  msg.push_back(static_cast<char>(r.what));
  PutU64(&msg, r.id);
  PutStr(&msg, r.addr);
  PutStr(&msg, r.payload);
  transport_->Send(raft_->leader(), std::move(msg));
  forwarded_out_.emplace(id, std::move(r));
}

// The leader side of a forwarded request.
void ClusterNode::HandleForwarded(uint64_t from, std::string_view body) {
  Reader rd(body);
  uint64_t req_id, id;
  uint8_t what;
  std::string_view addr, payload;
  if (!rd.U64(&req_id) || !rd.U8(&what) || what > uint8_t(What::kTransfer) || !rd.U64(&id) ||
      !rd.Str(&addr) || !rd.Str(&payload)) {
    LOG_WARN << "malformed forwarded request from node " << from;
    return;
  }
  Request r;
  r.what = static_cast<What>(what);
  r.id = id;
  r.addr = addr;
  r.payload = payload;
  r.deadline_ms = NowMs() + opts_.request_timeout_ms;
  net::PeerTransport* t = transport_.get();
  r.done = [t, from, req_id](Outcome o) { t->Send(from, EncodeOutcome(req_id, o)); };
  if (raft_->role() != raft::Role::kLeader) {
    // Not (or no longer) the leader: the origin forwards it again.
    Outcome o;
    o.code = Code::kRetry;
    r.done(std::move(o));
    return;
  }
  std::vector<Request> one;
  one.push_back(std::move(r));
  HandleRequests(one);
}

std::string ClusterNode::EncodeOutcome(uint64_t req_id, const Outcome& o) {
  std::string msg(1, static_cast<char>(kForwardResp));
  PutU64(&msg, req_id);
  msg.push_back(static_cast<char>(o.code));
  PutU64(&msg, o.index);
  PutU64(&msg, o.value);
  msg.push_back(static_cast<char>(o.result.kind));
  PutU64(&msg, static_cast<uint64_t>(o.result.n));
  PutStr(&msg, o.result.str);
  return msg;
}

void ClusterNode::HandleForwardReply(std::string_view body) {
  Reader rd(body);
  uint64_t req_id, index, value, n;
  uint8_t code, kind;
  std::string_view str;
  if (!rd.U64(&req_id) || !rd.U8(&code) || code > 2 || !rd.U64(&index) || !rd.U64(&value) ||
      !rd.U8(&kind) || kind > uint8_t(store::ApplyResult::Kind::kError) || !rd.U64(&n) ||
      !rd.Str(&str)) {
    LOG_WARN << "malformed forward reply";
    return;
  }
  auto it = forwarded_out_.find(req_id);
  if (it == forwarded_out_.end()) return;  // timed out already
  Request r = std::move(it->second);
  forwarded_out_.erase(it);
  if (static_cast<Code>(code) == Code::kRetry) {
    waiting_.push_back(std::move(r));
    return;
  }
  Outcome o;
  o.code = static_cast<Code>(code);
  o.index = index;
  o.value = value;
  o.result.kind = static_cast<store::ApplyResult::Kind>(kind);
  o.result.n = static_cast<int64_t>(n);
  o.result.str = str;
  r.done(std::move(o));
}

void ClusterNode::SendMessage(const raft::Message& m) {
  std::string out(1, static_cast<char>(kRaftMsg));
  raft::EncodeMessage(m, &out);
  // Entries travel on the bulk connection so that heartbeats, votes and
  // acknowledgements on the control connection never queue behind megabytes
  // of log (a follower would otherwise miss heartbeats under write load and
  // start elections). Reordering between the two is safe: a heartbeat only
  // carries min(match, commit), never more than the follower is known to hold.
  // Every append (empty probes too) uses the bulk connection, so appends
  // keep their order among themselves.
  net::Priority prio =
      m.type == raft::MessageType::kAppend ? net::Priority::kBulk : net::Priority::kControl;
  if (!transport_->Send(m.to, std::move(out), prio)) raft_->ReportUnreachable(m.to);
}

// Hands committed entries to the apply thread, completing the requests this
// leader proposed for them and following configuration changes.
void ClusterNode::DispatchCommitted(std::vector<raft::Entry>::iterator begin,
                                    std::vector<raft::Entry>::iterator end) {
  if (begin == end) return;
  std::vector<ApplyItem> items;
  bool conf_changed = false;
  items.reserve(end - begin);
  for (auto it_e = begin; it_e != end; ++it_e) {
    raft::Entry& e = *it_e;
    ApplyItem item;
    auto it = pending_.find(e.index);
    if (it != pending_.end()) {
      if (it->second.term == e.term) {
        Pending p = std::move(it->second);
        if (p.what == What::kWrite) {
          item.done = std::move(p.done);
        } else {
          uint64_t value = p.value;
          item.done = [value, done = std::move(p.done)](Outcome o) {
            o.value = value;
            done(std::move(o));
          };
        }
      } else {
        it->second.done(
            Failed("TRYAGAIN leadership changed before the write committed; it was not applied"));
      }
      pending_.erase(it);
    }
    if (e.type == raft::EntryType::kConfChange) {
      conf_changed = true;
      // Peers must be reachable as soon as the core counts them.
      raft::ConfChange cc;
      if (raft::DecodeConfChange(e.data, &cc).ok()) {
        if (cc.type == raft::ConfChangeType::kRemoveNode) {
          members_.erase(cc.node);
          if (cc.node != node_id_) transport_->RemovePeer(cc.node);
          if (cc.node == node_id_) {
            LOG_WARN << "this node (" << node_id_ << ") was removed from the cluster";
          }
        } else if (!cc.context.empty()) {
          members_[cc.node] = cc.context;
          if (cc.node != node_id_) transport_->SetPeer(cc.node, cc.context);
        }
      }
    }
    item.entry = std::move(e);
    items.push_back(std::move(item));
  }
  {
    std::lock_guard<std::mutex> lock(apply_mu_);
    to_apply_.push_back(std::move(items));
    apply_cv_.notify_one();
  }
  if (conf_changed) PublishInfo();
}

void ClusterNode::HandleReady(raft::Ready& rd) {
  if (rd.snapshot) {
    InstallSnapshot(*rd.snapshot);
    PublishInfo();  // the configuration came with it
  }
  // AppendEntries never depend on the leader's own durability (thesis
  // §10.2.1): send them before the fsync so followers write in parallel.
  std::vector<raft::Message*> later;
  for (raft::Message& m : rd.messages) {
    if (m.type == raft::MessageType::kAppend) {
      SendMessage(m);
    } else {
      later.push_back(&m);
    }
  }
  // Committed entries this node already holds durably (all but those in
  // this Ready's own entries) go to the apply thread before this Ready's
  // fsync: they are durable on a quorum, so replying to their clients need
  // not wait for the disk write of newer entries. Entries at and after
  // rd.entries' first index are applied only once synced here, so state.db
  // never records an applied index beyond this node's durable log.
  auto early = rd.committed_entries.end();
  if (!rd.entries.empty()) {
    uint64_t first_new = rd.entries.front().index;
    early = std::find_if(rd.committed_entries.begin(), rd.committed_entries.end(),
                         [&](const raft::Entry& e) { return e.index >= first_new; });
  }
  DispatchCommitted(rd.committed_entries.begin(), early);
  // Only entries, a term and a vote must be durable before what follows
  // them is sent. A hard state whose only news is the commit index is
  // written but left for the next fsync (as etcd's MustSync): commit is
  // not a promise to anyone, a restart raises it to state.db's applied
  // index (Init), and applied entries are always durable here. Skipping
  // those fsyncs matters because every node's fsyncs share one device.
  bool must_sync = !rd.entries.empty();
  if (rd.hard_state) {
    store::LogHardState had = log_->hard_state();
    must_sync |= rd.hard_state->term != had.term || rd.hard_state->vote != had.vote;
  }
  if (!rd.entries.empty() || rd.hard_state) {
    if (!rd.entries.empty()) {
      std::vector<store::LogEntry> entries;
      entries.reserve(rd.entries.size());
      // The Ready's copies are not needed after this: move, not copy.
      for (raft::Entry& e : rd.entries) {
        entries.push_back(
            store::LogEntry{e.index, e.term, static_cast<uint8_t>(e.type), std::move(e.data)});
      }
      Status s = log_->Append(entries);
      FLIN_CHECK(s.ok()) << "raft log append failed: " << s.ToString();
    }
    if (rd.hard_state) {
      Status s =
          log_->SetHardState({rd.hard_state->term, rd.hard_state->vote, rd.hard_state->commit});
      FLIN_CHECK(s.ok()) << s.ToString();
    }
    if (must_sync) {
      // A failed fsync leaves nothing safe to promise (votes, acks): stop
      // this node rather than continue with state that may not be on disk.
      Status s = log_->Sync();
      FLIN_CHECK(s.ok()) << "raft log sync failed, stopping this node: " << s.ToString();
      syncs_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  for (raft::Message* m : later) SendMessage(*m);
  for (const raft::SnapshotSend& s : rd.snapshot_sends) StartSnapshotStream(s);
  // The rest of the committed entries: those that only became durable here
  // (a follower learns the commit index with the entries themselves).
  DispatchCommitted(early, rd.committed_entries.end());
  for (raft::ReadState& rs : rd.read_states) {
    Reader r(rs.context);
    uint64_t ctx;
    if (!r.U64(&ctx)) continue;
    auto it = read_rounds_.find(ctx);
    if (it == read_rounds_.end()) continue;
    std::vector<StatusDone> dones = std::move(it->second.dones);
    read_rounds_.erase(it);
    AfterApplied(rs.index, [dones = std::move(dones)] {
      for (const StatusDone& d : dones) d(Status::Ok());
    });
  }
  if (rd.role != raft::Role::kLeader && !transfers_.empty()) {
    for (auto it = transfers_.begin(); it != transfers_.end();) {
      if (rd.leader == it->target) {
        Outcome o;
        o.value = it->target;
        it->done(std::move(o));
        it = transfers_.erase(it);
      } else {
        ++it;
      }
    }
  }
}

// ---- snapshots ----

bool ClusterNode::AcceptSnapshotChunk(raft::Message& m) {
  std::string key = std::to_string(m.from) + "-" + std::to_string(m.snapshot.index) + "-" +
                    std::to_string(m.snapshot.term);
  bool complete = false;
  if (m.snapshot_offset == 0) {
    auto old = receiving_.find(key);
    if (old != receiving_.end()) {
      ::close(old->second.fd);
      receiving_.erase(old);
    }
    Chunked c;
    c.path = snap_dir_ + "/recv-" + key + ".part";
    c.fd = ::open(c.path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (c.fd < 0) {
      LOG_ERROR << "cannot write " << c.path << ": " << strerror(errno);
      return false;
    }
    receiving_[key] = c;
  }
  auto it = receiving_.find(key);
  if (it != receiving_.end() && it->second.expected == m.snapshot_offset) {
    Chunked& c = it->second;
    const std::string& d = m.snapshot_data;
    if (::pwrite(c.fd, d.data(), d.size(), static_cast<off_t>(c.expected)) !=
        static_cast<ssize_t>(d.size())) {
      LOG_ERROR << "cannot write " << c.path << ": " << strerror(errno);
      ::close(c.fd);
      receiving_.erase(it);
    } else {
      c.expected += d.size();
      if (m.snapshot_last) {
        bool ok = ::fsync(c.fd) == 0;
        ::close(c.fd);
        // A complete file gets a name no later stream writes to: a second
        // stream of the same snapshot (the leader retried) starts over in
        // the .part file and must not truncate this one.
        std::string path = snap_dir_ + "/recv-" + key + "-" + std::to_string(next_recv_++) + ".db";
        ok = ok && ::rename(c.path.c_str(), path.c_str()) == 0;
        receiving_.erase(it);
        if (ok) {
          auto [old, fresh] = received_.try_emplace({m.snapshot.index, m.snapshot.term}, path);
          if (!fresh) {
            std::error_code ec;
            fs::remove(old->second, ec);
            old->second = path;
          }
          complete = true;
        }
      }
    }
  }
  m.snapshot_data.clear();
  m.snapshot_last = complete;
  return true;
}

void ClusterNode::InstallSnapshot(const raft::SnapshotMeta& meta) {
  auto it = received_.find({meta.index, meta.term});
  FLIN_CHECK(it != received_.end())
      << "core installs snapshot " << meta.index << "/" << meta.term << " that was never received";
  std::string path = it->second;
  received_.erase(it);
  {
    // Restored through the live connection rather than renamed over
    // state.db: other connections to the file (exports, a backup running on
    // the apply thread) would otherwise keep the old inode and, on close,
    // delete the new database's WAL by name.
    std::lock_guard<std::mutex> ckpt_lock(checkpoint_mu_);
    // The apply thread may be writing to the main connection without the
    // store mutex; RestoreFrom uses that connection and drops the buffer.
    std::lock_guard<std::mutex> flush_lock(flush_mu_);
    std::lock_guard<std::mutex> lock(store_mu_);
    Status s = store_->RestoreFrom(path);
    FLIN_CHECK(s.ok()) << "cannot install snapshot " << path << ": " << s.ToString();
    FLIN_CHECK(store_->applied_index() == meta.index)
        << "snapshot file is at " << store_->applied_index() << ", expected " << meta.index;
    std::error_code ec;
    fs::remove(path, ec);
    applied_conf_ = meta.conf;
    applied_term_ = meta.term;
    term_starts_ = {{meta.index, meta.term}};
    auto m = store_->GetMeta(kMetaMembers);
    if (m.ok() && *m) {
      auto parsed = ParseMembers(**m, "snapshot members");
      if (parsed.ok()) applied_members_ = std::move(parsed).value();
    }
    ApplyMembersFrom(applied_members_);
  }
  Status s = log_->ResetTo(meta.index, meta.term);
  FLIN_CHECK(s.ok()) << "log reset after snapshot failed: " << s.ToString();
  NotifyApplied(meta.index);
  for (auto& [k, c] : receiving_) ::close(c.fd);
  receiving_.clear();
  snapshots_installed_.fetch_add(1);
  LOG_INFO << "installed snapshot at index " << meta.index << " term " << meta.term;
}

void ClusterNode::ApplyMembersFrom(const std::map<uint64_t, std::string>& members) {
  for (const auto& [id, addr] : members) {
    auto it = members_.find(id);
    if (it == members_.end() || it->second != addr) {
      members_[id] = addr;
      if (id != node_id_) transport_->SetPeer(id, addr);
    }
  }
}

void ClusterNode::StartSnapshotStream(const raft::SnapshotSend& s) {
  std::string path = snap_dir_ + "/" + SnapshotName(s.meta.index, s.meta.term);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    raft_->ReportSnapshot(s.to, false);
    return;
  }
  LOG_INFO << "sending snapshot " << s.meta.index << "/" << s.meta.term << " to node " << s.to;
  std::lock_guard<std::mutex> lock(streams_mu_);
  streams_.emplace_back([this, fd, s, node = node_id_] {
    pthread_setname_np(pthread_self(), "flind-snapsend");
    raft::Message m;
    m.type = raft::MessageType::kSnapshot;
    m.from = node;
    m.to = s.to;
    m.term = s.term;
    m.snapshot = s.meta;
    bool ok = true;
    std::string buf(kSnapshotChunk, '\0');
    uint64_t off = 0;
    for (;;) {
      ssize_t n = ::pread(fd, buf.data(), buf.size(), static_cast<off_t>(off));
      if (n < 0) {
        ok = false;
        break;
      }
      struct stat st;
      ::fstat(fd, &st);
      m.snapshot_offset = off;
      m.snapshot_data.assign(buf.data(), static_cast<size_t>(n));
      m.snapshot_last = off + static_cast<uint64_t>(n) >= static_cast<uint64_t>(st.st_size);
      std::string out(1, static_cast<char>(kRaftMsg));
      raft::EncodeMessage(m, &out);
      // The bulk queue is bounded: wait for room rather than drop chunks.
      int64_t until = NowMs() + 30000;
      bool sent = false;
      while (!streams_stop_.load() && NowMs() < until) {
        if (transport_->Send(s.to, out, net::Priority::kBulk)) {
          sent = true;
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      if (!sent) {
        ok = false;
        break;
      }
      off += static_cast<uint64_t>(n);
      if (m.snapshot_last) break;
    }
    ::close(fd);
    {
      std::lock_guard<std::mutex> l(mu_);
      snapshot_reports_.emplace_back(s.to, ok);
      wake_ = true;
    }
    cv_.notify_one();
  });
}

void ClusterNode::OnSnapshotCreated(const raft::SnapshotMeta& meta) {
  storage_->set_snapshot(meta);
  CompactLog(meta.index);
}

// state.db durably holds everything up to `durable`: the log below it is
// not needed for a restart. Keep some entries below it anyway so a follower
// slightly behind catches up from the log instead of a snapshot (etcd keeps
// 5000).
void ClusterNode::CompactLog(uint64_t durable) {
  uint64_t keep = std::min<uint64_t>(5000, opts_.snapshot_entries / 2);
  uint64_t upto = durable > keep ? durable - keep : 0;
  if (upto >= log_->FirstIndex()) {
    auto term = log_->Term(upto);
    if (term.ok()) {
      Status s = log_->CompactTo(upto, *term);
      if (s.ok()) {
        compactions_.fetch_add(1);
      } else {
        LOG_WARN << "log compaction failed: " << s.ToString();
      }
    }
  }
}

// ---------------------------------------------------------------------------
// The apply thread.

void ClusterNode::AfterApplied(uint64_t index, std::function<void()> fn) {
  std::unique_lock<std::mutex> lock(waiters_mu_);
  if (applied_.load() >= index) {
    lock.unlock();
    PostOrBatch(std::move(fn));
    return;
  }
  apply_waiters_.emplace(index, std::move(fn));
}

void ClusterNode::NotifyApplied(uint64_t applied) {
  std::vector<std::function<void()>> ready;
  {
    std::lock_guard<std::mutex> lock(waiters_mu_);
    if (applied > applied_.load()) applied_.store(applied);
    auto end = apply_waiters_.upper_bound(applied);
    for (auto it = apply_waiters_.begin(); it != end; ++it) ready.push_back(std::move(it->second));
    apply_waiters_.erase(apply_waiters_.begin(), end);
  }
  if (tls_post_batch) {
    for (auto& f : ready) tls_post_batch->push_back(std::move(f));
  } else if (!ready.empty()) {
    Post([ready = std::move(ready)] {
      for (const auto& f : ready) f();
    });
  }
}

void ClusterNode::ApplyItems(std::vector<ApplyItem>& items) {
  std::vector<std::pair<Completion, Outcome>> done;
  uint64_t last = 0;
  {
    std::lock_guard<std::mutex> lock(store_mu_);
    store::Command cmd;
    uint64_t last_term = 0;
    for (ApplyItem& item : items) {
      const raft::Entry& e = item.entry;
      Outcome o;
      o.index = e.index;
      if (e.index <= store_->applied_index()) {
        // Already in state.db (a snapshot installed meanwhile covered it).
        if (item.done) {
          done.emplace_back(std::move(item.done),
                            Failed("ERR the write was committed, but its reply was lost while "
                                   "this node installed a snapshot"));
        }
        continue;
      }
      switch (e.type) {
        case raft::EntryType::kNormal: {
          Status s = store::DecodeCommand(e.data, &cmd);
          if (s.ok()) {
            o.result = store_->Apply(e.index, cmd);
          } else {
            // Every replica decodes the same bytes the same way, so skipping
            // keeps them identical; the proposer validated it, so this is a
            // bug or corruption worth shouting about.
            LOG_ERROR << "committed entry " << e.index << " is not a command: " << s.ToString();
            store_->MarkApplied(e.index);
            o.result = store::ApplyResult::Error("ERR corrupt entry");
          }
          break;
        }
        case raft::EntryType::kNoop:
          store_->MarkApplied(e.index);
          break;
        case raft::EntryType::kConfChange: {
          raft::ConfChange cc;
          if (raft::DecodeConfChange(e.data, &cc).ok()) {
            applied_conf_ = raft::ApplyConfChange(applied_conf_, cc);
            if (cc.type == raft::ConfChangeType::kRemoveNode) {
              applied_members_.erase(cc.node);
            } else if (!cc.context.empty()) {
              applied_members_[cc.node] = cc.context;
            }
            store_->PutMeta(kMetaConf, EncodeConf(applied_conf_));
            store_->PutMeta(kMetaMembers, FormatMembers(applied_members_));
          }
          store_->MarkApplied(e.index);
          break;
        }
      }
      // Entries arrive in index order: the newest term start is the last.
      if (term_starts_.empty() || term_starts_.rbegin()->second != e.term) {
        term_starts_[e.index] = e.term;
      }
      last_term = e.term;
      last = e.index;
      if (item.done) done.emplace_back(std::move(item.done), std::move(o));
    }
    if (last) {
      store_->PutMeta(kMetaAppliedTerm, std::to_string(last_term));
      applied_term_ = last_term;
    }
  }
  std::vector<std::function<void()>> batch;
  tls_post_batch = &batch;
  if (last) NotifyApplied(last);
  for (auto& [fn, o] : done) fn(std::move(o));
  tls_post_batch = nullptr;
  if (!batch.empty()) {
    Post([batch = std::move(batch)] {
      for (const auto& f : batch) f();
    });
  }
}

uint64_t ClusterNode::TermAt(uint64_t index) const {
  auto it = term_starts_.upper_bound(index);
  return it == term_starts_.begin() ? 0 : std::prev(it)->second;
}

void ClusterNode::WakeApply() {
  // Through the mutex: the apply loop is either before its predicate check
  // (and sees commit_wake_) or waiting (and gets the notify).
  { std::lock_guard<std::mutex> lock(apply_mu_); }
  apply_cv_.notify_one();
}

void ClusterNode::ApplyLoop() {
  pthread_setname_np(pthread_self(), "flind-apply");
  FlushPolicy flush(opts_.node.apply_commit_ms, opts_.node.write_buffer_bytes);
  bool busy = false;  // the store has flushing to do: poll instead of sleeping
  for (;;) {
    std::vector<ApplyItem> items;
    bool exit = false;
    {
      std::unique_lock<std::mutex> lock(apply_mu_);
      apply_cv_.wait_for(lock, busy ? std::chrono::milliseconds(0) : flush.commit_every(), [&] {
        return !to_apply_.empty() || raft_done_ || snapshot_requested_.load() ||
               commit_wake_.load();
      });
      commit_wake_.store(false);
      if (!to_apply_.empty()) {
        items = std::move(to_apply_.front());
        to_apply_.pop_front();
      } else if (raft_done_) {
        exit = true;
      }
    }
    bool idle = items.empty();  // as in Node::ApplyLoop
    if (!idle) ApplyItems(items);
    // Routine checkpoints run on the store's own checkpointer thread.
    busy = FlushTurn(flush, idle, exit).busy;
    if (exit) break;
    MaybeSnapshot(snapshot_requested_.exchange(false));
  }
}

// Takes a snapshot every snapshot_entries applied entries (then the raft
// thread compacts the log), or when a follower needs one (force).
void ClusterNode::MaybeSnapshot(bool force) {
  uint64_t applied = applied_.load();
  if (applied == 0) return;
  // committed_index() <= applied: nothing to do before this.
  if (!force && applied < last_snapshot_index_ + opts_.snapshot_entries) return;
  uint64_t durable_index = 0, durable_term = 0;
  // A snapshot file must hold everything applied: write the whole write
  // buffer out (without the store mutex: readers keep going). Periodic
  // compaction settles for what the write buffer's own commits put in
  // state.db.
  if (force) CommitAllOutsideLock();
  {
    std::lock_guard<std::mutex> lock(store_mu_);
    durable_index = store_->committed_index();
    durable_term = TermAt(durable_index);
    // Older term starts are never asked for again.
    auto keep = term_starts_.upper_bound(durable_index);
    if (keep != term_starts_.begin()) term_starts_.erase(term_starts_.begin(), std::prev(keep));
  }
  if (!force && durable_index < last_snapshot_index_ + opts_.snapshot_entries) return;
  // Compaction needs state.db itself to hold durably what the log below the
  // compaction point held. The checkpoint runs on the store's second
  // connection without the store mutex: readers keep going. Only this
  // thread commits, so nothing new arrives meanwhile.
  Result<bool> durable = false;
  {
    std::lock_guard<std::mutex> lock(checkpoint_mu_);
    durable = store_->DurableBackgroundCheckpoint();
  }
  if (!durable.ok() || !*durable) {
    LOG_WARN << "snapshot postponed: state.db checkpoint incomplete"
             << (durable.ok() ? std::string(" (a reader holds old pages)")
                              : ": " + durable.status().ToString());
    if (force) snapshot_requested_.store(true);
    return;
  }
  last_snapshot_index_ = durable_index;
  if (!force) {
    // Periodic: only compact the log. A snapshot file (a full copy of
    // state.db, a burst of writes and an fsync that would stall the log's
    // fsyncs behind it) is made only when a follower needs one.
    std::lock_guard<std::mutex> lock(mu_);
    durable_points_.emplace_back(durable_index, durable_term);
    wake_ = true;
    cv_.notify_one();
    return;
  }
  std::string tmp = snap_dir_ + "/snapshot.tmp";
  auto index = store::KvStore::BackupTo(opts_.node.data_dir + "/state.db", tmp);
  if (!index.ok()) {
    LOG_WARN << "snapshot failed: " << index.status().ToString();
    return;
  }
  auto term_text = store::KvStore::ReadMetaOf(tmp, kMetaAppliedTerm);
  auto conf_blob = store::KvStore::ReadMetaOf(tmp, kMetaConf);
  raft::SnapshotMeta meta;
  meta.index = *index;
  if (!term_text.ok() || !*term_text || !conf_blob.ok() || !*conf_blob ||
      !raft::DecodeConfState(**conf_blob, &meta.conf).ok()) {
    LOG_WARN << "snapshot at " << *index << " lacks raft metadata; not used";
    return;
  }
  meta.term = static_cast<uint64_t>(ParseInt64(**term_text).value_or(0));
  std::string final_path = snap_dir_ + "/" + SnapshotName(meta.index, meta.term);
  if (::rename(tmp.c_str(), final_path.c_str()) != 0) {
    LOG_WARN << "snapshot rename failed: " << strerror(errno);
    return;
  }
  (void)FsyncDir(snap_dir_);
  // Older snapshot files are superseded (an open stream keeps its fd).
  std::error_code ec;
  for (const auto& de : fs::directory_iterator(snap_dir_, ec)) {
    std::string name = de.path().filename().string();
    unsigned long long i = 0, t = 0;
    if (sscanf(name.c_str(), "%llu-%llu.db", &i, &t) == 2 && i < meta.index) {
      fs::remove(de.path(), ec);
    }
  }
  last_snapshot_index_ = meta.index;
  snapshots_created_n_.fetch_add(1);
  LOG_INFO << "snapshot at index " << meta.index << " term " << meta.term;
  {
    std::lock_guard<std::mutex> lock(mu_);
    snapshots_created_.push_back(meta);
    wake_ = true;
  }
  cv_.notify_one();
}

// ---------------------------------------------------------------------------
// State for INFO and CLUSTER.STATUS.

void ClusterNode::PublishInfo() {
  ClusterInfo info;
  info.clustered = true;
  info.cluster_id = cluster_hex_;
  info.node_id = node_id_;
  const raft::ConfState& conf = raft_->conf();
  info.role = RoleText(raft_->role(), conf.IsLearner(node_id_));
  info.leader_id = raft_->leader();
  info.term = raft_->term();
  info.commit_index = raft_->commit_index();
  info.last_index = raft_->last_index();
  auto add = [&](uint64_t id, bool voter) {
    ClusterMember m;
    m.id = id;
    auto it = members_.find(id);
    if (it != members_.end()) m.peer_addr = it->second;
    m.voter = voter;
    m.self = id == node_id_;
    m.leader = id == info.leader_id;
    if (raft_->role() == raft::Role::kLeader) {
      if (const raft::Progress* pr = raft_->progress(id)) {
        m.match = static_cast<int64_t>(pr->match);
        m.lag =
            static_cast<int64_t>(raft_->last_index() - std::min(pr->match, raft_->last_index()));
      } else if (id == node_id_) {
        m.match = static_cast<int64_t>(raft_->last_index());
        m.lag = 0;
      }
    }
    info.members.push_back(std::move(m));
  };
  for (uint64_t id : conf.voters) add(id, true);
  for (uint64_t id : conf.learners) add(id, false);
  std::lock_guard<std::mutex> lock(info_mu_);
  info_ = std::move(info);
}

ClusterInfo ClusterNode::Info() {
  ClusterInfo info;
  {
    std::lock_guard<std::mutex> lock(info_mu_);
    info = info_;
  }
  info.applied_index = applied_.load();
  // The published part is refreshed every few ticks; applied is live.
  info.commit_index = std::max(info.commit_index, info.applied_index);
  return info;
}

NodeStats ClusterNode::Stats() {
  NodeStats st = StorageStats(*log_);
  st.proposals = proposals_.load();
  st.log_syncs = syncs_.load();
  st.compactions = compactions_.load();
  st.snapshots_created = snapshots_created_n_.load();
  st.snapshots_installed = snapshots_installed_.load();
  return st;
}

void ClusterNode::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_) return;
    stopped_ = true;
    stopping_ = true;
  }
  cv_.notify_all();
  if (raft_thread_.joinable()) raft_thread_.join();
  if (apply_thread_.joinable()) apply_thread_.join();
  streams_stop_.store(true);
  {
    std::lock_guard<std::mutex> lock(streams_mu_);
    for (std::thread& t : streams_) {
      if (t.joinable()) t.join();
    }
    streams_.clear();
  }
  if (transport_) transport_->Stop();
  peer_work_.reset();
  peer_io_.stop();
  if (peer_thread_.joinable()) peer_thread_.join();
  for (auto& [k, c] : receiving_) ::close(c.fd);
  receiving_.clear();
  // No final commit: the log holds every entry above state.db's committed
  // index and the core re-delivers them at the next start (~KvStore).
}

}  // namespace flin::daemon
