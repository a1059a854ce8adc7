use cnn::prelude::*;

cnn! {
    // Branches that are concatenated (Inception) are not supported.
    struct Net {
        input: [8, 8, 8],
        mixed: Parallel {
            a: Conv2d(4, kernel = 1),
            b: Conv2d(4, kernel = 3, padding = 1),
        },
    }
}

fn main() {}
