#include "net/peer_transport.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <asio/co_spawn.hpp>
#include <asio/connect.hpp>
#include <asio/detached.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/read.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <vector>

#include "base/log.h"

namespace flin::net {
namespace {

using asio::awaitable;
using asio::ip::tcp;

constexpr uint32_t kProtocolVersion = 1;
constexpr size_t kHeaderBytes = 9;  // u32 length, u32 crc32, u8 kind
// Before a peer has authenticated it may not make us buffer more than this.
constexpr size_t kHandshakeMaxFrame = 1024;
constexpr size_t kNonceBytes = 32;
constexpr size_t kMacBytes = 32;  // SHA-256
constexpr char kMagic[8] = {'F', 'L', 'I', 'N', 'P', 'E', 'E', 'R'};
// Unauthenticated connections are cheap to open; cap how many we hold.
constexpr size_t kMaxPendingHandshakes = 64;
// One write gathers up to this much from the queue (one syscall for many
// small Raft messages).
constexpr size_t kMaxBatchMessages = 1024;
constexpr size_t kMaxBatchBytes = 1 << 20;
// A read buffer grown for a big frame is shrunk back once drained.
constexpr size_t kReadBufferBytes = 64 << 10;
// Until a peer has authenticated, its connection gets a small buffer.
constexpr size_t kHandshakeBufferBytes = 2 * kHandshakeMaxFrame;
constexpr size_t kMaxRejectReason = 512;
// An outbound connection that lasted this long resets the back-off.
constexpr auto kStableConnection = std::chrono::seconds(1);

enum class Kind : uint8_t {
  kMessage = 1,
  kHello = 16,
  kChallenge = 17,
  kAuth = 18,
  kAccept = 19,
  kReject = 20,
};

const char* ChannelName(int channel) { return channel == 0 ? "control" : "bulk"; }

void PutU32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; i++) out->push_back(static_cast<char>(v >> (8 * i)));
}
void PutU64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; i++) out->push_back(static_cast<char>(v >> (8 * i)));
}
uint32_t GetU32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; i--) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}
uint64_t GetU64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

uint32_t FrameCrc(uint8_t kind, std::string_view payload) {
  uLong crc = crc32_z(0, &kind, 1);
  return static_cast<uint32_t>(
      crc32_z(crc, reinterpret_cast<const Bytef*>(payload.data()), payload.size()));
}

std::array<char, kHeaderBytes> FrameHeader(Kind kind, std::string_view payload) {
  std::array<char, kHeaderBytes> h;
  uint32_t len = static_cast<uint32_t>(payload.size());
  uint32_t crc = FrameCrc(static_cast<uint8_t>(kind), payload);
  for (int i = 0; i < 4; i++) h[i] = static_cast<char>(len >> (8 * i));
  for (int i = 0; i < 4; i++) h[4 + i] = static_cast<char>(crc >> (8 * i));
  h[8] = static_cast<char>(kind);
  return h;
}

bool KnownKind(uint8_t k) {
  return k == static_cast<uint8_t>(Kind::kMessage) ||
         (k >= static_cast<uint8_t>(Kind::kHello) && k <= static_cast<uint8_t>(Kind::kReject));
}

std::string Endpoint(const tcp::socket& s) {
  std::error_code ec;
  auto ep = s.remote_endpoint(ec);
  if (ec) return "?";
  std::ostringstream os;
  os << ep;
  return os.str();
}

// Splits "HOST:PORT" / "[V6]:PORT".
Status ParseHostPort(std::string_view addr, std::string* host, uint16_t* port) {
  size_t colon = addr.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == addr.size()) {
    return Status::InvalidArgument("bad address '" + std::string(addr) + "': expected HOST:PORT");
  }
  std::string_view h = addr.substr(0, colon);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  uint32_t p = 0;
  for (char c : addr.substr(colon + 1)) {
    if (c < '0' || c > '9' || p > 65535) {
      return Status::InvalidArgument("bad port in address '" + std::string(addr) + "'");
    }
    p = p * 10 + static_cast<uint32_t>(c - '0');
  }
  if (p > 65535) return Status::InvalidArgument("bad port in address '" + std::string(addr) + "'");
  *host = std::string(h);
  *port = static_cast<uint16_t>(p);
  return Status::Ok();
}

// Buffered frame reader over one socket. The payload view returned by Next
// stays valid until the next call.
class FrameReader {
 public:
  explicit FrameReader(tcp::socket& socket) : socket_(socket), buf_(kHandshakeBufferBytes) {}

  // Grows the buffer for streaming many small frames per read.
  void UseStreamingBuffer() {
    if (buf_.size() < kReadBufferBytes) buf_.resize(kReadBufferBytes);
  }

