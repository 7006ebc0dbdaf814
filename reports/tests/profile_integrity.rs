//! A damaged profile is an error, never a plausible profile with other numbers in it: the
//! file carries a checksum of its content.

use opa_reports::profile::{read_profile, write_profile};
use std::path::Path;

#[test]
fn single_bit_flips_are_caught_or_change_nothing() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../supernet/checkpoints/fashion-mnist/profile.parquet");
    let bytes = std::fs::read(&shipped).unwrap();
    let want = serde_json::to_string(&read_profile(&shipped).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.parquet");
    let (mut caught, mut harmless) = (0, 0);
    for (k, at) in (0..bytes.len()).step_by(bytes.len() / 400).enumerate() {
        let mut b = bytes.clone();
        b[at] ^= 1 << (k % 8);
        std::fs::write(&path, &b).unwrap();
        match read_profile(&path) {
            Err(e) => {
                assert!(e.to_string().contains("p.parquet"), "{e}");
                caught += 1;
            }
            // A flip in bytes that hold no value (padding, statistics) changes nothing.
            Ok(p) => {
                assert_eq!(
                    serde_json::to_string(&p).unwrap(),
                    want,
                    "flip at byte {at}"
                );
                harmless += 1;
            }
        }
    }
    println!("{caught} caught, {harmless} harmless");
    assert!(caught > harmless);
}

#[test]
fn profiles_round_trip_with_their_checksum() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../supernet/checkpoints/fashion-mnist/profile.parquet");
    let p = read_profile(&shipped).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.parquet");
    write_profile(&path, &p).unwrap();
    let again = read_profile(&path).unwrap();
    assert_eq!(
        serde_json::to_string(&p).unwrap(),
        serde_json::to_string(&again).unwrap()
    );
}
