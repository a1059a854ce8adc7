//! Optimizers on flat parameter slices, following PyTorch's update rules exactly.
//!
//! State (momentum buffers, moment estimates) is allocated on the first [`Sgd::step`] or
//! [`Adam::step`] and reused after, so a training loop allocates nothing in steady state.
//! Without the `std` feature, [`sgd_step`] does the same update on caller-provided state.

/// One step of SGD with momentum on flat slices, allocating nothing: the update of
/// `Sgd::new(lr).momentum(momentum)` (PyTorch's `torch.optim.SGD`, no dampening, no weight
/// decay), with its state in `momentum_buf`, which the caller keeps between steps.
///
/// Start `momentum_buf` at zeros: `momentum * 0 + g` is PyTorch's first step (buffer = first
/// gradient), so the steps give the same bits as `Sgd`'s. With `momentum == 0` the buffer is not
/// touched and may be empty.
///
/// # Panics
///
/// If `grad` does not have the length of `params`, or (with momentum) `momentum_buf` neither.
///
/// ```
/// let (mut p, mut buf) = ([1.0f32], [0.0f32]);
/// cnn_runtime::optim::sgd_step(&mut p, &[1.0], &mut buf, 0.1, 0.9); // buf = 1,   p = 0.9
/// cnn_runtime::optim::sgd_step(&mut p, &[1.0], &mut buf, 0.1, 0.9); // buf = 1.9, p = 0.71
/// assert!((p[0] - 0.71).abs() < 1e-6);
/// ```
pub fn sgd_step(params: &mut [f32], grad: &[f32], momentum_buf: &mut [f32], lr: f32, momentum: f32) {
    assert_eq!(
        grad.len(),
        params.len(),
        "sgd_step: grad must hold {} elements (one per parameter), got {}",
        params.len(),
        grad.len()
    );
    if momentum == 0.0 {
        for (p, &g) in params.iter_mut().zip(grad) {
            *p -= lr * g;
        }
        return;
    }
    assert_eq!(
        momentum_buf.len(),
        params.len(),
        "sgd_step: momentum_buf must hold {} elements (one per parameter), got {}",
        params.len(),
        momentum_buf.len()
    );
    for ((p, &g), b) in params.iter_mut().zip(grad).zip(momentum_buf.iter_mut()) {
        // The expression of `Sgd::step` with dampening 0, so the bits agree.
        *b = momentum * *b + (1.0 - 0.0) * g;
        *p -= lr * *b;
    }
}

#[cfg(feature = "std")]
/// Stochastic gradient descent, as `torch.optim.SGD`: momentum (dampening applied from the
/// second step on), L2 weight decay, and Nesterov momentum.
///
/// ```
/// use cnn_runtime::optim::Sgd;
/// let mut opt = Sgd::new(0.1).momentum(0.9);
/// let mut p = [1.0f32];
/// opt.step(&mut p, &[1.0]); // buf = 1,            p = 1 - 0.1
/// opt.step(&mut p, &[1.0]); // buf = 0.9 + 1 = 1.9, p = 0.9 - 0.19
/// assert!((p[0] - 0.71).abs() < 1e-6);
/// ```
#[derive(Clone, Debug)]
pub struct Sgd {
    lr: f32,
    momentum: f32,
    dampening: f32,
    weight_decay: f32,
    nesterov: bool,
    buf: Vec<f32>,
}

#[cfg(feature = "std")]
impl Sgd {
    /// Plain SGD with learning rate `lr`: `p -= lr * g`.
    pub fn new(lr: f32) -> Self {
        Sgd {
            lr,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
            buf: Vec::new(),
        }
    }

    /// Momentum factor (PyTorch's `momentum`, default 0).
    pub fn momentum(mut self, momentum: f32) -> Self {
        self.momentum = momentum;
        self
    }

    /// Dampening of the momentum (PyTorch's `dampening`, default 0).
    pub fn dampening(mut self, dampening: f32) -> Self {
        self.dampening = dampening;
        self
    }

