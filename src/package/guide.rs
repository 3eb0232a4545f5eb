//! The generated deployment guide (`GUIDE.md` in the package), naming the exact commands.

use crate::config::com::{Admission, Fallback, Formula};
use crate::config::{CodConfig, ComConfig};

pub fn generate(com: &ComConfig, cod: &CodConfig) -> String {
    let pkg = cod.package_file_name();
    let deployer = match (&cod.deployer_name, &cod.deployer_contact) {
        (Some(n), Some(c)) => format!("{n} ({c})"),
        (Some(n), None) => n.clone(),
        (None, Some(c)) => format!("an anonymous deployer ({c})"),
        (None, None) => "an anonymous deployer".into(),
    };
    let assets: Vec<String> = com.assets.keys().cloned().collect();
    let formula = match &com.distribution.formula {
        Formula::Equal => "equal shares among the admitted members".to_string(),
        Formula::ProRataPaid => {
            "pro rata to what each member newly net-received from other members".to_string()
        }
        Formula::Work => "pro rata to the work attested for each member".to_string(),
        Formula::Weights(w) => format!("fixed weights over {} member keys", w.len()),
    };
    let fallback = match com.signers.fallback {
        Fallback::None => "The deployer has no duties in this cod.".to_string(),
        Fallback::Deployer { after } => format!(
            "Fallback duty: when a period's distribution is still unsigned {} after the period ends, \
             the deployer's key may stand in for one missing signer. It is never needed while members sign.",
            humantime::format_duration(std::time::Duration::from_secs(after))
        ),
    };
    format!(
        r#"# Deploying a node of {name} {version}

This package deploys a node of the cod **{name} {version}**, published by {deployer}, running the
com model **{com_name} {com_version}**. Read this guide before running anything.

## 1. Check what you received

The cod id is the BitTorrent infohash of `{pkg}`. Get it from the person or page that
gave you the package, then let `cod deploy` compare it (step 3 does). The package's `MANIFEST`
lists the SHA-256 of every file and `MANIFEST.sig` is the deployer's signature over it; check
them by hand with:

    sha256sum -c MANIFEST
    openssl dgst -sha256 -verify keys/cod.pub.key -signature MANIFEST.sig MANIFEST

## 2. Edit node.ini

`node.ini` here is an example. Copy it, and set at least `listen` (the TCP port other nodes
reach you on) and, behind NAT, `public_addr`. Every key is explained in the file.

## 3. Deploy

    ./deploy.sh {pkg} --node-ini my-node.ini --expect-cod-id COD_ID

or, equivalently, `./bin/cod deploy --package {pkg} ...`. This checks the package, creates your
node key (`--key FILE` imports an existing one instead), prints your **node id** and the next
command. Your key is encrypted with a passphrase you choose; for unattended restarts put it in a
file named by `passphrase_file` in node.ini (mode 0600).

## 4. Run

The commands below call `cod`, the executable this package carries in `bin/`. Put it on your
PATH once, either for this shell or for good, with its man pages and completions:

    export PATH="$PWD/bin:$PATH"                             # this shell only
    ./bin/cod node install-service --systemd-user            # for good, in ~/.local/bin, and
                                                             # a service that starts the node
    sudo ./bin/cod node install-service                      # for good, in /usr/local/bin

Then:

    cod node start      # in the background; `cod node run` stays in the foreground
    cod status
    cod tui             # the dashboard

## 5. Upgrade and import

    ./upgrade.sh check           # asks your peers for newer packages of this cod
    ./import.sh OLD_NODE_DIR     # brings your key and chain from an older deployment

## This cod

- assets: {assets}
- settlement period: {period}
- distribution: {formula}, {share}% of the network account each period
- signers: {quorum} of {signers} member keys sign issuance and distribution
- members (who receive distributions): {founders} founder keys; {admission}. Your new
  account holds and moves coins at once, and is paid by distributions once admitted
  (`cod members` lists the members; give your account id to the signers or your sponsors)
- {fallback}
"#,
        name = cod.name,
        version = cod.version,
        com_name = com.name,
        com_version = com.version,
        assets = assets.join(", "),
        period = humantime::format_duration(std::time::Duration::from_secs(com.settlement_period)),
        share = com.distribution.share_percent,
        quorum = com.signers.quorum,
        signers = com.signers.keys.len(),
        founders = com.membership.founders.len(),
        admission = match com.membership.admission {
            Admission::Quorum => "the signers admit others".to_string(),
            Admission::Sponsors(n) => format!(
                "the signers admit others, and so do {n} members vouching (`cod transfer --vouch ACCOUNT`)"
            ),
        },
    )
}
