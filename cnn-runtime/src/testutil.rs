//! Helpers shared by the kernel tests.

/// A deterministic, irregular sequence in [-1, 1]: no two neighbours alike, no ties.
pub fn seq(n: usize, phase: f32) -> Vec<f32> {
    (0..n)
        .map(|i| ((i as f32 + phase) * 1.618_034).sin() * 0.9 + 0.05 * ((i % 7) as f32 - 3.0) / 3.0)
        .collect()
}

/// Checks `grad` against central differences of `loss` around `at`, in f64 on the loss side.
///
/// Tolerance: |analytic - numeric| <= 2e-2 * max(1, |numeric|) with a step of 1e-2 (f32 inputs
/// limit how small the step can be; the test functions are smooth or far from their kinks).
pub fn assert_grad_matches(what: &str, at: &[f32], grad: &[f32], loss: impl Fn(&[f32]) -> f64) {
    assert_eq!(at.len(), grad.len(), "{what}: gradient length");
    let h = 1e-2f32;
    let mut x = at.to_vec();
    for i in 0..at.len() {
        x[i] = at[i] + h;
        let up = loss(&x);
        x[i] = at[i] - h;
        let down = loss(&x);
        x[i] = at[i];
        let numeric = (up - down) / (2.0 * h as f64);
        let analytic = grad[i] as f64;
        assert!(
            (analytic - numeric).abs() <= 2e-2 * numeric.abs().max(1.0),
            "{what}[{i}]: analytic {analytic} vs central difference {numeric}"
        );
    }
}

/// Checks each of `paths` (one result per code path) against `want`, element by element, to
/// within `tol`; `what` names the case in the message.
pub fn assert_all_close(what: &str, want: &[f32], paths: &[&[f32]], tol: f32) {
    for (path, got) in paths.iter().enumerate() {
        assert_eq!(got.len(), want.len(), "{what}: path {path} has the wrong length");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() < tol, "{what}: path {path} [{i}]: {g} vs {w}");
        }
    }
}
