//! An event's body on the wire: its JSON, or for the event types that carry a whole
//! collection (`Event::COMPRESSED`: the complete topology snapshot) that JSON
//! compressed with zstd. At 100k members the snapshot is tens of MB of JSON, and
//! every hop keeps a buffer the size of the largest message it moved (the
//! publisher's client, the gate both ways, the broker's connections, each
//! subscriber's client): compressed, it is a few MB.
//!
//! A compressed body is a zstd frame, which never starts like JSON (`{`): a reader
//! tells the two apart by the first bytes, and still takes a plain JSON body on such
//! a topic (one published by hand, or by an older build). Operators read one with
//! `mosquitto_sub -N -C 1 -t topology/CompleteTopologyEvent … | zstd -dc`.

use std::io::{Read, Write};

use serde::Serialize;

/// The first bytes of every zstd frame.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

/// zstd's fastest level: the controller encodes the snapshot on its own loop, and
/// JSON this repetitive compresses well at any level.
const LEVEL: i32 = 1;

/// The largest body a compressed one may expand to: a compressed message is small
/// on the wire, and must not be allowed to become gigabytes in the reader.
pub const MAX_EXPANDED: usize = 1024 * 1024 * 1024;

/// The body of `event`: its JSON, compressed if `compressed`.
pub fn encode<E: Serialize>(event: &E, compressed: bool) -> Result<Vec<u8>, serde_json::Error> {
    if !compressed {
        return serde_json::to_vec(event);
    }
    // Streamed through the encoder: the whole JSON of a large snapshot is never held.
    let encoder = zstd::stream::write::Encoder::new(Vec::new(), LEVEL).map_err(serde_json::Error::io)?;
    let mut writer = std::io::BufWriter::with_capacity(128 * 1024, encoder);
    serde_json::to_writer(&mut writer, event)?;
    writer.flush().map_err(serde_json::Error::io)?;
    let encoder = writer.into_inner().map_err(|e| serde_json::Error::io(e.into_error()))?;
    encoder.finish().map_err(serde_json::Error::io)
}

/// Whether `payload` is a compressed body.
pub fn is_compressed(payload: &[u8]) -> bool {
    payload.starts_with(&ZSTD_MAGIC)
}

/// Why a compressed body could not be expanded.
#[derive(Debug, thiserror::Error)]
pub enum ExpandError {
    #[error("not a readable zstd body: {0}")]
    Corrupt(#[from] std::io::Error),
    #[error("expands to more than {limit} bytes")]
    TooLarge { limit: usize },
}

/// The JSON of a compressed body, at most [`MAX_EXPANDED`] bytes of it.
pub fn expand(payload: &[u8]) -> Result<Vec<u8>, ExpandError> {
    expand_within(payload, MAX_EXPANDED)
}

fn expand_within(payload: &[u8], limit: usize) -> Result<Vec<u8>, ExpandError> {
    let decoder = zstd::stream::read::Decoder::new(payload)?;
    // Snapshots compress about tenfold; reserving for that spares the regrowth.
    let mut json = Vec::with_capacity(payload.len().saturating_mul(12).min(limit));
    decoder.take(limit as u64 + 1).read_to_end(&mut json)?;
    if json.len() > limit {
        return Err(ExpandError::TooLarge { limit });
    }
    Ok(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compressed_body_is_small_and_expands_to_the_json() {
        let value = serde_json::json!({"members": (0..2000).map(|i| format!("member-{i}")).collect::<Vec<_>>()});
        let plain = encode(&value, false).unwrap();
        assert_eq!(plain, serde_json::to_vec(&value).unwrap());
        assert!(!is_compressed(&plain));
        let compressed = encode(&value, true).unwrap();
        assert!(is_compressed(&compressed));
        assert!(compressed.len() * 4 < plain.len(), "{} vs {}", compressed.len(), plain.len());
        assert_eq!(expand(&compressed).unwrap(), plain);
    }

    #[test]
    fn a_damaged_body_is_an_error() {
        let mut compressed = encode(&serde_json::json!({"a": "b".repeat(1000)}), true).unwrap();
        compressed.truncate(compressed.len() / 2);
        assert!(matches!(expand(&compressed), Err(ExpandError::Corrupt(_))));
        assert!(matches!(expand(&ZSTD_MAGIC), Err(ExpandError::Corrupt(_))));
    }

    #[test]
    fn a_body_expanding_past_the_limit_is_refused() {
        // 64 MiB of zeros compress to a few kB.
        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
        let zeros = vec![0u8; 1024 * 1024];
        for _ in 0..64 {
            encoder.write_all(&zeros).unwrap();
        }
        let bomb = encoder.finish().unwrap();
        assert!(bomb.len() < 64 * 1024);
        let limit = 64 * 1024 * 1024 - 1;
        assert!(matches!(expand_within(&bomb, limit), Err(ExpandError::TooLarge { limit: l }) if l == limit));
        assert_eq!(expand_within(&bomb, limit + 1).unwrap().len(), limit + 1);
    }
}
