# deploy/package.cmake: CPack settings for the .deb packages, included at the end of the top
# CMakeLists.txt (after every install() rule). `cpack -G DEB` in the build folder makes
#   stepmark-cli     the stepmark command, the example configuration (/etc/stepmark), the
#                    migrations and docs, the sysusers.d/tmpfiles.d files (creates the user)
#   stepmark-server  stepmarkd, the review web files, stepmarkd.service
#   stepmark-worker  stepmark-worker, stepmark-engine, stepmark-worker@.service
# The packages install under CMAKE_INSTALL_PREFIX, as the units' paths do: configure with
# -DCMAKE_INSTALL_PREFIX=/usr for a distribution-style package.
set(CPACK_PACKAGE_NAME stepmark)
set(CPACK_PACKAGE_VENDOR "stepmark")
set(CPACK_PACKAGE_CONTACT "stepmark maintainers <stepmark@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "homework grading with a reasoning model and sandboxed checks")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_GENERATOR DEB)
set(CPACK_STRIP_FILES ON)
set(CPACK_COMPONENTS_ALL cli server worker)

set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION misc)
# Runtime libraries named by dpkg-shlibdeps from the programs' ELF dependencies.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_CLI_PACKAGE_NAME stepmark-cli)
set(CPACK_DEBIAN_SERVER_PACKAGE_NAME stepmark-server)
set(CPACK_DEBIAN_WORKER_PACKAGE_NAME stepmark-worker)
set(CPACK_COMPONENT_CLI_DESCRIPTION
    "stepmark command line, example configuration, migrations and docs\n The stepmark tool (migrations, teachers, submissions), /etc/stepmark/stepmark.yaml and the\n stepmark system user.")
set(CPACK_COMPONENT_SERVER_DESCRIPTION
    "stepmark broker (stepmarkd) and its systemd unit\n The broker keeps the grading queue in PostgreSQL and serves the teachers' review pages.")
set(CPACK_COMPONENT_WORKER_DESCRIPTION
    "stepmark grading worker and its systemd template unit\n Runs the model and the bubblewrap sandbox; one stepmark-worker@NAME per model or device.")
# The server and the worker need the user, folders and configuration of stepmark-cli; the
# private PostgreSQL cluster needs PostgreSQL's programs, the sandbox bubblewrap.
set(SM_DEB_CLI_DEP "stepmark-cli (= ${PROJECT_VERSION})")
set(CPACK_DEBIAN_CLI_PACKAGE_DEPENDS "systemd | adduser")
set(CPACK_DEBIAN_SERVER_PACKAGE_DEPENDS "${SM_DEB_CLI_DEP}")
set(CPACK_DEBIAN_SERVER_PACKAGE_RECOMMENDS "postgresql")
set(CPACK_DEBIAN_WORKER_PACKAGE_DEPENDS "${SM_DEB_CLI_DEP}, bubblewrap")
set(SM_DEB_SCRIPTS ${CMAKE_BINARY_DIR}/deploy/debian)
set(CPACK_DEBIAN_CLI_PACKAGE_CONTROL_EXTRA
    "${SM_DEB_SCRIPTS}/cli/postinst;${SM_DEB_SCRIPTS}/cli/conffiles")
foreach(comp SERVER WORKER)
  string(TOLOWER ${comp} c)
  set(CPACK_DEBIAN_${comp}_PACKAGE_CONTROL_EXTRA
      "${SM_DEB_SCRIPTS}/${c}/postinst;${SM_DEB_SCRIPTS}/${c}/prerm;${SM_DEB_SCRIPTS}/${c}/postrm")
endforeach()
include(CPack)
