//! Builds CTranslate2 `model.bin` files for tests: small Whisper models with chosen dims, storage
//! types, binary versions and aliases, written by an encoder independent of the crate's reader.
#![allow(dead_code)]
use half::f16;

/// How the weight matrices of a synthetic model are stored.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Store {
    F32,
    F16,
    Bf16,
    /// int8 weights with one f32 scale per output row (CT2's `int8_float32`).
    Int8,
    /// int16 weights with a single scale.
    Int16,
}

/// A stored value buffer with its CT2 dtype id.
#[derive(Clone, Debug)]
pub enum Raw {
    F32(Vec<f32>),
    I8(Vec<i8>),
    I16(Vec<i16>),
    I32(Vec<i32>),
    F16(Vec<f16>),
    Bf16(Vec<u16>),
}

impl Raw {
    pub fn id(&self) -> u8 {
        match self {
            Raw::F32(_) => 0,
            Raw::I8(_) => 1,
            Raw::I16(_) => 2,
            Raw::I32(_) => 3,
            Raw::F16(_) => 4,
            Raw::Bf16(_) => 5,
        }
    }
    pub fn item_size(&self) -> usize {
        match self {
            Raw::I8(_) => 1,
            Raw::I16(_) | Raw::F16(_) | Raw::Bf16(_) => 2,
            Raw::F32(_) | Raw::I32(_) => 4,
        }
    }
    pub fn len(&self) -> usize {
        self.bytes().len() / self.item_size()
    }
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Raw::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Raw::I8(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Raw::I16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Raw::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Raw::F16(v) => v.iter().flat_map(|x| x.to_bits().to_le_bytes()).collect(),
            Raw::Bf16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Var {
    pub name: String,
    pub dims: Vec<u32>,
    pub raw: Raw,
}

/// A `model.bin` under construction.
#[derive(Clone, Debug)]
pub struct Bin {
    pub version: u32,
    pub spec: String,
    pub revision: u32,
    pub vars: Vec<Var>,
    pub aliases: Vec<(String, String)>,
}

pub fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&((s.len() + 1) as u16).to_le_bytes());
    out.extend_from_slice(s);
    out.push(0);
}

impl Bin {
    pub fn new(version: u32) -> Bin {
        Bin { version, spec: "WhisperSpec".into(), revision: 3, vars: vec![], aliases: vec![] }
    }

    pub fn add(&mut self, name: &str, dims: &[u32], raw: Raw) {
        assert_eq!(dims.iter().product::<u32>() as usize, raw.len(), "{name}");
        self.vars.push(Var { name: name.into(), dims: dims.to_vec(), raw });
    }

    pub fn alias(&mut self, alias: &str, target: &str) {
        self.aliases.push((alias.into(), target.into()));
    }

    pub fn remove(&mut self, name: &str) -> Var {
        let i = self.vars.iter().position(|v| v.name == name).unwrap_or_else(|| panic!("no {name}"));
        self.vars.remove(i)
    }

    pub fn get(&self, name: &str) -> &Var {
        self.vars.iter().find(|v| v.name == name).unwrap_or_else(|| panic!("no {name}"))
    }

    pub fn get_mut(&mut self, name: &str) -> &mut Var {
        self.vars.iter_mut().find(|v| v.name == name).unwrap_or_else(|| panic!("no {name}"))
    }

    /// The file, variables sorted by name as CTranslate2 writes them.
    pub fn encode(&self) -> Vec<u8> {
        let mut vars = self.vars.clone();
        vars.sort_by(|a, b| a.name.cmp(&b.name));
        let mut out = Vec::new();
        out.extend_from_slice(&self.version.to_le_bytes());
        if self.version >= 2 {
            put_str(&mut out, self.spec.as_bytes());
            out.extend_from_slice(&self.revision.to_le_bytes());
        }
        out.extend_from_slice(&(vars.len() as u32).to_le_bytes());
        for v in &vars {
            put_str(&mut out, v.name.as_bytes());
            out.push(v.dims.len() as u8);
            for d in &v.dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            let bytes = v.raw.bytes();
            if self.version >= 4 {
                out.push(v.raw.id());
                out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            } else {
                out.push(v.raw.item_size() as u8);
                out.extend_from_slice(&(v.raw.len() as u32).to_le_bytes());
            }
            out.extend_from_slice(&bytes);
        }
        if self.version >= 3 {
            out.extend_from_slice(&(self.aliases.len() as u32).to_le_bytes());
            for (a, t) in &self.aliases {
                put_str(&mut out, a.as_bytes());
                put_str(&mut out, t.as_bytes());
            }
        }
        out
    }
}

/// Deterministic pseudo-random numbers (xorshift), so failures reproduce.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u32(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 32) as u32
    }
    /// Uniform in [-1, 1).
    pub fn f32(&mut self) -> f32 {
        (self.next_u32() >> 8) as f32 / (1u32 << 23) as f32 - 1.0
    }
    pub fn below(&mut self, n: u32) -> u32 {
        self.next_u32() % n
    }
}

/// The dims of a synthetic model.
#[derive(Clone, Copy, Debug)]
pub struct Dims {
    pub d: u32,
    pub mels: u32,
    pub mlp: u32,
    pub audio_ctx: u32,
    pub text_ctx: u32,
    pub vocab: u32,
    pub enc_layers: u32,
    pub dec_layers: u32,
    /// Written as `encoder/num_heads` and `decoder/num_heads` when set.
    pub heads: Option<u16>,
}

pub const SMALL: Dims =
    Dims { d: 8, mels: 4, mlp: 16, audio_ctx: 6, text_ctx: 5, vocab: 11, enc_layers: 1, dec_layers: 1, heads: Some(2) };

