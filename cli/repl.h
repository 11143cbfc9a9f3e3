// flin's shell: an interactive REPL (libedit line editing, persistent
// history, tab completion and help from net::AllCommands()) on a terminal,
// and a non-interactive runner for piped stdin (one command per line, exit
// status = the worst result). Lines are raw server commands with redis-cli
// quoting (args.h); an unclosed quote continues on the next line.
//
// Thread-safety: single-threaded (uses libedit's global state).
#pragma once

#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

namespace flin::cli {

class Session;

// Interactive when stdin is a terminal, else RunScript(stdin).
int RunShell(Session& session);

// Runs one command per line of `in` until EOF (or QUIT/EXIT). Replies go to
// the session's printer, errors to stderr as "flin: line N: ...". Returns the
// highest exit code seen: 1 for a nil reply, 2 for a line that does not
// parse, 3 when the connection fails (it stops there), 4 for an error reply.
int RunScript(Session& session, std::FILE* in);

// Completion candidates for `word`, given the text of the line before it.
// The first word completes to command names (plus the shell's own: help,
// quit, exit, clear); later words to the keywords of that command's syntax
// (SET -> NX XX GET EX PX ...), or to command names after `help`. Candidates
// follow the case of `word` (upper when it starts upper case).
std::vector<std::string> CompleteShellWord(std::string_view line_before, std::string_view word);

// `help` and `help CMD` text of the shell.
std::string ShellHelp(std::string_view command);

// $XDG_STATE_HOME/flin/history, else ~/.local/state/flin/history.
std::string HistoryPath();

}  // namespace flin::cli
