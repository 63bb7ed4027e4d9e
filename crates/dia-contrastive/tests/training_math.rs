//! NT-Xent-neg, LARS and the LR schedule against the formulas of spec §5.5, §5.6 and §13.5.

use candle_core::{Device, Tensor, Var};
use dia_contrastive::*;

/// The spec's NT-Xent-neg in f64 on a dense matrix.
fn reference_neg(s: &[Vec<f64>], tau: f64, shifted_removed: bool) -> f64 {
    let n = s.len();
    let m = n / 3;
    let masked = |i: usize, j: usize| {
        i == j
            || (shifted_removed
                && (0..m).any(|k| {
                    [
                        (k, 2 * m + k),
                        (2 * m + k, k),
                        (m + k, 2 * m + k),
                        (2 * m + k, m + k),
                    ]
                    .contains(&(i, j))
                }))
    };
    let l = |i: usize, j: usize| {
        let e: Vec<f64> = (0..n)
            .map(|c| {
                if masked(i, c) {
                    0.0
                } else {
                    (s[i][c] / tau).exp()
                }
            })
            .collect();
        let denom = e.iter().sum::<f64>() + 1e-8;
        -(e[j] / denom + 1e-8).ln()
    };
    (0..m).map(|i| l(i, m + i) + l(m + i, i)).sum::<f64>() / (3 * m) as f64
}

#[test]
fn nt_xent_neg_matches_the_formula_in_both_modes() {
    let n = 12;
    let raw: Vec<f32> = (0..n * n)
        .map(|i| (((i * 53) % 37) as f32 - 18.0) / 18.0)
        .collect();
    let sim = Tensor::from_vec(raw.clone(), (n, n), &Device::Cpu).unwrap();
    let dense: Vec<Vec<f64>> = raw
        .chunks(n)
        .map(|r| r.iter().map(|&v| v as f64).collect())
        .collect();
    for (mode, removed) in [(NegMode::ShiftedRemoved, true), (NegMode::Naive, false)] {
        let got = nt_xent_neg(&sim, 0.5, mode)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap() as f64;
        let want = reference_neg(&dense, 0.5, removed);
        assert!((got - want).abs() < 1e-6, "{mode:?}: {got} vs {want}");
    }
    // The two modes differ: the masked pairs matter.
    let a = nt_xent_neg(&sim, 0.5, NegMode::ShiftedRemoved)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    let b = nt_xent_neg(&sim, 0.5, NegMode::Naive)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!((a - b).abs() > 1e-4);
    assert!(nt_xent_neg(
        &Tensor::zeros((4, 4), candle_core::DType::F32, &Device::Cpu).unwrap(),
        0.5,
        NegMode::Naive
    )
    .is_err());
}

#[test]
fn lr_schedule_matches_the_spec_values() {
    let s = WarmupCosine::reference(1000);
    // lr(e − 1) for the epochs listed in spec §13.5.
    for (e, want) in [
        (1.0, 0.1),
        (5.0, 0.46),
        (11.0, 1.0),
        (250.0, 0.865558),
        (500.0, 0.517275),
        (1000.0, 0.000299),
    ] {
        let got = s.lr_at(e - 1.0);
        assert!((got - want).abs() < 5e-7, "epoch {e}: {got} vs {want}");
    }
}

#[test]
fn lr_stepper_follows_the_reference_stepping() {
    let mut st = LrStepper::new(WarmupCosine::reference(1000));
    assert_eq!(st.lr(), 0.1, "the first iteration uses the base LR");
    // An epoch of L = 4 iterations: after iteration n the LR for f = e − 1 + n/L is set.
    let l = 4.0;
    let mut seen = Vec::new();
    for e in 1..=12 {
        for n in 0..4 {
            seen.push((e, n, st.lr()));
            st.step(e as f64 - 1.0 + n as f64 / l);
        }
    }
    // Second iteration of epoch 1 trains with lr(0) = 0.1, the third with lr(0.25).
    assert_eq!(seen[1].2, 0.1);
    assert!((seen[2].2 - 0.1 * (1.0 + 0.9 * 0.25)).abs() < 1e-12);
    // Epoch 11 starts at f = 10 (peak 1.0); the first step past 10 keeps the LR, then the
    // cosine takes over.
    let at = |e: usize, n: usize| seen.iter().find(|s| s.0 == e && s.1 == n).unwrap().2;
    assert!((at(11, 1) - 1.0).abs() < 1e-12);
    assert_eq!(at(11, 2), at(11, 1), "hand-over step keeps the LR");
    let want = WarmupCosine::reference(1000).lr_at(10.5);
    assert!((at(11, 3) - want).abs() < 1e-12);
}

