# Turns the unit-test runners worker/runners/* (the Python harness for call and pytest tests,
# the JUnit 5 launcher for Java) into a C file defining sbx_py_runner and sbx_java_runner, so the
# worker writes them into each sandbox work dir with no source tree at run time.
# Inputs: RUNNER_DIR, OUT.
set(body "/* generated from worker/runners/ by cmake/embed_runners.cmake: do not edit */\n")
foreach(pair "stepmark_runner.py;sbx_py_runner" "StepmarkJUnit.java;sbx_java_runner")
  list(GET pair 0 file)
  list(GET pair 1 sym)
  file(READ "${RUNNER_DIR}/${file}" hex HEX)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  string(APPEND body "const unsigned char ${sym}[] = {${bytes}0};\n")
endforeach()
file(WRITE "${OUT}.tmp" "${body}")
execute_process(COMMAND ${CMAKE_COMMAND} -E copy_if_different "${OUT}.tmp" "${OUT}")
