// Decoder input (graph::Embed): y[r][d] = token_embedding[token_r][d] + positional[pos_r][d],
// token and position read from the step state, so one launch serves every step. The token
// embedding is one column chunk of the tied logits weight (k-major, [dim][row_elems]); a
// vocabulary split into chunks runs one launch per chunk and only the chunk holding the token
// writes. Done rows are skipped.
//
// Argument: one EmbedArgs by value (packed by src/backend/cuda/plan.rs in this order).
//   table       this chunk: f32, f16, or int8 k-pairs ([dim/2][row_elems][2] bytes) with f32
//               scales from word scale_base
//   positional  f32 [pos_len / dim][dim] (a position past it is not written)
//   state       u32 STATE_WORDS per row
//   y           f32 [rows][dim]
// Launch geometry: grid (ceil(dim / 256), rows, 1), block (256, 1, 1): one element per thread.

struct EmbedArgs {
    const void* table;
    const float* positional;
    const u32* state;
    float* y;
    u32 rows, dim, col_start, cols, row_elems, scale_base, fmt, pos_len;
};

extern "C" __global__ void embed(const EmbedArgs a) {
    const u32 d = blockIdx.x * blockDim.x + threadIdx.x, r = blockIdx.y;
    if (d >= a.dim) return;
    const u32* st = a.state + r * STATE_WORDS;
    if (st[S_DONE] != 0u) return;
    const u32 tok = st[S_TOKEN], pos = st[S_POS];
    if (tok < a.col_start || tok - a.col_start >= a.cols) return;
    if ((u64)pos * a.dim + d >= a.pos_len) return;
    const u32 c = tok - a.col_start;
    float e = load_b(a.table, a.fmt, 0u, a.row_elems, d, c);
    if (a.fmt == FMT_I8) e *= ((const float*)a.table)[a.scale_base + c];
    a.y[r * a.dim + d] = e + a.positional[pos * a.dim + d];
}
