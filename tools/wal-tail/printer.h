// wal-tail's output: a record in each --format (text, json, hex, raw), and
// the line that says seqs a salvage retired. Writes to stdout (the gap's
// message to stderr); one thread.
#pragma once

#include <flatbuffers/idl.h>
#include <flatbuffers/reflection.h>

#include <cstdint>
#include <span>
#include <string>

#include "storage/log_reader.h"

namespace wald::tools {

// Decodes payloads as a FlatBuffers table with FlatBuffers' own reflection
// (verification) and text generator (JSON).
class SchemaDecoder {
 public:
  // Reads the binary schema (.bfbs) and finds its table `root_type` (with or
  // without its namespace); false with *error saying why not.
  bool Load(const std::string& bfbs_path, const std::string& root_type, std::string* error);

  // JSON for the payload, or empty if it is not a valid buffer of the root
  // type.
  std::string Decode(std::span<const std::byte> payload) const;

 private:
  bool GenText(const uint8_t* p, std::string* out) const {
    return flatbuffers::GenerateText(parser_, p,
                                     out);  // FlatBuffers 2.0 (Debian 12): bool
  }

  std::string bfbs_;
  const reflection::Schema* schema_ = nullptr;
  const reflection::Object* root_ = nullptr;
  flatbuffers::Parser parser_;
};

struct Printer {
  std::string format = "text";
  const SchemaDecoder* schema = nullptr;  // not owned; must outlive the Printer's use

  // False when stdout is gone (a closed pipe): stop quietly.
  bool Print(const storage::RecordView& rec, const std::string& segment, uint64_t offset);
  // Seqs from..to do not exist (a salvage retired them): a JSON line in
  // --format json, and a message on stderr in every format.
  void PrintGap(unsigned long long from, unsigned long long to);

  static char Printable(std::byte b);
  static std::string Basename(const std::string& p);
};

}  // namespace wald::tools
