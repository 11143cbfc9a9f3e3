// RaftLog: the durable Raft log and hard state of one node, kept in
// append-only segment files under one directory (the data dir's log/).
//
// Every write flind acknowledges is an entry made durable here (fdatasync)
// before the acknowledgement, so this file format and its recovery are what
// durability rests on. Throughput comes from group commit: Append() and
// SetHardState() only buffer records in memory; Sync() takes everything
// buffered so far, writes it with one positional write per segment and
// fdatasyncs once. While one Sync() is inside fdatasync, other threads keep
// appending, and the next Sync() covers all of that at once.
//
// Thread-safety: all methods may be called concurrently. Sync(), CompactTo()
// and ResetTo() serialize with each other; the file I/O of Sync() runs without
// the internal mutex, so Append(), SetHardState() and the readers are never
// blocked by an fdatasync. Readers of entries that are no longer cached do
// their pread under the mutex (rare: only followers far behind).
//
// On-disk format (all integers little-endian)
// -------------------------------------------
// Segment files are named by a sequence number, `%020llu.log`
// (00000000000000000001.log, 00000000000000000002.log, ...). Sequence
// numbers (not first indexes) name them because a conflict truncation can
// rewrite an index that already lives in an older segment. The sequence of
// files on disk is contiguous; only a prefix is ever deleted.
//
// A segment is a sequence of records:
//
//   [u32 crc][u32 length][u8 kind][payload: length bytes]
//
// crc is zlib crc32 over the length field, the kind byte and the payload.
// A header whose 9 bytes are all zero marks the end of the written data:
// segments are preallocated with fallocate, and unwritten space reads as
// zeros. Every real record has length >= 1. Kinds and payloads:
//
//   1 kSegmentHeader  u64 magic "FLINLOG1", u32 version (1), u64 seq
//                     always the first record of a segment
//   2 kEntry          u64 index, u64 term, u8 type, data (the rest)
//   3 kHardState      u64 term, u64 vote, u64 commit      (the last one wins)
//   4 kCompact        u64 index, u64 term: entries <= index are gone and
//                     (index, term) is the compaction point
//   5 kReset          u64 index, u64 term: every entry is gone; the log
//                     restarts after a snapshot at (index, term)
//   6 kSegmentFooter  u64 seq: the segment is complete; the next one follows
//
// Recovery replays the records of all segments in order. An entry whose
// index is <= the last index replaces that index and discards everything
// after it (Raft §5.3 conflict truncation), so a truncation is durable exactly
// when the first replacing entry is. Segments other than the last must end
// with a footer and contain only valid records: anything else is
// Status::Corruption naming the file and offset. In the last segment, the
// first invalid record (torn write, zeros, garbage after a crash) and
// everything after it is cut off with a WARN log: that is data whose Sync()
// never returned.
//
// Before a segment is deleted (CompactTo, ResetTo), a compaction or reset
// record and the current hard state are made durable in a newer segment, so
// the deleted files never hold the latest state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"

namespace flin::store {

struct LogEntry {
  uint64_t index = 0;
  uint64_t term = 0;
  uint8_t type = 0;
  std::string data;
};

inline bool operator==(const LogEntry& a, const LogEntry& b) {
  return a.index == b.index && a.term == b.term && a.type == b.type && a.data == b.data;
}

struct LogHardState {
  uint64_t term = 0, vote = 0, commit = 0;
};

inline bool operator==(const LogHardState& a, const LogHardState& b) {
  return a.term == b.term && a.vote == b.vote && a.commit == b.commit;
}

struct RaftLogOptions {
  size_t segment_bytes = 64 << 20;  // a new segment file when the current one would exceed this
  bool preallocate = true;          // fallocate segments up front
  size_t cache_bytes = 64 << 20;    // recent entries kept in memory; older ones are read back
  // Skips every fsync/fdatasync: nothing is durable. Only for tests that
  // reopen a log thousands of times to check the format, never for data.
  bool unsafe_no_sync = false;
};

// One segment file, for tests, metrics and debugging.
struct LogSegmentInfo {
  uint64_t seq = 0;
  std::string path;
  uint64_t used_bytes = 0;  // bytes of records written (or buffered) so far
  bool sealed = false;      // ends with a footer
};

class RaftLog {
 public:
  // Opens or creates `dir` and recovers its state (see the format above).
  // Errors: IOError (file system), Corruption (damage outside the torn tail
  // of the last segment; the message names the file and offset), Busy (the
  // directory is open in another RaftLog, in this process or another: a
  // `LOCK` file in it is held with flock).
  static Result<std::unique_ptr<RaftLog>> Open(const std::string& dir, RaftLogOptions opts = {});

  // Closes the files. Buffered records that no Sync() covered are dropped,
  // as they would be in a crash.
  ~RaftLog();
  RaftLog(const RaftLog&) = delete;
  RaftLog& operator=(const RaftLog&) = delete;

  // Buffers entries (not yet durable). Entries must be contiguous. If
  // entries[0].index <= LastIndex(), the suffix from that index on is
  // discarded first (Raft §5.3); after the next Sync() recovery will not
  // bring it back. Errors: InvalidArgument when entries are not contiguous,
  // entries[0].index > LastIndex() + 1 or <= the compaction point; IOError
  // when an earlier write failed (the log is then unusable).
  Status Append(std::span<const LogEntry> entries);

  // Buffers a hard state record; durable at the next Sync().
  Status SetHardState(const LogHardState& hs);

