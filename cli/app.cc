#include "cli/app.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>

#include "base/strings.h"
#include "cli/cluster.h"
#include "cli/completion.h"
#include "cli/exit_codes.h"
#include "cli/repl.h"
#include "net/command_spec.h"
#if FLIN_HAVE_IMPORT_EXPORT
#include "cli/import_export.h"
#endif

#ifndef FLIN_VERSION
#define FLIN_VERSION "unknown"
#endif

namespace flin::cli {
namespace {

using client::Reply;
using Args = std::vector<std::string>;

constexpr const char* kExitFooter = R"(EXIT STATUS:
  0  success
  1  not found: get, ttl, expire or persist of a missing key; mget or exists
     when any key is missing; set/mset --nx/--xx when the condition
     prevented the write; `call` and the shell when a reply is nil
  2  usage error: bad flags or arguments, unreadable input
  3  cannot connect to flind, connection lost, or timed out; flind answered
     TRYAGAIN (no leader or quorum right now); health: the node is not ready
  4  flind answered with an error
  5  import stopped part-way: some batches were committed

ENVIRONMENT:
  FLIN_ADDR      default for --addr
  FLIN_PASSWORD  default for --password
  NO_COLOR       disables colours on a terminal

Values that start with '-' need `--` before them: flin set k -- -5
See flin(1) for details.)";

// Reads all of stdin, binary-safe.
Result<std::string> ReadAllStdin() {
  std::string data;
  char buf[65536];
  while (true) {
    size_t n = std::fread(buf, 1, sizeof(buf), stdin);
    data.append(buf, n);
    if (n < sizeof(buf)) {
      if (std::ferror(stdin)) return Status::FromErrno("reading stdin", errno);
      break;
    }
  }
  return data;
}

// Sends one command on a fresh connection. A server error reply is returned
// as a Reply of type kError.
Result<Reply> Call(Session& s, const Args& args) {
  auto conn = s.Connect();
  if (!conn.ok()) return conn.status();
  std::vector<std::string_view> views(args.begin(), args.end());
  return (*conn)->Command(views);
}

// Runs args and prints the reply; returns the exit code. `nil_is_missing`
// maps a nil reply to kExitNotFound.
int CallAndPrint(Session& s, const Args& args, bool nil_is_missing = true) {
  auto reply = Call(s, args);
  if (!reply.ok()) return s.Fail(reply.status());
  if (reply->is_error()) return s.Fail(Status::Server(reply->str));
  // A nil prints nothing in plain mode (the exit status says it), "(nil)"
  // on a terminal and null in JSON.
  if (!(reply->is_nil() && s.printer().mode() == OutputMode::kPlain)) s.printer().Reply(*reply);
  if (nil_is_missing && reply->is_nil()) return kExitNotFound;
  return kExitOk;
}

// Adds the --ttl/--px pair shared by set and mset.
struct TtlFlags {
  int64_t ttl_s = 0;
  int64_t px_ms = 0;
  bool nx = false;
  bool xx = false;
  bool keepttl = false;
};

void AddTtlFlags(CLI::App* cmd, TtlFlags* f, bool with_keepttl) {
  auto* ttl = cmd->add_option("--ttl", f->ttl_s, "Expire after SECONDS")
                  ->type_name("SECONDS")
                  ->check(CLI::PositiveNumber);
  auto* px = cmd->add_option("--px", f->px_ms, "Expire after MILLISECONDS")
                 ->type_name("MILLISECONDS")
                 ->check(CLI::PositiveNumber)
                 ->excludes(ttl);
  auto* nx = cmd->add_flag("--nx", f->nx, "Only set if the key(s) do not exist");
  cmd->add_flag("--xx", f->xx, "Only set if the key(s) already exist")->excludes(nx);
  if (with_keepttl) {
    cmd->add_flag("--keepttl", f->keepttl, "Keep the key's current expiry")
        ->excludes(ttl)
        ->excludes(px);
  }
}

// Resolves a value argument: "-" means all of stdin (only once per command).
Status ResolveValue(std::string* value, bool* stdin_used) {
  if (*value != "-") return Status::Ok();
  if (*stdin_used) return Status::InvalidArgument("only one value can be read from stdin ('-')");
  *stdin_used = true;
  auto data = ReadAllStdin();
  if (!data.ok()) return data.status();
  *value = std::move(*data);
  return Status::Ok();
}

// INFO text -> {"section": {"field": "value"}}.
nlohmann::json InfoToJson(std::string_view text) {
  nlohmann::json out = nlohmann::json::object();
  std::string section = "default";
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    if (line[0] == '#') {
      line.remove_prefix(1);
      while (!line.empty() && line[0] == ' ') line.remove_prefix(1);
      section = ToLower(line);
      if (!out.contains(section)) out[section] = nlohmann::json::object();
      continue;
    }
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    out[section][std::string(line.substr(0, colon))] = ValueToJson(line.substr(colon + 1));
  }
  return out;
}

