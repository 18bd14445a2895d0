#pragma once

#include "segment_ops.hpp"

#include <mpi.h>

#include <cstddef>
#include <functional>
#include <future>
#include <optional>
#include <string>

namespace mpiproc::detail {

/// Answers op_call: gets the calling rank and the request, returns the answer, or nothing to keep
/// the call until a later call changes what it answers (it is asked again after each, kept calls
/// in arrival order). Runs on the service thread, one call at a time; what it throws reaches the
/// caller as an error (key_error and index_error as themselves). A posted call (op_post_call) gets
/// no answer: the handler's is dropped, and the kept calls are asked again after it.
using call_handler = std::function<std::optional<std::string>(int source, const std::string& request)>;

/// Called by the service thread once a round, between the requests it answers, for an endpoint
/// whose owner has messages of its own to take while the rank computes (the task pool's): true if
/// it found something to do, which keeps the thread quick to look again.
using poll_hook = std::function<bool()>;

/// The server side of service_endpoint: one thread per process answers the requests for every
/// endpoint this process serves (it starts with the first and ends with the last), so requests
/// are served while the rank computes. It keeps waits until they hold and calls until the handler
/// answers them, in arrival order. A failed send or receive breaks the endpoint, so that its
/// waiters get peer_failed instead of waiting for an answer that cannot come.
///
/// Starts serving `memory` (this rank's bytes, or nullptr) and `handler` (op_call) to the ranks of
/// `comm` on the tags [tags, tags + tags_used), and calling `poll` (if any) each round; the future
/// is ready once this process's stop request (op_stop, sent to itself) has been handled, after
/// which `poll` is not called again.
std::future<void> serve(MPI_Comm comm, int tags, std::byte* memory, call_handler handler, poll_hook poll = {});

}  // namespace mpiproc::detail
