//! CT2 Whisper variables -> Hugging Face Whisper tensors.
//!
//! Works in two passes. The plan pass resolves aliases, infers the dims from shapes and checks
//! every source shape, without touching values. The execute pass then converts each source once;
//! a variable's buffer is moved (not copied) into its last use, so converting a 145 MB model
//! needs little more than 145 MB.
use super::{generation, Ct2Data, Ct2File, Ct2Model, Ct2Sidecar, Ct2Variable};
use crate::config::ModelDims;
use crate::tensor::HostTensor;
use crate::{Error, Result};
use std::collections::{HashMap, HashSet};

pub(super) fn convert(file: Ct2File, side: &Ct2Sidecar) -> Result<Ct2Model> {
    let origin = file.origin.clone();
    let file_err = |msg: String| Error::ModelFile { path: origin.clone(), msg };
    if let Some(spec) = &file.spec {
        if spec != "WhisperSpec" {
            return Err(file_err(format!("not a Whisper model: spec `{spec}` (expected WhisperSpec)")));
        }
    }
    let (binary_version, spec_revision) = (file.binary_version, file.spec_revision);
    let mut vars = Vars::new(file)?;
    let dims = infer_dims(&vars)?;
    dims.validate().map_err(|m| file_err(format!("inferred dims {dims:?}: {m}")))?;
    check_projection(&vars, &dims)?;

    let plan = plan(&vars, &dims)?;
    let mut uses: HashMap<String, usize> = HashMap::new();
    for step in &plan {
        *uses.entry(step.source.clone()).or_default() += 1;
    }
    let mut tensors = Vec::with_capacity(plan.len());
    for step in plan {
        let left = uses.get_mut(&step.source).map(|n| {
            *n -= 1;
            *n
        });
        let tensor = vars.float(&step.source, left == Some(0))?;
        match step.out {
            Out::Whole(dst) => tensors.push((dst, tensor)),
            Out::Rows(parts) => {
                let pieces = split_rows(tensor, parts.len());
                for (dst, piece) in parts.into_iter().zip(pieces) {
                    // A dropped piece is the key bias: softmax is unchanged when every score of a
                    // query shifts by the same q.b_k, so HF's bias-free k_proj loses nothing.
                    if let Some(dst) = dst {
                        tensors.push((dst, piece));
                    }
                }
            }
        }
    }
    let (generation, alignment_heads) = generation::build(&dims, side, &origin)?;
    Ok(Ct2Model { tensors, dims, generation, alignment_heads, binary_version, spec_revision })
}

/// Variables by name, with aliases resolved and buffers handed out once.
struct Vars {
    origin: std::path::PathBuf,
    index: HashMap<String, usize>,
    slots: Vec<Option<Ct2Variable>>,
    /// Shapes, kept after a buffer has been moved out.
    dims: Vec<Vec<usize>>,
    aliases: HashMap<String, String>,
}

impl Vars {
    fn new(file: Ct2File) -> Result<Vars> {
        let index = file.variables.iter().enumerate().map(|(i, v)| (v.name.clone(), i)).collect();
        let dims = file.variables.iter().map(|v| v.dims.clone()).collect();
        let vars = Vars {
            origin: file.origin,
            index,
            slots: file.variables.into_iter().map(Some).collect(),
            dims,
            aliases: file.aliases.into_iter().collect(),
        };
        // Every alias chain must end; an unused cycle is still a broken file.
        for alias in vars.aliases.keys() {
            vars.resolve(alias)?;
        }
        Ok(vars)
    }

    /// The stored variable `name` stands for: itself, or the end of its alias chain.
    fn resolve(&self, name: &str) -> Result<Option<String>> {
        let mut name = name.to_string();
        let mut chain = vec![name.clone()];
        let mut seen = HashSet::new();
        while !self.index.contains_key(&name) {
            let Some(next) = self.aliases.get(&name) else {
                return Ok(None);
            };
            if !seen.insert(name.clone()) {
                return Err(Error::ModelFile {
                    path: self.origin.clone(),
                    msg: format!("alias cycle: {}", chain.join(" -> ")),
                });
            }
            name = next.clone();
            chain.push(name.clone());
        }
        Ok(Some(name))
    }

