#include "tests/integration/harness.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

namespace flin::test {

namespace fs = std::filesystem;

namespace {
// In a forked child before exec: close every descriptor but stdin/out/err.
// Sockets the test process holds (other daemons' client connections, an
// in-process TCP proxy's listeners and connections: asio does not open them
// close-on-exec) would otherwise live on in the child, and a connection the
// test closes would stay open as long as any child runs.
void CloseInheritedFds() { close_range(3, ~0u, 0); }
}  // namespace

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/flin-test-XXXXXX";
  char* p = mkdtemp(tmpl.data());
  if (!p) std::abort();
  path_ = p;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

namespace {
// Whether 127.0.0.1:port can be bound right now.
bool Bindable(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}
}  // namespace

// Port 0 would hand out a port from the ephemeral range, which every
// outgoing connection on the machine also draws from: between this check and
// flind's bind, a client socket of a test running in parallel could take it
// (seen in CI: a cluster node's peer port, which cannot be re-picked once the
// cluster's member list is written). So pick at random below that range.
uint16_t FreePort() {
  int low = 32768;
  std::ifstream range("/proc/sys/net/ipv4/ip_local_port_range");
  range >> low;
  static std::mutex mu;
  static std::mt19937 rng(std::random_device{}());
  const int first = 20000, last = std::min(low, 65536) - 1;
  if (last - first >= 1000) {
    for (int i = 0; i < 200; ++i) {
      uint16_t port;
      {
        std::lock_guard<std::mutex> lock(mu);
        port = static_cast<uint16_t>(std::uniform_int_distribution<int>(first, last)(rng));
      }
      if (Bindable(port)) return port;
    }
  }
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

bool WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds deadline) {
  auto until = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < until) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return cond();
}

ProcResult RunProcess(const std::vector<std::string>& argv, std::string_view stdin_data,
                      std::chrono::milliseconds timeout,
                      const std::vector<std::string>& extra_env) {
  int in_p[2], out_p[2], err_p[2];
  if (pipe2(in_p, O_CLOEXEC) || pipe2(out_p, O_CLOEXEC) || pipe2(err_p, O_CLOEXEC)) std::abort();
  pid_t pid = fork();
  if (pid == 0) {
    dup2(in_p[0], 0);
    dup2(out_p[1], 1);
    dup2(err_p[1], 2);
    CloseInheritedFds();
    for (const auto& e : extra_env) putenv(const_cast<char*>(e.c_str()));
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  close(in_p[0]);
  close(out_p[1]);
  close(err_p[1]);
  ProcResult r;
  size_t written = 0;
  int in_fd = in_p[1];
  if (stdin_data.empty()) {
    close(in_fd);
    in_fd = -1;
  } else {
    fcntl(in_fd, F_SETFL, O_NONBLOCK);
  }
  auto until = std::chrono::steady_clock::now() + timeout;
  int out_fd = out_p[0], err_fd = err_p[0];
  while (out_fd >= 0 || err_fd >= 0) {
    pollfd fds[3];
    int n = 0;
    if (out_fd >= 0) fds[n++] = {out_fd, POLLIN, 0};
    if (err_fd >= 0) fds[n++] = {err_fd, POLLIN, 0};
    if (in_fd >= 0) fds[n++] = {in_fd, POLLOUT, 0};
    int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                    until - std::chrono::steady_clock::now())
                                    .count());
    if (left <= 0) {
      kill(pid, SIGKILL);
      break;
    }
    if (poll(fds, n, left) < 0) continue;
    for (int i = 0; i < n; ++i) {
      if (!fds[i].revents) continue;
      int fd = fds[i].fd;
      if (fd == in_fd) {
        ssize_t w = write(in_fd, stdin_data.data() + written, stdin_data.size() - written);
        if (w > 0) written += static_cast<size_t>(w);
        if (w < 0 || written == stdin_data.size()) {
          close(in_fd);
          in_fd = -1;
        }
        continue;
      }
      char buf[65536];
      ssize_t got = read(fd, buf, sizeof buf);
      if (got <= 0) {
        close(fd);
        (fd == out_fd ? out_fd : err_fd) = -1;
      } else {
        (fd == out_fd ? r.out : r.err).append(buf, static_cast<size_t>(got));
      }
    }
  }
  if (in_fd >= 0) close(in_fd);
  if (out_fd >= 0) close(out_fd);
  if (err_fd >= 0) close(err_fd);
  int status = 0;
  waitpid(pid, &status, 0);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string FlindPath() { return FLIN_TEST_FLIND; }
