//! `cargo xtask bench registry`: pushes and pulls through the built-in registry (the release
//! `imagegate-server`, no `--internal-registry`) against the same through CNCF Distribution
//! (`docker-registry`, filesystem storage), on the same machine, with the same client (`skopeo copy`).
//!
//! Per image (one layer of 1 GiB; 60 layers of 1 MiB), per run, per registry (their order alternating from
//! run to run): a fresh registry process on an empty directory, one timed push (`skopeo copy` from an OCI
//! layout on disk to the registry), one timed pull (from the registry to a fresh OCI layout, whose manifest
//! digest is checked), then the registry's peak RSS (`VmHWM` from `/proc/<pid>/status`) and its stop. The
//! layers are generated once, incompressible (a seeded ChaCha stream in stored deflate blocks). Results are
//! printed and written into `docs/benchmarks.md` between this bench's markers; the rest of the file is kept.

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use test_support::Distribution;

use super::{
    DOC_PATH, MIB, OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, Proc, Storage, build_release, cargo_target_dir,
    check_disk, clean_env, ensure_tools, existing, first_line_of, free_port, generate_layer, human_bytes, machine,
    median, mib, min_max, now_utc, random_hex, registry_pid, secs, shell_quote, vm_hwm_kib, wait_ready,
};
use crate::{header, interrupted, tools, workspace_root};

const BEGIN: &str = "<!-- bench registry begin -->";
const END: &str = "<!-- bench registry end -->";
const TAG: &str = "v1";

#[derive(Debug, Args)]
pub struct RegistryArgs {
    /// Runs per image and registry [default: 3; 2 with --quick].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=50))]
    runs: Option<u32>,
    /// Small images (64 MiB; 60 layers of 16 KiB): a smoke test of the bench. Writes no doc.
    #[arg(long)]
    quick: bool,
    /// Print the results only; leave docs/benchmarks.md alone.
    #[arg(long)]
    no_doc: bool,
    /// Use the release `imagegate-server` already built instead of running `cargo build --release` first.
    #[arg(long)]
    no_build: bool,
    /// Where the registries keep their blobs, and the client its layouts: on disk (the system's temporary
    /// directory), where the built-in registry's fsyncs cost what they cost, or in memory (`/dev/shm`).
    #[arg(long, value_enum, default_value_t = Storage::Disk)]
    storage: Storage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Builtin,
    Distribution,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Builtin => "imagegate (built-in)",
            Kind::Distribution => "Distribution",
        }
    }
}

/// An image written as an OCI layout, the push's source.
#[derive(Debug)]
struct Image {
    name: &'static str,
    title: String,
    layout: PathBuf,
    digest: String,
    /// Config and layers.
    bytes: u64,
}

/// One push and pull through one fresh registry.
#[derive(Debug, Clone, Copy)]
struct Run {
    push: f64,
    pull: f64,
    /// `VmHWM` after start-up, and after the push and the pull.
    start_kib: u64,
    peak_kib: u64,
}

/// A running registry under test.
struct Running {
    host: String,
    pid: u32,
    /// skopeo's `--creds` for it.
    creds: Option<String>,
    _server: Option<Proc>,
    _distribution: Option<Distribution>,
}

