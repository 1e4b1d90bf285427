//! Tensors, weights, images, IDX data and exported models in and out of files (training
//! data sets, image folders and checkpoints are `train`'s).
//!
//! * [`npy`]: NumPy `.npy` arrays (read `f4`/`f8`/`f2`/`u1`, write `f4`).
//! * [`safetensors`]: PyTorch `state_dict`s saved with `safetensors.torch.save_file`.
//! * [`idx`]: IDX files (MNIST / Fashion-MNIST), plain or gzip'd.
//! * [`image`]: PNG / JPEG images as `[1, C, H, W]` tensors in `[0, 1]`.
//! * [`exported`]: exported models (graph + weights in one file).
//!
//! Every reader reports a malformed file as [`Error::Format`](crate::Error::Format) naming the file, and an
//! unreadable one as [`Error::Io`](crate::Error::Io); none of them panics on bad input. Every size a file
//! claims is checked against a cap of [`crate::limits`] before it is believed, and only
//! regular files are read (`/dev/zero`, FIFOs and directories are refused). Writers are
//! atomic ([`crate::fs::write_atomic`]).

pub mod exported;
pub mod idx;
pub mod image;
pub mod npy;
pub mod safetensors;

pub use self::exported::{exported_from_bytes, read_exported, write_exported};
pub use self::idx::{
    idx_images_from_bytes, idx_labels_from_bytes, read_idx_images, read_idx_labels, FashionMnist,
    IdxImages,
};
pub use self::image::{image_from_bytes, read_image};
pub use self::npy::{npy_from_bytes, read_npy, write_npy};
pub use self::safetensors::{
    load_weights, metadata_from_bytes, num_classes_hint, read_safetensors,
    read_safetensors_metadata, safetensors_from_bytes, write_safetensors,
};
