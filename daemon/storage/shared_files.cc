#include "storage/shared_files.h"

namespace wald::storage {

SharedFiles::SharedFiles(Env* env) : env_(env), table_(std::make_shared<Table>()) {}

Result<std::shared_ptr<File>> SharedFiles::Open(const std::string& path) {
  std::lock_guard lk(table_->mu);
  std::weak_ptr<File>& slot = table_->files[path];
  if (std::shared_ptr<File> f = slot.lock()) return f;
  auto f = env_->Open(path, OpenMode::kRead);
  if (!f.ok()) {
    table_->files.erase(path);
    return f.take_status();
  }
  // The last reader's release closes the file and forgets it, unless a new
  // reader has opened the path again meanwhile (its entry is live then).
  std::shared_ptr<File> shared(f->release(), [table = table_, path](File* file) {
    delete file;
    std::lock_guard relk(table->mu);
    auto it = table->files.find(path);
    if (it != table->files.end() && it->second.expired()) table->files.erase(it);
  });
  slot = shared;
  return shared;
}

size_t SharedFiles::open() const {
  std::lock_guard lk(table_->mu);
  return table_->files.size();
}

}  // namespace wald::storage
