//! Building the kernel with a nested `cargo build`.
//!
//! The kernel is a `no_std` binary for `x86_64-unknown-none`. It is built with its own target
//! directory (`target/kernel`) so that the nested cargo never waits on the lock of the outer one
//! (`cargo run -p mkimage` or `cargo test` hold `target/` while we run), and with `kernel/` as the
//! current directory so that `kernel/.cargo/config.toml` supplies the kernel's rustflags.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, Result};
use crate::shell;

/// The target triple of the kernel.
pub const KERNEL_TARGET: &str = "x86_64-unknown-none";

/// The root of the cargo workspace. mkimage lives at `<root>/mkimage`; the path is fixed when
/// mkimage is compiled.
pub fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().expect("mkimage's manifest directory has a parent").to_path_buf()
}

/// The target directory of the nested kernel build.
pub fn kernel_target_dir() -> PathBuf {
    workspace_root().join("target").join("kernel")
}

/// Where the kernel ELF lands for the given profile (without building it).
pub fn kernel_path(release: bool) -> PathBuf {
    let profile = if release { "release" } else { "debug" };
    kernel_target_dir().join(KERNEL_TARGET).join(profile).join("kernel")
}

/// Whether an environment variable inherited from an outer cargo (we often run under `cargo run`
/// or `cargo test`) must be removed before starting the nested cargo.
///
/// - `RUSTFLAGS`, `CARGO_ENCODED_RUSTFLAGS`, `CARGO_BUILD_RUSTFLAGS` and
///   `CARGO_TARGET_<triple>_RUSTFLAGS` take precedence over `kernel/.cargo/config.toml`; a host
///   flag (coverage instrumentation, `-C target-cpu=native`...) would replace the kernel's
///   `relocation-model=static` and break the link, or be meaningless for a bare-metal target.
/// - `CARGO_TARGET_DIR`, `CARGO_BUILD_TARGET`, `CARGO_BUILD_*` and `CARGO_PROFILE_*` are cargo
///   configuration given through the environment; the kernel's build is fully described by its
///   command line and config file, so an outer setting must not leak in.
/// - `CARGO`, `CARGO_MANIFEST_DIR`, `CARGO_PKG_*`, `CARGO_CRATE_NAME`, `CARGO_BIN_*`,
///   `CARGO_PRIMARY_PACKAGE`, `CARGO_TARGET_TMPDIR`, `CARGO_MAKEFLAGS` (jobserver file descriptors
///   we do not pass on) describe the *outer* build and its current crate; the nested cargo sets
///   its own values for each crate it compiles.
/// - `__CARGO_*` are cargo's private variables (e.g. `__CARGO_DEFAULT_LIB_METADATA`, which
///   changes artifact hashes, or `__CARGO_FIX_PLZ`); they are only meaningful to the cargo
///   that set them.
/// - `RUSTC`, `RUSTDOC`, `RUSTC_WORKSPACE_WRAPPER`, `RUSTDOCFLAGS`: set by cargo for build scripts
///   and by `cargo clippy` (which swaps in clippy-driver); the nested build must use plain rustc.
///
/// Kept: `CARGO_HOME`, `CARGO_TERM_*`, `CARGO_NET_*`, `CARGO_HTTP_*`, `CARGO_REGISTRY_*`,
/// `CARGO_REGISTRIES_*` (where cargo lives, how it prints, how it reaches the registry) and
/// `RUSTUP_*` (so the nested cargo uses the same toolchain as the outer one), and `RUSTC_WRAPPER`
/// (a compiler cache is harmless).
pub fn strip_from_nested_cargo(name: &str) -> bool {
    const KEEP_PREFIXES: &[&str] = &[
        "CARGO_HOME",
        "CARGO_TERM_",
        "CARGO_NET_",
        "CARGO_HTTP_",
        "CARGO_REGISTRY_",
        "CARGO_REGISTRIES_",
    ];
    const STRIP_EXACT: &[&str] =
        &["CARGO", "RUSTFLAGS", "RUSTDOCFLAGS", "RUSTC", "RUSTDOC", "RUSTC_WORKSPACE_WRAPPER"];
    if name.starts_with("__CARGO_") || STRIP_EXACT.contains(&name) {
        return true;
    }
    if name.starts_with("CARGO_") {
        return !KEEP_PREFIXES.iter().any(|p| name.starts_with(p));
    }
    false
}