pub fn run(args: RegistryArgs) -> Result<ExitCode> {
    let root = workspace_root();
    let command_line =
        format!("cargo xtask {}", std::env::args().skip(1).map(|a| shell_quote(&a)).collect::<Vec<_>>().join(" "));
    let runs = args.runs.unwrap_or(if args.quick { 2 } else { 3 }) as usize;
    header("checking tools (docker-registry, skopeo)");
    let (skopeo, _) = ensure_tools()?;
    let target_dir = cargo_target_dir(&root)?;
    build_release(&root, &target_dir, &["--bin", "imagegate-server"], args.no_build)?;
    let server_bin = existing(target_dir.join("release/imagegate-server"))?;
    let registry_version = first_line_of(&tools::find_registry().context("docker-registry is missing")?, "--version")?;
    let skopeo_version = first_line_of(&skopeo, "--version")?;
    let machine = machine(&root);

    let base = args.storage.root()?;
    let work = tempfile::Builder::new().prefix("imagegate-bench-registry-").tempdir_in(&base)?;
    let (big, layers, small) = if args.quick { (64 * MIB, 60, 16 * 1024) } else { (1024 * MIB, 60, MIB) };
    check_disk(work.path(), 3 * (big + layers * small) + 512 * MIB)?;
    // A copy of the binary, so that a build meanwhile cannot change what is measured.
    let server = work.path().join("imagegate-server");
    fs::copy(&server_bin, &server).context("copying imagegate-server")?;
    fs::write(work.path().join("policy.json"), "{\"default\": [{\"type\": \"insecureAcceptAnything\"}]}\n")?;
    fs::write(work.path().join("registries.conf"), "")?;

    header("generating the images");
    let images = [
        write_layout(work.path(), "large-layer", format!("one layer of {}", human_bytes(big)), &[big])?,
        write_layout(
            work.path(),
            "small-layers",
            format!("{layers} layers of {}", human_bytes(small)),
            &vec![small; layers as usize],
        )?,
    ];
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let ctx =
        Ctx { work: work.path().to_path_buf(), server, skopeo, http: reqwest::Client::builder().no_proxy().build()? };
    let results = runtime.block_on(async {
        let mut results = Vec::new();
        for image in &images {
            let mut by_kind = [(Kind::Builtin, Vec::new()), (Kind::Distribution, Vec::new())];
            for run in 0..runs {
                let order = if run % 2 == 0 { [0, 1] } else { [1, 0] };
                for i in order {
                    if interrupted() {
                        bail!("interrupted");
                    }
                    let kind = by_kind[i].0;
                    let measured = measure(&ctx, kind, image)
                        .await
                        .with_context(|| format!("{} through {} (run {})", image.name, kind.name(), run + 1))?;
                    eprintln!(
                        "{} via {}: push {}, pull {}, peak RSS {}",
                        image.name,
                        kind.name(),
                        secs(measured.push),
                        secs(measured.pull),
                        mib(measured.peak_kib)
                    );
                    by_kind[i].1.push(measured);
                }
            }
            results.push(by_kind);
        }
        anyhow::Ok(results)
    });
    drop(runtime);
    let results = results?;
    let mut section = String::new();
    let _ = writeln!(section, "{BEGIN}\n## Registry: the built-in registry against Distribution\n");
    let _ = writeln!(
        section,
        "`{command_line}`, {} ({} runs per image and registry), {}, on {} CPUs ({}), {} RAM, Linux {}, commit {}; \
         {skopeo_version}; {registry_version}.\n",
        now_utc(),
        runs,
        args.storage.describe(),
        machine.nproc,
        machine.cpu,
        machine.memory,
        machine.kernel,
        machine.commit
    );
    section.push_str(
        "Each run starts a fresh registry on an empty directory: `imagegate-server` (release, SQLite, `--gate off`, \
         no `--internal-registry`, signed in as an admin through the Bearer token flow) or `docker-registry` \
         (filesystem storage, anonymous). `skopeo copy` pushes the image from an OCI layout on disk, then pulls \
         it into a fresh layout (its manifest digest checked); times are skopeo's wall times, medians with the \
         range. Peak RSS is the registry's `VmHWM` after the push and the pull (at start-up in brackets).\n\n",
    );
    let _ = writeln!(section, "| image | registry | push | pull | push rate | pull rate | peak RSS [start] |");
    let _ = writeln!(section, "|---|---|---|---|---|---|---|");
    let mut ratios = String::new();
    for (image, by_kind) in images.iter().zip(&results) {
        let mut medians = Vec::new();
        for (kind, runs) in by_kind {
            let push = median(runs.iter().map(|r| r.push));
            let pull = median(runs.iter().map(|r| r.pull));
            let (push_lo, push_hi) = min_max(runs.iter().map(|r| r.push));
            let (pull_lo, pull_hi) = min_max(runs.iter().map(|r| r.pull));
            let peak = runs.iter().map(|r| r.peak_kib).max().unwrap_or(0);
            let start = runs.iter().map(|r| r.start_kib).max().unwrap_or(0);
            let rate = |s: f64| format!("{:.0} MiB/s", image.bytes as f64 / MIB as f64 / s);
            let _ = writeln!(
                section,
                "| {} ({}) | {} | {} ({}–{}) | {} ({}–{}) | {} | {} | {} [{}] |",
                image.name,
                image.title,
                kind.name(),
                secs(push),
                secs(push_lo),
                secs(push_hi),
                secs(pull),
                secs(pull_lo),
                secs(pull_hi),
                rate(push),
                rate(pull),
                mib(peak),
                mib(start)
            );
            medians.push((push, pull, peak));
        }
        let ((bp, bl, bm), (dp, dl, dm)) = (medians[0], medians[1]);
        let _ = writeln!(
            ratios,
            "- {}: built-in / Distribution time, push {:.2}, pull {:.2}; peak RSS {} against {}.",
            image.name,
            bp / dp,
            bl / dl,
            mib(bm),
            mib(dm)
        );
    }
    let _ = writeln!(section, "\n{ratios}{END}");
    println!("\n{section}");
    if args.quick || args.no_doc {
        eprintln!("{}: {DOC_PATH} is left as it is", if args.quick { "--quick" } else { "--no-doc" });
    } else {
        let path = root.join(DOC_PATH);
        let doc = fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmarks\n".to_owned());
        fs::write(&path, merge(&doc, &section)).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote the results into {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// The doc with `section` in place of its earlier version, or at its end.
fn merge(doc: &str, section: &str) -> String {
    let section = section.trim_end();
    if let Some(start) = doc.find(BEGIN)
        && let Some(stop) = doc[start..].find(END).map(|e| start + e + END.len())
    {
        return format!("{}{section}{}", &doc[..start], &doc[stop..]);
    }
    format!("{}\n\n{section}\n", doc.trim_end())
}

struct Ctx {
    work: PathBuf,
    server: PathBuf,
    skopeo: PathBuf,
    http: reqwest::Client,
}

/// Writes `name` as an OCI layout of one linux/amd64 image with layers of `sizes` bytes.
fn write_layout(work: &Path, name: &'static str, title: String, sizes: &[u64]) -> Result<Image> {
    let layout = work.join(name);
    let blobs = layout.join("blobs/sha256");
    fs::create_dir_all(&blobs)?;
    let (mut layers, mut diff_ids, mut bytes) = (Vec::new(), Vec::new(), 0);
    for (i, &size) in sizes.iter().enumerate() {
        let part = blobs.join(format!("layer-{i}.part"));
        let mut file = std::io::BufWriter::with_capacity(4 * MIB as usize, fs::File::create(&part)?);
        let seed = u64::from_le_bytes(Sha256::digest(format!("{name}/{i}/{}", random_hex(8)))[..8].try_into()?);
        let layer = generate_layer(seed, size, |chunk| Ok(file.write_all(&chunk)?))?;
        file.flush()?;
        drop(file);
        fs::rename(&part, blobs.join(layer.digest.trim_start_matches("sha256:")))?;
        bytes += layer.size;
        layers.push(json!({ "mediaType": OCI_LAYER, "digest": layer.digest, "size": layer.size }));
        diff_ids.push(layer.diff_id);
    }
    let put = |content: &[u8]| -> Result<String> {
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(content)));
        fs::write(blobs.join(digest.trim_start_matches("sha256:")), content)?;
        Ok(digest)
    };
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    }))?;
    bytes += config.len() as u64;
    let config_digest = put(&config)?;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": OCI_CONFIG, "digest": config_digest, "size": config.len() },
        "layers": layers,
    }))?;
    let digest = put(&manifest)?;
    let index = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{
            "mediaType": OCI_MANIFEST, "digest": digest, "size": manifest.len(),
            "annotations": { "org.opencontainers.image.ref.name": TAG },
        }],
    });
    fs::write(layout.join("index.json"), serde_json::to_vec(&index)?)?;
    fs::write(layout.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    Ok(Image { name, title, layout, digest, bytes })
}