fn stored(rng: &mut Rng, dims: &[u32], store: Store) -> Raw {
    let n = dims.iter().product::<u32>() as usize;
    match store {
        Store::F32 => Raw::F32((0..n).map(|_| rng.f32()).collect()),
        Store::F16 => Raw::F16((0..n).map(|_| f16::from_f32(rng.f32())).collect()),
        Store::Bf16 => Raw::Bf16((0..n).map(|_| (rng.f32().to_bits() >> 16) as u16).collect()),
        Store::Int8 => Raw::I8((0..n).map(|_| (rng.below(255) as i32 - 127) as i8).collect()),
        Store::Int16 => Raw::I16((0..n).map(|_| (rng.below(65535) as i32 - 32767) as i16).collect()),
    }
}

/// Fills a [`Bin`] with the variables of a Whisper model.
struct Gen {
    bin: Bin,
    rng: Rng,
    store: Store,
    /// Biases, norms and position tables: CTranslate2 quantises only weight matrices.
    vec_store: Store,
}

impl Gen {
    fn weight(&mut self, name: &str, shape: &[u32]) {
        let raw = stored(&mut self.rng, shape, self.store);
        self.bin.add(name, shape, raw);
        match self.store {
            Store::Int8 => {
                let scale = (0..shape[0]).map(|_| 20.0 + 100.0 * self.rng.f32().abs()).collect();
                self.bin.add(&format!("{name}_scale"), &[shape[0]], Raw::F32(scale));
            }
            Store::Int16 => {
                let scale = 1000.0 + self.rng.f32();
                self.bin.add(&format!("{name}_scale"), &[], Raw::F32(vec![scale]));
            }
            _ => {}
        }
    }
    fn plain(&mut self, name: &str, shape: &[u32]) {
        let raw = stored(&mut self.rng, shape, self.vec_store);
        self.bin.add(name, shape, raw);
    }
    fn linear(&mut self, name: &str, o: u32, i: u32) {
        self.weight(&format!("{name}/weight"), &[o, i]);
        self.plain(&format!("{name}/bias"), &[o]);
    }
    fn norm(&mut self, name: &str, d: u32) {
        self.plain(&format!("{name}/gamma"), &[d]);
        self.plain(&format!("{name}/beta"), &[d]);
    }
}

/// A complete synthetic Whisper model with weight matrices stored as `store`.
pub fn whisper(version: u32, dims: Dims, store: Store, seed: u64) -> Bin {
    let vec_store = match store {
        Store::Int8 | Store::Int16 => Store::F32,
        s => s,
    };
    let mut g = Gen { bin: Bin::new(version), rng: Rng(seed | 1), store, vec_store };
    let Dims { d, mels, mlp, .. } = dims;
    g.weight("encoder/conv1/weight", &[d, mels, 3]);
    g.plain("encoder/conv1/bias", &[d]);
    g.weight("encoder/conv2/weight", &[d, d, 3]);
    g.plain("encoder/conv2/bias", &[d]);
    g.plain("encoder/position_encodings/encodings", &[dims.audio_ctx, d]);
    for i in 0..dims.enc_layers {
        let s = format!("encoder/layer_{i}");
        g.linear(&format!("{s}/self_attention/linear_0"), 3 * d, d);
        g.linear(&format!("{s}/self_attention/linear_1"), d, d);
        g.norm(&format!("{s}/self_attention/layer_norm"), d);
        g.linear(&format!("{s}/ffn/linear_0"), mlp, d);
        g.linear(&format!("{s}/ffn/linear_1"), d, mlp);
        g.norm(&format!("{s}/ffn/layer_norm"), d);
    }
    g.norm("encoder/layer_norm", d);

    g.weight("decoder/embeddings/weight", &[dims.vocab, d]);
    g.plain("decoder/position_encodings/encodings", &[dims.text_ctx, d]);
    for i in 0..dims.dec_layers {
        let s = format!("decoder/layer_{i}");
        g.linear(&format!("{s}/self_attention/linear_0"), 3 * d, d);
        g.linear(&format!("{s}/self_attention/linear_1"), d, d);
        g.norm(&format!("{s}/self_attention/layer_norm"), d);
        g.linear(&format!("{s}/attention/linear_0"), d, d);
        g.linear(&format!("{s}/attention/linear_1"), 2 * d, d);
        g.linear(&format!("{s}/attention/linear_2"), d, d);
        g.norm(&format!("{s}/attention/layer_norm"), d);
        g.linear(&format!("{s}/ffn/linear_0"), mlp, d);
        g.linear(&format!("{s}/ffn/linear_1"), d, mlp);
        g.norm(&format!("{s}/ffn/layer_norm"), d);
    }
    g.norm("decoder/layer_norm", d);
    let mut bin = g.bin;
    if let Some(h) = dims.heads {
        bin.add("encoder/num_heads", &[], Raw::I16(vec![h as i16]));
        bin.add("decoder/num_heads", &[], Raw::I16(vec![h as i16]));
    }
    // Flags CTranslate2 stores for Whisper; the converter ignores them.
    bin.add("decoder/activation", &[], Raw::I8(vec![3]));
    bin.add("decoder/alignment_heads", &[], Raw::I16(vec![1]));
    if version >= 3 {
        bin.alias("decoder/projection/weight", "decoder/embeddings/weight");
        if matches!(store, Store::Int8 | Store::Int16) {
            bin.alias("decoder/projection/weight_scale", "decoder/embeddings/weight_scale");
        }
    }
    bin
}