    fn need(&self, name: &str) -> Result<String> {
        self.resolve(name)?.ok_or_else(|| self.missing(name))
    }

    fn missing(&self, name: &str) -> Error {
        Error::ModelFile { path: self.origin.clone(), msg: format!("missing variable `{name}`") }
    }

    fn shape(&self, stored: &str) -> &[usize] {
        &self.dims[self.index[stored]]
    }

    /// The variable's values, borrowed (None once moved out).
    fn get(&self, stored: &str) -> Option<&Ct2Variable> {
        self.slots[self.index[stored]].as_ref()
    }

    /// A float tensor from stored variable `stored`, moving its buffer out when `last` use.
    fn float(&mut self, stored: &str, last: bool) -> Result<HostTensor> {
        let scale = match &self.slots[self.index[stored]] {
            Some(Ct2Variable { data: Ct2Data::I8(_) | Ct2Data::I16(_), .. }) => Some(self.scale(stored)?),
            _ => None,
        };
        let slot = &mut self.slots[self.index[stored]];
        let var = if last { slot.take() } else { slot.clone() };
        let var = var.ok_or_else(|| Error::tensor(stored, "used after its buffer was released"))?;
        to_host(var, scale)
    }

    /// A copy of the values as f32, dequantised (for comparisons).
    fn float_copy(&self, stored: &str) -> Result<Vec<f32>> {
        let var = self.get(stored).ok_or_else(|| Error::tensor(stored, "used after its buffer was released"))?;
        let scale = match var.data {
            Ct2Data::I8(_) | Ct2Data::I16(_) => Some(self.scale(stored)?),
            _ => None,
        };
        Ok(to_host(var.clone(), scale)?.to_f32())
    }

    /// The dequantisation scale of an int8/int16 weight: `<name>_scale`, per output row or one for
    /// the whole tensor.
    fn scale(&self, stored: &str) -> Result<Vec<f32>> {
        let scale_name = format!("{stored}_scale");
        let scale = self
            .resolve(&scale_name)?
            .and_then(|s| self.get(&s))
            .ok_or_else(|| Error::tensor(stored, format!("integer weight without `{scale_name}`")))?;
        let rows = self.shape(stored).first().copied().unwrap_or(1);
        let values = match &scale.data {
            Ct2Data::F32(_) | Ct2Data::F16(_) | Ct2Data::Bf16(_) => scale.data.to_f32(),
            other => return Err(Error::tensor(&scale_name, format!("scale has non-float type {}", other.type_name()))),
        };
        if values.len() != 1 && values.len() != rows {
            return Err(Error::tensor(
                &scale_name,
                format!("{} scales for a weight of {rows} rows (need 1 or {rows})", values.len()),
            ));
        }
        Ok(values)
    }

    /// A rank-0 (or single-element) integer such as `encoder/num_heads`.
    fn scalar(&self, name: &str) -> Result<Option<usize>> {
        let Some(stored) = self.resolve(name)? else {
            return Ok(None);
        };
        let var = self.get(&stored).ok_or_else(|| Error::tensor(name, "scalar unavailable"))?;
        let values = var.data.to_f32();
        match values.as_slice() {
            [v] if *v >= 1.0 && v.fract() == 0.0 && *v <= 65536.0 => Ok(Some(*v as usize)),
            _ => Err(Error::tensor(name, format!("expected one positive integer, found {values:?}"))),
        }
    }
}