  // Reads one frame whose payload is at most `max_payload` bytes. Errors:
  // IOError (connection closed or failed; "closed" for an orderly EOF),
  // Protocol (oversized frame, bad checksum, unknown kind).
  awaitable<Status> Next(size_t max_payload, Kind* kind, std::string_view* payload) {
    if (begin_ == end_ && buf_.size() > kReadBufferBytes) {
      buf_.resize(kReadBufferBytes);
      buf_.shrink_to_fit();
      begin_ = end_ = 0;
    }
    Status st = co_await Fill(kHeaderBytes);
    if (!st.ok()) co_return st;
    const char* h = buf_.data() + begin_;
    uint32_t len = GetU32(h);
    uint32_t crc = GetU32(h + 4);
    uint8_t k = static_cast<uint8_t>(h[8]);
    // Checked before reading (or allocating) anything of the payload.
    if (len > max_payload) {
      co_return Status::Protocol("frame of " + std::to_string(len) +
                                 " bytes exceeds the limit of " + std::to_string(max_payload) +
                                 " bytes");
    }
    if (!KnownKind(k)) co_return Status::Protocol("unknown frame kind " + std::to_string(k));
    st = co_await Fill(kHeaderBytes + len);
    if (!st.ok()) co_return st;
    std::string_view body(buf_.data() + begin_ + kHeaderBytes, len);
    if (FrameCrc(k, body) != crc) co_return Status::Protocol("frame checksum mismatch");
    begin_ += kHeaderBytes + len;
    *kind = static_cast<Kind>(k);
    *payload = body;
    co_return Status::Ok();
  }

 private:
  awaitable<Status> Fill(size_t n) {
    if (end_ - begin_ >= n) co_return Status::Ok();
    if (buf_.size() - begin_ < n) {
      std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
      if (buf_.size() < n) buf_.resize(n);
    }
    while (end_ - begin_ < n) {
      std::error_code ec;
      size_t got =
          co_await socket_.async_read_some(asio::buffer(buf_.data() + end_, buf_.size() - end_),
                                           asio::redirect_error(asio::use_awaitable, ec));
      if (ec == asio::error::eof) co_return Status::IOError("closed");
      if (ec) co_return Status::IOError(ec.message());
      end_ += got;
    }
    co_return Status::Ok();
  }

  tcp::socket& socket_;
  std::vector<char> buf_;
  size_t begin_ = 0;
  size_t end_ = 0;
};

awaitable<std::error_code> WriteFrame(tcp::socket& s, Kind kind, std::string_view payload) {
  auto header = FrameHeader(kind, payload);
  std::array<asio::const_buffer, 2> bufs = {asio::buffer(header),
                                            asio::buffer(payload.data(), payload.size())};
  std::error_code ec;
  co_await asio::async_write(s, bufs, asio::redirect_error(asio::use_awaitable, ec));
  co_return ec;
}

using Nonce = std::array<uint8_t, kNonceBytes>;
using Mac = std::array<uint8_t, kMacBytes>;

// What both sides MAC: everything the handshake agreed on plus both nonces,
// with a label per direction so one side's proof is never valid as the
// other's.
struct Handshake {
  uint64_t cluster_id = 0;
  uint64_t dialer_id = 0;
  uint64_t listener_id = 0;
  uint8_t channel = 0;
  Nonce nonce_d{};
  Nonce nonce_l{};
};

Mac ComputeMac(const std::string& secret, std::string_view label, const Handshake& h) {
  std::string msg(label);
  msg.push_back('\0');
  PutU32(&msg, kProtocolVersion);
  PutU64(&msg, h.cluster_id);
  PutU64(&msg, h.dialer_id);
  PutU64(&msg, h.listener_id);
  msg.push_back(static_cast<char>(h.channel));
  msg.append(reinterpret_cast<const char*>(h.nonce_d.data()), h.nonce_d.size());
  msg.append(reinterpret_cast<const char*>(h.nonce_l.data()), h.nonce_l.size());
  Mac mac{};
  unsigned int len = 0;
  unsigned char* ok =
      HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
           reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), mac.data(), &len);
  FLIN_CHECK(ok != nullptr && len == kMacBytes) << "HMAC-SHA256 failed";
  return mac;
}

bool MacEquals(const Mac& a, std::string_view b) {
  return b.size() == kMacBytes && CRYPTO_memcmp(a.data(), b.data(), kMacBytes) == 0;
}

Nonce RandomNonce() {
  Nonce n{};
  FLIN_CHECK(RAND_bytes(n.data(), static_cast<int>(n.size())) == 1) << "RAND_bytes failed";
  return n;
}

std::string_view AsView(const Mac& m) {
  return std::string_view(reinterpret_cast<const char*>(m.data()), m.size());
}

// HELLO payload: magic, version, cluster, dialer, expected listener (0 = any),
// channel, nonce_d.
constexpr size_t kHelloBytes = 8 + 4 + 8 + 8 + 8 + 1 + kNonceBytes;
constexpr size_t kChallengeBytes = 8 + kNonceBytes;