std::string Summary(std::string_view command) {
  const net::CommandSpec* spec = net::FindCommand(command);
  return spec ? std::string(spec->summary) : std::string();
}

bool IsTty(int fd) { return ::isatty(fd) == 1; }

}  // namespace

std::string DefaultAddress() {
  const char* xdg = std::getenv("XDG_DATA_HOME");
  std::string dir;
  if (xdg != nullptr && xdg[0] == '/') {
    dir = xdg;
  } else {
    const char* home = std::getenv("HOME");
    dir = std::string(home ? home : "") + "/.local/share";
  }
  return "unix:" + dir + "/flin/flin.sock";
}

int ExitCodeFor(const Status& status) {
  switch (status.code()) {
    case Status::Code::kOk:
      return kExitOk;
    case Status::Code::kNotFound:
      return kExitNotFound;
    case Status::Code::kInvalidArgument:
      return kExitUsage;
    case Status::Code::kUnavailable:
    case Status::Code::kTimeout:
    case Status::Code::kProtocol:
    case Status::Code::kIOError:
      return kExitConnect;
    case Status::Code::kServer:
      // -TRYAGAIN (no leader or quorum yet, a node catching up) is "not
      // available right now", like a lost connection: worth retrying.
      return IsTryAgain(status.message()) ? kExitConnect : kExitServer;
    default:
      return kExitServer;
  }
}

namespace {
OutputOptions ResolveOutput(const GlobalOptions& g) {
  OutputOptions o;
  const bool tty = IsTty(STDOUT_FILENO);
  if (g.json) {
    o.mode = OutputMode::kJson;
  } else if (g.raw || g.nul) {
    o.mode = OutputMode::kPlain;
  } else if (g.human || tty) {
    o.mode = OutputMode::kHuman;
  } else {
    o.mode = OutputMode::kPlain;
  }
  const char* no_color = std::getenv("NO_COLOR");
  const char* term = std::getenv("TERM");
  if (g.color == "always") {
    o.color = true;
  } else if (g.color == "never") {
    o.color = false;
  } else {
    o.color = tty && (no_color == nullptr || no_color[0] == '\0') &&
              !(term != nullptr && std::strcmp(term, "dumb") == 0);
  }
  o.nul = g.nul;
  o.no_newline = g.no_newline;
  o.quiet = g.quiet;
  return o;
}
}  // namespace

Session::Session(const GlobalOptions& opts)
    : opts_(opts),
      stdout_tty_(IsTty(STDOUT_FILENO)),
      stdin_tty_(IsTty(STDIN_FILENO)),
      stderr_tty_(IsTty(STDERR_FILENO)),
      printer_(ResolveOutput(opts)) {
  address_ = opts_.addr.empty() ? DefaultAddress() : opts_.addr;
}

Result<std::unique_ptr<client::Connection>> Session::Connect() const {
  // --timeout 0 means wait forever (a day is forever for a CLI).
  return Connect(std::chrono::hours(24));
}