/// One fresh registry of `kind`: a push of `image`, a pull of it, the registry's peak RSS.
async fn measure(ctx: &Ctx, kind: Kind, image: &Image) -> Result<Run> {
    let dir = tempfile::Builder::new().prefix("run-").tempdir_in(&ctx.work)?;
    let registry = match kind {
        Kind::Builtin => start_builtin(ctx, dir.path()).await?,
        Kind::Distribution => {
            let registry = Distribution::try_start_in(dir.path(), None).await?;
            Running {
                host: registry.host(),
                pid: registry_pid(&registry)?,
                creds: None,
                _server: None,
                _distribution: Some(registry),
            }
        }
    };
    let start_kib = vm_hwm_kib(registry.pid)?;
    let remote = format!("docker://{}/bench/{}:{TAG}", registry.host, image.name);
    let local = format!("oci:{}:{TAG}", image.layout.display());
    let push = skopeo_copy(ctx, dir.path(), &local, &remote, registry.creds.as_deref().map(|c| ("--dest-creds", c)))
        .await
        .context("push")?;
    let pulled = dir.path().join("pulled");
    let pull = skopeo_copy(
        ctx,
        dir.path(),
        &remote,
        &format!("oci:{}:{TAG}", pulled.display()),
        registry.creds.as_deref().map(|c| ("--src-creds", c)),
    )
    .await
    .context("pull")?;
    let index: Value = serde_json::from_slice(&fs::read(pulled.join("index.json"))?)?;
    let got = index["manifests"][0]["digest"].as_str().unwrap_or_default();
    if got != image.digest {
        bail!("the pulled manifest is {got}, not the pushed {}", image.digest);
    }
    let peak_kib = vm_hwm_kib(registry.pid)?;
    drop(registry);
    Ok(Run { push, pull, start_kib, peak_kib })
}

