//! `.npy` arrays (the parser of `dia_data::npy`) and `.npz` archives (`read_npz_split`):
//! sizes are checked against the bytes before allocation; errors, never panics.
#![no_main]

#[path = "common.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("fuzz.npy");
    if let Ok(a) = dia_data::npy::parse(data, path) {
        let _ = a.to_u8();
        let _ = a.to_i64();
        if let Ok(v) = a.to_f32() {
            assert_eq!(v.len(), a.len());
        }
    }
    let p = common::file_with(data, "npz");
    for split in [dia_data::Split::Train, dia_data::Split::Test] {
        let _ = dia_data::read_npz_split(&p, split, None, None);
    }
});
