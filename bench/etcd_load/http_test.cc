// Unit tests for etcd_load's socket-free half: base64, request bodies, and the
// HTTP response parser fed whole, split and malformed responses.
#include "bench/etcd_load/http.h"

#include <gtest/gtest.h>

namespace flin::bench {
namespace {

TEST(Base64Test, Rfc4648Vectors) {  // RFC 4648 section 10
  EXPECT_EQ(Base64Encode(""), "");
  EXPECT_EQ(Base64Encode("f"), "Zg==");
  EXPECT_EQ(Base64Encode("fo"), "Zm8=");
  EXPECT_EQ(Base64Encode("foo"), "Zm9v");
  EXPECT_EQ(Base64Encode("foob"), "Zm9vYg==");
  EXPECT_EQ(Base64Encode("fooba"), "Zm9vYmE=");
  EXPECT_EQ(Base64Encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(Base64Encode(std::string("\xff\x00\xfe", 3)), "/wD+");
}

TEST(BodyTest, PutAndTxnMatchTheGatewayJson) {
  EXPECT_EQ(PutBody("foo", "YmFy"), R"({"key":"Zm9v","value":"YmFy"})");
  EXPECT_EQ(TxnPutBody({"a", "b"}, "eA=="),
            R"({"success":[{"request_put":{"key":"YQ==","value":"eA=="}},)"
            R"({"request_put":{"key":"Yg==","value":"eA=="}}]})");
}

TEST(BodyTest, HttpPostHasLengthAndHost) {
  EXPECT_EQ(HttpPost("h:1", "/v3/kv/put", "{}"),
            "POST /v3/kv/put HTTP/1.1\r\nHost: h:1\r\nContent-Type: application/json\r\n"
            "Content-Length: 2\r\n\r\n{}");
}

constexpr char kOk[] =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n"
    "{\"header\":1}";

TEST(ParseHttpResponseTest, ContentLengthWholeAndSplitAtEveryByte) {
  std::string all = std::string(kOk) + "HTTP/1.1 500";  // start of the next response
  size_t total = sizeof(kOk) - 1;
  for (size_t cut = 0; cut < total; ++cut) {
    HttpResponse r;
    auto n = ParseHttpResponse(std::string_view(all).substr(0, cut), &r);
    ASSERT_TRUE(n.ok()) << cut;
    EXPECT_EQ(*n, 0u) << "complete after only " << cut << " bytes";
  }
  HttpResponse r;
  auto n = ParseHttpResponse(all, &r);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, total);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "{\"header\":1}");
  EXPECT_TRUE(r.keep_alive);
}

TEST(ParseHttpResponseTest, ChunkedWithTrailers) {
  std::string resp =
      "HTTP/1.1 400 Bad Request\r\ntransfer-encoding: Chunked\r\nConnection: close\r\n\r\n"
      "4\r\n{\"er\r\na;ext=1\r\nror\":\"xy\"}\r\n0\r\nX-T: 1\r\n\r\n";
  for (size_t cut = 0; cut < resp.size(); ++cut) {
    HttpResponse r;
    auto n = ParseHttpResponse(std::string_view(resp).substr(0, cut), &r);
    ASSERT_TRUE(n.ok()) << cut;
    EXPECT_EQ(*n, 0u) << cut;
  }
  HttpResponse r;
  auto n = ParseHttpResponse(resp, &r);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, resp.size());
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.body, "{\"error\":\"xy\"}");
  EXPECT_FALSE(r.keep_alive);
}

TEST(ParseHttpResponseTest, MalformedIsAnError) {
  HttpResponse r;
  EXPECT_FALSE(ParseHttpResponse("SMTP 220 hello\r\n\r\n", &r).ok());
  EXPECT_FALSE(ParseHttpResponse("HTTP/1.1 2x0 OK\r\n\r\n", &r).ok());
  EXPECT_FALSE(ParseHttpResponse("HTTP/1.1 200 OK\r\nno colon\r\n\r\n", &r).ok());
  EXPECT_FALSE(ParseHttpResponse("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", &r).ok());
  EXPECT_FALSE(ParseHttpResponse("HTTP/1.1 200 OK\r\n\r\nbody until close", &r).ok());
  EXPECT_FALSE(
      ParseHttpResponse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", &r).ok());
  EXPECT_FALSE(ParseHttpResponse(std::string(70000, 'a'), &r).ok());
}

}  // namespace
}  // namespace flin::bench