Result<std::unique_ptr<client::Connection>> Session::Connect(
    std::chrono::milliseconds limit) const {
  auto addr = client::Address::Parse(address_);
  if (!addr.ok()) return Status::InvalidArgument(addr.status().message());
  client::ConnectOptions co;
  const double seconds = opts_.timeout_s > 0 ? opts_.timeout_s : 86400.0;
  const auto ms =
      std::min(limit, std::chrono::milliseconds(static_cast<int64_t>(std::ceil(seconds * 1000))));
  co.connect_timeout = co.read_timeout = co.write_timeout = ms;
  co.password = opts_.password;
  co.consistency = opts_.consistency;
  auto conn = client::Connection::Connect(*addr, co);
  if (!conn.ok()) {
    const Status& st = conn.status();
    // The client library's errors already read "cannot connect to ADDR: why"
    // (and AUTH refusals carry the server's text).
    return st;
  }
  return conn;
}

int Session::Fail(const Status& status) const {
  if (!status.message().empty()) {
    std::string msg = status.message();
    if (status.code() == Status::Code::kTimeout && msg.find(address_) == std::string::npos) {
      msg = address_ + ": " + msg;
    }
    std::fprintf(stderr, "flin: %s\n", msg.c_str());
  }
  return ExitCodeFor(status);
}

