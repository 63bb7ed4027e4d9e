//! The safetensors files dia reads (checkpoints, resume files, statistics): the metadata
//! reader and the checksummed loader, and the typed metadata parsers on top.
#![no_main]

#[path = "common.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let p = common::file_with(data, "safetensors");
    let _ = dia_io::read_metadata(&p);
    if dia_io::load_safetensors(&p, &candle_core::Device::Cpu).is_ok() {
        // The typed readers of our own files on the same bytes.
        let _ = dia_eval_statistics(&p);
        let _ = dia_diffusion::checkpoint::load_any(&p, &candle_core::Device::Cpu);
        let _ = dia_pipeline::load_encoder(&p, &candle_core::Device::Cpu);
    }
});

fn dia_eval_statistics(p: &std::path::Path) -> Option<()> {
    let _ = dia_pipeline::Scorer::load(p, &candle_core::Device::Cpu).ok()?;
    Some(())
}
