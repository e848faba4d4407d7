//! Host-side tests of the `cuda` feature (no GPU needed): the typed errors when libcuda or
//! NVRTC is missing, every kernel file compiling to PTX with NVRTC (where NVRTC is installed;
//! CI installs it from the `nvidia-cuda-nvrtc-cu12` wheel and sets
//! WHISPER_WGPU_REQUIRE_NVRTC=1 so that a missing NVRTC fails instead), the argument structs
//! the PTX declares matching what the plan packs, and the launches real model plans lower to.
#![cfg(feature = "cuda")]
mod common;
use common::*;
use std::collections::HashMap;
use whisper_wgpu::backend::cuda::kernels::{self, Kernel};
use whisper_wgpu::backend::cuda::plan::{self, ArgPack, BufferInfo, Launch};
use whisper_wgpu::backend::cuda::probe::{probe, CudaLibrary};
use whisper_wgpu::backend::cuda::{CudaBackend, CudaOptions};
use whisper_wgpu::backend::{Backend, BackendKind, Counters, PlanId};
use whisper_wgpu::graph::*;
use whisper_wgpu::Error;

const REQUIRE_NVRTC: &str = "WHISPER_WGPU_REQUIRE_NVRTC";

/// Whether the dynamic linker's cache lists a library (a system-wide install, found even with
/// LD_LIBRARY_PATH unset).
fn system_has(lib: &str) -> bool {
    std::process::Command::new("ldconfig")
        .arg("-p")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(lib))
        .unwrap_or(false)
}

/// Whether a library is on LD_LIBRARY_PATH or in the dynamic linker's cache.
fn findable(lib: &str) -> bool {
    let on_path = std::env::var("LD_LIBRARY_PATH").unwrap_or_default().split(':').any(|dir| {
        std::fs::read_dir(dir)
            .is_ok_and(|mut d| d.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with(lib))))
    });
    on_path || system_has(lib)
}

#[test]
fn missing_driver_is_a_typed_error() {
    let driver = probe(CudaLibrary::Driver);
    if findable("libcuda.so") {
        // A machine with the driver: the error path cannot be reached; scripts/gpu-check.sh
        // covers opening the device.
        assert!(driver.is_ok(), "libcuda is installed but the probe failed: {driver:?}");
        return;
    }
    match driver {
        Err(Error::CudaUnavailable { library, detail }) => {
            assert!(library.contains("libcuda"), "{library}");
            assert!(detail.contains("libcuda.so.1") && detail.contains("--backend wgpu"), "{detail}");
        }
        other => panic!("expected CudaUnavailable for the driver, got {other:?}"),
    }
    // Opening the backend, directly or by name, stops at the probe instead of panicking.
    match CudaBackend::new(&CudaOptions::default()) {
        Err(Error::CudaUnavailable { library, .. }) => assert!(library.contains("libcuda"), "{library}"),
        Err(e) => panic!("expected CudaUnavailable, got {e}"),
        Ok(b) => panic!("opened a CUDA device without a driver: {}", b.describe()),
    }
    let kind = BackendKind::parse("cuda").unwrap();
    match whisper_wgpu::backend::open(kind, &Default::default()) {
        Err(e @ Error::CudaUnavailable { .. }) => {
            let text = e.to_string();
            assert!(text.starts_with("CUDA is not available"), "{text}");
        }
        Err(e) => panic!("expected CudaUnavailable, got {e}"),
        Ok(b) => panic!("opened a CUDA device without a driver: {}", b.describe()),
    }
}

