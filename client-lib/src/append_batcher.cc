#include "append_batcher.h"

#include <algorithm>

namespace wald {

void AppendBatcher::Configure(uint32_t max_frame, uint32_t max_records) {
  max_frame_ = max_frame;
  max_records_ = std::max<uint32_t>(max_records, 1);
}

bool AppendBatcher::Fits(size_t size) const {
  if (sizes_.empty()) return true;
  if (max_records_ <= 1 || sizes_.size() >= max_records_) return false;
  const size_t frame = proto::kAppendOverhead + (sizes_.size() + 1) * proto::kBatchRecordOverhead + data_.size() + size;
  return frame <= max_frame_;
}

void AppendBatcher::Add(uint64_t rid, std::span<const std::byte> payload, uint64_t pseq) {
  if (sizes_.empty()) {
    first_id_ = rid;
    first_pseq_ = pseq;
  }
  sizes_.push_back(static_cast<uint32_t>(payload.size()));
  const auto* p = reinterpret_cast<const uint8_t*>(payload.data());
  data_.insert(data_.end(), p, p + payload.size());
}

AppendBatcher::Closed AppendBatcher::Close(proto::FrameBuilder* fb, std::vector<uint8_t>* out) {
  if (sizes_.empty()) return {};
  const Closed closed{first_id_, static_cast<uint32_t>(sizes_.size())};
  // A lone record fits an Append even at the largest size, which an
  // AppendBatch's size entry would push past max_frame.
  const auto frame = closed.count == 1 ? fb->Append(first_id_, data_, first_pseq_)
                                       : fb->AppendBatch(first_id_, sizes_, data_, first_pseq_);
  out->insert(out->end(), frame.begin(), frame.end());
  Clear();
  return closed;
}

void AppendBatcher::Clear() {
  sizes_.clear();
  data_.clear();
}

}  // namespace wald
