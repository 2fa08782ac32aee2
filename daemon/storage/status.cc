#include "storage/status.h"

#include <cstring>

namespace wald::storage {

const char* CodeName(Code code) {
  switch (code) {
    case Code::kOk: return "OK";
    case Code::kIoError: return "IO error";
    case Code::kCorruption: return "corruption";
    case Code::kInvalidArgument: return "invalid argument";
    case Code::kNotFound: return "not found";
    case Code::kBusy: return "busy";
    case Code::kFailed: return "failed";
    case Code::kNotALog: return "not a wald log";
  }
  return "unknown";
}

const std::string& Status::message() const {
  static const std::string kEmpty;
  return rep_ ? rep_->message : kEmpty;
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string s = CodeName(rep_->code);
  s += ": ";
  s += rep_->message;
  if (rep_->err != 0) {
    s += ": ";
    s += std::strerror(rep_->err);
  }
  return s;
}

}  // namespace wald::storage
