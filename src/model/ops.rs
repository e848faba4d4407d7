//! Small builders that turn model-level steps (a linear layer, a layer norm) into ops,
//! splitting weights that span several bindings into one matmul per chunk.
use super::upload::{DeviceLayerNorm, DeviceLinear};
use crate::graph::*;

pub const LN_EPS: f32 = 1e-5;

/// A row-major `[rows][cols]` f32 destination as a single output segment.
pub fn rows_out(buf: BufId, base: usize, row: usize, n: usize) -> OutSegment {
    OutSegment { end: n, buf, elem: Elem::F32, base, row, col: 1, outer: 0, inner: 0, pos: 0 }
}

/// Options of one linear layer beyond its input and outputs.
#[derive(Clone, Copy, Default)]
pub struct Epilogue {
    pub gelu: bool,
    pub add: Option<Rows>,
    pub accumulate: bool,
    pub state: Option<BufId>,
}

#[derive(Default)]
pub struct Builder {
    pub ops: Vec<Op>,
}

impl Builder {
    /// `out = epilogue(x · W + b)` for `m` rows; `out` lists segments over the layer's columns.
    pub fn linear(&mut self, w: &DeviceLinear, m: usize, x: Rows, out: &[OutSegment], e: Epilogue) {
        self.linear_batched(w, m, 1, x, out, e)
    }

    /// As [`Builder::linear`] over `z` items of `m` rows each (`x.outer` and each segment's
    /// `outer` step from one item to the next).
    pub fn linear_batched(&mut self, w: &DeviceLinear, m: usize, z: usize, x: Rows, out: &[OutSegment], e: Epilogue) {
        assert!(!e.accumulate || out.len() == 1, "a residual add writes one segment");
        for c in &w.chunks {
            let (c0, c1) = (c.col_start, c.col_start + c.cols);
            let mut segs = Vec::new();
            let mut s_start = 0;
            for s in out {
                let (lo, hi) = (s_start.max(c0), s.end.min(c1));
                if lo < hi {
                    segs.push(OutSegment { end: hi - c0, base: s.base + (lo - s_start) * s.col, ..*s });
                }
                s_start = s.end;
            }
            self.ops.push(Op::Matmul(Matmul {
                m,
                n: c.cols,
                k: w.k,
                z_outer: z,
                z_inner: 1,
                x,
                b: BOperand {
                    buf: c.buf,
                    format: w.format,
                    base: 0,
                    k_stride: c.n_pad,
                    outer: 0,
                    inner: 0,
                    scale_base: c.scale_base,
                },
                bias: w.bias.map(|b| (b, c0)),
                gelu: e.gelu,
                add: e.add.map(|a| Rows { base: a.base + c0, ..a }),
                accumulate: e.accumulate,
                out: segs,
                state: e.state,
            }));
        }
    }

    pub fn layer_norm(
        &mut self,
        ln: &DeviceLayerNorm,
        rows: usize,
        dim: usize,
        x: BufId,
        y: BufId,
        state: Option<BufId>,
    ) {
        self.ops.push(Op::LayerNorm(LayerNorm {
            rows,
            dim,
            x,
            x_base: 0,
            x_row: dim,
            gamma: ln.gamma,
            beta: ln.beta,
            y,
            y_base: 0,
            y_row: dim,
            eps: LN_EPS,
            state,
        }));
    }
}
