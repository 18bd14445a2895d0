// Errors: an exception in user code on any rank reaches every rank as the same remote_error, never
// a hang; MPI failures name the routine; usage errors for bad arguments.
#include "test_support.hpp"

#include <mpiproc/detail/check.hpp>
#include <mpiproc/mpiproc.hpp>

#include <stdexcept>
#include <string>

using mpiproc::range;
using mpiproc::remote_error;
using mpiproc::schedule;
using test::world;

namespace {
std::vector<schedule> all_schedules() {
  return {schedule::block(), schedule::cyclic(), schedule::cyclic(4), schedule::dynamic(), schedule::dynamic(1), schedule::guided()};
}
}  // namespace

TEST(Errors, ExceptionInTheLastItemReachesEveryRank) {
  for (const auto& s : all_schedules()) {
    std::int64_t thrower = -1;  // the rank that met item 99
    try {
      mpiproc::map_reduce(world(), range<int>{0, 100}, [&](int i) {
        if (i == 99) {
          thrower = world().rank();
          throw std::runtime_error("item 99 is bad");
        }
        return i;
      }, std::plus<>{}, s);
      ADD_FAILURE() << "no exception on rank " << world().rank() << " with " << s.name();
    } catch (const remote_error& e) {
      EXPECT_EQ(e.message(), "item 99 is bad");
      EXPECT_EQ(e.failed_ranks(), 1);
      EXPECT_TRUE(test::same_everywhere(e.rank()));
      const auto throwers = test::all_gather({thrower});
      EXPECT_EQ(throwers[static_cast<std::size_t>(e.rank())], e.rank());
      EXPECT_NE(std::string(e.what()).find("rank " + std::to_string(e.rank()) + ": item 99 is bad"), std::string::npos) << e.what();
    }
  }
}

TEST(Errors, ExceptionOnOneRankOnly) {
  const int bad = world().size() - 1;
  // Whichever rank gets the chunk holding item 500 throws; under dynamic schedules that can be any.
  for (const auto& s : all_schedules()) {
    try {
      mpiproc::for_each_chunks(world(), range<int>{0, 1000}, [&](range<int> chunk) {
        if (chunk.first() <= 500 && 500 < chunk.last()) throw std::logic_error("chunk with 500");
      }, s);
      ADD_FAILURE() << "no exception with " << s.name();
    } catch (const remote_error& e) {
      EXPECT_EQ(e.message(), "chunk with 500");
      EXPECT_EQ(e.failed_ranks(), 1);
    }
  }
  // A rank that owns no items cannot throw; with block every rank owns some here.
  try {
    mpiproc::for_each(world(), range<int>{0, world().size()}, [&](int) {
      if (world().rank() == bad) throw std::logic_error("only rank " + std::to_string(bad));
    });
    ADD_FAILURE() << "no exception";
  } catch (const remote_error& e) {
    EXPECT_EQ(e.rank(), bad);
    EXPECT_EQ(e.message(), "only rank " + std::to_string(bad));
  }
}

TEST(Errors, EveryRankThrowingNamesTheLowest) {
  try {
    mpiproc::map(world(), range<int>{0, 4 * world().size()}, [&](int) -> int { throw std::runtime_error("r" + std::to_string(world().rank())); });
    ADD_FAILURE() << "no exception";
  } catch (const remote_error& e) {
    EXPECT_EQ(e.rank(), 0);
    EXPECT_EQ(e.message(), "r0");
    EXPECT_EQ(e.failed_ranks(), world().size());
  }
}

TEST(Errors, NonStandardExceptionIsStillReported) {
  try {
    mpiproc::for_each(world(), range<int>{0, 10}, [](int i) { if (i == 0) throw 42; });
    ADD_FAILURE() << "no exception";
  } catch (const remote_error& e) {
    EXPECT_NE(e.message().find("unknown exception"), std::string::npos) << e.message();
  }
}

TEST(Errors, CommunicatorWorksAfterAnError) {
  // A failed dynamic loop closes its shared counter early; the next loops must start afresh.
  for (int round = 0; round < 5; ++round) {
    EXPECT_THROW(mpiproc::for_each(world(), range<int>{0, 500}, [](int i) { if (i == 3) throw std::runtime_error("x"); }, schedule::dynamic(1)), remote_error);
    EXPECT_EQ(mpiproc::map_reduce(world(), range<int>{0, 500}, [](int i) { return i; }, std::plus<>{}, schedule::dynamic(1)), 124750);
    EXPECT_EQ(mpiproc::map_reduce(world(), range<int>{0, 500}, [](int i) { return i; }, std::plus<>{}, schedule::guided()), 124750);
  }
}

TEST(Errors, BadRootIsAUsageError) {
  EXPECT_THROW(mpiproc::map_reduce_root(world(), world().size(), range<int>{0, 3}, [](int i) { return i; }, std::plus<>{}), mpiproc::usage_error);
  EXPECT_THROW(mpiproc::map_root(world(), -1, range<int>{0, 3}, [](int i) { return i; }), mpiproc::usage_error);
}

TEST(Errors, MpiFailureNamesTheRoutine) {
  // A send of the test's own, on a communicator of its own that returns errors (mpiproc's
  // duplicate, native(), is not for the caller's point-to-point calls).
  MPI_Comm own = MPI_COMM_NULL;
  MPI_Comm_dup(MPI_COMM_WORLD, &own);
  MPI_Comm_set_errhandler(own, MPI_ERRORS_RETURN);
  try {
    MPIPROC_CHECK(MPI_Send(nullptr, -1, MPI_INT, 0, 0, own));  // a negative count
    ADD_FAILURE() << "no exception";
  } catch (const mpiproc::mpi_error& e) {
    EXPECT_EQ(e.routine(), "MPI_Send");
    EXPECT_NE(e.code(), MPI_SUCCESS);
    EXPECT_NE(std::string(e.what()).find("MPI_Send failed"), std::string::npos) << e.what();
  }
  MPI_Comm_free(&own);
}

TEST(Errors, CommunicatorNeedsARealCommunicator) {
  EXPECT_THROW(mpiproc::communicator{MPI_COMM_NULL}, mpiproc::usage_error);
}