// Closes a socket when a deadline passes unless cancelled first.
class Watchdog {
 public:
  Watchdog(asio::io_context& io, std::shared_ptr<tcp::socket> socket,
           std::chrono::milliseconds timeout)
      : timer_(std::make_shared<asio::steady_timer>(io, timeout)),
        state_(std::make_shared<State>()) {
    std::weak_ptr<tcp::socket> weak = socket;
    timer_->async_wait([weak, state = state_](std::error_code ec) {
      // `disarmed` covers a timer that expired just before the cancel: its
      // handler is already queued with a success code.
      if (ec || state->disarmed) return;
      state->fired = true;
      if (auto s = weak.lock()) {
        std::error_code ignored;
        s->close(ignored);
      }
    });
  }
  ~Watchdog() {
    state_->disarmed = true;
    timer_->cancel();
  }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;
  bool fired() const { return state_->fired; }

 private:
  struct State {
    bool fired = false;
    bool disarmed = false;
  };
  std::shared_ptr<asio::steady_timer> timer_;
  std::shared_ptr<State> state_;
};

// One outbound queue + connection to one peer at one priority.
struct Channel {
  Channel(asio::io_context& io, uint64_t id, int prio, std::string address)
      : peer_id(id), channel(prio), addr(std::move(address)), wake(io), backoff_timer(io) {}
  const uint64_t peer_id;
  const int channel;  // 0 control, 1 bulk

  // Guarded by Impl::mu.
  std::string addr;
  std::deque<std::string> queue;
  size_t queue_bytes = 0;
  bool waiting = false;  // the writer sleeps on `wake` with an empty queue
  // The established connection's descriptor while the writer owns it (-1
  // otherwise): Send writes straight to it when the writer is idle. Closing
  // the socket clears this first, under the same mutex, so a Send never
  // writes to a descriptor that was closed (and maybe reused).
  int direct_fd = -1;
  // The unsent rest of a frame a direct write left half-written: the writer
  // sends these bytes first, as they are, before framing anything else.
  std::string head;
  bool removed = false;
  bool full_logged = false;

  // io thread only.
  asio::steady_timer wake;
  asio::steady_timer backoff_timer;
  std::shared_ptr<tcp::socket> socket;
};

}  // namespace

struct PeerTransportImpl {
  PeerTransportImpl(asio::io_context& io_context, PeerTransportOptions o, PeerTransport::Handler h)
      : io(io_context), opts(std::move(o)), handler(std::move(h)), acceptor(io_context) {}

  asio::io_context& io;
  const PeerTransportOptions opts;
  const PeerTransport::Handler handler;
  tcp::acceptor acceptor;  // io thread after Start
  std::atomic<uint16_t> port{0};
  std::string listen_addr;

  mutable std::mutex mu;
  bool started = false;                                               // mu
  bool stopped = false;                                               // mu
  std::map<uint64_t, std::array<std::shared_ptr<Channel>, 2>> peers;  // mu

  // io thread only.
  std::set<std::shared_ptr<tcp::socket>> inbound;
  size_t pending_handshakes = 0;

  std::atomic<uint64_t> sent{0}, received{0}, dropped{0}, auth_failures{0}, reconnects{0},
      protocol_errors{0};

  bool Stopped() const {
    std::lock_guard<std::mutex> lock(mu);
    return stopped;
  }

  void StopOnIo() {
    std::vector<std::shared_ptr<Channel>> channels;
    {
      std::lock_guard<std::mutex> lock(mu);
      if (stopped) return;
      stopped = true;
      for (auto& [id, chs] : peers) {
        for (auto& ch : chs) {
          ch->removed = true;
          channels.push_back(ch);
        }
      }
      peers.clear();
    }
    std::error_code ignored;
    acceptor.close(ignored);
    for (auto& ch : channels) CloseChannel(*ch);
    for (auto& s : inbound) s->close(ignored);
    inbound.clear();
  }

  // io thread: makes the channel's writer notice removal / address change.
  void CloseChannel(Channel& ch) {
    {
      std::lock_guard<std::mutex> lock(mu);
      ch.direct_fd = -1;
    }
    std::error_code ignored;
    if (ch.socket) ch.socket->close(ignored);
    ch.wake.cancel();
    ch.backoff_timer.cancel();
  }
};

