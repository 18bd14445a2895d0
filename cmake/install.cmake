# Installation and export: find_package(mpiproc CONFIG) works from an install prefix and from the
# build tree, and a pkg-config file serves builds without CMake.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(MPIPROC_CONFIG_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/mpiproc)

install(TARGETS mpiproc EXPORT mpiprocTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY include/mpiproc DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT mpiprocTargets NAMESPACE mpiproc:: DESTINATION ${MPIPROC_CONFIG_DIR})
export(EXPORT mpiprocTargets NAMESPACE mpiproc:: FILE ${PROJECT_BINARY_DIR}/mpiprocTargets.cmake)

configure_package_config_file(cmake/mpiprocConfig.cmake.in ${PROJECT_BINARY_DIR}/mpiprocConfig.cmake
                              INSTALL_DESTINATION ${MPIPROC_CONFIG_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/mpiprocConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/mpiprocConfig.cmake ${PROJECT_BINARY_DIR}/mpiprocConfigVersion.cmake
        DESTINATION ${MPIPROC_CONFIG_DIR})

# A relocatable .pc: the prefix is found from where the file lies.
file(RELATIVE_PATH MPIPROC_PC_TO_PREFIX ${CMAKE_INSTALL_FULL_LIBDIR}/pkgconfig ${CMAKE_INSTALL_PREFIX})
set(MPIPROC_PC_EXTRA_LIBS "")
if(MPIPROC_SANITIZE)
  set(MPIPROC_PC_EXTRA_LIBS " -fsanitize=address,undefined")
endif()
configure_file(cmake/mpiproc.pc.in ${PROJECT_BINARY_DIR}/mpiproc.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/mpiproc.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
