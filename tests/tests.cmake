# tests/tests.cmake: the whole suite under ctest.
#   c_*            C unit tests of the pure C parts
#   unit/*         busted specs run inside the agent (busted --lua=healthagent)
#   integration/*  busted specs that start the real binary and probe it
#   abuse/*        the network abuse suite against the real binary (tests/abuse/)
# Specs that need real servers (Redis, PostgreSQL, MariaDB, HTTP(S), gRPC,
# fault fixtures) get them from the "harness" fixture: tests/harness/servers.sh
# started once per ctest run, its ports in $HA_HARNESS_DIR/env.lua.
include(${CMAKE_SOURCE_DIR}/tests/c/c_tests.cmake)
include(${CMAKE_SOURCE_DIR}/tests/bench/bench.cmake OPTIONAL)

find_program(BUSTED busted)
if(NOT BUSTED)
  message(FATAL_ERROR "HA_TESTS=ON but busted not found: apt-get install lua-busted (tests/harness/install.sh does)")
endif()

# luacheck over the Lua the project ships (.luacheckrc knows the agent's globals)
find_program(LUACHECK luacheck)
if(NOT LUACHECK)
  message(FATAL_ERROR "HA_TESTS=ON but luacheck not found: apt-get install lua-check (tests/harness/install.sh does)")
endif()
add_test(NAME lint/luacheck COMMAND ${LUACHECK} --no-color --codes lualib scripts examples meta
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(lint/luacheck PROPERTIES LABELS lint TIMEOUT 120)

set(HA_HARNESS_DIR "${CMAKE_BINARY_DIR}/harness" CACHE PATH "state of the test servers")
add_test(NAME harness_start COMMAND ${CMAKE_SOURCE_DIR}/tests/harness/servers.sh start ${HA_HARNESS_DIR})
set_tests_properties(harness_start PROPERTIES FIXTURES_SETUP harness TIMEOUT 180)
add_test(NAME harness_stop COMMAND ${CMAKE_SOURCE_DIR}/tests/harness/servers.sh stop ${HA_HARNESS_DIR})
set_tests_properties(harness_stop PROPERTIES FIXTURES_CLEANUP harness TIMEOUT 60)

set(HA_SPEC_ENV
  "HA_BIN=$<TARGET_FILE:healthagent>"
  "HA_SOURCE_DIR=${CMAKE_SOURCE_DIR}"
  "HA_HARNESS_DIR=${HA_HARNESS_DIR}"
  "HA_SANITIZE=${HA_SANITIZE}")

foreach(kind unit integration)
  file(GLOB specs CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/${kind}/*_spec.lua)
  foreach(spec ${specs})
    get_filename_component(name ${spec} NAME_WE)
    string(REGEX REPLACE "_spec$" "" name ${name})
    add_test(NAME ${kind}/${name}
      COMMAND ${BUSTED} --lua=$<TARGET_FILE:healthagent> --lpath=${CMAKE_SOURCE_DIR}/tests/?.lua --output=TAP ${spec}
      WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
    set_tests_properties(${kind}/${name} PROPERTIES
      ENVIRONMENT "${HA_SPEC_ENV}" LABELS ${kind} TIMEOUT 600 FIXTURES_REQUIRED harness)
  endforeach()
endforeach()
include(${CMAKE_SOURCE_DIR}/tests/abuse/abuse.cmake)
include(${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz.cmake OPTIONAL)
