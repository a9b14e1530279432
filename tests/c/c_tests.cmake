# C unit tests: one small executable per subsystem, linked against hacore.
# Each prints "N passed, M failed" and exits non-zero on any failure.
foreach(ha_ctest common cidr render config db_url fast observe)
  add_executable(test_${ha_ctest} ${CMAKE_CURRENT_LIST_DIR}/test_${ha_ctest}.c)
  target_link_libraries(test_${ha_ctest} PRIVATE hacore)
  add_test(NAME c_${ha_ctest} COMMAND test_${ha_ctest})
  set_tests_properties(c_${ha_ctest} PROPERTIES LABELS "c" TIMEOUT 60)
endforeach()
