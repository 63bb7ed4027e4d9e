//! IDX files (MNIST / Fashion-MNIST), raw or gzip: `dia_data::read_idx` must return an array
//! whose size matches its header, or an error — never panic, never allocate what the header
//! claims before the data is there.
#![no_main]

#[path = "common.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let ext = if data.starts_with(&[0x1f, 0x8b]) { "gz" } else { "idx" };
    let p = common::file_with(data, ext);
    if let Ok(a) = dia_data::read_idx(&p) {
        assert_eq!(a.dims.iter().product::<usize>(), a.data.len());
    }
});
