// Unit tests for the import row readers (JSON, JSONL, CSV/TSV) and the
// helpers they share with export. No sockets: round trips against a real
// flind are in tests/cli/import_roundtrip_test.cc.
#include "cli/import_export.h"

#include <gtest/gtest.h>

namespace flin::cli {
namespace {

struct Collected {
  std::vector<ImportRow> rows;
  std::vector<std::string> bad;  // "LINE:COL: what"
  std::vector<std::string> raw;
};

class CollectSink : public RowSink {
 public:
  explicit CollectSink(bool skip_bad) : skip_bad_(skip_bad) {}
  bool OnRow(ImportRow& row) override {
    c.rows.push_back(row);
    return true;
  }
  bool OnBadRow(const Status& error, std::string_view raw) override {
    c.bad.push_back(error.message());
    c.raw.emplace_back(raw);
    return skip_bad_;
  }
  Collected c;

 private:
  bool skip_bad_;
};

Result<Collected> Read(std::string data, Format format, bool skip_bad = false,
                       ColumnOptions cols = {}) {
  auto in = ByteReader::FromString(std::move(data));
  CollectSink sink(skip_bad);
  Status st = ReadRows(in.get(), format, cols, &sink);
  if (!st.ok()) return st;
  return sink.c;
}

TEST(JsonRows, ArrayOfRowObjects) {
  auto r = Read(R"([
  {"key": "a", "value": "1"},
  {"key": "b", "value": {"x": [1, 2.50, true, null]}, "ttl": 1.5},
  {"key": "c", "value": 42, "expire_at": 1900000000000},
  {"key": {"base64": "AP8="}, "value": {"base64": "aGk="}}
])",
                Format::kJson);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->rows.size(), 4u);
  EXPECT_EQ(r->rows[0].key, "a");
  EXPECT_EQ(r->rows[0].value, "1");
  EXPECT_EQ(r->rows[0].pos.line, 2u);
  EXPECT_EQ(r->rows[0].pos.column, 3u);
  EXPECT_EQ(r->rows[1].value, R"({"x":[1,2.5,true,null]})");
  EXPECT_EQ(r->rows[1].ttl_ms, 1500);
  EXPECT_EQ(r->rows[2].value, "42");
  EXPECT_EQ(r->rows[2].expire_at_ms, 1900000000000);
  EXPECT_EQ(r->rows[3].key, std::string("\0\xff", 2));
  EXPECT_EQ(r->rows[3].value, "hi");
}

TEST(JsonRows, ObjectOfKeyValues) {
  auto r =
      Read("\xEF\xBB\xBF{\"a\": \"x\", \"b\": [1,2], \"c\": 2.0, \"a\": \"dup\"}", Format::kJson);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->rows.size(), 4u);  // duplicates are rows too: the last one wins when written
  EXPECT_EQ(r->rows[1].value, "[1,2]");
  EXPECT_EQ(r->rows[2].value, "2.0");  // numbers keep their text
  EXPECT_EQ(r->rows[3].key, "a");
  EXPECT_EQ(r->rows[3].value, "dup");
}

TEST(JsonRows, FloatTextIsKeptAsWritten) {
  auto r = Read(R"([{"key":"k","value":1.10e3}])", Format::kJson);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->rows[0].value, "1.10e3");
}

TEST(JsonRows, EmptyFileAndEmptyArray) {
  auto r = Read("", Format::kJson);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->rows.empty());
  r = Read("  [ ]\n", Format::kJson);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->rows.empty());
}

TEST(JsonRows, TruncatedDocumentReportsLineAndColumn) {
  auto r =
      Read("[\n  {\"key\": \"a\", \"value\": \"1\"},\n  {\"key\": \"b\", \"val", Format::kJson);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message().rfind("3:", 0), 0u) << r.status().message();
  EXPECT_NE(r.status().message().find("syntax error"), std::string::npos);
}

TEST(JsonRows, SyntaxErrorPosition) {
  auto r = Read("[\n {\"key\": \"a\", \"value\": tru}\n]", Format::kJson);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message().rfind("2:", 0), 0u) << r.status().message();
}

TEST(JsonRows, MissingValueIsABadRowAtItsPosition) {
  auto r = Read("[\n {\"key\": \"a\", \"value\": \"1\"},\n   {\"key\": \"b\"}\n]", Format::kJson);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "3:4: the row has no \"value\"");
}

TEST(JsonRows, BadRowsCanBeSkipped) {
  auto r = Read(R"([{"key":"a","value":"1","tll":3},{"key":"b","value":"2","ttl":-1},
{"key":"c","value":{"base64":"!!"}},{"key":"d","value":"ok"}])",
                Format::kJson, /*skip_bad=*/true);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->rows.size(), 1u);
  EXPECT_EQ(r->rows[0].key, "d");
  ASSERT_EQ(r->bad.size(), 3u);
  EXPECT_NE(r->bad[0].find("unknown field \"tll\""), std::string::npos);
  EXPECT_NE(r->bad[1].find("\"ttl\" must be a positive number"), std::string::npos);
  EXPECT_NE(r->bad[2].find("base64"), std::string::npos);
}

