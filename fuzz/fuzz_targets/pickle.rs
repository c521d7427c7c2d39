//! Arbitrary bytes read as a pickle (`legacy::pickle::from_slice`): any result but a panic, and
//! a tree that reads writes as Haiku safetensors that read back to the same tensors.

#![no_main]

use libfuzzer_sys::fuzz_target;
use safejax::haiku;
use safejax::legacy::pickle;

fuzz_target!(|data: &[u8]| {
    let Ok(tree) = pickle::from_slice(data) else {
        return;
    };
    let flat = tree
        .flatten()
        .unwrap_or_else(|e| panic!("a tree read from a pickle does not flatten: {e}"));
    // A reserved key (`__metadata__`) is read from a pickle but refused by the writer.
    let Ok(bytes) = haiku::serialize(&tree, None) else {
        return;
    };
    let again =
        haiku::deserialize(&bytes).unwrap_or_else(|e| panic!("a written tree does not read: {e}"));
    assert_eq!(again.flatten().ok(), Some(flat));
});
