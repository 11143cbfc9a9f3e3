// PeerTransport: authenticated node-to-node message transport for Raft.
//
// Carries opaque byte payloads (encoded Raft messages; this file knows
// nothing about their format) between the nodes of one Flin cluster over
// TCP. Each node listens on one port (`--peer-listen`) and dials every peer
// it knows (SetPeer). A dialed connection only carries messages from the
// dialer to the listener, so a pair of nodes uses one connection each way
// per priority; that keeps each connection a simple one-writer pipe.
//
// Wire format. Every frame is
//   [u32 length][u32 crc32][u8 kind][payload: length bytes]
// little-endian, where crc32 (zlib) covers kind and payload. A frame whose
// length exceeds the limit (max_frame_bytes after the handshake, 1 KiB
// during it) closes the connection before anything is allocated, and so does
// a bad checksum or an unknown kind. Bytes from the network are never
// trusted: garbage costs the sender a closed connection and a log line.
//
// Handshake (every connection, before any message is accepted):
//   dialer   -> listener  HELLO     magic "FLINPEER", protocol version,
//                                   cluster id, dialer id, expected listener
//                                   id, channel, 32-byte random nonce_d
//   listener -> dialer    CHALLENGE listener id, 32-byte random nonce_l
//                         (or REJECT "reason" for a wrong version, cluster id
//                         or node id)
//   dialer   -> listener  AUTH      HMAC-SHA256(secret, "dialer" | fields |
//                                   nonce_d | nonce_l)
//   listener -> dialer    ACCEPT    HMAC-SHA256(secret, "listener" | fields |
//                                   nonce_d | nonce_l)   (or REJECT)
// Both sides prove knowledge of the cluster secret over both nonces, so a
// process without the secret can neither join nor inject messages, and a
// recorded handshake cannot be replayed (the other side's nonce is fresh).
// MACs are compared with CRYPTO_memcmp. The dialer sends messages only after
// checking ACCEPT. Frames after the handshake are not individually MAC'd nor
// encrypted: this stops strangers, not an attacker who can rewrite TCP
// streams on the path (use a private network or a tunnel for that).
//
// Delivery. Best effort, like the network Raft is designed for: messages to
// one peer at one priority arrive in the order Send() accepted them, without
// duplicates, but any of them may be lost (queue full, connection broken
// while it was in flight, peer down); Raft retransmits. There is no order
// between kControl and kBulk: they travel on separate connections so a
// multi-megabyte snapshot chunk never delays a heartbeat.
//
// Membership. Inbound connections are accepted from any node id that
// proves the secret, known peer or not (a node asking to join must be able
// to reach the leader); the Raft layer decides what a message from a
// non-member means. Outbound traffic only goes to peers set with SetPeer.
//
// Threading. The transport runs on an asio::io_context owned by the caller,
// which must be run by exactly one thread (flind's io thread). The message
// handler runs on that thread. SetPeer, RemovePeer, Send and stats() are
// thread-safe. Send writes to the connection itself when its writer is idle
// (a non-blocking sendmsg from the caller's thread, so no wake-up of the io
// thread per message); what the socket does not take, the io thread writes.
// Start and Stop may be called from any thread; Stop from a thread other
// than the io thread waits for the io thread to process it, so the
// io_context must be running (or already stopped: io.stop(), or run()
// returned) at that moment, unless neither Start nor SetPeer was called.
#pragma once

#include <asio/io_context.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "base/status.h"

namespace flin::net {

struct PeerTransportOptions {
  uint64_t node_id = 0;     // this node; must be non-zero
  uint64_t cluster_id = 0;  // must be equal on every node of the cluster
  std::string secret;       // shared cluster secret; must not be empty
  // HOST:PORT to listen on ("[v6]:port" for IPv6). Port 0 picks a free port
  // (tests); port() tells which.
  std::string listen = "127.0.0.1:7380";
  // Largest payload accepted in either direction. Send() refuses a bigger
  // payload; a received frame announcing a bigger one closes the connection.
  size_t max_frame_bytes = 16 << 20;
  // Per peer and priority: when a queue holds this many bytes or messages,
  // Send() drops the new message and counts it.
  size_t max_queue_bytes = 64 << 20;
  size_t max_queue_messages = 64 * 1024;
  // Reconnect back-off: doubles from min to max after each failed attempt,
  // each wait drawn uniformly from [backoff/2, backoff] (jitter).
  std::chrono::milliseconds min_backoff{50};
  std::chrono::milliseconds max_backoff{2000};
  // Connect + handshake must finish within this, or the attempt fails.
  std::chrono::milliseconds handshake_timeout{5000};
};

enum class Priority { kControl, kBulk };

struct PeerTransportImpl;

class PeerTransport {
 public:
  // Called on the io thread for every message received from an
  // authenticated peer. `payload` is valid only during the call.
  using Handler = std::function<void(uint64_t from, std::string_view payload)>;

  // Counters since construction. Control and bulk connections count
  // separately (a peer restart usually adds 2 reconnects).
  struct Stats {
    uint64_t sent = 0;      // messages written to a socket
    uint64_t received = 0;  // messages handed to the handler
    // Refused by Send (full queue, unknown peer, too large, stopped), queued
    // for a removed peer, or in a write that failed.
    uint64_t dropped = 0;
    // Connections refused during the handshake, in either role: wrong
    // version, cluster id, node id or secret, a replayed handshake, bytes
    // that are not a handshake, or a handshake timeout.
    uint64_t auth_failures = 0;
    uint64_t reconnects = 0;  // outbound connections re-established
    // Authenticated inbound connections closed for a bad frame (oversized,
    // checksum mismatch, unexpected kind).
    uint64_t protocol_errors = 0;
  };

  // `io` must outlive this object.
  PeerTransport(asio::io_context& io, PeerTransportOptions opts, Handler on_message);
  ~PeerTransport();  // Stop()s
  PeerTransport(const PeerTransport&) = delete;
  PeerTransport& operator=(const PeerTransport&) = delete;

  // Validates the options, binds and listens. Errors: InvalidArgument (bad
  // options or address), IOError naming the address (e.g. already in use).
  // Call once.
  Status Start();
  // The bound port; 0 before a successful Start().
  uint16_t port() const;

  // Adds peer `id` reachable at "HOST:PORT", or changes its address (the
  // current connections are closed and redialed). Queued messages are kept.
  void SetPeer(uint64_t id, std::string addr);
  // Forgets peer `id`: closes its outbound connections, drops its queues.
  // Inbound connections from it stay until it closes them.
  void RemovePeer(uint64_t id);
  // Queues `payload` for peer `to`. Returns false, and counts a drop, when
  // `to` is unknown, the queue is full, the payload is larger than
  // max_frame_bytes, or the transport is stopped.
  bool Send(uint64_t to, std::string payload, Priority p = Priority::kControl);

  // Closes the listener and every connection; no handler call happens after
  // Stop returns. Idempotent; a stopped transport cannot be restarted.
  void Stop();

  Stats stats() const;

 private:
  std::shared_ptr<PeerTransportImpl> impl_;  // shared with in-flight coroutines
};

}  // namespace flin::net
