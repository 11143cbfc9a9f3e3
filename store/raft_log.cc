#include "store/raft_log.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "base/log.h"

namespace flin::store {
namespace {

static_assert(std::endian::native == std::endian::little,
              "the log format is little-endian; add byte swapping for big-endian hosts");

enum RecordKind : uint8_t {
  kSegmentHeader = 1,
  kEntry = 2,
  kHardState = 3,
  kCompact = 4,
  kReset = 5,
  kSegmentFooter = 6,
};

constexpr size_t kRecordHeaderSize = 9;             // u32 crc, u32 length, u8 kind
constexpr uint64_t kMagic = 0x31474f4c4e494c46ull;  // "FLINLOG1" read as little-endian
constexpr uint32_t kVersion = 1;
constexpr size_t kSegmentHeaderPayload = 8 + 4 + 8;
constexpr size_t kEntryPayload = 8 + 8 + 1;  // before the data
constexpr size_t kHardStatePayload = 24;
constexpr size_t kPointPayload = 16;  // kCompact, kReset
constexpr size_t kFooterPayload = 8;
constexpr size_t kSegmentHeaderSize = kRecordHeaderSize + kSegmentHeaderPayload;
constexpr size_t kFooterSize = kRecordHeaderSize + kFooterPayload;
// Largest span read back with one pread when serving old entries.
constexpr uint64_t kMaxReadSpan = 8 << 20;
// Largest write buffer kept for reuse between Syncs.
constexpr size_t kMaxSpareBuffer = 16 << 20;

void PutU32(std::string* s, uint32_t v) { s->append(reinterpret_cast<const char*>(&v), 4); }
void PutU64(std::string* s, uint64_t v) { s->append(reinterpret_cast<const char*>(&v), 8); }
uint32_t GetU32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
uint64_t GetU64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

uint32_t Crc(const char* p, size_t n) {
  return static_cast<uint32_t>(crc32_z(0, reinterpret_cast<const Bytef*>(p), n));
}

std::string PointPayload(uint64_t index, uint64_t term) {
  std::string p;
  PutU64(&p, index);
  PutU64(&p, term);
  return p;
}

std::string HardStatePayload(const LogHardState& hs) {
  std::string p;
  PutU64(&p, hs.term);
  PutU64(&p, hs.vote);
  PutU64(&p, hs.commit);
  return p;
}

Status ErrnoStatus(const std::string& what, const std::string& path) {
  return Status::FromErrno(what + " " + path, errno);
}

Status WriteFull(int fd, const char* p, size_t n, uint64_t offset, const std::string& path) {
  while (n > 0) {
    ssize_t w = ::pwrite(fd, p, n, static_cast<off_t>(offset));
    if (w < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("raft log: write", path);
    }
    p += w;
    n -= static_cast<size_t>(w);
    offset += static_cast<uint64_t>(w);
  }
  return Status::Ok();
}

// Reads exactly n bytes unless the file ends first; *got says how many.
Status ReadFull(int fd, char* p, size_t n, uint64_t offset, const std::string& path, size_t* got) {
  *got = 0;
  while (*got < n) {
    ssize_t r = ::pread(fd, p + *got, n - *got, static_cast<off_t>(offset + *got));
    if (r < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("raft log: read", path);
    }
    if (r == 0) break;
    *got += static_cast<size_t>(r);
  }
  return Status::Ok();
}

Status SyncFd(int fd, const std::string& path, bool data_only, bool skip) {
  if (skip) return Status::Ok();
  int rc;
  do {
    rc = data_only ? ::fdatasync(fd) : ::fsync(fd);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) return ErrnoStatus(data_only ? "raft log: fdatasync" : "raft log: fsync", path);
  return Status::Ok();
}

// fallocate up front so that appends never grow the file: fdatasync then has
// no file size to flush. File systems without fallocate just grow the file.
Status Preallocate(int fd, uint64_t bytes, const std::string& path) {
  int rc;
  do {
    rc = ::fallocate(fd, 0, 0, static_cast<off_t>(bytes));
  } while (rc < 0 && errno == EINTR);
  if (rc < 0 && errno != EOPNOTSUPP && errno != ENOSYS) {
    return ErrnoStatus("raft log: fallocate", path);
  }
  return Status::Ok();
}

Status MakeDirs(const std::string& dir) {
  struct stat st;
  if (::stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return Status::Ok();
  std::string partial;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = dir.find('/', pos + 1);
    partial = dir.substr(0, pos);
    if (partial.empty()) continue;
    if (::mkdir(partial.c_str(), 0755) < 0 && errno != EEXIST) {
      return ErrnoStatus("raft log: mkdir", partial);
    }
  }
  return Status::Ok();
}

bool ParseSegmentName(const char* name, uint64_t* seq) {
  size_t len = std::strlen(name);
  if (len != 24 || std::strcmp(name + 20, ".log") != 0) return false;
  uint64_t v = 0;
  for (int i = 0; i < 20; ++i) {
    if (name[i] < '0' || name[i] > '9') return false;
    v = v * 10 + static_cast<uint64_t>(name[i] - '0');
  }
  *seq = v;
  return v != 0;
}

std::string At(const std::string& path, uint64_t offset) {
  return path + " at offset " + std::to_string(offset);
}

// Reads a segment front to back through a window, so that recovery never
// reads the unwritten, preallocated end of the last segment.
class SegmentReader {
 public:
  SegmentReader(int fd, uint64_t size, const std::string& path)
      : fd_(fd), size_(size), path_(path) {}
  uint64_t size() const { return size_; }
  // Makes bytes [off, off + n) readable through At(); off never decreases
  // between calls, and off + n <= size().
  Status Ensure(uint64_t off, uint64_t n) {
    if (off >= start_ && off + n <= start_ + buf_.size()) return Status::Ok();
    if (off >= start_ && off < start_ + buf_.size()) {
      buf_.erase(0, off - start_);
    } else {
      buf_.clear();
    }
    start_ = off;
    const uint64_t want = std::min(size_ - off, std::max<uint64_t>(n, kBlock));
    const size_t have = buf_.size();
    buf_.resize(want);
    size_t got;
    FLIN_RETURN_IF_ERROR(ReadFull(fd_, buf_.data() + have, want - have, off + have, path_, &got));
    buf_.resize(have + got);
    if (buf_.size() < n) return Status::IOError("raft log: " + path_ + " shrank while reading");
    return Status::Ok();
  }
  const char* At(uint64_t off) const { return buf_.data() + (off - start_); }