#[test]
fn one_lars_step_matches_the_formula() {
    let dev = Device::Cpu;
    let p0 = [0.5f32, -1.0, 2.0];
    let g0 = [0.1f32, 0.3, -0.2];
    let w = Var::from_slice(&p0, 3, &dev).unwrap();
    let z = Var::from_slice(&[1.0f32, 2.0], 2, &dev).unwrap(); // zero gradient: trust ratio 1
    let mut lars = Lars::new(LarsConfig::default());
    // The loss Σ g0·w + 0·Σz has gradients g0 and 0.
    let loss = |w: &Var, z: &Var| {
        let gw = Tensor::from_slice(&g0, 3, &dev).unwrap();
        let zeros = Tensor::zeros(2, candle_core::DType::F32, &dev).unwrap();
        ((w.as_tensor() * &gw).unwrap().sum_all().unwrap()
            + (z.as_tensor() * zeros).unwrap().sum_all().unwrap())
        .unwrap()
    };
    // Reference, in f64, two steps (the second uses the momentum buffer).
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    let mut pw: Vec<f64> = p0.iter().map(|&v| v as f64).collect();
    let mut pz = vec![1.0f64, 2.0];
    let gw: Vec<f64> = g0.iter().map(|&v| v as f64).collect();
    let (mut bw, mut bz): (Option<Vec<f64>>, Option<Vec<f64>>) = (None, None);
    for (step, lr) in [(0, 0.1), (1, 0.46)] {
        let grads = loss(&w, &z).backward().unwrap();
        lars.step([&w, &z], &grads, lr).unwrap();
        for (p, g, buf) in [
            (&mut pw, gw.clone(), &mut bw),
            (&mut pz, vec![0.0, 0.0], &mut bz),
        ] {
            let (pn, gn) = (norm(p), norm(&g));
            let a = if pn > 0.0 && gn > 0.0 {
                0.001 * pn / (gn + 1e-6 * pn + 1e-8)
            } else {
                1.0
            };
            let d: Vec<f64> = g
                .iter()
                .zip(p.iter())
                .map(|(g, p)| (g + 1e-6 * p) * a)
                .collect();
            let b: Vec<f64> = match buf.take() {
                Some(b) => b.iter().zip(&d).map(|(b, d)| 0.9 * b + d).collect(),
                None => d,
            };
            for (x, bb) in p.iter_mut().zip(&b) {
                *x -= lr * bb;
            }
            *buf = Some(b);
        }
        let got_w = w.as_tensor().to_vec1::<f32>().unwrap();
        let got_z = z.as_tensor().to_vec1::<f32>().unwrap();
        for (g, e) in got_w.iter().zip(&pw).chain(got_z.iter().zip(&pz)) {
            assert!((*g as f64 - e).abs() < 1e-6, "step {step}: {g} vs {e}");
        }
    }
}

#[test]
fn lars_buffers_hold_no_graph() {
    // A buffer built from the tracked variable would keep every step's graph alive: the
    // stored buffers must be plain tensors.
    let dev = Device::Cpu;
    let w = Var::from_slice(&[0.5f32, -1.0, 2.0], 3, &dev).unwrap();
    let mut lars = Lars::new(LarsConfig::default());
    for _ in 0..3 {
        let grads = w
            .as_tensor()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        lars.step([&w], &grads, 0.1).unwrap();
    }
    let vars = std::collections::BTreeMap::from([("w".to_string(), w.clone())]);
    let buffers = lars.export(&vars);
    assert!(
        !buffers["w"].track_op(),
        "the momentum buffer carries an op graph"
    );
}
