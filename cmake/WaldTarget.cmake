# Per-target build settings: C++20, warnings, and the sanitizer chosen with
# WALD_SANITIZE. Called on every target of the project; no directory-scoped
# flags.
option(WALD_WERROR "Treat warnings as errors" OFF)
set(WALD_SANITIZE "" CACHE STRING "Sanitizers: '', 'address,undefined' or 'thread'")

function(wald_target target)
  target_compile_features(${target} PUBLIC cxx_std_20)
  set_target_properties(${target} PROPERTIES CXX_EXTENSIONS OFF)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wshadow -Wnon-virtual-dtor)
  if(WALD_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
  if(WALD_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=${WALD_SANITIZE} -fno-omit-frame-pointer
                                             -fno-sanitize-recover=all)
    target_link_options(${target} PRIVATE -fsanitize=${WALD_SANITIZE})
  endif()
  if(WALD_FUZZ)
    # Coverage feedback from the code under test, not just the fuzz target's
    # own file: without it libFuzzer mutates blind inside the libraries.
    target_compile_options(${target} PRIVATE -fsanitize=fuzzer-no-link)
  endif()
endfunction()
