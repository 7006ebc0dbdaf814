//! A deployment: the checkpoint's candidates, cut out and ready to run, with what selectors
//! and the profile know of each. Shared by `opa run`, `opa calibrate` and `opa replay`.

use burn::tensor::Device;
use opa_datasets::shipped;
use opa_predictors::CandidateInfo;
use opa_predictors::profile::ProfileCandidate;
use opa_supernet::arch::{SubnetArch, SupernetConfig};
use opa_supernet::candidates::CandidatesFile;
use opa_supernet::checkpoint;
use opa_supernet::model::Plan;
use std::path::Path;

/// Candidates cut from a checkpoint.
pub struct Deployment {
    /// The super-network configuration.
    pub cfg: SupernetConfig,
    /// One standalone network per candidate (absent for [`read_candidates`]).
    pub plans: Vec<Plan>,
    /// What selectors know before the run.
    pub infos: Vec<CandidateInfo>,
    /// Id, multiply-adds and architecture encoding, for the profile.
    pub arch: Vec<ProfileCandidate>,
}

/// Reads a candidates file; the message names the file and the problem.
pub fn parse_candidates(candidates: &Path) -> Result<CandidatesFile, String> {
    let text = std::fs::read_to_string(candidates)
        .map_err(|e| format!("{}: {e}", candidates.display()))?;
    serde_json::from_str(&text)
        .map_err(|e| format!("{}: not a candidates file: {e}", candidates.display()))
}

/// Checks that `cands` (read from `candidates`) was cut from `checkpoint` (its SHA-256):
/// candidates carry batch-norm statistics of one checkpoint and mean nothing for another.
pub fn check_made_for(
    cands: &CandidatesFile,
    candidates: &Path,
    checkpoint: &Path,
) -> Result<(), String> {
    let sum = shipped::sha256_file(checkpoint).map_err(|e| e.to_string())?;
    if cands.checkpoint_sha256 != sum {
        return Err(format!(
            "{} was cut from another checkpoint than {} (sha256 differs); rerun `opa candidates`",
            candidates.display(),
            checkpoint.display()
        ));
    }
    Ok(())
}

/// Reads and checks the candidates file against the checkpoint (configuration and SHA-256)
/// without loading any weights: enough for replay from a profile.
pub fn read_candidates(
    checkpoint: &Path,
    candidates: &Path,
) -> Result<(CandidatesFile, Deployment), String> {
    let cands = parse_candidates(candidates)?;
    check_made_for(&cands, candidates, checkpoint)?;
    let cfg = cands.config.clone();
    let mut d = Deployment {
        cfg: cfg.clone(),
        plans: Vec::new(),
        infos: Vec::new(),
        arch: Vec::new(),
    };
    if let Err(problems) = cfg.validate() {
        return Err(format!(
            "{}: invalid configuration: {}",
            candidates.display(),
            problems.join("; ")
        ));
    }
    for c in &cands.candidates {
        let arch =
            SubnetArch::parse(&c.id, &cfg).map_err(|e| format!("{}: {e}", candidates.display()))?;
        // The file carries no checksum of its own: its content is checked against what the
        // configuration says instead (costs, statistics, accuracy).
        let bad = |what: String| format!("{}: candidate {}: {what}", candidates.display(), c.id);
        if c.macs != arch.macs(&cfg) || c.params != arch.params(&cfg) {
            return Err(bad(format!(
                "{} multiply-adds and {} parameters recorded, its architecture has {} and {}",
                c.macs,
                c.params,
                arch.macs(&cfg),
                arch.params(&cfg)
            )));
        }
        if !(0.0..=1.0).contains(&c.calibration_top1) {
            return Err(bad(format!(
                "calibration_top1 = {}: must be within 0..=1",
                c.calibration_top1
            )));
        }
        c.bn.check().map_err(bad)?;
        d.infos.push(CandidateInfo {
            id: c.id.clone(),
            macs: c.macs,
            calibration_top1: c.calibration_top1,
        });
        d.arch.push(ProfileCandidate {
            id: c.id.clone(),
            macs: c.macs,
            encoding: arch.encode(&cfg).into_iter().map(f64::from).collect(),
        });
    }
    if d.infos.is_empty() {
        return Err(format!("{}: holds no candidate", candidates.display()));
    }
    Ok((cands, d))
}

/// Loads the checkpoint and cuts every candidate of the candidates file out of it, with its
/// own batch-norm statistics.
pub fn load(checkpoint: &Path, candidates: &Path, device: &Device) -> Result<Deployment, String> {
    let (cands, mut d) = read_candidates(checkpoint, candidates)?;
    let ck = checkpoint::load(checkpoint, device).map_err(|e| e.to_string())?;
    if cands.config != ck.header.config {
        return Err(format!(
            "{} was made for another super-network than {}",
            candidates.display(),
            checkpoint.display()
        ));
    }
    for c in &cands.candidates {
        let arch = SubnetArch::parse(&c.id, &d.cfg)
            .map_err(|e| format!("{}: {e}", candidates.display()))?;
        d.plans.push(
            ck.weights
                .plan(&d.cfg, &arch)
                .extract(&c.bn)
                .map_err(|e| format!("{}: {}: {e}", candidates.display(), c.id))?,
        );
    }
    Ok(d)
}
