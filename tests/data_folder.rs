//! `ImageFolder::load` on PNG and JPEG files the tests write: torchvision's class and file
//! order, exact pixels (RGB planes, grayscale, PIL's luma), every error naming the file or the
//! class, decompression bombs refused with little memory, damaged images that never panic.
//!
//! A counting global allocator (`tests/counting/`) measures what loading allocates.

use std::fs;
use std::io::Write;
use std::path::Path;

use cnn::data::{load_any, Format, ImageFolder};
use image::{GrayImage, ImageFormat, Luma, Rgb, RgbImage};
use proptest::prelude::*;

mod counting;

use counting::largest_allocation;

/// A 4x3 (width x height) RGB image whose pixel (x, y) is `(base + x, base + 10 y, base + 100)`.
fn rgb(base: u8) -> RgbImage {
    RgbImage::from_fn(4, 3, |x, y| Rgb([base + x as u8, base + 10 * y as u8, base + 100]))
}

fn save_png(image: &RgbImage, path: &Path) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    image.save_with_format(path, ImageFormat::Png).unwrap();
}

/// The image's pixels as our layout: R plane, G plane, B plane.
fn planes(image: &RgbImage) -> Vec<u8> {
    (0..3).flat_map(|c| image.pixels().map(move |p| p.0[c])).collect()
}

/// train/ and test/ with classes `b`, `a`, `c` (created in that order), files out of order,
/// a nested folder, an upper-case extension, and files that are not images.
fn write_tree(root: &Path) {
    for split in ["train", "test"] {
        let s = root.join(split);
        save_png(&rgb(1), &s.join("b/2.png"));
        save_png(&rgb(2), &s.join("b/10.png"));
        save_png(&rgb(3), &s.join("a/z.PNG"));
        save_png(&rgb(4), &s.join("a/sub/0.png"));
        save_png(&rgb(5), &s.join("a/m.png"));
        save_png(&rgb(6), &s.join("c/x.png"));
        fs::write(s.join("a/notes.txt"), b"not an image").unwrap();
        fs::write(s.join("c/.DS_Store"), b"\0\0").unwrap();
    }
}

#[test]
fn classes_files_and_pixels_follow_torchvision() {
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path());
    let set = ImageFolder::load(dir.path(), [3, 3, 4]).unwrap();
    assert_eq!(set.class_names, ["a", "b", "c"]);
    assert_eq!((set.train.shape(), set.train.classes()), ([3, 3, 4], 3));
    // a: m.png, z.PNG (sorted names in a/), then a/sub/0.png (a/sub sorts after a);
    // b: 10.png before 2.png (string order); c: x.png.
    let order = [(5, 0), (3, 0), (4, 0), (2, 1), (1, 1), (6, 2)];
    for split in [&set.train, &set.test] {
        assert_eq!(split.len(), order.len());
        for (i, &(base, label)) in order.iter().enumerate() {
            assert_eq!(split.label(i), label, "sample {i}");
            assert_eq!(split.image(i), planes(&rgb(base)), "sample {i}");
        }
    }
    assert_eq!(Format::detect(dir.path()).unwrap(), Format::ImageFolder);
    let any = load_any(dir.path(), [3, 3, 4]).unwrap();
    assert_eq!((any.train, any.class_names), (set.train, set.class_names));
}

#[test]
fn grayscale_reads_gray_as_is_and_color_as_pil_luma() {
    let dir = tempfile::tempdir().unwrap();
    let gray = GrayImage::from_fn(5, 2, |x, y| Luma([(x * 40 + y) as u8]));
    for split in ["train", "test"] {
        let class = dir.path().join(split).join("digit");
        fs::create_dir_all(&class).unwrap();
        gray.save_with_format(class.join("g.png"), ImageFormat::Png).unwrap();
        RgbImage::from_pixel(5, 2, Rgb([200, 100, 50]))
            .save_with_format(class.join("h.png"), ImageFormat::Png)
            .unwrap();
    }
    let set = ImageFolder::load(dir.path(), [1, 2, 5]).unwrap();
    assert_eq!(set.train.image(0), gray.as_raw().as_slice());
    // PIL: (19595 * 200 + 38470 * 100 + 7471 * 50 + 32768) >> 16 = 8172318 >> 16 = 124.
    assert!(set.train.image(1).iter().all(|&p| p == 124), "{:?}", set.train.image(1));
    // The same gray image read as RGB: the value in all three planes.
    let rgb = ImageFolder::load(dir.path(), [3, 2, 5]).unwrap();
    assert_eq!(&rgb.test.image(0)[10..20], gray.as_raw().as_slice());
}

#[test]
fn jpeg_decodes() {
    let dir = tempfile::tempdir().unwrap();
    for split in ["train", "test"] {
        let class = dir.path().join(split).join("k");
        fs::create_dir_all(&class).unwrap();
        let mut file = fs::File::create(class.join("a.jpg")).unwrap();
        let image = RgbImage::from_pixel(16, 8, Rgb([120, 60, 200]));
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut file, 95)
            .encode_image(&image)
            .unwrap();
    }
    let set = ImageFolder::load(dir.path(), [3, 8, 16]).unwrap();
    let image = set.train.image(0);
    // JPEG is lossy (and subsamples color): within a few levels of what was written.
    for (c, want) in [120i32, 60, 200].into_iter().enumerate() {
        let plane = &image[c * 128..(c + 1) * 128];
        assert!(
            plane.iter().all(|&p| (i32::from(p) - want).abs() <= 4),
            "channel {c}: {plane:?}"
        );
    }
}

