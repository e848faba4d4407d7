//! Shared test helpers: opening the GPU (failing, not skipping, when there is none), random
//! data, and a twin of the CPU reference and wgpu backends driven in lockstep.
#![allow(dead_code)]
pub mod ct2_builder;
pub mod hf_model;
pub mod subtitles;
use half::f16;
use whisper_wgpu::backend::cpu::CpuBackend;
use whisper_wgpu::backend::wgpu::{WgpuBackend, WgpuOptions};
use whisper_wgpu::backend::Backend;
use whisper_wgpu::graph::{Attend, BufId, Elem, Op};

/// The variable that lets a machine without any Vulkan/Metal/DX12 adapter skip GPU tests.
pub const SKIP_GPU_VAR: &str = "WHISPER_WGPU_SKIP_GPU_TESTS";

/// Opens the wgpu backend. Without an adapter this panics (a GPU test must not pass silently)
/// unless WHISPER_WGPU_SKIP_GPU_TESTS=1, in which case it returns None and says so.
pub fn gpu_with(options: &WgpuOptions) -> Option<WgpuBackend> {
    match WgpuBackend::new(options) {
        Ok(b) => Some(b),
        Err(e) if std::env::var(SKIP_GPU_VAR).as_deref() == Ok("1") => {
            eprintln!("skipping GPU test ({SKIP_GPU_VAR}=1): {e}");
            None
        }
        Err(e) => panic!("no GPU adapter for the GPU tests: {e}\n(install mesa-vulkan-drivers, or set {SKIP_GPU_VAR}=1 to skip them)"),
    }
}

pub fn gpu() -> Option<WgpuBackend> {
    gpu_with(&WgpuOptions::default())
}

/// The crate root, for paths into ../shared.
pub fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn shared(rel: &str) -> std::path::PathBuf {
    root().join("..").join("shared").join(rel)
}

/// A small deterministic generator (xorshift64*), so failures reproduce.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [-1, 1).
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    pub fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform() * scale).collect()
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

pub fn f16_words(v: &[f32]) -> Vec<u8> {
    let mut h: Vec<u16> = v.iter().map(|&x| f16::from_f32(x).to_bits()).collect();
    if h.len() % 2 == 1 {
        h.push(0);
    }
    bytemuck::cast_slice(&h).to_vec()
}

/// The CPU reference and the GPU, given the same buffers and ops.
pub struct Twin {
    pub cpu: CpuBackend,
    pub gpu: WgpuBackend,
}

impl Twin {
    pub fn new() -> Option<Twin> {
        Some(Twin { cpu: CpuBackend::new(), gpu: gpu()? })
    }

    pub fn buffer(&mut self, elem: Elem, len: usize, bytes: &[u8]) -> BufId {
        let a = self.cpu.create_buffer("t", elem, len).unwrap();
        let b = self.gpu.create_buffer("t", elem, len).unwrap();
        assert_eq!(a, b, "twin buffer ids diverged");
        if !bytes.is_empty() {
            self.cpu.write(a, 0, bytes).unwrap();
            self.gpu.write(b, 0, bytes).unwrap();
        }
        a
    }
    pub fn f32(&mut self, v: &[f32]) -> BufId {
        self.buffer(Elem::F32, v.len(), bytemuck::cast_slice(v))
    }
    pub fn zeros(&mut self, len: usize) -> BufId {
        self.buffer(Elem::F32, len, &[])
    }
    pub fn f16(&mut self, v: &[f32]) -> BufId {
        self.buffer(Elem::F16, v.len(), &f16_words(v))
    }
    pub fn u32(&mut self, v: &[u32]) -> BufId {
        self.buffer(Elem::U32, v.len(), bytemuck::cast_slice(v))
    }

    pub fn run(&mut self, ops: &[Op], times: usize) {
        let a = self.cpu.compile(ops).unwrap();
        let b = self.gpu.compile(ops).unwrap();
        self.cpu.run(a, times).unwrap();
        self.gpu.run(b, times).unwrap();
    }

    pub fn read_f32(&mut self, buf: BufId, len: usize) -> (Vec<f32>, Vec<f32>) {
        (self.cpu.read_f32(buf, 0, len).unwrap(), self.gpu.read_f32(buf, 0, len).unwrap())
    }

    pub fn read_u32(&mut self, buf: BufId, len: usize) -> (Vec<u32>, Vec<u32>) {
        (self.cpu.read_u32(buf, 0, len).unwrap(), self.gpu.read_u32(buf, 0, len).unwrap())
    }

    pub fn read_f16(&mut self, buf: BufId, len: usize) -> (Vec<f32>, Vec<f32>) {
        let words = len.div_ceil(2);
        let conv = |w: Vec<u32>| -> Vec<f32> {
            let h: Vec<u16> = bytemuck::cast_slice(&w).to_vec();
            h[..len].iter().map(|&b| f16::from_bits(b).to_f32()).collect()
        };
        let (a, b) = self.read_u32(buf, words);
        (conv(a), conv(b))
    }
}

/// Largest |a - b| and where.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> (f32, usize) {
    assert_eq!(a.len(), b.len());
    let mut worst = (0f32, 0usize);
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let d = (x - y).abs();
        if d > worst.0 || d.is_nan() {
            worst = (d, i);
        }
    }
    worst
}

#[track_caller]
pub fn assert_close(what: &str, reference: &[f32], got: &[f32], tol: f32) {
    let (d, i) = max_abs_diff(reference, got);
    assert!(d <= tol, "{what}: max |diff| {d:e} at {i} (reference {}, got {}) exceeds {tol:e}", reference[i], got[i]);
}

/// A decode-attention op: `rows` rows of `heads` heads of `head_dim` (rows of queries and
/// outputs packed, from element 0), caches of `cap` keys, scale 1/8. The five buffers are q,
/// k_t, v_t, out and the step state; the caller sizes and sets `partials` (`partials_len`).
pub fn attend_op(
    (rows, heads, head_dim, cap): (usize, usize, usize, usize),
    fixed_len: Option<usize>,
    kv: Elem,
    full_capacity: bool,
    [q, k_t, v_t, out, state]: [BufId; 5],
) -> Attend {
    Attend {
        rows,
        heads,
        head_dim,
        cap,
        fixed_len,
        max_len: fixed_len.unwrap_or(cap),
        q,
        q_base: 0,
        q_row: heads * head_dim,
        k_t,
        v_t,
        kv,
        partials: BufId(0),
        out,
        out_base: 0,
        out_row: heads * head_dim,
        scale: 0.125,
        state,
        full_capacity,
    }
}
