// Out of file descriptors in storage (#20 item 2): EMFILE/ENFILE where the
// writer opens files is waited out, never a fail-stop.
#include <doctest/doctest.h>

#include <atomic>

#include "log_fixture.h"

using namespace wald::storage;
using wald::test::LogFixture;

namespace {

struct FdFixture : LogFixture {
  FdFixture() {
    opts.segment_size = 64 << 10;  // rolls every ~60 records of 1000 bytes
    opts.on_fd_wait = [this](bool waiting, const Status&) { ++(waiting ? waits : resumes); };
  }
  std::atomic<int> waits{0};
  std::atomic<int> resumes{0};
};

}  // namespace

TEST_CASE_FIXTURE(FdFixture, "rolls that run out of descriptors wait and go on: nothing fails, nothing is lost") {
  for (bool background : {false, true}) {
    CAPTURE(background);
    opts.prepare_in_background = background;
    waits = resumes = 0;
    REQUIRE(Open().ok());
    const uint64_t before = w->durable_seq();
    fault.FailOpens(6, background ? ENFILE : EMFILE);
    REQUIRE(WriteN(300, 1000).ok());  // five rolls
    CHECK(fault.failed_opens() >= 6);
    CHECK(w->failure().ok());
    CHECK(w->durable_seq() == before + 300);
    CHECK(waits > 0);
    CHECK(resumes == waits);  // every call that waited went on
    Close();
  }
  CHECK(ReadAll().size() == 600);
}

TEST_CASE_FIXTURE(FdFixture, "a trim that runs out of descriptors waits and goes on, and says so once") {
  opts.prepare_in_background = false;  // only the trim opens files here
  REQUIRE(Open().ok());
  REQUIRE(WriteN(300, 1000).ok());
  const size_t segments = Segments().size();
  fault.FailOpens(4);
  REQUIRE(w->Trim(200).ok());
  CHECK(fault.failed_opens() == 4);
  CHECK(w->failure().ok());
  CHECK(Segments().size() < segments);
  CHECK(waits == 1);  // one call waited, through four failures
  CHECK(resumes == 1);
  REQUIRE(Write({"after"}).ok());
}