namespace {

using Impl = PeerTransportImpl;

awaitable<Status> DialerHandshake(std::shared_ptr<Impl> self, Channel& ch, tcp::socket& s) {
  const auto& opts = self->opts;
  Handshake h;
  h.cluster_id = opts.cluster_id;
  h.dialer_id = opts.node_id;
  h.listener_id = ch.peer_id;
  h.channel = static_cast<uint8_t>(ch.channel);
  h.nonce_d = RandomNonce();

  std::string hello(kMagic, sizeof(kMagic));
  PutU32(&hello, kProtocolVersion);
  PutU64(&hello, opts.cluster_id);
  PutU64(&hello, opts.node_id);
  PutU64(&hello, ch.peer_id);
  hello.push_back(static_cast<char>(ch.channel));
  hello.append(reinterpret_cast<const char*>(h.nonce_d.data()), kNonceBytes);
  if (auto ec = co_await WriteFrame(s, Kind::kHello, hello)) {
    co_return Status::IOError("handshake: " + ec.message());
  }

  FrameReader reader(s);
  Kind kind;
  std::string_view payload;
  Status st = co_await reader.Next(kHandshakeMaxFrame, &kind, &payload);
  if (!st.ok()) co_return Status::IOError("handshake: " + st.message());
  if (kind == Kind::kReject) {
    self->auth_failures++;
    co_return Status::Unavailable(
        "refused by the peer: " +
        std::string(payload.substr(0, std::min(payload.size(), kMaxRejectReason))));
  }
  if (kind != Kind::kChallenge || payload.size() != kChallengeBytes) {
    self->auth_failures++;
    co_return Status::Protocol("handshake: unexpected reply (not a Flin peer?)");
  }
  uint64_t listener_id = GetU64(payload.data());
  if (listener_id != ch.peer_id) {
    self->auth_failures++;
    co_return Status::Unavailable("expected node " + std::to_string(ch.peer_id) + " but node " +
                                  std::to_string(listener_id) + " answered");
  }
  std::memcpy(h.nonce_l.data(), payload.data() + 8, kNonceBytes);

  Mac mine = ComputeMac(opts.secret, "dialer", h);
  if (auto ec = co_await WriteFrame(s, Kind::kAuth, AsView(mine))) {
    co_return Status::IOError("handshake: " + ec.message());
  }
  st = co_await reader.Next(kHandshakeMaxFrame, &kind, &payload);
  if (!st.ok()) co_return Status::IOError("handshake: " + st.message());
  if (kind == Kind::kReject) {
    self->auth_failures++;
    co_return Status::Unavailable(
        "refused by the peer: " +
        std::string(payload.substr(0, std::min(payload.size(), kMaxRejectReason))));
  }
  if (kind != Kind::kAccept || !MacEquals(ComputeMac(opts.secret, "listener", h), payload)) {
    self->auth_failures++;
    co_return Status::Unavailable(
        "the peer failed to prove the cluster secret (wrong --cluster-secret-file?)");
  }
  co_return Status::Ok();
}

// Connects and authenticates; on success ch->socket is the connection.
awaitable<Status> Dial(std::shared_ptr<Impl> self, std::shared_ptr<Channel> ch, std::string addr) {
  std::string host;
  uint16_t port = 0;
  Status st = ParseHostPort(addr, &host, &port);
  if (!st.ok()) co_return st;

  auto socket = std::make_shared<tcp::socket>(self->io);
  ch->socket = socket;  // so Stop / RemovePeer / SetPeer can abort the dial
  Watchdog watchdog(self->io, socket, self->opts.handshake_timeout);
  std::error_code ec;
  std::vector<tcp::endpoint> endpoints;
  asio::ip::address ip = asio::ip::make_address(host, ec);
  if (!ec) {
    endpoints.emplace_back(ip, port);
  } else {
    tcp::resolver resolver(self->io);
    auto results = co_await resolver.async_resolve(host, std::to_string(port),
                                                   asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return Status::IOError("resolve " + host + ": " + ec.message());
    for (const auto& r : results) endpoints.push_back(r.endpoint());
  }
  co_await asio::async_connect(*socket, endpoints, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    co_return Status::IOError(watchdog.fired() ? std::string("connect timed out")
                                               : "connect: " + ec.message());
  }
  socket->set_option(tcp::no_delay(true), ec);
  st = co_await DialerHandshake(self, *ch, *socket);
  if (!st.ok() && watchdog.fired()) co_return Status::Timeout("handshake timed out");
  co_return st;
}

// Waits until the peer closes (or breaks) an outbound connection, which
// carries nothing back after the handshake, and wakes the writer.
awaitable<void> WatchForClose(std::shared_ptr<Channel> ch, std::shared_ptr<tcp::socket> socket,
                              std::shared_ptr<bool> dead) {
  char byte;
  std::error_code ec;
  co_await socket->async_read_some(asio::buffer(&byte, 1),
                                   asio::redirect_error(asio::use_awaitable, ec));
  *dead = true;
  ch->wake.cancel();
}

// Drains ch's queue into the connection until it breaks or the channel is
// removed / the transport stopped.
awaitable<void> WriteLoop(std::shared_ptr<Impl> self, std::shared_ptr<Channel> ch) {
  auto socket = ch->socket;
  auto dead = std::make_shared<bool>(false);
  asio::co_spawn(self->io, WatchForClose(ch, socket, dead), asio::detached);
  // Lend the descriptor to Send for as long as this loop owns the socket.
  struct DirectFd {
    Impl& impl;
    Channel& ch;
    DirectFd(Impl& i, Channel& c, int fd) : impl(i), ch(c) {
      std::lock_guard<std::mutex> lock(impl.mu);
      // A frame half-written on the previous connection is lost with it;
      // its rest would corrupt this one.
      if (!ch.head.empty()) impl.dropped++;
      ch.head.clear();
      ch.direct_fd = fd;
    }
    ~DirectFd() {
      std::lock_guard<std::mutex> lock(impl.mu);
      ch.direct_fd = -1;
    }
  } direct(*self, *ch, socket->native_handle());
  std::string head;
  std::vector<std::string> batch;
  std::vector<std::array<char, kHeaderBytes>> headers;
  std::vector<asio::const_buffer> buffers;
  for (;;) {
    if (*dead) {
      LOG_INFO << "peer " << ch->peer_id << " closed the " << ChannelName(ch->channel)
               << " connection";
      co_return;
    }
    batch.clear();
    head.clear();
    {
      std::lock_guard<std::mutex> lock(self->mu);
      if (self->stopped || ch->removed) co_return;
      head.swap(ch->head);
      size_t bytes = head.size();
      while (!ch->queue.empty() && batch.size() < kMaxBatchMessages &&
             (batch.empty() || bytes + ch->queue.front().size() <= kMaxBatchBytes)) {
        bytes += ch->queue.front().size();
        ch->queue_bytes -= ch->queue.front().size();
        batch.push_back(std::move(ch->queue.front()));
        ch->queue.pop_front();
      }
      if (batch.empty() && head.empty()) ch->waiting = true;
      if (ch->queue.size() * 2 < self->opts.max_queue_messages &&
          ch->queue_bytes * 2 < self->opts.max_queue_bytes) {
        ch->full_logged = false;
      }
    }
    if (batch.empty() && head.empty()) {
      ch->wake.expires_at(asio::steady_timer::time_point::max());
      std::error_code ec;
      co_await ch->wake.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      std::lock_guard<std::mutex> lock(self->mu);
      ch->waiting = false;
      continue;
    }
    headers.resize(batch.size());
    buffers.clear();
    if (!head.empty()) buffers.push_back(asio::buffer(head));
    for (size_t i = 0; i < batch.size(); i++) {
      headers[i] = FrameHeader(Kind::kMessage, batch[i]);
      buffers.push_back(asio::buffer(headers[i]));
      buffers.push_back(asio::buffer(batch[i]));
    }
    std::error_code ec;
    co_await asio::async_write(*socket, buffers, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      // Whether the peer got any of the batch is unknown: Raft retransmits.
      self->dropped += batch.size() + (head.empty() ? 0 : 1);
      if (!self->Stopped()) {
        LOG_WARN << "peer " << ch->peer_id << ": " << ChannelName(ch->channel)
                 << " connection lost: " << ec.message();
      }
      co_return;
    }
    self->sent += batch.size() + (head.empty() ? 0 : 1);
  }
}

// The life of one outbound channel: dial, authenticate, write; on failure
// wait a jittered, exponentially growing back-off and dial again.
awaitable<void> RunChannel(std::shared_ptr<Impl> self, std::shared_ptr<Channel> ch) {
  const auto& opts = self->opts;
  std::mt19937_64 rng(std::random_device{}());
  auto backoff = opts.min_backoff;
  bool connected_before = false;
  bool failure_logged = false;
  try {
    for (;;) {
      std::string addr;
      {
        std::lock_guard<std::mutex> lock(self->mu);
        if (self->stopped || ch->removed) break;
        addr = ch->addr;
      }
      Status st = co_await Dial(self, ch, addr);
      std::error_code ignored;
      if (st.ok()) {
        if (connected_before) self->reconnects++;
        connected_before = true;
        failure_logged = false;
        LOG_INFO << "peer " << ch->peer_id << ": " << ChannelName(ch->channel) << " connection to "
                 << addr << " established";
        auto since = std::chrono::steady_clock::now();
        co_await WriteLoop(self, ch);
        ch->socket->close(ignored);
        ch->socket.reset();
        bool moved = false;
        {
          std::lock_guard<std::mutex> lock(self->mu);
          if (self->stopped || ch->removed) break;
          moved = ch->addr != addr;
        }
        // Redial at once after a connection that worked for a while; one
        // that keeps dying right after the handshake backs off like a
        // failed dial, so a flapping peer cannot make us spin.
        if (moved || std::chrono::steady_clock::now() - since >= kStableConnection) {
          backoff = opts.min_backoff;
          continue;
        }
      } else {
        if (ch->socket) ch->socket->close(ignored);
        ch->socket.reset();
        if (self->Stopped()) break;
      }
      // One line per outage, not one per attempt.
      if (st.ok()) {
        // The connection itself was logged when it ended.
      } else if (!failure_logged) {
        LOG_WARN << "peer " << ch->peer_id << ": cannot open " << ChannelName(ch->channel)
                 << " connection to " << addr << ": " << st.message()
                 << " (retrying with back-off)";
        failure_logged = true;
      } else {
        LOG_DEBUG << "peer " << ch->peer_id << ": " << addr << ": " << st.message();
      }
      auto half = backoff / 2;
      std::uniform_int_distribution<int64_t> dist(half.count(), backoff.count());
      ch->backoff_timer.expires_after(std::chrono::milliseconds(dist(rng)));
      co_await ch->backoff_timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
      backoff = std::min(backoff * 2, opts.max_backoff);
    }
  } catch (const std::exception& e) {
    LOG_ERROR << "peer " << ch->peer_id << ": " << ChannelName(ch->channel)
              << " channel failed: " << e.what();
  }
  std::error_code ignored;
  if (ch->socket) ch->socket->close(ignored);
  ch->socket.reset();
}

// Listener side of the handshake. On success returns the dialer's node id
// and channel.
awaitable<Status> ListenerHandshake(std::shared_ptr<Impl> self, tcp::socket& s, FrameReader& reader,
                                    uint64_t* from, int* channel) {
  const auto& opts = self->opts;
  Kind kind;
  std::string_view payload;
  Status st = co_await reader.Next(kHandshakeMaxFrame, &kind, &payload);
  if (!st.ok()) co_return st;
  if (kind != Kind::kHello || payload.size() != kHelloBytes ||
      std::memcmp(payload.data(), kMagic, sizeof(kMagic)) != 0) {
    co_return Status::Protocol("not a Flin peer handshake");
  }
  const char* p = payload.data() + sizeof(kMagic);
  uint32_t version = GetU32(p);
  Handshake h;
  h.cluster_id = GetU64(p + 4);
  h.dialer_id = GetU64(p + 12);
  uint64_t wanted = GetU64(p + 20);
  h.channel = static_cast<uint8_t>(p[28]);
  std::memcpy(h.nonce_d.data(), p + 29, kNonceBytes);
  h.listener_id = opts.node_id;

  std::string reason;
  if (version != kProtocolVersion) {
    reason = "protocol version mismatch: the dialer speaks version " + std::to_string(version) +
             ", this node speaks " + std::to_string(kProtocolVersion);
  } else if (h.cluster_id != opts.cluster_id) {
    reason = "cluster id mismatch: the dialer is in cluster " + std::to_string(h.cluster_id) +
             ", this node in cluster " + std::to_string(opts.cluster_id);
  } else if (h.dialer_id == 0 || h.dialer_id == opts.node_id) {
    reason = "node id conflict: the dialer claims node id " + std::to_string(h.dialer_id) +
             ", this node is " + std::to_string(opts.node_id);
  } else if (wanted != 0 && wanted != opts.node_id) {
    reason = "wrong node: the dialer expected node " + std::to_string(wanted) + ", this is node " +
             std::to_string(opts.node_id);
  } else if (h.channel > 1) {
    reason = "unknown channel " + std::to_string(h.channel);
  }
  if (!reason.empty()) {
    co_await WriteFrame(s, Kind::kReject, reason);
    co_return Status::Unavailable(reason);
  }

  h.nonce_l = RandomNonce();
  std::string challenge;
  PutU64(&challenge, opts.node_id);
  challenge.append(reinterpret_cast<const char*>(h.nonce_l.data()), kNonceBytes);
  if (auto ec = co_await WriteFrame(s, Kind::kChallenge, challenge)) {
    co_return Status::IOError(ec.message());
  }
  st = co_await reader.Next(kHandshakeMaxFrame, &kind, &payload);
  if (!st.ok()) co_return st;
  if (kind != Kind::kAuth || !MacEquals(ComputeMac(opts.secret, "dialer", h), payload)) {
    reason = "authentication failed: wrong cluster secret or replayed handshake (node " +
             std::to_string(h.dialer_id) + ")";
    co_await WriteFrame(s, Kind::kReject, reason);
    co_return Status::Unavailable(reason);
  }
  Mac mine = ComputeMac(opts.secret, "listener", h);
  if (auto ec = co_await WriteFrame(s, Kind::kAccept, AsView(mine))) {
    co_return Status::IOError(ec.message());
  }
  *from = h.dialer_id;
  *channel = h.channel;
  co_return Status::Ok();
}

awaitable<void> Serve(std::shared_ptr<Impl> self, std::shared_ptr<tcp::socket> socket) {
  const std::string remote = Endpoint(*socket);
  if (self->Stopped()) co_return;  // accepted just before Stop
  self->inbound.insert(socket);
  try {
    FrameReader reader(*socket);
    uint64_t from = 0;
    int channel = 0;
    Status st;
    {
      struct Pending {  // counts this connection until its handshake ends
        explicit Pending(size_t& n) : n_(n) { n_++; }
        ~Pending() { n_--; }
        size_t& n_;
      } pending(self->pending_handshakes);
      Watchdog watchdog(self->io, socket, self->opts.handshake_timeout);
      st = co_await ListenerHandshake(self, *socket, reader, &from, &channel);
      if (!st.ok() && watchdog.fired()) st = Status::Timeout("handshake timed out");
    }
    if (!st.ok()) {
      if (!self->Stopped()) {
        self->auth_failures++;
        LOG_WARN << "refused peer connection from " << remote << ": " << st.message();
      }
    } else {
      LOG_INFO << "accepted " << ChannelName(channel) << " connection from peer " << from << " at "
               << remote;
      std::error_code ignored;
      socket->set_option(tcp::no_delay(true), ignored);
      reader.UseStreamingBuffer();
      for (;;) {
        Kind kind;
        std::string_view payload;
        st = co_await reader.Next(self->opts.max_frame_bytes, &kind, &payload);
        if (!st.ok()) break;
        if (kind != Kind::kMessage) {
          st = Status::Protocol("unexpected handshake frame after the handshake");
          break;
        }
        if (self->Stopped()) break;
        self->received++;
        if (self->handler) self->handler(from, payload);
      }
      if (!self->Stopped()) {
        if (st.code() == Status::Code::kProtocol) {
          self->protocol_errors++;
          LOG_WARN << "closing " << ChannelName(channel) << " connection from peer " << from
                   << " at " << remote << ": " << st.message();
        } else {
          LOG_INFO << ChannelName(channel) << " connection from peer " << from << " at " << remote
                   << " ended: " << st.message();
        }
      }
    }
  } catch (const std::exception& e) {
    LOG_ERROR << "peer connection from " << remote << " failed: " << e.what();
  }
  std::error_code ignored;
  socket->close(ignored);
  self->inbound.erase(socket);
}

awaitable<void> AcceptLoop(std::shared_ptr<Impl> self) {
  asio::steady_timer pause(self->io);
  for (;;) {
    auto socket = std::make_shared<tcp::socket>(self->io);
    std::error_code ec;
    co_await self->acceptor.async_accept(*socket, asio::redirect_error(asio::use_awaitable, ec));
    if (self->Stopped() || ec == asio::error::operation_aborted) co_return;
    if (ec) {
      // E.g. out of file descriptors: say so, then give the system a moment
      // instead of spinning.
      LOG_WARN << "peer listener on " << self->listen_addr << ": accept: " << ec.message();
      pause.expires_after(std::chrono::milliseconds(100));
      co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    if (self->pending_handshakes >= kMaxPendingHandshakes) {
      LOG_WARN << "refused peer connection from " << Endpoint(*socket) << ": too many ("
               << kMaxPendingHandshakes << ") unauthenticated connections";
      socket->close(ec);
      continue;
    }
    asio::co_spawn(self->io, Serve(self, std::move(socket)), asio::detached);
  }
}

}  // namespace

PeerTransport::PeerTransport(asio::io_context& io, PeerTransportOptions opts, Handler on_message)
    : impl_(std::make_shared<PeerTransportImpl>(io, std::move(opts), std::move(on_message))) {}

PeerTransport::~PeerTransport() { Stop(); }

Status PeerTransport::Start() {
  const auto& opts = impl_->opts;
  if (opts.node_id == 0) return Status::InvalidArgument("peer transport: node id must be non-zero");
  if (opts.secret.empty()) {
    return Status::InvalidArgument("peer transport: the cluster secret must not be empty");
  }
  if (opts.max_frame_bytes == 0 || opts.max_frame_bytes > 0xFFFFFFFFu) {
    return Status::InvalidArgument("peer transport: max_frame_bytes must be in 1..4294967295");
  }
  if (opts.min_backoff.count() <= 0 || opts.max_backoff < opts.min_backoff) {
    return Status::InvalidArgument("peer transport: need 0 < min_backoff <= max_backoff");
  }
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (impl_->started || impl_->stopped) {
      return Status::InvalidArgument("peer transport: Start() called twice or after Stop()");
    }
  }
  std::string host;
  uint16_t port = 0;
  FLIN_RETURN_IF_ERROR(ParseHostPort(opts.listen, &host, &port));
  std::error_code ec;
  auto ip = asio::ip::make_address(host, ec);
  if (ec) {
    return Status::InvalidArgument("peer listen address '" + opts.listen +
                                   "': host must be an IP address");
  }
  tcp::endpoint ep(ip, port);
  auto& acceptor = impl_->acceptor;
  auto fail = [&](const char* what) {
    std::error_code ignored;
    acceptor.close(ignored);
    return Status::IOError("peer listen on " + opts.listen + ": " + what + ": " + ec.message());
  };
  acceptor.open(ep.protocol(), ec);
  if (ec) return fail("socket");
  // Lets a restarted node rebind its port while old connections linger in
  // TIME_WAIT.
  acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (ec) return fail("setsockopt");
  acceptor.bind(ep, ec);
  if (ec) return fail("bind");
  acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return fail("listen");
  impl_->port = acceptor.local_endpoint(ec).port();
  impl_->listen_addr = host + ":" + std::to_string(impl_->port.load());
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->started = true;
  }
  asio::co_spawn(impl_->io, AcceptLoop(impl_), asio::detached);
  LOG_INFO << "peer transport of node " << opts.node_id << " listening on " << impl_->listen_addr;
  return Status::Ok();
}

