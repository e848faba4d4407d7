// Decoder input: x[b][d] = token_embedding[token_b][d] + positional[pos_b][d], with token_b and
// pos_b read from the step state, so the same dispatch serves every step.
//
// The token embedding is the tied logits weight, stored as the matmul packing lays it out
// (k-major [dim][vocab] with columns padded, or blocked: [vocab/8][dim][8]); a vocabulary
// split across bindings runs one dispatch per chunk, and only the chunk holding the token
// writes.
//
// Bindings (group 0):
//   0 params      uniform  Params
//   1 table       storage  array<u32>  this chunk of the packed embedding (f32 bits, f16 pairs
//                                      k-major or blocked, or int8 k-pairs then per-column f32
//                                      scales from scale_base)
//   2 positional  storage  array<f32>  [n_ctx][dim]
//   3 state       storage  array<u32>  STATE_WORDS per row
//   4 y           storage  array<f32>  [rows][dim]
// Dispatch: (ceil(dim / WG), rows, 1); one invocation per element.

struct Params { rows: u32, dim: u32, col_start: u32, cols: u32, row_words: u32, scale_base: u32, _p1: u32, _p2: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> table: array<u32>;
@group(0) @binding(2) var<storage, read> positional: array<f32>;
@group(0) @binding(3) var<storage, read> state: array<u32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

override WG: u32 = 64u;
override FMT: u32 = 1u; // 0 f32, 1 f16, 2 int8 (as in matmul.wgsl), 3 blocked f16
override STATE_WORDS: u32 = 16u;
const STATE_TOKEN: u32 = 0u;
const STATE_POS: u32 = 1u;
const STATE_DONE: u32 = 2u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let d = gid.x;
    let r = gid.y;
    if (d >= p.dim || r >= p.rows) { return; }
    let st = r * STATE_WORDS;
    if (state[st + STATE_DONE] != 0u) { return; }
    let tok = state[st + STATE_TOKEN];
    if (tok < p.col_start || tok >= p.col_start + p.cols) { return; }
    let c = tok - p.col_start;
    var e: f32;
    if (FMT == 1u) {
        let w = table[d * p.row_words + c / 2u];
        e = unpack2x16float(w)[c % 2u];
    } else if (FMT == 3u) {
        // Blocked f16: block c / 8 holds dims 0 .. dim-1 of its 8 tokens, 4 words per dim.
        let w = table[(c / 8u) * 4u * p.dim + 4u * d + (c % 8u) / 2u];
        e = unpack2x16float(w)[c % 2u];
    } else if (FMT == 2u) {
        // row_words counts the words of one k-row; a pair of k-rows interleaves its bytes.
        let byte = (d / 2u) * 8u * p.row_words + 2u * c + d % 2u;
        let q = extractBits(bitcast<i32>(table[byte / 4u]), (byte % 4u) * 8u, 8u);
        e = f32(q) * bitcast<f32>(table[p.scale_base + c]);
    } else {
        e = bitcast<f32>(table[d * p.row_words + c]);
    }
    let pos = state[st + STATE_POS];
    y[r * p.dim + d] = e + positional[pos * p.dim + d];
}
