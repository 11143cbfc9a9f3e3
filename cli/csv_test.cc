#include "cli/csv.h"

#include <gtest/gtest.h>

#include <random>

namespace flin::cli {
namespace {

using Records = std::vector<std::vector<std::string>>;

Result<Records> ReadAll(std::string data, char delim = ',') {
  auto in = ByteReader::FromString(std::move(data));
  CsvReader csv(in.get(), CsvOptions{delim});
  Records out;
  std::vector<std::string> fields;
  for (;;) {
    auto more = csv.Next(&fields);
    if (!more.ok()) return more.status();
    if (!more.value()) return out;
    out.push_back(fields);
  }
}

TEST(CsvReader, PlainRecords) {
  auto r = ReadAll("a,b,c\n1,2,3\n");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r.value(), (Records{{"a", "b", "c"}, {"1", "2", "3"}}));
}

TEST(CsvReader, LastRecordWithoutNewline) {
  auto r = ReadAll("a,b\n1,2");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value(), (Records{{"a", "b"}, {"1", "2"}}));
}

TEST(CsvReader, QuotesCommasNewlinesInsideQuotes) {
  auto r = ReadAll("k,v\n\"a,b\",\"line1\nline2\"\n\"say \"\"hi\"\"\",\"\"\n");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r.value(), (Records{{"k", "v"}, {"a,b", "line1\nline2"}, {"say \"hi\"", ""}}));
}

TEST(CsvReader, CrlfLineEndsAndCrlfInsideQuotes) {
  auto r = ReadAll("k,v\r\n1,\"x\r\ny\"\r\n2,z\r\n");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r.value(), (Records{{"k", "v"}, {"1", "x\r\ny"}, {"2", "z"}}));
}

TEST(CsvReader, BomIsSkipped) {
  auto r = ReadAll("\xEF\xBB\xBFkey,value\nk,v\n");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value(), (Records{{"key", "value"}, {"k", "v"}}));
}

TEST(CsvReader, BlankLinesAreSkippedButEmptyFieldsKept) {
  auto r = ReadAll("a,b\n\n\r\n,\n\"\"\n");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value(), (Records{{"a", "b"}, {"", ""}, {""}}));
}

TEST(CsvReader, EmptyInput) {
  auto r = ReadAll("");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r.value().empty());
}

TEST(CsvReader, BinaryBytesAndNulInsideQuotes) {
  std::string data = "k,v\nbin,\"";
  data += std::string("\0\xff\xfe,\n", 5);
  data += "\"\n";
  auto r = ReadAll(data);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r.value().size(), 2u);
  EXPECT_EQ(r.value()[1][1], std::string("\0\xff\xfe,\n", 5));
}

TEST(CsvReader, TruncatedQuotedFieldPointsAtTheOpeningQuote) {
  auto r = ReadAll("key,value\nok,1\nbad,\"never closed\nmore text\n");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(r.status().message().rfind("3:5: unterminated quoted field", 0), 0u)
      << r.status().message();
}

TEST(CsvReader, GarbageAfterClosingQuote) {
  auto r = ReadAll("k,v\n\"ab\"c,1\n");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message().rfind("2:5: unexpected character 'c'", 0), 0u)
      << r.status().message();
}

TEST(CsvReader, ColumnsCountCharactersNotBytes) {
  // "é" is two bytes but one column.
  auto r = ReadAll("k,v\n\xC3\xA9,\"x\n");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message().rfind("2:3:", 0), 0u) << r.status().message();
}

TEST(CsvReader, FieldPositions) {
  auto in = ByteReader::FromString("a,b\nxx,\"y\ny\",z\n");
  CsvReader csv(in.get(), CsvOptions{});
  std::vector<std::string> f;
  ASSERT_TRUE(csv.Next(&f).value());
  ASSERT_TRUE(csv.Next(&f).value());
  EXPECT_EQ(csv.record_pos().line, 2u);
  ASSERT_EQ(csv.field_pos().size(), 3u);
  EXPECT_EQ(csv.field_pos()[1].column, 4u);
  EXPECT_EQ(csv.field_pos()[2].line, 3u);
  EXPECT_EQ(csv.field_pos()[2].column, 4u);
}

TEST(CsvReader, TabDelimited) {
  auto r = ReadAll("k\tv\na,b\t\"c\td\"\n", '\t');
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value(), (Records{{"k", "v"}, {"a,b", "c\td"}}));
}

TEST(CsvWriter, RoundTripsRandomBytes) {
  std::mt19937 rng(42);
  Records records;
  std::string text;
  for (int i = 0; i < 300; ++i) {
    std::vector<std::string> rec;
    int nf = 1 + static_cast<int>(rng() % 4);
    for (int j = 0; j < nf; ++j) {
      std::string f;
      int len = static_cast<int>(rng() % 12);
      const char alphabet[] = {'a', ',', '"', '\n', '\r', '\0', '\xff', ' ', '\t'};
      for (int k = 0; k < len; ++k) f.push_back(alphabet[rng() % sizeof alphabet]);
      rec.push_back(f);
    }
    for (size_t j = 0; j < rec.size(); ++j) {
      if (j) text.push_back(',');
      AppendCsvField(&text, rec[j], ',', rec.size() == 1);
    }
    text.push_back('\n');
    records.push_back(rec);
  }
  auto r = ReadAll(text);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r.value(), records);
}

TEST(ByteReader, ReadLineStripsCrlfAndTracksLines) {
  auto in = ByteReader::FromString("one\r\ntwo\nthree");
  std::string line;
  ASSERT_TRUE(in->ReadLine(&line));
  EXPECT_EQ(line, "one");
  ASSERT_TRUE(in->ReadLine(&line));
  EXPECT_EQ(line, "two");
  ASSERT_TRUE(in->ReadLine(&line));
  EXPECT_EQ(line, "three");
  EXPECT_FALSE(in->ReadLine(&line));
}

TEST(ByteReader, MissingFileIsAnError) {
  auto r = ByteReader::Open("/nonexistent/dir/file.csv");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("/nonexistent/dir/file.csv"), std::string::npos);
}

}  // namespace
}  // namespace flin::cli
