//! `cargo xtask convert`: reference-layout PyTorch fixtures become safetensors that the `dia`
//! loaders read; bad files are refused with a message naming the problem; `hf://` inputs come
//! through a local server that answers like the Hub's file endpoint.

mod server;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use candle_core::Device;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn xtask(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn encoder_fixture(name: &str) -> PathBuf {
    root().join("crates/dia-encoder/tests/fixtures").join(name)
}

fn ddpm_fixture() -> PathBuf {
    root().join("crates/dia-diffusion/tests/fixtures/ddpm_w8.pt")
}

#[test]
fn encoders_and_ddpms_convert_to_loadable_safetensors() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["resnet18_w4.pth", "resnet18_imagenet_w4.pth"] {
        let out = dir.path().join(f.replace(".pth", ".safetensors"));
        let msg = ok(&xtask(
            &[
                "convert",
                "encoder",
                encoder_fixture(f).to_str().unwrap(),
                out.to_str().unwrap(),
            ],
            &[],
        ));
        assert!(msg.contains("converted"), "{msg}");
        let (model, meta) = dia_encoder::load_checkpoint(&out, &Device::Cpu).unwrap();
        assert_eq!(model.config().width, 4);
        assert!(meta["dia.converted_from"].ends_with(f));
    }
    let out = dir.path().join("ddpm.safetensors");
    let msg = ok(&xtask(
        &[
            "convert",
            "ddpm",
            ddpm_fixture().to_str().unwrap(),
            out.to_str().unwrap(),
        ],
        &[],
    ));
    assert!(msg.contains("UNet(dim=8"), "{msg}");
    let (ddpm, meta) = dia_diffusion::checkpoint::load_checkpoint(&out, &Device::Cpu).unwrap();
    assert_eq!((meta.unet.dim, meta.image_size), (8, 32));
    // The converted DDPM predicts what the .pt does.
    let (orig, _) =
        dia_diffusion::checkpoint::load_trainer_checkpoint(&ddpm_fixture(), 32, &Device::Cpu)
            .unwrap();
    let x = candle_core::Tensor::full(0.4f32, (1, 3, 32, 32), &Device::Cpu).unwrap();
    let a = ddpm
        .x_start(&x, 50)
        .unwrap()
        .1
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let b = orig
        .x_start(&x, 50)
        .unwrap()
        .1
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(a, b);
}

/// Runs `xtask convert KIND INPUT OUT`, which must fail, and returns its stderr.
fn refused(kind: &str, input: &Path, out: &Path) -> String {
    let r = xtask(
        &[
            "convert",
            kind,
            input.to_str().unwrap(),
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert!(
        !r.status.success(),
        "{kind} {} was accepted",
        input.display()
    );
    String::from_utf8_lossy(&r.stderr).into_owned()
}

#[test]
fn bad_checkpoints_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.safetensors");
    // Missing tensors are named.
    let err = refused(
        "encoder",
        &encoder_fixture("data_parallel_prefix.pth"),
        &out,
    );
    assert!(err.contains("missing"), "{err}");
    // A truncated zip.
    let bytes = std::fs::read(encoder_fixture("resnet18_w4.pth")).unwrap();
    let truncated = dir.path().join("truncated.pth");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let err = refused("encoder", &truncated, &out);
    assert!(err.contains("truncated.pth"), "{err}");
    // A legacy (non-zip) pickle: the message says how to re-save it.
    let legacy = dir.path().join("legacy.pt");
    std::fs::write(&legacy, b"\x80\x02\x8a\x0alz\xfc\x9cF\xf9 j\xa8P\x19.").unwrap();
    for kind in ["encoder", "ddpm"] {
        let err = refused(kind, &legacy, &out);
        assert!(err.contains("torch.save"), "{kind}: {err}");
    }
    // A DDPM file given as an encoder.
    refused("encoder", &ddpm_fixture(), &out);
    assert!(!out.exists(), "nothing is written on failure");
}

#[test]
fn hf_references_download_through_the_hub_endpoint() {
    let bytes = std::fs::read(ddpm_fixture()).unwrap();
    let srv = server::start(server::Routes {
        files: HashMap::from([(
            "/someone/dia-ddpm/resolve/main/model-5.pt".to_string(),
            bytes,
        )]),
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("hub.safetensors");
    let home = dir.path().join("hf-home");
    let env = [
        ("HF_ENDPOINT", srv.base.as_str()),
        ("HF_HOME", home.to_str().unwrap()),
    ];
    ok(&xtask(
        &[
            "convert",
            "ddpm",
            "hf://someone/dia-ddpm/model-5.pt",
            out.to_str().unwrap(),
        ],
        &env,
    ));
    assert!(dia_diffusion::checkpoint::load_checkpoint(&out, &Device::Cpu).is_ok());
    let r = xtask(
        &[
            "convert",
            "ddpm",
            "hf://someone/dia-ddpm/absent.pt",
            out.to_str().unwrap(),
        ],
        &env,
    );
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        !r.status.success() && err.contains("hf://someone/dia-ddpm/absent.pt"),
        "{err}"
    );
}
