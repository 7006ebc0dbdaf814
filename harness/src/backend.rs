//! Backend choice: which burn device runs the network.

use burn::tensor::Device;
use clap::ValueEnum;

/// A compute backend the harness can run sub-networks on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// burn's pure-Rust CPU backend (default; fastest pure-Rust option here).
    Flex,
    /// burn's ndarray CPU backend.
    Ndarray,
    /// LibTorch on the CPU (build with `--features tch`).
    TchCpu,
    /// LibTorch on CUDA GPU 0 (build with `--features tch`, needs a GPU).
    TchCuda,
}

impl Backend {
    /// The name used in files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Flex => "flex",
            Backend::Ndarray => "ndarray",
            Backend::TchCpu => "tch-cpu",
            Backend::TchCuda => "tch-cuda",
        }
    }

    /// The device, or why it is not available in this build.
    #[allow(deprecated)]
    pub fn device(self) -> Result<Device, String> {
        match self {
            Backend::Flex => Ok(Device::flex()),
            Backend::Ndarray => Ok(Device::ndarray()),
            #[cfg(feature = "tch")]
            Backend::TchCpu => Ok(Device::libtorch()),
            #[cfg(feature = "tch")]
            Backend::TchCuda => Ok(Device::libtorch_cuda(0)),
            #[cfg(not(feature = "tch"))]
            Backend::TchCpu | Backend::TchCuda => Err(format!(
                "backend `{}` is not compiled in: rebuild with `--features tch` (needs `pip install torch==2.9.0` and LIBTORCH_USE_PYTORCH=1, see the README)",
                self.name()
            )),
        }
    }
}
