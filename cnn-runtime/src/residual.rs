//! The addition that joins a residual block's main path and shortcut, `y = main(x) + shortcut(x)`.
//!
//! Its backward pass needs no kernel of its own: both branches receive the output gradient
//! unchanged, and the input gradients of the two branches add up ([`add_assign`]). Both
//! operands must be in the same [`Layout`](crate::layout::Layout).

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
    let n = y.len();
    assert!(
        a.len() == n && b.len() == n,
        "residual add: a and b must hold y's {n} elements, got {} and {}",
        a.len(),
        b.len()
    );
    for ((y, &a), &b) in y.iter_mut().zip(a).zip(b) {
        *y = a + b;
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
