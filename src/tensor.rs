//! Host-side tensors: what the loaders produce and the backends upload.
use half::f16;

/// Element type of a host tensor as stored in a model file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    F32,
    F16,
}

/// The values of a host tensor, kept in their file format (f16 stays f16, bit for bit).
#[derive(Clone, Debug, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    F16(Vec<f16>),
}

/// A dense row-major tensor in host memory.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: TensorData,
}

impl HostTensor {
    pub fn f32(shape: Vec<usize>, values: Vec<f32>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), values.len());
        HostTensor { shape, data: TensorData::F32(values) }
    }
    pub fn f16(shape: Vec<usize>, values: Vec<f16>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), values.len());
        HostTensor { shape, data: TensorData::F16(values) }
    }
    pub fn dtype(&self) -> DType {
        match self.data {
            TensorData::F32(_) => DType::F32,
            TensorData::F16(_) => DType::F16,
        }
    }
    pub fn len(&self) -> usize {
        match &self.data {
            TensorData::F32(v) => v.len(),
            TensorData::F16(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The values widened to f32 (a copy for f16 tensors).
    pub fn to_f32(&self) -> Vec<f32> {
        match &self.data {
            TensorData::F32(v) => v.clone(),
            TensorData::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
        }
    }
    /// The same values narrowed to f16 (round to nearest even).
    pub fn to_f16(&self) -> Vec<f16> {
        match &self.data {
            TensorData::F32(v) => v.iter().map(|&x| f16::from_f32(x)).collect(),
            TensorData::F16(v) => v.clone(),
        }
    }
    /// Converts the storage type, keeping the shape.
    pub fn cast(&self, dtype: DType) -> HostTensor {
        match dtype {
            DType::F32 => HostTensor::f32(self.shape.clone(), self.to_f32()),
            DType::F16 => HostTensor::f16(self.shape.clone(), self.to_f16()),
        }
    }
    /// True when any value is NaN or infinite.
    pub fn has_non_finite(&self) -> bool {
        match &self.data {
            TensorData::F32(v) => v.iter().any(|x| !x.is_finite()),
            TensorData::F16(v) => v.iter().any(|x| !x.is_finite()),
        }
    }
}
