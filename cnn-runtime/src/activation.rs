//! Element-wise activations, forward and backward.

/// An element-wise activation function.
///
/// ```
/// use cnn_runtime::activation::Activation;
/// let mut y = [0.0; 3];
/// Activation::Relu.forward(&[-1.0, 0.0, 2.0], &mut y);
/// assert_eq!(y, [0.0, 0.0, 2.0]);
/// Activation::LeakyRelu(0.1).forward(&[-1.0, 0.0, 2.0], &mut y);
/// assert_eq!(y, [-0.1, 0.0, 2.0]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    /// `max(x, 0)`; derivative 0 at 0.
    Relu,
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// `tanh(x)`.
    Tanh,
    /// `x` for `x > 0`, else `slope * x`.
    LeakyRelu(f32),
}

impl Activation {
    /// The negative slope of `LeakyRelu` when none is given, PyTorch's.
    pub const DEFAULT_NEGATIVE_SLOPE: f32 = 0.01;

    /// `y = f(x)`, element-wise.
    ///
    /// # Panics
    ///
    /// If `x` and `y` differ in length.
    #[inline]
    pub fn forward(self, x: &[f32], y: &mut [f32]) {
        assert_eq!(
            x.len(),
            y.len(),
            "activation: output must hold {} elements, got {}",
            x.len(),
            y.len()
        );
        match self {
            Activation::Relu => y
                .iter_mut()
                .zip(x)
                .for_each(|(y, &x)| *y = if x > 0.0 { x } else { 0.0 }),
            Activation::Sigmoid => y.iter_mut().zip(x).for_each(|(y, &x)| *y = sigmoid(x)),
            Activation::Tanh => y.iter_mut().zip(x).for_each(|(y, &x)| *y = crate::math::tanh(x)),
            Activation::LeakyRelu(s) => y
                .iter_mut()
                .zip(x)
                .for_each(|(y, &x)| *y = if x > 0.0 { x } else { s * x }),
        }
    }

    /// `dx = dy * f'(x)`, element-wise, given the forward pass's input `x` and output `y`.
    ///
    /// # Panics
    ///
    /// If the four slices differ in length.
    #[inline]
    pub fn backward(self, x: &[f32], y: &[f32], dy: &[f32], dx: &mut [f32]) {
        let n = x.len();
        assert!(
            y.len() == n && dy.len() == n && dx.len() == n,
            "activation: x, y, dy and dx must all hold {n} elements, got {}, {}, {}",
            y.len(),
            dy.len(),
            dx.len()
        );
        let it = dx.iter_mut().zip(dy).zip(x.iter().zip(y));
        match self {
            Activation::Relu => it.for_each(|((dx, &g), (&x, _))| *dx = if x > 0.0 { g } else { 0.0 }),
            Activation::Sigmoid => it.for_each(|((dx, &g), (_, &y))| *dx = g * y * (1.0 - y)),
            Activation::Tanh => it.for_each(|((dx, &g), (_, &y))| *dx = g * (1.0 - y * y)),
            Activation::LeakyRelu(s) => it.for_each(|((dx, &g), (&x, _))| *dx = if x > 0.0 { g } else { s * g }),
        }
    }
}

#[inline]
fn sigmoid(x: f32) -> f32 {
    // Written so that neither branch overflows: e^-|x| <= 1.
    if x >= 0.0 {
        1.0 / (1.0 + crate::math::exp(-x))
    } else {
        let e = crate::math::exp(x);
        e / (1.0 + e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{assert_grad_matches, seq};

    const ALL: [Activation; 5] = [
        Activation::Relu,
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::LeakyRelu(0.01),
        Activation::LeakyRelu(0.2),
    ];

    #[test]
    fn forward_values() {
        let x = [-3.0f32, -0.5, 0.0, 0.5, 3.0, -100.0, 100.0];
        for a in ALL {
            let mut y = [0.0; 7];
            a.forward(&x, &mut y);
            for (&x, &y) in x.iter().zip(&y) {
                let want = match a {
                    Activation::Relu => x.max(0.0) as f64,
                    Activation::Sigmoid => 1.0 / (1.0 + (-(x as f64)).exp()),
                    Activation::Tanh => (x as f64).tanh(),
                    Activation::LeakyRelu(s) => {
                        if x > 0.0 {
                            x as f64
                        } else {
                            (s * x) as f64
                        }
                    }
                };
                assert!((y as f64 - want).abs() < 1e-6, "{a:?}({x}) = {y}, want {want}");
            }
        }
    }

    #[test]
    fn backward_matches_central_differences() {
        // Keep inputs away from the kink at 0 (|x| >= 0.05) so differences are meaningful.
        let x: Vec<f32> = seq(37, 0.1)
            .into_iter()
            .map(|v| if v.abs() < 0.05 { v + 0.1 } else { v } * 3.0)
            .collect();
        let r = seq(37, 1.1);
        for a in ALL {
            let loss = |x: &[f32]| {
                let mut y = vec![0.0; x.len()];
                a.forward(x, &mut y);
                y.iter().zip(&r).map(|(a, b)| (a * b) as f64).sum::<f64>()
            };
            let mut y = vec![0.0; 37];
            a.forward(&x, &mut y);
            let mut dx = vec![f32::NAN; 37];
            a.backward(&x, &y, &r, &mut dx);
            assert_grad_matches(&format!("{a:?}"), &x, &dx, loss);
        }
    }

    #[test]
    fn relu_derivative_is_zero_at_zero() {
        let mut dx = [f32::NAN];
        Activation::Relu.backward(&[0.0], &[0.0], &[1.0], &mut dx);
        assert_eq!(dx, [0.0]);
    }
}
