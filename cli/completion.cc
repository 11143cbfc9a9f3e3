#include "cli/completion.h"

#include <CLI/CLI.hpp>
#include <cctype>

namespace flin::cli {
namespace {

std::string FirstLine(std::string_view s) {
  size_t nl = s.find('\n');
  return std::string(nl == std::string_view::npos ? s : s.substr(0, nl));
}

OptionSpec FromOption(const CLI::Option& opt) {
  OptionSpec spec;
  for (const std::string& s : opt.get_snames()) spec.names.push_back("-" + s);
  for (const std::string& l : opt.get_lnames()) spec.names.push_back("--" + l);
  spec.description = FirstLine(opt.get_description());
  spec.takes_value = opt.get_expected_max() != 0;
  // get_type_name() is "NAME" or "NAME:{a,b,c}" (validator descriptions).
  std::string type = opt.get_type_name();
  size_t colon = type.find(':');
  spec.value_name = type.substr(0, colon);
  size_t open = type.find('{');
  size_t close = type.find('}', open == std::string::npos ? 0 : open);
  if (open != std::string::npos && close != std::string::npos) {
    std::string list = type.substr(open + 1, close - open - 1);
    size_t pos = 0;
    while (pos <= list.size()) {
      size_t comma = list.find(',', pos);
      if (comma == std::string::npos) comma = list.size();
      std::string item = list.substr(pos, comma - pos);
      while (!item.empty() && item.front() == ' ') item.erase(item.begin());
      if (!item.empty()) spec.choices.push_back(item);
      pos = comma + 1;
    }
  }
  if (spec.choices.empty()) {
    spec.dirs = spec.value_name.find("DIR") != std::string::npos;
    spec.files = !spec.dirs && (spec.value_name.find("FILE") != std::string::npos ||
                                type.find("FILE") != std::string::npos);
  }
  if (spec.choices.empty() && !spec.dirs && !spec.files) {
    // Names say it when the type does not: --reject-file, -o/--output, FILE...
    std::string lname = opt.get_lnames().empty() ? opt.get_name() : opt.get_lnames().front();
    for (char& ch : lname) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    auto ends_with = [&](std::string_view suffix) {
      return lname.size() >= suffix.size() &&
             lname.compare(lname.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    spec.files = ends_with("file") || ends_with("files") || lname == "output";
  }
  if (opt.get_positional() && spec.value_name.empty()) spec.value_name = opt.get_name();
  if (opt.get_positional()) spec.names = {opt.get_name()};
  return spec;
}

void CollectOptions(const CLI::App& app, std::vector<OptionSpec>* options,
                    std::vector<OptionSpec>* positionals, bool* repeats) {
  for (const CLI::Option* opt : app.get_options()) {
    if (opt->get_positional()) {
      OptionSpec p = FromOption(*opt);
      if (p.value_name == "TEXT" || p.value_name.empty()) p.value_name = opt->get_name();
      positionals->push_back(std::move(p));
      if (repeats != nullptr) *repeats = opt->get_items_expected_max() > 1;
    } else {
      options->push_back(FromOption(*opt));
    }
  }
}

// --- bash ------------------------------------------------------------------

std::string Join(const std::vector<std::string>& items, std::string_view sep = " ") {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += sep;
    out += items[i];
  }
  return out;
}

std::string AllNames(const std::vector<OptionSpec>& opts) {
  std::vector<std::string> names;
  for (const OptionSpec& o : opts) names.insert(names.end(), o.names.begin(), o.names.end());
  return Join(names);
}

// The compgen action for a value (option argument or positional).
std::string BashValueAction(const OptionSpec& o) {
  if (!o.choices.empty())
    return "COMPREPLY=($(compgen -W \"" + Join(o.choices) + "\" -- \"$cur\"))";
  if (o.dirs) return "compopt -o dirnames 2>/dev/null; COMPREPLY=($(compgen -d -- \"$cur\"))";
  if (o.files) return "compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- \"$cur\"))";
  return "COMPREPLY=()";
}

void BashValueCases(const std::string& cmd_pattern, const std::vector<OptionSpec>& opts,
                    std::string* out) {
  for (const OptionSpec& o : opts) {
    if (!o.takes_value) continue;
    std::vector<std::string> pats;
    for (const std::string& n : o.names) pats.push_back(cmd_pattern + ":" + n);
    *out += "        " + Join(pats, "|") + ") " + BashValueAction(o) + "; return ;;\n";
  }
}

// The completions inside one command: its flags (plus `inherited`) after
// a dash, else what its first positional offers.
void BashCommandBody(const CommandSpecForCompletion& c, const std::string& inherited,
                     const std::string& indent, std::string* out) {
  *out += indent + "if [[ \"$cur\" == -* ]]; then\n";
  *out += indent + "    COMPREPLY=($(compgen -W \"" + AllNames(c.options) + " " + inherited +
          "\" -- \"$cur\"))\n";
  *out += indent + "else\n";
  // The first positional with something to offer decides (SHELL choices,
  // FILE names); keys are not completed (that needs a server).
  std::string action = "COMPREPLY=()";
  for (const OptionSpec& pos : c.positionals) {
    if (!pos.choices.empty() || pos.files || pos.dirs) {
      action = BashValueAction(pos);
      break;
    }
  }
  *out += indent + "    " + action + "\n";
  *out += indent + "fi ;;\n";
}

std::string GenerateBash(const ProgramSpec& p) {
  const std::string fn = "_" + p.name + "_completion";
  std::string out;
  out += "# bash completion for " + p.name + "; generated by `flin completion bash" +
         (p.name == "flin" ? "" : " --flind") + "` from the program's own option table.\n";
  out += "# Do not edit: regenerate.\n";
  out += fn + "() {\n";
  out += "    local cur prev cmd sub i w\n";
  out += "    cur=\"${COMP_WORDS[COMP_CWORD]}\"\n";
  out += "    prev=\"\"\n";
  out += "    (( COMP_CWORD > 0 )) && prev=\"${COMP_WORDS[COMP_CWORD-1]}\"\n";
  out += "    cmd=\"\"\n";
  out += "    sub=\"\"\n";
  std::vector<std::string> global_value_opts;
  for (const OptionSpec& o : p.options) {
    if (o.takes_value)
      global_value_opts.insert(global_value_opts.end(), o.names.begin(), o.names.end());
  }
  if (!p.commands.empty()) {
    out += "    for ((i = 1; i < COMP_CWORD; i++)); do\n";
    out += "        w=\"${COMP_WORDS[i]}\"\n";
    out += "        case \"$w\" in\n";
    if (!global_value_opts.empty())
      out += "            " + Join(global_value_opts, "|") + ") ((i++)) ;;\n";
    out += "            -*) ;;\n";
    // The first word is the command, the second a nested command (only
    // consulted for commands that have them).
    out += "            *) if [[ -z \"$cmd\" ]]; then cmd=\"$w\"; else sub=\"$w\"; break; fi ;;\n";
    out += "        esac\n";
    out += "    done\n";
  }
  out += "    case \"$cmd:$prev\" in\n";
  for (const auto& c : p.commands) {
    BashValueCases(c.name, c.options, &out);
    for (const auto& nested : c.subcommands) BashValueCases(c.name, nested.options, &out);
  }
  BashValueCases("*", p.options, &out);
  out += "    esac\n";
  const std::string globals = AllNames(p.options);
  if (p.commands.empty()) {
    out += "    if [[ \"$cur\" == -* ]]; then\n";
    out += "        COMPREPLY=($(compgen -W \"" + globals + "\" -- \"$cur\"))\n";
    out += "    fi\n";
  } else {
    std::vector<std::string> names;
    for (const auto& c : p.commands) names.push_back(c.name);
    out += "    case \"$cmd\" in\n";
    out += "        \"\")\n";
    out += "            if [[ \"$cur\" == -* ]]; then\n";
    out += "                COMPREPLY=($(compgen -W \"" + globals + "\" -- \"$cur\"))\n";
    out += "            else\n";
    out += "                COMPREPLY=($(compgen -W \"" + Join(names) + "\" -- \"$cur\"))\n";
    out += "            fi ;;\n";
    for (const auto& c : p.commands) {
      out += "        " + c.name + ")\n";
      if (c.subcommands.empty()) {
        BashCommandBody(c, globals, "            ", &out);
        continue;
      }
      std::vector<std::string> nested_names;
      for (const auto& n : c.subcommands) nested_names.push_back(n.name);
      out += "            case \"$sub\" in\n";
      out += "                \"\")\n";
      out += "                    if [[ \"$cur\" == -* ]]; then\n";
      out += "                        COMPREPLY=($(compgen -W \"" + AllNames(c.options) + " " +
             globals + "\" -- \"$cur\"))\n";
      out += "                    else\n";
      out += "                        COMPREPLY=($(compgen -W \"" + Join(nested_names) +
             "\" -- \"$cur\"))\n";
      out += "                    fi ;;\n";
      for (const auto& n : c.subcommands) {
        out += "                " + n.name + ")\n";
        BashCommandBody(n, AllNames(c.options) + " " + globals, "                    ", &out);
      }
      out += "                *) COMPREPLY=() ;;\n";
      out += "            esac ;;\n";
    }
    out += "        *) COMPREPLY=() ;;\n";
    out += "    esac\n";
  }
  out += "}\n";
  out += "complete -F " + fn + " " + p.name + "\n";
  return out;
}

// --- zsh -------------------------------------------------------------------

// Text inside a single-quoted zsh word.
std::string ZshQuote(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// Text inside an _arguments [description].
std::string ZshDesc(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '[' || c == ']' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return ZshQuote(out);
}

std::string ZshAction(const OptionSpec& o) {
  if (!o.choices.empty()) return "(" + Join(o.choices) + ")";
  if (o.dirs) return "_files -/";
  if (o.files) return "_files";
  return " ";
}

std::string ZshValueName(const OptionSpec& o) {
  std::string name = o.value_name.empty() ? "VALUE" : o.value_name;
  for (char& c : name) {
    if (c == ':') c = '_';
  }
  return name;
}

void ZshOptionSpecs(const std::vector<OptionSpec>& opts, std::string* out) {
  for (const OptionSpec& o : opts) {
    for (const std::string& n : o.names) {
      std::string spec = n;
      if (o.takes_value) spec += n.size() == 2 ? "+" : "=";
      spec += "[" + ZshDesc(o.description) + "]";
      if (o.takes_value) spec += ":" + ZshQuote(ZshValueName(o)) + ":" + ZshQuote(ZshAction(o));
      *out += "        '" + spec + "'\n";
    }
  }
}

void ZshPositionalSpecs(const std::vector<OptionSpec>& pos, bool repeats, std::string* out) {
  for (size_t i = 0; i < pos.size(); ++i) {
    const bool last = i + 1 == pos.size();
    std::string n = (last && repeats) ? "*" : std::to_string(i + 1);
    *out += "        '" + n + ":" + ZshQuote(ZshValueName(pos[i])) + ":" +
            ZshQuote(ZshAction(pos[i])) + "'\n";
  }
}

std::string GenerateZsh(const ProgramSpec& p) {
  const std::string fn = "_" + p.name;
  std::string out;
  out += "#compdef " + p.name + "\n";
  out += "# zsh completion for " + p.name + "; generated by `flin completion zsh" +
         (p.name == "flin" ? "" : " --flind") + "` from the program's own option table.\n";
  out += "# Do not edit: regenerate.\n\n";
  out += fn + "() {\n";
  out += "    local curcontext=\"$curcontext\" state line ret=1\n";
  out += "    typeset -A opt_args\n";
  out += "    local -a global_opts\n";
  out += "    global_opts=(\n";
  ZshOptionSpecs(p.options, &out);
  out += "    )\n";
  if (p.commands.empty()) {
    out += "    _arguments -S $global_opts";
    std::string pos;
    ZshPositionalSpecs(p.positionals, false, &pos);
    out += pos.empty() ? "" : " \\\n" + pos;
    out += " && ret=0\n";
    out += "    return ret\n";
    out += "}\n";
  } else {
    out += "    _arguments -C -S $global_opts '1: :->command' '*:: :->args' && ret=0\n";
    out += "    case $state in\n";
    out += "        command)\n";
    out += "            local -a commands\n";
    out += "            commands=(\n";
    for (const auto& c : p.commands) {
      std::string item = c.name + ":" + c.description;
      out += "                '" + ZshQuote(item) + "'\n";
    }
    out += "            )\n";
    out += "            _describe -t commands '" + p.name + " command' commands && ret=0\n";
    out += "            ;;\n";
    out += "        args)\n";
    out += "            curcontext=\"${curcontext%:*:*}:" + p.name + "-$words[1]:\"\n";
    out += "            case $words[1] in\n";
    for (const auto& c : p.commands) {
      out += "                " + c.name + ")\n";
      if (c.subcommands.empty()) {
        out += "                    local -a args\n";
        out += "                    args=(\n";
        std::string specs;
        ZshOptionSpecs(c.options, &specs);
        ZshPositionalSpecs(c.positionals, c.last_positional_repeats, &specs);
        out += specs;
        out += "                    )\n";
        out += "                    _arguments -S $global_opts $args && ret=0\n";
        out += "                    ;;\n";
        continue;
      }
      // Nested commands: the word after the command names one; then that
      // one's arguments, with the words shifted so it is words[1].
      out += "                    if (( CURRENT == 2 )); then\n";
      out += "                        local -a subcommands\n";
      out += "                        subcommands=(\n";
      for (const auto& n : c.subcommands) {
        out += "                            '" + ZshQuote(n.name + ":" + n.description) + "'\n";
      }
      out += "                        )\n";
      out += "                        _describe -t commands '" + p.name + " " + c.name +
             " command' subcommands && ret=0\n";
      out += "                    else\n";
      out += "                        shift words\n";
      out += "                        (( CURRENT-- ))\n";
      out += "                        local -a args\n";
      out += "                        case $words[1] in\n";
      for (const auto& n : c.subcommands) {
        out += "                            " + n.name + ")\n";
        out += "                                args=(\n";
        std::string specs;
        ZshOptionSpecs(n.options, &specs);
        ZshPositionalSpecs(n.positionals, n.last_positional_repeats, &specs);
        out += specs;
        out += "                                )\n";
        out += "                                ;;\n";
      }
      out += "                        esac\n";
      out += "                        _arguments -S $global_opts $args && ret=0\n";
      out += "                    fi\n";
      out += "                    ;;\n";
    }
    out += "            esac\n";
    out += "            ;;\n";
    out += "    esac\n";
    out += "    return ret\n";
    out += "}\n";
  }
  out += "\nif [[ \"${funcstack[1]}\" == \"" + fn + "\" ]]; then\n";
  out += "    " + fn + " \"$@\"\n";
  out += "else\n";
  out += "    compdef " + fn + " " + p.name + "\n";
  out += "fi\n";
  return out;
}

// --- fish ------------------------------------------------------------------

std::string FishQuote(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out += "'";
  return out;
}

void FishOptions(const std::string& prefix, const std::vector<OptionSpec>& opts, std::string* out) {
  for (const OptionSpec& o : opts) {
    std::string line = prefix;
    for (const std::string& n : o.names) {
      if (n.size() == 2) {
        line += " -s " + n.substr(1);
      } else {
        line += " -l " + n.substr(2);
      }
    }
    if (o.takes_value) {
      if (!o.choices.empty()) {
        line += " -x -a " + FishQuote(Join(o.choices));
      } else if (o.files || o.dirs) {
        line += " -r -F";
      } else {
        line += " -x";
      }
    }
    line += " -d " + FishQuote(o.description);
    *out += line + "\n";
  }
}

// What the first positional with something to offer completes to.
void FishPositional(const std::string& cond, const std::vector<OptionSpec>& positionals,
                    std::string* out) {
  for (const OptionSpec& pos : positionals) {
    if (!pos.choices.empty()) {
      *out += cond + " -x -a " + FishQuote(Join(pos.choices)) + "\n";
      return;
    }
    if (pos.files || pos.dirs) {
      *out += cond + " -F\n";
      return;
    }
  }
}

std::string GenerateFish(const ProgramSpec& p) {
  std::string out;
  const std::string c = "complete -c " + p.name;
  out += "# fish completion for " + p.name + "; generated by `flin completion fish" +
         (p.name == "flin" ? "" : " --flind") + "` from the program's own option table.\n";
  out += "# Do not edit: regenerate.\n";
  out += c + " -f\n";
  FishOptions(c, p.options, &out);
  if (!p.commands.empty()) {
    for (const auto& cmd : p.commands) {
      out += c + " -n __fish_use_subcommand -a " + cmd.name + " -d " + FishQuote(cmd.description) +
             "\n";
    }
    for (const auto& cmd : p.commands) {
      const std::string cond = c + " -n " + FishQuote("__fish_seen_subcommand_from " + cmd.name);
      FishOptions(cond, cmd.options, &out);
      FishPositional(cond, cmd.positionals, &out);
      if (cmd.subcommands.empty()) continue;
      std::vector<std::string> nested_names;
      for (const auto& n : cmd.subcommands) nested_names.push_back(n.name);
      const std::string seen = "__fish_seen_subcommand_from " + cmd.name;
      const std::string none =
          c + " -n " +
          FishQuote(seen + "; and not __fish_seen_subcommand_from " + Join(nested_names));
      for (const auto& n : cmd.subcommands) {
        out += none + " -a " + n.name + " -d " + FishQuote(n.description) + "\n";
      }
      for (const auto& n : cmd.subcommands) {
        const std::string ncond =
            c + " -n " + FishQuote(seen + "; and __fish_seen_subcommand_from " + n.name);
        FishOptions(ncond, n.options, &out);
        FishPositional(ncond, n.positionals, &out);
      }
    }
  }
  return out;
}

OptionSpec Flag(std::vector<std::string> names, std::string desc) {
  OptionSpec o;
  o.names = std::move(names);
  o.description = std::move(desc);
  return o;
}

OptionSpec Value(std::vector<std::string> names, std::string value_name, std::string desc,
                 std::vector<std::string> choices = {}) {
  OptionSpec o;
  o.names = std::move(names);
  o.value_name = std::move(value_name);
  o.description = std::move(desc);
  o.takes_value = true;
  o.choices = std::move(choices);
  o.files = o.value_name == "FILE" || o.value_name == "PATH";
  o.dirs = o.value_name == "DIR";
  return o;
}

}  // namespace

ProgramSpec ProgramSpecFromApp(const CLI::App& app, std::string name) {
  ProgramSpec p;
  p.name = std::move(name);
  CollectOptions(app, &p.options, &p.positionals, nullptr);
  auto command = [](const CLI::App& sub) {
    CommandSpecForCompletion c;
    c.name = sub.get_name();
    c.description = FirstLine(sub.get_description());
    CollectOptions(sub, &c.options, &c.positionals, &c.last_positional_repeats);
    return c;
  };
  auto all = [](const CLI::App*) { return true; };
  for (const CLI::App* sub : app.get_subcommands(all)) {
    CommandSpecForCompletion c = command(*sub);
    for (const CLI::App* nested : sub->get_subcommands(all)) {
      c.subcommands.push_back(command(*nested));
    }
    p.commands.push_back(std::move(c));
  }
  return p;
}

ProgramSpec FlindProgramSpec() {
  ProgramSpec p;
  p.name = "flind";
  p.options = {
      Flag({"-h", "--help"}, "Print help and exit"),
      Flag({"--version"}, "Print the version and exit"),
      Value({"--config"}, "FILE", "Read settings from a TOML/INI file (keys = flag names)"),
      Value({"--data-dir"}, "DIR", "Data directory (default $XDG_DATA_HOME/flin)"),
      Value({"--socket"}, "PATH", "Unix socket path (default DATA_DIR/flin.sock; none disables)"),
      Value({"--listen"}, "HOST:PORT", "TCP address, or none (default 127.0.0.1:7379)"),
      Value({"--requirepass"}, "PASSWORD", "Password clients must send with AUTH"),
      Value({"--requirepass-file"}, "FILE", "Read the password from FILE (first line)"),
      Value({"--log-level"}, "LEVEL", "Log level", {"debug", "info", "warn", "error"}),
      Value({"--max-clients"}, "N", "Maximum simultaneous client connections"),
      Value({"--max-bulk-len"}, "BYTES", "Largest single argument in bytes"),
      Value({"--max-args"}, "N", "Most arguments in one command"),
      Value({"--max-batch-bytes"}, "BYTES", "Largest write batch in bytes"),
      Value({"--client-output-buffer-limit"}, "BYTES", "Most reply bytes buffered per client"),
      Value({"--timeout"}, "SECONDS", "Close client connections idle SECONDS (0 = never)"),
      Value({"--cache-mb"}, "MIB", "SQLite page cache per connection (apply, reads) in MiB"),
      Value({"--row-cache-mb"}, "MIB", "Memory for rows point reads fetched (MiB, 0 = off)"),
      Value({"--apply-commit-ms"}, "MS",
            "Start writing applied entries to state.db at least this often"),
      Value({"--write-buffer-mb"}, "MIB", "Most applied writes kept in memory ahead of state.db"),
      Value({"--log-compact-mb"}, "MIB", "Compact the Raft log once it exceeds this many MiB"),
      // Cluster mode (first start only, except the peer address and secret).
      Flag({"--bootstrap"}, "Start a new one-member cluster with this node as its voter"),
      Value({"--join"}, "HOST:PORT", "Join the cluster of the member whose client address this is"),
      Value({"--initial-cluster"}, "ID=HOST:PORT,...",
            "Static formation: every initial member's id and peer address"),
      Value({"--node-id"}, "N",
            "This node's id (1 with --bootstrap; given by the leader on --join)"),
      Value({"--peer-listen"}, "HOST:PORT", "Peer (Raft) listen address (default 127.0.0.1:7380)"),
      Value({"--peer-advertise"}, "HOST:PORT",
            "Peer address other members dial (default: --peer-listen)"),
      Value({"--cluster-secret-file"}, "FILE", "File holding the shared cluster secret"),
      Value({"--request-timeout-ms"}, "MS",
            "How long a write or linearizable read waits for a leader/quorum (default 5000)"),
      Value({"--tick-ms"}, "MS", "Raft tick (default 100; elections after 10-20 ticks)"),
      Value({"--snapshot-entries"}, "N",
            "Snapshot and compact the log every N applied entries (default 100000)"),
  };
  return p;
}

std::string GenerateScript(const ProgramSpec& spec, std::string_view shell) {
  if (shell == "bash") return GenerateBash(spec);
  if (shell == "zsh") return GenerateZsh(spec);
  if (shell == "fish") return GenerateFish(spec);
  return "";
}

std::string GenerateCompletion(const CLI::App& app, std::string_view shell) {
  return GenerateScript(ProgramSpecFromApp(app, "flin"), shell);
}

std::string GenerateFlindCompletion(std::string_view shell) {
  return GenerateScript(FlindProgramSpec(), shell);
}

}  // namespace flin::cli