 private:
  static constexpr uint64_t kBlock = 1 << 20;
  const int fd_;
  const uint64_t size_;
  const std::string& path_;
  uint64_t start_ = 0;
  std::string buf_;
};

// Rebuilds the in-memory log from records in file order. It mirrors what the
// live log did when it wrote them. When the oldest segments were deleted by
// compaction, the first entries seen may be superseded ones and the
// compaction point is not known until a kCompact/kReset record: until then
// `base_known` is false and replay follows whatever comes (the newest
// compaction record, written before the deletion, sets things right).
struct Replay {
  bool base_known = false;
  uint64_t base_index = 0;
  uint64_t base_term = 0;
};

}  // namespace

RaftLog::RaftLog(std::string dir, RaftLogOptions opts) : dir_(std::move(dir)), opts_(opts) {}

RaftLog::~RaftLog() {
  for (auto& [seq, seg] : segments_) {
    if (seg.fd >= 0) ::close(seg.fd);
  }
  if (dir_fd_ >= 0) ::close(dir_fd_);
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

Result<std::unique_ptr<RaftLog>> RaftLog::Open(const std::string& dir, RaftLogOptions opts) {
  if (dir.empty()) return Status::InvalidArgument("raft log: empty directory name");
  if (opts.segment_bytes < 4096) opts.segment_bytes = 4096;
  std::unique_ptr<RaftLog> log(new RaftLog(dir, opts));
  Status s = log->Recover();
  if (!s.ok()) return s;
  return log;
}

std::string RaftLog::SegmentPath(uint64_t seq) const {
  char name[32];
  std::snprintf(name, sizeof name, "%020" PRIu64 ".log", seq);
  return dir_ + "/" + name;
}

Status RaftLog::Recover() {
  FLIN_RETURN_IF_ERROR(MakeDirs(dir_));
  dir_fd_ = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd_ < 0) return ErrnoStatus("raft log: open", dir_);
  // Two writers on one log would interleave records: refuse the second.
  const std::string lock_path = dir_ + "/LOCK";
  lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd_ < 0) return ErrnoStatus("raft log: open", lock_path);
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) < 0) {
    if (errno == EWOULDBLOCK) {
      return Status::Busy("raft log: " + dir_ + " is already open (" + lock_path + " is locked)");
    }
    return ErrnoStatus("raft log: flock", lock_path);
  }

  std::vector<uint64_t> seqs;
  {
    DIR* d = ::opendir(dir_.c_str());
    if (d == nullptr) return ErrnoStatus("raft log: opendir", dir_);
    while (struct dirent* de = ::readdir(d)) {
      uint64_t seq;
      if (ParseSegmentName(de->d_name, &seq)) seqs.push_back(seq);
    }
    ::closedir(d);
  }
  std::sort(seqs.begin(), seqs.end());
  for (size_t k = 1; k < seqs.size(); ++k) {
    if (seqs[k] != seqs[k - 1] + 1) {
      return Status::Corruption("raft log: segment " + SegmentPath(seqs[k - 1] + 1) +
                                " is missing (segments are deleted only from the front)");
    }
  }

  std::lock_guard<std::mutex> lock(mu_);  // no other thread yet; keeps the annotations honest
  Replay rp;
  rp.base_known = seqs.empty() || seqs.front() == 1;
  std::deque<EntryMeta> metas;
  auto last_index = [&] { return rp.base_index + metas.size(); };
  uint64_t next_seq = seqs.empty() ? 1 : seqs.front();

  for (size_t k = 0; k < seqs.size(); ++k) {
    const uint64_t seq = seqs[k];
    const bool last = k + 1 == seqs.size();
    const std::string path = SegmentPath(seq);
    int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) return ErrnoStatus("raft log: open", path);
    struct stat st;
    if (::fstat(fd, &st) < 0) {
      Status s = ErrnoStatus("raft log: stat", path);
      ::close(fd);
      return s;
    }
    SegmentReader reader(fd, static_cast<uint64_t>(st.st_size), path);

    // Parse. `bad` is a damaged record (torn tail when in the last segment);
    // `fatal` is damage that is never a torn write.
    uint64_t off = 0;
    bool sealed = false;
    std::string bad, fatal;
    Status rs;
    while (true) {
      const uint64_t avail = reader.size() - off;
      if (avail < kRecordHeaderSize) {
        rs = reader.Ensure(off, avail);
        if (!rs.ok()) break;
        const char* p = reader.At(off);
        if (std::any_of(p, p + avail, [](char c) { return c != 0; }) || off == 0) {
          bad = "truncated record header";
        }
        break;
      }
      rs = reader.Ensure(off, kRecordHeaderSize);
      if (!rs.ok()) break;
      const uint32_t crc = GetU32(reader.At(off));
      const uint32_t len = GetU32(reader.At(off) + 4);
      const uint8_t kind = static_cast<uint8_t>(reader.At(off)[8]);
      if (len == 0) {
        if (crc != 0 || kind != 0 || off == 0) bad = "bad record header";
        break;  // zeros: end of the written data
      }
      if (len > avail - kRecordHeaderSize) {
        bad = "record length " + std::to_string(len) + " beyond end of file";
        break;
      }
      rs = reader.Ensure(off, kRecordHeaderSize + len);
      if (!rs.ok()) break;
      const char* p = reader.At(off);
      if (Crc(p + 4, 5 + len) != crc) {
        bad = "checksum mismatch";
        break;
      }
      const char* pl = p + kRecordHeaderSize;
      auto expect = [&](bool ok, const char* what) {
        if (!ok && fatal.empty()) fatal = what;
        return ok;
      };
      if (off == 0 && !expect(kind == kSegmentHeader, "segment does not start with a header")) {
        break;
      }
      bool stop = false;
      switch (kind) {
        case kSegmentHeader:
          if (expect(off == 0, "segment header in the middle of a segment") &&
              expect(len == kSegmentHeaderPayload, "bad segment header size") &&
              expect(GetU64(pl) == kMagic, "bad magic") &&
              expect(GetU32(pl + 8) == kVersion, "unsupported log format version")) {
            expect(GetU64(pl + 12) == seq, "segment header names another sequence number");
          }
          break;
        case kEntry: {
          if (!expect(len >= kEntryPayload, "entry record too short")) break;
          const uint64_t index = GetU64(pl);
          if (!expect(index > 0, "entry index 0")) break;
          const uint64_t term = GetU64(pl + 8);
          if (metas.empty() && !rp.base_known) {
            rp.base_index = index - 1;
          } else if (index <= rp.base_index) {
            if (!expect(!rp.base_known, "entry at or below the compaction point")) break;
            metas.clear();
            rp.base_index = index - 1;
          } else if (index <= last_index()) {
            metas.resize(index - rp.base_index - 1);
          } else if (!expect(index == last_index() + 1, "gap in entry indexes")) {
            break;
          }
          metas.push_back(EntryMeta{term, off, static_cast<uint32_t>(seq),
                                    static_cast<uint32_t>(len - kEntryPayload),
                                    static_cast<uint8_t>(pl[16])});
          break;
        }
        case kHardState:
          if (!expect(len == kHardStatePayload, "bad hard state size")) break;
          hard_state_ = LogHardState{GetU64(pl), GetU64(pl + 8), GetU64(pl + 16)};
          break;
        case kCompact: {
          if (!expect(len == kPointPayload, "bad compaction record size")) break;
          const uint64_t index = GetU64(pl), term = GetU64(pl + 8);
          if (index < rp.base_index) {
            // An older compaction record, superseded by a later one.
            expect(!rp.base_known, "compaction point moved backwards");
            break;
          }
          if (index >= last_index()) {
            metas.clear();
          } else {
            const auto drop = static_cast<ptrdiff_t>(index - rp.base_index);
            metas.erase(metas.begin(), metas.begin() + drop);
          }
          rp.base_index = index;
          rp.base_term = term;
          rp.base_known = true;
          break;
        }
        case kReset:
          if (!expect(len == kPointPayload, "bad reset record size")) break;
          metas.clear();
          rp.base_index = GetU64(pl);
          rp.base_term = GetU64(pl + 8);
          rp.base_known = true;
          break;
        case kSegmentFooter:
          if (!expect(len == kFooterPayload && GetU64(pl) == seq, "bad segment footer")) break;
          sealed = true;
          stop = true;
          break;
        default:
          fatal = "unknown record kind " + std::to_string(kind);
          break;
      }
      if (!fatal.empty()) break;
      off += kRecordHeaderSize + len;
      if (stop) break;
    }
    if (!rs.ok()) {
      ::close(fd);
      return rs;
    }
    if (!fatal.empty()) {
      ::close(fd);
      return Status::Corruption("raft log: corrupt record in " + At(path, off) + ": " + fatal);
    }
    if (!last) {
      if (!bad.empty()) {
        ::close(fd);
        return Status::Corruption("raft log: corrupt record in " + At(path, off) + ": " + bad);
      }
      if (!sealed) {
        ::close(fd);
        return Status::Corruption("raft log: segment " + At(path, off) +
                                  " ends without a footer but is not the last one");
      }
      segments_[seq] = Segment{fd, off, true, true};
      next_seq = seq + 1;
      continue;
    }

    // The last segment: what follows the valid records was never covered by
    // a completed Sync(). Cut it off so that new records are never followed
    // by stale bytes, and preallocate again.
    if (!bad.empty()) {
      LOG_WARN << "raft log: cutting the torn tail of " << At(path, off) << " (" << bad
               << "): records there were never acknowledged as synced";
    }
    if (off == 0) {
      // Not even a header made it: the file was being created.
      ::close(fd);
      if (::unlink(path.c_str()) < 0) return ErrnoStatus("raft log: unlink", path);
      FLIN_RETURN_IF_ERROR(SyncFd(dir_fd_, dir_, false, opts_.unsafe_no_sync));
      next_seq = seq;
      break;
    }
    // Whatever lies past the valid records (a torn write, or preallocated
    // space with stale bytes a crash left behind) goes, so that new records
    // are never followed by something that could parse; then preallocate again.
    if (reader.size() != off) {
      if (::ftruncate(fd, static_cast<off_t>(off)) < 0) {
        Status s = ErrnoStatus("raft log: ftruncate", path);
        ::close(fd);
        return s;
      }
    }
    if (!sealed && opts_.preallocate) {
      Status s = Preallocate(fd, opts_.segment_bytes, path);
      if (!s.ok()) {
        ::close(fd);
        return s;
      }
    }
    Status s = SyncFd(fd, path, false, opts_.unsafe_no_sync);
    if (!s.ok()) {
      ::close(fd);
      return s;
    }
    segments_[seq] = Segment{fd, off, sealed, true};
    file_seq_ = seq;
    file_fd_ = fd;
    next_seq = seq + 1;
  }

  // Records a crashed process wrote but never synced may still be only in
  // the page cache: make what was just recovered durable before it counts.
  FLIN_RETURN_IF_ERROR(SyncFd(dir_fd_, dir_, false, opts_.unsafe_no_sync));
  if (!rp.base_known) {
    LOG_WARN << "raft log: " << dir_ << " has no record of its compaction point; assuming "
             << rp.base_index << " with unknown term";
  }
  base_index_ = rp.base_index;
  base_term_ = rp.base_term;
  meta_ = std::move(metas);
  synced_index_ = LastIndexLocked();
  cache_first_ = LastIndexLocked() + 1;
  if (segments_.empty() || segments_.rbegin()->second.sealed) {
    tail_seq_ = next_seq - 1;
    RollLocked();
  } else {
    tail_seq_ = segments_.rbegin()->first;
  }
  LOG_INFO << "raft log: opened " << dir_ << ": entries " << FirstIndexLocked() << ".."
           << LastIndexLocked() << ", " << segments_.size() << " segment(s)";
  return Status::Ok();
}

