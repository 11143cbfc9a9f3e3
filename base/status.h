// Status and Result<T>: expected failures as values (LevelDB style). Module
// APIs return these instead of throwing. Thread-compatible value types.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "base/check.h"

namespace flin {

class Status {
 public:
  enum class Code {
    kOk = 0,
    kNotFound,
    kInvalidArgument,
    kCorruption,
    kIOError,
    kBusy,         // resource held by someone else (e.g. data dir lock)
    kTimeout,
    kUnavailable,  // no leader / no quorum / shutting down
    kProtocol,
    kServer,       // the server answered with an error reply
    kLimit,        // a configured limit was exceeded
  };

  Status() = default;
  static Status Ok() { return Status(); }
  static Status NotFound(std::string msg) { return Status(Code::kNotFound, std::move(msg)); }
  static Status InvalidArgument(std::string msg) {
    return Status(Code::kInvalidArgument, std::move(msg));
  }
  static Status Corruption(std::string msg) { return Status(Code::kCorruption, std::move(msg)); }
  static Status IOError(std::string msg) { return Status(Code::kIOError, std::move(msg)); }
  static Status Busy(std::string msg) { return Status(Code::kBusy, std::move(msg)); }
  static Status Timeout(std::string msg) { return Status(Code::kTimeout, std::move(msg)); }
  static Status Unavailable(std::string msg) { return Status(Code::kUnavailable, std::move(msg)); }
  static Status Protocol(std::string msg) { return Status(Code::kProtocol, std::move(msg)); }
  static Status Server(std::string msg) { return Status(Code::kServer, std::move(msg)); }
  static Status Limit(std::string msg) { return Status(Code::kLimit, std::move(msg)); }
  // IOError with strerror(errno_value) appended: "what: strerror".
  static Status FromErrno(std::string_view what, int errno_value);

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string ToString() const;

 private:
  Status(Code code, std::string msg) : code_(code), message_(std::move(msg)) {}
  Code code_ = Code::kOk;
  std::string message_;
};

// A value or a non-ok Status.
template <typename T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {  // NOLINT
    FLIN_CHECK(!std::get<Status>(v_).ok()) << "Result built from an ok Status";
  }
  bool ok() const { return v_.index() == 0; }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & {
    FLIN_CHECK(ok()) << status().ToString();
    return std::get<T>(v_);
  }
  const T& value() const& {
    FLIN_CHECK(ok()) << status().ToString();
    return std::get<T>(v_);
  }
  T&& value() && {
    FLIN_CHECK(ok()) << status().ToString();
    return std::get<T>(std::move(v_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace flin

// Propagate a non-ok Status from an expression returning Status.
#define FLIN_RETURN_IF_ERROR(expr)              \
  do {                                          \
    ::flin::Status flin_status_ = (expr);       \
    if (!flin_status_.ok()) return flin_status_; \
  } while (0)
