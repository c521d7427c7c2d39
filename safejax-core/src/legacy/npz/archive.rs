//! The zip container of an npz: its members listed, checked, and inflated into arrays.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use rawzip::{
    CompressionMethod, MAX_CENTRAL_DIRECTORY_RECORD_SIZE, ReaderAt, ZipArchive,
    ZipArchiveEntryWayfinder,
};

use super::npy::{self, NpyArray};
use crate::error::{Error, Result};

/// The most a deflate stream can inflate: a match copies at most 258 bytes and takes at least
/// two bits, so a stream holds at most 1032 times its length.
const MAX_DEFLATE_RATIO: u64 = 1032;

/// Allowance over that ratio, so that tiny members are not judged by their rounding.
const DEFLATE_SLACK: u64 = 1024;

/// A member of the archive, listed from the central directory.
struct Member {
    name: String,
    wayfinder: ZipArchiveEntryWayfinder,
    method: CompressionMethod,
    /// Where its local header starts, for errors.
    offset: u64,
}

/// Every `.npy` member of the npz in `bytes`, in archive order, named without `.npy`.
pub(super) fn from_slice(bytes: &[u8]) -> Result<Vec<(String, NpyArray)>> {
    let archive = ZipArchive::from_slice(bytes)
        .map_err(|e| zip_error(bytes.len() as u64, e))?
        .into_reader_archive();
    read(&archive, bytes.len() as u64, &|offset, key, error| {
        Error::legacy(
            "npz",
            offset,
            key,
            format!("cannot read the member: {error}"),
        )
    })
}

/// Every `.npy` member of the npz file at `path`, in archive order, named without `.npy`.
pub(super) fn from_file(path: &Path) -> Result<Vec<(String, NpyArray)>> {
    let file = File::open(path).map_err(|e| Error::io("open", path, e))?;
    let len = file
        .metadata()
        .map_err(|e| Error::io("read", path, e))?
        .len();
    let mut buffer = vec![0u8; rawzip::RECOMMENDED_BUFFER_SIZE];
    let archive = ZipArchive::from_file(file, &mut buffer).map_err(|e| match e.into_kind() {
        rawzip::ErrorKind::IO(e) => Error::io("read", path, e),
        kind => zip_error(len, rawzip::Error::from(kind)),
    })?;
    read(&archive, len, &|offset, key, error| match error.kind() {
        // What inflating or checking the data reports, or a member cut short: the bytes are bad.
        io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput | io::ErrorKind::UnexpectedEof => {
            Error::legacy(
                "npz",
                offset,
                key,
                format!("cannot read the member: {error}"),
            )
        }
        _ => Error::io("read", path, error),
    })
}

fn zip_error(offset: u64, error: rawzip::Error) -> Error {
    Error::legacy(
        "npz",
        offset,
        "",
        format!("is not a valid zip archive: {error}"),
    )
}

/// The members of `archive` (`len` bytes long), each read as an `.npy` array; `io` turns a
/// failed read of a member into the error to return.
fn read<R: ReaderAt>(
    archive: &ZipArchive<R>,
    len: u64,
    io: &dyn Fn(u64, &str, io::Error) -> Error,
) -> Result<Vec<(String, NpyArray)>> {
    let members = list(archive)?;
    check_extents(archive, &members, len)?;
    let mut out = Vec::with_capacity(members.len());
    let mut name_buffer = vec![0u8; 2 * usize::from(u16::MAX)];
    for member in members {
        let at = member.offset;
        let entry = archive
            .get_entry(member.wayfinder)
            .map_err(|e| Error::legacy("npz", at, &*member.name, e.to_string()))?;
        let local = entry
            .local_header(&mut name_buffer)
            .map_err(|e| Error::legacy("npz", at, &*member.name, e.to_string()))?;
        if local.file_path().as_bytes() != member.name.as_bytes() {
            return Err(Error::legacy(
                "npz",
                at,
                &*member.name,
                format!(
                    "is named `{}` in its local header",
                    String::from_utf8_lossy(local.file_path().as_bytes())
                ),
            ));
        }
        let Some(key) = member.name.strip_suffix(".npy").filter(|k| !k.is_empty()) else {
            return Err(Error::legacy(
                "npz",
                at,
                &*member.name,
                "is not an `.npy` array: an npz holds only `<name>.npy` members",
            ));
        };
        let declared = member.wayfinder.uncompressed_size_hint();
        let compressed = entry.reader();
        let mut data: Box<dyn Read> = if member.method == CompressionMethod::DEFLATE {
            Box::new(entry.verifying_reader(flate2::read::DeflateDecoder::new(compressed)))
        } else {
            Box::new(entry.verifying_reader(compressed))
        };
        let member_io = |offset: u64, error: io::Error| io(offset, key, error);
        let array = npy::read_from(&mut data, declared, key, &member_io)?;
        // Past its declared size the verifier fails, so a member that inflates further stops
        // here, one byte past the data that was read.
        let mut probe = [0u8; 1];
        match data.read(&mut probe) {
            Ok(0) => {}
            Ok(_) => {
                return Err(Error::legacy(
                    "npz",
                    at,
                    key,
                    format!("inflates past its declared size of {declared} bytes"),
                ));
            }
            Err(error) => return Err(member_io(declared, error)),
        }
        out.push((key.to_owned(), array));
    }
    Ok(out)
}