uint64_t RaftLog::FirstIndexLocked() const { return base_index_ + 1; }
uint64_t RaftLog::LastIndexLocked() const { return base_index_ + meta_.size(); }

RaftLog::Chunk& RaftLog::TailChunkLocked() {
  if (pending_.empty() || pending_.back().seq != tail_seq_) {
    Segment& seg = segments_[tail_seq_];
    Chunk c;
    c.seq = tail_seq_;
    c.offset = seg.used;
    c.create = !seg.create_queued;
    seg.create_queued = true;
    c.bytes = std::move(spare_buffer_);
    c.bytes.clear();
    spare_buffer_ = std::string();
    pending_.push_back(std::move(c));
  }
  return pending_.back();
}

void RaftLog::AddRecordLocked(uint8_t kind, std::string_view payload, std::string_view data,
                              uint32_t* seq, uint64_t* offset) {
  const size_t len = payload.size() + data.size();
  const size_t rec = kRecordHeaderSize + len;
  if (kind != kSegmentHeader && kind != kSegmentFooter) {
    const Segment& tail = segments_[tail_seq_];
    if (tail.used > kSegmentHeaderSize && tail.used + rec + kFooterSize > opts_.segment_bytes) {
      RollLocked();
    }
  }
  Segment& tail = segments_[tail_seq_];
  Chunk& c = TailChunkLocked();
  const size_t start = c.bytes.size();
  PutU32(&c.bytes, 0);  // crc, filled in below
  PutU32(&c.bytes, static_cast<uint32_t>(len));
  c.bytes.push_back(static_cast<char>(kind));
  c.bytes.append(payload);
  c.bytes.append(data);
  const uint32_t crc = Crc(c.bytes.data() + start + 4, rec - 4);
  std::memcpy(c.bytes.data() + start, &crc, 4);
  if (seq != nullptr) *seq = static_cast<uint32_t>(tail_seq_);
  if (offset != nullptr) *offset = tail.used;
  tail.used += rec;
  if (kind == kSegmentFooter) {
    c.seal = true;
    tail.sealed = true;
  }
}

