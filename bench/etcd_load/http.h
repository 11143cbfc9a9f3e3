// The small, socket-free part of etcd_load: base64 (etcd's JSON gateway
// carries keys and values as base64 byte strings), the request bodies for
// /v3/kv/put and /v3/kv/txn, and an HTTP/1.1 response parser for keep-alive
// connections. Kept apart from the asio driver so it can be unit tested.
// Pure functions; no shared state.
#ifndef FLIN_BENCH_ETCD_LOAD_HTTP_H_
#define FLIN_BENCH_ETCD_LOAD_HTTP_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"

namespace flin::bench {

// Standard base64 (RFC 4648 section 4) with '=' padding, as Go's
// encoding/json expects for []byte fields.
std::string Base64Encode(std::string_view data);

// JSON body of a PutRequest: {"key":"<b64>","value":"<b64>"}. value_b64 is
// already encoded so a run encodes its one value once.
std::string PutBody(std::string_view key, std::string_view value_b64);

// JSON body of a TxnRequest with no compares whose success branch puts every
// key with the same value: one Raft entry in etcd, like one MSET in Flin.
std::string TxnPutBody(const std::vector<std::string>& keys, std::string_view value_b64);

// The whole request: POST path, Host, Content-Type, Content-Length, body.
std::string HttpPost(std::string_view host_port, std::string_view path, std::string_view body);

struct HttpResponse {
  int status = 0;
  std::string body;
  bool keep_alive = true;  // false when the server said Connection: close
};

// Parses one response from the front of `buf`. Returns the bytes consumed,
// 0 when `buf` does not yet hold a whole response (read more and call again),
// or a Protocol error for a malformed one (the connection is then unusable).
// Understands Content-Length and chunked bodies; a response that ends at
// connection close is not supported (the gateway never sends one).
Result<size_t> ParseHttpResponse(std::string_view buf, HttpResponse* out);

}  // namespace flin::bench

#endif  // FLIN_BENCH_ETCD_LOAD_HTTP_H_
