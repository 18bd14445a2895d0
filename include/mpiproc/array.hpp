#pragma once

#include <mpiproc/communicator.hpp>
#include <mpiproc/raw_array.hpp>
#include <mpiproc/rlock.hpp>

#include <vector>

namespace mpiproc {

/// A fixed-size array shared by the ranks of a communicator, with a lock (Python's
/// multiprocessing.Array; raw_array<T> is RawArray, without one). Each get() and set() is atomic
/// for elements of 1, 2, 4 or 8 bytes; bulk read() and write() and slices are not atomic as a
/// whole: hold get_lock() where that matters. Everything but get_lock() is raw_array's.
template <class T>
class array : public raw_array<T> {
 public:
  /// Collective over `comm`: `size` elements with all bytes zero. Every rank passes the same size.
  array(const communicator& comm, std::size_t size, layout where = layout::on_rank0)
      : raw_array<T>(comm, size, where), lock_(comm) {}
  /// Collective over `comm`: a copy of rank 0's `values` (the other ranks' are ignored).
  array(const communicator& comm, const std::vector<T>& values, layout where = layout::on_rank0)
      : raw_array<T>(comm, values, where), lock_(comm) {}

  /// The array's own lock (re-entrant, as in Python).
  rlock& get_lock() noexcept { return lock_; }
  /// The array without its lock (Python's get_obj()).
  raw_array<T>& get_obj() noexcept { return *this; }

 private:
  rlock lock_;
};

}  // namespace mpiproc
