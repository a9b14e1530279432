# tests/bench/bench.cmake: the benchmark yardstick, included by the top-level
# CMakeLists.txt. Defines ha_ref_server, a minimal libh2o+libuv server that the
# scripts in this directory measure side by side with healthagent.
include_guard(GLOBAL)
if(NOT TARGET PkgConfig::H2O OR NOT TARGET PkgConfig::UV OR NOT TARGET PkgConfig::SSL)
  find_package(PkgConfig REQUIRED)
  pkg_check_modules(UV REQUIRED IMPORTED_TARGET libuv)
  pkg_check_modules(H2O REQUIRED IMPORTED_TARGET libh2o)
  pkg_check_modules(SSL REQUIRED IMPORTED_TARGET openssl)
endif()

add_executable(ha_ref_server ${CMAKE_CURRENT_LIST_DIR}/ref_server.c)
# Same warning policy as the agent, restated so the target stands on its own.
target_compile_options(ha_ref_server PRIVATE -Wall -Wextra -Werror)
target_compile_definitions(ha_ref_server PRIVATE _GNU_SOURCE H2O_USE_LIBUV=1)
target_link_libraries(ha_ref_server PRIVATE PkgConfig::H2O PkgConfig::UV PkgConfig::SSL)
