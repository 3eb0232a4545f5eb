//! A deployment package (tar + manifest + deployer signature), as `cod deploy`, `cod fetch`
//! and `cod upgrade` open it.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = cod::package::Package::open(data.to_vec(), &mut |_| {}) {
        let _ = p.cod_id();
        let _ = p.torrents();
    }
});
