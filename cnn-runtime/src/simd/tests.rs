//! Every kernel against its definition at awkward sizes, on every path this CPU can run.

use super::isa::{self, Isa};
use super::*;
use crate::testutil::{assert_all_close, seq};

/// Where element `e` of a vector spread as `spread` lies.
fn at(spread: Spread, e: usize) -> usize {
    match spread {
        Spread::Contiguous => e,
        Spread::Image { width, stride } => (e / width) * stride + e % width,
    }
}

const STORES: [Store; 2] = [Store::Overwrite, Store::Accumulate];

#[test]
fn the_portable_path_is_always_there() {
    assert_eq!(Isa::supported().next(), Some(Isa::PORTABLE));
    assert!(Isa::supported().any(|isa| isa == Isa::current()));
}

#[test]
fn small_gemm_agrees_with_the_definition() {
    on_every_path(|path| {
        for m in [1, 3, 4, 5, 6, 13, 16, 25] {
            for k in [0, 1, 5, 25, 150] {
                for n in [1, 7, 16, 17, 33, 100] {
                    let (a, b) = (seq(m * k, 0.2), seq(k * n, 0.9));
                    let init = seq(m * n, 1.5);
                    for store in STORES {
                        let mut want = init.clone();
                        for i in 0..m {
                            for j in 0..n {
                                let s: f32 = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
                                want[i * n + j] = store.apply(want[i * n + j], s);
                            }
                        }
                        let mut got = init.clone();
                        small_gemm(m, k, n, Mat::rows(&a, k), Mat::rows(&b, n), &mut got, n, store);
                        assert_all_close(&format!("{path} {m}x{k}x{n} {store:?}"), &want, &[&got], 1e-4);
                    }
                }
            }
        }
    });
}

#[test]
fn strided_operands_read_and_write_in_place() {
    on_every_path(|path| {
        // A transposed (strides 1, m), B and C with padded rows: the same numbers as packed.
        let (m, k, n) = (5, 7, 19);
        let a = seq(m * k, 0.3); // row-major m x k
        let at: Vec<f32> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect(); // k x m
        let b = seq(k * n, 0.6);
        let ldb = n + 3;
        let mut bpad = vec![f32::NAN; k * ldb];
        for p in 0..k {
            bpad[p * ldb..][..n].copy_from_slice(&b[p * n..][..n]);
        }
        let mut packed = vec![0.0; m * n];
        small_gemm(
            m,
            k,
            n,
            Mat::rows(&a, k),
            Mat::rows(&b, n),
            &mut packed,
            n,
            Store::Overwrite,
        );
        let ldc = n + 5;
        let mut strided = vec![-7.0; (m - 1) * ldc + n];
        let (at, bpad) = (Mat::transposed(&at, m), Mat::rows(&bpad, ldb));
        small_gemm(m, k, n, at, bpad, &mut strided, ldc, Store::Overwrite);
        for i in 0..m {
            assert_eq!(&strided[i * ldc..][..n], &packed[i * n..][..n], "{path}");
            if i + 1 < m {
                assert!(
                    strided[i * ldc + n..(i + 1) * ldc].iter().all(|&v| v == -7.0),
                    "{path}: padding untouched"
                );
            }
        }
        // And A x B^T: C = A x (B^T)^T with B^T given row-major as n x k.
        let bt: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
        let mut nt = vec![0.0; m * n];
        small_gemm_nt(
            m,
            n,
            k,
            Mat::rows(&a, k),
            Mat::rows(&bt, k),
            &mut nt,
            n,
            Store::Overwrite,
        );
        assert_all_close(path, &packed, &[&nt], 1e-5);
    });
}

