//! Downloading a file from a peer that sends anything: whatever blocks arrive, in whatever
//! order, the download is done only with every piece checked, and then it is the file.
#![no_main]
use arbitrary::Arbitrary;
use cod::package::Info;
use cod::seeder::download::{Metadata, Pieces};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Event {
    /// The honest block for the n-th request made.
    Honest(u16),
    /// Any block at all.
    Block {
        index: u32,
        begin: u32,
        len: u16,
        byte: u8,
    },
    /// An honest block with one byte changed.
    Flipped(u16, u16),
    Request(u8),
}

#[derive(Arbitrary, Debug)]
struct Case {
    len: u32,
    events: Vec<Event>,
    meta: Vec<(i64, u16)>,
}

fuzz_target!(|case: Case| {
    let len = (case.len % 600_000) as usize + 1;
    let file: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
    let info = Info::of("f.bin", &file, &mut |_| {});
    let block = |(i, b, l): (u32, u32, u32)| {
        let at = i as usize * info.piece_length as usize + b as usize;
        file[at..at + l as usize].to_vec()
    };
    let mut p = Pieces::new(info.clone()).unwrap();
    let mut asked = Vec::new();
    asked.extend(p.requests(4));
    for e in case.events {
        let r = match e {
            Event::Honest(n) if !asked.is_empty() => {
                let q = asked[n as usize % asked.len()];
                p.on_block(q.0, q.1, &block(q))
            }
            Event::Flipped(n, at) if !asked.is_empty() => {
                let q = asked[n as usize % asked.len()];
                let mut b = block(q);
                let i = at as usize % b.len();
                b[i] ^= 1;
                p.on_block(q.0, q.1, &b)
            }
            Event::Block {
                index,
                begin,
                len,
                byte,
            } => p.on_block(index, begin, &vec![byte; len as usize]),
            Event::Request(n) => {
                asked.extend(p.requests(n as usize % 32));
                Ok(())
            }
            _ => Ok(()),
        };
        if r.is_err() {
            break; // the driver drops such a peer
        }
    }
    if p.done() {
        assert_eq!(p.finish().unwrap().1, file);
    }

    // Metadata pieces from a peer: complete only with the exact bytes.
    let meta = info.bencode();
    let mut m = Metadata::new(*info.infohash().as_bytes(), meta.len() as i64).unwrap();
    for (piece, cut) in case.meta {
        let data: &[u8] = if cut == 0 {
            &meta
        } else {
            &meta[..(cut as usize).min(meta.len())]
        };
        let _ = m.on_data(piece, data);
    }
    if m.complete() {
        assert_eq!(m.finish().unwrap(), info);
    }
});
