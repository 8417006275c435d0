//! Deployment packages: a function's zip, extracted like Lambda does into
//! its task root.

use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use anyhow::{Context as _, bail};

/// Extracts `zip` into `dest` (emptied first); the zip must have a
/// `bootstrap` at its root, which ends up executable.
pub fn extract(zip: &Path, dest: &Path) -> anyhow::Result<()> {
    let file = std::fs::File::open(zip).with_context(|| format!("cannot open {}", zip.display()))?;
    let mut archive = zip::ZipArchive::new(file).with_context(|| format!("{} is not a zip file", zip.display()))?;
    if dest.exists() {
        std::fs::remove_dir_all(dest).with_context(|| format!("cannot clear {}", dest.display()))?;
    }
    std::fs::create_dir_all(dest).with_context(|| format!("cannot create {}", dest.display()))?;
    let mut has_bootstrap = false;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).with_context(|| format!("{}: entry {i} is unreadable", zip.display()))?;
        let name = entry.name().map(|n| n.into_owned()).unwrap_or_else(|_| format!("#{i}"));
        let Some(rel) = entry.enclosed_name() else {
            bail!("{}: entry `{name}` has an unsafe path", zip.display());
        };
        let out = dest.join(&rel);
        if entry.is_dir() {
            std::fs::create_dir_all(&out)?;
            continue;
        }
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut bytes).with_context(|| format!("{}: cannot read `{name}`", zip.display()))?;
        std::fs::write(&out, &bytes).with_context(|| format!("cannot write {}", out.display()))?;
        let is_bootstrap = rel == Path::new("bootstrap");
        has_bootstrap |= is_bootstrap;
        let mode = entry.unix_mode().map(|m| m & 0o777).filter(|m| *m != 0).unwrap_or(0o644);
        let mode = if is_bootstrap { mode | 0o755 } else { mode };
        std::fs::set_permissions(&out, std::fs::Permissions::from_mode(mode))?;
    }
    if !has_bootstrap {
        bail!("{} has no `bootstrap` at its root (a provided.* runtime runs ./bootstrap)", zip.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn make_zip(path: &Path, entries: &[(&str, &[u8])]) {
        let mut w = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
        for (name, data) in entries {
            w.start_file(
                *name,
                zip::write::SimpleFileOptions::default()
                    .compression_method(zip::CompressionMethod::Deflated)
                    .unix_permissions(0o644),
            )
            .unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap();
    }

    #[test]
    fn extracts_an_executable_bootstrap() {
        let dir = tempfile::tempdir().unwrap();
        let zip = dir.path().join("f.zip");
        make_zip(&zip, &[("bootstrap", b"#!/bin/sh\necho hi\n"), ("lib/data.txt", b"x")]);
        let dest = dir.path().join("out");
        std::fs::create_dir_all(dest.join("stale")).unwrap();
        extract(&zip, &dest).unwrap();
        let mode = std::fs::metadata(dest.join("bootstrap")).unwrap().permissions().mode();
        assert_eq!(mode & 0o111, 0o111);
        assert_eq!(std::fs::read(dest.join("lib/data.txt")).unwrap(), b"x");
        assert!(!dest.join("stale").exists());
    }

    #[test]
    fn requires_a_bootstrap() {
        let dir = tempfile::tempdir().unwrap();
        let zip = dir.path().join("f.zip");
        make_zip(&zip, &[("handler", b"x")]);
        let err = extract(&zip, &dir.path().join("out")).unwrap_err().to_string();
        assert!(err.contains("no `bootstrap`"), "{err}");
        std::fs::write(dir.path().join("bad.zip"), b"not a zip").unwrap();
        assert!(extract(&dir.path().join("bad.zip"), &dir.path().join("o2")).is_err());
    }
}
