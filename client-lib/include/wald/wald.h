/* wald client library, C ABI. See <wald/client.h> for the semantics; this is
 * a thin layer over it for C and for other languages' FFIs.
 *
 *   wald_client *c;
 *   char err[256];
 *   if (wald_connect("/run/wald/wald.sock", &c, err, sizeof err) != WALD_OK) ...
 *   uint64_t seq;
 *   if (wald_append(c, "hello", 5, &seq) != WALD_OK) puts(wald_last_error(c));
 *   wald_close(c);
 *
 * Threads: one thread at a time per wald_client. Callbacks run inside
 * wald_poll / wald_wait_all / wald_append on the calling thread.
 * Every function returning int returns WALD_OK (0) or a negative WALD_E_*.
 */
#ifndef WALD_WALD_H
#define WALD_WALD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
  WALD_OK = 0,
  WALD_E_DAEMON_GONE = -1,
  WALD_E_OUTCOME_UNKNOWN = -2,
  WALD_E_PROTOCOL = -3,
  WALD_E_RECORD_TOO_LARGE = -4,
  WALD_E_NOT_PERMITTED = -5,
  WALD_E_SERVER_FAILED = -6,
  WALD_E_SHUTTING_DOWN = -7,
  WALD_E_TIMEOUT = -8,
  WALD_E_INVALID_ARGUMENT = -9,
  WALD_E_UNSUPPORTED = -10,
  WALD_E_TRIMMED = -11,
  WALD_E_SEQ_GAP = -12,        /* a read reached seqs a salvage retired; wald_last_error says where the log goes on */
  WALD_E_TOO_MANY_READS = -13, /* this connection already has the daemon's cap of open reads */
  WALD_E_TOO_MANY_CONNECTIONS = -14, /* the daemon is at its connection cap; retry later */
  WALD_E_NO_SUCH_HOLD = -15,         /* wald_release_hold of a hold that does not exist */
  WALD_E_DISK_BUDGET = -16,        /* the log is at the daemon's --max-disk: nothing appended; retry after a release */
  WALD_E_READ_FAILED = -17,        /* a read could not read the log (damage, I/O error); the connection stays */
  WALD_E_PRODUCER_SEQ_GAP = -18,   /* a producer's append numbered past its next one; nothing appended */
  WALD_E_PRODUCER_SEQ_STALE = -19, /* a producer's repeat too old to answer; nothing appended */
  WALD_E_PRODUCER_FENCED = -20,    /* a newer connection took the producer id over; nothing appended */
};

typedef struct wald_client wald_client;

/* A record of a read or subscription; the data is valid during the call.
 * Return 0 to go on, non-zero to stop. */
typedef int (*wald_record_cb)(void* user, uint64_t seq, const void* data, size_t len);

/* A record with the metadata wald stamped on it (wald --stamp). */
typedef struct wald_record_info {
  uint64_t seq;
  const void* data; /* valid during the call */
  size_t len;
  uint64_t time_ns; /* when wald received it, ns since the Unix epoch; 0: not stamped */
  int has_producer; /* non-zero: pid, uid, gid are the sender's */
  uint32_t pid;
  uint32_t uid;
  uint32_t gid;
  uint64_t producer_id; /* an idempotent producer's record: its id and number; 0: none */
  uint64_t producer_seq;
} wald_record_info;
typedef int (*wald_record_info_cb)(void* user, const wald_record_info* rec);

/* status is WALD_OK (seq valid) or a WALD_E_* code with a message. */
typedef void (*wald_append_cb)(void* user, int status, uint64_t seq, const char* message);

/* Connects and runs the handshake. On failure *out is NULL and errbuf (if
 * not NULL) holds the reason. */
int wald_connect(const char* socket_path, wald_client** out, char* errbuf, size_t errbuf_len);
/* wald_connect as an idempotent producer (<wald/client.h>, ClientOptions::
 * producer): each append is written exactly once, and when the daemon goes
 * away the client reconnects for up to reconnect_timeout_ms (-1: 30 s),
 * resends what is in flight and completes it with the real seqs.
 * producer_id 0: a random one. */
int wald_connect_producer(const char* socket_path, uint64_t producer_id, int reconnect_timeout_ms, wald_client** out,
                          char* errbuf, size_t errbuf_len);
/* Closes the connection and frees the handle; pending callbacks run with
 * WALD_E_OUTCOME_UNKNOWN. NULL is ignored. */
void wald_close(wald_client* c);

/* Blocks until durable; *seq_out (may be NULL) receives the record's seq. */
int wald_append(wald_client* c, const void* data, size_t len, uint64_t* seq_out);
/* Queues an append; cb(user, ...) runs once when it is acked or failed. */
int wald_append_async(wald_client* c, const void* data, size_t len, wald_append_cb cb, void* user);
/* Sends queued appends without waiting. */
int wald_flush(wald_client* c);
/* One round of I/O, waiting up to timeout_ms (-1: forever, 0: not at all). */
int wald_poll(wald_client* c, int timeout_ms);
/* Until nothing is in flight, or timeout_ms (-1: forever) passes. */
int wald_wait_all(wald_client* c, int timeout_ms);

/* Reads the durable log from `from` to its end; blocks. WALD_E_TRIMMED if
 * `from` was trimmed (wald_last_error names the first seq held). */
int wald_read(wald_client* c, uint64_t from, wald_record_cb cb, void* user);
/* Follows the log from `from` until cb returns non-zero (which closes the
 * connection: use a handle of its own) or an error. */
int wald_subscribe(wald_client* c, uint64_t from, wald_record_cb cb, void* user);
/* wald_read and wald_subscribe with each record's metadata. */
int wald_read_info(wald_client* c, uint64_t from, wald_record_info_cb cb, void* user);
int wald_subscribe_info(wald_client* c, uint64_t from, wald_record_info_cb cb, void* user);
/* Releases whole segments at or below up_to; *released (may be NULL) gets
 * the seq up to which records are gone. */
int wald_trim(wald_client* c, uint64_t up_to, uint64_t* released);
/* Creates the named hold, or moves it, to `seq`: nothing above it is
 * released until it moves or is released. *stored (if not NULL) gets the seq
 * stored (clamped to the durable seq). Blocks until durable. */
int wald_hold(wald_client* c, const char* name, uint64_t seq, uint64_t* stored);
/* Drops the named hold, durably; WALD_E_NO_SUCH_HOLD if there is none. */
int wald_release_hold(wald_client* c, const char* name);

int wald_fd(const wald_client* c);
/* The producer id (0: not a producer) and the times the client reconnected. */
uint64_t wald_producer_id(const wald_client* c);
uint64_t wald_reconnects(const wald_client* c);
int wald_wants_write(const wald_client* c);
size_t wald_inflight(const wald_client* c);
uint64_t wald_durable_seq(const wald_client* c);
/* 16 bytes. */
const uint8_t* wald_log_id(const wald_client* c);

/* The message of the last error this handle returned, or "". */
const char* wald_last_error(const wald_client* c);
/* A fixed description of a WALD_E_* code. */
const char* wald_strerror(int code);

#ifdef __cplusplus
}
#endif

#endif /* WALD_WALD_H */