async fn start_builtin(ctx: &Ctx, dir: &Path) -> Result<Running> {
    let password = random_hex(12);
    let port = free_port()?;
    let mut cmd = tokio::process::Command::new(&ctx.server);
    clean_env(&mut cmd);
    cmd.arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(["--gate", "off", "--no-inventory", "--no-worker"])
        .env("IMAGEGATE_ADMIN_PASSWORD", &password)
        .env("RUST_LOG", "warn");
    let mut server = Proc::spawn("imagegate-server", cmd, dir.join("server.log"))?;
    wait_ready(&ctx.http, &mut server, &format!("http://127.0.0.1:{port}/readyz")).await?;
    Ok(Running {
        host: format!("127.0.0.1:{port}"),
        pid: server.pid()?,
        creds: Some(format!("admin:{password}")),
        _server: Some(server),
        _distribution: None,
    })
}

/// `skopeo copy from to`; its wall time in seconds.
async fn skopeo_copy(ctx: &Ctx, dir: &Path, from: &str, to: &str, creds: Option<(&str, &str)>) -> Result<f64> {
    let tmp = dir.join("skopeo-tmp");
    fs::create_dir_all(&tmp)?;
    let mut cmd = tokio::process::Command::new(&ctx.skopeo);
    clean_env(&mut cmd);
    cmd.env("CONTAINERS_REGISTRIES_CONF", ctx.work.join("registries.conf"))
        .env("HOME", dir)
        .arg("--policy")
        .arg(ctx.work.join("policy.json"))
        .arg("--tmpdir")
        .arg(&tmp)
        .args(["copy", "--src-tls-verify=false", "--dest-tls-verify=false"]);
    if let Some((flag, creds)) = creds {
        cmd.args([flag, creds]);
    }
    cmd.args([from, to]);
    let started = Instant::now();
    let mut skopeo = Proc::spawn("skopeo", cmd, dir.join(format!("skopeo-{}.log", random_hex(4))))?;
    let status = skopeo.wait().await?;
    let wall = started.elapsed();
    if !status.success() {
        bail!("skopeo copy {from} {to} failed ({status}):\n{}", skopeo.log_tail());
    }
    Ok(wall.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_section_replaces_its_earlier_version_or_goes_at_the_end() {
        let section = format!("{BEGIN}\nnew\n{END}\n");
        assert_eq!(merge("# B\n\nkept\n", &section), format!("# B\n\nkept\n\n{BEGIN}\nnew\n{END}\n"));
        let doc = format!("# B\n\n{BEGIN}\nold\n{END}\n\n## After\n");
        assert_eq!(merge(&doc, &section), format!("# B\n\n{BEGIN}\nnew\n{END}\n\n## After\n"));
    }

    #[test]
    fn layouts_name_their_blobs_by_digest() {
        let dir = tempfile::tempdir().unwrap();
        let image = write_layout(dir.path(), "small-layers", "two".into(), &[1000, 70_000]).unwrap();
        let index: Value = serde_json::from_slice(&fs::read(image.layout.join("index.json")).unwrap()).unwrap();
        assert_eq!(index["manifests"][0]["digest"], image.digest.as_str());
        for entry in fs::read_dir(image.layout.join("blobs/sha256")).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            assert_eq!(hex::encode(Sha256::digest(fs::read(&path).unwrap())), name);
        }
        assert!(image.bytes > 71_000);
    }
}
