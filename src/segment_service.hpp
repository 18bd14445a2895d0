#pragma once

#include "segment_ops.hpp"

#include <mpiproc/detail/shared_segment.hpp>

#include <mpi.h>

#include <cstddef>
#include <future>

namespace mpiproc::detail {

/// The messages path of shared_segment: one thread per process answers the requests for every
/// segment whose memory this process holds (it starts with the first and ends with the last), so
/// requests are served while the rank computes. It keeps waits until they hold and calls until
/// the handler answers them, in arrival order. A failed send or receive breaks the segment, so
/// that its waiters get peer_failed instead of waiting for an answer that cannot come.
///
/// Starts serving `memory` (this rank's bytes, or nullptr) and `handler` (op_call) to the ranks of
/// `comm` on the tags [tags, tags + tags_used); the future is ready once this process's stop
/// request (op_stop, sent to itself) has been handled.
std::future<void> serve(MPI_Comm comm, int tags, std::byte* memory, shared_segment::handler handler);

}  // namespace mpiproc::detail
