# Runs a libFuzzer binary over a seed corpus with a fresh work directory
# (libFuzzer writes the new inputs it finds into its first corpus directory)
# that is removed afterwards, so nothing grows from run to run.
#   cmake -DFUZZER=bin -DCORPUS=dir -DWORK=dir -DARTIFACTS=dir -DOPTIONS="-runs=N ..." -P run_fuzzer.cmake
# A crash is left in ARTIFACTS (crash-<sha1>) for the regression corpus.
separate_arguments(options UNIX_COMMAND "${OPTIONS}")
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}")
execute_process(COMMAND "${FUZZER}" ${options} "-artifact_prefix=${ARTIFACTS}/" "${WORK}" "${CORPUS}"
                RESULT_VARIABLE rc)
file(REMOVE_RECURSE "${WORK}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${FUZZER} failed (${rc})")
endif()
