/* The C ABI, compiled as C: connect, blocking append, async appends with a C
 * callback driven by wald_poll, errors. Usage: c_api_test SOCKET */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wald/wald.h>

static int failures = 0;
#define EXPECT(cond)                                              \
  do {                                                            \
    if (!(cond)) {                                                \
      fprintf(stderr, "%s:%d: EXPECT(%s) failed\n", __FILE__, __LINE__, #cond); \
      ++failures;                                                 \
    }                                                             \
  } while (0)

struct acks {
  int count;
  uint64_t last_seq;
  int in_order;
};

static void on_ack(void *user, int status, uint64_t seq, const char *message) {
  struct acks *a = (struct acks *)user;
  (void)message;
  if (status != WALD_OK) return;
  if (a->last_seq != 0 && seq != a->last_seq + 1) a->in_order = 0;
  a->last_seq = seq;
  a->count++;
}

static int on_record(void *user, uint64_t seq, const void *data, size_t len) {
  struct acks *a = (struct acks *)user;
  (void)data;
  (void)len;
  if (seq != a->last_seq + 1) a->in_order = 0;
  a->last_seq = seq;
  a->count++;
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: c_api_test SOCKET\n");
    return 2;
  }
  char err[256];
  wald_client *c = NULL;
  EXPECT(wald_connect("/nonexistent.sock", &c, err, sizeof err) == WALD_E_DAEMON_GONE);
  EXPECT(c == NULL && strstr(err, "/nonexistent.sock") != NULL);

  if (wald_connect(argv[1], &c, err, sizeof err) != WALD_OK) {
    fprintf(stderr, "connect: %s\n", err);
    return 1;
  }
  EXPECT(wald_fd(c) >= 0);
  uint64_t seq = 0;
  EXPECT(wald_append(c, "hello from C", 12, &seq) == WALD_OK);
  EXPECT(seq >= 1);
  EXPECT(wald_durable_seq(c) >= seq);

  struct acks a = {0, 0, 1};
  for (int i = 0; i < 100; ++i) {
    char buf[32];
    int n = snprintf(buf, sizeof buf, "async %d", i);
    EXPECT(wald_append_async(c, buf, (size_t)n, on_ack, &a) == WALD_OK);
  }
  EXPECT(wald_flush(c) == WALD_OK);
  while (wald_inflight(c) > 0) EXPECT(wald_poll(c, 1000) == WALD_OK);
  EXPECT(a.count == 100);
  EXPECT(a.last_seq == seq + 100); /* this test is the only client */
  EXPECT(a.in_order);

  /* Read everything back: this test's records are the whole log. */
  struct acks r = {0, 0, 1};
  EXPECT(wald_read(c, 1, on_record, &r) == WALD_OK);
  EXPECT(r.count == (int)(seq + 100));
  EXPECT(r.in_order);
  uint64_t released = 99;
  EXPECT(wald_trim(c, 1, &released) == WALD_OK);
  EXPECT(released == 0); /* one segment: nothing whole to release */

  char *big = calloc(1, 2u << 20);
  EXPECT(wald_append(c, big, 2u << 20, NULL) == WALD_E_RECORD_TOO_LARGE);
  EXPECT(strlen(wald_last_error(c)) > 0);
  free(big);
  EXPECT(strcmp(wald_strerror(WALD_E_OUTCOME_UNKNOWN), "outcome unknown") == 0);
  wald_close(c);

  /* An idempotent producer: a given id, numbered appends, the same seqs. */
  wald_client *p = NULL;
  EXPECT(wald_connect_producer(argv[1], 0x1234, -1, &p, err, sizeof err) == WALD_OK);
  if (p != NULL) {
    EXPECT(wald_producer_id(p) == 0x1234);
    uint64_t pseq = 0;
    EXPECT(wald_append(p, "from a producer", 15, &pseq) == WALD_OK);
    EXPECT(pseq == seq + 101);
    EXPECT(wald_reconnects(p) == 0);
    wald_close(p);
  }
  EXPECT(strcmp(wald_strerror(WALD_E_PRODUCER_FENCED), "a newer connection took this producer over") == 0);
  wald_close(NULL);
  if (failures == 0) printf("c_api_test: all passed\n");
  return failures == 0 ? 0 : 1;
}