    /// L2 penalty added to the gradient, `g + weight_decay * p` (default 0).
    pub fn weight_decay(mut self, weight_decay: f32) -> Self {
        self.weight_decay = weight_decay;
        self
    }

    /// Nesterov momentum (default off).
    pub fn nesterov(mut self, nesterov: bool) -> Self {
        self.nesterov = nesterov;
        self
    }

    /// The learning rate.
    pub fn lr(&self) -> f32 {
        self.lr
    }

    /// Changes the learning rate, for schedules.
    pub fn set_lr(&mut self, lr: f32) {
        self.lr = lr;
    }

    /// The momentum buffer (empty before the first step or without momentum).
    pub fn state(&self) -> &[f32] {
        &self.buf
    }

    /// Restores a momentum buffer saved from [`Sgd::state`], for resuming from a checkpoint.
    /// An empty buffer means "no step taken yet".
    ///
    /// ```
    /// use cnn_runtime::optim::Sgd;
    /// let mut a = Sgd::new(0.1).momentum(0.9);
    /// let mut p = [1.0f32];
    /// a.step(&mut p, &[1.0]);
    /// let mut b = Sgd::new(0.1).momentum(0.9);
    /// b.set_state(a.state().to_vec());
    /// let mut q = p;
    /// a.step(&mut p, &[1.0]);
    /// b.step(&mut q, &[1.0]);
    /// assert_eq!(p, q);
    /// ```
    pub fn set_state(&mut self, buf: Vec<f32>) {
        self.buf = buf;
    }

    /// One update of `params` with gradient `grad`.
    ///
    /// # Panics
    ///
    /// If `grad.len() != params.len()`, or `params` changes length between steps.
    pub fn step(&mut self, params: &mut [f32], grad: &[f32]) {
        assert_eq!(
            grad.len(),
            params.len(),
            "Sgd::step: grad must hold {} elements (one per parameter), got {}",
            params.len(),
            grad.len()
        );
        let first = self.buf.is_empty() && self.momentum != 0.0;
        if first {
            self.buf = vec![0.0; params.len()];
        }
        if self.momentum != 0.0 {
            assert_eq!(
                self.buf.len(),
                params.len(),
                "Sgd::step: the optimizer was used with {} parameters, now {}",
                self.buf.len(),
                params.len()
            );
        }
        let (lr, mu, damp, wd, nesterov) = (self.lr, self.momentum, self.dampening, self.weight_decay, self.nesterov);
        for (i, (p, &g)) in params.iter_mut().zip(grad).enumerate() {
            let mut d = if wd != 0.0 { g + wd * *p } else { g };
            if mu != 0.0 {
                let b = &mut self.buf[i];
                // PyTorch starts the buffer at the first gradient, undamped.
                *b = if first { d } else { mu * *b + (1.0 - damp) * d };
                d = if nesterov { d + mu * *b } else { *b };
            }
            *p -= lr * d;
        }
    }
}

#[cfg(feature = "std")]
/// Adam, as `torch.optim.Adam` (not AdamW): bias-corrected moments, `eps` added after the
/// bias correction of `sqrt(v)`, optional L2 weight decay added to the gradient.
///
/// ```
/// use cnn_runtime::optim::Adam;
/// let mut opt = Adam::new(1e-3);
/// let mut p = [1.0f32];
/// opt.step(&mut p, &[0.5]);
/// // The first Adam step moves every parameter by about lr, against the gradient's sign.
/// assert!((p[0] - (1.0 - 1e-3)).abs() < 1e-6);
/// ```
#[derive(Clone, Debug)]
pub struct Adam {
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    t: u64,
    m: Vec<f32>,
    v: Vec<f32>,
}

