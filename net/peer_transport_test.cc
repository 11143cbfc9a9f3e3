// PeerTransport over real loopback sockets: ordering, authentication,
// reconnect, queue bounds, bulk vs control, hostile bytes. Every test runs
// its own io_context thread and binds port 0; waits poll a condition with a
// generous deadline.
#include "net/peer_transport.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <asio/connect.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace flin::net {
namespace {

using asio::ip::tcp;
using Clock = std::chrono::steady_clock;

constexpr auto kDeadline = std::chrono::seconds(30);

// Polls `cond` until it holds or the deadline passes.
bool WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds deadline = kDeadline) {
  auto end = Clock::now() + deadline;
  while (Clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return cond();
}

class IoThread {
 public:
  IoThread() : work_(asio::make_work_guard(io_)), thread_([this] { io_.run(); }) {}
  ~IoThread() {
    work_.reset();
    io_.stop();
    thread_.join();
  }
  asio::io_context& io() { return io_; }

 private:
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::thread thread_;
};

// Everything a transport delivered, by sender, in arrival order.
class Inbox {
 public:
  PeerTransport::Handler Handler() {
    return [this](uint64_t from, std::string_view payload) {
      std::lock_guard<std::mutex> lock(mu_);
      by_from_[from].emplace_back(payload);
      if (payload.size() < 100) arrival_[std::string(payload)] = Clock::now();
    };
  }
  size_t Count(uint64_t from) {
    std::lock_guard<std::mutex> lock(mu_);
    return by_from_[from].size();
  }
  size_t Total() {
    std::lock_guard<std::mutex> lock(mu_);
    size_t n = 0;
    for (auto& [id, v] : by_from_) n += v.size();
    return n;
  }
  // Messages from `from` that are exactly `size` bytes long.
  size_t CountOfSize(uint64_t from, size_t size) {
    std::lock_guard<std::mutex> lock(mu_);
    size_t n = 0;
    for (auto& p : by_from_[from]) n += p.size() == size ? 1 : 0;
    return n;
  }
  std::vector<std::string> From(uint64_t from) {
    std::lock_guard<std::mutex> lock(mu_);
    return by_from_[from];
  }
  bool Has(uint64_t from, const std::string& payload) {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& p : by_from_[from]) {
      if (p == payload) return true;
    }
    return false;
  }
  std::optional<Clock::time_point> ArrivedAt(const std::string& payload) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = arrival_.find(payload);
    if (it == arrival_.end()) return std::nullopt;
    return it->second;
  }

 private:
  std::mutex mu_;
  std::map<uint64_t, std::vector<std::string>> by_from_;
  std::map<std::string, Clock::time_point> arrival_;
};

PeerTransportOptions Options(uint64_t id, uint16_t port = 0) {
  PeerTransportOptions o;
  o.node_id = id;
  o.cluster_id = 42;
  o.secret = "correct horse battery staple";
  o.listen = "127.0.0.1:" + std::to_string(port);
  o.min_backoff = std::chrono::milliseconds(10);
  o.max_backoff = std::chrono::milliseconds(200);
  return o;
}

// A transport with its inbox.
struct Node {
  Node(asio::io_context& io, PeerTransportOptions opts)
      : id(opts.node_id), transport(io, std::move(opts), inbox.Handler()) {}
  std::string Addr() const { return "127.0.0.1:" + std::to_string(transport.port()); }
  uint64_t id;
  Inbox inbox;  // before transport: the handler refers to it
  PeerTransport transport;
};

std::unique_ptr<Node> StartNode(asio::io_context& io, PeerTransportOptions opts) {
  auto n = std::make_unique<Node>(io, std::move(opts));
  Status st = n->transport.Start();
  EXPECT_TRUE(st.ok()) << st.ToString();
  EXPECT_NE(n->transport.port(), 0);
  return n;
}

void Connect(Node& a, Node& b) {
  a.transport.SetPeer(b.id, b.Addr());
  b.transport.SetPeer(a.id, a.Addr());
}

std::string Msg(uint64_t from, uint64_t to, int i) {
  return std::to_string(from) + "->" + std::to_string(to) + "#" + std::to_string(i);
}