/// Runs in a child process that sees no LD_LIBRARY_PATH, so a wheel-installed NVRTC is hidden.
#[test]
fn missing_nvrtc_is_a_typed_error() {
    if std::env::var("WHISPER_WGPU_NO_NVRTC_CHILD").is_ok() {
        match kernels::compile_all(89) {
            Err(Error::CudaUnavailable { library, detail }) => {
                assert!(library.contains("libnvrtc"), "{library}");
                assert!(detail.contains("libnvrtc.so.12") && detail.contains("nvidia-cuda-nvrtc-cu12"), "{detail}");
            }
            Err(e) => panic!("expected CudaUnavailable for NVRTC, got {e}"),
            Ok(_) => panic!("compiled kernels with no NVRTC visible"),
        }
        return;
    }
    if system_has("libnvrtc.so") {
        eprintln!("NVRTC is installed system-wide: the missing-NVRTC path cannot be reached here");
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "missing_nvrtc_is_a_typed_error", "--nocapture"])
        .env("WHISPER_WGPU_NO_NVRTC_CHILD", "1")
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "child failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The PTX of every kernel file for the architectures of the cards we target (Turing, Ampere,
/// Ada, Hopper), or None where NVRTC is missing and not required.
fn ptx_for(arch: u32) -> Option<Vec<String>> {
    match kernels::compile_all(arch) {
        Ok(ptx) => Some(ptx.iter().map(|p| p.to_src()).collect()),
        Err(Error::CudaUnavailable { library, detail }) if std::env::var(REQUIRE_NVRTC).as_deref() != Ok("1") => {
            eprintln!("NVRTC is not installed ({library} {detail}): only the error path was tested; set {REQUIRE_NVRTC}=1 to fail instead");
            None
        }
        Err(e) => panic!("compiling the kernels for compute_{arch}: {e}"),
    }
}

/// The byte size of each entry point's single parameter in a PTX module.
fn param_sizes(ptx: &str) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for (i, _) in ptx.match_indices(".entry ") {
        let rest = &ptx[i + 7..];
        let name = rest[..rest.find('(').unwrap()].trim().to_string();
        let decl = &rest[rest.find(".param").unwrap()..];
        let size = decl[decl.find('[').unwrap() + 1..decl.find(']').unwrap()].parse().unwrap();
        out.insert(name, size);
    }
    out
}

/// Assembles PTX to machine code with `ptxas` (which NVRTC's output skips until the driver
/// loads it): inline assembly and register types are checked only there.
fn assemble(ptxas: &str, arch: u32, name: &str, ptx: &str) {
    let dir = std::env::temp_dir().join(format!("whisper-wgpu-ptx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.sm_{arch}.ptx"));
    std::fs::write(&path, ptx).unwrap();
    let out = std::process::Command::new(ptxas)
        .args([format!("-arch=sm_{arch}"), "-v".into(), "-o".into(), "/dev/null".into(), path.display().to_string()])
        .output()
        .unwrap_or_else(|e| panic!("running {ptxas}: {e}"));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ptxas sm_{arch} {name}:\n{log}");
    // Registers and spills per entry point, for whoever tunes the kernels (--nocapture).
    for line in log.lines().filter(|l| l.contains("Compiling entry") || l.contains("registers") || l.contains("spill"))
    {
        eprintln!("{line}");
    }
    let _ = std::fs::remove_file(path);
}

#[test]
fn kernels_compile_to_ptx_with_every_entry_point() {
    // CI points WHISPER_WGPU_PTXAS at ptxas from NVIDIA's nvcc wheel.
    let ptxas = std::env::var("WHISPER_WGPU_PTXAS").ok();
    for arch in [80, 90] {
        let Some(ptx) = ptx_for(arch) else { return };
        assert_eq!(ptx.len(), kernels::FILES.len());
        for (file, src) in kernels::FILES.iter().zip(&ptx) {
            if let Some(p) = &ptxas {
                assemble(p, arch, file.name, src);
            }
            assert!(src.contains(&format!(".target sm_{arch}")), "{}: {}", file.name, &src[..src.len().min(400)]);
            let sizes = param_sizes(src);
            for k in file.entries {
                assert!(sizes.contains_key(k.entry()), "{} lacks {}", file.name, k.entry());
            }
        }
    }
}

/// A fake device: buffers are address ranges, plans are lowered (every op validated) and
/// kept, nothing runs. It lets real model plans be checked on a machine without a GPU.
#[derive(Default)]
struct Recorder {
    buffers: Vec<BufferInfo>,
    plans: Vec<Vec<Launch>>,
    next: u64,
}

impl Recorder {
    fn add(&mut self, elem: Elem, len: usize) -> BufId {
        self.next += 1 << 32; // far apart, so a launch's addresses name their buffers
        self.buffers.push(BufferInfo { ptr: self.next, len, elem });
        BufId(self.buffers.len() as u32 - 1)
    }
    fn lookup(&self) -> impl Fn(BufId) -> whisper_wgpu::Result<BufferInfo> + '_ {
        |id| self.buffers.get(id.0 as usize).copied().ok_or_else(|| Error::InvalidArgument(format!("no {id:?}")))
    }
}

