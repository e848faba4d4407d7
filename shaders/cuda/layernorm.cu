// LayerNorm over the last dimension (graph::LayerNorm):
//   y = (x - mean) / sqrt(var + eps) * gamma + beta, var the centred second moment.
//
// Argument: one LayerNormArgs by value (packed by src/backend/cuda/plan.rs in this order).
//   x, y          f32 rows of `dim` values at x_base + r*x_row (y likewise)
//   gamma, beta   f32 [dim]
//   state         u32 decode step state (use_state: done rows are skipped)
// Launch geometry: grid (rows, 1, 1), block (256, 1, 1): one block per row, two block-wide
// reductions (the mean, then the centred variance).

struct LayerNormArgs {
    const float* x;
    const float* gamma;
    const float* beta;
    const u32* state;
    float* y;
    u32 rows, dim, x_base, x_row, y_base, y_row, use_state;
    float eps;
};

extern "C" __global__ void layernorm(const LayerNormArgs a) {
    __shared__ float scratch[32];
    const u32 r = blockIdx.x;
    if (a.use_state && a.state[r * STATE_WORDS + S_DONE] != 0u) return;
    const float* x = a.x + a.x_base + r * a.x_row;
    float s = 0.0f;
    for (u32 i = threadIdx.x; i < a.dim; i += blockDim.x) s += x[i];
    const float mean = block_sum(s, scratch) / (float)a.dim;
    float v = 0.0f;
    for (u32 i = threadIdx.x; i < a.dim; i += blockDim.x) {
        const float c = x[i] - mean;
        v += c * c;
    }
    const float var = block_sum(v, scratch) / (float)a.dim;
    const float rstd = 1.0f / sqrtf(var + a.eps);
    float* y = a.y + a.y_base + r * a.y_row;
    for (u32 i = threadIdx.x; i < a.dim; i += blockDim.x) y[i] = (x[i] - mean) * rstd * a.gamma[i] + a.beta[i];
}
