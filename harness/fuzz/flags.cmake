# Flags of the fuzz build (-DNANGUARD_FUZZ=ON), included before any target exists so
# that libFuzzer's coverage instrumentation reaches every library: the fuzzer is
# guided by the edges it covers in the loader, the ops and the analyzer, not only in
# the few lines of the entry points.
if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  message(FATAL_ERROR "NANGUARD_FUZZ needs clang and libFuzzer: configure a build folder of its own with "
                      "-DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14")
endif()

# The engine's link flag: OSS-Fuzz / ClusterFuzzLite pass theirs in $LIB_FUZZING_ENGINE.
set(NANGUARD_FUZZ_ENGINE "-fsanitize=fuzzer" CACHE STRING "link flag of the fuzzing engine (LIB_FUZZING_ENGINE)")

# OSS-Fuzz's CXXFLAGS already hold the instrumentation (and its sanitizer); adding ours
# on top would instrument twice.
if(NOT CMAKE_CXX_FLAGS MATCHES "fuzzer-no-link")
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()
add_compile_options(-gline-tables-only)

if(NANGUARD_SANITIZE)
  # ASan + UBSan with every UB report fatal, so that libFuzzer keeps the input.
  # vptr needs RTTI of every library in the process (LibTorch's is not instrumented).
  set(NANGUARD_SAN_FLAGS -fsanitize=address,undefined -fno-sanitize=vptr -fno-sanitize-recover=undefined
                         -fno-omit-frame-pointer)
  add_compile_options(${NANGUARD_SAN_FLAGS})
  add_link_options(${NANGUARD_SAN_FLAGS})
endif()

# Instrumented code calls libFuzzer's coverage hooks. Fuzz targets get them from the
# engine; every other executable of this build (the nanguard CLI, which scripts/fuzz
# uses for fuzz-config and the random baseline) links libFuzzer without its main. With
# a sanitizer the sanitizer runtime defines weak hooks instead, so nothing is needed.
if(NOT NANGUARD_SANITIZE AND NOT CMAKE_CXX_FLAGS MATCHES "fsanitize=address|fsanitize=undefined|fsanitize=memory")
  execute_process(COMMAND ${CMAKE_CXX_COMPILER} --print-file-name=libclang_rt.fuzzer_no_main-x86_64.a
                  OUTPUT_VARIABLE NANGUARD_FUZZER_NO_MAIN OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT EXISTS "${NANGUARD_FUZZER_NO_MAIN}")
    execute_process(COMMAND ${CMAKE_CXX_COMPILER} -print-runtime-dir
                    OUTPUT_VARIABLE _rt OUTPUT_STRIP_TRAILING_WHITESPACE)
    set(NANGUARD_FUZZER_NO_MAIN "${_rt}/libclang_rt.fuzzer_no_main-x86_64.a")
  endif()
  if(NOT EXISTS "${NANGUARD_FUZZER_NO_MAIN}")
    message(FATAL_ERROR "NANGUARD_FUZZ: libclang_rt.fuzzer_no_main not found (apt install libclang-rt-14-dev)")
  endif()
  # Whole archive: link options come before the libraries whose references pull it in.
  add_link_options("$<$<AND:$<STREQUAL:$<TARGET_PROPERTY:TYPE>,EXECUTABLE>,$<NOT:$<BOOL:$<TARGET_PROPERTY:NANGUARD_FUZZ_TARGET>>>>:LINKER:--whole-archive,${NANGUARD_FUZZER_NO_MAIN},--no-whole-archive>")
endif()
