# The HTTP side of stepmarkd (review application, JSON API, exports, /metrics) as the library
# sm_http; included from daemon/CMakeLists.txt. The files of daemon/web/ are built in.
file(GLOB SM_WEB_FILES CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/web/*)
set(SM_WEB_C ${CMAKE_CURRENT_BINARY_DIR}/sm_web_files.c)
add_custom_command(
  OUTPUT ${SM_WEB_C}
  COMMAND ${CMAKE_COMMAND} -DWEB_DIR=${CMAKE_CURRENT_LIST_DIR}/web -DOUT=${SM_WEB_C}
          -P ${SM_TOP}/cmake/embed_web.cmake
  DEPENDS ${SM_WEB_FILES} ${SM_TOP}/cmake/embed_web.cmake
  COMMENT "embedding the review web application")
add_library(sm_http STATIC
  ${CMAKE_CURRENT_LIST_DIR}/http_server.c
  ${CMAKE_CURRENT_LIST_DIR}/http_pool.c
  ${CMAKE_CURRENT_LIST_DIR}/http_json.c
  ${CMAKE_CURRENT_LIST_DIR}/http_input.c
  ${CMAKE_CURRENT_LIST_DIR}/http_auth.c
  ${CMAKE_CURRENT_LIST_DIR}/http_api.c
  ${CMAKE_CURRENT_LIST_DIR}/http_review.c
  ${CMAKE_CURRENT_LIST_DIR}/http_review_criteria.c
  ${CMAKE_CURRENT_LIST_DIR}/http_export.c
  ${CMAKE_CURRENT_LIST_DIR}/http_progress.c
  ${CMAKE_CURRENT_LIST_DIR}/http_health.c
  ${CMAKE_CURRENT_LIST_DIR}/http_static.c
  ${CMAKE_CURRENT_LIST_DIR}/http_release.c
  ${CMAKE_CURRENT_LIST_DIR}/http_release_store.c
  ${CMAKE_CURRENT_LIST_DIR}/http_store.c
  ${CMAKE_CURRENT_LIST_DIR}/http_v1.c
  ${CMAKE_CURRENT_LIST_DIR}/http_similarity.c
  ${CMAKE_CURRENT_LIST_DIR}/http_v1_submit.c
  ${CMAKE_CURRENT_LIST_DIR}/http_v1_link.c
  ${CMAKE_CURRENT_LIST_DIR}/lti_launch.c
  ${CMAKE_CURRENT_LIST_DIR}/lti_jwks.c
  ${CMAKE_CURRENT_LIST_DIR}/lti_pages.c
  ${CMAKE_CURRENT_LIST_DIR}/lti_roster.c
  ${CMAKE_CURRENT_LIST_DIR}/lti_policy.c
  ${SM_WEB_C})
target_include_directories(sm_http PUBLIC ${CMAKE_CURRENT_LIST_DIR} PRIVATE ${CMAKE_CURRENT_LIST_DIR})
# /api/v1 submits through the broker's validation and store (sm_daemon: validate.c, store.c).
target_link_libraries(sm_http PUBLIC sm_lti sm_similarity PkgConfig::CURL sm_student_link sm_daemon sm_grades sm_common sm_config PkgConfig::MHD PkgConfig::JANSSON
                      PkgConfig::PQ Threads::Threads m)