/// Converts stored values to a float host tensor: f16 and f32 as they are, bf16 widened, integer
/// weights divided by their scale (`q / scale`, in f32 as CTranslate2 quantised them).
fn to_host(var: Ct2Variable, scale: Option<Vec<f32>>) -> Result<HostTensor> {
    let shape = var.dims;
    let values = match var.data {
        Ct2Data::F16(v) => return Ok(HostTensor::f16(shape, v)),
        Ct2Data::F32(v) => v,
        Ct2Data::Bf16(v) => v.into_iter().map(super::bf16_to_f32).collect(),
        Ct2Data::I8(q) => dequantise(q.into_iter().map(f32::from), &shape, scale),
        Ct2Data::I16(q) => dequantise(q.into_iter().map(f32::from), &shape, scale),
        Ct2Data::I32(_) => return Err(Error::tensor(&var.name, "int32 values where a float tensor is needed")),
    };
    Ok(HostTensor::f32(shape, values))
}

fn dequantise(q: impl ExactSizeIterator<Item = f32>, shape: &[usize], scale: Option<Vec<f32>>) -> Vec<f32> {
    let scale = scale.unwrap_or_else(|| vec![1.0]);
    let rows = shape.first().copied().unwrap_or(1).max(1);
    let row_len = (q.len() / rows).max(1);
    q.enumerate().map(|(i, x)| x / if scale.len() == 1 { scale[0] } else { scale[i / row_len] }).collect()
}

/// Splits a tensor into `n` equal blocks of rows (the caller's plan checked divisibility).
fn split_rows(t: HostTensor, n: usize) -> Vec<HostTensor> {
    let mut shape = t.shape.clone();
    shape[0] /= n;
    let block = t.len() / n;
    match t.data {
        crate::tensor::TensorData::F32(v) => {
            v.chunks_exact(block).map(|c| HostTensor::f32(shape.clone(), c.to_vec())).collect()
        }
        crate::tensor::TensorData::F16(v) => {
            v.chunks_exact(block).map(|c| HostTensor::f16(shape.clone(), c.to_vec())).collect()
        }
    }
}

fn shape_of(vars: &Vars, name: &str, rank: usize) -> Result<Vec<usize>> {
    let stored = vars.need(name)?;
    let shape = vars.shape(&stored).to_vec();
    if shape.len() != rank || shape.contains(&0) {
        return Err(Error::tensor(name, format!("shape {shape:?}: expected {rank} non-zero dims")));
    }
    Ok(shape)
}

fn count_layers(vars: &Vars, side: &str) -> Result<usize> {
    let mut n = 0;
    while vars.resolve(&format!("{side}/layer_{n}/self_attention/linear_0/weight"))?.is_some() {
        n += 1;
    }
    if n == 0 {
        return Err(vars.missing(&format!("{side}/layer_0/self_attention/linear_0/weight")));
    }
    Ok(n)
}

fn infer_dims(vars: &Vars) -> Result<ModelDims> {
    let emb = shape_of(vars, "decoder/embeddings/weight", 2)?;
    let conv1 = shape_of(vars, "encoder/conv1/weight", 3)?;
    let enc_pos = shape_of(vars, "encoder/position_encodings/encodings", 2)?;
    let dec_pos = shape_of(vars, "decoder/position_encodings/encodings", 2)?;
    let enc_mlp = shape_of(vars, "encoder/layer_0/ffn/linear_0/weight", 2)?;
    let dec_mlp = shape_of(vars, "decoder/layer_0/ffn/linear_0/weight", 2)?;
    let d = conv1[0];
    let n_audio_layer = count_layers(vars, "encoder")?;
    let n_text_layer = count_layers(vars, "decoder")?;
    let heads = |name: &str, width: usize| -> Result<usize> {
        // CT2 files record the head count; older ones leave the Whisper default of 64-wide heads.
        Ok(vars.scalar(name)?.unwrap_or((width / 64).max(1)))
    };
    Ok(ModelDims {
        n_mels: conv1[1],
        n_audio_ctx: enc_pos[0],
        n_audio_state: d,
        n_audio_head: heads("encoder/num_heads", d)?,
        n_audio_layer,
        n_audio_mlp: enc_mlp[0],
        n_text_ctx: dec_pos[0],
        n_text_state: emb[1],
        n_text_head: heads("decoder/num_heads", emb[1])?,
        n_text_layer,
        n_text_mlp: dec_mlp[0],
        n_vocab: emb[0],
    })
}

