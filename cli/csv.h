// Streaming input for `flin import`: a buffered byte reader over a file or
// stdin (ByteReader) and an RFC 4180 CSV/TSV record reader on top of it
// (CsvReader), plus the matching field writer used by `flin export`.
//
// Memory stays flat whatever the input size: ByteReader holds one fixed
// buffer, CsvReader holds one record. Positions are 1-based lines and
// columns, columns counted in characters (UTF-8 code points; any byte that is
// not a UTF-8 continuation byte counts as one), as editors show them.
//
// Thread-compatible: one thread at a time per object.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace flin::cli {

// A line/column position in an input file.
struct TextPos {
  uint64_t line = 1;
  uint64_t column = 1;
};

// Buffered sequential reader. Open("-") reads stdin. Errors: IOError naming
// the file.
class ByteReader {
 public:
  static Result<std::unique_ptr<ByteReader>> Open(const std::string& path);
  // Reads from memory (tests, JSONL lines).
  static std::unique_ptr<ByteReader> FromString(std::string data);
  ~ByteReader();
  ByteReader(const ByteReader&) = delete;
  ByteReader& operator=(const ByteReader&) = delete;

  // The next byte (0..255) or -1 at end of input or after a read error
  // (status() tells which).
  int Peek() {
    if (pos_ == end_ && !Refill()) return -1;
    return static_cast<unsigned char>(*pos_);
  }
  int Get() {
    if (pos_ == end_ && !Refill()) return -1;
    unsigned char c = static_cast<unsigned char>(*pos_++);
    Advance(c);
    return c;
  }
  // Skips a UTF-8 byte order mark if the input starts with one. Call first.
  void SkipBom();
  // Reads up to and including the next '\n' (or to end of input) into *line,
  // without the '\n' (and without a preceding '\r'). False at end of input.
  bool ReadLine(std::string* line);

  // Position of the next byte to be read.
  TextPos pos() const { return pos_text_; }
  uint64_t bytes_consumed() const { return consumed_base_ + (pos_ - buf_); }
  // Total size when known (regular file), else -1.
  int64_t size() const { return size_; }
  const std::string& name() const { return name_; }
  const Status& status() const { return status_; }

 private:
  ByteReader(std::string name, int fd, int64_t size);
  bool Refill();
  void Advance(unsigned char c) {
    if (c == '\n') {
      ++pos_text_.line;
      pos_text_.column = 1;
    } else if ((c & 0xC0) != 0x80) {
      ++pos_text_.column;
    }
  }

  std::string name_;
  int fd_ = -1;
  bool owns_fd_ = false;
  int64_t size_ = -1;
  std::string storage_;
  char* buf_ = nullptr;
  char* pos_ = nullptr;
  char* end_ = nullptr;
  uint64_t consumed_base_ = 0;  // bytes before buf_
  bool eof_ = false;
  TextPos pos_text_;
  Status status_;
};

struct CsvOptions {
  char delimiter = ',';  // '\t' for TSV
};

// Reads RFC 4180 records: fields separated by the delimiter, records by LF or
// CRLF; a field that starts with '"' is quoted and may contain the delimiter,
// CR, LF and doubled quotes (""). A '"' inside an unquoted field is kept as
// is (lenient, like most producers expect). Blank lines are skipped. A UTF-8
// BOM at the start of the input is skipped.
class CsvReader {
 public:
  CsvReader(ByteReader* in, CsvOptions opts);

  // Reads the next record. Returns false at end of input. Errors
  // (InvalidArgument) carry the position as "LINE:COLUMN: what is wrong";
  // a read error is the reader's IOError. After an error the reader is done.
  Result<bool> Next(std::vector<std::string>* fields);
  // Where the last record and each of its fields started.
  TextPos record_pos() const { return record_pos_; }
  const std::vector<TextPos>& field_pos() const { return field_pos_; }

 private:
  Status ReadRecord(std::vector<std::string>* fields, bool* quoted_first);

  ByteReader* in_;
  CsvOptions opts_;
  bool started_ = false;
  bool done_ = false;
  TextPos record_pos_;
  std::vector<TextPos> field_pos_;
};

// Appends field to *out, quoted when it contains the delimiter, a quote, CR
// or LF (or is empty and the only field, so that the record is not a blank
// line). Any bytes are allowed: CSV is binary-transparent inside quotes.
void AppendCsvField(std::string* out, std::string_view field, char delimiter,
                    bool only_field = false);

// "LINE:COLUMN: what" (the caller prefixes the file name).
Status InputError(TextPos pos, std::string_view what);

}  // namespace flin::cli
