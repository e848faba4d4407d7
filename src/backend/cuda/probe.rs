//! Checks that the libraries the CUDA backend loads at run time are there before cudarc
//! touches them: cudarc resolves libcuda and libnvrtc lazily and panics when one is missing,
//! which would abort a transcriber that merely asked for `--backend cuda` on the wrong machine.
//! The probe tries the same file names in the same order as cudarc (so the library it finds is
//! the one cudarc will load) and looks up the functions the backend calls.
use crate::{Error, Result};

/// A library the CUDA backend needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CudaLibrary {
    /// The driver API, `libcuda.so.1` (installed with the NVIDIA driver).
    Driver,
    /// The runtime compiler, `libnvrtc.so.12` (CUDA toolkit, or the `nvidia-cuda-nvrtc-cu12`
    /// wheel with its `lib` folder on `LD_LIBRARY_PATH`).
    Nvrtc,
}

impl CudaLibrary {
    /// cudarc's base names for the library, in its search order.
    fn base_names(self) -> &'static [&'static str] {
        match self {
            CudaLibrary::Driver => &["cuda", "nvcuda"],
            CudaLibrary::Nvrtc => &["nvrtc"],
        }
    }

    /// Functions the backend calls (through cudarc), each looked up before first use.
    fn symbols(self) -> &'static [&'static str] {
        match self {
            CudaLibrary::Driver => &[
                "cuInit",
                "cuDeviceGet",
                "cuDevicePrimaryCtxRetain",
                "cuCtxSetCurrent",
                "cuStreamCreate",
                "cuModuleLoadData",
                "cuModuleGetFunction",
                "cuLaunchKernel",
                "cuMemcpyHtoDAsync_v2",
                "cuMemcpyDtoHAsync_v2",
                "cuStreamSynchronize",
                "cuStreamBeginCapture_v2",
                "cuStreamEndCapture",
                "cuGraphInstantiateWithFlags",
                "cuGraphLaunch",
            ],
            CudaLibrary::Nvrtc => &[
                "nvrtcCreateProgram",
                "nvrtcCompileProgram",
                "nvrtcGetPTXSize",
                "nvrtcGetPTX",
                "nvrtcGetProgramLogSize",
                "nvrtcGetProgramLog",
                "nvrtcDestroyProgram",
            ],
        }
    }

    fn what(self) -> &'static str {
        match self {
            CudaLibrary::Driver => "the NVIDIA driver library (libcuda)",
            CudaLibrary::Nvrtc => "NVRTC, the CUDA runtime compiler (libnvrtc)",
        }
    }

    fn hint(self) -> &'static str {
        match self {
            CudaLibrary::Driver => "install the NVIDIA driver, or use --backend wgpu",
            CudaLibrary::Nvrtc => {
                "install the CUDA toolkit, or `pip install nvidia-cuda-nvrtc-cu12` and put its \
                 nvidia/cuda_nvrtc/lib on LD_LIBRARY_PATH"
            }
        }
    }

    /// The file names tried, in order.
    pub fn candidates(self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for n in self.base_names().iter().flat_map(|n| cudarc::get_lib_name_candidates(n)) {
            if !names.contains(&n) {
                names.push(n);
            }
        }
        names
    }
}

/// Loads `lib` the way cudarc will and checks its functions; the error names the library,
/// the files tried or the missing function, and what to install.
pub fn probe(lib: CudaLibrary) -> Result<()> {
    let candidates = lib.candidates();
    // SAFETY: loading a shared library runs its initialisers; these are the vendor's own
    // libraries (or whatever the user put under those names), exactly as cudarc would load.
    let found = candidates.iter().find_map(|name| unsafe { libloading::Library::new(name) }.ok().map(|l| (name, l)));
    let Some((name, library)) = found else {
        return Err(Error::CudaUnavailable {
            library: lib.what().into(),
            detail: format!("was not found (tried {}); {}", candidates.join(", "), lib.hint()),
        });
    };
    for symbol in lib.symbols() {
        // SAFETY: only the address is looked up; nothing is called through it.
        if unsafe { library.get::<*const ()>(symbol.as_bytes()) }.is_err() {
            return Err(Error::CudaUnavailable {
                library: lib.what().into(),
                detail: format!("{name} has no `{symbol}` (older than CUDA 12.8?); {}", lib.hint()),
            });
        }
    }
    Ok(())
}
