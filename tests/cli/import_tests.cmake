# `flin import` / `flin export` round trips against a real flind (ctest label
# cli). Included from cli/CMakeLists.txt, where the flin target is defined.
if(FLIN_BUILD_TESTS AND TARGET flind AND TARGET flin)
  add_executable(import_roundtrip_test ${CMAKE_CURRENT_LIST_DIR}/import_roundtrip_test.cc)
  target_link_libraries(import_roundtrip_test PRIVATE flin_net GTest::gtest_main)
  target_compile_definitions(import_roundtrip_test PRIVATE FLIN_BIN="$<TARGET_FILE:flin>"
                                                           FLIND_BIN="$<TARGET_FILE:flind>")
  add_dependencies(import_roundtrip_test flin flind)
  gtest_discover_tests(import_roundtrip_test PROPERTIES LABELS cli TIMEOUT 600
                       DISCOVERY_TIMEOUT 60)
endif()