void ExpectInOrder(Node& receiver, uint64_t from, int n) {
  auto got = receiver.inbox.From(from);
  ASSERT_EQ(got.size(), static_cast<size_t>(n));
  for (int i = 0; i < n; i++) {
    ASSERT_EQ(got[i], Msg(from, receiver.id, i)) << "message " << i << " out of order";
  }
}

// Sends probes until one arrives: proves a (re)established, authenticated
// path from `a` to `b`.
bool ProbeUntilDelivered(Node& a, Node& b, const std::string& tag) {
  int i = 0;
  return WaitFor([&] {
    std::string p = tag + std::to_string(i++);
    a.transport.Send(b.id, p);
    for (int k = 0; k < 50; k++) {
      if (b.inbox.Has(a.id, p)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return false;
  });
}

// Blocking TCP connection from the test thread, for hostile clients.
class RawClient {
 public:
  explicit RawClient(uint16_t port) : socket_(io_) {
    socket_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  }
  // Writes as much of `bytes` as the server accepts before closing on us.
  void WriteIgnoringErrors(const std::string& bytes) {
    std::error_code ec;
    asio::write(socket_, asio::buffer(bytes), ec);
  }
  // Reads everything until the server closes the connection.
  std::string ReadAll() {
    std::string out;
    char buf[4096];
    std::error_code ec;
    for (;;) {
      size_t n = socket_.read_some(asio::buffer(buf), ec);
      if (ec) return out;
      out.append(buf, n);
    }
  }
  // Reads until EOF or error; true if the server closed the connection.
  bool ReadUntilClosed() {
    char buf[4096];
    std::error_code ec;
    for (;;) {
      socket_.read_some(asio::buffer(buf), ec);
      if (ec) return true;
    }
  }

 private:
  asio::io_context io_;
  tcp::socket socket_;
};

TEST(PeerTransportTest, StartErrorsNameTheAddress) {
  IoThread t;
  auto a = StartNode(t.io(), Options(1));
  PeerTransport b(t.io(), Options(2, a->transport.port()), nullptr);
  Status st = b.Start();
  EXPECT_EQ(st.code(), Status::Code::kIOError);
  EXPECT_NE(st.message().find("127.0.0.1:" + std::to_string(a->transport.port())),
            std::string::npos)
      << st.message();

  auto opts = Options(3);
  opts.secret.clear();
  PeerTransport c(t.io(), opts, nullptr);
  EXPECT_EQ(c.Start().code(), Status::Code::kInvalidArgument);

  PeerTransport d(t.io(), Options(0), nullptr);
  EXPECT_EQ(d.Start().code(), Status::Code::kInvalidArgument);
}

TEST(PeerTransportTest, TwoTransportsExchangeThousandsInOrder) {
  IoThread t;
  auto a = StartNode(t.io(), Options(1));
  auto b = StartNode(t.io(), Options(2));
  Connect(*a, *b);
  constexpr int kN = 5000;
  for (int i = 0; i < kN; i++) {
    ASSERT_TRUE(a->transport.Send(2, Msg(1, 2, i)));
    ASSERT_TRUE(b->transport.Send(1, Msg(2, 1, i)));
  }
  ASSERT_TRUE(WaitFor([&] { return b->inbox.Count(1) >= kN && a->inbox.Count(2) >= kN; }))
      << b->inbox.Count(1) << " " << a->inbox.Count(2);
  ExpectInOrder(*b, 1, kN);
  ExpectInOrder(*a, 2, kN);
  EXPECT_EQ(a->transport.stats().sent, static_cast<uint64_t>(kN));
  EXPECT_EQ(a->transport.stats().dropped, 0u);
  EXPECT_EQ(b->transport.stats().received, static_cast<uint64_t>(kN));
  EXPECT_EQ(a->transport.stats().auth_failures, 0u);
}

TEST(PeerTransportTest, ThreeTransportsAllToAllInOrderPerPeer) {
  IoThread t;
  std::vector<std::unique_ptr<Node>> nodes;
  for (uint64_t id = 1; id <= 3; id++) nodes.push_back(StartNode(t.io(), Options(id)));
  for (auto& x : nodes) {
    for (auto& y : nodes) {
      if (x != y) x->transport.SetPeer(y->id, y->Addr());
    }
  }
  constexpr int kN = 2000;
  // Three sender threads at once: Send is thread-safe.
  std::vector<std::thread> senders;
  for (auto& x : nodes) {
    senders.emplace_back([&, from = x.get()] {
      for (int i = 0; i < kN; i++) {
        for (auto& y : nodes) {
          if (y.get() == from) continue;
          EXPECT_TRUE(from->transport.Send(y->id, Msg(from->id, y->id, i)));
        }
      }
    });
  }
  for (auto& s : senders) s.join();
  ASSERT_TRUE(WaitFor([&] {
    for (auto& y : nodes) {
      if (y->inbox.Total() < 2 * kN) return false;
    }
    return true;
  }));
  for (auto& y : nodes) {
    for (auto& x : nodes) {
      if (x != y) ExpectInOrder(*y, x->id, kN);
    }
  }
}

TEST(PeerTransportTest, WrongSecretIsRefusedAndNothingIsDelivered) {
  IoThread t;
  auto a = StartNode(t.io(), Options(1));
  auto bad_opts = Options(2);
  bad_opts.secret = "not the secret";
  auto intruder = StartNode(t.io(), bad_opts);
  intruder->transport.SetPeer(1, a->Addr());
  for (int i = 0; i < 10; i++) intruder->transport.Send(1, "inject" + std::to_string(i));
  // Several refused attempts (it keeps retrying with back-off).
  ASSERT_TRUE(WaitFor([&] { return a->transport.stats().auth_failures >= 3; }));
  EXPECT_GE(intruder->transport.stats().auth_failures, 1u);
  EXPECT_EQ(intruder->transport.stats().sent, 0u);

  // A legitimate peer is unaffected and its messages arrive.
  auto c = StartNode(t.io(), Options(3));
  Connect(*a, *c);
  ASSERT_TRUE(c->transport.Send(1, Msg(3, 1, 0)));
  ASSERT_TRUE(WaitFor([&] { return a->inbox.Count(3) == 1; }));
  EXPECT_EQ(a->inbox.Count(2), 0u);
  EXPECT_EQ(a->transport.stats().received, 1u);
}

TEST(PeerTransportTest, ListenerWithWrongSecretIsNotTrustedByDialer) {
  // The dialer checks the listener's proof too: a fake listener without the
  // secret never gets the dialer's messages.
  IoThread t;
  auto a = StartNode(t.io(), Options(1));
  auto bad_opts = Options(2);
  bad_opts.secret = "impostor";
  auto fake = StartNode(t.io(), bad_opts);
  a->transport.SetPeer(2, fake->Addr());
  a->transport.Send(2, "secret payload");
  ASSERT_TRUE(WaitFor([&] { return a->transport.stats().auth_failures >= 2; }));
  EXPECT_EQ(fake->inbox.Total(), 0u);
  EXPECT_EQ(a->transport.stats().sent, 0u);
}

TEST(PeerTransportTest, WrongClusterIdIsRefused) {
  IoThread t;
  auto a = StartNode(t.io(), Options(1));
  auto other = Options(2);
  other.cluster_id = 7;
  auto b = StartNode(t.io(), other);
  b->transport.SetPeer(1, a->Addr());
  a->transport.SetPeer(2, b->Addr());
  b->transport.Send(1, "hello from the wrong cluster");
  a->transport.Send(2, "hello to the wrong cluster");
  ASSERT_TRUE(WaitFor([&] {
    return a->transport.stats().auth_failures >= 2 && b->transport.stats().auth_failures >= 2;
  }));
  EXPECT_EQ(a->inbox.Total(), 0u);
  EXPECT_EQ(b->inbox.Total(), 0u);
}

TEST(PeerTransportTest, WrongNodeIdAtAddressIsRefused) {
  // Node 1 believes node 5 lives at node 2's address.
  IoThread t;
  auto a = StartNode(t.io(), Options(1));
  auto b = StartNode(t.io(), Options(2));
  a->transport.SetPeer(5, b->Addr());
  a->transport.Send(5, "misdirected");
  ASSERT_TRUE(WaitFor([&] { return b->transport.stats().auth_failures >= 1; }));
  EXPECT_EQ(b->inbox.Total(), 0u);
}

TEST(PeerTransportTest, ReconnectsAfterRemoteRestartsOnSamePort) {
  IoThread t;
  auto a = StartNode(t.io(), Options(1));
  auto b = StartNode(t.io(), Options(2));
  const uint16_t port = b->transport.port();
  a->transport.SetPeer(2, b->Addr());
  for (int i = 0; i < 100; i++) a->transport.Send(2, Msg(1, 2, i));
  ASSERT_TRUE(WaitFor([&] { return b->inbox.Count(1) == 100; }));

  b->transport.Stop();
  b.reset();
  // Messages sent while the peer is down are queued or dropped, never a crash.
  for (int i = 0; i < 20; i++) a->transport.Send(2, "while-down");

  auto b2 = StartNode(t.io(), Options(2, port));
  ASSERT_EQ(b2->transport.port(), port);
  ASSERT_TRUE(ProbeUntilDelivered(*a, *b2, "probe"));
  for (int i = 0; i < 100; i++) a->transport.Send(2, Msg(1, 2, i));
  ASSERT_TRUE(
      WaitFor([&] { return b2->inbox.Count(1) > 0 && b2->inbox.From(1).back() == Msg(1, 2, 99); }));
  // The last 100 arrived complete and in order after whatever came before.
  auto got = b2->inbox.From(1);
  ASSERT_GE(got.size(), 100u);
  for (int i = 0; i < 100; i++) EXPECT_EQ(got[got.size() - 100 + i], Msg(1, 2, i));
  EXPECT_GE(a->transport.stats().reconnects, 1u);
}

TEST(PeerTransportTest, SendQueueBoundDropsAndCounts) {
  IoThread t;
  // A port nobody listens on: bind one, then close it.
  uint16_t dead_port;
  {
    asio::io_context io;
    tcp::acceptor acc(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    dead_port = acc.local_endpoint().port();
  }
  auto opts = Options(1);
  opts.max_queue_messages = 10;
  opts.max_queue_bytes = 1000;
  opts.max_frame_bytes = 800;
  auto a = StartNode(t.io(), opts);
  a->transport.SetPeer(2, "127.0.0.1:" + std::to_string(dead_port));

  int accepted = 0;
  for (int i = 0; i < 15; i++) accepted += a->transport.Send(2, "x") ? 1 : 0;
  EXPECT_EQ(accepted, 10);
  EXPECT_EQ(a->transport.stats().dropped, 5u);

  // The byte bound, per priority: bulk has its own queue.
  EXPECT_TRUE(a->transport.Send(2, std::string(400, 'b'), Priority::kBulk));
  EXPECT_TRUE(a->transport.Send(2, std::string(400, 'b'), Priority::kBulk));
  EXPECT_FALSE(a->transport.Send(2, std::string(400, 'b'), Priority::kBulk));
  EXPECT_EQ(a->transport.stats().dropped, 6u);

  // Larger than a frame may be, and unknown peers.
  EXPECT_FALSE(a->transport.Send(2, std::string(801, 'x'), Priority::kBulk));
  EXPECT_FALSE(a->transport.Send(9, "who?"));
  EXPECT_EQ(a->transport.stats().dropped, 8u);
  EXPECT_EQ(a->transport.stats().sent, 0u);
}

TEST(PeerTransportTest, QueuedMessagesAreDeliveredOncePeerComesUp) {
  IoThread t;
  uint16_t port;
  {
    asio::io_context io;
    tcp::acceptor acc(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    port = acc.local_endpoint().port();
  }
  auto a = StartNode(t.io(), Options(1));
  a->transport.SetPeer(2, "127.0.0.1:" + std::to_string(port));
  for (int i = 0; i < 50; i++) ASSERT_TRUE(a->transport.Send(2, Msg(1, 2, i)));
  auto b = StartNode(t.io(), Options(2, port));
  ASSERT_TRUE(WaitFor([&] { return b->inbox.Count(1) == 50; }));
  ExpectInOrder(*b, 1, 50);
}

// Node 1 (room for 256 MB of queued messages) connected to node 2, with a
// message delivered from 1 to 2 (tagged `tag`).
void StartBigQueuePair(asio::io_context& io, std::unique_ptr<Node>* a, std::unique_ptr<Node>* b,
                       const std::string& tag) {
  auto opts = Options(1);
  opts.max_queue_bytes = 256 << 20;
  *a = StartNode(io, opts);
  *b = StartNode(io, Options(2));
  Connect(**a, **b);
  ASSERT_TRUE(ProbeUntilDelivered(**a, **b, tag));
}

TEST(PeerTransportTest, BulkMessagesDoNotDelayControlMessages) {
  IoThread t;
  std::unique_ptr<Node> a, b;
  ASSERT_NO_FATAL_FAILURE(StartBigQueuePair(t.io(), &a, &b, "warmup-control"));
  ASSERT_TRUE(a->transport.Send(2, "warmup-bulk", Priority::kBulk));
  ASSERT_TRUE(WaitFor([&] { return b->inbox.Has(1, "warmup-bulk"); }));

  constexpr int kBulk = 24;  // 96 MB of 4 MB snapshot chunks
  std::string chunk(4 << 20, 'S');
  for (int i = 0; i < kBulk; i++) {
    chunk[0] = static_cast<char>('A' + i);
    ASSERT_TRUE(a->transport.Send(2, chunk, Priority::kBulk));
  }
  auto bulk_done = [&] { return b->inbox.CountOfSize(1, chunk.size()) == kBulk; };
  // Control round trips while the bulk transfer runs.
  std::chrono::milliseconds worst{0};
  int during_bulk = 0;
  for (int i = 0; i < 1000 && (i < 5 || !bulk_done()); i++) {
    std::string ping = "heartbeat-" + std::to_string(i);
    bool bulk_running = !bulk_done();
    auto sent_at = Clock::now();
    ASSERT_TRUE(a->transport.Send(2, ping));
    ASSERT_TRUE(WaitFor([&] { return b->inbox.ArrivedAt(ping).has_value(); }));
    auto latency =
        std::chrono::duration_cast<std::chrono::milliseconds>(*b->inbox.ArrivedAt(ping) - sent_at);
    worst = std::max(worst, latency);
    if (bulk_running && !bulk_done()) during_bulk++;
  }
  ASSERT_TRUE(WaitFor(bulk_done));
  std::cerr << "heartbeats during bulk: " << during_bulk << ", worst latency " << worst.count()
            << " ms\n";
  EXPECT_GE(during_bulk, 1) << "the bulk transfer finished before any heartbeat was measured";
  EXPECT_LT(worst, std::chrono::milliseconds(1000));
  // Every chunk arrived whole.
  int chunks = 0;
  for (const auto& p : b->inbox.From(1)) {
    if (p.size() == chunk.size()) {
      EXPECT_EQ(p[0], static_cast<char>('A' + chunks));
      chunks++;
    }
  }
  EXPECT_EQ(chunks, kBulk);
}

// Send writes straight to the socket when the channel's writer is idle; a
// big message only partly fits, and the writer must send the rest of that
// frame before anything queued behind it. Bursts after idle pauses start
// with such a direct write each time.
TEST(PeerTransportTest, DirectWritesThatOnlyPartlyFitKeepFramesWholeAndInOrder) {
  IoThread t;
  std::unique_ptr<Node> a, b;
  ASSERT_NO_FATAL_FAILURE(StartBigQueuePair(t.io(), &a, &b, "warmup"));
  size_t before = b->inbox.Count(1);
  uint64_t sent_before = a->transport.stats().sent;
  std::vector<std::string> sent;
  std::mt19937 rng(7);
  for (int burst = 0; burst < 6; burst++) {
    for (int i = 0; i < 5; i++) {
      // Far larger than a loopback socket buffer, then small ones behind it.
      std::string big(std::uniform_int_distribution<size_t>(1 << 20, 6 << 20)(rng), '\0');
      for (size_t k = 0; k < big.size(); k += 4096) big[k] = static_cast<char>(rng());
      big[0] = static_cast<char>(burst);
      sent.push_back(big);
      ASSERT_TRUE(a->transport.Send(2, big));
      for (int j = 0; j < 3; j++) {
        sent.push_back("small-" + std::to_string(burst) + "-" + std::to_string(i) + "-" +
                       std::to_string(j));
        ASSERT_TRUE(a->transport.Send(2, sent.back()));
      }
    }
    size_t want = before + sent.size();
    ASSERT_TRUE(WaitFor([&] { return b->inbox.Count(1) >= want; }))
        << "burst " << burst << ": " << b->inbox.Count(1) - before << " of " << sent.size();
  }
  auto got = b->inbox.From(1);
  ASSERT_EQ(got.size(), before + sent.size());
  for (size_t i = 0; i < sent.size(); i++) {
    ASSERT_TRUE(got[before + i] == sent[i])
        << "message " << i << " differs (" << got[before + i].size() << " bytes, sent "
        << sent[i].size() << ")";
  }
  // Each message counted once, whether written whole here or finished by
  // the writer.
  EXPECT_EQ(a->transport.stats().sent, sent_before + sent.size());
  EXPECT_EQ(a->transport.stats().dropped, 0u);
  EXPECT_EQ(b->transport.stats().protocol_errors, 0u);
  EXPECT_EQ(a->transport.stats().reconnects, 0u);
}

TEST(PeerTransportTest, GarbageOnThePortIsRefusedAndPortKeepsServing) {
  IoThread t;
  auto a = StartNode(t.io(), Options(1));
  auto b = StartNode(t.io(), Options(2));
  std::mt19937 rng(12345);
  std::string garbage(1 << 20, '\0');
  for (auto& c : garbage) c = static_cast<char>(rng());
  {
    RawClient raw(b->transport.port());
    raw.WriteIgnoringErrors(garbage);
    EXPECT_TRUE(raw.ReadUntilClosed());
  }
  {
    // A header announcing a 4 GB frame: refused without allocating it.
    RawClient raw(b->transport.port());
    raw.WriteIgnoringErrors(std::string("\xf0\xff\xff\xff\0\0\0\0\x10", 9));
    EXPECT_TRUE(raw.ReadUntilClosed());
  }
  {
    // A plausible but tiny first frame with a wrong checksum.
    RawClient raw(b->transport.port());
    raw.WriteIgnoringErrors(
        std::string("\x03\0\0\0\x12\x34\x56\x78\x10"
                    "abc",
                    12));
    EXPECT_TRUE(raw.ReadUntilClosed());
  }
  {
    // Connect and say nothing, then leave: no effect on others.
    RawClient raw(b->transport.port());
  }
  EXPECT_GE(b->transport.stats().auth_failures, 3u);
  EXPECT_EQ(b->inbox.Total(), 0u);

  Connect(*a, *b);
  for (int i = 0; i < 100; i++) a->transport.Send(2, Msg(1, 2, i));
  ASSERT_TRUE(WaitFor([&] { return b->inbox.Count(1) == 100; }));
  ExpectInOrder(*b, 1, 100);
}

// A frame as the transport encodes it: [u32 len][u32 crc32(kind+payload)]
// [u8 kind][payload], little-endian.
std::string EncodeFrame(uint8_t kind, const std::string& payload) {
  uLong crc = crc32_z(0, &kind, 1);
  crc = crc32_z(crc, reinterpret_cast<const Bytef*>(payload.data()), payload.size());
  std::string out;
  auto put32 = [&](uint32_t v) {
    for (int i = 0; i < 4; i++) out.push_back(static_cast<char>(v >> (8 * i)));
  };
  put32(static_cast<uint32_t>(payload.size()));
  put32(static_cast<uint32_t>(crc));
  out.push_back(static_cast<char>(kind));
  return out + payload;
}

TEST(PeerTransportTest, WrongProtocolVersionIsRefusedWithAReason) {
  IoThread t;
  auto b = StartNode(t.io(), Options(2));
  std::string hello = "FLINPEER";
  auto put = [&](uint64_t v, int bytes) {
    for (int i = 0; i < bytes; i++) hello.push_back(static_cast<char>(v >> (8 * i)));
  };
  put(99, 4);  // version
  put(42, 8);  // cluster id (right)
  put(7, 8);   // dialer id
  put(2, 8);   // expected listener id
  put(0, 1);   // channel
  hello.append(32, 'n');
  RawClient raw(b->transport.port());
  raw.WriteIgnoringErrors(EncodeFrame(16, hello));
  std::string reply = raw.ReadAll();
  ASSERT_GE(reply.size(), 9u);
  EXPECT_EQ(static_cast<uint8_t>(reply[8]), 20) << "expected a REJECT frame";
  EXPECT_NE(reply.find("protocol version mismatch"), std::string::npos) << reply.substr(9);
  ASSERT_TRUE(WaitFor([&] { return b->transport.stats().auth_failures == 1; }));
}

TEST(PeerTransportTest, SilentConnectionIsClosedAfterHandshakeTimeout) {
  IoThread t;
  auto opts = Options(2);
  opts.handshake_timeout = std::chrono::milliseconds(200);
  auto b = StartNode(t.io(), opts);
  RawClient raw(b->transport.port());
  // Half a HELLO, then nothing.
  raw.WriteIgnoringErrors(std::string("\x45\0\0\0", 4));
  auto start = Clock::now();
  EXPECT_TRUE(raw.ReadUntilClosed());
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(10));
  ASSERT_TRUE(WaitFor([&] { return b->transport.stats().auth_failures == 1; }));
}

TEST(PeerTransportTest, FrameLargerThanMaxFrameBytesIsRefused) {
  IoThread t;
  auto big = Options(1);
  big.max_frame_bytes = 8 << 20;
  auto a = StartNode(t.io(), big);
  auto small = Options(2);
  small.max_frame_bytes = 1 << 20;
  auto b = StartNode(t.io(), small);
  Connect(*a, *b);
  ASSERT_TRUE(ProbeUntilDelivered(*a, *b, "before"));
  const size_t before = b->inbox.Count(1);

  ASSERT_TRUE(a->transport.Send(2, std::string(2 << 20, 'L')));
  ASSERT_TRUE(WaitFor([&] { return b->transport.stats().protocol_errors >= 1; }));
  // The connection was closed; the sender reconnects and later messages flow.
  ASSERT_TRUE(ProbeUntilDelivered(*a, *b, "after"));
  for (const auto& p : b->inbox.From(1)) EXPECT_LE(p.size(), 1u << 20);
  EXPECT_GT(b->inbox.Count(1), before);
  EXPECT_GE(a->transport.stats().reconnects, 1u);
}

// Forwards one connection between a dialer and a listener, recording what
// the dialer sent, so the test can replay it.
class RecordingProxy {
 public:
  explicit RecordingProxy(uint16_t target)
      : acceptor_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
        target_(target),
        thread_([this] { Run(); }) {}
  ~RecordingProxy() {
    std::error_code ignored;
    stop_ = true;
    acceptor_.close(ignored);
    thread_.join();
  }
  uint16_t port() const { return acceptor_.local_endpoint().port(); }
  std::string Recorded() {
    std::lock_guard<std::mutex> lock(mu_);
    return recorded_;
  }

 private:
  void Run() {
    std::error_code ec;
    tcp::socket in(io_);
    acceptor_.accept(in, ec);
    if (ec) return;
    tcp::socket out(io_);
    out.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), target_), ec);
    if (ec) return;
    std::thread back([&] {
      char buf[4096];
      std::error_code e;
      for (;;) {
        size_t n = out.read_some(asio::buffer(buf), e);
        if (e || asio::write(in, asio::buffer(buf, n), e) == 0 || e) break;
      }
      in.shutdown(tcp::socket::shutdown_both, e);
    });
    char buf[4096];
    for (;;) {
      size_t n = in.read_some(asio::buffer(buf), ec);
      if (ec) break;
      {
        std::lock_guard<std::mutex> lock(mu_);
        recorded_.append(buf, n);
      }
      asio::write(out, asio::buffer(buf, n), ec);
      if (ec) break;
    }
    out.shutdown(tcp::socket::shutdown_both, ec);
    back.join();
  }

  asio::io_context io_;
  tcp::acceptor acceptor_;
  uint16_t target_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::string recorded_;
  std::thread thread_;
};

