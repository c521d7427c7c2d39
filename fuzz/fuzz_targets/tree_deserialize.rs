//! Arbitrary bytes read through the tree API (`flax`, `haiku`, `objax`): any result but a
//! panic, and whatever is read writes back and reads again to the same tree.

#![no_main]

use libfuzzer_sys::fuzz_target;
use safejax::{flax, haiku, objax};

fuzz_target!(|data: &[u8]| {
    if let Ok((tree, metadata)) = flax::deserialize_with_metadata(data) {
        let bytes = flax::serialize(&tree, Some(&metadata))
            .unwrap_or_else(|e| panic!("a tree read from a file does not write: {e}"));
        let (again, again_metadata) = flax::deserialize_with_metadata(&bytes)
            .unwrap_or_else(|e| panic!("a written tree does not read: {e}"));
        assert_eq!(again, tree);
        assert_eq!(again_metadata, metadata);
        // Writing is canonical: what was written once writes the same bytes.
        assert_eq!(flax::serialize(&again, Some(&metadata)).ok(), Some(bytes));
    }
    let _ = haiku::deserialize(data);
    if let Ok((mut vars, metadata)) = objax::deserialize_with_metadata(data) {
        let bytes = objax::serialize(&vars, Some(&metadata))
            .unwrap_or_else(|e| panic!("a collection read from a file does not write: {e}"));
        let again = objax::deserialize(&bytes)
            .unwrap_or_else(|e| panic!("a written collection does not read: {e}"));
        assert_eq!(again, vars);
        objax::deserialize_with_assignment(data, &mut vars)
            .unwrap_or_else(|e| panic!("a file does not assign into what it was read as: {e}"));
    }
});
