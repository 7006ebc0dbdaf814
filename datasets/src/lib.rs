//! Data for the opa harness: image loaders, the shipped Fashion-MNIST test split with its
//! calibration/evaluation halves, ImageNet-C style corruptions, and seeded synthetic video
//! streams. No burn here: images are plain `u8` planes.
//!
//! ```no_run
//! use opa_datasets::{shipped, stream::{Segment, StreamSpec, SyntheticStream, FrameSource}};
//! use std::sync::Arc;
//!
//! let eval = Arc::new(shipped::load_shipped_split(shipped::Split::Evaluation)?);
//! let spec = StreamSpec { segments: vec![Segment::clean(10.0, 30.0)] };
//! let stream = SyntheticStream::new(eval, &spec, 7)?;
//! let first = stream.frame(0)?;
//! assert_eq!(first.image.width, 28);
//! # Ok::<(), opa_datasets::DatasetError>(())
//! ```

pub mod assets;
pub mod cifar;
pub mod corrupt;
pub mod error;
pub mod folder;
pub mod idx;
pub mod image;
pub mod preview;
pub mod shipped;
pub mod stream;

pub use corrupt::CorruptionKind;
pub use error::{DatasetError, Result};
pub use image::{Image, ImageSet};
pub use stream::{Frame, FrameSource};
