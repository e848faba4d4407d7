//! The model on a device: weights uploaded once, and the op lists of the encoder and decoder
//! built against them (written once against the [`Backend`] interface).
pub mod decoder;
pub mod encoder;
pub mod ops;
pub mod pack;
pub mod upload;

use crate::backend::Backend;
use crate::config::{GenerationConfig, ModelDims};
use crate::weights::ModelWeights;
use crate::Result;
pub use pack::WeightDtype;
use std::sync::{Mutex, MutexGuard};
use upload::DeviceWeights;

/// A model whose weights live on a backend. Sessions (each with its own buffers and plans)
/// share it; the backend is locked per call, so several threads may decode at once.
pub struct Model {
    pub dims: ModelDims,
    pub generation: GenerationConfig,
    pub weights: DeviceWeights,
    backend: Mutex<Box<dyn Backend + Send>>,
}

impl Model {
    /// Uploads `weights` to `backend`.
    pub fn new(
        mut backend: Box<dyn Backend + Send>,
        dims: ModelDims,
        generation: GenerationConfig,
        weights: &ModelWeights,
        dtype: WeightDtype,
    ) -> Result<Model> {
        let weights = upload::upload(backend.as_mut(), weights, dtype)?;
        Ok(Model { dims, generation, weights, backend: Mutex::new(backend) })
    }

    /// A model of `dims` whose weight buffers are allocated with their real sizes and chunking
    /// but never filled ([`upload::layout`]): sessions can be built on it to plan memory, or to
    /// check that a model size fits a device, without its weights. `untied_output`: the model
    /// has a logits projection of its own (aria-amt).
    pub fn layout_only(
        mut backend: Box<dyn Backend + Send>,
        dims: ModelDims,
        generation: GenerationConfig,
        format: crate::graph::BFormat,
        untied_output: bool,
    ) -> Result<Model> {
        let weights = upload::layout(backend.as_mut(), &dims, format, untied_output)?;
        Ok(Model { dims, generation, weights, backend: Mutex::new(backend) })
    }

    /// Exclusive use of the backend for the duration of the guard.
    pub fn backend(&self) -> MutexGuard<'_, Box<dyn Backend + Send>> {
        // A panic while holding the lock leaves buffers consistent (every call is atomic
        // from the device's view), so a poisoned lock is still usable.
        self.backend.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn describe_device(&self) -> String {
        self.backend().describe()
    }
}
