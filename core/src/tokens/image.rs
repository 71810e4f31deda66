//! Image dimensions from an inline (base64) image's header, for the providers' image-token
//! conventions. Only the first few KB are decoded; URLs to fetch are not followed.

/// Width and height in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageSize {
    pub width: u32,
    pub height: u32,
}

/// Base64 characters decoded at most: enough for a JPEG's EXIF block before its frame header.
const MAX_BASE64: usize = 64 * 1024;

/// The size of a PNG, GIF, JPEG or WebP image given as a `data:` URL or as bare base64.
pub fn image_size_from_data_url(data: &str) -> Option<ImageSize> {
    let base64 = match data.strip_prefix("data:") {
        Some(rest) => rest.split_once(',')?.1,
        None => data,
    };
    let prefix = base64
        .as_bytes()
        .get(..MAX_BASE64)
        .unwrap_or(base64.as_bytes());
    image_size(&decode_base64_prefix(prefix))
}

fn sextet(c: u8) -> Option<u32> {
    Some(u32::from(match c {
        b'A'..=b'Z' => c.wrapping_sub(b'A'),
        b'a'..=b'z' => c.wrapping_sub(b'a').wrapping_add(26),
        b'0'..=b'9' => c.wrapping_sub(b'0').wrapping_add(52),
        b'+' | b'-' => 62,
        b'/' | b'_' => 63,
        _ => return None,
    }))
}

/// Decodes as many whole base64 quads as `input` holds, stopping at padding or a bad character.
fn decode_base64_prefix(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut acc = 0u32;
    let mut bits = 0u32;
    for &c in input {
        if c == b'\n' || c == b'\r' {
            continue;
        }
        let Some(value) = sextet(c) else { break };
        acc = ((acc << 6) | value) & 0x00FF_FFFF;
        bits = bits.wrapping_add(6);
        if bits >= 8 {
            bits = bits.wrapping_sub(8);
            out.push(u8::try_from((acc >> bits) & 0xFF).unwrap_or(0));
        }
    }
    out
}

fn be16(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(2)?)?;
    Some(u32::from(u16::from_be_bytes([*b.first()?, *b.get(1)?])))
}

fn le16(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(2)?)?;
    Some(u32::from(u16::from_le_bytes([*b.first()?, *b.get(1)?])))
}

fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    Some((be16(bytes, at)? << 16) | be16(bytes, at.checked_add(2)?)?)
}

fn le24(bytes: &[u8], at: usize) -> Option<u32> {
    Some(le16(bytes, at)? | (u32::from(*bytes.get(at.checked_add(2)?)?) << 16))
}

fn image_size(bytes: &[u8]) -> Option<ImageSize> {
    let size = |width, height| Some(ImageSize { width, height });
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return size(be32(bytes, 16)?, be32(bytes, 20)?);
    }
    if bytes.starts_with(b"GIF8") {
        return size(le16(bytes, 6)?, le16(bytes, 8)?);
    }
    if bytes.starts_with(b"RIFF") && bytes.get(8..12) == Some(b"WEBP") {
        return match bytes.get(12..16)? {
            b"VP8X" => size(
                le24(bytes, 24)?.checked_add(1)?,
                le24(bytes, 27)?.checked_add(1)?,
            ),
            b"VP8L" => {
                let bits = le16(bytes, 21)? | (le16(bytes, 23)? << 16);
                size(
                    (bits & 0x3FFF).checked_add(1)?,
                    ((bits >> 14) & 0x3FFF).checked_add(1)?,
                )
            }
            b"VP8 " => size(le16(bytes, 26)? & 0x3FFF, le16(bytes, 28)? & 0x3FFF),
            _ => None,
        };
    }
    if bytes.starts_with(b"\xFF\xD8") {
        // Walk the JPEG segments to the first start-of-frame marker.
        let mut at = 2usize;
        loop {
            if *bytes.get(at)? != 0xFF {
                return None;
            }
            let marker = *bytes.get(at.checked_add(1)?)?;
            if marker == 0xFF {
                at = at.checked_add(1)?;
                continue;
            }
            let is_frame = matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
            if is_frame {
                return size(
                    be16(bytes, at.checked_add(7)?)?,
                    be16(bytes, at.checked_add(5)?)?,
                );
            }
            let length = be16(bytes, at.checked_add(2)?)?;
            at = at
                .checked_add(2)?
                .checked_add(usize::try_from(length).ok()?)?;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #[cfg(target_family = "wasm")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::{ImageSize, image_size_from_data_url};

    fn b64(bytes: &[u8]) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk.len();
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= n {
                    out.push(ALPHABET[((v >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    #[test]
    fn png_gif_jpeg_and_webp_headers() {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        png.extend_from_slice(&1024u32.to_be_bytes());
        png.extend_from_slice(&768u32.to_be_bytes());
        png.extend_from_slice(b"\x08\x02\0\0\0");
        assert_eq!(
            image_size_from_data_url(&format!("data:image/png;base64,{}", b64(&png))),
            Some(ImageSize {
                width: 1024,
                height: 768
            })
        );
        let gif = b"GIF89a\x40\x01\xf0\x00\x00\x00";
        assert_eq!(
            image_size_from_data_url(&b64(gif)),
            Some(ImageSize {
                width: 320,
                height: 240
            })
        );
        // SOI, an APP0 segment, then SOF0 with height 600 and width 800.
        let jpeg = b"\xFF\xD8\xFF\xE0\x00\x04ab\xFF\xC0\x00\x11\x08\x02\x58\x03\x20\x03";
        assert_eq!(
            image_size_from_data_url(&format!("data:image/jpeg;base64,{}", b64(jpeg))),
            Some(ImageSize {
                width: 800,
                height: 600
            })
        );
        let mut webp = b"RIFF\0\0\0\0WEBPVP8X\x0a\0\0\0\0\0\0\0".to_vec();
        webp.extend_from_slice(&[0x3F, 0x01, 0x00, 0xEF, 0x00, 0x00]);
        assert_eq!(
            image_size_from_data_url(&b64(&webp)),
            Some(ImageSize {
                width: 320,
                height: 240
            })
        );
        assert_eq!(
            image_size_from_data_url("https://example.com/cat.png"),
            None
        );
        assert_eq!(image_size_from_data_url("data:image/png;base64,@@@"), None);
        assert_eq!(image_size_from_data_url(&b64(b"\xFF\xD8\xFF")), None);
    }
}
