//! The Hugging Face hub: the OpenAI checkpoints are already in the layout we use, so fetching is
//! downloading their files.
use super::cache::{check_model_dir, Staging};
use super::http::Http;
use super::{HubOptions, KnownModel};
use crate::Result;
use std::path::Path;

/// Files in download order: small ones first, so an unreachable hub fails before anything large.
const FILES: [(&str, bool); 5] = [
    ("config.json", true),
    ("generation_config.json", true),
    ("tokenizer.json", true),
    ("preprocessor_config.json", false),
    ("model.safetensors", true),
];

pub(super) fn fetch(http: &Http, endpoint: &str, model: &KnownModel, root: &Path, opts: &HubOptions) -> Result<()> {
    let staging = Staging::new(root, model.name)?;
    for (file, required) in FILES {
        let url = format!("{endpoint}/{}/resolve/main/{file}", model.hf_repo);
        if let Err(e) = http.download(&url, &staging.path().join(file), None, opts) {
            if required {
                return Err(e);
            }
        }
    }
    check_model_dir(staging.path())?;
    staging.commit(&root.join(model.name))
}
