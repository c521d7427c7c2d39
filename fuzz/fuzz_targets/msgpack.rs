//! Arbitrary bytes read as a Flax msgpack checkpoint: any result but a panic; an error is a
//! msgpack error with an offset inside the input; a tree that reads writes as safetensors and
//! reads back the same.

#![no_main]

use libfuzzer_sys::fuzz_target;
use safejax::Error;
use safejax::flax;
use safejax::legacy::msgpack;

fuzz_target!(|data: &[u8]| {
    match msgpack::from_slice(data) {
        Ok(tree) => {
            // A name safetensors reserves (`__metadata__` at the root) cannot be written.
            if let Ok(bytes) = flax::serialize(&tree, None) {
                let again = flax::deserialize(&bytes)
                    .unwrap_or_else(|e| panic!("a written tree does not read: {e}"));
                assert_eq!(again, tree);
            }
        }
        Err(Error::Legacy { format, offset, .. }) => {
            assert_eq!(format, "msgpack");
            assert!(offset <= data.len() as u64, "offset {offset} past the end");
        }
        Err(other) => panic!("not a msgpack error: {other}"),
    }
});
