//! The three INI files: com.ini (the model), cod.ini (the deployment), node.ini (a node).
//! The first byte picks which.
#![no_main]
use cod::config::{CodConfig, ComConfig, NodeConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    match which % 3 {
        0 => {
            let _ = ComConfig::parse("com.ini", text);
        }
        1 => {
            let _ = CodConfig::parse("cod.ini", text);
        }
        _ => {
            let _ = NodeConfig::parse("node.ini", text);
        }
    }
});