void RaftLog::RollLocked() {
  auto tail = segments_.find(tail_seq_);
  if (tail != segments_.end() && !tail->second.sealed) {
    std::string p;
    PutU64(&p, tail_seq_);
    AddRecordLocked(kSegmentFooter, p, {}, nullptr, nullptr);
  }
  ++tail_seq_;
  segments_[tail_seq_] = Segment{};
  std::string h;
  PutU64(&h, kMagic);
  PutU32(&h, kVersion);
  PutU64(&h, tail_seq_);
  AddRecordLocked(kSegmentHeader, h, {}, nullptr, nullptr);
}

Status RaftLog::Append(std::span<const LogEntry> entries) {
  if (entries.empty()) return Status::Ok();
  const uint64_t first = entries[0].index;
  for (size_t k = 0; k < entries.size(); ++k) {
    if (entries[k].index != first + k) {
      return Status::InvalidArgument("raft log: entries not contiguous at index " +
                                     std::to_string(entries[k].index));
    }
    if (entries[k].data.size() > UINT32_MAX - kEntryPayload) {
      return Status::InvalidArgument("raft log: entry " + std::to_string(entries[k].index) +
                                     " is too large");
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (!io_error_.ok()) return io_error_;
  if (first <= base_index_) {
    return Status::InvalidArgument("raft log: append at " + std::to_string(first) +
                                   " is at or below the compaction point " +
                                   std::to_string(base_index_));
  }
  if (first > LastIndexLocked() + 1) {
    return Status::InvalidArgument("raft log: append at " + std::to_string(first) +
                                   " leaves a gap after last index " +
                                   std::to_string(LastIndexLocked()));
  }
  if (first <= LastIndexLocked()) TruncateSuffixLocked(first);
  for (const LogEntry& e : entries) {
    char p[kEntryPayload];
    std::memcpy(p, &e.index, 8);
    std::memcpy(p + 8, &e.term, 8);
    p[16] = static_cast<char>(e.type);
    EntryMeta m{e.term, 0, 0, static_cast<uint32_t>(e.data.size()), e.type};
    AddRecordLocked(kEntry, std::string_view(p, sizeof p), e.data, &m.seq, &m.offset);
    meta_.push_back(m);
    cache_.push_back(e.data);
    cache_bytes_ += e.data.size();
  }
  return Status::Ok();
}

void RaftLog::TruncateSuffixLocked(uint64_t index) {
  meta_.resize(index - base_index_ - 1);
  if (index < cache_first_) {
    cache_.clear();
    cache_bytes_ = 0;
    cache_first_ = index;
  } else {
    while (cache_first_ + cache_.size() > index) {
      cache_bytes_ -= cache_.back().size();
      cache_.pop_back();
    }
  }
  synced_index_ = std::min(synced_index_, index - 1);
  truncated_since_take_ = std::min(truncated_since_take_, index);
}

Status RaftLog::SetHardState(const LogHardState& hs) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!io_error_.ok()) return io_error_;
  hard_state_ = hs;
  AddRecordLocked(kHardState, HardStatePayload(hs), {}, nullptr, nullptr);
  return Status::Ok();
}

