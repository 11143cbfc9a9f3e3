#include "base/status.h"

#include <cstring>

namespace flin {

Status Status::FromErrno(std::string_view what, int errno_value) {
  std::string msg(what);
  msg += ": ";
  msg += std::strerror(errno_value);
  return IOError(std::move(msg));
}

std::string Status::ToString() const {
  const char* name = "OK";
  switch (code_) {
    case Code::kOk: return "OK";
    case Code::kNotFound: name = "NotFound"; break;
    case Code::kInvalidArgument: name = "InvalidArgument"; break;
    case Code::kCorruption: name = "Corruption"; break;
    case Code::kIOError: name = "IOError"; break;
    case Code::kBusy: name = "Busy"; break;
    case Code::kTimeout: name = "Timeout"; break;
    case Code::kUnavailable: name = "Unavailable"; break;
    case Code::kProtocol: name = "Protocol"; break;
    case Code::kServer: name = "Server"; break;
    case Code::kLimit: name = "Limit"; break;
  }
  return std::string(name) + ": " + message_;
}

}  // namespace flin
