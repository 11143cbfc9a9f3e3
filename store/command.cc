#include "store/command.h"

#include <cstring>

namespace flin::store {
namespace {

constexpr uint8_t kVersion = 1;
constexpr size_t kHeader = 1 + 1 + 4 + 8 + 8 + 4;

template <typename T>
void Put(std::string* out, T v) {
  char buf[sizeof(T)];
  std::memcpy(buf, &v, sizeof(T));  // hosts are little-endian (x86_64, arm64)
  out->append(buf, sizeof(T));
}

template <typename T>
bool Get(std::string_view* in, T* v) {
  if (in->size() < sizeof(T)) return false;
  std::memcpy(v, in->data(), sizeof(T));
  in->remove_prefix(sizeof(T));
  return true;
}

}  // namespace

size_t EncodedSize(const Command& cmd) {
  size_t n = kHeader;
  for (std::string_view a : cmd.args) n += 4 + a.size();
  return n;
}

void EncodeCommand(const Command& cmd, std::string* out) {
  out->reserve(out->size() + EncodedSize(cmd));
  Put<uint8_t>(out, kVersion);
  Put<uint8_t>(out, static_cast<uint8_t>(cmd.op));
  Put<uint32_t>(out, cmd.flags);
  Put<int64_t>(out, cmd.now_ms);
  Put<int64_t>(out, cmd.arg);
  Put<uint32_t>(out, static_cast<uint32_t>(cmd.args.size()));
  for (std::string_view a : cmd.args) {
    Put<uint32_t>(out, static_cast<uint32_t>(a.size()));
    out->append(a);
  }
}

Status DecodeCommand(std::string_view in, Command* cmd) {
  uint8_t version = 0, op = 0;
  uint32_t argc = 0;
  if (!Get(&in, &version) || !Get(&in, &op) || !Get(&in, &cmd->flags) || !Get(&in, &cmd->now_ms) ||
      !Get(&in, &cmd->arg) || !Get(&in, &argc)) {
    return Status::Corruption("command entry: truncated header");
  }
  if (version != kVersion) {
    return Status::Corruption("command entry: unknown version " + std::to_string(version));
  }
  if (op > static_cast<uint8_t>(Op::kImportBegin)) {
    return Status::Corruption("command entry: unknown op " + std::to_string(op));
  }
  cmd->op = static_cast<Op>(op);
  // Each arg needs at least 4 bytes: bound argc before reserving.
  if (argc > in.size() / 4) return Status::Corruption("command entry: argc exceeds payload");
  cmd->args.clear();
  cmd->args.reserve(argc);
  for (uint32_t i = 0; i < argc; ++i) {
    uint32_t len = 0;
    if (!Get(&in, &len) || len > in.size()) {
      return Status::Corruption("command entry: truncated argument " + std::to_string(i));
    }
    cmd->args.push_back(in.substr(0, len));
    in.remove_prefix(len);
  }
  if (!in.empty()) return Status::Corruption("command entry: trailing bytes");
  return Status::Ok();
}

}  // namespace flin::store
