// `flin import` and `flin export`: bulk loading of JSON, JSONL and CSV/TSV
// files into flind, and consistent streaming dumps out of it.
//
// Import streams: files are read through a fixed buffer, rows are grouped
// into batches (MSET, or MSETEX ... PX/PXAT for rows with an expiry; with
// --atomic, IMPORT.ADD into a server-side staging area committed by one
// IMPORT.COMMIT), and writer threads keep several batches in flight on a few
// connections while the reader parses ahead. Rows are spread over the
// connections by key hash, so all rows of one key travel in input order on
// one connection. Memory is bounded by (connections x batches in flight and
// queued) x the batch byte cap, whatever the input size.
//
// Rows are numbered from 0 across all input files in order (CSV header rows
// are not rows). `--resume-from N` skips rows 0..N-1; after a failure the
// command prints the N that continues without losing or re-ordering work.
// Duplicate keys: the row that comes last in the input wins (a key's batches
// are written in input order on its connection; with --atomic the server
// keeps the last staged value). Rows whose expire_at has already passed are
// skipped and counted. Bad rows stop the import (or go to --reject-file as
// JSON lines {"file", "error", "row"}); rows still in unsent batches at that
// point are not written, so an error in the first batch writes nothing.
//
// Export uses EXPORT.BEGIN/NEXT/END (a consistent snapshot, read in chunks)
// and writes rows as they arrive. Keys and values that are not valid UTF-8
// are written as {"base64": "..."} in JSON/JSONL; expiry is written as the
// absolute `expire_at` in Unix milliseconds, which import honours, so an
// export imported into an empty store reproduces it exactly.
//
// Thread-compatible: the registered subcommands are run by CLI11 on the
// calling thread; each run owns its threads and joins them before returning.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "base/status.h"
#include "cli/csv.h"
#include "net/client.h"

namespace CLI {
class App;
}

namespace flin::cli {

using Connector = std::function<Result<std::unique_ptr<client::Connection>>()>;

// Registers the `import` and `export` subcommands (with all their flags) on
// app. When a subcommand runs, it connects with connect() and stores its exit
// code (cli/exit_codes.h) in *exit_code.
void AddImportExportCommands(CLI::App& app, Connector connect, int* exit_code);

// ---------------------------------------------------------------------------
// The pieces below are exposed for tests.

enum class Format { kJson, kJsonl, kCsv, kTsv };
std::optional<Format> FormatFromName(std::string_view name);  // "json", "jsonl", ...
// From the file extension (.json .jsonl .ndjson .csv .tsv, case-insensitive).
std::optional<Format> FormatFromPath(std::string_view path);

// One input row. Exactly one of ttl_ms / expire_at_ms is set (> 0) when the
// row carries its own expiry.
struct ImportRow {
  std::string key;
  std::string value;
  int64_t ttl_ms = 0;        // relative, from a "ttl" field/column (seconds in input)
  int64_t expire_at_ms = 0;  // absolute Unix ms, from an "expire_at" field/column
  TextPos pos;               // where the row starts
};

// Where rows go while a file is read.
class RowSink {
 public:
  virtual ~RowSink() = default;
  // Returns false to stop reading (ReadRows then returns Ok: the sink knows
  // why it stopped).
  virtual bool OnRow(ImportRow& row) = 0;
  // A row that could be skipped (the input around it is intact): error is
  // "LINE:COLUMN: what", raw the row's text when known. Returns true to
  // skip it and go on (--reject-file), false to stop with that error.
  virtual bool OnBadRow(const Status& error, std::string_view raw) = 0;
};

// Which CSV/TSV columns hold what (names from the header row, or 1-based
// numbers). Empty = the default: "key" (else the first column), "value"
// (else the whole row as a JSON object), "ttl", "expire_at".
struct ColumnOptions {
  std::string key_col;
  std::string value_col;
  std::string ttl_col;
  std::string expire_at_col;
};

// Reads every row of in. Errors that stop the read are InvalidArgument
// "LINE:COLUMN: what is wrong" (the caller prefixes the file name) or the
// reader's IOError.
Status ReadRows(ByteReader* in, Format format, const ColumnOptions& columns, RowSink* sink);

// Helpers shared with tests.
bool IsValidUtf8(std::string_view s);
std::string Base64Encode(std::string_view data);
std::optional<std::string> Base64Decode(std::string_view text);
// s as a JSON string literal, or {"base64":"..."} when s is not valid UTF-8.
void AppendJsonText(std::string* out, std::string_view s);

}  // namespace flin::cli
