#!/bin/bash
# Run tests/test_cuda.c's device checks on a machine without a GPU, against a
# CPU emulation of the CUDA runtime and cuBLAS (the headers in this folder),
# under AddressSanitizer and UBSan. It checks the kernels' logic (indexing,
# strided copies, the row-major cuBLAS mapping, chunking, shared-memory and
# shuffle use, the families' device branches); it says nothing about speed or
# about real warp scheduling, and does not replace a run on a GPU
# (make CUDA=1 BUILD=build/cuda test). Usage, from the repository root:
#     scripts/cuda-emu/check.sh
set -e
here=$(cd "$(dirname "$0")" && pwd)
san="-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
make --no-print-directory -j"$(nproc)" _all build/emu/tests/test_cuda CUDA=1 BUILD=build/emu NVCC="$here/nvcc" \
    NVCCFLAGS="$san" OPT="$san" EXTRA_LDLIBS="-fsanitize=address,undefined -pthread -lstdc++"
SL_BIN=$PWD/build/emu/seqlab SL_BUILD=$PWD/build/emu OMP_NUM_THREADS=2 \
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp:print_suppressions=0 build/emu/tests/test_cuda