Status RaftLog::Sync(uint64_t* synced_index) {
  std::lock_guard<std::mutex> sync_lock(sync_mu_);
  return FlushPending(synced_index);
}

Status RaftLog::WriteChunk(Chunk& c) {
  const std::string path = SegmentPath(c.seq);
  if (c.create) {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return ErrnoStatus("raft log: create", path);
    if (opts_.preallocate) {
      Status s = Preallocate(fd, opts_.segment_bytes, path);
      if (!s.ok()) {
        ::close(fd);
        ::unlink(path.c_str());
        return s;
      }
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      segments_[c.seq].fd = fd;
    }
    file_seq_ = c.seq;
    file_fd_ = fd;
    // The name must be durable before anything in the file counts.
    FLIN_RETURN_IF_ERROR(SyncFd(dir_fd_, dir_, false, opts_.unsafe_no_sync));
  }
  FLIN_CHECK(c.seq == file_seq_) << "raft log: chunk for segment " << c.seq << " but file is "
                                 << file_seq_;
  FLIN_RETURN_IF_ERROR(WriteFull(file_fd_, c.bytes.data(), c.bytes.size(), c.offset, path));
  if (c.seal) {
    // Sealed segments hold exactly their records, and must be durable
    // before the next segment exists: recovery treats damage in a segment
    // that is not the last as corruption.
    const uint64_t end = c.offset + c.bytes.size();
    if (::ftruncate(file_fd_, static_cast<off_t>(end)) < 0) {
      return ErrnoStatus("raft log: ftruncate", path);
    }
    FLIN_RETURN_IF_ERROR(SyncFd(file_fd_, path, true, opts_.unsafe_no_sync));
  }
  return Status::Ok();
}

