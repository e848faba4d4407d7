// Softmax in place with a scale on the inputs (graph::Softmax): x <- softmax(scale * x), used
// on the encoder's attention scores, which are stored transposed (one vector per query,
// neighbouring vectors at neighbouring addresses).
//
// Argument: one SoftmaxArgs by value (packed by src/backend/cuda/plan.rs in this order).
//   x   f32: value c of vector r in block z at base + z*z_stride + r*row + c*col
// Launch geometry, chosen by the host from the layout (per_thread):
//   per_thread 1 (row == 1): grid (ceil(rows / 256), z, 1), block (256, 1, 1): a thread per
//     vector, so a warp reads 32 neighbouring vectors' value c together; an online pass for
//     the maximum and the sum, then the probabilities.
//   per_thread 0: grid (rows, z, 1), block (256, 1, 1): a block per vector; a block-wide max,
//     a block-wide sum of exponentials, then the probabilities.

struct SoftmaxArgs {
    float* x;
    u32 rows, cols, base, row, col, z_stride, per_thread;
    float scale;
};

extern "C" __global__ void softmax(const SoftmaxArgs a) {
    __shared__ float scratch[32];
    if (a.per_thread != 0u) {
        const u32 r = blockIdx.x * blockDim.x + threadIdx.x;
        if (r >= a.rows) return;
        float* x = a.x + a.base + blockIdx.y * a.z_stride + r * a.row;
        float m = NEG_BIG, l = 0.0f;
        for (u32 c = 0; c < a.cols; ++c) {
            const float v = x[c * a.col] * a.scale;
            if (v > m) {
                l *= expf(m - v);
                m = v;
            }
            l += expf(v - m);
        }
        for (u32 c = 0; c < a.cols; ++c) x[c * a.col] = expf(x[c * a.col] * a.scale - m) / l;
        return;
    }
    float* x = a.x + a.base + blockIdx.y * a.z_stride + blockIdx.x * a.row;
    float m = NEG_BIG;
    for (u32 c = threadIdx.x; c < a.cols; c += blockDim.x) m = fmaxf(m, x[c * a.col] * a.scale);
    m = block_max(m, scratch);
    float l = 0.0f;
    for (u32 c = threadIdx.x; c < a.cols; c += blockDim.x) l += expf(x[c * a.col] * a.scale - m);
    l = block_sum(l, scratch);
    for (u32 c = threadIdx.x; c < a.cols; c += blockDim.x) x[c * a.col] = expf(x[c * a.col] * a.scale - m) / l;
}
