// Status and Result<T>: how every fallible storage and server call reports.
//
// Success is a null pointer, so returning OK on the hot path costs nothing.
// Errors come from named factories and carry a code, the errno when there was
// one, and a message that names what failed (file, offset, operation).
// Both types are [[nodiscard]]: a dropped Status is a bug (LevelDB drops one in
// log_writer.cc; we make the compiler refuse).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace wald::storage {

enum class Code : uint8_t {
  kOk = 0,
  kIoError,          // a system call failed; errno() says why
  kCorruption,       // bytes on disk are not what the format allows
  kInvalidArgument,  // the caller asked for something impossible
  kNotFound,         // a file, directory or seq that does not exist
  kBusy,             // the log directory is locked by another process
  kFailed,           // the writer has fail-stopped after an earlier I/O error
  kNotALog,          // a directory that exists but is not a wald log
};

const char* CodeName(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(const Status& other) : rep_(other.rep_ ? std::make_unique<Rep>(*other.rep_) : nullptr) {}
  Status& operator=(const Status& other) {
    rep_ = other.rep_ ? std::make_unique<Rep>(*other.rep_) : nullptr;
    return *this;
  }
  Status(Status&&) noexcept = default;
  Status& operator=(Status&&) noexcept = default;

  static Status OK() { return Status(); }
  // `what` names the operation and its object, e.g. "fdatasync /d/0001.wal".
  static Status IoError(std::string_view what, int err) { return Status(Code::kIoError, what, err); }
  static Status Corruption(std::string_view what) { return Status(Code::kCorruption, what, 0); }
  static Status InvalidArgument(std::string_view what) { return Status(Code::kInvalidArgument, what, 0); }
  static Status NotFound(std::string_view what) { return Status(Code::kNotFound, what, 0); }
  static Status Busy(std::string_view what) { return Status(Code::kBusy, what, 0); }
  static Status Failed(std::string_view what) { return Status(Code::kFailed, what, 0); }
  static Status NotALog(std::string_view what) { return Status(Code::kNotALog, what, 0); }

  bool ok() const { return rep_ == nullptr; }
  Code code() const { return rep_ ? rep_->code : Code::kOk; }
  int err() const { return rep_ ? rep_->err : 0; }  // errno, or 0
  const std::string& message() const;
  // "IO error: fdatasync /d/x.wal: Input/output error"
  std::string ToString() const;

 private:
  struct Rep {
    Code code;
    int err;
    std::string message;
  };
  Status(Code code, std::string_view what, int err) : rep_(std::make_unique<Rep>(Rep{code, err, std::string(what)})) {}
  std::unique_ptr<Rep> rep_;
};

// A value or the Status that explains its absence. Never holds an OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}         // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}  // NOLINT: must not be OK
  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  Status take_status() { return ok() ? Status() : std::move(std::get<Status>(v_)); }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  T& operator*() & { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace wald::storage

// Propagates a non-OK Status to the caller.
#define WALD_RETURN_IF_ERROR(expr)        \
  do {                                    \
    ::wald::storage::Status _st = (expr); \
    if (!_st.ok()) return _st;            \
  } while (0)
