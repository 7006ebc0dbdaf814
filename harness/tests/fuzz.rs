//! A mutation fuzzer for what opa reads from users: scenario files (parse and validation),
//! load traces, checkpoint headers and candidates files. Inputs are the shipped files,
//! mutated by a seeded generator (bytes flipped, inserted, deleted; lines repeated or cut;
//! numbers replaced by extreme values); every input must give a value or an error, never a
//! panic. The suite runs a short deterministic corpus; a longer run:
//! `OPA_FUZZ_EXECS=1000000 cargo test --release -p opa-harness --test fuzz -- --nocapture`
//! (docs/results.md has the figures).

use rand::{Rng, SeedableRng};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Executions per target: `OPA_FUZZ_EXECS`, or a short run.
fn execs(short: usize) -> usize {
    std::env::var("OPA_FUZZ_EXECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(short)
}

const EXTREMES: [&str; 12] = [
    "0",
    "-1",
    "1e300",
    "-1e300",
    "nan",
    "inf",
    "18446744073709551615",
    "9223372036854775807",
    "4294967296",
    "0.0000001",
    "\"\"",
    "[]",
];

/// `input` changed by one to four mutations drawn from `rng`.
fn mutate(input: &[u8], rng: &mut impl Rng) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        let n = v.len().max(1);
        match rng.random_range(0..7) {
            0 if !v.is_empty() => {
                let i = rng.random_range(0..v.len());
                v[i] ^= 1 << rng.random_range(0..8);
            }
            1 => {
                let i = rng.random_range(0..=v.len());
                v.insert(i, rng.random());
            }
            2 if !v.is_empty() => {
                let i = rng.random_range(0..v.len());
                let j = (i + rng.random_range(1..16)).min(v.len());
                v.drain(i..j);
            }
            3 => {
                // A line repeated (tables, keys given twice).
                let text = String::from_utf8_lossy(&v).into_owned();
                let lines: Vec<&str> = text.lines().collect();
                if !lines.is_empty() {
                    let k = rng.random_range(0..lines.len());
                    let mut out = lines[..=k].join("\n");
                    out.push('\n');
                    out.push_str(&lines[k..].join("\n"));
                    v = out.into_bytes();
                }
            }
            4 => {
                // A number replaced by an extreme value.
                let starts: Vec<usize> = (0..v.len())
                    .filter(|&i| {
                        v[i].is_ascii_digit() && (i == 0 || !v[i - 1].is_ascii_alphanumeric())
                    })
                    .collect();
                if !starts.is_empty() {
                    let i = starts[rng.random_range(0..starts.len())];
                    let mut j = i;
                    while j < v.len() && (v[j].is_ascii_digit() || v[j] == b'.') {
                        j += 1;
                    }
                    let x = EXTREMES[rng.random_range(0..EXTREMES.len())];
                    v.splice(i..j, x.bytes());
                }
            }
            5 => v.truncate(rng.random_range(0..n)),
            _ => {
                // Nesting: an opening bracket or brace.
                let i = rng.random_range(0..=v.len());
                let b = [b'[', b'{', b'"'][rng.random_range(0..3)];
                v.insert(i, b);
            }
        }
    }
    v
}

/// Runs `target` on `n` mutations of each of `corpus`; returns the executions, and panics with
/// the first input that panicked.
fn fuzz(name: &str, corpus: &[Vec<u8>], n: usize, seed: u64, target: impl Fn(&[u8])) -> usize {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut execs = 0;
    for k in 0..n {
        let input = mutate(&corpus[k % corpus.len()], &mut rng);
        execs += 1;
        if catch_unwind(AssertUnwindSafe(|| target(&input))).is_err() {
            panic!(
                "{name}: input {k} panicked:\n{}",
                String::from_utf8_lossy(&input)
            );
        }
    }
    println!("{name}: {execs} executions, 0 crashes");
    execs
}

fn files(dir: &str, ext: &str) -> Vec<Vec<u8>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

#[test]
fn scenario_parsing_and_validation_never_panic() {
    let corpus = files("scenarios", "toml");
    assert!(corpus.len() >= 9);
    let base = root().join("scenarios");
    fuzz("scenario", &corpus, execs(20_000), 1, |b| {
        let _ = opa_harness::scenario::parse("fuzz.toml", &String::from_utf8_lossy(b), &base);
    });
}

#[test]
fn trace_parsing_never_panics() {
    let corpus = files("scenarios/traces", "csv");
    assert!(!corpus.is_empty());
    fuzz("trace", &corpus, execs(20_000), 2, |b| {
        let _ = opa_harness::scenario::parse_trace(&String::from_utf8_lossy(b));
    });
}

#[test]
fn checkpoint_headers_never_panic() {
    // The header and the first bytes of the payload: a damaged header must be an error
    // before anything is allocated from it.
    let ck =
        std::fs::read(root().join("supernet/checkpoints/fashion-mnist/supernet.opack")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.opack");
    fuzz(
        "checkpoint header",
        &[ck[..4096].to_vec()],
        execs(2_000),
        3,
        |b| {
            std::fs::write(&path, b).unwrap();
            let _ = opa_supernet::checkpoint::read_header(&path);
        },
    );
}

#[test]
fn candidates_files_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let ck = root().join("supernet/checkpoints/fashion-mnist/supernet.opack");
    let text =
        std::fs::read(root().join("supernet/checkpoints/fashion-mnist/candidates.json")).unwrap();
    // Two candidates: mutations then reach the statistics, not only the long tail of them.
    let mut json: serde_json::Value = serde_json::from_slice(&text).unwrap();
    json["candidates"].as_array_mut().unwrap().truncate(2);
    let small = serde_json::to_vec_pretty(&json).unwrap();
    let path = dir.path().join("c.json");
    fuzz("candidates", &[small], execs(1_000), 4, |b| {
        std::fs::write(&path, b).unwrap();
        let _ = opa_harness::deployment::read_candidates(&ck, &path);
    });
}
