//! `cod fetch MAGNET`: download a cod package (or the com.ini / cod.ini nodes offer beside it)
//! from the nodes that seed it, found on the Mainline DHT or named in the link. How a new
//! member gets the package from nothing but a magnet link (MISSION.md "Node discovery" 2).

use super::{CmdError, CmdResult, Output, progress_bar};
use crate::cli::FetchArgs;
use crate::fsutil;
use crate::ids::CodId;
use crate::package::Package;
use crate::package::torrent::Info;
use serde_json::json;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// Addresses taken from the DHT, at most (each is tried in turn until one serves the file).
const MAX_DHT_PEERS: usize = 64;

pub fn fetch(out: &Output, a: FetchArgs) -> CmdResult {
    let m = &a.what;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CmdError::msg(e.to_string()))?;
    let mut peers = Vec::new();
    for p in m.peers.iter().chain(&a.peers) {
        match p.to_socket_addrs() {
            Ok(addrs) => peers.extend(addrs),
            Err(e) => eprintln!("skipping peer {p}: {e}"),
        }
    }
    if !a.no_dht {
        eprintln!(
            "looking up {} on the DHT…",
            m.name.as_deref().unwrap_or(&m.infohash.to_string())
        );
        let found = runtime.block_on(dht_peers(m.infohash, &a.bootstrap, a.timeout))?;
        for p in found {
            if !peers.contains(&p) {
                peers.push(p);
            }
        }
    }
    if peers.is_empty() {
        return Err(CmdError::msg(format!(
            "no node offers {} (none found{}); name one with --peer HOST:PORT",
            m.infohash,
            if a.no_dht { "" } else { " on the DHT" }
        )));
    }
    let (info, bytes) = download(&runtime, &peers, m.infohash)?;
    if let Some(n) = m.length.filter(|n| *n != bytes.len() as u64) {
        return Err(CmdError::msg(format!(
            "the magnet link says {n} bytes (xl) but the file with its infohash has {}; \
             the link is wrong",
            bytes.len()
        )));
    }
    let mut view = json!({
        "infohash": m.infohash, "name": info.name, "bytes": bytes.len(),
    });
    let mut human = String::new();
    if info.name.ends_with(crate::config::cod::PACKAGE_SUFFIX) {
        let pkg = Package::open(bytes.clone(), &mut |_| {})
            .map_err(|e| CmdError::msg(format!("the downloaded package is refused: {e}")))?;
        if pkg.cod_id() != m.infohash {
            return Err(CmdError::msg(format!(
                "refused: the downloaded package is cod {}, not the {} asked for",
                pkg.cod_id(),
                m.infohash
            )));
        }
        human = format!(
            "cod {} {} (cod id {}), signed by deployer {}\n",
            pkg.cod.name,
            pkg.cod.version,
            pkg.cod_id(),
            pkg.deployer.fingerprint()
        );
        view["package"] = json!({
            "cod_id": pkg.cod_id(), "name": pkg.cod.name,
            "version": pkg.cod.version.to_string(),
            "deployer": pkg.deployer.fingerprint(),
        });
    }
    std::fs::create_dir_all(&a.out).map_err(fsutil::io_err(&a.out))?;
    let path = a.out.join(&info.name);
    if path.exists() && fsutil::read(&path)? != bytes {
        return Err(fsutil::FsError::Exists(path).into());
    }
    fsutil::write_atomic(&path, &bytes, 0o644, true)?;
    view["path"] = json!(path);
    human = format!(
        "fetched {} ({} bytes)\n{human}",
        path.display(),
        bytes.len()
    );
    if view.get("package").is_some() {
        human.push_str(&format!(
            "next: cod deploy --package {} --key YOUR_NODE_KEY\n",
            path.display()
        ));
    }
    out.emit(human, view);
    Ok(())
}

/// Downloads the file with `infohash` from one of `peers` over BitTorrent, with a progress
/// bar. Every piece was checked on the way; the whole file is hashed once more here, so
/// nothing reaches the disk that is not exactly the file the infohash names.
pub fn download(
    runtime: &tokio::runtime::Runtime,
    peers: &[SocketAddr],
    infohash: CodId,
) -> Result<(Info, Vec<u8>), CmdError> {
    let bar = progress_bar(0, "downloading");
    let got = runtime
        .block_on(crate::seeder::fetch(
            peers,
            *infohash.as_bytes(),
            crate::package::MAX_PACKAGE_BYTES,
            &|done, total| {
                bar.set_length(total);
                bar.set_position(done);
            },
        ))
        .map_err(|e| CmdError::msg(format!("download failed: {e}")))?;
    bar.finish_and_clear();
    let (info, bytes) = got;
    if Info::of(&info.name, &bytes, &mut |_| {}).infohash() != infohash {
        return Err(CmdError::msg(format!(
            "download failed: the file does not hash to {infohash}"
        )));
    }
    Ok((info, bytes))
}

/// The addresses announced under `infohash` on the DHT (an empty `bootstrap` means the
/// public Mainline routers), gathered for at most `timeout`.
async fn dht_peers(
    infohash: CodId,
    bootstrap: &[String],
    timeout: Duration,
) -> Result<Vec<SocketAddr>, CmdError> {
    use futures::StreamExt;
    let mut b = mainline::Dht::builder();
    if !bootstrap.is_empty() {
        b.bootstrap(bootstrap);
    }
    let dht = b
        .build()
        .map_err(|e| CmdError::msg(format!("the DHT did not start: {e}")))?
        .as_async();
    let mut found: Vec<SocketAddr> = Vec::new();
    let mut stream = dht.get_peers(mainline::Id::from(*infohash.as_bytes()));
    let deadline = tokio::time::Instant::now() + timeout;
    while let Ok(Some(batch)) = tokio::time::timeout_at(deadline, stream.next()).await {
        for a in batch.into_iter().map(SocketAddr::V4) {
            if !found.contains(&a) {
                found.push(a);
            }
        }
        if found.len() >= MAX_DHT_PEERS {
            found.truncate(MAX_DHT_PEERS);
            break;
        }
    }
    Ok(found)
}
