#include "cli/csv.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

namespace flin::cli {

namespace {
constexpr size_t kBufferSize = 1 << 20;
}  // namespace

Status InputError(TextPos pos, std::string_view what) {
  return Status::InvalidArgument(std::to_string(pos.line) + ":" + std::to_string(pos.column) +
                                 ": " + std::string(what));
}

ByteReader::ByteReader(std::string name, int fd, int64_t size)
    : name_(std::move(name)), fd_(fd), size_(size) {}

ByteReader::~ByteReader() {
  if (owns_fd_ && fd_ >= 0) ::close(fd_);
}

Result<std::unique_ptr<ByteReader>> ByteReader::Open(const std::string& path) {
  int fd;
  bool owns = true;
  if (path == "-") {
    fd = STDIN_FILENO;
    owns = false;
  } else {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Status::FromErrno("cannot open " + path, errno);
  }
  int64_t size = -1;
  struct stat st;
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) size = st.st_size;
  if (owns && ::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    ::close(fd);
    return Status::IOError("cannot read " + path + ": is a directory");
  }
  std::unique_ptr<ByteReader> r(new ByteReader(path == "-" ? "<stdin>" : path, fd, size));
  r->owns_fd_ = owns;
  r->storage_.resize(kBufferSize);
  r->buf_ = r->pos_ = r->end_ = r->storage_.data();
  if (owns) ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  return r;
}

std::unique_ptr<ByteReader> ByteReader::FromString(std::string data) {
  int64_t size = static_cast<int64_t>(data.size());
  std::unique_ptr<ByteReader> r(new ByteReader("<string>", -1, size));
  r->storage_ = std::move(data);
  r->buf_ = r->pos_ = r->storage_.data();
  r->end_ = r->buf_ + r->storage_.size();
  r->eof_ = true;
  return r;
}

bool ByteReader::Refill() {
  if (eof_ || fd_ < 0) return false;
  consumed_base_ += static_cast<uint64_t>(end_ - buf_);
  buf_ = storage_.data();
  for (;;) {
    ssize_t n = ::read(fd_, buf_, storage_.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      status_ = Status::FromErrno("cannot read " + name_, errno);
      eof_ = true;
      pos_ = end_ = buf_;
      return false;
    }
    pos_ = buf_;
    end_ = buf_ + n;
    if (n == 0) {
      eof_ = true;
      return false;
    }
    return true;
  }
}

void ByteReader::SkipBom() {
  // A BOM is only meaningful at offset 0; a short first read cannot split
  // it in practice, but handle it via Peek()/Get() for simplicity.
  if (bytes_consumed() != 0) return;
  if (Peek() != 0xEF) return;
  if (end_ - pos_ >= 3 && static_cast<unsigned char>(pos_[1]) == 0xBB &&
      static_cast<unsigned char>(pos_[2]) == 0xBF) {
    pos_ += 3;  // not a character: the column stays 1
  }
}

bool ByteReader::ReadLine(std::string* line) {
  line->clear();
  if (Peek() < 0) return false;
  for (;;) {
    if (pos_ == end_ && !Refill()) break;
    char* nl = static_cast<char*>(std::memchr(pos_, '\n', end_ - pos_));
    char* stop = nl ? nl : end_;
    line->append(pos_, stop - pos_);
    pos_ = stop;
    if (nl) {
      ++pos_;
      break;
    }
  }
  ++pos_text_.line;
  pos_text_.column = 1;
  if (!line->empty() && line->back() == '\r') line->pop_back();
  return true;
}

CsvReader::CsvReader(ByteReader* in, CsvOptions opts) : in_(in), opts_(opts) {}

Result<bool> CsvReader::Next(std::vector<std::string>* fields) {
  if (done_) return false;
  if (!started_) {
    started_ = true;
    in_->SkipBom();
  }
  for (;;) {
    while (in_->Peek() == '\n') in_->Get();
    if (in_->Peek() < 0) {
      done_ = true;
      if (!in_->status().ok()) return in_->status();
      return false;
    }
    bool quoted_first = false;
    FLIN_RETURN_IF_ERROR(ReadRecord(fields, &quoted_first));
    // A CRLF blank line reads as one empty unquoted field: skip it too.
    if (fields->size() == 1 && (*fields)[0].empty() && !quoted_first) continue;
    return true;
  }
}

Status CsvReader::ReadRecord(std::vector<std::string>* fields, bool* quoted_first) {
  const int delim = static_cast<unsigned char>(opts_.delimiter);
  size_t nfields = 0;
  field_pos_.clear();
  record_pos_ = in_->pos();
  for (;;) {
    // Start of a field.
    if (fields->size() <= nfields) fields->resize(nfields + 1);
    std::string& f = (*fields)[nfields];
    f.clear();
    TextPos start = in_->pos();
    field_pos_.push_back(start);
    ++nfields;
    int c = in_->Peek();
    if (c == '"') {
      if (nfields == 1) *quoted_first = true;
      in_->Get();
      for (;;) {
        c = in_->Get();
        if (c < 0) {
          done_ = true;
          if (!in_->status().ok()) return in_->status();
          return InputError(start,
                            "unterminated quoted field (the quote opened here is never closed "
                            "before the end of the input)");
        }
        if (c == '"') {
          if (in_->Peek() == '"') {
            in_->Get();
            f.push_back('"');
            continue;
          }
          break;
        }
        f.push_back(static_cast<char>(c));
      }
      // After the closing quote: delimiter, end of record or end of input.
      TextPos p = in_->pos();
      c = in_->Peek();
      if (c == delim) {
        in_->Get();
        continue;
      }
      if (c == '\n') {
        in_->Get();
        break;
      }
      if (c == '\r') {
        in_->Get();
        if (in_->Peek() == '\n') {
          in_->Get();
          break;
        }
        done_ = true;
        return InputError(p, "unexpected carriage return after a closing quote");
      }
      if (c < 0) {
        if (!in_->status().ok()) {
          done_ = true;
          return in_->status();
        }
        break;
      }
      done_ = true;
      return InputError(p, std::string("unexpected character '") + static_cast<char>(c) +
                               "' after a closing quote (a quote inside a quoted field must be "
                               "doubled: \"\")");
    }
    bool end_record = false;
    for (;;) {
      c = in_->Peek();
      if (c < 0) {
        if (!in_->status().ok()) {
          done_ = true;
          return in_->status();
        }
        end_record = true;
        break;
      }
      in_->Get();
      if (c == delim) break;
      if (c == '\n') {
        if (!f.empty() && f.back() == '\r') f.pop_back();
        end_record = true;
        break;
      }
      f.push_back(static_cast<char>(c));
    }
    if (end_record) break;
  }
  fields->resize(nfields);
  return Status::Ok();
}

void AppendCsvField(std::string* out, std::string_view field, char delimiter, bool only_field) {
  bool quote = only_field && field.empty();
  if (!quote) {
    for (char c : field) {
      if (c == delimiter || c == '"' || c == '\r' || c == '\n') {
        quote = true;
        break;
      }
    }
  }
  // A leading BOM-like or '"' first byte is covered above; leading '\xEF' is
  // only a BOM at file start, where the header row stands.
  if (!quote) {
    out->append(field);
    return;
  }
  out->push_back('"');
  for (char c : field) {
    if (c == '"') out->push_back('"');
    out->push_back(c);
  }
  out->push_back('"');
}

}  // namespace flin::cli