void BuildApp(CLI::App& app, AppState* state) {
  GlobalOptions& g = state->global;
  app.description(
      "flin: command-line client for flind, the Flin key-value store.\n"
      "With no command: an interactive shell on a terminal, or one server command per line "
      "from stdin.");
  app.footer(kExitFooter);
  app.require_subcommand(0, 1);
  app.fallthrough();
  app.option_defaults()->always_capture_default(false);
  app.set_version_flag("-V,--version", std::string("flin ") + FLIN_VERSION);

  app.add_option("-a,--addr", g.addr,
                 "flind address: unix:/path, /path.sock or host:port "
                 "(default: $XDG_DATA_HOME/flin/flin.sock or ~/.local/share/flin/flin.sock)")
      ->envname("FLIN_ADDR")
      ->type_name("ADDR");
  app.add_option("--password", g.password, "Password sent with AUTH")
      ->envname("FLIN_PASSWORD")
      ->type_name("PASSWORD");
  app.add_option("-t,--timeout", g.timeout_s,
                 "Connect/read/write timeout in seconds, 0 = none (default 5)")
      ->type_name("SECONDS")
      ->check(CLI::NonNegativeNumber);
  auto* json =
      app.add_flag("--json", g.json, "Print results as JSON (binary values as {\"base64\": ...})");
  auto* raw = app.add_flag("--raw", g.raw, "Print exact bytes, no quoting, even on a terminal");
  auto* human = app.add_flag(
      "--human", g.human, "Print for people (redis-cli style) even when stdout is not a terminal");
  json->excludes(raw)->excludes(human);
  raw->excludes(human);
  app.add_flag("-0,--null", g.nul, "Terminate list items with NUL instead of newline")
      ->excludes(json);
  app.add_flag("-n,--no-newline", g.no_newline, "Do not print the final newline");
  app.add_flag("-q,--quiet", g.quiet, "Print nothing on stdout; the exit status tells the result");
  app.add_option("--color", g.color,
                 "Colours on a terminal: auto, always or never (NO_COLOR is honoured)")
      ->type_name("WHEN")
      ->check(CLI::IsMember({"auto", "always", "never"}));
  app.add_option("--consistency", g.consistency,
                 "Reads: linearizable (default: see every acknowledged write) or stale "
                 "(served by the node flin talks to, possibly behind the leader)")
      ->type_name("LEVEL")
      ->check(CLI::Validator(
          [](std::string& v) -> std::string {
            if (v == "linearizable" || v == "stale") return "";
            return "must be linearizable or stale, not '" + v + "'";
          },
          "{linearizable,stale}"));

  auto set_action = [state](std::function<int(Session&)> fn) { state->action = std::move(fn); };

  // get
  {
    auto key = std::make_shared<std::string>();
    auto* cmd = app.add_subcommand("get", Summary("get") + " (exit 1 if missing)");
    cmd->add_option("KEY", *key, "Key")->required();
    cmd->callback([=] {
      set_action([key](Session& s) {
        auto reply = Call(s, {"GET", *key});
        if (!reply.ok()) return s.Fail(reply.status());
        if (reply->is_error()) return s.Fail(Status::Server(reply->str));
        if (reply->is_nil()) {
          if (s.printer().mode() != OutputMode::kPlain) s.printer().Reply(*reply);
          return static_cast<int>(kExitNotFound);
        }
        // On a terminal a newline keeps the prompt readable; in a pipe the
        // value is passed on byte for byte.
        s.printer().Value(reply->str, /*add_newline=*/s.stdout_tty() && !s.options().raw);
        return static_cast<int>(kExitOk);
      });
    });
  }
  // set
  {
    struct SetArgs {
      std::string key, value, value_file;
      TtlFlags ttl;
    };
    auto a = std::make_shared<SetArgs>();
    auto* cmd = app.add_subcommand("set", Summary("set"));
    cmd->add_option("KEY", a->key, "Key")->required();
    auto* value =
        cmd->add_option("VALUE", a->value, "Value; '-' reads it from stdin (binary-safe)");
    auto* file =
        cmd->add_option("--value-file", a->value_file, "Read the value from FILE ('-' = stdin)")
            ->type_name("FILE");
    value->excludes(file);
    AddTtlFlags(cmd, &a->ttl, /*with_keepttl=*/true);
    // Exactly one of VALUE and --value-file.
    cmd->callback([=] {
      if (value->count() == 0 && file->count() == 0) {
        throw CLI::RequiredError("VALUE (or --value-file)");
      }
      set_action([a](Session& s) {
        std::string v = a->value;
        bool stdin_used = false;
        if (!a->value_file.empty()) {
          if (a->value_file == "-") {
            v = "-";
          } else {
            std::FILE* f = std::fopen(a->value_file.c_str(), "rb");
            if (f == nullptr) {
              return s.Fail(Status::InvalidArgument(a->value_file + ": " + std::strerror(errno)));
            }
            v.clear();
            char buf[65536];
            size_t n;
            while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) v.append(buf, n);
            std::fclose(f);
            stdin_used = true;  // a file value is never reinterpreted as '-'
          }
        }
        if (!stdin_used) {
          Status st = ResolveValue(&v, &stdin_used);
          if (!st.ok()) return s.Fail(st);
        }
        Args args = {"SET", a->key, v};
        if (a->ttl.ttl_s > 0) args.insert(args.end(), {"EX", std::to_string(a->ttl.ttl_s)});
        if (a->ttl.px_ms > 0) args.insert(args.end(), {"PX", std::to_string(a->ttl.px_ms)});
        if (a->ttl.nx) args.push_back("NX");
        if (a->ttl.xx) args.push_back("XX");
        if (a->ttl.keepttl) args.push_back("KEEPTTL");
        return CallAndPrint(s, args);
      });
    });
  }
  // del, mdel
  for (const char* name : {"del", "mdel"}) {
    auto keys = std::make_shared<Args>();
    auto* cmd = app.add_subcommand(
        name, Summary(name) + (std::string_view(name) == "del" ? " (atomic)" : ""));
    cmd->add_option("KEY", *keys, "Keys")->required();
    std::string verb = ToUpper(name);
    cmd->callback([=] {
      set_action([keys, verb](Session& s) {
        Args args = {verb};
        args.insert(args.end(), keys->begin(), keys->end());
        return CallAndPrint(s, args, /*nil_is_missing=*/false);
      });
    });
  }
  // exists
  {
    auto keys = std::make_shared<Args>();
    auto* cmd = app.add_subcommand("exists", "Count the keys that exist (exit 1 unless all exist)");
    cmd->add_option("KEY", *keys, "Keys")->required();
    cmd->callback([=] {
      set_action([keys](Session& s) {
        Args args = {"EXISTS"};
        args.insert(args.end(), keys->begin(), keys->end());
        auto reply = Call(s, args);
        if (!reply.ok()) return s.Fail(reply.status());
        if (reply->is_error()) return s.Fail(Status::Server(reply->str));
        s.printer().Reply(*reply);
        // EXISTS counts a repeated key once per mention, so "all exist" is
        // exactly count == number of arguments.
        return reply->integer == static_cast<int64_t>(keys->size())
                   ? static_cast<int>(kExitOk)
                   : static_cast<int>(kExitNotFound);
      });
    });
  }
  // mget
  {
    auto keys = std::make_shared<Args>();
    auto* cmd = app.add_subcommand("mget", Summary("mget") + " (exit 1 if any is missing)");
    cmd->add_option("KEY", *keys, "Keys")->required();
    cmd->callback([=] {
      set_action([keys](Session& s) {
        Args args = {"MGET"};
        args.insert(args.end(), keys->begin(), keys->end());
        auto reply = Call(s, args);
        if (!reply.ok()) return s.Fail(reply.status());
        if (reply->is_error()) return s.Fail(Status::Server(reply->str));
        if (reply->type != Reply::Type::kArray || reply->elements.size() != keys->size()) {
          return s.Fail(Status::Protocol("unexpected MGET reply"));
        }
        bool missing = false;
        Printer& p = s.printer();
        if (p.mode() == OutputMode::kJson) {
          nlohmann::json obj = nlohmann::json::object();
          for (size_t i = 0; i < keys->size(); ++i) {
            const Reply& e = reply->elements[i];
            missing |= e.is_nil();
            obj[(*keys)[i]] = e.is_nil() ? nlohmann::json(nullptr) : ValueToJson(e.str);
          }
          p.Json(obj);
        } else {
          p.BeginList();
          for (const Reply& e : reply->elements) {
            if (e.is_nil()) {
              missing = true;
              p.ListNil();
            } else {
              p.ListItem(e.str);
            }
          }
          p.EndList();
        }
        return missing ? static_cast<int>(kExitNotFound) : static_cast<int>(kExitOk);
      });
    });
  }
  // mset
  {
    struct MsetArgs {
      Args pairs;
      TtlFlags ttl;
    };
    auto a = std::make_shared<MsetArgs>();
    auto* cmd = app.add_subcommand("mset", Summary("mset") + " (all or nothing)");
    cmd->add_option("KEY_VALUE", a->pairs, "KEY VALUE pairs; one VALUE may be '-' (stdin)")
        ->required();
    AddTtlFlags(cmd, &a->ttl, /*with_keepttl=*/false);
    cmd->callback([=] {
      if (a->pairs.size() % 2 != 0) {
        throw CLI::ValidationError("KEY_VALUE",
                                   "needs an even number of arguments (KEY VALUE ...)");
      }
      set_action([a](Session& s) {
        Args pairs = a->pairs;
        bool stdin_used = false;
        for (size_t i = 1; i < pairs.size(); i += 2) {
          Status st = ResolveValue(&pairs[i], &stdin_used);
          if (!st.ok()) return s.Fail(st);
        }
        const TtlFlags& t = a->ttl;
        Args args;
        if (t.ttl_s > 0 || t.px_ms > 0 || t.xx) {
          args = {"MSETEX", std::to_string(pairs.size() / 2)};
          args.insert(args.end(), pairs.begin(), pairs.end());
          if (t.nx) args.push_back("NX");
          if (t.xx) args.push_back("XX");
          if (t.ttl_s > 0) args.insert(args.end(), {"EX", std::to_string(t.ttl_s)});
          if (t.px_ms > 0) args.insert(args.end(), {"PX", std::to_string(t.px_ms)});
        } else {
          args = {t.nx ? "MSETNX" : "MSET"};
          args.insert(args.end(), pairs.begin(), pairs.end());
        }
        auto reply = Call(s, args);
        if (!reply.ok()) return s.Fail(reply.status());
        if (reply->is_error()) return s.Fail(Status::Server(reply->str));
        s.printer().Reply(*reply);
        // MSETNX/MSETEX answer 0 (or nil) when the condition blocked the write.
        if (reply->is_nil() || (reply->type == Reply::Type::kInteger && reply->integer == 0)) {
          return static_cast<int>(kExitNotFound);
        }
        return static_cast<int>(kExitOk);
      });
    });
  }
  // ttl
  {
    auto key = std::make_shared<std::string>();
    auto ms = std::make_shared<bool>(false);
    auto* cmd = app.add_subcommand(
        "ttl", "Remaining time to live in seconds (-1: no expiry; exit 1 if missing)");
    cmd->add_option("KEY", *key, "Key")->required();
    cmd->add_flag("--ms", *ms, "In milliseconds (PTTL)");
    cmd->callback([=] {
      set_action([key, ms](Session& s) {
        auto reply = Call(s, {*ms ? "PTTL" : "TTL", *key});
        if (!reply.ok()) return s.Fail(reply.status());
        if (reply->is_error()) return s.Fail(Status::Server(reply->str));
        if (reply->type == Reply::Type::kInteger && reply->integer == -2) {
          if (s.printer().mode() == OutputMode::kJson) {
            s.printer().Json(nullptr);
          } else if (s.printer().mode() == OutputMode::kHuman) {
            s.printer().Reply(Reply{});
          }
          return static_cast<int>(kExitNotFound);
        }
        s.printer().Reply(*reply);
        return static_cast<int>(kExitOk);
      });
    });
  }
  // expire
  {
    struct ExpireArgs {
      std::string key;
      int64_t amount = 0;
      bool ms = false, at = false, nx = false, xx = false, gt = false, lt = false;
    };
    auto a = std::make_shared<ExpireArgs>();
    auto* cmd = app.add_subcommand(
        "expire", "Set a key's time to live (exit 1 if the key is missing or the condition fails)");
    cmd->add_option("KEY", a->key, "Key")->required();
    cmd->add_option("SECONDS", a->amount, "Time to live (or Unix time with --at)")->required();
    cmd->add_flag("--ms", a->ms, "SECONDS is in milliseconds");
    cmd->add_flag("--at", a->at, "SECONDS is an absolute Unix time");
    auto* nx = cmd->add_flag("--nx", a->nx, "Only if the key has no expiry");
    auto* xx = cmd->add_flag("--xx", a->xx, "Only if the key has an expiry");
    auto* gt = cmd->add_flag("--gt", a->gt, "Only if the new expiry is later");
    auto* lt = cmd->add_flag("--lt", a->lt, "Only if the new expiry is earlier");
    nx->excludes(xx)->excludes(gt)->excludes(lt);
    gt->excludes(lt);
    cmd->callback([=] {
      set_action([a](Session& s) {
        std::string verb = std::string(a->ms ? "PEXPIRE" : "EXPIRE") + (a->at ? "AT" : "");
        Args args = {verb, a->key, std::to_string(a->amount)};
        if (a->nx) args.push_back("NX");
        if (a->xx) args.push_back("XX");
        if (a->gt) args.push_back("GT");
        if (a->lt) args.push_back("LT");
        auto reply = Call(s, args);
        if (!reply.ok()) return s.Fail(reply.status());
        if (reply->is_error()) return s.Fail(Status::Server(reply->str));
        s.printer().Reply(*reply);
        return reply->integer == 1 ? static_cast<int>(kExitOk) : static_cast<int>(kExitNotFound);
      });
    });
  }
  // persist
  {
    auto key = std::make_shared<std::string>();
    auto* cmd = app.add_subcommand(
        "persist", "Remove a key's expiry; prints 1 if it had one (exit 1 if missing)");
    cmd->add_option("KEY", *key, "Key")->required();
    cmd->callback([=] {
      set_action([key](Session& s) {
        auto conn = s.Connect();
        if (!conn.ok()) return s.Fail(conn.status());
        auto reply = (*conn)->Command({"PERSIST", *key});
        if (!reply.ok()) return s.Fail(reply.status());
        if (reply->is_error()) return s.Fail(Status::Server(reply->str));
        int code = kExitOk;
        if (reply->integer == 0) {
          // 0 means "no expiry" or "no key": only the second is a failure.
          auto exists = (*conn)->Command({"EXISTS", *key});
          if (!exists.ok()) return s.Fail(exists.status());
          if (exists->is_error()) return s.Fail(Status::Server(exists->str));
          if (exists->integer == 0) code = kExitNotFound;
        }
        s.printer().Reply(*reply);
        return code;
      });
    });
  }
  // keys
  {
    auto pattern = std::make_shared<std::string>("*");
    auto* cmd = app.add_subcommand("keys", "List keys matching a glob PATTERN (default *)");
    cmd->add_option("PATTERN", *pattern, "Glob pattern: * ? [abc] [^a] [a-z] \\x");
    cmd->callback([=] {
      set_action([pattern](Session& s) {
        auto reply = Call(s, {"KEYS", *pattern});
        if (!reply.ok()) return s.Fail(reply.status());
        if (reply->is_error()) return s.Fail(Status::Server(reply->str));
        Printer& p = s.printer();
        p.BeginList();
        for (const Reply& e : reply->elements) p.ListItem(e.str);
        p.EndList();
        return static_cast<int>(kExitOk);
      });
    });
  }
  // scan
  {
    struct ScanArgs {
      std::string pattern;
      int64_t count = 1000;
    };
    auto a = std::make_shared<ScanArgs>();
    auto* cmd = app.add_subcommand(
        "scan", "Stream every key matching PATTERN, a batch at a time (no server-wide pause)");
    cmd->add_option("PATTERN", a->pattern, "Glob pattern (default: all keys)");
    cmd->add_option("--count", a->count, "Keys asked for per SCAN round trip (default 1000)")
        ->type_name("N")
        ->check(CLI::PositiveNumber);
    cmd->callback([=] {
      set_action([a](Session& s) {
        auto conn = s.Connect();
        if (!conn.ok()) return s.Fail(conn.status());
        Printer& p = s.printer();
        p.BeginList();
        std::string cursor = "0";
        do {
          Args args = {"SCAN", cursor};
          if (!a->pattern.empty()) args.insert(args.end(), {"MATCH", a->pattern});
          args.insert(args.end(), {"COUNT", std::to_string(a->count)});
          std::vector<std::string_view> views(args.begin(), args.end());
          auto reply = (*conn)->Command(views);
          if (!reply.ok()) return s.Fail(reply.status());
          if (reply->is_error()) return s.Fail(Status::Server(reply->str));
          if (reply->type != Reply::Type::kArray || reply->elements.size() != 2) {
            return s.Fail(Status::Protocol("unexpected SCAN reply"));
          }
          cursor = reply->elements[0].str;
          for (const Reply& e : reply->elements[1].elements) p.ListItem(e.str);
          p.Flush();
        } while (cursor != "0");
        p.EndList();
        return static_cast<int>(kExitOk);
      });
    });
  }
  // ping
  {
    auto message = std::make_shared<std::string>();
    auto* cmd = app.add_subcommand("ping", "Check that flind answers (prints PONG)");
    auto* msg = cmd->add_option("MESSAGE", *message, "Echo MESSAGE instead of PONG");
    cmd->callback([=] {
      set_action([message, msg](Session& s) {
        Args args = {"PING"};
        if (msg->count() > 0) args.push_back(*message);
        return CallAndPrint(s, args);
      });
    });
  }
  // info
  {
    auto section = std::make_shared<std::string>();
    auto* cmd = app.add_subcommand("info", Summary("info"));
    cmd->add_option("SECTION", *section, "Only this section");
    cmd->callback([=] {
      set_action([section](Session& s) {
        Args args = {"INFO"};
        if (!section->empty()) args.push_back(*section);
        auto reply = Call(s, args);
        if (!reply.ok()) return s.Fail(reply.status());
        if (reply->is_error()) return s.Fail(Status::Server(reply->str));
        Printer& p = s.printer();
        if (p.mode() == OutputMode::kJson) {
          p.Json(InfoToJson(reply->str));
        } else {
          std::string text;
          for (char c : reply->str) {
            if (c != '\r') text.push_back(c);
          }
          while (!text.empty() && text.back() == '\n') text.pop_back();
          p.Line(text);
        }
        return static_cast<int>(kExitOk);
      });
    });
  }
  // call: any server command
  {
    auto args = std::make_shared<Args>();
    auto* cmd = app.add_subcommand(
        "call", "Run one raw server command (like redis-cli ARGS), e.g. flin call DBSIZE");
    cmd->add_option("ARGS", *args, "Command name and arguments")->required();
    cmd->prefix_command();
    cmd->callback([=] {
      set_action([args, cmd](Session& s) {
        Args all = *args;
        for (const std::string& extra : cmd->remaining()) all.push_back(extra);
        return CallAndPrint(s, all);
      });
    });
  }
  // shell
  {
    auto* cmd = app.add_subcommand(
        "shell",
        "Interactive shell (the default on a terminal); reads commands from stdin otherwise");
    cmd->callback([=] { set_action([](Session& s) { return RunShell(s); }); });
  }
  // completion
  {
    struct CompletionArgs {
      std::string shell;
      bool flind = false;
    };
    auto a = std::make_shared<CompletionArgs>();
    auto* cmd =
        app.add_subcommand("completion", "Print the shell completion script for flin (or flind)");
    cmd->add_option("SHELL", a->shell, "bash, zsh or fish")
        ->required()
        ->check(CLI::IsMember({"bash", "zsh", "fish"}));
    cmd->add_flag("--flind", a->flind, "The script for flind instead of flin");
    CLI::App* root = &app;
    cmd->callback([=] {
      set_action([a, root](Session& s) {
        std::string script =
            a->flind ? GenerateFlindCompletion(a->shell) : GenerateCompletion(*root, a->shell);
        std::fwrite(script.data(), 1, script.size(), stdout);
        return static_cast<int>(kExitOk);
      });
    });
  }
  AddClusterCommands(app, set_action);