#[cfg(feature = "std")]
impl Adam {
    /// Adam with learning rate `lr`, betas (0.9, 0.999), eps 1e-8, no weight decay.
    pub fn new(lr: f32) -> Self {
        Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            t: 0,
            m: Vec::new(),
            v: Vec::new(),
        }
    }

    /// Decay rates of the first and second moment estimates.
    pub fn betas(mut self, beta1: f32, beta2: f32) -> Self {
        self.beta1 = beta1;
        self.beta2 = beta2;
        self
    }

    /// The term added to the denominator for stability.
    pub fn eps(mut self, eps: f32) -> Self {
        self.eps = eps;
        self
    }

    /// L2 penalty added to the gradient, `g + weight_decay * p` (default 0).
    pub fn weight_decay(mut self, weight_decay: f32) -> Self {
        self.weight_decay = weight_decay;
        self
    }

    /// The learning rate.
    pub fn lr(&self) -> f32 {
        self.lr
    }

    /// Changes the learning rate, for schedules.
    pub fn set_lr(&mut self, lr: f32) {
        self.lr = lr;
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.t
    }

    /// The first and second moment estimates (empty before the first step).
    pub fn state(&self) -> (&[f32], &[f32]) {
        (&self.m, &self.v)
    }

    /// Restores the step count and moment estimates saved from [`Adam::steps`] and
    /// [`Adam::state`], for resuming from a checkpoint. `steps == 0` means "no step taken yet".
    ///
    /// ```
    /// use cnn_runtime::optim::Adam;
    /// let mut a = Adam::new(1e-3);
    /// let mut p = [1.0f32];
    /// a.step(&mut p, &[0.5]);
    /// let (m, v) = a.state();
    /// let mut b = Adam::new(1e-3);
    /// b.set_state(a.steps(), m.to_vec(), v.to_vec());
    /// let mut q = p;
    /// a.step(&mut p, &[0.5]);
    /// b.step(&mut q, &[0.5]);
    /// assert_eq!(p, q);
    /// ```
    ///
    /// # Panics
    ///
    /// If `m` and `v` differ in length, or `steps > 0` with empty moments.
    pub fn set_state(&mut self, steps: u64, m: Vec<f32>, v: Vec<f32>) {
        assert_eq!(
            m.len(),
            v.len(),
            "Adam::set_state: m holds {} elements but v holds {}",
            m.len(),
            v.len()
        );
        assert!(
            steps == 0 || !m.is_empty(),
            "Adam::set_state: {steps} steps taken but no moments given"
        );
        self.t = steps;
        self.m = m;
        self.v = v;
    }

    /// One update of `params` with gradient `grad`.
    ///
    /// # Panics
    ///
    /// If `grad.len() != params.len()`, or `params` changes length between steps.
    pub fn step(&mut self, params: &mut [f32], grad: &[f32]) {
        assert_eq!(
            grad.len(),
            params.len(),
            "Adam::step: grad must hold {} elements (one per parameter), got {}",
            params.len(),
            grad.len()
        );
        if self.t == 0 {
            self.m = vec![0.0; params.len()];
            self.v = vec![0.0; params.len()];
        }
        assert_eq!(
            self.m.len(),
            params.len(),
            "Adam::step: the optimizer was used with {} parameters, now {}",
            self.m.len(),
            params.len()
        );
        self.t += 1;
        // PyTorch computes the bias corrections in double precision from the step count.
        let t = self.t as f64;
        let step_size = (self.lr as f64 / (1.0 - (self.beta1 as f64).powf(t))) as f32;
        let bc2_sqrt = (1.0 - (self.beta2 as f64).powf(t)).sqrt() as f32;
        let (b1, b2, eps, wd) = (self.beta1, self.beta2, self.eps, self.weight_decay);
        for ((p, &g), (m, v)) in params
            .iter_mut()
            .zip(grad)
            .zip(self.m.iter_mut().zip(self.v.iter_mut()))
        {
            let g = if wd != 0.0 { g + wd * *p } else { g };
            // m.lerp_(g, 1 - b1), v.mul_(b2).addcmul_(g, g, 1 - b2)
            *m += (1.0 - b1) * (g - *m);
            *v = b2 * *v + (1.0 - b2) * g * g;
            let denom = v.sqrt() / bc2_sqrt + eps;
            *p -= step_size * (*m / denom);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PyTorch's SGD written out in f64: the reference for the options not in the golden data.
    #[allow(clippy::too_many_arguments)]
    fn sgd_ref(
        p: &mut [f64],
        buf: &mut Option<Vec<f64>>,
        g: &[f64],
        lr: f64,
        mu: f64,
        damp: f64,
        wd: f64,
        nesterov: bool,
    ) {
        let d: Vec<f64> = g.iter().zip(p.iter()).map(|(g, p)| g + wd * p).collect();
        let b = match buf {
            None => d.clone(),
            Some(b) => b.iter().zip(&d).map(|(b, d)| mu * b + (1.0 - damp) * d).collect(),
        };
        for i in 0..p.len() {
            let step = if nesterov { d[i] + mu * b[i] } else { b[i] };
            p[i] -= lr * step;
        }
        *buf = Some(b);
    }

    #[test]
    fn sgd_options_match_reference() {
        for &(mu, damp, wd, nesterov) in &[(0.9, 0.0, 0.0, false), (0.9, 0.1, 1e-2, false), (0.8, 0.0, 5e-4, true)] {
            let mut opt = Sgd::new(0.05)
                .momentum(mu)
                .dampening(damp)
                .weight_decay(wd)
                .nesterov(nesterov);
            let mut p = [0.5f32, -1.0, 2.0];
            let mut want = [0.5f64, -1.0, 2.0];
            let mut buf = None;
            for step in 0..4 {
                let g = [0.1 * step as f32 - 0.2, 0.3, -0.7];
                opt.step(&mut p, &g);
                let g64: Vec<f64> = g.iter().map(|&x| x as f64).collect();
                sgd_ref(
                    &mut want,
                    &mut buf,
                    &g64,
                    0.05,
                    mu as f64,
                    damp as f64,
                    wd as f64,
                    nesterov,
                );
            }
            for (a, b) in p.iter().zip(&want) {
                assert!(
                    (*a as f64 - b).abs() < 1e-6,
                    "mu={mu} damp={damp} wd={wd} nesterov={nesterov}: {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn plain_sgd_allocates_no_state() {
        let mut opt = Sgd::new(0.5);
        let mut p = [1.0f32];
        opt.step(&mut p, &[1.0]);
        assert_eq!(p, [0.5]);
        assert!(opt.state().is_empty());
    }

    #[test]
    fn adam_with_weight_decay_matches_reference() {
        let (lr, b1, b2, eps, wd) = (1e-2f64, 0.9f64, 0.999f64, 1e-8f64, 0.1f64);
        let mut opt = Adam::new(lr as f32).weight_decay(wd as f32);
        let mut p = [0.5f32, -1.0];
        let (mut q, mut m, mut v) = ([0.5f64, -1.0], [0.0f64; 2], [0.0f64; 2]);
        for t in 1..=5 {
            let g = [0.3f32 * t as f32, -0.05];
            opt.step(&mut p, &g);
            for i in 0..2 {
                let g = g[i] as f64 + wd * q[i];
                m[i] = b1 * m[i] + (1.0 - b1) * g;
                v[i] = b2 * v[i] + (1.0 - b2) * g * g;
                let denom = v[i].sqrt() / (1.0 - b2.powi(t)).sqrt() + eps;
                q[i] -= lr / (1.0 - b1.powi(t)) * m[i] / denom;
            }
        }
        for (a, b) in p.iter().zip(&q) {
            assert!((*a as f64 - b).abs() < 1e-2 * lr, "{a} vs {b}");
        }
    }

    #[test]
    #[should_panic(expected = "Sgd::step: grad must hold 2 elements (one per parameter), got 1")]
    fn sgd_wrong_grad_length_panics() {
        Sgd::new(0.1).step(&mut [0.0; 2], &[0.0]);
    }
}