#[test]
fn small_gemm_nt_agrees_with_the_definition() {
    on_every_path(|path| {
        for m in [1, 3, 4, 5, 9] {
            for n in [1, 4, 6, 13] {
                for k in [0, 1, 7, 8, 9, 16, 17, 31, 100] {
                    let (a, b) = (seq(m * k, 0.4), seq(n * k, 1.1));
                    for store in STORES {
                        let mut got = seq(m * n, 2.0);
                        let mut want = got.clone();
                        small_gemm_nt(m, n, k, Mat::rows(&a, k), Mat::rows(&b, k), &mut got, n, store);
                        for i in 0..m {
                            for j in 0..n {
                                let s = (0..k).map(|p| a[i * k + p] * b[j * k + p]).sum::<f32>();
                                want[i * n + j] = store.apply(want[i * n + j], s);
                            }
                        }
                        assert_all_close(&format!("{path} {m}x{n}x{k} {store:?}"), &want, &[&got], 1e-4);
                    }
                }
            }
        }
    });
}

#[test]
fn gathered_rows_agree_with_the_definition() {
    on_every_path(|path| {
        // Rows of B are overlapping windows of one slice, at irregular offsets, as the taps of
        // a convolution read them: contiguous, or images (n a whole number of rows, among them
        // rows of one full and one masked block).
        let data = seq(600, 0.8);
        let image = |width, stride| Spread::Image { width, stride };
        let shapes = [1, 4, 15, 16, 33, 48]
            .map(|n| (n, Spread::Contiguous))
            .into_iter()
            .chain([
                (12, image(4, 7)),
                (84, image(28, 32)),
                (30, image(10, 14)),
                (64, image(32, 34)),
                (40, image(20, 22)),
                // Rows of one vector, two to a block: an odd count, an even one.
                (48, image(16, 18)),
                (32, image(16, 16)),
                (24, image(8, 11)),
            ]);
        for (n, spread) in shapes {
            for m in [1, 2, 5, 6, 7, 13, 16, 25] {
                for k in [1, 3, 8, 9, 25] {
                    let offsets: Vec<usize> = (0..k).map(|p| (p * 37 + p * p) % 200).collect();
                    let a = seq(m * k, 0.25);
                    let init = seq(m * n, 1.5);
                    // C = A x B, B: k x n with row p at offsets[p].
                    let b = Gathered {
                        data: &data,
                        offsets: &offsets,
                        spread,
                    };
                    let mut want = init.clone();
                    for i in 0..m {
                        for j in 0..n {
                            want[i * n + j] += (0..k)
                                .map(|p| a[i * k + p] * data[offsets[p] + at(spread, j)])
                                .sum::<f32>();
                        }
                    }
                    let mut got = init.clone();
                    gather_gemm(
                        m,
                        k,
                        n,
                        Mat::rows(&a, k),
                        b,
                        &mut got,
                        n,
                        Store::Accumulate,
                        Finish::NONE,
                    );
                    assert_all_close(&format!("{path} {m}x{k}x{n} {spread:?}"), &want, &[&got], 1e-3);
                    // Overwritten and finished: a bias, and in turn a residual and a ReLU.
                    let (bias, residual) = (seq(m, -0.3), seq(m * n, -1.1));
                    let finish = Finish {
                        bias: Some(&bias),
                        residual: (m % 2 == 1).then_some(&residual[..]),
                        relu: k % 2 == 1,
                    };
                    for i in 0..m {
                        for j in 0..n {
                            let sum = want[i * n + j] - init[i * n + j] + bias[i];
                            let sum = finish.residual.map_or(sum, |r| sum + r[i * n + j]);
                            want[i * n + j] = if finish.relu { sum.max(0.0) } else { sum };
                        }
                    }
                    let mut got = init.clone();
                    gather_gemm(m, k, n, Mat::rows(&a, k), b, &mut got, n, Store::Overwrite, finish);
                    let what = format!("{path} {m}x{k}x{n} {spread:?} finished as {finish:?}");
                    assert_all_close(&what, &want, &[&got], 1e-3);
                }
            }
        }
        // C = A x B^T, B: n x k with row j at offsets[j], contiguous.
        for m in [1, 2, 5, 6, 7, 13] {
            for k in [1, 3, 8, 9, 25] {
                for n in [1, 4, 15, 16, 33] {
                    let offsets: Vec<usize> = (0..n).map(|p| (p * 37 + p * p) % 300).collect();
                    let a = seq(m * k, 0.25);
                    let init = seq(m * n, 1.5);
                    let b = Gathered::new(&data, &offsets);
                    let mut want = init.clone();
                    for i in 0..m {
                        for j in 0..n {
                            want[i * n + j] += (0..k).map(|p| a[i * k + p] * data[offsets[j] + p]).sum::<f32>();
                        }
                    }
                    let mut got = init.clone();
                    gather_gemm_nt(m, n, k, Mat::rows(&a, k), b, &mut got, n, Store::Accumulate);
                    assert_all_close(&format!("{path} nt {m}x{n}x{k}"), &want, &[&got], 1e-3);
                }
            }
        }
    });
}

