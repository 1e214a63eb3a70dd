//! Finds where a chunked message body ends (RFC 9112 §7.1) without decoding it: the
//! proxy relays chunked bodies as they are and only needs to know the last byte.

/// A scanner over a chunked body, fed the bytes as they arrive.
#[derive(Debug, Default)]
pub(crate) struct ChunkedEnd {
    state: State,
    /// The size of the chunk whose size line is being read.
    size: u64,
    /// Hex digits of that size line so far.
    digits: u8,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    #[default]
    Size,
    /// After the size: whitespace or a `;` extension, up to the CR.
    SizeRest,
    SizeLf,
    Data(u64),
    DataCr,
    DataLf,
    /// At the start of a trailer line (or of the final empty line).
    TrailerStart,
    TrailerLine,
    FinalLf,
    Done,
}

/// The body is not valid chunked encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InvalidChunked;

impl ChunkedEnd {
    /// Scans `bytes`, which follow those scanned before. Returns `Some(n)` when the body
    /// ends after `n` of them, `None` when it goes on after all of them.
    pub fn scan(&mut self, bytes: &[u8]) -> Result<Option<usize>, InvalidChunked> {
        let mut i = 0;
        while i < bytes.len() {
            if let State::Data(left) = self.state {
                // Chunk data is skipped in one step, not byte by byte.
                let take = left.min((bytes.len() - i) as u64);
                i += take as usize;
                self.state = if take == left { State::DataCr } else { State::Data(left - take) };
                continue;
            }
            let b = bytes[i];
            i += 1;
            self.state = match (self.state, b) {
                (State::Size, b) if b.is_ascii_hexdigit() => {
                    // More than 16 hex digits cannot be a size we could honour.
                    if self.digits == 16 {
                        return Err(InvalidChunked);
                    }
                    self.digits += 1;
                    self.size = self.size << 4 | u64::from((b as char).to_digit(16).expect("a hex digit"));
                    State::Size
                }
                (State::Size, b';' | b' ' | b'\t') if self.digits > 0 => State::SizeRest,
                (State::Size, b'\r') if self.digits > 0 => State::SizeLf,
                (State::SizeRest, b'\r') => State::SizeLf,
                (State::SizeRest, b'\n') => return Err(InvalidChunked),
                (State::SizeRest, _) => State::SizeRest,
                (State::SizeLf, b'\n') => {
                    let size = std::mem::take(&mut self.size);
                    self.digits = 0;
                    if size == 0 {
                        State::TrailerStart
                    } else {
                        State::Data(size)
                    }
                }
                (State::DataCr, b'\r') => State::DataLf,
                (State::DataLf, b'\n') => State::Size,
                (State::TrailerStart, b'\r') => State::FinalLf,
                (State::TrailerLine, b'\n') => State::TrailerStart,
                (State::TrailerStart | State::TrailerLine, _) => State::TrailerLine,
                (State::FinalLf, b'\n') => {
                    self.state = State::Done;
                    return Ok(Some(i));
                }
                _ => return Err(InvalidChunked),
            };
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `body` in pieces of `step` bytes; the offset where it ends, if it does.
    fn end_in_steps(body: &[u8], step: usize) -> Result<Option<usize>, InvalidChunked> {
        let mut scanner = ChunkedEnd::default();
        let mut seen = 0;
        for piece in body.chunks(step) {
            if let Some(n) = scanner.scan(piece)? {
                return Ok(Some(seen + n));
            }
            seen += piece.len();
        }
        Ok(None)
    }

    #[test]
    fn finds_the_end_whatever_the_pieces() {
        let cases: [(&[u8], usize); 5] = [
            (b"5\r\nhello\r\n0\r\n\r\n", 15),
            (b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nGET / HTTP/1.1", 26),
            (b"A;name=value\r\n0123456789\r\n0\r\n\r\n", 31),
            (b"3\r\nabc\r\n0\r\nExpires: never\r\nX-Sum: 1\r\n\r\n", 39),
            (b"0 \r\n\r\n", 6),
        ];
        for (body, end) in cases {
            for step in 1..=body.len() {
                assert_eq!(
                    end_in_steps(body, step),
                    Ok(Some(end)),
                    "{:?} in steps of {step}",
                    String::from_utf8_lossy(body)
                );
            }
        }
    }

    #[test]
    fn an_unfinished_body_goes_on() {
        for body in [&b"5\r\nhel"[..], b"5\r\nhello\r\n", b"0\r\n", b"0\r\nX-T: 1\r\n", b"10"] {
            assert_eq!(end_in_steps(body, 1), Ok(None), "{:?}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn malformed_bodies_are_refused() {
        for body in
            [&b"x\r\n"[..], b"\r\n", b"5\r\nhelloXX", b"5\nhello", b"5;ext\n", b"11111111111111111\r\n", b"0\r\n\r\r"]
        {
            assert_eq!(end_in_steps(body, 1), Err(InvalidChunked), "{:?}", String::from_utf8_lossy(body));
        }
    }
}
