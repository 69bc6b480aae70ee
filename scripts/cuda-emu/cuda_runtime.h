// CPU emulation of the CUDA runtime subset seqlab uses: a verification aid for machines
// without a GPU (scripts/cuda-emu/check.sh), not a CUDA implementation. Blocks run one
// after another; the threads of a block run as host threads with a barrier for
// __syncthreads and a shared buffer for warp shuffles; "device" memory is host memory
// filled with NaN bytes on allocation so uninitialised reads show.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cmath>
#include <map>
#include <mutex>
#include <pthread.h>
#include <thread>
#include <vector>

typedef int cudaError_t;
enum { cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorMemoryAllocation = 2 };
enum cudaMemcpyKind { cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2 };
struct cudaDeviceProp { char name[256]; int major, minor; };
struct dim3 { unsigned x, y, z; constexpr dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {} };

inline cudaError_t &emu_err() { static thread_local cudaError_t e = 0; return e; }

/* "Device" allocations, so copies, GEMMs and launches can check that device
** arguments are device pointers and host arguments are not. */
inline std::map<uintptr_t, size_t> &emu_allocs() { static std::map<uintptr_t, size_t> m; return m; }
inline std::mutex &emu_mu() { static std::mutex m; return m; }
inline bool emu_is_dev(const void *p)
{
    std::lock_guard<std::mutex> g(emu_mu());
    auto &m = emu_allocs();
    auto it = m.upper_bound((uintptr_t)p);
    if (it == m.begin()) return false;
    --it;
    return (uintptr_t)p < it->first + (it->second ? it->second : 1);
}
inline void emu_expect(const void *p, bool dev, const char *what)
{
    if (p && emu_is_dev(p) != dev) {
        fprintf(stderr, "EMU: %s: %s pointer expected\n", what, dev ? "device" : "host");
        abort();
    }
}
inline cudaError_t cudaGetDeviceCount(int *n) { *n = 1; return 0; }
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int) { strcpy(p->name, "emulated"); p->major = 9; p->minor = 0; return 0; }
inline cudaError_t cudaSetDevice(int) { return 0; }
inline const char *cudaGetErrorString(cudaError_t) { return "emulated error"; }
inline cudaError_t cudaGetLastError() { cudaError_t e = emu_err(); emu_err() = 0; return e; }
inline cudaError_t cudaMalloc(void **p, size_t n) {
    *p = malloc(n ? n : 1);
    if (!*p) return cudaErrorMemoryAllocation;
    memset(*p, 0xFF, n);   /* NaN garbage: uninitialised reads show */
    std::lock_guard<std::mutex> g(emu_mu());
    emu_allocs()[(uintptr_t)*p] = n;
    return 0;
}
inline cudaError_t cudaFree(void *p) {
    emu_expect(p, true, "cudaFree");
    { std::lock_guard<std::mutex> g(emu_mu()); emu_allocs().erase((uintptr_t)p); }
    free(p);
    return 0;
}
inline cudaError_t cudaMemcpy(void *d, const void *s, size_t n, cudaMemcpyKind k) {
    emu_expect(d, k == cudaMemcpyHostToDevice, "cudaMemcpy dst");
    emu_expect(s, k != cudaMemcpyHostToDevice, "cudaMemcpy src");
    memcpy(d, s, n);
    return 0;
}
inline cudaError_t cudaMemset(void *d, int v, size_t n) { emu_expect(d, true, "cudaMemset"); memset(d, v, n); return 0; }
inline cudaError_t cudaMemcpy2D(void *d, size_t dp, const void *s, size_t sp, size_t w, size_t h, cudaMemcpyKind k) {
    emu_expect(d, k == cudaMemcpyHostToDevice, "cudaMemcpy2D dst");
    emu_expect(s, k != cudaMemcpyHostToDevice, "cudaMemcpy2D src");
    if (w > dp || w > sp) { fprintf(stderr, "EMU: cudaMemcpy2D width %zu > pitch %zu/%zu\n", w, dp, sp); abort(); }
    for (size_t r = 0; r < h; r++) memcpy((char *)d + r * dp, (const char *)s + r * sp, w);
    return 0;
}
inline cudaError_t cudaDeviceSynchronize() { return 0; }

/* ---- kernels */
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__
inline thread_local dim3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;
alignas(16) inline float sm[16384];      /* 64 KB of "shared memory", one block at a time */
inline float emu_xbuf[1024];
inline pthread_barrier_t emu_bar;
inline void __syncthreads() { pthread_barrier_wait(&emu_bar); }
inline float __shfl_xor_sync(unsigned, float v, int off, int width = 32) {
    const int t = (int)threadIdx.x, lane = t % 32;
    emu_xbuf[t] = v;
    __syncthreads();
    int src = lane ^ off;
    if ((src & ~(width - 1)) != (lane & ~(width - 1))) src = lane;
    const float r = emu_xbuf[t - lane + src];
    __syncthreads();
    return r;
}
template <class F> struct emu_launcher {
    F f; dim3 g, b; size_t smem;
    template <class T> static void check(const T &) {}
    template <class T> static void check(T *p) { emu_expect(p, true, "kernel argument"); }
    template <class... A> void operator()(A... a) {
        (check(a), ...);
        if (smem > sizeof(sm)) { fprintf(stderr, "EMU: shared memory %zu too large\n", smem); emu_err() = 1; return; }
        const unsigned nt = b.x * b.y * b.z;
        if (nt == 0 || nt > 1024 || g.x == 0 || g.y == 0 || g.y > 65535) { fprintf(stderr, "EMU: bad launch\n"); emu_err() = 1; return; }
        blockDim = b; gridDim = g;
        for (unsigned bz = 0; bz < g.z; bz++) for (unsigned by = 0; by < g.y; by++) for (unsigned bx = 0; bx < g.x; bx++) {
            pthread_barrier_init(&emu_bar, NULL, nt);
            memset(sm, 0xFF, sizeof sm);
            std::vector<std::thread> ts;
            for (unsigned t = 0; t < nt; t++)
                ts.emplace_back([&, t] {
                    threadIdx = dim3(t % b.x, (t / b.x) % b.y, t / (b.x * b.y));
                    blockIdx = dim3(bx, by, bz);
                    f(a...);
                });
            for (auto &th : ts) th.join();
            pthread_barrier_destroy(&emu_bar);
        }
    }
};
template <class F> emu_launcher<F> emu_launch(F f, dim3 g, dim3 b, size_t smem = 0) { return emu_launcher<F>{ f, g, b, smem }; }