impl Backend for Recorder {
    fn describe(&self) -> String {
        "recorder".into()
    }
    fn max_binding_bytes(&self) -> u64 {
        u32::MAX as u64
    }
    fn create_buffer(&mut self, _: &str, elem: Elem, len: usize) -> whisper_wgpu::Result<BufId> {
        Ok(self.add(elem, len))
    }
    fn write(&mut self, buf: BufId, offset: usize, data: &[u8]) -> whisper_wgpu::Result<()> {
        let b = self.lookup()(buf)?;
        assert!(offset + data.len() <= Elem::bytes(b.len, b.elem).max(4), "write past {buf:?}");
        Ok(())
    }
    fn read(&mut self, _: BufId, _: usize, len: usize) -> whisper_wgpu::Result<Vec<u8>> {
        Ok(vec![0; len])
    }
    fn compile(&mut self, ops: &[Op]) -> whisper_wgpu::Result<PlanId> {
        let mut launches = Vec::new();
        for op in ops {
            launches.extend(plan::lower(op, &self.lookup())?);
        }
        self.plans.push(launches);
        Ok(PlanId(self.plans.len() as u32 - 1))
    }
    fn run(&mut self, _: PlanId, _: usize) -> whisper_wgpu::Result<()> {
        Ok(())
    }
    fn free_buffer(&mut self, _: BufId) {}
    fn free_plan(&mut self, _: PlanId) {}
    fn counters(&self) -> Counters {
        Counters::default()
    }
    fn dispatch_count(&self, plan: PlanId) -> usize {
        self.plans[plan.0 as usize].len()
    }
}

fn rows(buf: BufId, row: usize) -> Rows {
    Rows { buf, base: 0, row, outer: 0, inner: 0 }
}

fn matmul(r: &mut Recorder, m: usize, n: usize, k: usize, format: BFormat) -> Matmul {
    let x = r.add(Elem::F32, m * k);
    let n_pad = n.next_multiple_of(16);
    let (b, scale_base) = match format {
        BFormat::F32 => (r.add(Elem::F32, k * n_pad), 0),
        BFormat::F16 | BFormat::F16Blocked => (r.add(Elem::F16, k * n_pad), 0),
        BFormat::I8 => (r.add(Elem::U32, k * n_pad / 4 + n_pad), k * n_pad / 4),
    };
    let y = r.add(Elem::F32, m * n);
    Matmul {
        m,
        n,
        k,
        z_outer: 1,
        z_inner: 1,
        x: rows(x, k),
        b: BOperand { buf: b, format, base: 0, k_stride: n_pad, outer: 0, inner: 0, scale_base },
        bias: None,
        gelu: false,
        add: None,
        accumulate: false,
        out: vec![OutSegment { end: n, buf: y, elem: Elem::F32, base: 0, row: n, col: 1, outer: 0, inner: 0, pos: 0 }],
        state: None,
    }
}

#[test]
fn arg_pack_follows_c_layout() {
    let mut p = ArgPack::new();
    p.u32(7).ptr(0x1122_3344_5566_7788).u32(1).f32(1.5);
    // The pointer is aligned to 8 bytes after the first u32; the struct is padded to 8.
    assert_eq!(p.finish(), vec![7, 0x1122_3344_5566_7788, 1 | ((1.5f32.to_bits() as u64) << 32)]);
    let mut q = ArgPack::new();
    q.ptr(1).u32(2);
    assert_eq!(q.finish(), vec![1, 2]);
}

