// ThreadRole: a debug-build check that a function runs on the one thread
// whose role it is (the loop thread, the writer thread). Bind() names the
// thread; Check() aborts with the role's name when another thread calls.
// Release builds (NDEBUG) compile both to nothing.
//
//   ThreadRole loop_role_{"loop"};
//   void Server::Run() { loop_role_.Bind(); ... }
//   void Server::OnWriterProgress() { loop_role_.Check(); ... }
//
// Until Bind() nothing is checked: set-up code (Start) may run on another
// thread than the one that later runs the loop (the dispatch fuzzer does).
#pragma once

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <thread>

namespace wald::server {

class ThreadRole {
 public:
  explicit constexpr ThreadRole(const char* name) : name_(name) {}

#ifdef NDEBUG
  void Bind() {}
  void Check() const {}
  void CheckOrBind() {}
#else
  void Bind() { owner_.store(std::hash<std::thread::id>{}(std::this_thread::get_id()), std::memory_order_relaxed); }
  void Check() const {
    const size_t owner = owner_.load(std::memory_order_relaxed);
    if (owner != 0 && owner != std::hash<std::thread::id>{}(std::this_thread::get_id())) {
      std::fprintf(stderr, "wald: a %s-thread-only function was called from another thread\n", name_);
      std::abort();
    }
  }
  // Binds on the first call, checks on every later one (a role whose thread
  // is whoever calls first, such as the CommitWriter's loop side).
  void CheckOrBind() {
    size_t expected = 0;
    const size_t me = std::hash<std::thread::id>{}(std::this_thread::get_id());
    if (!owner_.compare_exchange_strong(expected, me, std::memory_order_relaxed) && expected != me) Check();
  }
#endif

 private:
  const char* const name_;
#ifndef NDEBUG
  std::atomic<size_t> owner_{0};
#endif
};

}  // namespace wald::server
