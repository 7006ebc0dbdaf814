//! Backend choice: which burn device runs the network.

use burn::tensor::Device;
use clap::ValueEnum;
use serde::Serialize;

/// A compute backend the harness can run sub-networks on (on the command line and in
/// scenario files).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
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
    /// Every backend, in the order listed in messages.
    pub const ALL: [Backend; 4] = [
        Backend::Flex,
        Backend::Ndarray,
        Backend::TchCpu,
        Backend::TchCuda,
    ];

    /// The backend with this name (`flex`, `ndarray`, `tch-cpu`, `tch-cuda`).
    pub fn from_name(name: &str) -> Option<Backend> {
        Backend::ALL.into_iter().find(|b| b.name() == name)
    }

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
