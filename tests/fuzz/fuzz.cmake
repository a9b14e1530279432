# tests/fuzz/fuzz.cmake: fuzz targets over the agent's pure C parts.
#   fuzz_replay_<target>  always: runs tests/fuzz/corpus/<target>/ through the
#                         target (ctest fuzz_replay_<target>, label "fuzz"),
#                         in whatever build this is (plain, ASan, TSan)
#   fuzz_<target>         with -DHA_FUZZ=ON and clang: the libFuzzer binary,
#                         built with -fsanitize=fuzzer,address,undefined
# See tests/fuzz/README.md.
option(HA_FUZZ "build the libFuzzer binaries (clang only)" OFF)

set(HA_FUZZ_DIR ${CMAKE_SOURCE_DIR}/tests/fuzz)
set(HA_FUZZ_TARGETS common cidr json_str render config fast request)

if(HA_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "HA_FUZZ=ON needs clang: CC=clang cmake -DHA_FUZZ=ON ...")
  endif()
  if(HA_SANITIZE STREQUAL "thread")
    message(FATAL_ERROR "HA_FUZZ=ON does not combine with HA_SANITIZE=thread")
  endif()
  # Coverage feedback from the agent's code, and ASan+UBSan for everything
  # that links hacore (the binary, the C tests, the replay drivers).
  target_compile_options(hacore PRIVATE -fsanitize=fuzzer-no-link)
  if(NOT HA_SANITIZE STREQUAL "address")
    target_compile_options(hacore PUBLIC -fsanitize=address,undefined -fno-omit-frame-pointer
                           -fno-sanitize-recover=undefined)
    target_link_options(hacore INTERFACE -fsanitize=address,undefined)
  endif()
endif()

add_library(hafuzz_util STATIC ${HA_FUZZ_DIR}/fuzz_util.c)
target_link_libraries(hafuzz_util PUBLIC hacore)

foreach(t ${HA_FUZZ_TARGETS})
  add_executable(fuzz_replay_${t} ${HA_FUZZ_DIR}/replay.c ${HA_FUZZ_DIR}/fuzz_${t}.c)
  target_link_libraries(fuzz_replay_${t} PRIVATE hafuzz_util)
  add_test(NAME fuzz_replay_${t} COMMAND fuzz_replay_${t} ${HA_FUZZ_DIR}/corpus/${t})
  set_tests_properties(fuzz_replay_${t} PROPERTIES LABELS "fuzz" TIMEOUT 300)
  if(HA_FUZZ)
    add_executable(fuzz_${t} ${HA_FUZZ_DIR}/fuzz_${t}.c)
    target_compile_options(fuzz_${t} PRIVATE -fsanitize=fuzzer)
    target_link_options(fuzz_${t} PRIVATE -fsanitize=fuzzer)
    target_link_libraries(fuzz_${t} PRIVATE hafuzz_util)
  endif()
endforeach()
