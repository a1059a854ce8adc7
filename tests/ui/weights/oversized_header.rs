// A header longer than the loader's 1 MiB.
// (trybuild builds this in <target dir>/tests/trybuild/cnn/, its CARGO_MANIFEST_DIR, where tests/ui.rs
// copies tests/ui/weights/fixtures/: hence `fixtures/...`)
use cnn::prelude::*;

cnn! {
    #[weights = "fixtures/oversized_header.safetensors"]
    struct Net {
        input: [1, 4, 4],
        conv: Conv2d(2, kernel = 3) -> Relu,
        flatten: Flatten,
        fc: Dense(3),
    }
}

fn main() {
    let _ = Net::pretrained().predict(&[0.0; 16]);
}
