//! Damaged checkpoints and candidates files are errors that name the file (exit code 2),
//! never a panic, a huge allocation or a silently different result.

mod common;

use common::{opa, text};
use std::path::{Path, PathBuf};

fn shipped(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../supernet/checkpoints/fashion-mnist")
        .join(name)
}

/// The shipped checkpoint's parts: header JSON and payload.
fn checkpoint_parts() -> (String, Vec<u8>) {
    let b = std::fs::read(shipped("supernet.opack")).unwrap();
    let hlen = u32::from_le_bytes(b[8..12].try_into().unwrap()) as usize;
    (
        String::from_utf8(b[12..12 + hlen].to_vec()).unwrap(),
        b[12 + hlen..].to_vec(),
    )
}

/// A checkpoint file of `header` and `payload`.
fn checkpoint(path: &Path, header: &str, payload: &[u8]) -> String {
    let mut b = b"OPACKPT1".to_vec();
    b.extend_from_slice(&(header.len() as u32).to_le_bytes());
    b.extend_from_slice(header.as_bytes());
    b.extend_from_slice(payload);
    std::fs::write(path, b).unwrap();
    path.to_str().unwrap().to_string()
}

fn exits_2(args: &[&str], says: &[&str]) {
    let o = opa(args);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {t}");
    assert!(!t.contains("panicked"), "{t}");
    for s in says {
        assert!(t.contains(s), "{args:?} should say {s:?}: {t}");
    }
}

#[test]
fn damaged_checkpoint_headers_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (header, payload) = checkpoint_parts();
    let eval = |ck: &str, says: &[&str]| {
        exits_2(&["eval", "--arch", "largest", "--checkpoint", ck], says);
    };
    // One bit of input_size flipped (28 → 29): the checksum covers the header.
    let flipped = header.replacen("\"input_size\":28", "\"input_size\":29", 1);
    assert_ne!(flipped, header);
    let p = checkpoint(&dir.path().join("flip.opack"), &flipped, &payload);
    eval(&p, &["flip.opack", "checksum mismatch"]);
    // Section lengths that wrap when added.
    let huge = header.replacen(
        &format!("\"optimizer_len\":{}", 0),
        &format!("\"optimizer_len\":{}", u64::MAX),
        1,
    );
    assert_ne!(huge, header);
    let p = checkpoint(&dir.path().join("wrap.opack"), &huge, &payload);
    eval(&p, &["wrap.opack", "payload bytes"]);
    // A checkpoint from before the header was covered, asking for a network too large to
    // build: refused before anything is allocated.
    let sum = {
        let f = dir.path().join("payload");
        std::fs::write(&f, &payload).unwrap();
        opa_datasets::shipped::sha256_file(&f).unwrap()
    };
    let start = header.find("\"payload_sha256\":\"").unwrap() + 18;
    let legacy = format!("{}{}{}", &header[..start], sum, &header[start + 64..])
        .replacen(",\"covers\":\"header-and-payload\"", "", 1)
        .replacen("\"stem_channels\":16", "\"stem_channels\":4000000000", 1);
    let p = checkpoint(&dir.path().join("legacy.opack"), &legacy, &payload);
    eval(
        &p,
        &["legacy.opack", "stem_channels = 4000000000: at most 4096"],
    );
    // The same file without the giant is accepted: payload-only checksums still read.
    let fine = legacy.replacen("\"stem_channels\":4000000000", "\"stem_channels\":16", 1);
    let p = checkpoint(&dir.path().join("fine.opack"), &fine, &payload);
    let h = opa_supernet::checkpoint::read_header(Path::new(&p)).unwrap();
    assert_eq!(h.covers, opa_supernet::checkpoint::Covers::Payload);
}

#[test]
fn damaged_candidates_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(shipped("candidates.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let replay = |cands: &serde_json::Value, name: &str, says: &[&str]| {
        let path = dir.path().join(name);
        std::fs::write(&path, serde_json::to_string(cands).unwrap()).unwrap();
        let sc = dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &sc,
            format!(
                "name = \"c\"\ncheckpoint = {:?}\ncandidates = {:?}\n[requirement]\ndeadline-ms = 2\n[[stream.segment]]\nduration-s = 5\nfps = 10\n[[selector]]\nkind = \"fixed-largest\"\n",
                shipped("supernet.opack").to_str().unwrap(),
                path.to_str().unwrap()
            ),
        )
        .unwrap();
        exits_2(
            &[
                "replay",
                sc.to_str().unwrap(),
                "--profile",
                shipped("profile.parquet").to_str().unwrap(),
                "--out",
                dir.path().join("out").to_str().unwrap(),
            ],
            says,
        );
        assert!(!dir.path().join("out").exists());
    };
    let mut macs = json.clone();
    macs["candidates"][0]["macs"] = serde_json::json!(u64::MAX);
    replay(&macs, "macs.json", &["macs.json", "multiply-adds"]);
    let mut var = json.clone();
    let layers = var["candidates"][1]["bn"]["layers"]
        .as_object_mut()
        .unwrap();
    let (_, first) = layers.iter_mut().next().unwrap();
    first[1][0] = serde_json::json!(-0.5);
    replay(&var, "var.json", &["var.json", "negative"]);
    let mut top1 = json.clone();
    top1["candidates"][2]["calibration_top1"] = serde_json::json!(7.0);
    replay(&top1, "top1.json", &["top1.json", "calibration_top1 = 7"]);

    // A candidate without statistics for a layer: `opa eval` names the file and the candidate.
    let mut gap = json;
    let id = gap["candidates"][0]["id"].as_str().unwrap().to_string();
    gap["candidates"][0]["bn"]["layers"]
        .as_object_mut()
        .unwrap()
        .remove("0");
    let path = dir.path().join("gap.json");
    std::fs::write(&path, serde_json::to_string(&gap).unwrap()).unwrap();
    exits_2(
        &[
            "eval",
            "--arch",
            &id,
            "--candidates",
            path.to_str().unwrap(),
            "--no-latency",
        ],
        &["gap.json", &id, "no batch-norm statistics for layer 0"],
    );
}

#[test]
fn a_damaged_profile_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = std::fs::read(shipped("profile.parquet")).unwrap();
    // Flips across the file: each is caught by the decoder or by the content checksum.
    for (k, at) in [1000usize, 50_000, 150_000, 300_000]
        .into_iter()
        .enumerate()
    {
        b[at] ^= 1 << k;
        let p = dir.path().join(format!("p{k}.parquet"));
        std::fs::write(&p, &b).unwrap();
        b[at] ^= 1 << k;
        exits_2(
            &[
                "replay",
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../scenarios/quickstart.toml")
                    .to_str()
                    .unwrap(),
                "--profile",
                p.to_str().unwrap(),
                "--out",
                dir.path().join("out").to_str().unwrap(),
            ],
            &[&format!("p{k}.parquet")],
        );
    }
}