std::string FlinPath() { return FLIN_TEST_FLIN; }

Flind::Flind(Options opts) : opts_(std::move(opts)) {
  if (opts_.data_dir.empty()) {
    own_dir_ = std::make_unique<TempDir>();
    data_dir_ = own_dir_->path() + "/data";
    log_path_ = own_dir_->path() + "/flind.log";
  } else {
    data_dir_ = opts_.data_dir;
    log_path_ = data_dir_ + ".flind.log";
  }
}

Flind::~Flind() {
  if (pid_ > 0) Terminate();
}

std::string Flind::log() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool Flind::Start(std::string* why) {
  for (int attempt = 0; attempt < 5; ++attempt) {
    if (opts_.tcp && (attempt > 0 || port_ == 0)) port_ = FreePort();
    std::vector<std::string> argv = {FlindPath(), "--data-dir", data_dir_, "--log-level", "info"};
    argv.push_back("--listen");
    argv.push_back(opts_.tcp ? "127.0.0.1:" + std::to_string(port_) : "none");
    for (const auto& a : opts_.extra_args) argv.push_back(a);
    pid_t pid = fork();
    if (pid == 0) {
      int fd = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      dup2(fd, 2);
      dup2(fd, 1);
      CloseInheritedFds();
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    pid_ = pid;
    if (!opts_.wait_ready) return true;
    bool exited = false;
    bool up = WaitFor([&] {
      int status;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        exited = true;
        return true;
      }
      auto addr = client::Address::Parse("unix:" + socket_path());
      client::ConnectOptions o;
      o.connect_timeout = std::chrono::milliseconds(200);
      auto c = client::Connection::Connect(*addr, o);
      if (!c.ok()) return false;
      auto r = (*c)->Command({"PING"});
      // A password-protected server answers PING before AUTH too.
      return r.ok() && r->str == "PONG";
    });
    if (exited) {
      pid_ = -1;
      std::string l = log();
      if (l.find("Address already in use") != std::string::npos && opts_.tcp) continue;
      if (why) *why = l;
      return false;
    }
    if (!up) {
      if (why) *why = "flind did not answer PING in time:\n" + log();
      Kill9();
      return false;
    }
    return true;
  }
  if (why) *why = "no free port after 5 attempts:\n" + log();
  return false;
}

void Flind::Kill9() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  int status;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

int Flind::Terminate() {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int Flind::Terminate(std::chrono::milliseconds grace) {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  kill(pid_, SIGCONT);
  int status = 0;
  bool exited = WaitFor([&] { return waitpid(pid_, &status, WNOHANG) == pid_; }, grace);
  if (!exited) {
    kill(pid_, SIGKILL);
    waitpid(pid_, &status, 0);
  }
  pid_ = -1;
  last_exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return last_exit_status_;
}

void Flind::Signal(int sig) const {
  if (pid_ > 0) kill(pid_, sig);
}

bool Flind::Alive() {
  if (pid_ <= 0) return false;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) != pid_) return true;
  pid_ = -1;
  last_exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return false;
}

std::unique_ptr<client::Connection> Flind::Connect(bool tcp, client::ConnectOptions opts) const {
  auto addr = client::Address::Parse(tcp ? tcp_addr() : unix_addr());
  EXPECT_TRUE(addr.ok());
  auto c = client::Connection::Connect(*addr, opts);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  if (!c.ok()) return nullptr;
  return std::move(c).value();
}

client::Reply Cmd(client::Connection& c, const std::vector<std::string_view>& args) {
  auto r = c.Command(args);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  if (!r.ok())
    return client::Reply{client::Reply::Type::kError, "client: " + r.status().ToString()};
  return std::move(r).value();
}

}  // namespace flin::test