TEST(PeerTransportTest, RecordedHandshakeCannotBeReplayed) {
  IoThread t;
  auto b = StartNode(t.io(), Options(2));
  auto a = StartNode(t.io(), Options(1));
  RecordingProxy proxy(b->transport.port());
  a->transport.SetPeer(2, "127.0.0.1:" + std::to_string(proxy.port()));
  for (int i = 0; i < 10; i++) a->transport.Send(2, Msg(1, 2, i));
  ASSERT_TRUE(WaitFor([&] { return b->inbox.Count(1) == 10; }));
  const std::string recording = proxy.Recorded();
  const uint64_t failures_before = b->transport.stats().auth_failures;
  a->transport.Stop();  // the real node is gone; only the recording remains

  // Hello, the old AUTH and the message frames, all at once: the listener's
  // fresh nonce makes the old AUTH worthless.
  RawClient raw(b->transport.port());
  raw.WriteIgnoringErrors(recording);
  EXPECT_TRUE(raw.ReadUntilClosed());
  ASSERT_TRUE(WaitFor([&] { return b->transport.stats().auth_failures > failures_before; }));
  EXPECT_EQ(b->inbox.Count(1), 10u);
}

TEST(PeerTransportTest, RemovePeerStopsTrafficAndSetPeerMovesIt) {
  IoThread t;
  auto a = StartNode(t.io(), Options(1));
  auto b = StartNode(t.io(), Options(2));
  auto b_new = StartNode(t.io(), Options(2));  // node 2 "moved" to a new address
  a->transport.SetPeer(2, b->Addr());
  ASSERT_TRUE(ProbeUntilDelivered(*a, *b, "old"));
  a->transport.SetPeer(2, b_new->Addr());
  ASSERT_TRUE(ProbeUntilDelivered(*a, *b_new, "new"));
  a->transport.RemovePeer(2);
  EXPECT_FALSE(a->transport.Send(2, "gone"));
}