TEST(JsonRows, TopLevelScalarIsAnError) {
  auto r = Read("\"just a string\"", Format::kJson);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("expected a JSON array"), std::string::npos);
}

TEST(JsonRows, ArrayOfNonObjects) {
  auto r = Read("[\n  1]", Format::kJson);
  ASSERT_FALSE(r.ok());
  // The lexer reads one character past a number, so the column is approximate.
  EXPECT_EQ(r.status().message().rfind("2:", 0), 0u) << r.status().message();
  EXPECT_NE(r.status().message().find("expected a row object"), std::string::npos);
}

TEST(JsonlRows, OneRowPerLine) {
  auto r = Read("{\"key\":\"a\",\"value\":\"x\\u0000y\"}\r\n\n{\"key\":\"b\",\"value\":[1]}\n",
                Format::kJsonl);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->rows.size(), 2u);
  EXPECT_EQ(r->rows[0].value, std::string("x\0y", 3));
  EXPECT_EQ(r->rows[1].value, "[1]");
  EXPECT_EQ(r->rows[1].pos.line, 3u);
}

TEST(JsonlRows, EscapesSurrogatesAndFieldOrder) {
  // Flat lines take a hand-written fast path; these must read exactly as a
  // full JSON parser reads them.
  auto r = Read(
      "{\"key\":\"a\\ud83d\\ude00\\u00e9\",\"value\":\"x\\n\\\"y\\\\\\/\\t\",\"ttl\":5}\n"
      " { \"value\" : \"v\" , \"expire_at\" : 0 , \"key\" : \"k\" } \n"
      "{\"key\":\"t\",\"value\":\"1\",\"ttl\":0.5}\n"
      "{\"key\":\"d\",\"value\":\"1\",\"key\":\"d2\"}\n",
      Format::kJsonl);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->rows.size(), 4u);
  EXPECT_EQ(r->rows[0].key, "a\xF0\x9F\x98\x80\xC3\xA9");
  EXPECT_EQ(r->rows[0].value, "x\n\"y\\/\t");
  EXPECT_EQ(r->rows[0].ttl_ms, 5000);
  EXPECT_EQ(r->rows[1].key, "k");
  EXPECT_EQ(r->rows[1].value, "v");
  EXPECT_EQ(r->rows[1].expire_at_ms, 0);
  EXPECT_EQ(r->rows[2].ttl_ms, 500);
  EXPECT_EQ(r->rows[3].key, "d2");  // a repeated field: the last one counts
  EXPECT_EQ(r->rows[3].pos.line, 4u);
}

TEST(JsonlRows, FastPathLeavesErrorsToTheParser) {
  for (const char* line :
       {"{\"key\":\"a\",\"value\":\"1\",\"ttl\":-1}", "{\"key\":\"a\",\"value\":\"\\ud800\"}",
        "{\"key\":\"a\",\"value\":\"1\"} trailing", "{\"key\":\"a\",\"value\":\"1\",\"ttl\":01}",
        "{\"key\":\"a\",\"value\":\"1\",\"ttl\":1,\"expire_at\":2}", "{\"key\":\"a\"}"}) {
    auto r = Read(std::string(line) + "\n", Format::kJsonl);
    EXPECT_FALSE(r.ok()) << line;
    if (!r.ok()) {
      EXPECT_EQ(r.status().message().rfind("1:", 0), 0u) << r.status().message();
    }
  }
}

TEST(JsonlRows, BadLineReportsItsLineNumber) {
  auto r = Read("{\"key\":\"a\",\"value\":\"1\"}\n{\"key\":\"b\",\"value\":}\n", Format::kJsonl);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message().rfind("2:", 0), 0u) << r.status().message();
  EXPECT_NE(r.status().message().find("syntax error"), std::string::npos);
}

TEST(JsonlRows, BadLinesCanBeRejectedWithTheirText) {
  auto r = Read("{\"key\":\"a\",\"value\":\"1\"}\nnot json\n[1]\n{\"key\":\"b\",\"value\":\"2\"}\n",
                Format::kJsonl, /*skip_bad=*/true);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->rows.size(), 2u);
  ASSERT_EQ(r->bad.size(), 2u);
  EXPECT_EQ(r->raw[0], "not json");
  EXPECT_EQ(r->bad[0].rfind("2:", 0), 0u);
  EXPECT_EQ(r->raw[1], "[1]");
  EXPECT_EQ(r->bad[1].rfind("3:", 0), 0u);
}

TEST(JsonlRows, InvalidUtf8IsABadRow) {
  auto r = Read("{\"key\":\"a\",\"value\":\"\xff\"}\n", Format::kJsonl);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message().rfind("1:", 0), 0u) << r.status().message();
}

