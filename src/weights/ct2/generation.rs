//! The generation rules of a CT2 Whisper model, as `generation_config.json` of the same model on
//! the Hugging Face hub would give them.
//!
//! The special-token ids follow from the vocabulary size (see
//! [`GenerationConfig::fill_whisper_specials`]); the CT2 `config.json` adds what cannot be derived
//! (`suppress_ids`, `suppress_ids_begin`, `alignment_heads`) and, for multilingual models,
//! `tokenizer.json` names the language tokens.
use super::Ct2Sidecar;
use crate::config::{GenerationConfig, ModelDims};
use crate::{Error, Result};
use serde_json::Value;
use std::path::Path;

/// OpenAI's limit on the first timestamp (1.0 s), the same for every Whisper checkpoint.
const MAX_INITIAL_TIMESTAMP_INDEX: u32 = 50;
/// Token id of " " in Whisper's GPT-2 vocabulary; CT2's default for `suppress_ids_begin`.
const SPACE: u32 = 220;

pub(super) fn build(
    dims: &ModelDims,
    side: &Ct2Sidecar,
    model_bin: &Path,
) -> Result<(GenerationConfig, Vec<(usize, usize)>)> {
    let n_vocab = dims.n_vocab;
    let mut g = GenerationConfig { max_length: Some(dims.n_text_ctx), ..Default::default() };
    g.fill_whisper_specials(n_vocab);

    let config_path = model_bin.with_file_name("config.json");
    let config = match side.config_json {
        Some(text) => parse_object(&config_path, text)?,
        None => serde_json::Map::new(),
    };
    let err = |msg: String| Error::Config { path: config_path.clone(), msg };
    let ids = |key: &str| -> Result<Option<Vec<u32>>> {
        match config.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| {
                    x.as_u64()
                        .filter(|&n| (n as usize) < n_vocab)
                        .map(|n| n as u32)
                        .ok_or_else(|| err(format!("`{key}` holds {x}, not a token id below {n_vocab}")))
                })
                .collect::<Result<Vec<u32>>>()
                .map(Some),
            Some(x) => Err(err(format!("`{key}` must be a list, found {x}"))),
        }
    };
    g.suppress_tokens = ids("suppress_ids")?.unwrap_or_default();
    g.begin_suppress_tokens = match ids("suppress_ids_begin")? {
        Some(v) => v,
        None => g.eot.map(|eot| vec![SPACE, eot]).unwrap_or_default(),
    };
    let alignment_heads = match config.get("alignment_heads") {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(a)) => a
            .iter()
            .map(|p| match p.as_array().map(Vec::as_slice) {
                Some([l, h]) => match (l.as_u64(), h.as_u64()) {
                    (Some(l), Some(h)) if (l as usize) < dims.n_text_layer && (h as usize) < dims.n_text_head => {
                        Ok((l as usize, h as usize))
                    }
                    _ => Err(err(format!("alignment head {p} is not a [layer, head] of this model"))),
                },
                _ => Err(err(format!("alignment head {p} is not a [layer, head] pair"))),
            })
            .collect::<Result<_>>()?,
        Some(x) => return Err(err(format!("`alignment_heads` must be a list, found {x}"))),
    };

    if let (Some(sot), Some(transcribe), Some(translate), Some(no_ts)) =
        (g.sot, g.transcribe, g.translate, g.no_timestamps)
    {
        g.max_initial_timestamp_index = Some(MAX_INITIAL_TIMESTAMP_INDEX);
        if g.is_multilingual {
            // As in openai/whisper-* (multilingual): the language slot stays open, task transcribe.
            g.forced_decoder_ids = vec![(1, None), (2, Some(transcribe))];
            if let Some(text) = side.tokenizer_json {
                let path = model_bin.with_file_name("tokenizer.json");
                g.lang_to_id = languages(&path, text, sot + 1, translate)?;
            }
        } else {
            g.forced_decoder_ids = vec![(1, Some(no_ts))];
        }
    }
    Ok((g, alignment_heads))
}

fn parse_object(path: &Path, text: &str) -> Result<serde_json::Map<String, Value>> {
    let err = |msg: String| Error::Config { path: path.to_path_buf(), msg };
    match serde_json::from_str(text).map_err(|e| err(format!("not valid JSON: {e}")))? {
        Value::Object(m) => Ok(m),
        _ => Err(err("top level is not a JSON object".into())),
    }
}

/// `<|xx|>` -> id for the added tokens with ids in `[first, end)`, sorted by id.
fn languages(path: &Path, text: &str, first: u32, end: u32) -> Result<Vec<(String, u32)>> {
    let tokenizer = parse_object(path, text)?;
    let mut out = Vec::new();
    for t in tokenizer.get("added_tokens").and_then(Value::as_array).into_iter().flatten() {
        let id = t.get("id").and_then(Value::as_u64);
        let content = t.get("content").and_then(Value::as_str);
        if let (Some(id), Some(content)) = (id, content) {
            if (u64::from(first)..u64::from(end)).contains(&id) {
                out.push((content.to_string(), id as u32));
            }
        }
    }
    out.sort_by_key(|&(_, id)| id);
    Ok(out)
}
