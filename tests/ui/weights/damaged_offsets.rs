// fc.bias's data_offsets hold 8 bytes, not the 12 of its shape [3].
// (trybuild builds this in <target dir>/tests/trybuild/cnn/, its CARGO_MANIFEST_DIR, where tests/ui.rs
// copies tests/ui/weights/fixtures/: hence `fixtures/...`)
use cnn::prelude::*;

cnn! {
    #[weights = "fixtures/damaged_offsets.safetensors"]
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
