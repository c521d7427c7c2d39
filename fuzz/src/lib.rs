//! What the fuzz targets share: recursive and nested types to load, and the check that a value
//! that loads writes back and loads again to the same value.

use std::any::type_name;
use std::collections::BTreeMap;
use std::fmt::Debug;

use safejax::ndarray::{Array1, ArrayD};
use safejax::{Loader, SafeParams, Saver, Style};

pub const STYLES: [Style; 3] = [Style::Flax, Style::Haiku, Style::Objax];

/// A list of layers linked through `n`: a file's keys choose how deep it goes.
#[derive(SafeParams, Debug, PartialEq)]
pub struct Chain {
    pub w: Array1<f32>,
    pub n: Option<Box<Chain>>,
}

/// A tree of layers with named children, where an entry name may itself contain `_`.
#[derive(SafeParams, Debug, PartialEq)]
pub struct Node {
    pub w: Option<Array1<f32>>,
    pub children: BTreeMap<String, Node>,
}

pub type MapOfMaps = BTreeMap<String, BTreeMap<String, ArrayD<f32>>>;
pub type MapOfMapsOfLists = BTreeMap<String, BTreeMap<String, Vec<ArrayD<f32>>>>;
pub type MapOfLists = BTreeMap<String, Vec<ArrayD<f32>>>;

/// Loads `bytes` into each recursive or nested type, in each style, checking every round trip.
pub fn load_nested(bytes: &[u8]) {
    for style in STYLES {
        round_trip::<Chain>(bytes, style);
        round_trip::<Node>(bytes, style);
        round_trip::<MapOfMaps>(bytes, style);
        round_trip::<MapOfMapsOfLists>(bytes, style);
        round_trip::<MapOfLists>(bytes, style);
    }
}

/// If `bytes` loads as a `T` in `style`, the value writes back, the written bytes load again to
/// the same value and metadata, and writing that value gives the same bytes.
pub fn round_trip<T: SafeParams + PartialEq + Debug>(bytes: &[u8], style: Style) {
    let name = type_name::<T>();
    let loader = Loader::new().style(style);
    let Ok(loaded) = loader.from_bytes::<T>(bytes) else {
        return;
    };
    let saver = Saver::new().style(style).metadata(loaded.metadata.clone());
    let written = saver
        .to_bytes(&loaded.value)
        .unwrap_or_else(|e| panic!("a loaded {name} does not write in {style:?}: {e}"));
    let again = loader
        .from_bytes::<T>(&written)
        .unwrap_or_else(|e| panic!("a written {name} does not load in {style:?}: {e}"));
    // NaN is unequal to itself: such values are compared through the bytes they write.
    if is_comparable(&loaded.value) {
        assert_eq!(again.value, loaded.value, "{name} in {style:?}");
    }
    assert_eq!(again.metadata, loaded.metadata, "{name} in {style:?}");
    let rewritten = saver
        .to_bytes(&again.value)
        .unwrap_or_else(|e| panic!("a reloaded {name} does not write in {style:?}: {e}"));
    assert!(
        rewritten == written,
        "{name} in {style:?} writes other bytes the second time"
    );
}

/// Whether `value` equals itself, which fails only for floats that are NaN.
fn is_comparable<T: PartialEq>(value: &T) -> bool {
    let same = value;
    value == same
}