uint16_t PeerTransport::port() const { return impl_->port.load(); }

void PeerTransport::SetPeer(uint64_t id, std::string addr) {
  std::array<std::shared_ptr<Channel>, 2> chs;
  bool fresh = false;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (impl_->stopped) return;
    auto it = impl_->peers.find(id);
    if (it == impl_->peers.end()) {
      for (int c = 0; c < 2; c++) chs[c] = std::make_shared<Channel>(impl_->io, id, c, addr);
      impl_->peers[id] = chs;
      fresh = true;
    } else {
      if (it->second[0]->addr == addr) return;
      chs = it->second;
      for (auto& ch : chs) ch->addr = addr;
    }
  }
  if (fresh) {
    for (auto& ch : chs) asio::co_spawn(impl_->io, RunChannel(impl_, ch), asio::detached);
  } else {
    asio::post(impl_->io, [impl = impl_, chs] {
      for (auto& ch : chs) impl->CloseChannel(*ch);
    });
  }
}

void PeerTransport::RemovePeer(uint64_t id) {
  std::array<std::shared_ptr<Channel>, 2> chs;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    auto it = impl_->peers.find(id);
    if (it == impl_->peers.end()) return;
    chs = it->second;
    impl_->peers.erase(it);
    for (auto& ch : chs) {
      ch->removed = true;
      impl_->dropped += ch->queue.size();
      ch->queue.clear();
      ch->queue_bytes = 0;
    }
  }
  asio::post(impl_->io, [impl = impl_, chs] {
    for (auto& ch : chs) impl->CloseChannel(*ch);
  });
}