  // Makes everything appended or set before the call durable: one write per
  // segment touched plus one fdatasync. Sets *synced_index to SyncedIndex().
  // A failed write or fdatasync leaves the log unusable (every later call
  // returns that IOError): after a failed fsync the kernel may have dropped
  // the dirty pages, so retrying cannot be trusted.
  Status Sync(uint64_t* synced_index = nullptr);

  uint64_t FirstIndex() const;   // compaction point + 1
  uint64_t LastIndex() const;    // compaction point when empty
  uint64_t SyncedIndex() const;  // highest index known durable

  // Term of entry `index`; also of the compaction point itself.
  // Errors: NotFound ("compacted") below the compaction point, Unavailable
  // above LastIndex().
  Result<uint64_t> Term(uint64_t index) const;

  // Appends the entries in [lo, hi) to *out, stopping before the entry that
  // would bring the total data size over max_bytes (the first entry is always
  // returned). Errors: NotFound ("compacted") when lo < FirstIndex(),
  // Unavailable when hi > LastIndex() + 1, InvalidArgument when lo > hi,
  // Corruption/IOError when an older entry cannot be read back.
  Status Entries(uint64_t lo, uint64_t hi, size_t max_bytes, std::vector<LogEntry>* out) const;

  // Everything <= index is durable elsewhere (e.g. a SQLite snapshot):
  // records (index, term) as the compaction point, makes that and everything
  // buffered durable, and deletes the segments that hold nothing above it.
  // A no-op when index <= the compaction point. Errors: InvalidArgument when
  // index > LastIndex() or term differs from Term(index).
  Status CompactTo(uint64_t index, uint64_t term);

  // Drops every entry and restarts the log after a snapshot at (index, term):
  // FirstIndex() becomes index + 1, LastIndex() and SyncedIndex() index.
  // Durable on return; all older segments are deleted.
  Status ResetTo(uint64_t index, uint64_t term);

  // The latest hard state set (durable once a Sync() after it returned).
  LogHardState hard_state() const;

  // Bytes of records in the segment files, including buffered ones; excludes
  // preallocated space not yet written.
  uint64_t DiskBytes() const;

  std::vector<LogSegmentInfo> Segments() const;
  const std::string& dir() const { return dir_; }

 private:
  struct EntryMeta {
    uint64_t term;
    uint64_t offset;  // of the record in its segment
    uint32_t seq;     // segment sequence number
    uint32_t size;    // data bytes
    uint8_t type;
  };
  struct Segment {
    int fd = -1;        // -1 until Sync() creates the file
    uint64_t used = 0;  // bytes of records, including buffered ones
    bool sealed = false;
    bool create_queued = false;  // a chunk that creates the file was buffered
  };
  // Records not yet written, for one segment, starting at `offset` in it.
  struct Chunk {
    uint64_t seq = 0;
    uint64_t offset = 0;
    bool create = false;  // the file does not exist yet
    bool seal = false;    // ends with the footer: truncate to size and sync
    std::string bytes;
  };

  RaftLog(std::string dir, RaftLogOptions opts);

  Status Recover();
  // Appends one record to the buffered chunks, rolling to a new segment
  // first when it would not fit. Returns the record's segment and offset.
  void AddRecordLocked(uint8_t kind, std::string_view payload, std::string_view data, uint32_t* seq,
                       uint64_t* offset);
  void RollLocked();
  Chunk& TailChunkLocked();
  // Writes and syncs the buffered chunks. Caller holds sync_mu_ (not mu_).
  Status FlushPending(uint64_t* synced_index);
  Status WriteChunk(Chunk& chunk);
  void TruncateSuffixLocked(uint64_t index);
  void EvictCacheLocked();
  uint64_t FirstIndexLocked() const;
  uint64_t LastIndexLocked() const;
  Status ReadEntriesLocked(uint64_t lo, uint64_t hi, std::vector<LogEntry>* out) const;
  std::string SegmentPath(uint64_t seq) const;
  Status DeleteSegmentsBelow(uint64_t seq);

  const std::string dir_;
  const RaftLogOptions opts_;
  int dir_fd_ = -1;
  int lock_fd_ = -1;  // flock'ed LOCK file: one RaftLog per directory

  // Serializes Sync, CompactTo and ResetTo; held during file I/O. Lock order:
  // sync_mu_ before mu_.
  std::mutex sync_mu_;
  // Only the thread holding sync_mu_ touches these.
  uint64_t file_seq_ = 0;  // newest segment that exists on disk (0: none)
  int file_fd_ = -1;       // its descriptor (owned by segments_)

  mutable std::mutex mu_;
  // Everything below is guarded by mu_.
  uint64_t base_index_ = 0;  // compaction point
  uint64_t base_term_ = 0;
  std::deque<EntryMeta> meta_;     // entries base_index_+1 .. LastIndex()
  std::deque<std::string> cache_;  // data of entries cache_first_ .. LastIndex()
  uint64_t cache_first_ = 1;
  uint64_t cache_bytes_ = 0;
  uint64_t synced_index_ = 0;
  // Lowest index replaced by a conflict truncation since the in-flight
  // Sync() took its chunks: entries from there on are not covered by it.
  uint64_t truncated_since_take_ = UINT64_MAX;
  LogHardState hard_state_;
  std::map<uint64_t, Segment> segments_;  // by sequence number
  uint64_t tail_seq_ = 0;                 // segment new records go to
  std::vector<Chunk> pending_;
  std::string spare_buffer_;  // recycled chunk buffer: avoids regrowing one per Sync
  Status io_error_;           // sticky: set when a write or sync failed
};

}  // namespace flin::store