Status RaftLog::FlushPending(uint64_t* synced_index) {
  std::vector<Chunk> chunks;
  uint64_t target;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!io_error_.ok()) return io_error_;
    chunks.swap(pending_);
    target = LastIndexLocked();
    truncated_since_take_ = UINT64_MAX;
    if (chunks.empty()) {
      if (synced_index != nullptr) *synced_index = synced_index_;
      return Status::Ok();
    }
  }
  Status s;
  for (Chunk& c : chunks) {
    s = WriteChunk(c);
    if (!s.ok()) break;
  }
  if (s.ok() && !chunks.back().seal) {  // a sealed chunk was synced already
    s = SyncFd(file_fd_, SegmentPath(file_seq_), true, opts_.unsafe_no_sync);
  }

  std::lock_guard<std::mutex> lock(mu_);
  if (!s.ok()) {
    LOG_ERROR << "raft log: " << s.ToString() << "; the log refuses further writes";
    io_error_ = s;
    return s;
  }
  synced_index_ = std::min(target, truncated_since_take_ - 1);
  if (synced_index != nullptr) *synced_index = synced_index_;
  for (Chunk& c : chunks) {
    if (c.bytes.capacity() > spare_buffer_.capacity() && c.bytes.capacity() <= kMaxSpareBuffer) {
      spare_buffer_ = std::move(c.bytes);
    }
  }
  EvictCacheLocked();
  return Status::Ok();
}

