//! `profile.parquet`: the calibration profile, one row per (candidate, content condition,
//! load level). Accuracy and signal columns repeat across loads, latency columns across
//! contents (calibration measures the two factors apart; see `opa_predictors::profile`).

use crate::format::{RunError, column, read_parquet, table_err, write_atomic};
use opa_predictors::profile::{ContentStats, LatencyStats, Profile, ProfileCandidate};
use polars::prelude::*;
use std::collections::HashMap;
use std::path::Path;

/// A list cell of counts.
fn counts(v: &[usize]) -> Series {
    Series::new("".into(), v.iter().map(|&k| k as u64).collect::<Vec<u64>>())
}

/// Writes `profile` to `path` as parquet, atomically.
pub fn write_profile(path: &Path, p: &Profile) -> Result<(), RunError> {
    p.validate().map_err(|m| RunError::Table {
        path: path.into(),
        message: m,
    })?;
    let mut cand = Vec::new();
    let mut macs = Vec::new();
    let mut enc = Vec::new();
    let mut probe = Vec::new();
    let mut content = Vec::new();
    let mut load = Vec::new();
    let (mut bin_top1, mut bin_imgs) = (Vec::new(), Vec::new());
    let (mut view_top1, mut view_imgs) = (Vec::new(), Vec::new());
    let (mut top1, mut conf, mut ent, mut mar, mut cls, mut imgs) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    let (mut mean, mut p50, mut p95) = (Vec::new(), Vec::new(), Vec::new());
    for (c, pc) in p.candidates.iter().enumerate() {
        for (k, name) in p.contents.iter().enumerate() {
            for (j, &l) in p.loads.iter().enumerate() {
                let a = &p.content[c][k];
                let t = &p.latency[c][j];
                cand.push(pc.id.clone());
                macs.push(pc.macs);
                enc.push(Series::new("".into(), pc.encoding.clone()));
                probe.push(c == p.probe);
                content.push(name.clone());
                load.push(l);
                top1.push(a.top1);
                conf.push(a.confidence);
                ent.push(a.entropy);
                mar.push(a.margin);
                cls.push(Series::new("".into(), a.class_top1.clone()));
                imgs.push(a.images as u64);
                bin_top1.push(Series::new("".into(), a.probe_bin_top1.clone()));
                bin_imgs.push(counts(&a.probe_bin_images));
                view_top1.push(Series::new("".into(), a.view_bin_top1.clone()));
                view_imgs.push(counts(&a.view_bin_images));
                mean.push(t.mean_ms);
                p50.push(t.p50_ms);
                p95.push(t.p95_ms);
            }
        }
    }
    let mut df = DataFrame::new_infer_height(vec![
        Series::new("candidate".into(), cand).into(),
        Series::new("macs".into(), macs).into(),
        Series::new("encoding".into(), enc).into(),
        Series::new("is_probe".into(), probe).into(),
        Series::new("content".into(), content).into(),
        Series::new("cpu_load".into(), load).into(),
        Series::new("top1".into(), top1).into(),
        Series::new("confidence".into(), conf).into(),
        Series::new("entropy".into(), ent).into(),
        Series::new("margin".into(), mar).into(),
        Series::new("class_top1".into(), cls).into(),
        Series::new("images".into(), imgs).into(),
        Series::new("probe_bin_top1".into(), bin_top1).into(),
        Series::new("probe_bin_images".into(), bin_imgs).into(),
        Series::new("view_bin_top1".into(), view_top1).into(),
        Series::new("view_bin_images".into(), view_imgs).into(),
        Series::new("latency_mean_ms".into(), mean).into(),
        Series::new("latency_p50_ms".into(), p50).into(),
        Series::new("latency_p95_ms".into(), p95).into(),
    ])
    .map_err(table_err(path))?;
    let mut bytes = Vec::new();
    ParquetWriter::new(&mut bytes)
        .with_key_value_metadata(Some(KeyValueMetadata::from_static(vec![(
            CHECKSUM_KEY.into(),
            content_sha256(p),
        )])))
        .finish(&mut df)
        .map_err(table_err(path))?;
    write_atomic(path, &bytes)
}

/// The key of the profile's checksum in the file's metadata.
const CHECKSUM_KEY: &str = "opa-profile-sha256";

/// SHA-256 (hex) of the profile's content (its JSON form): what the file says, checked on
/// reading, so a damaged value is an error even where it still parses and looks plausible.
fn content_sha256(p: &Profile) -> String {
    use sha2::{Digest, Sha256};
    let json = serde_json::to_vec(p).expect("a profile serialises");
    format!("{:x}", Sha256::digest(json))
}