#[test]
fn matmul_lowers_to_the_matvec_or_tiled_kernel() {
    let mut r = Recorder::default();
    let mv = matmul(&mut r, 1, 1000, 384, BFormat::F16);
    let l = &plan::lower(&Op::Matmul(mv.clone()), &r.lookup()).unwrap()[0];
    assert_eq!(l.kernel, Kernel::MatmulVec);
    assert_eq!((l.grid, l.block), ([32, 1, 1], [32, 8, 1]));
    // Pointers first: x, B, then bias, add, state unused (null), then segment 0's buffer twice
    // more for the unused segments.
    let ptr = |id: BufId| r.buffers[id.0 as usize].ptr;
    assert_eq!(
        &l.args[..8],
        &[ptr(mv.x.buf), ptr(mv.b.buf), 0, 0, 0, ptr(mv.out[0].buf), ptr(mv.out[0].buf), ptr(mv.out[0].buf)]
    );
    // m, n | k, z_inner as 32-bit fields.
    assert_eq!(l.args[8], 1 | (1000 << 32));
    assert_eq!(l.args[9], 384 | (1 << 32));
    assert_eq!(l.args.len() * 8, 64 + 44 * 4);

    let gemm = matmul(&mut r, 1500, 384, 384, BFormat::I8);
    let l = &plan::lower(&Op::Matmul(gemm), &r.lookup()).unwrap()[0];
    assert_eq!(l.kernel, Kernel::MatmulTiled);
    assert_eq!((l.grid, l.block), ([24, 94, 1], [16, 16, 1]));
}