void RaftLog::EvictCacheLocked() {
  while (!cache_.empty() && cache_bytes_ > opts_.cache_bytes && cache_first_ <= synced_index_) {
    cache_bytes_ -= cache_.front().size();
    cache_.pop_front();
    ++cache_first_;
  }
}

uint64_t RaftLog::FirstIndex() const {
  std::lock_guard<std::mutex> lock(mu_);
  return FirstIndexLocked();
}

uint64_t RaftLog::LastIndex() const {
  std::lock_guard<std::mutex> lock(mu_);
  return LastIndexLocked();
}

uint64_t RaftLog::SyncedIndex() const {
  std::lock_guard<std::mutex> lock(mu_);
  return synced_index_;
}

LogHardState RaftLog::hard_state() const {
  std::lock_guard<std::mutex> lock(mu_);
  return hard_state_;
}

Result<uint64_t> RaftLog::Term(uint64_t index) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (index < base_index_) {
    return Status::NotFound("raft log: index " + std::to_string(index) + " is compacted");
  }
  if (index == base_index_) return base_term_;
  if (index > LastIndexLocked()) {
    return Status::Unavailable("raft log: index " + std::to_string(index) + " is beyond last " +
                               std::to_string(LastIndexLocked()));
  }
  return meta_[index - base_index_ - 1].term;
}

Status RaftLog::Entries(uint64_t lo, uint64_t hi, size_t max_bytes,
                        std::vector<LogEntry>* out) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (lo > hi) {
    return Status::InvalidArgument("raft log: entries lo " + std::to_string(lo) + " > hi " +
                                   std::to_string(hi));
  }
  if (lo <= base_index_) {
    return Status::NotFound("raft log: entry " + std::to_string(lo) + " is compacted");
  }
  if (hi > LastIndexLocked() + 1) {
    return Status::Unavailable("raft log: entries up to " + std::to_string(hi - 1) +
                               " requested, last is " + std::to_string(LastIndexLocked()));
  }
  if (lo == hi) return Status::Ok();
  // Where max_bytes cuts, from sizes alone; then read what that leaves.
  uint64_t end = lo + 1;
  uint64_t total = meta_[lo - base_index_ - 1].size;
  while (end < hi) {
    total += meta_[end - base_index_ - 1].size;
    if (total > max_bytes) break;
    ++end;
  }
  return ReadEntriesLocked(lo, end, out);
}

Status RaftLog::ReadEntriesLocked(uint64_t lo, uint64_t hi, std::vector<LogEntry>* out) const {
  out->reserve(out->size() + (hi - lo));
  uint64_t i = lo;
  std::string buf;
  while (i < hi && i < cache_first_) {
    // A run of entries in one segment, read with one pread.
    const EntryMeta& first = meta_[i - base_index_ - 1];
    uint64_t j = i + 1;
    uint64_t span_end = first.offset + kRecordHeaderSize + kEntryPayload + first.size;
    while (j < hi && j < cache_first_) {
      const EntryMeta& m = meta_[j - base_index_ - 1];
      const uint64_t e = m.offset + kRecordHeaderSize + kEntryPayload + m.size;
      if (m.seq != first.seq || m.offset < first.offset || e - first.offset > kMaxReadSpan) break;
      span_end = std::max(span_end, e);
      ++j;
    }
    const std::string path = SegmentPath(first.seq);
    auto seg = segments_.find(first.seq);
    FLIN_CHECK(seg != segments_.end() && seg->second.fd >= 0)
        << "raft log: entry " << i << " in missing segment " << first.seq;
    buf.resize(span_end - first.offset);
    size_t got;
    FLIN_RETURN_IF_ERROR(
        ReadFull(seg->second.fd, buf.data(), buf.size(), first.offset, path, &got));
    for (; i < j; ++i) {
      const EntryMeta& m = meta_[i - base_index_ - 1];
      const uint64_t rel = m.offset - first.offset;
      const size_t len = kEntryPayload + m.size;
      const char* p = buf.data() + rel;
      if (rel + kRecordHeaderSize + len > got || GetU32(p + 4) != len || p[8] != kEntry ||
          Crc(p + 4, 5 + len) != GetU32(p) || GetU64(p + kRecordHeaderSize) != i) {
        return Status::Corruption("raft log: entry " + std::to_string(i) +
                                  " cannot be read back from " + At(path, m.offset));
      }
      LogEntry e;
      e.index = i;
      e.term = m.term;
      e.type = m.type;
      e.data.assign(p + kRecordHeaderSize + kEntryPayload, m.size);
      out->push_back(std::move(e));
    }
  }
  for (; i < hi; ++i) {
    const EntryMeta& m = meta_[i - base_index_ - 1];
    out->push_back(LogEntry{i, m.term, m.type, cache_[i - cache_first_]});
  }
  return Status::Ok();
}

