//! Reading a model directory: config, generation rules, weights, tokenizer.
use crate::config::{GenerationConfig, ModelDims, ModelKind, Naming, Selection};
use crate::weights::safetensors::SafetensorsFile;
use crate::weights::ModelWeights;
use crate::{Error, Result};
use std::path::{Path, PathBuf};

/// A checkpoint read into host memory.
pub struct Checkpoint {
    pub dir: PathBuf,
    pub dims: ModelDims,
    pub naming: Naming,
    /// Front end, token meaning and decoding rules.
    pub kind: ModelKind,
    pub generation: GenerationConfig,
    pub weights: ModelWeights,
    /// `tokenizer.json` when the directory has one.
    pub tokenizer: Option<PathBuf>,
}

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::io(path, e))
}

impl Checkpoint {
    /// Reads `dir`: `config.json` (Hugging Face or seed-style), `model.safetensors`, and
    /// `generation_config.json` and `tokenizer.json` when present.
    pub fn load(dir: &Path) -> Result<Checkpoint> {
        if !dir.is_dir() {
            return Err(Error::io(dir, std::io::Error::new(std::io::ErrorKind::NotFound, "no such model directory")));
        }
        let config_path = dir.join("config.json");
        let config = read_text(&config_path)?;
        let st_path = dir.join("model.safetensors");
        let file = SafetensorsFile::open(&st_path)?;
        // aria-amt's configs leave the vocabulary to the tokenizer: the embedding says it.
        let vocab = ["decoder.token_embedding.weight", "model.decoder.embed_tokens.weight"]
            .iter()
            .find_map(|name| file.shape(name))
            .and_then(|shape| shape.first().copied());
        let (dims, naming) = ModelDims::from_json_with_vocab(&config_path, &config, vocab)?;
        let kind = ModelKind::from_json(&config_path, &config, &dims, naming)?;
        let gen_path = dir.join("generation_config.json");
        let mut generation = if kind == ModelKind::AriaAmt {
            aria_generation(&config_path, dims.n_vocab)?
        } else if gen_path.is_file() {
            GenerationConfig::from_json(&gen_path, &read_text(&gen_path)?, dims.n_vocab)?
        } else {
            let mut g = GenerationConfig::default();
            if naming == Naming::HuggingFace {
                g.fill_whisper_specials(dims.n_vocab);
            }
            g
        };
        if naming == Naming::HuggingFace && generation.suppress_tokens.is_empty() {
            // Older exports keep the lists in config.json.
            if let Ok(g) = GenerationConfig::from_json(&config_path, &read_text(&config_path)?, dims.n_vocab) {
                generation.suppress_tokens = g.suppress_tokens;
                if generation.begin_suppress_tokens.is_empty() {
                    generation.begin_suppress_tokens = g.begin_suppress_tokens;
                }
            }
        }
        let weights = ModelWeights::load(&file, &dims, naming)?;
        let tok = dir.join("tokenizer.json");
        Ok(Checkpoint {
            dir: dir.to_path_buf(),
            dims,
            naming,
            kind,
            generation,
            weights,
            tokenizer: tok.is_file().then_some(tok),
        })
    }
}

/// aria-amt's decoding: its own token selection over the note vocabulary, `<S>` to start and
/// `<E>` to end (it has no generation config file).
fn aria_generation(config: &Path, n_vocab: usize) -> Result<GenerationConfig> {
    let vocab = crate::amt::vocab::VOCAB_SIZE as usize;
    if n_vocab != vocab {
        return Err(Error::Config {
            path: config.to_path_buf(),
            msg: format!("an aria-amt model needs its {vocab}-token note vocabulary; the checkpoint has {n_vocab}"),
        });
    }
    Ok(GenerationConfig {
        selection: Selection::AriaAmt,
        sot: Some(crate::amt::vocab::BOS_ID),
        eot: Some(crate::amt::vocab::EOS_ID),
        ..Default::default()
    })
}