TEST(PeerTransportTest, StopIsIdempotentAndNoHandlerRunsAfterIt) {
  IoThread t;
  auto a = StartNode(t.io(), Options(1));
  std::atomic<bool> stopped{false};
  std::atomic<int> after_stop{0};
  PeerTransport b(t.io(), Options(2), [&](uint64_t, std::string_view) {
    if (stopped) after_stop++;
  });
  ASSERT_TRUE(b.Start().ok());
  a->transport.SetPeer(2, "127.0.0.1:" + std::to_string(b.port()));
  for (int i = 0; i < 2000; i++) a->transport.Send(2, Msg(1, 2, i));
  b.Stop();
  stopped = true;
  b.Stop();
  for (int i = 0; i < 100; i++) a->transport.Send(2, "late");
  EXPECT_FALSE(b.Send(1, "from a stopped transport"));
  // Give the sender time to notice, without asserting on timing.
  WaitFor([&] { return a->transport.stats().reconnects > 0; }, std::chrono::milliseconds(300));
  EXPECT_EQ(after_stop.load(), 0);
}

TEST(PeerTransportTest, DestroyWithoutRunningIoDoesNotHang) {
  // A daemon may fail at startup before it ever runs its io thread.
  asio::io_context io;
  { PeerTransport never_started(io, Options(1), nullptr); }
  {
    PeerTransport started(io, Options(2), nullptr);
    ASSERT_TRUE(started.Start().ok());
    started.SetPeer(3, "127.0.0.1:1");
    io.stop();  // what the daemon does on shutdown before destroying it
  }
}

}  // namespace
}  // namespace flin::net
