//! AdamW with the paper's schedule (docs/ALGORITHM.md §7), its moments kept as plain tensors so a checkpoint
//! can save and restore them exactly (libtorch's optimisers do not expose their state through tch).
use std::collections::BTreeMap;
use std::f64::consts::PI;
use std::path::Path;

use tch::Tensor;

use super::fused::{fused_adamw, sum_of_squares, AdamWStep, FusedAdamW};
use crate::config::OptimConfig;
use crate::error::{Error, Result};

/// The learning rate at `step` (0-based) of `steps`: linear warm-up to `lr` over
/// ⌈warmup_fraction · steps⌉ steps, then cosine decay to 0.
pub fn learning_rate(config: &OptimConfig, step: usize, steps: usize) -> f64 {
    schedule(config, step, steps) * config.lr
}

/// The schedule's factor in [0, 1].
fn schedule(config: &OptimConfig, step: usize, steps: usize) -> f64 {
    let warmup = ((config.warmup_fraction * steps as f64).ceil() as usize).max(1);
    if step < warmup {
        return (step + 1) as f64 / warmup as f64;
    }
    let rest = steps.saturating_sub(warmup).max(1);
    let progress = ((step - warmup) as f64 / rest as f64).min(1.0);
    0.5 * (1.0 + (PI * progress).cos())
}

/// What one update measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UpdateNorms {
    /// Global L2 norm of the gradients before clipping.
    pub grad_norm: f64,
    pub param_norm: f64,
}

/// AdamW over named parameters (visited in name order).
pub struct AdamW {
    config: OptimConfig,
    steps_total: usize,
    first: BTreeMap<String, Tensor>,
    second: BTreeMap<String, Tensor>,
    /// Updates applied so far (Adam's bias correction uses it).
    updates: i64,
}

impl AdamW {
    /// Zero moments for `parameters`; `steps_total` sets the schedule's length.
    pub fn new(config: &OptimConfig, parameters: &[(String, Tensor)], steps_total: usize) -> Self {
        let zeros = || {
            parameters
                .iter()
                .map(|(name, p)| (name.clone(), p.zeros_like().detach()))
                .collect()
        };
        Self {
            config: config.clone(),
            steps_total,
            first: zeros(),
            second: zeros(),
            updates: 0,
        }
    }

    /// Clips the gradients to the configured global norm and applies one update at `step`.
    /// Parameters without a gradient are left alone. PyTorch's fused multi-tensor AdamW does the
    /// arithmetic (train/fused.rs): a handful of kernel calls for the whole model instead of a
    /// dozen per parameter; `tests::the_fused_update_is_the_per_tensor_formula` holds it to the
    /// plain formula.
    pub fn step(&mut self, parameters: &[(String, Tensor)], step: usize) -> Result<UpdateNorms> {
        let _guard = tch::no_grad_guard();
        let c = &self.config;
        let grads: Vec<(&String, &Tensor, Tensor)> = parameters
            .iter()
            .filter_map(|(name, p)| {
                let g = p.grad();
                g.defined().then_some((name, p, g))
            })
            .collect();
        let grad_norm = sum_of_squares(&grads.iter().map(|g| &g.2).collect::<Vec<_>>())?.sqrt();
        if !grad_norm.is_finite() {
            return Err(Error::invalid(
                "optimiser",
                format!("gradient norm is {grad_norm} at step {step}"),
            ));
        }
        let clip = if c.clip_norm > 0.0 && grad_norm > c.clip_norm {
            c.clip_norm / grad_norm
        } else {
            1.0
        };
        let factor = schedule(c, step, self.steps_total);
        let lr = factor * c.lr;
        self.updates += 1;
        // Weight matrices decay by wd · schedule per step (big_vision's convention, independent
        // of lr): torch's decay is p·(1 − lr·wd'), so wd' = wd · factor / lr = wd / peak lr.
        let decay = if c.lr > 0.0 {
            c.weight_decay / c.lr
        } else {
            0.0
        };
        for matrices in [true, false] {
            let group: Vec<_> = grads
                .iter()
                .filter(|(_, p, _)| (p.dim() >= 2) == matrices)
                .collect();
            let lists = FusedAdamW {
                params: group.iter().map(|g| g.1).collect(),
                grads: group.iter().map(|g| &g.2).collect(),
                first: group.iter().map(|g| &self.first[g.0]).collect(),
                second: group.iter().map(|g| &self.second[g.0]).collect(),
            };
            let update = AdamWStep {
                scale: clip,
                lr,
                beta1: c.beta1,
                beta2: c.beta2,
                weight_decay: if matrices { decay } else { 0.0 },
                eps: c.eps,
                updates: self.updates,
            };
            fused_adamw(&lists, &update)?;
        }
        if c.lr <= 0.0 && c.weight_decay > 0.0 {
            // A zero peak lr still decays the matrices by the schedule (never the case in presets).
            for (_, p, _) in grads.iter().filter(|g| g.1.dim() >= 2) {
                let _ = (*p)
                    .shallow_clone()
                    .g_mul_scalar_(1.0 - c.weight_decay * factor);
            }
        }
        let param_norm =
            sum_of_squares(&parameters.iter().map(|p| &p.1).collect::<Vec<_>>())?.sqrt();
        Ok(UpdateNorms {
            grad_norm,
            param_norm,
        })
    }

