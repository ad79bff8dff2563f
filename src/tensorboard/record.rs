//! TFRecord framing: each record is its length (u64, little-endian), the
//! masked CRC32C of those 8 bytes, the data, and the masked CRC32C of the data.

use std::io::Write;

/// TFRecord's CRC mask: rotate right by 15 and add a constant, so a CRC of
/// data that holds CRCs stays well distributed.
fn masked_crc(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

pub fn write(out: &mut impl Write, data: &[u8]) -> std::io::Result<()> {
    let length = (data.len() as u64).to_le_bytes();
    out.write_all(&length)?;
    out.write_all(&masked_crc(&length).to_le_bytes())?;
    out.write_all(data)?;
    out.write_all(&masked_crc(data).to_le_bytes())
}

/// The records of `bytes`, in order, and whether a torn or corrupt tail (a
/// process killed mid-write) was left out.
pub fn read(bytes: &[u8]) -> (Vec<&[u8]>, bool) {
    let mut records = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let Some(record) = next(rest) else { return (records, true) };
        records.push(record);
        rest = &rest[8 + 4 + record.len() + 4..];
    }
    (records, false)
}

fn next(bytes: &[u8]) -> Option<&[u8]> {
    let length = bytes.get(..8)?;
    let length_crc = u32::from_le_bytes(bytes.get(8..12)?.try_into().ok()?);
    if masked_crc(length) != length_crc {
        return None;
    }
    let n = usize::try_from(u64::from_le_bytes(length.try_into().ok()?)).ok()?;
    let data = bytes.get(12..12usize.checked_add(n)?)?;
    let data_crc = u32::from_le_bytes(bytes.get(12 + n..12 + n + 4)?.try_into().ok()?);
    (masked_crc(data) == data_crc).then_some(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back_and_a_torn_tail_is_left_out() {
        let mut bytes = Vec::new();
        write(&mut bytes, b"first").unwrap();
        write(&mut bytes, b"").unwrap();
        write(&mut bytes, b"third record").unwrap();
        assert_eq!(read(&bytes), (vec![&b"first"[..], b"", b"third record"], false));
        // The length 5 and its masked CRC32C, as computed bit by bit from the
        // Castagnoli polynomial (0x82F63B78) and TFRecord's mask.
        assert_eq!(&bytes[..12], [5, 0, 0, 0, 0, 0, 0, 0, 234, 178, 4, 62]);
        let torn = &bytes[..bytes.len() - 3];
        assert_eq!(read(torn), (vec![&b"first"[..], b""], true));
        let mut corrupt = bytes.clone();
        corrupt[14] ^= 1;
        assert_eq!(read(&corrupt), (Vec::<&[u8]>::new(), true));
    }
}