TEST(CsvRows, DefaultColumns) {
  auto r =
      Read("key,value,ttl,expire_at\na,1,,\nb,\"2,3\",10,\nc,x,,1900000000000\n", Format::kCsv);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->rows.size(), 3u);
  EXPECT_EQ(r->rows[1].value, "2,3");
  EXPECT_EQ(r->rows[1].ttl_ms, 10000);
  EXPECT_EQ(r->rows[2].expire_at_ms, 1900000000000);
}

TEST(CsvRows, NamedColumnsAndWholeRowAsJson) {
  ColumnOptions cols;
  cols.key_col = "id";
  auto r = Read("id,name,note\n7,Ann,\"said \"\"hi\"\"\"\n", Format::kCsv, false, cols);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->rows.size(), 1u);
  EXPECT_EQ(r->rows[0].key, "7");
  EXPECT_EQ(r->rows[0].value, R"({"id":"7","name":"Ann","note":"said \"hi\""})");
  cols.value_col = "2";
  r = Read("id,name\n7,Ann\n", Format::kCsv, false, cols);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->rows[0].value, "Ann");
}

TEST(CsvRows, UnknownColumnIsAnErrorNamingTheColumns) {
  ColumnOptions cols;
  cols.value_col = "nope";
  auto r = Read("k,v\na,b\n", Format::kCsv, false, cols);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "1:1: no value column \"nope\" in the header (columns: k, v)");
}

TEST(CsvRows, WrongFieldCountAndBadTtl) {
  auto r = Read("key,value,ttl\na,1\n", Format::kCsv);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "2:1: expected 3 fields (as in the header), found 2");
  r = Read("key,value,ttl\na,1,soon\n", Format::kCsv);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "2:5: ttl \"soon\" is not a positive number of seconds");
  r = Read("key,value,ttl\na,1\nb,2,x\nc,3,4\n", Format::kCsv, /*skip_bad=*/true);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->rows.size(), 1u);
  EXPECT_EQ(r->raw[0], "a,1");
  EXPECT_EQ(r->raw[1], "b,2,x");
}

TEST(CsvRows, TsvAndBom) {
  auto r = Read("\xEF\xBB\xBFkey\tvalue\r\na\tx y\r\n", Format::kTsv);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->rows.size(), 1u);
  EXPECT_EQ(r->rows[0].key, "a");
  EXPECT_EQ(r->rows[0].value, "x y");
}

TEST(CsvRows, HeaderOnlyAndEmpty) {
  auto r = Read("key,value\n", Format::kCsv);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->rows.empty());
  r = Read("", Format::kCsv);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->rows.empty());
}

TEST(Helpers, Base64RoundTrip) {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  for (size_t n = 0; n < 10; ++n) {
    std::string s = all.substr(0, n) + all;
    auto d = Base64Decode(Base64Encode(s));
    ASSERT_TRUE(d.has_value());
    EXPECT_EQ(*d, s);
  }
  EXPECT_EQ(Base64Encode("hi"), "aGk=");
  EXPECT_EQ(*Base64Decode("aGk"), "hi");
  EXPECT_FALSE(Base64Decode("a").has_value());
  EXPECT_FALSE(Base64Decode("a$==").has_value());
}

TEST(Helpers, Utf8Validation) {
  EXPECT_TRUE(IsValidUtf8("plain"));
  EXPECT_TRUE(IsValidUtf8("\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"));
  EXPECT_TRUE(IsValidUtf8(std::string("a\0b", 3)));
  EXPECT_FALSE(IsValidUtf8("\xff"));
  EXPECT_FALSE(IsValidUtf8("\xC0\x80"));      // overlong NUL
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));  // surrogate
  EXPECT_FALSE(IsValidUtf8("\xE2\x82"));      // truncated
}

TEST(Helpers, JsonTextRoundTripsThroughTheReader) {
  std::string values[] = {"plain", std::string("nul\0in", 6), "\xff\xfe", "quote\"back\\slash\n",
                          "\x7f\x01"};
  std::string doc = "[";
  for (size_t i = 0; i < std::size(values); ++i) {
    if (i) doc += ",";
    doc += "{\"key\":";
    AppendJsonText(&doc, "k" + std::to_string(i));
    doc += ",\"value\":";
    AppendJsonText(&doc, values[i]);
    doc += "}";
  }
  doc += "]";
  auto r = Read(doc, Format::kJson);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->rows.size(), std::size(values));
  for (size_t i = 0; i < std::size(values); ++i) EXPECT_EQ(r->rows[i].value, values[i]);
}

TEST(Helpers, FormatFromPath) {
  EXPECT_EQ(FormatFromPath("a/b.JSON"), Format::kJson);
  EXPECT_EQ(FormatFromPath("x.ndjson"), Format::kJsonl);
  EXPECT_EQ(FormatFromPath("x.tsv"), Format::kTsv);
  EXPECT_FALSE(FormatFromPath("x.txt").has_value());
  EXPECT_FALSE(FormatFromPath("-").has_value());
}

}  // namespace
}  // namespace flin::cli