/// Reads a profile written by [`write_profile`]; a damaged or incomplete file gives an error
/// naming it.
pub fn read_profile(path: &Path) -> Result<Profile, RunError> {
    let file = std::fs::File::open(path).map_err(|e| RunError::Io {
        path: path.into(),
        source: e,
    })?;
    let e = table_err(path);
    let (recorded, df) = read_parquet(path, file, |mut r| {
        let recorded: Option<String> = r
            .get_metadata()?
            .key_value_metadata
            .iter()
            .flatten()
            .find(|kv| kv.key == CHECKSUM_KEY)
            .and_then(|kv| kv.value.clone());
        Ok((recorded, r.finish()?))
    })?;
    let bad = |m: String| RunError::Table {
        path: path.into(),
        message: m,
    };
    let s = |n: &str| {
        column(
            &df,
            path,
            n,
            "a calibration profile as `opa calibrate` writes it",
        )
    };
    let cand = s("candidate")?.str().map_err(&e)?;
    let macs = s("macs")?.u64().map_err(&e)?;
    let enc = s("encoding")?.list().map_err(&e)?;
    let probe = s("is_probe")?.bool().map_err(&e)?;
    let content = s("content")?.str().map_err(&e)?;
    let load = s("cpu_load")?.f64().map_err(&e)?;
    let f = |n: &str| -> Result<Vec<f64>, RunError> {
        let c = s(n)?.f64().map_err(&e)?;
        (0..c.len())
            .map(|i| c.get(i).ok_or_else(|| bad(format!("null in column {n}"))))
            .collect()
    };
    let (top1, conf, ent, mar) = (f("top1")?, f("confidence")?, f("entropy")?, f("margin")?);
    let (mean, p50, p95) = (
        f("latency_mean_ms")?,
        f("latency_p50_ms")?,
        f("latency_p95_ms")?,
    );
    let cls = s("class_top1")?.list().map_err(&e)?;
    let imgs = s("images")?.u64().map_err(&e)?;
    // Per-frame tables: absent from profiles written before them.
    let optional = |name: &str| match df.column(name) {
        Ok(c) => c.list().map(Some).map_err(&e),
        Err(_) => Ok(None),
    };
    let bin_top1 = optional("probe_bin_top1")?;
    let bin_imgs = optional("probe_bin_images")?;
    let view_top1 = optional("view_bin_top1")?;
    let view_imgs = optional("view_bin_images")?;
    let null = || bad("null value in the profile".into());
    let list = |l: &ListChunked, i: usize| -> Result<Vec<f64>, RunError> {
        let s = l.get_as_series(i).ok_or_else(null)?;
        let v = s.f64().map_err(&e)?;
        Ok((0..v.len()).map(|j| v.get(j).unwrap_or(f64::NAN)).collect())
    };

    let counts = |l: &ListChunked, i: usize| -> Result<Vec<usize>, RunError> {
        let s = l.get_as_series(i).ok_or_else(null)?;
        let v = s.u64().map_err(&e)?;
        (0..v.len())
            .map(|j| v.get(j).map(|k| k as usize).ok_or_else(null))
            .collect()
    };

    let mut p = Profile {
        candidates: Vec::new(),
        probe: usize::MAX,
        contents: Vec::new(),
        loads: Vec::new(),
        content: Vec::new(),
        latency: Vec::new(),
    };
    let mut cand_ix: HashMap<String, usize> = HashMap::new();
    let mut content_ix: HashMap<String, usize> = HashMap::new();
    for i in 0..df.height() {
        let id = cand.get(i).ok_or_else(null)?;
        if !cand_ix.contains_key(id) {
            cand_ix.insert(id.to_string(), p.candidates.len());
            p.candidates.push(ProfileCandidate {
                id: id.to_string(),
                macs: macs.get(i).ok_or_else(null)?,
                encoding: list(enc, i)?,
            });
            if probe.get(i).ok_or_else(null)? {
                p.probe = p.candidates.len() - 1;
            }
        }
        let c = content.get(i).ok_or_else(null)?;
        if !content_ix.contains_key(c) {
            content_ix.insert(c.to_string(), p.contents.len());
            p.contents.push(c.to_string());
        }
        let l = load.get(i).ok_or_else(null)?;
        if !p.loads.contains(&l) {
            p.loads.push(l);
        }
    }
    p.loads.sort_by(f64::total_cmp);
    let (nc, nk, nl) = (p.candidates.len(), p.contents.len(), p.loads.len());
    let mut content_cells: Vec<Vec<Option<ContentStats>>> = vec![vec![None; nk]; nc];
    let mut latency_cells: Vec<Vec<Option<LatencyStats>>> = vec![vec![None; nl]; nc];
    let mut seen = vec![false; nc * nk * nl];
    for i in 0..df.height() {
        let c = cand_ix[cand.get(i).ok_or_else(null)?];
        let k = content_ix[content.get(i).ok_or_else(null)?];
        let lv = load.get(i).ok_or_else(null)?;
        let j = p.loads.iter().position(|&x| x == lv).ok_or_else(null)?;
        let cell = &mut seen[(c * nk + k) * nl + j];
        if *cell {
            return Err(bad(format!(
                "{} under {} at load {lv} appears twice",
                p.candidates[c].id, p.contents[k]
            )));
        }
        *cell = true;
        content_cells[c][k].get_or_insert(ContentStats {
            top1: top1[i],
            confidence: conf[i],
            entropy: ent[i],
            margin: mar[i],
            class_top1: list(cls, i)?,
            images: imgs.get(i).ok_or_else(null)? as usize,
            probe_bin_top1: match bin_top1 {
                Some(l) => list(l, i)?,
                None => Vec::new(),
            },
            probe_bin_images: match bin_imgs {
                Some(l) => counts(l, i)?,
                None => Vec::new(),
            },
            view_bin_top1: match view_top1 {
                Some(l) => list(l, i)?,
                None => Vec::new(),
            },
            view_bin_images: match view_imgs {
                Some(l) => counts(l, i)?,
                None => Vec::new(),
            },
        });
        latency_cells[c][j].get_or_insert(LatencyStats {
            mean_ms: mean[i],
            p50_ms: p50[i],
            p95_ms: p95[i],
        });
    }
    if let Some(miss) = seen.iter().position(|s| !s) {
        let (c, rest) = (miss / (nk * nl), miss % (nk * nl));
        return Err(bad(format!(
            "incomplete profile: no row for {} under {} at load {}",
            p.candidates[c].id,
            p.contents[rest / nl],
            p.loads[rest % nl]
        )));
    }
    p.content = content_cells
        .into_iter()
        .map(|r| r.into_iter().map(|c| c.expect("every cell seen")).collect())
        .collect();
    p.latency = latency_cells
        .into_iter()
        .map(|r| r.into_iter().map(|c| c.expect("every cell seen")).collect())
        .collect();
    if p.probe == usize::MAX {
        return Err(bad("no row is marked is_probe".into()));
    }
    p.validate().map_err(bad)?;
    // Profiles written before the checksum carry none; their content is validated only.
    if let Some(want) = recorded {
        let got = content_sha256(&p);
        if got != want {
            return Err(bad(format!(
                "checksum mismatch: the file says sha256 {want}, its content has {got}; the file is damaged"
            )));
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opa_predictors::profile::synthetic;

    #[test]
    fn profile_round_trips_through_parquet() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("profile.parquet");
        let mut p = synthetic(3, 2, &[0.0, 0.5, 1.0]);
        p.probe = 1;
        p.content[2][1].class_top1[4] = f64::NAN;
        write_profile(&path, &p).unwrap();
        let back = read_profile(&path).unwrap();
        assert_eq!(back.candidates, p.candidates);
        assert_eq!(back.probe, 1);
        assert_eq!(back.latency, p.latency);
        assert!(back.content[2][1].class_top1[4].is_nan());
        assert_eq!(back.content[0], p.content[0]);
    }

    #[test]
    fn truncated_profile_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("profile.parquet");
        write_profile(&path, &synthetic(2, 1, &[0.0])).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let e = read_profile(&path).unwrap_err().to_string();
        assert!(e.contains("profile.parquet"), "{e}");
    }

    #[test]
    fn a_parquet_file_of_another_kind_is_named_as_not_a_profile() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("samples.parquet");
        let mut df =
            DataFrame::new_infer_height(vec![Column::new("frame".into(), [0u64, 1])]).unwrap();
        ParquetWriter::new(std::fs::File::create(&path).unwrap())
            .finish(&mut df)
            .unwrap();
        let e = read_profile(&path).unwrap_err().to_string();
        assert!(
            e.contains("samples.parquet") && e.contains("not a calibration profile"),
            "{e}"
        );
    }
}
