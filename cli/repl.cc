#include "cli/repl.h"

#include <editline/readline.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "base/strings.h"
#include "cli/app.h"
#include "cli/args.h"
#include "cli/exit_codes.h"
#include "net/command_spec.h"

namespace flin::cli {
namespace {

constexpr std::string_view kLocalCommands[] = {"help", "quit", "exit", "clear"};

// The keywords of a command's syntax line: all-caps words other than the
// command name ("SET key value [NX | XX] [GET] ..." -> NX XX GET ...).
std::vector<std::string> SyntaxKeywords(const net::CommandSpec& spec) {
  std::vector<std::string> words;
  std::string_view syn = spec.syntax;
  size_t i = 0;
  bool first = true;
  while (i < syn.size()) {
    size_t j = i;
    while (j < syn.size() &&
           ((syn[j] >= 'A' && syn[j] <= 'Z') || (syn[j] >= 'a' && syn[j] <= 'z') ||
            (syn[j] >= '0' && syn[j] <= '9') || syn[j] == '-' || syn[j] == '_')) {
      ++j;
    }
    if (j == i) {
      ++i;
      continue;
    }
    std::string_view w = syn.substr(i, j - i);
    i = j;
    if (first) {  // the command name itself
      first = false;
      continue;
    }
    bool upper = w.size() >= 2 &&
                 std::all_of(w.begin(), w.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
    if (upper && std::find(words.begin(), words.end(), w) == words.end()) {
      words.emplace_back(w);
    }
  }
  return words;
}

bool StartsWithIgnoreCase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && EqualsIgnoreCase(s.substr(0, prefix.size()), prefix);
}

std::string MatchCase(std::string_view candidate, std::string_view typed) {
  const bool upper = !typed.empty() && typed[0] >= 'A' && typed[0] <= 'Z';
  return upper ? ToUpper(candidate) : ToLower(candidate);
}

// Connection state shared by the interactive and piped loops.
class Runner {
 public:
  explicit Runner(Session& s) : s_(s) {}

  // Ensures a live connection; prints the failure and returns its exit code.
  int EnsureConnected(std::string_view where) {
    if (conn_ && conn_->healthy()) return kExitOk;
    conn_.reset();
    auto c = s_.Connect();
    if (!c.ok()) {
      Report(where, c.status().message());
      return ExitCodeFor(c.status());
    }
    conn_ = std::move(*c);
    return kExitOk;
  }

  Result<client::Reply> Send(const std::vector<std::string>& args) {
    std::vector<std::string_view> views(args.begin(), args.end());
    auto r = conn_->Command(views);
    if (!r.ok()) conn_.reset();
    return r;
  }

  Result<std::vector<client::Reply>> SendBatch(
      const std::vector<std::vector<std::string>>& commands) {
    auto r = conn_->Pipeline(commands);
    if (!r.ok()) conn_.reset();
    return r;
  }

  static void Report(std::string_view where, std::string_view msg) {
    std::fprintf(stderr, "flin: %.*s%.*s\n", static_cast<int>(where.size()), where.data(),
                 static_cast<int>(msg.size()), msg.data());
  }

 private:
  Session& s_;
  std::unique_ptr<client::Connection> conn_;
};

// Line reader over a file descriptor that can tell whether another line is
// available without blocking (to decide when to send a pipelined batch).
class FdLineReader {
 public:
  explicit FdLineReader(int fd) : fd_(fd) {}

  // One line without '\n' (and without a trailing '\r'); false at EOF.
  bool ReadLine(std::string* line) {
    while (true) {
      size_t nl = buf_.find('\n', pos_);
      if (nl != std::string::npos) {
        line->assign(buf_, pos_, nl - pos_);
        pos_ = nl + 1;
        break;
      }
      if (eof_) {
        if (pos_ >= buf_.size()) return false;
        line->assign(buf_, pos_, std::string::npos);
        pos_ = buf_.size();
        break;
      }
      Fill();
    }
    if (!line->empty() && line->back() == '\r') line->pop_back();
    return true;
  }

  // True when ReadLine would not block.
  bool LineReady() {
    if (eof_ || buf_.find('\n', pos_) != std::string::npos) return true;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 0) <= 0) return false;
    Fill();
    return eof_ || buf_.find('\n', pos_) != std::string::npos;
  }

