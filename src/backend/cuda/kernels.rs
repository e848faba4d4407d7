//! The CUDA kernel sources (`shaders/cuda/*.cu`, one file per op family, `common.cuh`
//! prepended to each) and their run-time compilation to PTX with NVRTC. Compiling needs only
//! libnvrtc, no GPU, so tests can check every source on a machine without one.
use super::probe::{probe, CudaLibrary};
use crate::{Error, Result};
use cudarc::nvrtc::{compile_ptx_with_opts, CompileError, CompileOptions, Ptx};

/// Shared definitions prepended to every kernel file.
pub const COMMON: &str = include_str!("../../../shaders/cuda/common.cuh");

/// One kernel file: its name, source and entry points.
#[derive(Clone, Copy, Debug)]
pub struct KernelFile {
    pub name: &'static str,
    pub source: &'static str,
    pub entries: &'static [Kernel],
}

/// Every entry point of the kernel files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    MatmulTiled,
    MatmulVec,
    LayerNorm,
    Softmax,
    Embed,
    AttendPartial,
    AttendMerge,
    Select,
    SelectAria,
}

impl Kernel {
    pub const ALL: [Kernel; 9] = [
        Kernel::MatmulTiled,
        Kernel::MatmulVec,
        Kernel::LayerNorm,
        Kernel::Softmax,
        Kernel::Embed,
        Kernel::AttendPartial,
        Kernel::AttendMerge,
        Kernel::Select,
        Kernel::SelectAria,
    ];

    /// The `extern "C"` name of the entry point.
    pub fn entry(self) -> &'static str {
        match self {
            Kernel::MatmulTiled => "matmul_tiled",
            Kernel::MatmulVec => "matmul_vec",
            Kernel::LayerNorm => "layernorm",
            Kernel::Softmax => "softmax",
            Kernel::Embed => "embed",
            Kernel::AttendPartial => "attend_partial",
            Kernel::AttendMerge => "attend_merge",
            Kernel::Select => "select_token",
            Kernel::SelectAria => "select_aria",
        }
    }

    /// Index into [`Kernel::ALL`].
    pub fn index(self) -> usize {
        Kernel::ALL.iter().position(|&k| k == self).expect("listed in ALL")
    }
}

pub const FILES: [KernelFile; 6] = [
    KernelFile {
        name: "matmul.cu",
        source: include_str!("../../../shaders/cuda/matmul.cu"),
        entries: &[Kernel::MatmulTiled, Kernel::MatmulVec],
    },
    KernelFile {
        name: "layernorm.cu",
        source: include_str!("../../../shaders/cuda/layernorm.cu"),
        entries: &[Kernel::LayerNorm],
    },
    KernelFile {
        name: "softmax.cu",
        source: include_str!("../../../shaders/cuda/softmax.cu"),
        entries: &[Kernel::Softmax],
    },
    KernelFile { name: "embed.cu", source: include_str!("../../../shaders/cuda/embed.cu"), entries: &[Kernel::Embed] },
    KernelFile {
        name: "attend.cu",
        source: include_str!("../../../shaders/cuda/attend.cu"),
        entries: &[Kernel::AttendPartial, Kernel::AttendMerge],
    },
    KernelFile {
        name: "select.cu",
        source: include_str!("../../../shaders/cuda/select.cu"),
        entries: &[Kernel::Select, Kernel::SelectAria],
    },
];

/// Compiles every kernel file for the virtual architecture `compute_{arch}` (e.g. 89 for an
/// RTX 4090, 90 for an H100/H200), returning the PTX of each file in [`FILES`] order.
/// Floating point stays IEEE (no fast math, no flush to zero): the kernels follow the CPU
/// reference's arithmetic.
pub fn compile_all(arch: u32) -> Result<Vec<Ptx>> {
    probe(CudaLibrary::Nvrtc)?;
    FILES.iter().map(|f| compile_file(f, arch)).collect()
}

fn compile_file(file: &KernelFile, arch: u32) -> Result<Ptx> {
    let source = format!("{COMMON}\n#line 1 \"{}\"\n{}", file.name, file.source);
    let options = CompileOptions {
        ftz: Some(false),
        prec_div: Some(true),
        prec_sqrt: Some(true),
        fmad: Some(true),
        name: Some(file.name.into()),
        options: vec![format!("--gpu-architecture=compute_{arch}")],
        ..Default::default()
    };
    compile_ptx_with_opts(source, options).map_err(|e| {
        let detail = match &e {
            CompileError::CompileError { log, .. } => log.to_string_lossy().into_owned(),
            other => format!("{other:?}"),
        };
        Error::Cuda(format!("NVRTC could not compile shaders/cuda/{} for compute_{arch}: {detail}", file.name))
    })
}