#[test]
fn out_of_bounds_or_mistyped_operands_are_rejected() {
    let mut r = Recorder::default();
    let mut short = matmul(&mut r, 4, 64, 64, BFormat::F32);
    short.x.row = 65; // the last row reaches past x
    match plan::lower(&Op::Matmul(short), &r.lookup()) {
        Err(Error::InvalidArgument(m)) => assert!(m.contains("matmul x"), "{m}"),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    let mut typed = matmul(&mut r, 4, 64, 64, BFormat::F32);
    typed.b.format = BFormat::F16; // an f32 buffer read as f16
    match plan::lower(&Op::Matmul(typed), &r.lookup()) {
        Err(Error::InvalidArgument(m)) => assert!(m.contains("holds F32"), "{m}"),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    let mut pos = matmul(&mut r, 1, 64, 64, BFormat::F32);
    pos.out[0].pos = 64; // indexed by the step position without a state
    assert!(matches!(plan::lower(&Op::Matmul(pos), &r.lookup()), Err(Error::InvalidArgument(_))));
    // Blocked f16 is the wgpu CPU-adapter layout: the CUDA kernels refuse it by name.
    let blocked = matmul(&mut r, 1, 64, 64, BFormat::F16Blocked);
    let lowered = plan::lower(&Op::Matmul(blocked), &r.lookup());
    match lowered {
        Err(Error::InvalidArgument(m)) => assert!(m.contains("blocked f16"), "{m}"),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
}

fn attend(r: &mut Recorder, max_len: usize, cap: usize) -> Attend {
    let (rows, heads, head_dim) = (2, 6, 64);
    let mut a = Attend {
        rows,
        heads,
        head_dim,
        cap,
        fixed_len: None,
        max_len,
        q: r.add(Elem::F32, rows * heads * head_dim),
        q_base: 0,
        q_row: heads * head_dim,
        k_t: r.add(Elem::F16, rows * heads * head_dim * cap),
        v_t: r.add(Elem::F16, rows * heads * head_dim * cap),
        kv: Elem::F16,
        partials: BufId(0),
        out: r.add(Elem::F32, rows * heads * head_dim),
        out_base: 0,
        out_row: heads * head_dim,
        scale: 0.125,
        state: r.add(Elem::U32, rows * STATE_WORDS),
        full_capacity: false,
    };
    a.partials = r.add(Elem::F32, a.partials_len());
    a
}

#[test]
fn attention_is_split_into_chunks_with_a_merge_only_when_needed() {
    let mut r = Recorder::default();
    let short = attend(&mut r, 448, 448);
    let l = plan::lower(&Op::Attend(short), &r.lookup()).unwrap();
    assert_eq!(l.len(), 1, "one chunk needs no merge");
    assert_eq!((l[0].kernel, l[0].grid), (Kernel::AttendPartial, [1, 6, 2]));
    let long = attend(&mut r, 4096, 4096);
    let l = plan::lower(&Op::Attend(long.clone()), &r.lookup()).unwrap();
    assert_eq!(l.iter().map(|l| l.kernel).collect::<Vec<_>>(), vec![Kernel::AttendPartial, Kernel::AttendMerge]);
    assert_eq!(l[0].grid, [long.n_chunks() as u32, 6, 2]);
    assert_eq!(l[1].grid, [6, 2, 1]);
    assert_eq!(l[0].args, l[1].args, "partial and merge share one argument struct");
    let mut small = long.clone();
    small.partials = r.add(Elem::F32, long.partials_len() - 1);
    assert!(matches!(plan::lower(&Op::Attend(small), &r.lookup()), Err(Error::InvalidArgument(_))));
}

#[test]
fn the_argument_structs_match_the_ptx() {
    let Some(ptx) = ptx_for(89) else { return };
    let sizes: HashMap<String, usize> = ptx.iter().flat_map(|p| param_sizes(p)).collect();
    // Real decoder steps and encoders of amt-random and aria-amt-random (its own token
    // selection), lowered against the recorder: every kernel appears, and each launch's
    // packed struct is the size the PTX declares.
    let mut launches = model_plans();
    launches.extend(plans_of("models/aria-amt-random"));
    for k in Kernel::ALL {
        let l = launches.iter().find(|l| l.kernel == k).unwrap_or_else(|| panic!("no launch of {k:?}"));
        assert_eq!(l.args.len() * 8, sizes[k.entry()], "{k:?}: packed {} bytes", l.args.len() * 8);
    }
}

/// Every launch of amt-random's plans (encoder, cross K/V, decode step at capacity 4096).
fn model_plans() -> Vec<Launch> {
    plans_of("models/amt-random")
}

/// Every launch of a model's plans (encoder, cross K/V, decode step at capacity 4096).
fn plans_of(model_dir: &str) -> Vec<Launch> {
    use std::sync::{Arc, Mutex};
    use whisper_wgpu::checkpoint::Checkpoint;
    use whisper_wgpu::decode::{Session, SessionOptions};
    use whisper_wgpu::model::{Model, WeightDtype};
    /// Shares the recorder with the model, which owns its backend.
    struct Shared(Arc<Mutex<Recorder>>);
    macro_rules! fwd {
        ($($name:ident($($a:ident: $t:ty),*) -> $r:ty;)*) => {
            $(fn $name(&mut self, $($a: $t),*) -> $r { self.0.lock().unwrap().$name($($a),*) })*
        };
    }
    impl Backend for Shared {
        fn describe(&self) -> String {
            "recorder".into()
        }
        fn max_binding_bytes(&self) -> u64 {
            u32::MAX as u64
        }
        fwd! {
            create_buffer(l: &str, e: Elem, n: usize) -> whisper_wgpu::Result<BufId>;
            write(b: BufId, o: usize, d: &[u8]) -> whisper_wgpu::Result<()>;
            read(b: BufId, o: usize, n: usize) -> whisper_wgpu::Result<Vec<u8>>;
            compile(ops: &[Op]) -> whisper_wgpu::Result<PlanId>;
            run(p: PlanId, t: usize) -> whisper_wgpu::Result<()>;
            free_buffer(b: BufId) -> ();
            free_plan(p: PlanId) -> ();
        }
        fn counters(&self) -> Counters {
            Counters::default()
        }
        fn dispatch_count(&self, plan: PlanId) -> usize {
            self.0.lock().unwrap().dispatch_count(plan)
        }
    }
    let rec = Arc::new(Mutex::new(Recorder::default()));
    let ck = Checkpoint::load(&shared(model_dir)).unwrap();
    let model =
        Model::new(Box::new(Shared(rec.clone())), ck.dims, ck.generation, &ck.weights, WeightDtype::Auto).unwrap();
    let opts = SessionOptions { capacity: Some(4096), ..Default::default() };
    let session = Session::new(&model, opts).unwrap();
    drop(session);
    let r = rec.lock().unwrap();
    r.plans.iter().flatten().cloned().collect()
}

#[test]
fn model_plans_lower_to_the_expected_launches() {
    let launches = model_plans();
    let count = |k: Kernel| launches.iter().filter(|l| l.kernel == k).count();
    // Two decoder layers: per layer a self and a cross attention; the self attention over a
    // 4096-key capacity needs the merge, the cross attention over 1500 keys fits one chunk.
    assert_eq!(count(Kernel::Select), 1);
    assert_eq!(count(Kernel::Embed), 1);
    assert_eq!(count(Kernel::AttendMerge), 2);
    assert_eq!(count(Kernel::AttendPartial), 4);
    assert!(count(Kernel::MatmulVec) > 0 && count(Kernel::MatmulTiled) > 0);
    assert!(count(Kernel::Softmax) > 0 && count(Kernel::LayerNorm) > 0);
}