 private:
  void Fill() {
    if (pos_ > 0 && pos_ == buf_.size()) {
      buf_.clear();
      pos_ = 0;
    } else if (pos_ > (1 << 20)) {
      buf_.erase(0, pos_);
      pos_ = 0;
    }
    char chunk[65536];
    ssize_t n;
    do {
      n = ::read(fd_, chunk, sizeof chunk);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {
      eof_ = true;
      return;
    }
    buf_.append(chunk, static_cast<size_t>(n));
  }

  int fd_;
  std::string buf_;
  size_t pos_ = 0;
  bool eof_ = false;
};

bool IsBlankOrComment(std::string_view s) {
  size_t i = s.find_first_not_of(" \t\r\v\f");
  return i == std::string_view::npos || s[i] == '#';
}

// libedit hooks (C callbacks, hence file-level state).
std::vector<std::string> g_candidates;

char* CandidateGenerator(const char* /*text*/, int state) {
  static size_t next;
  if (state == 0) next = 0;
  if (next >= g_candidates.size()) return nullptr;
  return ::strdup(g_candidates[next++].c_str());
}

char** CompleteHook(const char* text, int start, int /*end*/) {
  rl_attempted_completion_over = 1;  // never fall back to file names
  std::string_view line(rl_line_buffer ? rl_line_buffer : "");
  std::string_view before = line.substr(0, std::min<size_t>(start, line.size()));
  g_candidates = CompleteShellWord(before, text);
  if (g_candidates.empty()) return nullptr;
  return rl_completion_matches(text, CandidateGenerator);
}

int RunInteractive(Session& s) {
  Runner runner(s);
  const std::string history = HistoryPath();
  {
    // Create the history directory (0700: commands may hold secrets).
    std::string dir = history.substr(0, history.rfind('/'));
    for (size_t p = 1; p != std::string::npos; p = dir.find('/', p + 1)) {
      ::mkdir(dir.substr(0, p).c_str(), 0700);
    }
    ::mkdir(dir.c_str(), 0700);
  }
  rl_readline_name = "flin";
  rl_attempted_completion_function = CompleteHook;
  rl_basic_word_break_characters = " \t\n";
  using_history();
  stifle_history(2000);
  read_history(history.c_str());

  std::fprintf(stderr, "flin shell, %s. Type help for commands, quit or Ctrl-D to leave.\n",
               s.address().c_str());
  runner.EnsureConnected("");  // early feedback; not fatal: retried per command

  std::string pending;
  while (true) {
    char* raw = readline(pending.empty() ? "flin> " : "...> ");
    if (raw == nullptr) {
      if (!pending.empty()) std::fprintf(stderr, "\nflin: unterminated quote, line discarded\n");
      std::fputc('\n', stdout);
      break;
    }
    std::string text = raw;
    std::free(raw);
    if (!pending.empty()) text = pending + "\n" + text;
    SplitResult split = SplitArgs(text);
    if (split.kind == SplitResult::Kind::kIncomplete) {
      pending = std::move(text);
      continue;
    }
    pending.clear();
    if (IsBlankOrComment(text)) continue;
    add_history(text.c_str());
    write_history(history.c_str());
    ::chmod(history.c_str(), 0600);  // commands may hold secrets (AUTH)
    if (split.kind == SplitResult::Kind::kError) {
      std::fprintf(stderr, "(error) %s\n", split.error.c_str());
      continue;
    }
    const std::vector<std::string>& args = split.args;
    const std::string name = ToLower(args[0]);
    if (name == "quit" || name == "exit") break;
    if (name == "help") {
      std::string help = ShellHelp(args.size() > 1 ? args[1] : "");
      std::fwrite(help.data(), 1, help.size(), stdout);
      continue;
    }
    if (name == "clear") {
      std::fputs("\x1b[H\x1b[2J", stdout);
      continue;
    }
    if (runner.EnsureConnected("") != kExitOk) continue;
    auto reply = runner.Send(args);
    if (!reply.ok()) {
      Runner::Report("", reply.status().message());
      continue;
    }
    s.printer().Reply(*reply);
    s.printer().Flush();
  }
  return kExitOk;
}

}  // namespace

std::string HistoryPath() {
  const char* xdg = std::getenv("XDG_STATE_HOME");
  if (xdg != nullptr && xdg[0] == '/') return std::string(xdg) + "/flin/history";
  const char* home = std::getenv("HOME");
  return std::string(home ? home : "") + "/.local/state/flin/history";
}

