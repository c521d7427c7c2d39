//! Arbitrary bytes loaded as typed values: containers of arrays, maps of maps and of lists, and
//! recursive derived types (`Chain`, `Node`), in every style. Any result but a panic or a stack
//! overflow, and whatever loads writes back and loads again to the same value.

#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use safejax::half::f16;
use safejax::ndarray::{Array0, Array2, ArrayD};
use safejax::{Loader, SafeParams, Saver, Style, Tensor};

fuzz_target!(|data: &[u8]| {
    let _ = BTreeMap::<String, ArrayD<f32>>::from_bytes(data);
    let _ = Vec::<Array2<f32>>::from_bytes(data);
    let _ = Vec::<Vec<ArrayD<bool>>>::from_bytes(data);
    let _ = Option::<[Array0<i32>; 2]>::from_bytes(data);
    let _ = Loader::new()
        .convert_floats()
        .allow_unexpected()
        .from_bytes::<BTreeMap<String, ArrayD<f16>>>(data);
    for style in [Style::Flax, Style::Haiku, Style::Objax] {
        let loader = Loader::new().style(style);
        if let Ok(loaded) = loader.from_bytes::<BTreeMap<String, Tensor>>(data) {
            let saver = Saver::new().style(style).metadata(loaded.metadata.clone());
            let bytes = saver
                .to_bytes(&loaded.value)
                .unwrap_or_else(|e| panic!("a loaded value does not write: {e}"));
            let again = loader
                .from_bytes::<BTreeMap<String, Tensor>>(&bytes)
                .unwrap_or_else(|e| panic!("a written value does not load: {e}"));
            assert_eq!(again.value, loaded.value);
            assert_eq!(again.metadata, loaded.metadata);
        }
        let _ = loader.from_bytes::<Vec<ArrayD<u8>>>(data);
    }
    safejax_fuzz::load_nested(data);
});
