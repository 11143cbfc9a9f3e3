// flin's command tree: global flags, the key-value subcommands, `shell`,
// `completion`, and the import/export commands from import_export.h. The
// shell completions and the man-page test walk the same CLI::App this file
// builds, so a flag added here shows up everywhere.
//
// Thread-safety: single-threaded (a CLI run).
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "base/status.h"
#include "cli/output.h"
#include "net/client.h"

namespace flin::cli {

struct GlobalOptions {
  std::string addr;  // empty: FLIN_ADDR, else the default socket
  std::string password;
  double timeout_s = 5.0;
  bool json = false;
  bool raw = false;
  bool human = false;
  bool nul = false;
  bool no_newline = false;
  bool quiet = false;
  std::string color = "auto";
  std::string consistency;  // --consistency: "", "linearizable" or "stale"
};

// The daemon's default socket: $XDG_DATA_HOME/flin/flin.sock, else
// ~/.local/share/flin/flin.sock.
std::string DefaultAddress();

// Maps a failed client call to flin's exit-code contract (exit_codes.h).
int ExitCodeFor(const Status& status);

// What a subcommand needs at run time: connection settings and the printer.
class Session {
 public:
  explicit Session(const GlobalOptions& opts);
  // Connects (and AUTHs, and sets --consistency) with the global flags.
  // Failures are reported on stderr by the caller via Fail().
  Result<std::unique_ptr<client::Connection>> Connect() const;
  // The same, with the connect/read/write deadlines capped at `limit`
  // (health --wait bounds each try by what is left of its wait).
  Result<std::unique_ptr<client::Connection>> Connect(std::chrono::milliseconds limit) const;
  // Prints "flin: <context>: <message>" (unless the message is empty) and
  // returns the exit code for status.
  int Fail(const Status& status) const;
  Printer& printer() { return printer_; }
  const GlobalOptions& options() const { return opts_; }
  std::string address() const { return address_; }
  bool stdout_tty() const { return stdout_tty_; }
  bool stdin_tty() const { return stdin_tty_; }
  bool stderr_tty() const { return stderr_tty_; }

 private:
  GlobalOptions opts_;
  std::string address_;
  bool stdout_tty_, stdin_tty_, stderr_tty_;
  Printer printer_;
};

struct AppState {
  GlobalOptions global;
  // Set by the chosen subcommand's callback; run after parsing succeeds.
  std::function<int(Session&)> action;
  // Written by the import/export commands (they run inside parsing).
  int import_export_exit = -1;
};

// Registers every flag and subcommand on app. `state` must outlive app.
void BuildApp(CLI::App& app, AppState* state);

// The whole program: parse, run, map errors to exit codes.
int RunFlin(int argc, const char* const* argv);

}  // namespace flin::cli