std::vector<std::string> CompleteShellWord(std::string_view line_before, std::string_view word) {
  std::vector<std::string> out;
  SplitResult split = SplitArgs(line_before);
  if (split.kind != SplitResult::Kind::kOk) return out;
  const std::vector<std::string>& words = split.args;
  // Follow the case of what is typed, or of the command word when nothing is.
  const std::string_view case_model = !word.empty() || words.empty() ? word : words[0];
  auto add = [&](std::string_view candidate) {
    if (StartsWithIgnoreCase(candidate, word)) {
      std::string c = MatchCase(candidate, case_model);
      if (std::find(out.begin(), out.end(), c) == out.end()) out.push_back(std::move(c));
    }
  };
  if (words.empty() || (words.size() == 1 && EqualsIgnoreCase(words[0], "help"))) {
    for (const net::CommandSpec& spec : net::AllCommands()) add(spec.name);
    if (words.empty()) {
      for (std::string_view local : kLocalCommands) add(local);
    }
  } else if (const net::CommandSpec* spec = net::FindCommand(words[0])) {
    for (const std::string& kw : SyntaxKeywords(*spec)) add(kw);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string ShellHelp(std::string_view command) {
  std::string out;
  if (!command.empty()) {
    const net::CommandSpec* spec = net::FindCommand(command);
    if (spec == nullptr) {
      return "unknown command '" + std::string(command) + "'; type help for the list\n";
    }
    out += "  " + std::string(spec->syntax) + "\n";
    out += "  " + std::string(spec->summary) + ".\n";
    out += "  group: " + std::string(spec->group);
    std::string flags;
    if (spec->flags & net::kCmdRead) flags += " read";
    if (spec->flags & net::kCmdWrite) flags += " write";
    if (spec->flags & net::kCmdAdmin) flags += " admin";
    if (!flags.empty()) out += ", flags:" + flags;
    out += "\n";
    return out;
  }
  out +=
      "Type a server command with its arguments, e.g. SET k \"hello world\" or MGET a b.\n"
      "Quoting as in redis-cli: \"...\" with \\n \\t \\xHH escapes, '...' literal; an open\n"
      "quote continues on the next line. Tab completes commands and keywords.\n"
      "Shell commands: help [COMMAND], clear, quit (or exit, Ctrl-D).\n";
  std::string_view group;
  for (const net::CommandSpec& spec : net::AllCommands()) {
    if (spec.group != group) {
      group = spec.group;
      out += "\n" + std::string(group) + ":\n";
    }
    std::string name = ToUpper(spec.name);
    out += "  " + name + std::string(name.size() < 12 ? 12 - name.size() : 1, ' ') +
           std::string(spec.summary) + "\n";
  }
  return out;
}

int RunScript(Session& s, std::FILE* in) {
  Runner runner(s);
  Printer& printer = s.printer();
  FdLineReader reader(::fileno(in));
  int worst = kExitOk;
  std::string line, pending;
  size_t line_no = 0, start_line = 0;
  // Commands that arrive together are pipelined (one write, one read of all
  // replies) so a large piped script runs at protocol speed; a pipe fed
  // line by line still gets each reply before the next line is read.
  struct Queued {
    std::vector<std::string> args;
    size_t line;
  };
  std::vector<Queued> batch;
  constexpr size_t kMaxBatch = 512;
  // Sends the batch and prints its replies; false when the run must stop.
  auto flush = [&]() -> bool {
    if (batch.empty()) return true;
    const std::string first_where = "line " + std::to_string(batch.front().line) + ": ";
    int code = runner.EnsureConnected(first_where);
    if (code != kExitOk) {
      worst = std::max(worst, code);
      return false;
    }
    std::vector<std::vector<std::string>> commands;
    commands.reserve(batch.size());
    for (Queued& q : batch) commands.push_back(std::move(q.args));
    auto replies = runner.SendBatch(commands);
    if (!replies.ok()) {
      Runner::Report(first_where, replies.status().message());
      worst = std::max(worst, ExitCodeFor(replies.status()));
      return false;
    }
    for (size_t i = 0; i < replies->size(); ++i) {
      const client::Reply& reply = (*replies)[i];
      if (reply.is_error()) {
        printer.Flush();
        Runner::Report("line " + std::to_string(batch[i].line) + ": ", reply.str);
        // TRYAGAIN counts as 3 (retry later), other errors as 4.
        worst = std::max<int>(worst, ExitCodeFor(Status::Server(reply.str)));
        continue;
      }
      printer.Reply(reply);
      if (reply.is_nil()) worst = std::max<int>(worst, kExitNotFound);
    }
    printer.Flush();
    batch.clear();
    return true;
  };
  bool quit = false;
  while (!quit) {
    if (!batch.empty() && (batch.size() >= kMaxBatch || !reader.LineReady())) {
      if (!flush()) return worst;
    }
    if (!reader.ReadLine(&line)) break;
    ++line_no;
    std::string text;
    if (pending.empty()) {
      start_line = line_no;
      text = std::move(line);
    } else {
      text = pending + "\n" + line;
    }
    SplitResult split = SplitArgs(text);
    if (split.kind == SplitResult::Kind::kIncomplete) {
      pending = std::move(text);
      continue;
    }
    pending.clear();
    if (IsBlankOrComment(text)) continue;
    if (split.kind == SplitResult::Kind::kError) {
      if (!flush()) return worst;  // keep stderr in line order
      Runner::Report("line " + std::to_string(start_line) + ": ", split.error);
      worst = std::max<int>(worst, kExitUsage);
      continue;
    }
    const std::string name = ToLower(split.args[0]);
    if (name == "quit" || name == "exit") {
      quit = true;
      break;
    }
    batch.push_back({std::move(split.args), start_line});
  }
  if (!flush()) return worst;
  if (!pending.empty()) {
    Runner::Report("line " + std::to_string(start_line) + ": ",
                   "unterminated quote at end of input");
    worst = std::max<int>(worst, kExitUsage);
  }
  printer.Flush();
  return worst;
}

int RunShell(Session& session) {
  if (session.stdin_tty()) return RunInteractive(session);
  return RunScript(session, stdin);
}

}  // namespace flin::cli
