// wal-tail's --format: text, json (one object per line), hex and raw, and
// --schema's decoding of payloads as a FlatBuffers table.
#include "printer.h"

#include <flatbuffers/util.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "time_spec.h"

namespace wald::tools {

using namespace wald::storage;

namespace {

std::string Base64(std::span<const std::byte> in) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v = std::to_integer<uint32_t>(in[i]) << 16 | std::to_integer<uint32_t>(in[i + 1]) << 8 |
                       std::to_integer<uint32_t>(in[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += kAlphabet[(v >> s) & 63];
  }
  if (i < in.size()) {
    uint32_t v = std::to_integer<uint32_t>(in[i]) << 16;
    if (i + 1 < in.size()) v |= std::to_integer<uint32_t>(in[i + 1]) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < in.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

}  // namespace

bool SchemaDecoder::Load(const std::string& bfbs_path, const std::string& root_type, std::string* error) {
  if (!flatbuffers::LoadFile(bfbs_path.c_str(), true, &bfbs_)) {
    *error = "cannot read schema " + bfbs_path;
    return false;
  }
  flatbuffers::Verifier v(reinterpret_cast<const uint8_t*>(bfbs_.data()), bfbs_.size());
  if (!reflection::VerifySchemaBuffer(v)) {
    *error = bfbs_path + " is not a binary schema (.bfbs from flatc --binary --schema)";
    return false;
  }
  schema_ = reflection::GetSchema(bfbs_.data());
  root_ = schema_->objects()->LookupByKey(root_type.c_str());
  if (root_ == nullptr) {
    // Also accept the name without its namespace.
    for (const reflection::Object* o : *schema_->objects()) {
      const std::string n = o->name()->str();
      if (n == root_type || n.ends_with("." + root_type)) root_ = o;
    }
  }
  if (root_ == nullptr || root_->is_struct()) {
    *error = "no table " + root_type + " in " + bfbs_path;
    return false;
  }
  if (!parser_.Deserialize(reinterpret_cast<const uint8_t*>(bfbs_.data()), bfbs_.size()) ||
      !parser_.SetRootType(root_->name()->c_str())) {
    *error = "cannot use " + bfbs_path + ": " + parser_.error_;
    return false;
  }
  parser_.opts.strict_json = true;
  parser_.opts.indent_step = -1;  // one line
  return true;
}

std::string SchemaDecoder::Decode(std::span<const std::byte> payload) const {
  auto* p = reinterpret_cast<const uint8_t*>(payload.data());
  if (payload.size() < 8 || !flatbuffers::Verify(*schema_, *root_, p, payload.size())) return {};
  std::string json;
  if (!GenText(p, &json)) return {};
  while (!json.empty() && (json.back() == '\n' || json.back() == ' ')) json.pop_back();
  return json;
}

bool Printer::Print(const RecordView& rec, const std::string& segment, uint64_t offset) {
  const auto payload = rec.payload;
  if (format == "raw") {
    const uint32_t len = static_cast<uint32_t>(payload.size());
    std::fwrite(&len, sizeof len, 1, stdout);
    std::fwrite(payload.data(), 1, payload.size(), stdout);
  } else if (format == "json") {
    nlohmann::ordered_json j = {
        {"seq", rec.seq}, {"size", payload.size()}, {"segment", Basename(segment)}, {"offset", offset}};
    if (rec.meta.flags & kFlagTime) j["time"] = wald::tools::FormatRfc3339(rec.meta.time_ns);
    if (rec.meta.flags & kFlagProducer) {
      j["pid"] = rec.meta.pid;
      j["uid"] = rec.meta.uid;
      j["gid"] = rec.meta.gid;
    }
    if (rec.meta.flags & kFlagProducerSeq) {
      char id[17];  // 64 bits: past what a JSON number holds exactly
      std::snprintf(id, sizeof id, "%016llx", static_cast<unsigned long long>(rec.meta.producer_id));
      j["producer_id"] = id;
      j["producer_seq"] = rec.meta.producer_seq;
    }
    j["payload_b64"] = Base64(payload);
    if (schema != nullptr) {
      // FlatBuffers' text can hold what JSON cannot (a float's nan or
      // inf): such a payload goes without "decoded", as one that is not of
      // the root type does.
      auto decoded = nlohmann::ordered_json::parse(schema->Decode(payload), nullptr, false);
      if (!decoded.is_discarded()) j["decoded"] = std::move(decoded);
    }
    std::puts(j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace).c_str());
  } else if (format == "hex") {
    std::printf("seq %llu size %zu (%s offset %llu)", static_cast<unsigned long long>(rec.seq), payload.size(),
                Basename(segment).c_str(), static_cast<unsigned long long>(offset));
    if (rec.meta.flags & kFlagTime) std::printf(" time %s", wald::tools::FormatRfc3339(rec.meta.time_ns).c_str());
    if (rec.meta.flags & kFlagProducer) {
      std::printf(" pid %u uid %u gid %u", rec.meta.pid, rec.meta.uid, rec.meta.gid);
    }
    if (rec.meta.flags & kFlagProducerSeq) {
      std::printf(" producer %016llx seq %llu", static_cast<unsigned long long>(rec.meta.producer_id),
                  static_cast<unsigned long long>(rec.meta.producer_seq));
    }
    std::printf("\n");
    for (size_t i = 0; i < payload.size(); i += 16) {
      std::printf("  %08zx ", i);
      for (size_t j = i; j < i + 16; ++j) {
        if (j < payload.size()) {
          std::printf(" %02x", std::to_integer<unsigned>(payload[j]));
        } else {
          std::printf("   ");
        }
      }
      std::printf("  |");
      for (size_t j = i; j < i + 16 && j < payload.size(); ++j) std::putchar(Printable(payload[j]));
      std::printf("|\n");
    }
  } else {
    std::string decoded = schema ? schema->Decode(payload) : std::string();
    std::string preview;
    if (!decoded.empty()) {
      preview = decoded;
    } else {
      for (size_t i = 0; i < payload.size() && i < 64; ++i) preview += Printable(payload[i]);
      if (payload.size() > 64) preview += "...";
    }
    const std::string when =
        (rec.meta.flags & kFlagTime) ? wald::tools::FormatRfc3339(rec.meta.time_ns) : std::string("-");
    const std::string who =
        (rec.meta.flags & kFlagProducer)
            ? std::to_string(rec.meta.pid) + "/" + std::to_string(rec.meta.uid) + "/" + std::to_string(rec.meta.gid)
            : std::string("-");
    std::printf("%llu\t%zu\t%s\t%s\t%s\n", static_cast<unsigned long long>(rec.seq), payload.size(), when.c_str(),
                who.c_str(), preview.c_str());
  }
  return !std::ferror(stdout);
}

void Printer::PrintGap(unsigned long long from, unsigned long long to) {
  if (format == "json") {
    const nlohmann::ordered_json gap = {{"gap", {{"from", from}, {"to", to}, {"reason", "retired by a salvage"}}}};
    std::puts(gap.dump().c_str());
  }
  std::fprintf(stderr,
               "wal-tail: gap: seqs %llu..%llu do not exist (retired by a "
               "salvage)\n",
               from, to);
}

char Printer::Printable(std::byte b) {
  const int c = std::to_integer<int>(b);
  return c >= 0x20 && c < 0x7f ? static_cast<char>(c) : '.';
}
std::string Printer::Basename(const std::string& p) {
  auto slash = p.find_last_of('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

}  // namespace wald::tools