/// HF Whisper ties the logits projection to the token embedding; anything else cannot be
/// expressed in its layout.
fn check_projection(vars: &Vars, dims: &ModelDims) -> Result<()> {
    let emb = vars.need("decoder/embeddings/weight")?;
    if let Some(proj) = vars.resolve("decoder/projection/weight")? {
        if proj != emb {
            let same_shape = vars.shape(&proj) == vars.shape(&emb);
            let same = same_shape && vars.float_copy(&proj)? == vars.float_copy(&emb)?;
            if !same {
                return Err(Error::tensor(
                    "decoder/projection/weight",
                    "untied output projection (differs from decoder/embeddings/weight) is unsupported",
                ));
            }
        }
    }
    if let Some(bias) = vars.resolve("decoder/projection/bias")? {
        let v = vars.get(&bias).ok_or_else(|| Error::tensor(&bias, "unavailable"))?;
        if v.dims != [dims.n_vocab] && !v.dims.is_empty() {
            return Err(Error::tensor("decoder/projection/bias", format!("shape {:?}", v.dims)));
        }
        if v.data.to_f32().iter().any(|&x| x != 0.0) {
            return Err(Error::tensor("decoder/projection/bias", "a non-zero output bias is unsupported"));
        }
    }
    Ok(())
}

/// Where a source variable's values go.
enum Out {
    Whole(String),
    /// Equal blocks of rows, in order; `None` drops a block.
    Rows(Vec<Option<String>>),
}

struct Step {
    /// The stored variable (after alias resolution).
    source: String,
    out: Out,
}

struct Planner<'a> {
    vars: &'a Vars,
    steps: Vec<Step>,
}

impl Planner<'_> {
    /// Maps `src` (shape `shape`) to the output(s) `out`.
    fn map(&mut self, src: &str, shape: &[usize], out: Out) -> Result<()> {
        let stored = self.vars.need(src)?;
        let found = self.vars.shape(&stored);
        if found != shape {
            return Err(Error::tensor(src, format!("shape {found:?}, expected {shape:?}")));
        }
        self.steps.push(Step { source: stored, out });
        Ok(())
    }

    fn whole(&mut self, dst: &str, src: &str, shape: &[usize]) -> Result<()> {
        self.map(src, shape, Out::Whole(dst.to_string()))
    }

    fn layer_norm(&mut self, dst: &str, src: &str, d: usize) -> Result<()> {
        self.whole(&format!("{dst}.weight"), &format!("{src}/gamma"), &[d])?;
        self.whole(&format!("{dst}.bias"), &format!("{src}/beta"), &[d])
    }

    fn linear(&mut self, dst: &str, src: &str, out: usize, inp: usize) -> Result<()> {
        self.whole(&format!("{dst}.weight"), &format!("{src}/weight"), &[out, inp])?;
        self.whole(&format!("{dst}.bias"), &format!("{src}/bias"), &[out])
    }

    /// A fused projection stored as `n` blocks of `d` rows; `names` are the HF projections, and
    /// `bias[i]` says whether projection i keeps its bias.
    fn fused(&mut self, dst: &str, src: &str, d: usize, names: &[&str], bias: &[bool]) -> Result<()> {
        let n = names.len();
        let weights = names.iter().map(|p| Some(format!("{dst}.{p}.weight"))).collect();
        self.map(&format!("{src}/weight"), &[n * d, d], Out::Rows(weights))?;
        let biases = names.iter().zip(bias).map(|(p, &keep)| keep.then(|| format!("{dst}.{p}.bias"))).collect();
        self.map(&format!("{src}/bias"), &[n * d], Out::Rows(biases))
    }

    fn self_attention(&mut self, dst: &str, src: &str, d: usize) -> Result<()> {
        // linear_0 = [q; k; v] by output rows; HF's k_proj has no bias.
        self.fused(dst, &format!("{src}/linear_0"), d, &["q_proj", "k_proj", "v_proj"], &[true, false, true])?;
        self.linear(&format!("{dst}.out_proj"), &format!("{src}/linear_1"), d, d)
    }

    fn cross_attention(&mut self, dst: &str, src: &str, d: usize) -> Result<()> {
        // linear_0 = q on decoder states; linear_1 = [k; v] on the encoder output.
        self.linear(&format!("{dst}.q_proj"), &format!("{src}/linear_0"), d, d)?;
        self.fused(dst, &format!("{src}/linear_1"), d, &["k_proj", "v_proj"], &[false, true])?;
        self.linear(&format!("{dst}.out_proj"), &format!("{src}/linear_2"), d, d)
    }

    fn ffn(&mut self, dst: &str, src: &str, d: usize, mlp: usize) -> Result<()> {
        self.linear(&format!("{dst}.fc1"), &format!("{src}/linear_0"), mlp, d)?;
        self.linear(&format!("{dst}.fc2"), &format!("{src}/linear_1"), d, mlp)?;
        self.layer_norm(&format!("{dst}.final_layer_norm"), &format!("{src}/layer_norm"), d)
    }
}

