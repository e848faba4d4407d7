//! The library in a few lines: the default model (tiny.en, fetched on first use), one file,
//! its segments as they are decoded. The `whisper-wgpu` command (cli/) does the rest: formats,
//! batches of files, progress, exit codes.
//!
//! ```text
//! cargo run --release --example transcribe -- examples/jfk.wav
//! ```
use whisper_wgpu::audio::AudioStream;
use whisper_wgpu::transcribe::{Event, TranscribeOptions};
use whisper_wgpu::{LoadOptions, LoadedModel};

fn main() -> whisper_wgpu::Result<()> {
    let path = std::env::args().nth(1).unwrap_or_else(|| "examples/jfk.wav".into());
    let model = LoadedModel::load("", &LoadOptions::default(), &Default::default())?;
    let stream = AudioStream::open(path.as_ref())?;
    model.transcribe_source(stream, &TranscribeOptions::default(), &mut |e| {
        if let Event::Segment(s) = e {
            println!("[{:6.2} --> {:6.2}] {}", s.start, s.end, s.text.trim());
        }
    })?;
    Ok(())
}