#[test]
fn gathered_columns_and_strided_output_agree_with_the_definition() {
    on_every_path(|path| {
        // Column p of A at offsets[p], its m rows the pixels of an image; written into C
        // transposed (column stride ldc).
        let data = seq(400, 0.45);
        let image = |width, stride| Spread::Image { width, stride };
        for (m, spread) in [
            (1, image(1, 1)),
            (5, image(5, 9)),
            (6, image(7, 9)),
            (10, Spread::Contiguous),
            (20, image(10, 14)),
            (7, image(3, 5)),
            (25, image(5, 7)),
            // Blocks of a run of 8 pixels each (ResNet-8's 8x8 layers on AVX-512).
            (16, image(8, 10)),
        ] {
            for k in [1, 4, 25, 150] {
                for n in [1, 8, 16, 21, 40] {
                    let offsets: Vec<usize> = (0..k).map(|p| (p * 13 + p * p * 7) % 300).collect();
                    let b = seq(k * n, 0.15);
                    let ldc = m + 2;
                    let init = seq(n * ldc, 0.5);
                    let mut want = init.clone();
                    for i in 0..m {
                        for j in 0..n {
                            want[i + j * ldc] += (0..k)
                                .map(|p| data[offsets[p] + at(spread, i)] * b[p * n + j])
                                .sum::<f32>();
                        }
                    }
                    let a = Gathered {
                        data: &data,
                        offsets: &offsets,
                        spread,
                    };
                    let mut got = init.clone();
                    gather_cols_gemm(m, k, n, a, Mat::rows(&b, n), &mut got, [1, ldc], Store::Accumulate);
                    assert_all_close(&format!("{path} {m}x{k}x{n} {spread:?}"), &want, &[&got], 1e-3);
                }
            }
        }
    });
}

#[test]
fn gathered_image_rows_agree_with_the_definition() {
    on_every_path(|path| {
        // A(i, p) = data[offsets[i] + pixel p of an image]; k past one table of pixel offsets
        // (512) too.
        let data = seq(1400, 0.65);
        let image = |width, stride| Spread::Image { width, stride };
        for (k, spread) in [
            (0, image(1, 1)),
            (1, image(1, 1)),
            (100, image(10, 14)),
            (600, image(30, 33)),
            (37, Spread::Contiguous),
        ] {
            for m in [1, 6, 25] {
                for n in [6, 16, 40] {
                    let offsets: Vec<usize> = (0..m).map(|i| (i * 7) % 60).collect();
                    let b = seq(k * n, 0.95);
                    for store in STORES {
                        let init = seq(m * n, 0.05);
                        let mut want = init.clone();
                        for i in 0..m {
                            for j in 0..n {
                                let s: f32 = (0..k).map(|p| data[offsets[i] + at(spread, p)] * b[p * n + j]).sum();
                                want[i * n + j] = store.apply(want[i * n + j], s);
                            }
                        }
                        let mut got = init.clone();
                        let a = Gathered {
                            data: &data,
                            offsets: &offsets,
                            spread,
                        };
                        gather_rows_gemm(m, k, n, a, Mat::rows(&b, n), &mut got, n, store);
                        for (g, w) in got.iter().zip(&want) {
                            assert!(
                                (g - w).abs() < 1e-2 * w.abs().max(1.0),
                                "{path} {m}x{k}x{n} {spread:?}: {g} vs {w}"
                            );
                        }
                    }
                }
            }
        }
    });
}

