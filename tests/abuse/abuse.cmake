# tests/abuse/abuse.cmake: the network abuse suite (tests/abuse/abuse.py),
# one ctest per scenario, label "abuse": the real binary attacked on
# loopback, bounded in count and time. Runs in every build (plain, ASan).
find_program(HA_PYTHON3 python3 PATHS /usr/bin NO_DEFAULT_PATH)
if(NOT HA_PYTHON3)
  message(FATAL_ERROR "/usr/bin/python3 not found: apt-get install python3 (tests/harness/install.sh does)")
endif()
set(HA_ABUSE_SCENARIOS hpack_window0 continuation_amplification h2_refusals held_h2_window0 held_h1_pipeline frames_without_progress
    rapid_reset slowloris silent_connections conn_caps ulimit_256 out_of_descriptors out_of_descriptors_no_spare admin_mesh)
foreach(s ${HA_ABUSE_SCENARIOS})
  add_test(NAME abuse/${s} COMMAND ${HA_PYTHON3} ${CMAKE_SOURCE_DIR}/tests/abuse/abuse.py ${s})
  set_tests_properties(abuse/${s} PROPERTIES LABELS abuse TIMEOUT 180
    ENVIRONMENT "HA_BIN=$<TARGET_FILE:healthagent>;HA_SANITIZE=${HA_SANITIZE}")
endforeach()
