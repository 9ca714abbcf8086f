//! Builds the GraphiQL playground (`playground/`) into `OUT_DIR` so ward serves it from its
//! own routes, with no CDN: `npm ci` from the committed lockfile (pinned GraphiQL, React,
//! esbuild) in `OUT_DIR`, then esbuild. Without npm, or when npm fails (offline with an empty
//! cache), the build still succeeds: it warns and embeds a page that says how to get the
//! playground, and tries again on the next build.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Files `src/http/playground.rs` embeds; `status` is empty when the bundle is real, else why not.
const OUTPUTS: [&str; 5] = ["playground.js", "playground.js.gz", "playground.css", "playground.css.gz", "status"];

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let source = manifest.join("playground");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default()).join("playground");
    for input in ["src", "package.json", "package-lock.json", "build.mjs"] {
        println!("cargo:rerun-if-changed=playground/{input}");
    }
    println!("cargo:rerun-if-env-changed=WARD_NPM");
    if let Err(error) = fs::create_dir_all(&out) {
        panic!("creating {}: {error}", out.display());
    }
    let status = match bundle(&source, &out) {
        Ok(()) => String::new(),
        Err(reason) => {
            println!("cargo:warning=the GraphiQL playground is not bundled: {reason}");
            // A path that never exists makes cargo run this script again on the next build.
            println!("cargo:rerun-if-changed={}", out.join("retry-when-npm-works").display());
            for name in OUTPUTS {
                let _ = fs::write(out.join(name), b"");
            }
            reason
        }
    };
    if let Err(error) = fs::write(out.join("status"), status.as_bytes()) {
        panic!("writing {}: {error}", out.join("status").display());
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for name in ["playground.js", "playground.css"] {
        for byte in fs::read(out.join(name)).unwrap_or_default() {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    // Asset URLs carry this, so browsers may cache them forever.
    println!("cargo:rustc-env=WARD_PLAYGROUND_VERSION={hash:016x}");
}

/// `npm ci` (when the lockfile changed since the last install) and esbuild, into `out`.
fn bundle(source: &Path, out: &Path) -> Result<(), String> {
    let npm = std::env::var("WARD_NPM").unwrap_or_else(|_| "npm".to_string());
    let version = Command::new(&npm).arg("--version").output();
    if !version.is_ok_and(|o| o.status.success()) {
        return Err(format!("`{npm}` is not available; install Node.js 20+ and npm, then rebuild"));
    }
    let modules = out.join("npm");
    fs::create_dir_all(&modules).map_err(|e| format!("creating {}: {e}", modules.display()))?;
    let lock = fs::read(source.join("package-lock.json")).map_err(|e| format!("reading the lockfile: {e}"))?;
    let installed_lock = modules.join("installed-package-lock.json");
    if fs::read(&installed_lock).ok().as_deref() != Some(&lock[..]) || !modules.join("node_modules").is_dir() {
        for file in ["package.json", "package-lock.json"] {
            fs::copy(source.join(file), modules.join(file)).map_err(|e| format!("copying {file}: {e}"))?;
        }
        let installed = Command::new(&npm)
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .args(["--fetch-retries=1", "--fetch-retry-mintimeout=2000", "--fetch-retry-maxtimeout=10000"])
            .current_dir(&modules)
            .output()
            .map_err(|e| format!("running npm ci: {e}"))?;
        if !installed.status.success() {
            return Err(format!("npm ci failed: {}", last_line(&installed.stderr)));
        }
        fs::write(&installed_lock, &lock).map_err(|e| format!("writing {}: {e}", installed_lock.display()))?;
    }
    // Run from the install, so `import 'esbuild'` and the bundle's packages resolve there.
    fs::copy(source.join("build.mjs"), modules.join("build.mjs")).map_err(|e| format!("copying build.mjs: {e}"))?;
    let built = Command::new("node")
        .arg(modules.join("build.mjs"))
        .arg(out)
        .arg(source)
        .current_dir(&modules)
        .output()
        .map_err(|e| format!("running node: {e}"))?;
    if !built.status.success() {
        return Err(format!("the playground bundle failed: {}", last_line(&built.stderr)));
    }
    Ok(())
}

fn last_line(output: &[u8]) -> String {
    let text = String::from_utf8_lossy(output);
    text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no output").trim().to_string()
}