Status RaftLog::DeleteSegmentsBelow(uint64_t seq) {
  std::vector<std::pair<int, std::string>> doomed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    while (!segments_.empty() && segments_.begin()->first < seq) {
      auto it = segments_.begin();
      FLIN_CHECK(it->first != file_seq_) << "raft log: deleting the segment being written";
      doomed.emplace_back(it->second.fd, SegmentPath(it->first));
      segments_.erase(it);
    }
  }
  if (doomed.empty()) return Status::Ok();
  Status s;
  for (auto& [fd, path] : doomed) {
    if (fd >= 0) ::close(fd);
    if (::unlink(path.c_str()) < 0 && errno != ENOENT && s.ok()) {
      s = ErrnoStatus("raft log: unlink", path);
    }
  }
  FLIN_RETURN_IF_ERROR(s);
  return SyncFd(dir_fd_, dir_, false, opts_.unsafe_no_sync);
}

Status RaftLog::CompactTo(uint64_t index, uint64_t term) {
  std::lock_guard<std::mutex> sync_lock(sync_mu_);
  uint64_t keep_from;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!io_error_.ok()) return io_error_;
    if (index <= base_index_) return Status::Ok();
    if (index > LastIndexLocked()) {
      return Status::InvalidArgument("raft log: compaction to " + std::to_string(index) +
                                     " beyond last index " + std::to_string(LastIndexLocked()));
    }
    const uint64_t have = meta_[index - base_index_ - 1].term;
    if (have != term) {
      return Status::InvalidArgument("raft log: compaction to " + std::to_string(index) +
                                     " with term " + std::to_string(term) + " but the entry has " +
                                     std::to_string(have));
    }
    const uint64_t drop = index - base_index_;
    meta_.erase(meta_.begin(), meta_.begin() + static_cast<ptrdiff_t>(drop));
    if (cache_first_ <= index) {
      const uint64_t cdrop = index + 1 - cache_first_;
      for (uint64_t k = 0; k < cdrop; ++k) cache_bytes_ -= cache_[k].size();
      cache_.erase(cache_.begin(), cache_.begin() + static_cast<ptrdiff_t>(cdrop));
      cache_first_ = index + 1;
    }
    base_index_ = index;
    base_term_ = term;
    // Segments about to be deleted may hold the latest hard state.
    AddRecordLocked(kCompact, PointPayload(index, term), {}, nullptr, nullptr);
    AddRecordLocked(kHardState, HardStatePayload(hard_state_), {}, nullptr, nullptr);
  }
  FLIN_RETURN_IF_ERROR(FlushPending(nullptr));
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Live entries sit in (segment, offset) order, so every segment before
    // the one holding FirstIndex() has nothing left that matters.
    keep_from = meta_.empty() ? file_seq_ : std::min<uint64_t>(meta_.front().seq, file_seq_);
  }
  return DeleteSegmentsBelow(keep_from);
}

Status RaftLog::ResetTo(uint64_t index, uint64_t term) {
  std::lock_guard<std::mutex> sync_lock(sync_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!io_error_.ok()) return io_error_;
    meta_.clear();
    cache_.clear();
    cache_bytes_ = 0;
    cache_first_ = index + 1;
    base_index_ = index;
    base_term_ = term;
    synced_index_ = std::min(synced_index_, index);
    // A fresh segment, so that every older one can go.
    RollLocked();
    AddRecordLocked(kReset, PointPayload(index, term), {}, nullptr, nullptr);
    AddRecordLocked(kHardState, HardStatePayload(hard_state_), {}, nullptr, nullptr);
  }
  FLIN_RETURN_IF_ERROR(FlushPending(nullptr));
  return DeleteSegmentsBelow(file_seq_);
}

uint64_t RaftLog::DiskBytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t total = 0;
  for (const auto& [seq, seg] : segments_) total += seg.used;
  return total;
}

std::vector<LogSegmentInfo> RaftLog::Segments() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<LogSegmentInfo> out;
  for (const auto& [seq, seg] : segments_) {
    out.push_back(LogSegmentInfo{seq, SegmentPath(seq), seg.used, seg.sealed});
  }
  return out;
}

}  // namespace flin::store
