//! YAML configs: training, DDPM and experiment configs parse and validate to a config or an
//! error, never a panic (out-of-range values are the validators' job).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = serde_yaml::from_str::<dia_contrastive::TrainConfig>(text) {
        let _ = c.validate();
    }
    if let Ok(c) = serde_yaml::from_str::<dia_diffusion::DdpmConfig>(text) {
        let _ = c.validate();
    }
    if let Ok(c) = serde_yaml::from_str::<dia_pipeline::experiment::ExperimentConfig>(text) {
        let _ = c.check();
    }
});