#[test]
fn transpose_matches_the_definition() {
    on_every_path(|path| {
        for (rows, cols) in [(0, 3), (1, 1), (8, 8), (16, 150), (9, 17), (3, 20), (24, 7)] {
            // Rows 3 further apart than their length, on both sides, or packed.
            for (ldx, ldy) in [(cols + 3, rows + 3), (cols, rows)] {
                let x = seq(rows * ldx, 0.2);
                let mut y = vec![f32::NAN; cols * ldy];
                transpose(rows, cols, Mat::rows(&x, ldx), &mut y, ldy);
                for j in 0..cols {
                    for i in 0..ldy {
                        let want = if i < rows { x[i * ldx + j] } else { f32::NAN };
                        let got = y[j * ldy + i];
                        let same = got == want || (got.is_nan() && want.is_nan());
                        assert!(same, "{path} {rows}x{cols} at ({i}, {j}): {got} vs {want}");
                    }
                }
            }
        }
    });
}

#[test]
fn split_columns_matches_the_definition() {
    on_every_path(|path| {
        for w in [1usize, 2, 15, 16, 17, 31, 32, 33, 64, 70] {
            // 2 planes of 3 rows, the rows 5 further apart than their length in the source
            // and 2 in the destinations; everything else left as it was.
            let (planes, rows) = (2, 3);
            let (sr, dr) = (w + 5, w.div_ceil(2) + 2);
            let at = Columns {
                planes,
                rows,
                w,
                src: [sr, rows * sr + 1],
                dst: [dr, rows * dr + 3],
            };
            let src = seq(planes * (rows * sr + 1), 0.4);
            let len = planes * (rows * dr + 3);
            let (mut even, mut odd) = (vec![f32::NAN; len], vec![f32::NAN; len]);
            split_columns(&src, &mut even, &mut odd, at);
            for i in 0..len {
                let (p, rest) = (i / (rows * dr + 3), i % (rows * dr + 3));
                let (r, c) = (rest / dr, rest % dr);
                let from = |c: usize| (r < rows && c < w).then(|| src[p * (rows * sr + 1) + r * sr + c]);
                for (got, want, what) in [(even[i], from(2 * c), "even"), (odd[i], from(2 * c + 1), "odd")] {
                    let same = want.map_or(got.is_nan(), |want| got == want);
                    assert!(same, "{path} w {w}, {what} [{i}]: {got} vs {want:?}");
                }
            }
        }
    });
}

#[test]
fn shifted_windows_sum_as_defined() {
    on_every_path(|path| {
        let rows = seq(300, 0.55);
        for n in [0, 1, 8, 31, 32, 33, 100] {
            for starts in [vec![], vec![5], vec![0, 7, 3, 150, 199]] {
                let mut out = vec![f32::NAN; n];
                sum_shifted(&rows, &starts, &mut out);
                for (q, got) in out.iter().enumerate() {
                    let want: f32 = starts.iter().map(|&s| rows[s + q]).sum();
                    assert!(
                        (got - want).abs() < 1e-5,
                        "{path} n={n} {starts:?} [{q}]: {got} vs {want}"
                    );
                }
            }
        }
    });
}

#[test]
fn sum_is_the_sum() {
    let xs: Vec<f32> = (1..=100).map(|i| i as f32).collect();
    assert_eq!(sum(&xs), 5050.0);
}

#[test]
#[should_panic(expected = "sum_shifted: every window of 3 elements must lie inside the 4 rows elements")]
fn sum_shifted_rejects_a_window_past_the_end() {
    sum_shifted(&[0.0; 4], &[0, 2], &mut [0.0; 3]);
}

