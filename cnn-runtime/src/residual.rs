//! The addition that joins a residual block's main path and shortcut, `y = main(x) + shortcut(x)`.
//!
//! Its backward pass needs no kernel of its own: both branches receive the output gradient
//! unchanged, and the input gradients of the two branches add up ([`add_assign`]). Both
//! operands must be in the same [`Layout`](crate::layout::Layout). The ReLU that usually
//! follows is applied in the same pass ([`add_relu`]), its gradient's mask in place
//! ([`relu_mask`]).

/// `y = a + b`, element-wise.
///
/// # Panics
///
/// If `a`, `b` and `y` differ in length; the message gives the lengths.
///
/// ```
/// use cnn_runtime::residual::add;
/// let mut y = [0.0; 3];
/// add(&[1.0, 2.0, 3.0], &[10.0, 20.0, 30.0], &mut y);
/// assert_eq!(y, [11.0, 22.0, 33.0]);
/// ```
#[inline]
pub fn add(a: &[f32], b: &[f32], y: &mut [f32]) {
    sum_into("add", a, b, y, |sum| sum);
}

/// `y = relu(a + b)`, element-wise, in one pass (a ReLU as `Activation::Relu` computes it).
///
/// # Panics
///
/// If `a`, `b` and `y` differ in length; the message gives the lengths.
///
/// ```
/// use cnn_runtime::residual::add_relu;
/// let mut y = [0.0; 3];
/// add_relu(&[1.0, -2.0, 3.0], &[1.0, 1.0, -4.0], &mut y);
/// assert_eq!(y, [2.0, 0.0, 0.0]);
/// ```
#[inline]
pub fn add_relu(a: &[f32], b: &[f32], y: &mut [f32]) {
    sum_into("add_relu", a, b, y, |sum| if sum > 0.0 { sum } else { 0.0 });
}

/// `y = then(a + b)`, element-wise, the lengths checked for `what`.
#[inline(always)]
fn sum_into(what: &str, a: &[f32], b: &[f32], y: &mut [f32], then: impl Fn(f32) -> f32) {
    let n = y.len();
    assert!(
        a.len() == n && b.len() == n,
        "residual {what}: a and b must hold y's {n} elements, got {} and {}",
        a.len(),
        b.len()
    );
    for ((y, &a), &b) in y.iter_mut().zip(a).zip(b) {
        *y = then(a + b);
    }
}

/// The gradient through a ReLU whose output is `y`, in place: `dy` kept where `y > 0`, zero
/// elsewhere.
///
/// # Panics
///
/// If `y` and `dy` differ in length; the message gives the lengths.
///
/// ```
/// use cnn_runtime::residual::relu_mask;
/// let mut dy = [1.0, 2.0, 3.0];
/// relu_mask(&[0.5, 0.0, 2.0], &mut dy);
/// assert_eq!(dy, [1.0, 0.0, 3.0]);
/// ```
#[inline]
pub fn relu_mask(y: &[f32], dy: &mut [f32]) {
    assert_eq!(
        y.len(),
        dy.len(),
        "residual relu_mask: y must hold dy's {} elements, got {}",
        dy.len(),
        y.len()
    );
    // A select, not a conditional store: it vectorizes.
    for (g, &y) in dy.iter_mut().zip(y) {
        *g = if y > 0.0 { *g } else { 0.0 };
    }
}

/// `y += x`, element-wise.
///
/// # Panics
///
/// If `y` and `x` differ in length; the message gives the lengths.
///
/// ```
/// use cnn_runtime::residual::add_assign;
/// let mut y = [1.0, 2.0];
/// add_assign(&mut y, &[0.5, -2.0]);
/// assert_eq!(y, [1.5, 0.0]);
/// ```
#[inline]
pub fn add_assign(y: &mut [f32], x: &[f32]) {
    assert_eq!(
        x.len(),
        y.len(),
        "residual add_assign: x must hold y's {} elements, got {}",
        y.len(),
        x.len()
    );
    for (y, &x) in y.iter_mut().zip(x) {
        *y += x;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::seq;

    #[test]
    fn add_and_add_assign_agree_with_the_definition() {
        for n in [0, 1, 7, 8, 33, 1000] {
            let (a, b) = (seq(n, 0.1), seq(n, 1.7));
            let mut y = vec![f32::NAN; n];
            add(&a, &b, &mut y);
            for i in 0..n {
                assert_eq!(y[i], a[i] + b[i], "n = {n} [{i}]");
            }
            let mut z = a.clone();
            add_assign(&mut z, &b);
            assert_eq!(z, y, "n = {n}");
        }
    }

    #[test]
    fn add_relu_and_its_mask_are_a_relu_after_the_sum() {
        use crate::activation::Activation;
        for n in [0, 1, 7, 33, 1000] {
            let (a, b, dz) = (seq(n, 0.1), seq(n, 1.7), seq(n, 2.9));
            let (mut sum, mut want) = (vec![0.0; n], vec![f32::NAN; n]);
            add(&a, &b, &mut sum);
            Activation::Relu.forward(&sum, &mut want);
            let mut y = vec![f32::NAN; n];
            add_relu(&a, &b, &mut y);
            assert_eq!(y, want, "n = {n}");
            let mut want_grad = vec![f32::NAN; n];
            Activation::Relu.backward(&sum, &y, &dz, &mut want_grad);
            let mut grad = dz.clone();
            relu_mask(&y, &mut grad);
            assert_eq!(grad, want_grad, "n = {n}");
            assert!(n < 33 || (grad.contains(&0.0) && grad.iter().any(|&g| g != 0.0)));
        }
    }

    #[test]
    #[should_panic(expected = "y must hold dy's 2 elements, got 3")]
    fn relu_mask_length_mismatch_panics() {
        relu_mask(&[0.0; 3], &mut [0.0; 2]);
    }

    #[test]
    #[should_panic(expected = "a and b must hold y's 3 elements, got 3 and 2")]
    fn add_length_mismatch_panics() {
        add(&[0.0; 3], &[0.0; 2], &mut [0.0; 3]);
    }

    #[test]
    #[should_panic(expected = "x must hold y's 2 elements, got 3")]
    fn add_assign_length_mismatch_panics() {
        add_assign(&mut [0.0; 2], &[0.0; 3]);
    }
}
