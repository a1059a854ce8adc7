//! Any bytes as an IDX image file (the first half) and label file (the second), gzipped or
//! not: `Dataset::load` returns `Ok` with labels in 0..10 or `Err`, and never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (images, labels) = data.split_at(data.len() / 2);
    let dir = std::env::temp_dir();
    let id = std::process::id();
    let (ip, lp) = (dir.join(format!("cnn-fuzz-images-{id}")), dir.join(format!("cnn-fuzz-labels-{id}")));
    std::fs::write(&ip, images).unwrap();
    std::fs::write(&lp, labels).unwrap();
    if let Ok(set) = cnn::data::Dataset::load(&ip, &lp) {
        assert!(set.labels().iter().all(|&l| l < 10));
        assert_eq!(set.labels().len(), set.len());
    }
});
