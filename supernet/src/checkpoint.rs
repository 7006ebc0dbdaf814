//! Checkpoints: one file holding the super-network's configuration, its weights, the shared
//! batch-norm statistics and (optionally) the optimizer state for `--resume`.
//!
//! Layout: the 8 magic bytes `OPACKPT1`, a little-endian `u32` header length, a JSON header
//! ([`CheckpointHeader`]: config, training progress, section lengths, SHA-256 of the payload),
//! then the payload: the weights (a burnpack record) followed by the optimizer state. Every
//! read checks magic, lengths and checksum, so a damaged file is reported, never half-loaded.

use crate::arch::SupernetConfig;
use crate::model::{BnStats, SupernetWeights};
use burn::module::Module;
use burn::tensor::{Bytes, Device};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"OPACKPT1";

/// What is wrong with a checkpoint file.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not an opa checkpoint, or is damaged.
    #[error("{}: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The JSON header of a checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckpointHeader {
    /// The super-network configuration the weights belong to.
    pub config: SupernetConfig,
    /// Epochs completed when it was written.
    pub epoch: usize,
    /// Optimizer steps completed.
    pub step: usize,
    /// Batch-norm running statistics of the full network, tracked on the largest sub-network
    /// during training ("uncalibrated" statistics; sub-networks should be recalibrated).
    pub shared_bn: BnStats,
    /// Bytes of the weights section.
    pub weights_len: usize,
    /// Bytes of the optimizer section (0 when absent).
    pub optimizer_len: usize,
    /// SHA-256 (hex) of what [`CheckpointHeader::covers`] says: the header (with this
    /// field's value as 64 zeros) and the payload (weights + optimizer), or the payload only.
    pub payload_sha256: String,
    /// What the checksum covers; checkpoints written before the header was covered lack the
    /// key and cover the payload only (their header is range-checked all the same).
    #[serde(default)]
    pub covers: Covers,
}

/// What a checkpoint's checksum covers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Covers {
    /// The payload only.
    #[default]
    Payload,
    /// The header (its checksum field zeroed) and the payload.
    HeaderAndPayload,
}

/// The checksum field's value while the checksum is computed.
const UNSUMMED: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Where the checksum `value` stands in the header's JSON bytes.
fn sum_at(json: &[u8], value: &str) -> Option<usize> {
    let key = format!("\"payload_sha256\":\"{value}\"");
    json.windows(key.len())
        .position(|w| w == key.as_bytes())
        .map(|i| i + key.len() - value.len() - 1)
}

/// SHA-256 (hex) of `header` and `parts`, in order.
fn checksum(header: &[u8], parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    h.update(header);
    for p in parts {
        h.update(p);
    }
    format!("{:x}", h.finalize())
}

/// A loaded checkpoint.
pub struct Checkpoint {
    /// Its header.
    pub header: CheckpointHeader,
    /// The weights, on the device asked for.
    pub weights: SupernetWeights,
    /// The optimizer state bytes, if saved.
    pub optimizer: Option<Vec<u8>>,
}

fn corrupt(path: &Path, reason: impl Into<String>) -> CheckpointError {
    CheckpointError::Corrupt {
        path: path.into(),
        reason: reason.into(),
    }
}

