// TcpProxy: an in-process TCP proxy for fault-injection tests.
//
// A test puts a Link between a client and a server it wants to partition
// (e.g. between two flind peers): the client dials the link's port, the link
// dials the target and copies bytes both ways. The test can then cut the
// link (both directions: open connections are closed and new ones are
// accepted and closed at once, so the dialer sees its connection die), cut
// one direction only (bytes that way are read and swallowed, the connection
// stays open: a one-way packet loss that TCP cannot notice), and heal it.
// Counters say what went through and what was dropped, so a test can wait
// for "the proxy swallowed N bytes" instead of sleeping.
//
// Tags. When many dialers share one link (every peer dials node j at the
// same address), a tagger can tell them apart: it sees the first bytes each
// dialer sends (e.g. a handshake naming the dialer) and returns a tag; the
// *Tag controls then act on that dialer's connections only. Those first
// bytes are held back until the tag is known, so a connection whose tag is
// cut never reaches the target.
//
// Everything listens and dials on 127.0.0.1.
//
// Threading. One TcpProxy owns one asio io_context run by its own thread; all
// its links live on that thread. Every public method is thread-safe. Cut,
// CutOneWay and Heal return after the io thread has applied them: once Cut()
// returns, no connection of the link is open any more. The TcpProxy must
// outlive its Links (they are owned by it; the pointers stay valid until the
// TcpProxy is destroyed).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string_view>
#include <thread>
#include <vector>

#include "base/status.h"

namespace flin::test {

class TcpProxy {
 public:
  enum class Direction {
    kToTarget,    // bytes the dialer sends to the target
    kFromTarget,  // bytes the target sends back
  };

  struct Stats {
    uint64_t accepted = 0;  // connections forwarded (accepted while not cut)
    uint64_t refused = 0;   // connections accepted and closed at once while cut
    uint64_t open = 0;      // connections open now
    uint64_t bytes_to_target = 0;
    uint64_t bytes_from_target = 0;
    uint64_t dropped_to_target = 0;  // bytes swallowed by CutOneWay(kToTarget)
    uint64_t dropped_from_target = 0;
  };

  using Tag = uint64_t;  // 0: untagged
  // Returns the tag for a connection whose dialer sent `prefix` first.
  using Tagger = std::function<Tag(std::string_view prefix)>;

  class Link {
   public:
    virtual ~Link() = default;
    // The port dialers connect to (127.0.0.1).
    virtual uint16_t port() const = 0;
    virtual uint16_t target_port() const = 0;
    // Closes every open connection and refuses new ones until Heal().
    virtual void Cut() = 0;
    // Swallows bytes travelling in `direction` (existing and new connections
    // alike) until Heal(); connections stay open. Cumulative: cutting both
    // directions this way blackholes the link without closing anything.
    virtual void CutOneWay(Direction direction) = 0;
    // Undoes Cut and CutOneWay. Bytes swallowed meanwhile stay lost.
    virtual void Heal() = 0;
    virtual Stats stats() const = 0;

    // Call before any connection arrives. Each connection first reads at
    // least `prefix_bytes` from the dialer (or until it closes), then asks
    // the tagger.
    virtual void SetTagger(size_t prefix_bytes, Tagger tagger) = 0;
    // Like Cut/CutOneWay, for the connections tagged `tag` only.
    virtual void CutTag(Tag tag) = 0;
    virtual void CutTagOneWay(Tag tag, Direction direction) = 0;
    // Undoes CutTag/CutTagOneWay for `tag` (Heal() undoes them for all tags).
    virtual void HealTag(Tag tag) = 0;
    // Closes every open connection (they may reconnect at once, unless cut).
    virtual void Reset() = 0;
  };

  TcpProxy();
  ~TcpProxy();  // closes all links and joins the io thread
  TcpProxy(const TcpProxy&) = delete;
  TcpProxy& operator=(const TcpProxy&) = delete;

  // A new link listening on 127.0.0.1:listen_port (0: a free port; see
  // Link::port()) forwarding to 127.0.0.1:target_port. The target need not
  // be listening yet: each accepted connection dials it afresh, and a failed
  // dial just closes the accepted connection. Errors: the listen port cannot
  // be bound.
  Result<Link*> AddLink(uint16_t target_port, uint16_t listen_port = 0);

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace flin::test