/// The nested `cargo build` command for the kernel (not yet run).
pub fn kernel_command(release: bool) -> Command {
    let root = workspace_root();
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root.join("kernel"));
    // Input typed for the guest (`printf 'poweroff\n' | mkimage run`) is not cargo's.
    cmd.stdin(Stdio::null());
    cmd.arg("build");
    if release {
        cmd.arg("--release");
    }
    cmd.args(["-p", "kernel", "--target", KERNEL_TARGET, "--target-dir"]);
    cmd.arg(kernel_target_dir());
    remove_outer_cargo_env(&mut cmd);
    cmd
}

/// Removes from `cmd`'s environment what [`strip_from_nested_cargo`] says belongs to an outer
/// cargo (for every nested build: the kernel's and the user programs').
pub fn remove_outer_cargo_env(cmd: &mut Command) {
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(strip_from_nested_cargo) {
            cmd.env_remove(&name);
        }
    }
}

/// Builds the kernel (cargo's output goes to this process's stdout and stderr) and returns the
/// path of the ELF: `target/kernel/x86_64-unknown-none/release/kernel` for a release build,
/// `.../debug/kernel` otherwise. The contract between kernel and tooling uses release builds.
pub fn kernel(release: bool) -> Result<PathBuf> {
    let mut cmd = kernel_command(release);
    let status = cmd.status().map_err(|e| Error::io("cannot start cargo (is it on PATH?)", e))?;
    if !status.success() {
        return Err(Error::Build(format!("`{}` exited with {status}", shell::render(&cmd))));
    }
    let elf = kernel_path(release);
    if !elf.is_file() {
        return Err(Error::Build(format!("cargo succeeded but {} does not exist", elf.display())));
    }
    Ok(elf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_holds_mkimage() {
        assert!(workspace_root().join("mkimage").join("Cargo.toml").is_file());
    }

    #[test]
    fn kernel_paths() {
        let root = workspace_root();
        assert_eq!(
            kernel_path(true),
            root.join("target/kernel/x86_64-unknown-none/release/kernel")
        );
        assert_eq!(kernel_path(false), root.join("target/kernel/x86_64-unknown-none/debug/kernel"));
    }

    #[test]
    fn nested_cargo_command() {
        let cmd = kernel_command(true);
        let args: Vec<String> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        let target_dir = kernel_target_dir().to_string_lossy().into_owned();
        assert_eq!(
            args,
            [
                "build",
                "--release",
                "-p",
                "kernel",
                "--target",
                "x86_64-unknown-none",
                "--target-dir",
                target_dir.as_str()
            ]
        );
        assert_eq!(cmd.get_current_dir(), Some(workspace_root().join("kernel").as_path()));
        assert!(!kernel_command(false).get_args().any(|a| a == "--release"));
    }

    #[test]
    fn env_filter() {
        for strip in [
            "CARGO",
            "CARGO_TARGET_DIR",
            "CARGO_BUILD_TARGET",
            "CARGO_BUILD_RUSTFLAGS",
            "CARGO_ENCODED_RUSTFLAGS",
            "CARGO_TARGET_X86_64_UNKNOWN_NONE_RUSTFLAGS",
            "CARGO_MANIFEST_DIR",
            "CARGO_PKG_NAME",
            "CARGO_PROFILE_RELEASE_DEBUG",
            "CARGO_MAKEFLAGS",
            "__CARGO_DEFAULT_LIB_METADATA",
            "RUSTFLAGS",
            "RUSTC_WORKSPACE_WRAPPER",
        ] {
            assert!(strip_from_nested_cargo(strip), "{strip} should be stripped");
        }
        for keep in [
            "PATH",
            "HOME",
            "CARGO_HOME",
            "CARGO_TERM_COLOR",
            "CARGO_NET_OFFLINE",
            "CARGO_HTTP_TIMEOUT",
            "CARGO_REGISTRIES_CRATES_IO_PROTOCOL",
            "RUSTUP_TOOLCHAIN",
            "RUSTUP_HOME",
            "RUSTC_WRAPPER",
        ] {
            assert!(!strip_from_nested_cargo(keep), "{keep} should be kept");
        }
    }
}