bool PeerTransport::Send(uint64_t to, std::string payload, Priority p) {
  auto& impl = *impl_;
  if (payload.size() > impl.opts.max_frame_bytes) {
    impl.dropped++;
    LOG_WARN << "peer " << to << ": dropped a message of " << payload.size()
             << " bytes: larger than max_frame_bytes (" << impl.opts.max_frame_bytes << ")";
    return false;
  }
  std::shared_ptr<Channel> ch;
  {
    std::lock_guard<std::mutex> lock(impl.mu);
    auto it = impl.peers.find(to);
    if (impl.stopped || it == impl.peers.end()) {
      impl.dropped++;
      return false;
    }
    ch = it->second[p == Priority::kControl ? 0 : 1];
    if (ch->queue.size() >= impl.opts.max_queue_messages ||
        ch->queue_bytes + payload.size() > impl.opts.max_queue_bytes) {
      impl.dropped++;
      if (!ch->full_logged) {
        ch->full_logged = true;
        LOG_WARN << "peer " << to << ": " << ChannelName(ch->channel) << " send queue full ("
                 << ch->queue.size() << " messages, " << ch->queue_bytes
                 << " bytes); dropping messages until it drains";
      }
      return false;
    }
    if (ch->waiting && ch->direct_fd >= 0) {
      // The writer is idle on an established connection: write from this
      // thread instead of waking the io thread to do it. On loopback a
      // wake-up costs more than the write (an epoll_ctl plus a context
      // switch per message on the raft thread's sends); nothing is queued,
      // so order is kept. What the socket does not take goes to the writer.
      auto header = FrameHeader(Kind::kMessage, payload);
      iovec iov[2] = {{header.data(), header.size()}, {payload.data(), payload.size()}};
      msghdr msg{};
      msg.msg_iov = iov;
      msg.msg_iovlen = 2;
      ssize_t n;
      do {
        n = ::sendmsg(ch->direct_fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
      } while (n < 0 && errno == EINTR);
      size_t total = header.size() + payload.size();
      if (n == static_cast<ssize_t>(total)) {
        impl.sent++;
        return true;
      }
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        // A broken connection: the writer's close watch notices it and
        // redials; this message is lost like one in a failed write.
        impl.dropped++;
        return true;
      }
      size_t done = n < 0 ? 0 : static_cast<size_t>(n);
      ch->head.reserve(total - done);
      if (done < header.size()) {
        ch->head.append(header.data() + done, header.size() - done);
        ch->head.append(payload);
      } else {
        ch->head.append(payload, done - header.size());
      }
      // Counted as sent (or dropped) by the writer, with the rest.
    } else {
      ch->queue_bytes += payload.size();
      ch->queue.push_back(std::move(payload));
      if (!ch->waiting) return true;
    }
    ch->waiting = false;
  }
  asio::post(impl.io, [ch] { ch->wake.cancel(); });
  return true;
}