/// Writes a checkpoint atomically (to a temporary file renamed into place).
pub fn save(
    path: &Path,
    config: &SupernetConfig,
    weights: &SupernetWeights,
    shared_bn: &BnStats,
    progress: (usize, usize),
    optimizer: Option<&[u8]>,
) -> Result<(), CheckpointError> {
    let record = weights
        .clone()
        .into_record()
        .into_bytes()
        .map_err(|e| corrupt(path, format!("cannot serialise weights: {e:?}")))?;
    let weights_bytes: &[u8] = &record;
    let opt = optimizer.unwrap_or(&[]);
    let header = CheckpointHeader {
        config: config.clone(),
        epoch: progress.0,
        step: progress.1,
        shared_bn: shared_bn.clone(),
        weights_len: weights_bytes.len(),
        optimizer_len: opt.len(),
        payload_sha256: UNSUMMED.into(),
        covers: Covers::HeaderAndPayload,
    };
    let mut json = serde_json::to_vec(&header).map_err(|e| corrupt(path, e.to_string()))?;
    let sum = checksum(&json, &[weights_bytes, opt]);
    let at = sum_at(&json, UNSUMMED).expect("the header holds its checksum field");
    json[at..at + UNSUMMED.len()].copy_from_slice(sum.as_bytes());
    let mut out = Vec::with_capacity(12 + json.len() + weights_bytes.len() + opt.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(weights_bytes);
    out.extend_from_slice(opt);
    write_atomic(path, &out).map_err(|e| CheckpointError::Io {
        path: path.into(),
        source: e,
    })
}

/// Writes `bytes` to `path` through a temporary file in the same directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Reads and checks only the header (cheap: no tensors are built).
pub fn read_header(path: &Path) -> Result<CheckpointHeader, CheckpointError> {
    let bytes = std::fs::read(path).map_err(|e| CheckpointError::Io {
        path: path.into(),
        source: e,
    })?;
    parse(path, &bytes).map(|(h, _)| h)
}

fn parse<'a>(
    path: &Path,
    bytes: &'a [u8],
) -> Result<(CheckpointHeader, &'a [u8]), CheckpointError> {
    if bytes.len() < 12 || &bytes[..8] != MAGIC {
        return Err(corrupt(
            path,
            "not an opa checkpoint (missing the OPACKPT1 magic bytes)",
        ));
    }
    let hlen = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
    if bytes.len() < 12 + hlen {
        return Err(corrupt(
            path,
            format!(
                "truncated: header says {hlen} header bytes, file holds {}",
                bytes.len() - 12
            ),
        ));
    }
    let raw = &bytes[12..12 + hlen];
    let header: CheckpointHeader = serde_json::from_slice(raw)
        .map_err(|e| corrupt(path, format!("unreadable header: {e}")))?;
    let payload = &bytes[12 + hlen..];
    let want = header.weights_len.checked_add(header.optimizer_len);
    if want != Some(payload.len()) {
        return Err(corrupt(
            path,
            format!(
                "truncated or damaged: header says {} + {} payload bytes, file holds {}",
                header.weights_len,
                header.optimizer_len,
                payload.len()
            ),
        ));
    }
    let sum = match header.covers {
        Covers::Payload => checksum(&[], &[payload]),
        Covers::HeaderAndPayload => {
            let mut zeroed = raw.to_vec();
            let at = sum_at(raw, &header.payload_sha256)
                .filter(|_| header.payload_sha256.len() == UNSUMMED.len())
                .ok_or_else(|| corrupt(path, "damaged header: its checksum field is malformed"))?;
            zeroed[at..at + UNSUMMED.len()].copy_from_slice(UNSUMMED.as_bytes());
            checksum(&zeroed, &[payload])
        }
    };
    if sum != header.payload_sha256 {
        return Err(corrupt(
            path,
            format!(
                "checksum mismatch: header says sha256 {}, the file has {sum}; the file is damaged",
                header.payload_sha256
            ),
        ));
    }
    if let Err(problems) = header.config.validate() {
        return Err(corrupt(
            path,
            format!("invalid configuration: {}", problems.join("; ")),
        ));
    }
    header
        .shared_bn
        .check()
        .map_err(|e| corrupt(path, format!("shared statistics: {e}")))?;
    Ok((header, payload))
}

/// Loads a checkpoint onto `device`, checking everything first.
pub fn load(path: &Path, device: &Device) -> Result<Checkpoint, CheckpointError> {
    let bytes = std::fs::read(path).map_err(|e| CheckpointError::Io {
        path: path.into(),
        source: e,
    })?;
    let (header, payload) = parse(path, &bytes)?;
    let (w, opt) = payload.split_at(header.weights_len);
    let record = burn::store::ModuleRecord::from_bytes(Bytes::from_bytes_vec(w.to_vec()))
        .map_err(|e| corrupt(path, format!("unreadable weights: {e:?}")))?;
    let fresh = SupernetWeights::init(&header.config, device);
    let weights = fresh
        .try_load_record(record)
        .map_err(|e| corrupt(path, format!("weights do not fit the configuration: {e:?}")))?;
    Ok(Checkpoint {
        optimizer: (!opt.is_empty()).then(|| opt.to_vec()),
        header,
        weights,
    })
}
