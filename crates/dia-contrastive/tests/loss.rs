//! NT-Xent against a direct f64 evaluation of the reference formula (spec §5.5).

use candle_core::{Device, Tensor};
use dia_contrastive::{normalize, nt_xent};

fn reference(s: &[Vec<f64>], tau: f64) -> f64 {
    let n = s.len();
    let m = n / 2;
    let mut total = 0.0;
    for (i, row) in s.iter().enumerate() {
        let e: Vec<f64> = (0..n)
            .map(|j| if i == j { 0.0 } else { (row[j] / tau).exp() })
            .collect();
        let denom: f64 = e.iter().sum::<f64>() + 1e-8;
        let j = (i + m) % n;
        total += -(e[j] / denom + 1e-8).ln();
    }
    total / n as f64
}

#[test]
fn matches_the_formula_on_random_projections() {
    let dev = Device::Cpu;
    let (n, d) = (12, 7);
    let raw: Vec<f32> = (0..n * d)
        .map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0)
        .collect();
    let z = normalize(&Tensor::from_vec(raw.clone(), (n, d), &dev).unwrap()).unwrap();
    let sim = z.matmul(&z.t().unwrap()).unwrap();
    let ours = nt_xent(&sim, 0.5).unwrap().to_scalar::<f32>().unwrap() as f64;
    let zs: Vec<Vec<f64>> = raw
        .chunks(d)
        .map(|r| {
            let norm = r.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt() + 1e-8;
            r.iter().map(|v| *v as f64 / norm).collect()
        })
        .collect();
    let s: Vec<Vec<f64>> = zs
        .iter()
        .map(|a| {
            zs.iter()
                .map(|b| a.iter().zip(b).map(|(x, y)| x * y).sum())
                .collect()
        })
        .collect();
    let want = reference(&s, 0.5);
    assert!((ours - want).abs() < 1e-6, "{ours} vs {want}");
    assert!(nt_xent(
        &Tensor::zeros((3, 3), candle_core::DType::F32, &dev).unwrap(),
        0.5
    )
    .is_err());
}
