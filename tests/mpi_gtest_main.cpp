// GoogleTest main for MPI: every rank runs every test. Rank 0 prints the usual report; the other
// ranks print only their failures, each marked with the rank. After each test the ranks agree on
// whether it failed anywhere, and the process exits non-zero on every rank if any rank failed.
#include <mpiproc/environment.hpp>

#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdio>

namespace {

class rank_failure_printer : public testing::EmptyTestEventListener {
 public:
  explicit rank_failure_printer(int rank) : rank_(rank) {}

  void OnTestPartResult(const testing::TestPartResult& result) override {
    if (!result.failed()) return;
    std::fprintf(stderr, "*** Failure on rank %d: %s:%d\n%s\n", rank_, result.file_name() ? result.file_name() : "?",
                 result.line_number(), result.summary());
    std::fflush(stderr);
  }

 private:
  int rank_;
};

/// After each test: rank 0 names the other ranks' failures, so its report tells the whole story.
class cross_rank_summary : public testing::EmptyTestEventListener {
 public:
  explicit cross_rank_summary(int rank) : rank_(rank) {}

  void OnTestEnd(const testing::TestInfo& info) override {
    const int failed = info.result()->Failed() ? 1 : 0;
    int ranks_failed = 0;
    MPI_Allreduce(&failed, &ranks_failed, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rank_ == 0 && ranks_failed > failed) {
      std::printf("[  RANKS   ] %s.%s failed on %d rank(s) other than 0 (see \"*** Failure on rank\")\n",
                  info.test_suite_name(), info.name(), ranks_failed - failed);
      std::fflush(stdout);
    }
  }

 private:
  int rank_;
};

}  // namespace

int main(int argc, char** argv) {
  mpiproc::environment env{argc, argv};
  testing::InitGoogleTest(&argc, argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);

  auto& listeners = testing::UnitTest::GetInstance()->listeners();
  if (rank != 0) {
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new rank_failure_printer(rank));
  }
  listeners.Append(new cross_rank_summary(rank));

  const int failed_here = RUN_ALL_TESTS() != 0 ? 1 : 0;
  int failed_anywhere = 0;
  MPI_Allreduce(&failed_here, &failed_anywhere, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (rank == 0 && failed_anywhere && !failed_here) std::printf("FAILED: tests failed on other ranks\n");
  return failed_anywhere;
}
