//! Streamed loads: the byte ranges a load reads are fetched in file order, a bounded number in
//! flight, while the load runs on the calling thread and copies each tensor from the bytes
//! that came straight into its array. A range is let go once its tensors are read, so a load
//! holds about the model plus the ranges in flight, not the model twice.

use std::collections::BTreeMap;
use std::io;
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::{GetOptions, GetRange, ObjectStore};
use safejax_core::fetched::RangeSource;
use tokio::sync::mpsc;

use crate::{Error, Remote, Result, Stats};

/// A range of a file that came: its bytes as the network delivered them, in pieces.
struct Arrived {
    pieces: Vec<Bytes>,
    len: u64,
    /// Bytes of it no tensor has read yet; the range is let go at zero.
    unread: u64,
}

/// A range fetched: which file, where, and its bytes.
type Delivery = (usize, u64, Vec<Bytes>);

/// What the fetching task delivers and the load takes, for every file of a load.
pub(crate) struct Shared {
    state: Mutex<State>,
}

struct State {
    /// Ranges that came and are not wholly read, by file and first byte.
    arrived: BTreeMap<(usize, u64), Arrived>,
    /// `None` once the load is over.
    receiver: Option<mpsc::Receiver<Delivery>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ends the load: what has not come is not waited for, and the fetching task stops.
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        state.receiver = None;
        state.arrived.clear();
    }
}

/// One file of a streamed load, as its [`RangeSource`].
pub(crate) struct FileStream {
    pub(crate) shared: Arc<Shared>,
    pub(crate) file: usize,
}

impl RangeSource for FileStream {
    fn read(&self, at: Range<u64>, take: &mut dyn FnMut(&[u8])) -> io::Result<()> {
        let mut state = self.shared.lock();
        // A tensor may span ranges (one longer than a request is fetched in several): its
        // bytes are handed out range by range, from `at` on, as each comes.
        let mut at = at;
        while !at.is_empty() {
            let holding = state
                .arrived
                .range(..=(self.file, at.start))
                .next_back()
                .filter(|((file, start), got)| *file == self.file && at.start < start + got.len)
                .map(|(key, _)| *key);
            if let Some(key) = holding
                && let Some(got) = state.arrived.get_mut(&key)
            {
                let end = at.end.min(key.1 + got.len);
                hand_out(&got.pieces, at.start - key.1, end - at.start, take);
                got.unread = got.unread.saturating_sub(end - at.start);
                if got.unread == 0 {
                    state.arrived.remove(&key);
                }
                at.start = end;
                continue;
            }
            let Some(receiver) = state.receiver.as_mut() else {
                return Err(io::Error::other("the load is over"));
            };
            match receiver.blocking_recv() {
                Some((file, start, pieces)) => {
                    let len = pieces.iter().map(|p| p.len() as u64).sum();
                    let arrived = Arrived {
                        pieces,
                        len,
                        unread: len,
                    };
                    state.arrived.insert((file, start), arrived);
                }
                None => {
                    let reason = format!(
                        "bytes {}..{} did not come: the fetch stopped",
                        at.start, at.end
                    );
                    return Err(io::Error::other(reason));
                }
            }
        }
        Ok(())
    }
}

/// Hands `len` bytes of `pieces` from byte `from` on to `take`, a piece at a time.
fn hand_out(pieces: &[Bytes], mut from: u64, mut len: u64, take: &mut dyn FnMut(&[u8])) {
    for piece in pieces {
        let piece_len = piece.len() as u64;
        if from >= piece_len {
            from -= piece_len;
            continue;
        }
        let end = piece_len.min(from + len);
        take(&piece[from as usize..end as usize]);
        len -= end - from;
        from = 0;
        if len == 0 {
            return;
        }
    }
}

/// The requests that fetch `ranges`: each cut into pieces of at most `max` bytes.
pub(crate) fn split(ranges: &[Range<u64>], max: u64) -> Vec<Range<u64>> {
    let mut requests = Vec::new();
    for range in ranges {
        let mut from = range.start;
        while from < range.end {
            let to = range.end.min(from.saturating_add(max.max(1)));
            requests.push(from..to);
            from = to;
        }
    }
    requests
}

/// Starts fetching `ranges` (each the file's index in the load, its object and the byte range)
/// in order, `concurrency` at once; returns what the load reads them from, and the task, which
/// ends with the stats of what it fetched or the first error.
pub(crate) fn start(
    ranges: Vec<(usize, Remote, Range<u64>)>,
    concurrency: usize,
) -> (Arc<Shared>, tokio::task::JoinHandle<Result<Stats>>) {
    // Ranges that came wait here for the load to take them: with those in flight, and the one
    // the load reads, at most `concurrency + 3` ranges are held (in file order).
    let (sender, receiver) = mpsc::channel::<Delivery>(2);
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            arrived: BTreeMap::new(),
            receiver: Some(receiver),
        }),
    });
    let task = tokio::spawn(async move {
        let mut stats = Stats::default();
        let mut fetches = futures::stream::iter(ranges)
            .map(|(file, remote, range)| async move {
                let pieces = remote.fetch_pieces(range.clone()).await?;
                Ok::<_, Error>((file, range.start, pieces))
            })
            .buffered(concurrency);
        while let Some((file, start, pieces)) = fetches.try_next().await? {
            stats.requests += 1;
            stats.bytes += pieces.iter().map(|p| p.len() as u64).sum::<u64>();
            if sender.send((file, start, pieces)).await.is_err() {
                // The load is over.
                break;
            }
        }
        Ok(stats)
    });
    (shared, task)
}