    /// The moments (first, then second, in name order), sharing storage with the optimiser's.
    pub fn moments(&self) -> Vec<Tensor> {
        self.first
            .values()
            .chain(self.second.values())
            .map(Tensor::shallow_clone)
            .collect()
    }
    /// Updates applied so far.
    pub fn updates(&self) -> i64 {
        self.updates
    }
    pub fn set_updates(&mut self, updates: i64) {
        self.updates = updates;
    }

    /// Writes the moments and the update count as safetensors.
    pub fn save(&self, path: &Path) -> Result<()> {
        let updates = Tensor::from_slice(&[self.updates]);
        let mut named: Vec<(String, &Tensor)> = vec![("updates".into(), &updates)];
        for (name, m) in &self.first {
            named.push((format!("m.{name}"), m));
        }
        for (name, v) in &self.second {
            named.push((format!("v.{name}"), v));
        }
        Tensor::write_safetensors(&named, path).map_err(Error::Torch)
    }

    /// Restores what [`save`](Self::save) wrote; every parameter must be there.
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let named: BTreeMap<String, Tensor> = Tensor::read_safetensors(path)?.into_iter().collect();
        let missing = |what: &str| Error::Input {
            path: path.to_owned(),
            what: format!("optimiser state has no `{what}`; it belongs to another model"),
        };
        self.updates = named
            .get("updates")
            .ok_or_else(|| missing("updates"))?
            .int64_value(&[0]);
        let _guard = tch::no_grad_guard();
        for (prefix, moments) in [("m", &mut self.first), ("v", &mut self.second)] {
            for (name, moment) in moments.iter_mut() {
                let key = format!("{prefix}.{name}");
                let saved = named.get(&key).ok_or_else(|| missing(&key))?;
                if saved.size() != moment.size() {
                    return Err(Error::Input {
                        path: path.to_owned(),
                        what: format!(
                            "`{key}` has shape {:?}, the model {:?}",
                            saved.size(),
                            moment.size()
                        ),
                    });
                }
                moment.copy_(saved);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    /// The update written out per tensor (the optimiser before it was fused): the naive twin.
    fn naive_step(
        c: &OptimConfig,
        first: &mut BTreeMap<String, Tensor>,
        second: &mut BTreeMap<String, Tensor>,
        parameters: &[(String, Tensor)],
        step: usize,
        steps_total: usize,
        updates: i64,
    ) {
        let _guard = tch::no_grad_guard();
        let grads: Vec<_> = parameters
            .iter()
            .map(|(n, p)| (n, p, p.grad()))
            .filter(|g| g.2.defined())
            .collect();
        let grad_norm: f64 = grads
            .iter()
            .map(|g| g.2.square().sum(Kind::Double).double_value(&[]))
            .sum::<f64>()
            .sqrt();
        let clip = if c.clip_norm > 0.0 && grad_norm > c.clip_norm {
            c.clip_norm / grad_norm
        } else {
            1.0
        };
        let factor = schedule(c, step, steps_total);
        let lr = factor * c.lr;
        let correction1 = 1.0 - c.beta1.powi(updates as i32);
        let correction2 = 1.0 - c.beta2.powi(updates as i32);
        for (name, p, g) in &grads {
            let g = g * clip;
            let m = first.get_mut(*name).unwrap();
            let _ = m.g_mul_scalar_(c.beta1).g_add_(&(&g * (1.0 - c.beta1)));
            let v = second.get_mut(*name).unwrap();
            let _ = v
                .g_mul_scalar_(c.beta2)
                .g_add_(&(g.square() * (1.0 - c.beta2)));
            let mut p = (*p).shallow_clone();
            if c.weight_decay > 0.0 && p.dim() >= 2 {
                let _ = p.g_mul_scalar_(1.0 - c.weight_decay * factor);
            }
            let m_hat = &first[*name] / correction1;
            let denom = (&second[*name] / correction2).sqrt() + c.eps;
            let _ = p.g_sub_(&(m_hat / denom * lr));
        }
    }

    #[test]
    fn the_fused_update_is_the_per_tensor_formula() {
        // 30 updates of a matrix, a vector and a scalar with seeded gradients, clipping binding
        // on some steps and not others, through warm-up and decay: the fused optimiser and the
        // per-tensor twin keep the same parameters and moments to float rounding.
        tch::manual_seed(5);
        let c = OptimConfig {
            weight_decay: 0.05,
            clip_norm: 3.0,
            warmup_fraction: 0.1,
            ..OptimConfig::default()
        };
        let shapes: [&[i64]; 3] = [&[6, 5], &[5], &[]];
        let make = || -> Vec<(String, Tensor)> {
            shapes
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let t = Tensor::randn(*s, (Kind::Float, Device::Cpu)).set_requires_grad(true);
                    (format!("p{i}"), t)
                })
                .collect()
        };
        let fused = make();
        let naive: Vec<(String, Tensor)> = fused
            .iter()
            .map(|(n, p)| (n.clone(), p.detach().copy().set_requires_grad(true)))
            .collect();
        let steps = 30;
        let mut opt = AdamW::new(&c, &fused, steps);
        let (mut m, mut v) = (opt.first.clone_all(), opt.second.clone_all());
        for step in 0..steps {
            let scale = if step % 3 == 0 { 10.0 } else { 0.1 };
            for ((_, f), (_, n)) in fused.iter().zip(&naive) {
                let g = Tensor::randn(f.size(), (Kind::Float, Device::Cpu)) * scale;
                let mut fg = f.grad();
                if fg.defined() {
                    let _ = fg.zero_();
                }
                (f * &g).sum(Kind::Float).backward();
                let mut ng = n.grad();
                if ng.defined() {
                    let _ = ng.zero_();
                }
                (n * &g).sum(Kind::Float).backward();
            }
            opt.step(&fused, step).unwrap();
            naive_step(&c, &mut m, &mut v, &naive, step, steps, step as i64 + 1);
        }
        let close = |a: &Tensor, b: &Tensor, what: &str| {
            let diff = (a - b).abs().max().double_value(&[]);
            let size = b.abs().max().double_value(&[]).max(1e-3);
            assert!(diff <= 1e-5 * size, "{what}: {diff} (size {size})");
        };
        for ((name, f), (_, n)) in fused.iter().zip(&naive) {
            close(f, n, name);
            close(&opt.first[name], &m[name], &format!("m.{name}"));
            close(&opt.second[name], &v[name], &format!("v.{name}"));
        }
    }

