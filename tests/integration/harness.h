// Test harness for integration tests: real flind processes in unique temp
// dirs on unique ports, subprocesses with captured output, and polling with
// deadlines instead of fixed sleeps.
// Thread-safety: each object belongs to one test thread.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "net/client.h"

namespace flin::test {

// A fresh directory under $TMPDIR (or /tmp), removed with its contents.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A loopback TCP port that was free a moment ago, chosen at random below
// the kernel's ephemeral range (see harness.cc for why).
uint16_t FreePort();

// Polls cond every few ms until it is true or `deadline` passes.
bool WaitFor(const std::function<bool()>& cond,
             std::chrono::milliseconds deadline = std::chrono::seconds(20));

struct ProcResult {
  int exit_code = -1;  // -1: killed by a signal or timed out
  std::string out, err;
};
// Runs argv[0] with the given stdin; captures stdout and stderr.
ProcResult RunProcess(const std::vector<std::string>& argv, std::string_view stdin_data = {},
                      std::chrono::milliseconds timeout = std::chrono::seconds(60),
                      const std::vector<std::string>& extra_env = {});

std::string FlindPath();
std::string FlinPath();  // empty when the CLI was not built

class Flind {
 public:
  struct Options {
    std::string data_dir;  // empty: a fresh TempDir owned by this object
    bool tcp = true;
    std::vector<std::string> extra_args;
    // false: Start() returns once the process is forked (for daemons that
    // are expected not to come up, or that answer PING only later).
    bool wait_ready = true;
  };
  explicit Flind(Options opts);
  Flind() : Flind(Options{}) {}
  ~Flind();
  Flind(const Flind&) = delete;
  Flind& operator=(const Flind&) = delete;

  // Starts flind and waits until it answers PING; false (with the log in
  // *why) when it exits or never answers.
  bool Start(std::string* why = nullptr);
  void Kill9();     // SIGKILL + reap
  int Terminate();  // SIGTERM + reap; returns the exit status (-1 on signal)
  // SIGTERM, then SIGKILL if it has not exited after `grace`; reaps. Returns
  // the exit status (-1 on signal). A stopped (SIGSTOP) process is continued.
  int Terminate(std::chrono::milliseconds grace);
  // Sends `sig` (SIGSTOP, SIGCONT, ...) to the running process.
  void Signal(int sig) const;
  // False once the process has exited (it is then reaped and running()
  // becomes false); last_exit_status() says how.
  bool Alive();
  int last_exit_status() const { return last_exit_status_; }
  // Arguments used by the next Start().
  const std::vector<std::string>& extra_args() const { return opts_.extra_args; }
  void set_extra_args(std::vector<std::string> args) { opts_.extra_args = std::move(args); }
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }

  const std::string& data_dir() const { return data_dir_; }
  std::string socket_path() const { return data_dir_ + "/flin.sock"; }
  uint16_t port() const { return port_; }
  std::string unix_addr() const { return "unix:" + socket_path(); }
  std::string tcp_addr() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string log() const;  // flind's stderr so far

  // A connected client over the unix socket (or TCP); fails the test on error.
  std::unique_ptr<client::Connection> Connect(bool tcp = false,
                                              client::ConnectOptions opts = {}) const;

 private:
  Options opts_;
  std::unique_ptr<TempDir> own_dir_;
  std::string data_dir_;
  std::string log_path_;
  uint16_t port_ = 0;
  // Atomic so that other threads may ask running() while the test thread
  // kills or restarts the process.
  std::atomic<pid_t> pid_{-1};
  int last_exit_status_ = 0;  // -1: killed by a signal
};

// Shorthand: run one command and return the reply.
client::Reply Cmd(client::Connection& c, const std::vector<std::string_view>& args);

}  // namespace flin::test
