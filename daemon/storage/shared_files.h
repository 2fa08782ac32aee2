// SharedFiles: one read-only descriptor per segment for any number of
// readers (issue #20). The daemon's Read cursors open their segments through
// one SharedFiles, so that a thousand followers at the head of the log hold
// one descriptor, not a thousand. A file closes when its last reader lets go.
//
// Thread-safe: cursors open segments on libuv's pool threads. A shared File
// is only read (File::ReadAt is a pread), which several threads may do at
// once. Opening happens under the lock, so two readers of one segment never
// both open it; opens are per segment per reader, never per record.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "storage/env.h"

namespace wald::storage {

class SharedFiles {
 public:
  explicit SharedFiles(Env* env);

  // The open file at `path` if a reader holds it, else env->Open(path, kRead).
  Result<std::shared_ptr<File>> Open(const std::string& path);
  // Files some reader holds: the descriptors this costs.
  size_t open() const;

 private:
  // Shared with every File's deleter, which may run after this object is gone
  // (a cursor still on the pool when the server shuts down).
  struct Table {
    std::mutex mu;
    std::unordered_map<std::string, std::weak_ptr<File>> files;  // guarded by mu
  };
  Env* const env_;
  const std::shared_ptr<Table> table_;
};

}  // namespace wald::storage