void PeerTransport::Stop() {
  auto impl = impl_;
  {
    // Nothing of ours is on the io_context yet (e.g. a daemon failing
    // before it runs the io thread): no need to wait for that thread.
    std::lock_guard<std::mutex> lock(impl->mu);
    if (impl->stopped) return;
    if (!impl->started && impl->peers.empty()) {
      impl->stopped = true;
      return;
    }
  }
  if (impl->io.get_executor().running_in_this_thread() || impl->io.stopped()) {
    impl->StopOnIo();
    return;
  }
  auto done = std::make_shared<std::promise<void>>();
  auto future = done->get_future();
  asio::post(impl->io, [impl, done] {
    impl->StopOnIo();
    done->set_value();
  });
  // If the io_context stops running before it gets to the posted handler,
  // nobody else touches the transport's sockets any more: stop here.
  while (future.wait_for(std::chrono::milliseconds(20)) != std::future_status::ready) {
    if (impl->io.stopped()) {
      impl->StopOnIo();
      break;
    }
  }
}

PeerTransport::Stats PeerTransport::stats() const {
  Stats s;
  s.sent = impl_->sent.load();
  s.received = impl_->received.load();
  s.dropped = impl_->dropped.load();
  s.auth_failures = impl_->auth_failures.load();
  s.reconnects = impl_->reconnects.load();
  s.protocol_errors = impl_->protocol_errors.load();
  return s;
}

}  // namespace flin::net
