// Prepended to every kernel file of shaders/cuda before NVRTC compiles it (no bindings, no
// entry point): fixed-width names, the step-state layout of src/graph.rs, f16 conversions and
// the element loads of each weight format. NVRTC gets no system headers, so nothing here
// includes any; f16 goes through the PTX conversion instructions (round to nearest even, as
// the `half` crate on the host).
typedef unsigned int u32;
typedef unsigned short u16;
typedef unsigned long long u64;

#define STATE_WORDS 24u
#define S_TOKEN 0u
#define S_POS 1u
#define S_DONE 2u
#define S_PROMPT_LEN 3u
#define S_SAMPLE_BEGIN 4u
#define S_MAX_LEN 5u
#define S_EOT 6u
#define S_SOT_POS 7u
#define S_NO_SPEECH 8u
#define S_NO_SPEECH_PROB 9u
#define S_SUM_LOGPROB 10u
#define S_N_GENERATED 11u
#define S_FLAGS 12u
#define S_LAST_TS 13u
#define S_TEMPERATURE 14u
#define S_SEED 15u
#define S_MAX_INITIAL_TS 16u
#define FLAG_TIMESTAMPS 1u
#define FLAG_SAMPLE 2u
#define NONE 0xffffffffu
#define NEG_BIG (-3.0e38f)

// Weight formats (graph::BFormat), as the host codes them.
#define FMT_F32 0u
#define FMT_F16 1u
#define FMT_I8 2u

__device__ __forceinline__ float f16_to_f32(u16 h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}

__device__ __forceinline__ u16 f32_to_f16(float f) {
    u16 h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}

// Element i of a buffer of f16 (pairs packed little-endian in u32 words: element 2w is the low
// half of word w, so the 16-bit view indexes elements directly) or f32.
__device__ __forceinline__ float load_f16_or_f32(const void* buf, bool f16, u32 i) {
    return f16 ? f16_to_f32(((const u16*)buf)[i]) : ((const float*)buf)[i];
}

// Element (k, n) of a k-major weight whose (k = 0, n = 0) element sits at `b0` (elements of
// the format; bytes for int8, whose k-rows are interleaved in pairs: [k/2][k_stride][2]).
__device__ __forceinline__ float load_b(const void* b, u32 fmt, u32 b0, u32 k_stride, u32 k, u32 n) {
    if (fmt == FMT_F16) return f16_to_f32(((const u16*)b)[b0 + k * k_stride + n]);
    if (fmt == FMT_I8) return (float)((const signed char*)b)[b0 + (k / 2u) * 2u * k_stride + 2u * n + (k & 1u)];
    return ((const float*)b)[b0 + k * k_stride + n];
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum (or max) over a block of blockDim.x threads (a multiple of 32, at most 1024); every
// thread gets the result. `scratch` holds 32 floats; the call begins and ends with a barrier.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
    const u32 lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    float t = 0.0f;
    for (u32 w = 0; w < (blockDim.x >> 5); w++) t += scratch[w];
    __syncthreads();
    return t;
}

__device__ __forceinline__ float block_max(float v, float* scratch) {
    const u32 lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    float t = NEG_BIG;
    for (u32 w = 0; w < (blockDim.x >> 5); w++) t = fmaxf(t, scratch[w]);
    __syncthreads();
    return t;
}
