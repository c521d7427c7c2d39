//! Sizes as people write them (`5GB`) and as the command prints them (`1.2 kB`).

/// Parses a size: a whole number of bytes, optionally followed by a unit.
///
/// SI units are powers of 1000, as in Hugging Face's `max_shard_size`: `kB` (or `KB`), `MB`,
/// `GB`, `TB`; so `5GB` is 5 * 10^9 bytes. Binary units are powers of 1024 and are written with
/// an `i`: `KiB`, `MiB`, `GiB`, `TiB`. `B` (or nothing) is bytes. Units are read without regard
/// to case; a space may separate number and unit. Fractions (`1.5GB`) and zero are refused.
///
/// ```
/// use safejax_cli::units::parse_size;
/// assert_eq!(parse_size("5GB"), Ok(5_000_000_000));
/// assert_eq!(parse_size("10kB"), Ok(10_000));
/// assert_eq!(parse_size("2GiB"), Ok(2 << 30));
/// assert_eq!(parse_size("4096"), Ok(4096));
/// assert!(parse_size("1.5GB").is_err());
/// ```
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let digits_end = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits_end);
    if number.is_empty() {
        return Err(format!(
            "size `{text}` does not start with a whole number of bytes"
        ));
    }
    let unit = unit.trim_start();
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ if unit.starts_with('.') => {
            return Err(format!(
                "size `{text}` is not a whole number: write `1500MB` for `1.5GB`"
            ));
        }
        _ => {
            return Err(format!(
                "size `{text}` has unknown unit `{unit}`: expected B, kB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024)"
            ));
        }
    };
    let too_large = || format!("size `{text}` is too large");
    let value = number
        .parse::<u64>()
        .map_err(|_| too_large())?
        .checked_mul(multiplier)
        .ok_or_else(too_large)?;
    if value == 0 {
        return Err(format!("size `{text}` is zero"));
    }
    Ok(value)
}

/// A byte count for people: SI units with one decimal (`712.8 kB`), bytes below 1000 (`512 B`).
///
/// ```
/// use safejax_cli::units::human_bytes;
/// assert_eq!(human_bytes(512), "512 B");
/// assert_eq!(human_bytes(712_776), "712.8 kB");
/// assert_eq!(human_bytes(5_000_000_000), "5.0 GB");
/// ```
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["kB", "MB", "GB", "TB", "PB", "EB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 999.95 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn si_and_binary_units() {
        let cases = [
            ("5GB", 5_000_000_000),
            ("5gb", 5_000_000_000),
            ("500MB", 500_000_000),
            ("10kB", 10_000),
            ("10KB", 10_000),
            ("1TB", 1_000_000_000_000),
            ("3 MB", 3_000_000),
            ("123", 123),
            ("123B", 123),
            ("1KiB", 1024),
            ("1MiB", 1 << 20),
            ("5GiB", 5 << 30),
            ("1TiB", 1 << 40),
        ];
        for (text, bytes) in cases {
            assert_eq!(parse_size(text), Ok(bytes), "{text}");
        }
    }

    #[test]
    fn refused_sizes_say_why() {
        let refused = |text: &str| parse_size(text).err().unwrap_or_default();
        assert!(refused("").contains("does not start with a whole number"));
        assert!(refused("GB").contains("does not start with a whole number"));
        assert!(refused("-5GB").contains("does not start with a whole number"));
        assert!(refused("1.5GB").contains("not a whole number"));
        assert!(refused("5XB").contains("unknown unit `XB`"));
        assert!(refused("5 G").contains("unknown unit `G`"));
        assert!(refused("0GB").contains("is zero"));
        assert!(refused("99999999999999999999").contains("too large"));
        assert!(refused("20000000EB").contains("unknown unit"));
        assert!(refused("20000000000TB").contains("too large"));
    }

    #[test]
    fn human_sizes_round_to_one_decimal() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1000), "1.0 kB");
        assert_eq!(human_bytes(1168), "1.2 kB");
        assert_eq!(human_bytes(999_960), "1.0 MB");
        assert_eq!(human_bytes(u64::MAX), "18.4 EB");
    }
}
