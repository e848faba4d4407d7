// Batched matrix multiply with a fused epilogue (graph::Matmul), as the CPU reference defines it:
//   y[zo][zi][m][n] = epilogue( sum_k x[zo][zi][m][k] * B[zo][zi][k][n] )
//   epilogue: * scale[n] (int8), + bias[n], GELU (exact erf, in double), + add[zo][zi][m][n],
//   then the store into the column's output segment (segment 0 may accumulate: a residual).
//
// Argument: one MatmulArgs by value (packed by src/backend/cuda/plan.rs in this field order).
//   x      f32  rows of k values at x_base + zo*x_outer + zi*x_inner + m*x_row
//   b      B_FMT 0 f32, 1 f16, 2 int8 k-pair-interleaved, scales (f32) at word scale_base
//   bias   f32  [bias_base + n]              (flags & F_BIAS)
//   add    f32  like x, n columns            (flags & F_ADD)
//   state  u32  STATE_WORDS per decode row   (flags & F_STATE: done rows skipped, the row's
//                                             position scales each segment's `pos` stride)
//   out[s] f32 or f16 (flags & F_SEG_F16 << s); seg_len[s] elements, checked for stores
//          indexed by the step position (the only index the host cannot bound in advance)
// Launch geometry:
//   matmul_tiled  grid (ceil(n/16), ceil(m/16), z_outer*z_inner), block (16, 16): one output
//                 per thread, 16x16 tiles of x and B staged through shared memory.
//   matmul_vec    decode rows (m <= 8, no batch): grid (ceil(n/32), 1, 1), block (32, KS):
//                 one column per thread.x, the k range split KS ways over thread.y, partial
//                 sums met in shared memory, then thread.y = r finishes row r.

#define F_BIAS 1u
#define F_GELU 2u
#define F_ADD 4u
#define F_ACCUM 8u
#define F_STATE 16u
#define F_SEG_F16 32u // bits 5, 6, 7: segment 0, 1, 2 stores f16

struct MatmulArgs {
    const float* x;
    const void* b;
    const float* bias;
    const float* add;
    const u32* state;
    void* out[3];
    u32 m, n, k, z_inner;
    u32 x_base, x_row, x_outer, x_inner;
    u32 b_base, b_k, b_outer, b_inner;
    u32 add_base, add_row, add_outer, add_inner;
    u32 bias_base, scale_base, b_fmt, flags;
    u32 seg_end[3], seg_base[3], seg_row[3], seg_col[3], seg_outer[3], seg_inner[3], seg_pos[3], seg_len[3];
};

__device__ __forceinline__ float gelu(float v) {
    double x = (double)v;
    return (float)(0.5 * x * (1.0 + erf(x / 1.4142135623730951)));
}

__device__ __forceinline__ bool mm_row_done(const MatmulArgs& a, u32 m) {
    return (a.flags & F_STATE) && a.state[m * STATE_WORDS + S_DONE] != 0u;
}

__device__ void mm_finish(const MatmulArgs& a, u32 zo, u32 zi, u32 m, u32 n, float acc) {
    float v = acc;
    if (a.b_fmt == FMT_I8) v *= ((const float*)a.b)[a.scale_base + n];
    if (a.flags & F_BIAS) v += a.bias[a.bias_base + n];
    if (a.flags & F_GELU) v = gelu(v);
    if (a.flags & F_ADD) v += a.add[a.add_base + zo * a.add_outer + zi * a.add_inner + m * a.add_row + n];
    const u32 s = n < a.seg_end[0] ? 0u : (n < a.seg_end[1] ? 1u : 2u);
    const u32 start = s == 0u ? 0u : a.seg_end[s - 1u];
    const u32 pos = (a.flags & F_STATE) ? a.state[m * STATE_WORDS + S_POS] : 0u;
    const u64 idx = (u64)a.seg_base[s] + zo * a.seg_outer[s] + zi * a.seg_inner[s] + m * a.seg_row[s]
        + (n - start) * a.seg_col[s] + (u64)pos * a.seg_pos[s];
    if (idx >= a.seg_len[s]) return; // a position past the buffer: never stored
    if (a.flags & (F_SEG_F16 << s)) {
        ((u16*)a.out[s])[idx] = f32_to_f16(v);
    } else {
        float* o = (float*)a.out[s];
        if (s == 0u && (a.flags & F_ACCUM)) v += o[idx];
        o[idx] = v;
    }
}

extern "C" __global__ void matmul_tiled(const MatmulArgs a) {
    __shared__ float xs[16][17];
    __shared__ float bs[16][17];
    const u32 tx = threadIdx.x, ty = threadIdx.y;
    const u32 zo = blockIdx.z / a.z_inner, zi = blockIdx.z % a.z_inner;
    const u32 x0 = a.x_base + zo * a.x_outer + zi * a.x_inner;
    const u32 b0 = a.b_base + zo * a.b_outer + zi * a.b_inner;
    const u32 m = blockIdx.y * 16u + ty, n = blockIdx.x * 16u + tx;
    const u32 bn = blockIdx.x * 16u + tx; // the B column this thread stages
    float acc = 0.0f;
    for (u32 k0 = 0; k0 < a.k; k0 += 16u) {
        const u32 kx = k0 + tx, kb = k0 + ty;
        xs[ty][tx] = (m < a.m && kx < a.k) ? a.x[x0 + m * a.x_row + kx] : 0.0f;
        bs[ty][tx] = (kb < a.k && bn < a.n) ? load_b(a.b, a.b_fmt, b0, a.b_k, kb, bn) : 0.0f;
        __syncthreads();
        for (u32 kk = 0; kk < 16u; kk++) acc += xs[ty][kk] * bs[kk][tx];
        __syncthreads();
    }
    if (m < a.m && n < a.n && !mm_row_done(a, m)) mm_finish(a, zo, zi, m, n, acc);
}

#define MV_ROWS 8u
#define MV_MAX_SLICES 32u

extern "C" __global__ void matmul_vec(const MatmulArgs a) {
    __shared__ float part[MV_MAX_SLICES][MV_ROWS][32];
    const u32 tx = threadIdx.x, ty = threadIdx.y, slices = blockDim.y;
    const u32 n = blockIdx.x * 32u + tx;
    float acc[MV_ROWS];
    for (u32 r = 0; r < MV_ROWS; r++) acc[r] = 0.0f;
    if (n < a.n) {
        for (u32 k = ty; k < a.k; k += slices) {
            const float w = load_b(a.b, a.b_fmt, a.b_base, a.b_k, k, n);
            for (u32 r = 0; r < MV_ROWS; r++) {
                if (r < a.m) acc[r] += a.x[a.x_base + r * a.x_row + k] * w;
            }
        }
    }
    for (u32 r = 0; r < MV_ROWS; r++) part[ty][r][tx] = acc[r];
    __syncthreads();
    // Thread row ty finishes output row ty (there are at most 8 rows and at least 1 slice).
    for (u32 r = ty; r < a.m; r += slices) {
        if (n >= a.n || mm_row_done(a, r)) continue;
        float t = 0.0f;
        for (u32 s = 0; s < slices; s++) t += part[s][r][tx];
        mm_finish(a, 0u, 0u, r, n, t);
    }
}