#[test]
#[should_panic(expected = "gather_cols_gemm: C (2x2, strides 1, 3) does not fit its 4 elements")]
fn gather_cols_gemm_rejects_a_short_output() {
    let a = Gathered::new(&[0.0; 4], &[0]);
    gather_cols_gemm(
        2,
        1,
        2,
        a,
        Mat::rows(&[0.0; 2], 2),
        &mut [0.0; 4],
        [1, 3],
        Store::Overwrite,
    );
}

#[test]
#[should_panic(expected = "gather_gemm: B needs 2 row offsets, each with 3 elements")]
fn gather_gemm_rejects_an_offset_past_the_end() {
    let b = Gathered::new(&[0.0; 4], &[0, 2]);
    gather_gemm(
        1,
        2,
        3,
        Mat::rows(&[0.0; 2], 2),
        b,
        &mut [0.0; 3],
        3,
        Store::Overwrite,
        Finish::NONE,
    );
}

#[test]
#[should_panic(
    expected = "gather_gemm: B needs 1 row offsets, each with 6 elements (spread Image { width: 4, stride: 4 })"
)]
fn gather_gemm_rejects_rows_that_are_not_whole_image_rows() {
    let b = Gathered::new(&[0.0; 8], &[0]).image(4, 4);
    gather_gemm(
        1,
        1,
        6,
        Mat::rows(&[0.0; 1], 1),
        b,
        &mut [0.0; 6],
        6,
        Store::Overwrite,
        Finish::NONE,
    );
}

#[test]
#[should_panic(expected = "small_gemm: C (2x3, row stride 3) does not fit its 5 elements")]
fn small_gemm_rejects_a_short_output() {
    let (a, b) = (Mat::rows(&[0.0; 2], 1), Mat::rows(&[0.0; 3], 3));
    small_gemm(2, 1, 3, a, b, &mut [0.0; 5], 3, Store::Overwrite);
}

#[test]
fn f64_sums_are_the_same_bits_on_every_path() {
    for n in [0, 1, 7, 8, 9, 31, 32, 33, 100, 1027] {
        let (x, dy) = (seq(n, 0.35), seq(n, 1.7));
        let mean = 0.25;
        let want = (
            x.iter().map(|&v| v as f64).sum::<f64>(),
            x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>(),
            dy.iter().map(|&g| g as f64).sum::<f64>(),
            x.iter()
                .zip(&dy)
                .map(|(&v, &g)| g as f64 * (v as f64 - mean))
                .sum::<f64>(),
        );
        let on = |isa| {
            isa::with(isa, || {
                let (s, sx) = sums_dy_f64(&x, &dy, mean);
                (sum_f64(&x), sum_sq_dev_f64(&x, mean), s, sx)
            })
        };
        let portable = on(Isa::PORTABLE);
        for (got, want) in [
            (portable.0, want.0),
            (portable.1, want.1),
            (portable.2, want.2),
            (portable.3, want.3),
        ] {
            assert!(
                (got - want).abs() <= 1e-9 * want.abs().max(1.0),
                "n={n}: {got} vs {want}"
            );
        }
        for isa in Isa::supported() {
            assert_eq!(on(isa), portable, "{} n={n}", isa.path().name());
        }
    }
}

/// A 2x2 product by `gather_gemm`, finished as `finish` says.
fn finish_2x2(finish: Finish) {
    let b = Gathered::new(&[0.0; 4], &[0]);
    gather_gemm(
        2,
        1,
        2,
        Mat::rows(&[0.0; 2], 1),
        b,
        &mut [0.0; 4],
        2,
        Store::Overwrite,
        finish,
    );
}

#[test]
#[should_panic(expected = "gather_gemm: the bias needs 2 entries, got 1")]
fn gather_gemm_rejects_a_short_bias() {
    finish_2x2(Finish {
        bias: Some(&[1.0]),
        ..Finish::NONE
    });
}

#[test]
#[should_panic(expected = "gather_gemm: the residual (2x2, row stride 2) does not fit its 3 elements")]
fn gather_gemm_rejects_a_short_residual() {
    finish_2x2(Finish {
        residual: Some(&[0.0; 3]),
        ..Finish::NONE
    });
}