impl Remote {
    /// Fetches the bytes `range` of the object, in the pieces they came in.
    pub(crate) async fn fetch_pieces(&self, range: Range<u64>) -> Result<Vec<Bytes>> {
        let options = GetOptions {
            range: Some(GetRange::Bounded(range.clone())),
            ..GetOptions::default()
        };
        let got = ObjectStore::get_opts(self.store.as_ref(), &self.path, options).await;
        let got = got.map_err(|e| self.store_error("read", e))?;
        let pieces: Vec<Bytes> = got
            .into_stream()
            .try_collect()
            .await
            .map_err(|e| self.store_error("read", e))?;
        let got: u64 = pieces.iter().map(|p| p.len() as u64).sum();
        if got != range.end - range.start {
            return Err(Error::Range {
                url: self.url.clone(),
                asked: range,
                got,
            });
        }
        Ok(pieces)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use object_store::ObjectStoreExt;
    use object_store::memory::InMemory;

    use super::*;

    /// An object of the bytes 0 to 99 in memory, and those bytes.
    async fn hundred_bytes() -> (Remote, Vec<u8>) {
        let store = Arc::new(InMemory::new());
        let file: Vec<u8> = (0..100u8).collect();
        store
            .put(&"f".into(), file.clone().into())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        (Remote::new(store, "f"), file)
    }

    /// Reads `at` from `stream` into a vector.
    fn read(stream: &FileStream, at: Range<u64>) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        stream.read(at, &mut |piece| out.extend_from_slice(piece))?;
        Ok(out)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ranges_are_let_go_once_read_and_a_range_that_never_comes_is_an_error() {
        let (remote, file) = hundred_bytes().await;
        let ranges = [0..10, 10..40, 60..100];
        let jobs = ranges.iter().map(|r| (0, remote.clone(), r.clone()));
        let (shared, task) = start(jobs.collect(), 2);
        let stream = FileStream { shared, file: 0 };
        tokio::task::block_in_place(|| {
            // Read out of order: the first range waits until it is read.
            assert_eq!(read(&stream, 10..25).ok(), Some(file[10..25].to_vec()));
            assert_eq!(read(&stream, 5..10).ok(), Some(file[5..10].to_vec()));
            assert!(stream.shared.lock().arrived.contains_key(&(0, 0)));
            assert_eq!(read(&stream, 0..5).ok(), Some(file[..5].to_vec()));
            assert!(
                !stream.shared.lock().arrived.contains_key(&(0, 0)),
                "let go"
            );
            assert_eq!(read(&stream, 25..40).ok(), Some(file[25..40].to_vec()));
            assert_eq!(read(&stream, 60..100).ok(), Some(file[60..].to_vec()));
            assert!(stream.shared.lock().arrived.is_empty());
            // Bytes no range holds: the fetch ends, and the read is an error, not a wait.
            let err = read(&stream, 40..60).unwrap_err();
            assert!(err.to_string().contains("did not come"), "{err}");
        });
        let stats = task.await.unwrap_or_else(|e| panic!("{e}"));
        let stats = stats.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((stats.requests, stats.bytes), (3, 80));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_read_spans_the_ranges_a_long_tensor_was_fetched_in() {
        let (remote, file) = hundred_bytes().await;
        let whole = std::slice::from_ref(&(0..100));
        let jobs = split(whole, 30).into_iter();
        let (shared, task) = start(jobs.map(|r| (0, remote.clone(), r)).collect(), 2);
        let stream = FileStream { shared, file: 0 };
        tokio::task::block_in_place(|| {
            assert_eq!(read(&stream, 0..95).ok(), Some(file[..95].to_vec()));
            assert_eq!(stream.shared.lock().arrived.len(), 1, "the last range only");
            assert_eq!(read(&stream, 95..100).ok(), Some(file[95..].to_vec()));
            assert!(stream.shared.lock().arrived.is_empty());
        });
        let stats = task.await.unwrap_or_else(|e| panic!("{e}"));
        let stats = stats.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((stats.requests, stats.bytes), (4, 100));
    }

    #[test]
    fn long_ranges_are_split_into_requests() {
        assert_eq!(split(&[0..10, 20..95], 30), [0..10, 20..50, 50..80, 80..95]);
    }

    #[test]
    fn pieces_are_handed_out_from_where_the_range_starts() {
        let pieces = [Bytes::from_static(b"abc"), Bytes::from_static(b"defg")];
        let mut out = Vec::new();
        hand_out(&pieces, 2, 4, &mut |p| out.extend_from_slice(p));
        assert_eq!(out, b"cdef");
    }
}
