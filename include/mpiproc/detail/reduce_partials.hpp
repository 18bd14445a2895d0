#pragma once

#include <mpiproc/communicator.hpp>
#include <mpiproc/detail/transport.hpp>
#include <mpiproc/reduction.hpp>

#include <optional>
#include <type_traits>
#include <utility>

namespace mpiproc::detail {

/// Collective: combines one partial result per rank with `op`, onto `root` or every rank
/// (all_ranks). Known operators on arithmetic types use MPI's own reduction (a tree, no copies);
/// anything else is gathered and folded in rank order.
template <class R, class Op>
std::optional<R> reduce_partials(const communicator& comm, R partial, const Op& op, int root) {
  const MPI_Comm c = comm.native();
  const bool receives = root == all_ranks || comm.rank() == root;
  if constexpr (known_op_applies<Op, R>() && std::is_arithmetic_v<R> && !std::is_same_v<R, bool>) {
    const MPI_Datatype type = builtin_type<R>();
    R result = partial;
    if (root == all_ranks)
      MPIPROC_CHECK(MPI_Allreduce(&partial, &result, 1, type, known_op<Op>::mpi(), c));
    else
      MPIPROC_CHECK(MPI_Reduce(&partial, &result, 1, type, known_op<Op>::mpi(), root, c));
    if (!receives) return std::nullopt;
    return result;
  } else {
    std::vector<R> parts = gather(c, partial, root);
    if (!receives) return std::nullopt;
    R result = std::move(parts.front());
    for (std::size_t r = 1; r < parts.size(); ++r) result = op(std::move(result), std::move(parts[r]));
    return result;
  }
}

}  // namespace mpiproc::detail