/// The members of the central directory, checked to be files stored or deflated, unencrypted,
/// with UTF-8 names, each once.
fn list<R: ReaderAt>(archive: &ZipArchive<R>) -> Result<Vec<Member>> {
    let mut buffer = vec![0u8; MAX_CENTRAL_DIRECTORY_RECORD_SIZE];
    let mut entries = archive.entries(&mut buffer);
    let mut members: Vec<Member> = Vec::new();
    let directory = archive.directory_offset();
    loop {
        let record = match entries.next_entry() {
            Ok(Some(record)) => record,
            Ok(None) => break,
            Err(e) => {
                return Err(Error::legacy(
                    "npz",
                    directory,
                    "",
                    format!("has a bad central directory: {e}"),
                ));
            }
        };
        let offset = record.local_header_offset();
        let raw = record.file_path().as_bytes();
        let name = std::str::from_utf8(raw)
            .map_err(|_| {
                Error::legacy(
                    "npz",
                    offset,
                    String::from_utf8_lossy(raw),
                    "has a member name that is not UTF-8",
                )
            })?
            .to_owned();
        let fail = |reason: String| Error::legacy("npz", offset, &*name, reason);
        if record.is_dir() {
            return Err(fail("is a directory, not an `.npy` array".to_owned()));
        }
        let flags = record.flags();
        if flags.is_encrypted() || flags.has_strong_encryption() {
            return Err(fail("is encrypted".to_owned()));
        }
        let method = record.compression_method();
        if method != CompressionMethod::STORE && method != CompressionMethod::DEFLATE {
            return Err(fail(format!(
                "is compressed with {method}; npz members are stored or deflated"
            )));
        }
        if members.iter().any(|m| m.name == name) {
            return Err(fail("appears twice in the archive".to_owned()));
        }
        members.push(Member {
            wayfinder: record.wayfinder(),
            name,
            method,
            offset,
        });
    }
    if members.len() as u64 != archive.entries_hint() {
        return Err(Error::legacy(
            "npz",
            directory,
            "",
            format!(
                "lists {} members where its end record counts {}",
                members.len(),
                archive.entries_hint()
            ),
        ));
    }
    Ok(members)
}

/// Checks, before anything is inflated, that each member's data lies inside the archive, that
/// no two members share bytes, and that each declared size is one its data can have: a stored
/// member's equals its data's, a deflated member's is at most what deflate can inflate. So no
/// member allocates more than its declared size, and all of them together at most
/// [`MAX_DEFLATE_RATIO`] times the archive's size.
fn check_extents<R: ReaderAt>(archive: &ZipArchive<R>, members: &[Member], len: u64) -> Result<()> {
    let mut extents = Vec::with_capacity(members.len());
    for member in members {
        let fail = |reason: String| Error::legacy("npz", member.offset, &*member.name, reason);
        let entry = archive
            .get_entry(member.wayfinder)
            .map_err(|e| fail(e.to_string()))?;
        let (start, end) = entry.compressed_data_range();
        if end > len {
            return Err(fail(format!(
                "has data up to byte {end}, past the end of the archive at byte {len}"
            )));
        }
        let compressed = end - start;
        let declared = member.wayfinder.uncompressed_size_hint();
        if member.method == CompressionMethod::STORE && declared != compressed {
            return Err(fail(format!(
                "is stored in {compressed} bytes but declares {declared}"
            )));
        }
        let most = compressed
            .saturating_mul(MAX_DEFLATE_RATIO)
            .saturating_add(DEFLATE_SLACK);
        if declared > most {
            return Err(fail(format!(
                "declares {declared} bytes, more than its {compressed} deflated bytes can hold"
            )));
        }
        extents.push((member.offset, end, &member.name));
    }
    extents.sort_unstable();
    for pair in extents.windows(2) {
        if let [(_, end, first), (start, _, second)] = pair
            && start < end
        {
            return Err(Error::legacy(
                "npz",
                *start,
                second.as_str(),
                format!("overlaps the data of member `{first}`"),
            ));
        }
    }
    Ok(())
}
