#include "retention_commands.h"

#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>

#include "wald/client.h"

namespace wald {
namespace {

unsigned long long U(uint64_t v) { return static_cast<unsigned long long>(v); }

// Connects as `wald <what>`; nullopt (the reason printed) if it cannot.
std::optional<Client> Connect(const std::string& socket_path, const char* what) {
  auto c = wald::connect(socket_path, {std::string("wald ") + what});
  if (!c.ok()) {
    std::fprintf(stderr, "wald %s: %s\n", what, c.error().message.c_str());
    return std::nullopt;
  }
  return std::move(c.value());
}

int Failed(const char* what, const Error& e) {
  std::fprintf(stderr, "wald %s: %s (%s)\n", what, e.message.c_str(), error_code_name(e.code));
  return 1;
}

}  // namespace

int RunTrimCommand(const std::string& socket_path, uint64_t up_to, bool json) {
  auto c = Connect(socket_path, "trim");
  if (!c) return 1;
  std::string held_by;
  auto r = c->trim(up_to, &held_by);
  if (!r.ok()) return Failed("trim", r.error());
  if (json) {
    nlohmann::ordered_json j = {{"released_up_to", r.value()}, {"held_by", nullptr}};
    if (!held_by.empty()) j["held_by"] = held_by;
    std::puts(j.dump().c_str());
  } else if (held_by.empty()) {
    std::printf("released up to seq %llu\n", U(r.value()));
  } else {
    std::printf("released up to seq %llu; hold %s kept back what it still needs\n", U(r.value()), held_by.c_str());
  }
  return 0;
}

int RunHoldCommand(const std::string& socket_path, const std::string& name, uint64_t seq, bool json) {
  auto c = Connect(socket_path, "hold");
  if (!c) return 1;
  auto r = c->hold(name, seq);
  if (!r.ok()) return Failed("hold", r.error());
  if (json) {
    std::puts(nlohmann::ordered_json({{"name", name}, {"seq", r.value()}}).dump().c_str());
  } else {
    std::printf("hold %s at seq %llu: nothing above it is released\n", name.c_str(), U(r.value()));
  }
  return 0;
}

int RunReleaseCommand(const std::string& socket_path, const std::string& name, bool json) {
  auto c = Connect(socket_path, "release");
  if (!c) return 1;
  if (Error e = c->release_hold(name); !e.ok()) return Failed("release", e);
  if (json) {
    std::puts(nlohmann::ordered_json({{"released", name}}).dump().c_str());
  } else {
    std::printf("hold %s released\n", name.c_str());
  }
  return 0;
}

int RunHoldsCommand(const std::string& socket_path, bool json) {
  auto c = Connect(socket_path, "holds");
  if (!c) return 1;
  auto r = c->stats();
  if (!r.ok()) return Failed("holds", r.error());
  const ServerStats& s = r.value();
  auto lag = [&](const HoldInfo& h) { return s.durable_seq > h.seq ? s.durable_seq - h.seq : 0; };
  if (json) {
    auto holds = nlohmann::ordered_json::array();
    for (const HoldInfo& h : s.holds) {
      holds.push_back({{"name", h.name}, {"seq", h.seq}, {"lag_records", lag(h)}, {"lag_bytes", h.lag_bytes}});
    }
    const nlohmann::ordered_json j = {{"durable_seq", s.durable_seq}, {"first_seq", s.first_seq}, {"holds", holds}};
    std::puts(j.dump().c_str());
    return 0;
  }
  if (s.holds.empty()) {
    std::printf("no holds (durable seq %llu, first seq held %llu)\n", U(s.durable_seq), U(s.first_seq));
    return 0;
  }
  // Bytes in whole segments: what the hold keeps on disk.
  std::printf("%-32s %20s %15s %15s\n", "NAME", "SEQ", "LAG RECORDS", "LAG BYTES");
  for (const HoldInfo& h : s.holds) {
    std::printf("%-32s %20llu %15llu %15llu\n", h.name.c_str(), U(h.seq), U(lag(h)), U(h.lag_bytes));
  }
  return 0;
}

}  // namespace wald
