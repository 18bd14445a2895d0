# cmake -DCOMMAND=<;-list> -DEXPECT_RC=<code> [-DEXPECT_REGEX=<regex>] [-DEXPECT_ALSO=<regex>]
#       -P run_and_match.cmake
# Runs a program and fails unless its exit code is EXPECT_RC and its output matches EXPECT_REGEX
# and EXPECT_ALSO (ctest's PASS_REGULAR_EXPRESSION alone would ignore the exit code). Two regexes
# check lines of two ranks whose interleaving is not fixed.
execute_process(COMMAND ${COMMAND} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("${out}${err}")
if(NOT rc STREQUAL EXPECT_RC)
  message(FATAL_ERROR "exit code ${rc}, expected ${EXPECT_RC}")
endif()
if(DEFINED EXPECT_REGEX AND NOT "${out}${err}" MATCHES "${EXPECT_REGEX}")
  message(FATAL_ERROR "output does not match: ${EXPECT_REGEX}")
endif()
if(DEFINED EXPECT_ALSO AND NOT "${out}${err}" MATCHES "${EXPECT_ALSO}")
  message(FATAL_ERROR "output does not match: ${EXPECT_ALSO}")
endif()
