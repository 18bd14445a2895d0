# mpiproc_add_mpi_test(<target> [RANKS n...] [TIMEOUT seconds] [ARGS ...] [LABELS ...]
#                      [SUFFIX name ENVIRONMENT VAR=value...])
# Registers <target> as one ctest per rank count, named <target>.np<n>[.<suffix>], each run under
# mpiexec with a TIMEOUT, so that a hang fails in seconds rather than at the CI limit, and with the
# given environment (e.g. a variant that forces another code path).

find_package(MPI REQUIRED COMPONENTS CXX)

# Open MPI refuses root without --allow-run-as-root and more ranks than cores without
# --oversubscribe; both are harmless otherwise.
execute_process(COMMAND ${MPIEXEC_EXECUTABLE} --version OUTPUT_VARIABLE _mpiproc_mpiexec_version ERROR_QUIET)
set(MPIPROC_MPIEXEC_FLAGS "" CACHE STRING "Extra mpiexec flags for the tests")
if(_mpiproc_mpiexec_version MATCHES "Open MPI|OpenRTE")
  set(MPIPROC_MPIEXEC_FLAGS --allow-run-as-root --oversubscribe CACHE STRING "Extra mpiexec flags for the tests" FORCE)
endif()

# The command that runs <np> ranks of a program, for tests that wrap it.
function(mpiproc_mpiexec_command out np)
  set(${out} ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${np} ${MPIPROC_MPIEXEC_FLAGS} ${MPIEXEC_PREFLAGS} PARENT_SCOPE)
endfunction()

function(mpiproc_add_mpi_test target)
  cmake_parse_arguments(ARG "" "TIMEOUT;SUFFIX" "RANKS;ARGS;LABELS;ENVIRONMENT" ${ARGN})
  if(NOT ARG_RANKS)
    set(ARG_RANKS 1 2 3 4)
  endif()
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 60)
  endif()
  foreach(np IN LISTS ARG_RANKS)
    set(name ${target}.np${np})
    if(ARG_SUFFIX)
      set(name ${name}.${ARG_SUFFIX})
    endif()
    mpiproc_mpiexec_command(launcher ${np})
    add_test(NAME ${name} COMMAND ${launcher} $<TARGET_FILE:${target}> ${ARG_ARGS})
    set_tests_properties(${name} PROPERTIES TIMEOUT ${ARG_TIMEOUT} LABELS "mpi;${ARG_LABELS}")
    if(ARG_ENVIRONMENT)
      set_tests_properties(${name} PROPERTIES ENVIRONMENT "${ARG_ENVIRONMENT}")
    endif()
  endforeach()
endfunction()
