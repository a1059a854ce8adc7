//! Fully connected layer (PyTorch's `Linear`: `y = W x + b`), forward and backward.
//!
//! Layouts: input `[batch, IN]`, output `[batch, OUT]`, weight `[OUT, IN]`, bias `[OUT]`;
//! the parameters of one layer are contiguous: weight, then bias.

use crate::simd::{small_gemm, small_gemm_nt, Mat, Store};

/// The geometry of one dense layer.
///
/// ```
/// use cnn_runtime::dense::Dense;
/// const D: Dense = Dense::new(2, 1, true);
/// let params = [1.0, 2.0, 0.5]; // weight [[1, 2]], bias [0.5]
/// let mut y = [0.0; 1];
/// D.forward(1, &[3.0, 4.0], &params, &mut y);
/// assert_eq!(y, [11.5]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dense {
    /// Input features.
    pub inputs: usize,
    /// Output features.
    pub outputs: usize,
    /// Whether the layer has a bias.
    pub bias: bool,
}

impl Dense {
    /// A layer from `inputs` to `outputs` features.
    pub const fn new(inputs: usize, outputs: usize, bias: bool) -> Self {
        Dense { inputs, outputs, bias }
    }

    /// Elements of the weight, `OUT*IN`.
    pub const fn weight_len(&self) -> usize {
        self.inputs * self.outputs
    }

    /// Elements of weight and bias together.
    pub const fn param_len(&self) -> usize {
        self.weight_len() + if self.bias { self.outputs } else { 0 }
    }

    /// `y = x W^T + b` for a batch.
    ///
    /// # Panics
    ///
    /// If a slice has the wrong length; the message gives the expected and the actual one.
    pub fn forward(&self, batch: usize, x: &[f32], params: &[f32], y: &mut [f32]) {
        self.check(batch, x.len(), params.len(), y.len(), "output");
        let (weight, bias) = params.split_at(self.weight_len());
        if self.bias {
            for row in y.chunks_exact_mut(self.outputs) {
                row.copy_from_slice(bias);
            }
        }
        // y [B, OUT] (+)= x [B, IN] x weight^T [IN, OUT]: every entry a dot product of a
        // sample with a contiguous weight row.
        small_gemm_nt(
            batch,
            self.outputs,
            self.inputs,
            Mat::rows(x, self.inputs),
            Mat::rows(weight, self.inputs),
            y,
            self.outputs,
            Store::accumulate_if(self.bias),
        );
    }

    /// Gradients of a batch: overwrites `dparams` (weight then bias) and, when given, `dx`.
    ///
    /// # Panics
    ///
    /// If a slice has the wrong length; the message gives the expected and the actual one.
    pub fn backward(
        &self,
        batch: usize,
        x: &[f32],
        params: &[f32],
        dy: &[f32],
        dparams: &mut [f32],
        dx: Option<&mut [f32]>,
    ) {
        self.check(batch, x.len(), params.len(), dy.len(), "dy");
        assert_eq!(
            dparams.len(),
            self.param_len(),
            "dense: dparams must hold {} elements, got {}",
            self.param_len(),
            dparams.len()
        );
        let (dweight, dbias) = dparams.split_at_mut(self.weight_len());
        // dweight [OUT, IN] = dy^T [OUT, B] x x [B, IN]
        small_gemm(
            self.outputs,
            batch,
            self.inputs,
            Mat::transposed(dy, self.outputs),
            Mat::rows(x, self.inputs),
            dweight,
            self.inputs,
            Store::Overwrite,
        );
        dbias.fill(0.0);
        if self.bias {
            for row in dy.chunks_exact(self.outputs) {
                for (d, g) in dbias.iter_mut().zip(row) {
                    *d += g;
                }
            }
        }
        if let Some(dx) = dx {
            assert_eq!(
                dx.len(),
                x.len(),
                "dense: dx must hold {} elements, got {}",
                x.len(),
                dx.len()
            );
            // dx [B, IN] = dy [B, OUT] x weight [OUT, IN]
            let weight = &params[..self.weight_len()];
            small_gemm(
                batch,
                self.outputs,
                self.inputs,
                Mat::rows(dy, self.outputs),
                Mat::rows(weight, self.inputs),
                dx,
                self.inputs,
                Store::Overwrite,
            );
        }
    }

    fn check(&self, batch: usize, x: usize, params: usize, y: usize, what: &str) {
        assert_eq!(
            x,
            batch * self.inputs,
            "dense: input must hold batch*IN = {batch}*{} elements, got {x}",
            self.inputs
        );
        assert_eq!(
            params,
            self.param_len(),
            "dense: params must hold {} elements, got {params}",
            self.param_len()
        );
        assert_eq!(
            y,
            batch * self.outputs,
            "dense: {what} must hold batch*OUT = {batch}*{} elements, got {y}",
            self.outputs
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{assert_grad_matches, seq};

    #[test]
    fn forward_matches_definition() {
        for (d, batch) in [
            (Dense::new(7, 3, true), 3),
            (Dense::new(1, 1, false), 1),
            (Dense::new(13, 5, true), 9),
            (Dense::new(40, 17, true), 1),
        ] {
            let x = seq(batch * d.inputs, 0.2);
            let p = seq(d.param_len(), 0.9);
            let mut y = vec![f32::NAN; batch * d.outputs];
            d.forward(batch, &x, &p, &mut y);
            for b in 0..batch {
                for o in 0..d.outputs {
                    let mut want = if d.bias { p[d.weight_len() + o] } else { 0.0 };
                    for i in 0..d.inputs {
                        want += p[o * d.inputs + i] * x[b * d.inputs + i];
                    }
                    assert!((y[b * d.outputs + o] - want).abs() < 1e-5);
                }
            }
        }
    }

    #[test]
    fn backward_matches_central_differences() {
        for d in [Dense::new(7, 3, true), Dense::new(1, 1, false), Dense::new(13, 5, true)] {
            let x = seq(3 * d.inputs, 0.2);
            let p = seq(d.param_len(), 0.9);
            let r = seq(3 * d.outputs, 1.7);
            let loss = |x: &[f32], p: &[f32]| {
                let mut y = vec![0.0; 3 * d.outputs];
                d.forward(3, x, p, &mut y);
                y.iter().zip(&r).map(|(a, b)| (a * b) as f64).sum::<f64>()
            };
            let mut dp = vec![f32::NAN; d.param_len()];
            let mut dx = vec![f32::NAN; x.len()];
            d.backward(3, &x, &p, &r, &mut dp, Some(&mut dx));
            assert_grad_matches("dense dparams", &p, &dp, |p| loss(&x, p));
            assert_grad_matches("dense dx", &x, &dx, |x| loss(x, &p));
        }
    }

    #[test]
    #[should_panic(expected = "dense: output must hold batch*OUT = 2*3 elements, got 5")]
    fn wrong_output_length_panics() {
        Dense::new(4, 3, true).forward(2, &[0.0; 8], &[0.0; 15], &mut [0.0; 5]);
    }
}
