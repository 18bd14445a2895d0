#pragma once

#include <mpiproc/communicator.hpp>
#include <mpiproc/detail/shared_segment.hpp>

#include <chrono>
#include <cstdint>
#include <memory>

namespace mpiproc {

/// A flag any rank can set or clear and others wait for (Python's multiprocessing.Event). A
/// set() wakes every rank waiting at that moment, even if another rank clears the flag at once.
class event {
 public:
  /// Collective over `comm`: starts clear.
  explicit event(const communicator& comm);

  /// Sets the flag and wakes every rank waiting; not collective.
  void set();
  /// Clears the flag; not collective.
  void clear();
  bool is_set();
  /// Waits until the flag is set; returns true (the flag, as Python's Event.wait() does).
  bool wait();
  /// Waits at most `timeout`; returns whether the flag was set (false: timed out), as Python's
  /// Event.wait(timeout).
  template <class Rep, class Period>
  bool wait(const std::chrono::duration<Rep, Period>& timeout) {
    return wait_for(timeout);
  }
  template <class Rep, class Period>
  bool wait_for(const std::chrono::duration<Rep, Period>& timeout) {
    return wait_until_steady(detail::clock::now() + std::chrono::ceil<detail::clock::duration>(timeout));
  }

 private:
  bool wait_until_steady(const detail::deadline& until);

  // One word on rank 0: the flag in bit 0; every set or clear adds 1, so a waiter that saw the flag
  // clear knows any change since is a set.
  std::unique_ptr<detail::shared_segment> word_;
};

}  // namespace mpiproc
