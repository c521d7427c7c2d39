//! Arbitrary bytes read as an `.npy` array and as an npz archive of Haiku or Objax parameters:
//! any result but a panic, and whatever reads as parameters writes as safetensors and reads
//! back the same.

#![no_main]

use libfuzzer_sys::fuzz_target;
use safejax::legacy::npz::{self, NpyArray, npy};
use safejax::{VarKind, haiku, objax};

fuzz_target!(|data: &[u8]| {
    if let Ok(NpyArray::Tensor(tensor)) = npy::read(data) {
        // A tensor holds exactly its shape's bytes, or writing it would fail.
        let _ = tensor.view();
    }
    let _ = npz::members_from_slice(data);
    if let Ok(tree) = npz::haiku_from_slice(data, None) {
        let bytes = haiku::serialize(&tree, None)
            .unwrap_or_else(|e| panic!("a tree read from an npz does not write: {e}"));
        let again = haiku::deserialize(&bytes)
            .unwrap_or_else(|e| panic!("a written tree does not read: {e}"));
        assert_eq!(again, tree);
    }
    if let Ok(vars) = npz::objax_from_slice(data, |_| VarKind::TrainVar) {
        if let Ok(bytes) = objax::serialize(&vars, None) {
            let again = objax::deserialize(&bytes)
                .unwrap_or_else(|e| panic!("a written collection does not read: {e}"));
            assert_eq!(again, vars);
        }
    }
});