#if FLIN_HAVE_IMPORT_EXPORT
  AddImportExportCommands(
      app,
      [state]() -> Result<std::unique_ptr<client::Connection>> {
        Session s(state->global);
        return s.Connect();
      },
      &state->import_export_exit);
#endif
}

int RunFlin(int argc, const char* const* argv) {
  CLI::App app;
  AppState state;
  BuildApp(app, &state);
  app.name("flin");
  // CLI11 reads "-0" after a subcommand as a negative-number positional
  // (the flag lives on the parent app), so spell it out before parsing.
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--") {
      for (; i < argc; ++i) args.emplace_back(argv[i]);
      break;
    }
    args.emplace_back(a == "-0" ? "--null" : a);
  }
  std::reverse(args.begin(), args.end());  // CLI11 consumes from the back
  try {
    app.parse(args);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);  // prints the message and the usage hint
    return kExitUsage;
  }
  if (state.import_export_exit >= 0) return state.import_export_exit;
  Session session(state.global);
  int code;
  if (state.action) {
    code = state.action(session);
  } else {
    code = RunShell(session);
  }
  std::fflush(stdout);
  if (std::ferror(stdout)) {
    if (errno != EPIPE) std::fprintf(stderr, "flin: writing stdout failed\n");
    return code == kExitOk ? kExitServer : code;
  }
  return code;
}

}  // namespace flin::cli
