// Everything the daemon can be told, with its defaults. Filled by main.cc
// from the command line and the optional config file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "server/commit_writer.h"
#include "storage/recovery.h"

namespace wald::server {

struct ServerOptions {
  std::string dir = "./wald-data";
  std::string socket = "./wald.sock";
  std::string metrics_listen;  // ADDR:PORT answering GET /metrics (openmetrics.h); "": none
  uint32_t socket_mode = 0660;
  int listen_fd = -1;  // an already listening socket to adopt (systemd); then `socket` is informational
  uint64_t segment_size = 64ull << 20;
  uint32_t max_record = 1u << 20;             // payload bytes of one Append
  uint64_t max_unsynced_bytes = 16ull << 20;  // received but not yet durable, all clients
  uint32_t max_inflight = 4096;               // unacked Appends per connection
  uint32_t max_reads_per_connection = 16;     // open Reads (each a cursor: buffers and an fd)
  // Connections at once. Beyond it, or beyond the descriptor budget (the
  // soft RLIMIT_NOFILE less kReservedFds kept for storage), a new connection
  // gets Error{TooManyConnections} and is closed: client load never makes
  // storage see EMFILE.
  uint32_t max_connections = 4096;
  // A connection that has not completed its Hello after this long is closed
  // (0: never).
  uint64_t hello_timeout_ms = 10000;
  // A frame begun after Hello that has not completed after this long, while
  // the server was reading the connection, closes it (0: never). Without it,
  // connections that trickle frames could hold --max-partial-bytes for good
  // and so refuse honest large appends.
  uint64_t frame_timeout_ms = 10000;
  uint64_t max_connection_bytes = 4ull << 20;  // unacked payload + unsent output per connection
  // Incomplete frames held across all connections (each is at most
  // max_record + 128): a connection whose frame would pass it is refused.
  uint64_t max_partial_bytes = 256ull << 20;
  // Retention (storage::LogOptions), 0: off.
  uint64_t retain_bytes = 0;
  uint64_t retain_age_ms = 0;
  uint64_t max_hold_lag = 0;
  // Released segments are reused as spares (storage::LogOptions::recycle).
  bool recycle = false;
  // Disk budget for the segment files (0: none): an Append that would need
  // more gets Error{DiskBudget}; nothing is released for it.
  uint64_t max_disk = 0;
  SpinOptions spin;
  // Low-load latency: after handing the writer a batch of at most
  // kAckSpinMaxBatch records, the loop thread waits up to this long for it
  // to become durable instead of sleeping in epoll (see Server::AwaitDurable).
  uint32_t ack_spin_us = 400;
  std::vector<uint32_t> allow_uids;  // empty: anyone who can open the socket
  std::vector<uint32_t> allow_gids;
  // Who may Trim. Both empty: every connected peer may (the socket's mode
  // and --allow-uid/--allow-gid decide who connects).
  std::vector<uint32_t> allow_trim_uids;
  std::vector<uint32_t> allow_trim_gids;
  storage::VerifyMode verify = storage::VerifyMode::kLastSegment;
  bool salvage = false;
  // Idempotent producers (producer_table.h): a producer whose last record
  // is more records behind the end of the log than this is forgotten, and
  // the daemon reads this many records back at start to rebuild the table.
  uint64_t producer_window = 1'000'000;
  size_t max_producers = 65536;  // beyond it the producer idle longest is forgotten
  // Per-record metadata (FORMAT.md): storage::kFlagTime and/or kFlagProducer.
  uint32_t stamp = storage::kFlagTime | storage::kFlagProducer;
  uint32_t stats_interval_s = 5;
  // A drain closes connections that still have unsent acks after this long
  // (their records are durable); 0: wait for them forever.
  uint64_t drain_timeout_ms = 10000;
  // SIGTERM/SIGINT start a drain (read from a signalfd). Off only where the
  // Server runs inside another program that keeps its own signals (the
  // dispatch fuzzer).
  bool handle_stop_signals = true;
};

}  // namespace wald::server
