// Decode attention (graph::Attend): one query per row and head against a transposed cache
// kt[row][head][d][cap] (vt likewise), in f16 or f32, reading only the valid prefix
// [0, n_valid): n_valid is the row's step position + 1 (self-attention) or fixed_len (cross-
// attention). The keys are cut into chunks of `chunk` keys (graph::Attend::n_chunks); chunks
// past n_valid return at once, so a step's cost follows n_valid, not the capacity. With one
// chunk the output is written directly; otherwise each chunk writes a partial softmax
// [weighted values (head_dim), max, sum] and attend_merge combines them (split-K).
// `full` (benchmark only) spans the whole capacity and masks keys >= n_valid.
//
// Argument: one AttendArgs by value (packed by src/backend/cuda/plan.rs in this order).
//   q         f32 row r, head h at q_base + r*q_row + h*head_dim
//   kt, vt    f16 or f32 (kv_f16), kv_row elements per row
//   state     u32 STATE_WORDS per row (done rows are skipped)
//   partials  f32 [rows][heads][n_chunks][head_dim + 2]
//   out       f32 row r, head h, dim d at out_base + r*out_row + h*head_dim + d
// Launch geometry:
//   attend_partial  grid (n_chunks, heads, rows), block (256, 1, 1): a thread per key for the
//                   scores (neighbouring threads read neighbouring keys of one dimension), then
//                   a warp per head dimension for the weighted values.
//   attend_merge    grid (heads, rows, 1), block (64, 1, 1): a thread per head dimension.

#define ATT_MAX_CHUNK 2048u
#define ATT_MAX_HEAD_DIM 256u

struct AttendArgs {
    const float* q;
    const void* kt;
    const void* vt;
    const u32* state;
    float* partials;
    float* out;
    u32 heads, head_dim, cap, fixed_len;
    u32 q_base, q_row, kv_row, n_chunks;
    u32 out_base, out_row, chunk, full;
    u32 kv_f16, single;
    float scale;
    u32 pad;
};

__device__ __forceinline__ u32 att_valid(const AttendArgs& a, u32 r) {
    const u32 n = a.fixed_len != 0u ? a.fixed_len : a.state[r * STATE_WORDS + S_POS] + 1u;
    return min(n, a.cap);
}

extern "C" __global__ void attend_partial(const AttendArgs a) {
    __shared__ float p[ATT_MAX_CHUNK];
    __shared__ float qs[ATT_MAX_HEAD_DIM];
    __shared__ float scratch[32];
    const u32 c = blockIdx.x, h = blockIdx.y, r = blockIdx.z;
    if (a.state[r * STATE_WORDS + S_DONE] != 0u) return; // uniform over the block
    const u32 n_valid = att_valid(a, r);
    const u32 span = a.full ? a.cap : n_valid;
    const u32 start = c * a.chunk;
    if (start >= span) return;
    const u32 end = min(start + a.chunk, span);
    const bool f16 = a.kv_f16 != 0u;
    for (u32 d = threadIdx.x; d < a.head_dim; d += blockDim.x) qs[d] = a.q[a.q_base + r * a.q_row + h * a.head_dim + d];
    __syncthreads();
    const u32 head = r * a.kv_row + h * a.head_dim * a.cap;
    float lmax = NEG_BIG;
    for (u32 j = start + threadIdx.x; j < end; j += blockDim.x) {
        float s = NEG_BIG;
        if (j < n_valid) {
            float acc = 0.0f;
            for (u32 d = 0; d < a.head_dim; d++) acc += qs[d] * load_f16_or_f32(a.kt, f16, head + d * a.cap + j);
            s = acc * a.scale;
            lmax = fmaxf(lmax, s);
        }
        p[j - start] = s;
    }
    const float m = block_max(lmax, scratch);
    float lsum = 0.0f;
    for (u32 j = start + threadIdx.x; j < end; j += blockDim.x) {
        const float e = j < n_valid ? expf(p[j - start] - m) : 0.0f;
        p[j - start] = e;
        lsum += e;
    }
    const float l = block_sum(lsum, scratch); // ends with a barrier: p is complete
    const u32 lane = threadIdx.x & 31u, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    const u32 pbase = ((r * a.heads + h) * a.n_chunks + c) * (a.head_dim + 2u);
    for (u32 d = warp; d < a.head_dim; d += warps) {
        float acc = 0.0f;
        for (u32 j = start + lane; j < end; j += 32u) acc += p[j - start] * load_f16_or_f32(a.vt, f16, head + d * a.cap + j);
        acc = warp_sum(acc);
        if (lane == 0u) {
            if (a.single) {
                a.out[a.out_base + r * a.out_row + h * a.head_dim + d] = acc / l;
            } else {
                a.partials[pbase + d] = acc;
            }
        }
    }
    if (threadIdx.x == 0u && !a.single) {
        a.partials[pbase + a.head_dim] = m;
        a.partials[pbase + a.head_dim + 1u] = l;
    }
}

extern "C" __global__ void attend_merge(const AttendArgs a) {
    const u32 h = blockIdx.x, r = blockIdx.y;
    if (a.state[r * STATE_WORDS + S_DONE] != 0u) return;
    const u32 span = a.full ? a.cap : att_valid(a, r);
    const u32 nc = min((span + a.chunk - 1u) / a.chunk, a.n_chunks);
    const u32 stride = a.head_dim + 2u;
    const u32 base = (r * a.heads + h) * a.n_chunks * stride;
    float mx = NEG_BIG;
    for (u32 c = 0; c < nc; c++) mx = fmaxf(mx, a.partials[base + c * stride + a.head_dim]);
    float denom = 0.0f;
    for (u32 c = 0; c < nc; c++) {
        const u32 pc = base + c * stride;
        denom += a.partials[pc + a.head_dim + 1u] * expf(a.partials[pc + a.head_dim] - mx);
    }
    for (u32 d = threadIdx.x; d < a.head_dim; d += blockDim.x) {
        float acc = 0.0f;
        for (u32 c = 0; c < nc; c++) {
            const u32 pc = base + c * stride;
            acc += a.partials[pc + d] * expf(a.partials[pc + a.head_dim] - mx);
        }
        a.out[a.out_base + r * a.out_row + h * a.head_dim + d] = acc / denom;
    }
}