    trait CloneAll {
        fn clone_all(&self) -> Self;
    }
    impl CloneAll for BTreeMap<String, Tensor> {
        fn clone_all(&self) -> Self {
            self.iter().map(|(k, t)| (k.clone(), t.copy())).collect()
        }
    }

    #[test]
    fn schedule_warms_up_then_decays_to_zero() {
        let c = OptimConfig::default();
        // 1% of 1000 steps = 10 warm-up steps.
        assert!((learning_rate(&c, 0, 1000) - 1e-4).abs() < 1e-15);
        assert!((learning_rate(&c, 9, 1000) - 1e-3).abs() < 1e-15);
        assert!((learning_rate(&c, 10, 1000) - 1e-3).abs() < 1e-15);
        assert!((learning_rate(&c, 505, 1000) - 0.5e-3).abs() < 1e-6);
        assert!(learning_rate(&c, 999, 1000) < 1e-7);
    }

    #[test]
    fn one_update_matches_the_adamw_formula() {
        // First step of Adam: m̂ = g, v̂ = g², so the update is lr·g/(|g| + ε) = lr·sign(g),
        // after decay p ← p(1 − wd·s) on matrices only.
        let c = OptimConfig {
            weight_decay: 0.1,
            clip_norm: 0.0,
            warmup_fraction: 0.0,
            ..OptimConfig::default()
        };
        let w = Tensor::from_slice(&[1.0f32, -2.0, 3.0, 0.5])
            .reshape([2, 2])
            .set_requires_grad(true);
        let bias = Tensor::from_slice(&[1.0f32, 1.0]).set_requires_grad(true);
        let loss = (&w * Tensor::from_slice(&[2.0f32, -1.0, 0.5, 4.0]).reshape([2, 2]))
            .sum(Kind::Float)
            + bias.sum(Kind::Float) * 3.0;
        loss.backward();
        let params = vec![
            ("bias".to_string(), bias.shallow_clone()),
            ("w".to_string(), w.shallow_clone()),
        ];
        let mut opt = AdamW::new(&c, &params, 100);
        let norms = opt.step(&params, 0).unwrap();
        let expected_grad = (4.0f64 + 1.0 + 0.25 + 16.0 + 9.0 + 9.0).sqrt();
        assert!((norms.grad_norm - expected_grad).abs() < 1e-5);
        let lr = 1e-3;
        let expected_w = [
            1.0 * 0.9 - lr,
            -2.0 * 0.9 + lr,
            3.0 * 0.9 - lr,
            0.5 * 0.9 - lr,
        ];
        let got: Vec<f32> = w.flatten(0, 1).try_into().unwrap();
        for (g, e) in got.iter().zip(expected_w) {
            assert!((*g as f64 - e).abs() < 1e-6, "{got:?}");
        }
        let got: Vec<f32> = bias.try_into().unwrap();
        assert!(
            got.iter().all(|&b| (b as f64 - (1.0 - lr)).abs() < 1e-6),
            "{got:?}"
        );
    }

    #[test]
    fn clipping_scales_the_gradient_to_the_norm() {
        let c = OptimConfig {
            clip_norm: 1.0,
            ..OptimConfig::default()
        };
        let p = Tensor::zeros([3], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        (&p * Tensor::from_slice(&[30.0f32, 40.0, 0.0]))
            .sum(Kind::Float)
            .backward();
        let params = vec![("p".to_string(), p.shallow_clone())];
        let mut opt = AdamW::new(&c, &params, 10);
        let norms = opt.step(&params, 0).unwrap();
        assert!((norms.grad_norm - 50.0).abs() < 1e-4);
        // The second moment saw the clipped gradient (0.6, 0.8, 0): v = 0.05·g².
        let v: Vec<f32> = opt.second["p"].shallow_clone().try_into().unwrap();
        assert!(
            (v[0] - 0.05 * 0.36).abs() < 1e-6 && (v[1] - 0.05 * 0.64).abs() < 1e-6,
            "{v:?}"
        );
    }
}
