//! PyTorch zip/pickle files (the reference's checkpoints), read by `dia_io::read_pytorch`
//! through candle's pickle reader, which must execute nothing and fail cleanly.
#![no_main]

#[path = "common.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let p = common::file_with(data, "pth");
    let _ = dia_io::read_pytorch(&p, None);
    let _ = dia_io::read_pytorch(&p, Some("model"));
});