#[test]
fn every_error_names_the_file_or_the_class() {
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path());
    let load = || ImageFolder::load(dir.path(), [3, 3, 4]).unwrap_err().to_string();

    // An image of another size.
    let odd = dir.path().join("test/b/2.png");
    save_png(&RgbImage::new(5, 3), &odd);
    let msg = load();
    assert!(
        msg.contains("test/b/2.png") && msg.contains("5x3") && msg.contains("4x3"),
        "{msg}"
    );

    // A PNG cut short.
    let good = fs::read(dir.path().join("test/b/10.png")).unwrap();
    fs::write(&odd, &good[..good.len() / 2]).unwrap();
    let msg = load();
    assert!(msg.contains("test/b/2.png") && msg.contains("decode"), "{msg}");

    // Not an image at all, under an image name.
    fs::write(&odd, b"GIF? no, just text").unwrap();
    let msg = load();
    assert!(
        msg.contains("test/b/2.png") && msg.contains("not a PNG or JPEG"),
        "{msg}"
    );
    fs::write(&odd, &good).unwrap();

    // A class in one split only.
    save_png(&rgb(0), &dir.path().join("train/d/0.png"));
    let msg = load();
    assert!(
        msg.contains("`d`") && msg.contains("test/d") && msg.contains("one split only"),
        "{msg}"
    );
    // A class folder with no image in it.
    fs::create_dir_all(dir.path().join("test/d")).unwrap();
    let msg = load();
    assert!(msg.contains("test/d") && msg.contains("no image"), "{msg}");
    fs::remove_dir_all(dir.path().join("train/d")).unwrap();
    fs::remove_dir_all(dir.path().join("test/d")).unwrap();

    // A shape that cannot be read, and a missing split.
    let msg = ImageFolder::load(dir.path(), [2, 3, 4]).unwrap_err().to_string();
    assert!(
        msg.contains("C must be 1") && msg.contains(&dir.path().display().to_string()),
        "{msg}"
    );
    fs::remove_dir_all(dir.path().join("test")).unwrap();
    let err = ImageFolder::load(dir.path(), [3, 3, 4]).unwrap_err();
    assert!(
        matches!(&err, cnn::Error::Io { path, .. } if path.ends_with("test")),
        "{err:?}"
    );
}

/// A PNG file from chunks (type, data), each with its length and CRC.
fn png(chunks: &[(&[u8; 4], Vec<u8>)]) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in chunks {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(&kind[..]);
        crc.update(data);
        out.extend_from_slice(&kind[..]);
        out.extend_from_slice(data);
        out.extend_from_slice(&crc.sum().to_be_bytes());
    }
    out
}

/// IHDR of an 8-bit RGB image.
fn ihdr(width: u32, height: u32) -> Vec<u8> {
    let mut data = width.to_be_bytes().to_vec();
    data.extend_from_slice(&height.to_be_bytes());
    data.extend_from_slice(&[8, 2, 0, 0, 0]);
    data
}

fn zlib(bytes: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(bytes).unwrap();
    z.finish().unwrap()
}

#[test]
fn decompression_bombs_are_refused_with_little_memory() {
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path());
    let bomb = dir.path().join("train/a/m.png");

    // A header claiming 60000x60000 pixels (10.8 GB as RGB): refused from the header.
    let rows = zlib(&[0u8; 4 * 13]);
    fs::write(
        &bomb,
        png(&[(b"IHDR", ihdr(60_000, 60_000)), (b"IDAT", rows), (b"IEND", vec![])]),
    )
    .unwrap();
    let (largest, result) = largest_allocation(|| ImageFolder::load(dir.path(), [3, 3, 4]));
    let msg = result.unwrap_err().to_string();
    assert!(msg.contains("train/a/m.png") && msg.contains("60000x60000"), "{msg}");
    assert!(largest < 1 << 20, "largest allocation {largest} bytes");

    // The right size, then 64 MiB of zeros deflated into 64 KiB: not inflated past the image.
    let rows = zlib(&vec![0u8; 64 << 20]);
    assert!(rows.len() < 1 << 17);
    fs::write(&bomb, png(&[(b"IHDR", ihdr(4, 3)), (b"IDAT", rows), (b"IEND", vec![])])).unwrap();
    let (largest, result) = largest_allocation(|| ImageFolder::load(dir.path(), [3, 3, 4]));
    // Whether the decoder calls the extra data an error or ignores it, nothing large is made.
    if let Err(e) = &result {
        assert!(e.to_string().contains("train/a/m.png"), "{e}");
    }
    assert!(largest < 4 << 20, "largest allocation {largest} bytes");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    /// A damaged PNG or JPEG (bytes changed, cut, or grown) loads as an image of the right
    /// shape or fails naming the file; it never panics.
    #[test]
    fn damaged_images_never_panic(
        jpeg in any::<bool>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let image = RgbImage::from_fn(8, 6, |x, y| Rgb([x as u8 * 30, y as u8 * 40, 77]));
        let mut bytes = Vec::new();
        let format = if jpeg { ImageFormat::Jpeg } else { ImageFormat::Png };
        image.write_to(&mut std::io::Cursor::new(&mut bytes), format).unwrap();
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= value;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        let name = if jpeg { "x.jpg" } else { "x.png" };
        for split in ["train", "test"] {
            let class = dir.path().join(split).join("k");
            fs::create_dir_all(&class).unwrap();
            fs::write(class.join(name), &bytes).unwrap();
        }
        match ImageFolder::load(dir.path(), [3, 6, 8]) {
            Ok(set) => prop_assert_eq!(set.train.image(0).len(), 3 * 6 * 8),
            Err(e) => prop_assert!(e.to_string().contains(name), "{}", e),
        }
    }
}
