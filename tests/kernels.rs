//! `CNN_KERNELS` chooses the kernels' path for the process; without it, the widest the CPU has.

#[test]
fn the_kernels_are_the_ones_asked_for_or_the_widest() {
    let name = cnn::kernels();
    match std::env::var("CNN_KERNELS") {
        Ok(asked) => assert_eq!(name, asked),
        Err(_) => {
            #[cfg(target_arch = "x86_64")]
            let widest = if std::is_x86_feature_detected!("avx512f") {
                "avx512"
            } else if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                "avx2"
            } else {
                "portable"
            };
            #[cfg(not(target_arch = "x86_64"))]
            let widest = "portable";
            assert_eq!(name, widest);
        }
    }
}

/// Run as a child process of the test below, with the environment it sets.
#[test]
#[ignore = "run by an_unknown_path_is_refused_by_name, in a process of its own"]
fn child_asks_for_the_kernels() {
    cnn::kernels();
}

#[test]
fn an_unknown_path_is_refused_by_name() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "child_asks_for_the_kernels", "--nocapture"])
        .env("CNN_KERNELS", "avx1024")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("CNN_KERNELS=avx1024: unknown kernels; expected one of portable"),
        "{stderr}"
    );
}
