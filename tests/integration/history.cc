#include "tests/integration/history.h"

#include <algorithm>
#include <sstream>

namespace flin::test {

const char* OutcomeName(Outcome o) {
  switch (o) {
    case Outcome::kOk:
      return "ok";
    case Outcome::kFailed:
      return "failed";
    case Outcome::kUnknown:
      return "unknown";
  }
  return "?";
}

bool IsDefiniteRejection(std::string_view error) {
  // Errors raised while parsing and validating the command, before a Raft
  // entry exists. Anything else may have been proposed.
  static constexpr std::string_view kPrefixes[] = {
      "ERR wrong number of arguments",
      "ERR syntax error",
      "ERR unknown command",
      "ERR value is not",
      "ERR invalid",
      "ERR max",
      "NOAUTH",
      "WRONGPASS",
  };
  for (auto p : kPrefixes) {
    if (error.substr(0, p.size()) == p) return true;
  }
  return false;
}

std::string History::NewValue(std::string_view prefix) {
  return std::string(prefix) + "#" + std::to_string(values_.fetch_add(1) + 1);
}

void History::AddWrites(const std::vector<std::pair<std::string, std::string>>& kv, uint64_t call,
                        uint64_t ret) {
  std::lock_guard<std::mutex> l(mu_);
  for (const auto& [k, v] : kv) ops_.push_back(sim::HistoryOp{true, k, v, call, ret});
}

void History::AddReads(const std::vector<std::pair<std::string, std::string>>& kv, uint64_t call,
                       uint64_t ret) {
  std::lock_guard<std::mutex> l(mu_);
  for (const auto& [k, v] : kv) ops_.push_back(sim::HistoryOp{false, k, v, call, ret});
}

std::vector<sim::HistoryOp> History::ops() const {
  std::lock_guard<std::mutex> l(mu_);
  return ops_;
}

size_t History::size() const {
  std::lock_guard<std::mutex> l(mu_);
  return ops_.size();
}

sim::LinearizabilityResult History::Check(uint64_t budget) const {
  return sim::CheckLinearizable(ops(), budget);
}

std::string History::Dump(std::string_view key, size_t max_lines) const {
  std::vector<sim::HistoryOp> mine;
  for (auto& op : ops()) {
    if (op.key == key) mine.push_back(op);
  }
  std::stable_sort(mine.begin(), mine.end(),
                   [](const auto& a, const auto& b) { return a.call < b.call; });
  std::ostringstream out;
  size_t n = 0;
  for (const auto& op : mine) {
    if (n++ == max_lines) {
      out << "... " << (mine.size() - max_lines) << " more\n";
      break;
    }
    out << "[" << op.call << ", ";
    if (op.ret == sim::kNeverReturned) {
      out << "?";
    } else {
      out << op.ret;
    }
    out << "] " << (op.write ? "write " : "read  ")
        << (op.value.empty() ? std::string("(absent)") : op.value) << "\n";
  }
  return out.str();
}

RecordingClient::RecordingClient(History* history, Connector connect)
    : history_(history), connect_(std::move(connect)) {}

client::Connection* RecordingClient::Conn() {
  if (conn_ && !conn_->healthy()) conn_.reset();
  if (!conn_) conn_ = connect_();
  return conn_.get();
}

Result<client::Reply> RecordingClient::Raw(const std::vector<std::string_view>& args) {
  client::Connection* c = Conn();
  if (!c) return Status::Unavailable("no connection");
  return c->Command(args);
}

Outcome RecordingClient::Write(const std::vector<std::string_view>& args,
                               const std::vector<std::pair<std::string, std::string>>& kv) {
  client::Connection* c = Conn();
  if (!c) {
    last_error_ = "cannot connect";
    return Outcome::kFailed;  // nothing was sent
  }
  uint64_t call = history_->Now();
  auto r = c->Command(args);
  uint64_t ret = history_->Now();
  if (r.ok() && r->type == client::Reply::Type::kStatus && r->str == "OK") {
    history_->AddWrites(kv, call, ret);
    return Outcome::kOk;
  }
  if (!r.ok()) {
    last_error_ = r.status().ToString();
  } else if (r->is_error()) {
    last_error_ = r->str;
    if (IsDefiniteRejection(r->str)) return Outcome::kFailed;
  } else {
    last_error_ = "unexpected reply " + client::DebugString(*r);
  }
  history_->AddWrites(kv, call, sim::kNeverReturned);
  return Outcome::kUnknown;
}

Outcome RecordingClient::Read(const std::vector<std::string_view>& args,
                              const std::vector<std::string>& keys,
                              std::vector<std::optional<std::string>>* values) {
  client::Connection* c = Conn();
  if (!c) {
    last_error_ = "cannot connect";
    return Outcome::kFailed;
  }
  uint64_t call = history_->Now();
  auto r = c->Command(args);
  uint64_t ret = history_->Now();
  if (!r.ok()) {
    last_error_ = r.status().ToString();
    return Outcome::kFailed;
  }
  if (r->is_error()) {
    last_error_ = r->str;
    return Outcome::kFailed;
  }
  std::vector<const client::Reply*> items;
  if (r->type == client::Reply::Type::kArray) {
    for (const auto& e : r->elements) items.push_back(&e);
  } else {
    items.push_back(&*r);
  }
  if (items.size() != keys.size()) {
    last_error_ = "unexpected reply " + client::DebugString(*r);
    return Outcome::kFailed;
  }
  std::vector<std::pair<std::string, std::string>> seen;
  if (values) values->clear();
  for (size_t i = 0; i < keys.size(); ++i) {
    const client::Reply& e = *items[i];
    if (e.type != client::Reply::Type::kBulk && !e.is_nil()) {
      last_error_ = "unexpected reply " + client::DebugString(*r);
      return Outcome::kFailed;
    }
    seen.emplace_back(keys[i], e.is_nil() ? std::string() : e.str);
    if (values) {
      values->push_back(e.is_nil() ? std::nullopt : std::optional<std::string>(e.str));
    }
  }
  history_->AddReads(seen, call, ret);
  return Outcome::kOk;
}

Outcome RecordingClient::Set(const std::string& key, const std::string& value) {
  return Write({"SET", key, value}, {{key, value}});
}

Outcome RecordingClient::MSet(const std::vector<std::pair<std::string, std::string>>& kv) {
  std::vector<std::string_view> args = {"MSET"};
  for (const auto& [k, v] : kv) {
    args.push_back(k);
    args.push_back(v);
  }
  return Write(args, kv);
}

Outcome RecordingClient::Get(const std::string& key, std::optional<std::string>* value) {
  std::vector<std::optional<std::string>> values;
  Outcome o = Read({"GET", key}, {key}, &values);
  if (o == Outcome::kOk && value) *value = values[0];
  return o;
}

Outcome RecordingClient::MGet(const std::vector<std::string>& keys,
                              std::vector<std::optional<std::string>>* values) {
  std::vector<std::string_view> args = {"MGET"};
  for (const auto& k : keys) args.push_back(k);
  return Read(args, keys, values);
}

}  // namespace flin::test
