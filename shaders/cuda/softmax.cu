// Row softmax in place with a scale on the inputs (graph::Softmax): x <- softmax(scale * x),
// used on the encoder's attention scores.
//
// Argument: one SoftmaxArgs by value (packed by src/backend/cuda/plan.rs in this order).
//   x   f32 z blocks (stride z_stride) of `rows` rows (stride row) of `cols` values, from base
// Launch geometry: grid (rows, z, 1), block (256, 1, 1): one block per row; a block-wide max,
// a block-wide sum of exponentials, then the probabilities written in place.

struct SoftmaxArgs {
    float* x;
    u32 rows, cols, base, row, z_stride;
    float scale;
};

extern "C" __global__ void softmax(const SoftmaxArgs a) {
    __shared__ float scratch[32];
    float* x = a.x + a.base + blockIdx.y * a.z_stride + blockIdx.x * a.row;
    float m = NEG_BIG;
    for (u32 c = threadIdx.x; c < a.cols; c += blockDim.x) m = fmaxf(m, x[c] * a.scale);
    m = block_max(m, scratch);
    float l = 0.0f;
    for (u32 c = threadIdx.x; c < a.cols; c += blockDim.x) l += expf(x[c] * a.scale - m);
    l = block_sum(l, scratch);
    for (u32 c = threadIdx.x; c < a.cols; c += blockDim.x) x[c] = expf(x[c] * a.scale - m) / l;
}