fn plan(vars: &Vars, m: &ModelDims) -> Result<Vec<Step>> {
    let mut p = Planner { vars, steps: Vec::new() };
    let d = m.n_audio_state;
    let e = "model.encoder";
    p.whole(&format!("{e}.conv1.weight"), "encoder/conv1/weight", &[d, m.n_mels, 3])?;
    p.whole(&format!("{e}.conv1.bias"), "encoder/conv1/bias", &[d])?;
    p.whole(&format!("{e}.conv2.weight"), "encoder/conv2/weight", &[d, d, 3])?;
    p.whole(&format!("{e}.conv2.bias"), "encoder/conv2/bias", &[d])?;
    p.whole(&format!("{e}.embed_positions.weight"), "encoder/position_encodings/encodings", &[m.n_audio_ctx, d])?;
    for i in 0..m.n_audio_layer {
        let (dst, src) = (format!("{e}.layers.{i}"), format!("encoder/layer_{i}"));
        p.self_attention(&format!("{dst}.self_attn"), &format!("{src}/self_attention"), d)?;
        p.layer_norm(&format!("{dst}.self_attn_layer_norm"), &format!("{src}/self_attention/layer_norm"), d)?;
        p.ffn(&dst, &format!("{src}/ffn"), d, m.n_audio_mlp)?;
    }
    p.layer_norm(&format!("{e}.layer_norm"), "encoder/layer_norm", d)?;

    let dd = "model.decoder";
    let d = m.n_text_state;
    p.whole(&format!("{dd}.embed_tokens.weight"), "decoder/embeddings/weight", &[m.n_vocab, d])?;
    p.whole(&format!("{dd}.embed_positions.weight"), "decoder/position_encodings/encodings", &[m.n_text_ctx, d])?;
    for i in 0..m.n_text_layer {
        let (dst, src) = (format!("{dd}.layers.{i}"), format!("decoder/layer_{i}"));
        p.self_attention(&format!("{dst}.self_attn"), &format!("{src}/self_attention"), d)?;
        p.layer_norm(&format!("{dst}.self_attn_layer_norm"), &format!("{src}/self_attention/layer_norm"), d)?;
        p.cross_attention(&format!("{dst}.encoder_attn"), &format!("{src}/attention"), d)?;
        p.layer_norm(&format!("{dst}.encoder_attn_layer_norm"), &format!("{src}/attention/layer_norm"), d)?;
        p.ffn(&dst, &format!("{src}/ffn"), d, m.n_text_mlp)?;
    }
    p.layer_norm(&format!("{dd}.layer_norm"), "decoder/layer_norm", d)?;
    Ok(p.steps)
}
