//! Property tests: random models round-trip bit for bit through the typed API and the tree API,
//! the tree API is byte-stable, and mutated or truncated files never panic.

use std::collections::BTreeMap;
use std::fmt::Debug;

use half::{bf16, f16};
use ndarray::{Array2, ArrayD, IxDyn};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use safejax::{
    Dtype, Element, KeyPath, Leaf, Loader, Metadata, SafeParams, Saver, Style, Tensor, Tree,
    VarCollection, VarKind, Visitor, flax, haiku, objax,
};

/// Every leaf of `value` in `style`, by key, as the bytes it writes.
fn leaves<T: SafeParams>(value: &T, style: Style) -> BTreeMap<String, Tensor> {
    struct Collect(Style, BTreeMap<String, Tensor>);

    impl Visitor<'_> for Collect {
        fn leaf(&mut self, path: &KeyPath, leaf: &dyn Leaf) {
            let tensor = Tensor::new(
                leaf.dtype(),
                leaf.shape().into_owned(),
                leaf.data().into_owned(),
            )
            .unwrap_or_else(|e| panic!("{e}"));
            self.1.insert(path.render(self.0), tensor);
        }

        fn invalid(&mut self, path: &KeyPath, reason: String) {
            panic!("`{}` {reason}", path.render(self.0));
        }
    }

    let mut collect = Collect(style, BTreeMap::new());
    value.visit(&mut KeyPath::new(), &mut collect);
    collect.1
}

const STYLES: [Style; 3] = [Style::Flax, Style::Haiku, Style::Objax];

fn style() -> impl Strategy<Value = Style> {
    prop::sample::select(STYLES.to_vec())
}

/// An array of rank 0 to 3, each dimension 0 to 3.
fn array<T: Element + Debug>(
    element: impl Strategy<Value = T> + Clone,
) -> impl Strategy<Value = ArrayD<T>> {
    vec(0usize..4, 0..4).prop_flat_map(move |shape| {
        let len: usize = shape.iter().product();
        vec(element.clone(), len).prop_map(move |data| {
            ArrayD::from_shape_vec(IxDyn(&shape), data).unwrap_or_else(|e| panic!("{e}"))
        })
    })
}

/// A name every style accepts as a map key.
fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_]{0,6}"
}

fn metadata() -> impl Strategy<Value = Metadata> {
    btree_map("[ -~]{0,8}", "[ -~]{0,8}", 0..3)
}

/// Writes `value` in `style`, reads it back as `T`, and checks every bit and the bytes.
fn round_trip<T: SafeParams>(value: &T, style: Style, metadata: &Metadata) {
    let saver = Saver::new().style(style).metadata(metadata.clone());
    let bytes = saver.to_bytes(value).unwrap_or_else(|e| panic!("{e}"));
    let loaded = Loader::new()
        .style(style)
        .from_bytes::<T>(&bytes)
        .unwrap_or_else(|e| panic!("{style}: {e}"));
    assert_eq!(loaded.metadata, *metadata);
    let expected = leaves(value, style);
    assert_eq!(leaves(&loaded.value, style), expected);
    assert_eq!(saver.to_bytes(&loaded.value).ok(), Some(bytes.clone()));
    // The tree API reads the same tensors under the same keys.
    let flat: BTreeMap<String, Tensor> = if style == Style::Objax {
        let vars = objax::deserialize(&bytes).unwrap_or_else(|e| panic!("{e}"));
        vars.into_iter()
            .map(|(name, var)| (format!("{name}::{}", var.kind), var.tensor))
            .collect()
    } else {
        let tree = flax::deserialize(&bytes).unwrap_or_else(|e| panic!("{e}"));
        let flat = tree.flatten().unwrap_or_else(|e| panic!("{e}"));
        flat.into_iter().map(|(k, t)| (k, t.clone())).collect()
    };
    assert_eq!(flat, expected);
}

macro_rules! typed_round_trips {
    ($($test:ident: $ty:ty = $element:expr;)*) => {$(
        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]

            #[test]
            fn $test(
                list in vec(array::<$ty>($element), 0..4),
                map in btree_map(name(), array::<$ty>($element), 0..4),
                nested in vec(vec(array::<$ty>($element), 1..3), 0..3),
                maps in vec(btree_map(name(), array::<$ty>($element), 1..3), 0..3),
                style in style(),
                metadata in metadata(),
            ) {
                round_trip(&list, style, &metadata);
                round_trip(&map, style, &metadata);
                round_trip(&nested, style, &metadata);
                round_trip(&maps, style, &metadata);
            }
        }
    )*};
}

typed_round_trips! {
    f32_models_round_trip: f32 = any::<u32>().prop_map(f32::from_bits);
    f64_models_round_trip: f64 = any::<u64>().prop_map(f64::from_bits);
    f16_models_round_trip: f16 = any::<u16>().prop_map(f16::from_bits);
    bf16_models_round_trip: bf16 = any::<u16>().prop_map(bf16::from_bits);
    i32_models_round_trip: i32 = any::<i32>();
    u8_models_round_trip: u8 = any::<u8>();
    bool_models_round_trip: bool = any::<bool>();
    i64_models_round_trip: i64 = any::<i64>();
}

/// The dtypes of the generated dynamic tensors: the common ones and a few 8-bit floats.
const DTYPES: [Dtype; 11] = [
    Dtype::F32,
    Dtype::F64,
    Dtype::F16,
    Dtype::BF16,
    Dtype::I32,
    Dtype::U8,
    Dtype::BOOL,
    Dtype::I64,
    Dtype::I8,
    Dtype::U16,
    Dtype::F8_E4M3,
];

/// A tensor of any of [`DTYPES`] with arbitrary bytes (valid bools only).
fn tensor() -> impl Strategy<Value = Tensor> {
    (prop::sample::select(DTYPES.to_vec()), vec(0usize..4, 0..4)).prop_flat_map(|(dtype, shape)| {
        let len = shape.iter().product::<usize>() * dtype.bitsize() / 8;
        let byte = if dtype == Dtype::BOOL {
            (0u8..2).boxed()
        } else {
            any::<u8>().boxed()
        };
        vec(byte, len).prop_map(move |data| {
            Tensor::new(dtype, shape.clone(), data).unwrap_or_else(|e| panic!("{e}"))
        })
    })
}

/// A name of a dict level: no `.`, too short to be `__metadata__`; Haiku's `/` and `~` allowed.
fn tree_name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_/~-]{1,8}"
}

/// A nested dict of depth 1 to 3 with no empty level (empty dicts vanish when written).
fn tree() -> impl Strategy<Value = Tree> {
    let leaf = btree_map(tree_name(), tensor(), 1..4)
        .prop_map(|m| m.into_iter().map(|(k, t)| (k, t.into())).collect::<Tree>());
    leaf.prop_recursive(2, 24, 4, |inner| {
        btree_map(
            tree_name(),
            prop_oneof![tensor().prop_map(Into::into), inner.prop_map(Into::into)],
            1..4,
        )
        .prop_map(|m| m.into_iter().collect::<Tree>())
    })
}

fn var_kind() -> impl Strategy<Value = VarKind> {
    prop_oneof![
        Just(VarKind::TrainVar),
        Just(VarKind::StateVar),
        Just(VarKind::RandomState),
        Just(VarKind::TrainRef),
        "[A-Z][a-z]{1,6}".prop_map(VarKind::Other),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn mixed_dtype_maps_round_trip(
        map in btree_map(name(), tensor(), 0..6),
        style in style(),
        metadata in metadata(),
    ) {
        round_trip(&map, style, &metadata);
    }

    #[test]
    fn fixed_rank_lists_round_trip(
        list in vec(
            (0usize..4, 0usize..4).prop_flat_map(|(rows, cols)| {
                vec(any::<u32>().prop_map(f32::from_bits), rows * cols).prop_map(move |data| {
                    Array2::from_shape_vec((rows, cols), data).unwrap_or_else(|e| panic!("{e}"))
                })
            }),
            0..4,
        ),
        style in style(),
    ) {
        round_trip(&list, style, &Metadata::new());
    }

    #[test]
    fn trees_are_byte_stable(tree in tree(), metadata in metadata()) {
        for (serialize, deserialize) in [
            (flax::serialize as fn(&Tree, Option<&Metadata>) -> safejax::Result<Vec<u8>>,
             flax::deserialize_with_metadata as fn(&[u8]) -> safejax::Result<(Tree, Metadata)>),
            (haiku::serialize, haiku::deserialize_with_metadata),
        ] {
            let bytes = serialize(&tree, Some(&metadata)).unwrap_or_else(|e| panic!("{e}"));
            let (back, read_metadata) = deserialize(&bytes).unwrap_or_else(|e| panic!("{e}"));
            prop_assert_eq!(&back, &tree);
            prop_assert_eq!(&read_metadata, &metadata);
            prop_assert_eq!(serialize(&back, Some(&metadata)).ok(), Some(bytes));
        }
    }

    #[test]
    fn var_collections_are_byte_stable(
        vars in btree_map(
            "[ -~]{1,12}",
            (var_kind(), tensor()).prop_map(|(kind, tensor)| safejax::Var { kind, tensor }),
            0..6,
        ),
        metadata in metadata(),
    ) {
        let vars: VarCollection = vars;
        let bytes = objax::serialize(&vars, Some(&metadata)).unwrap_or_else(|e| panic!("{e}"));
        let (back, read_metadata) =
            objax::deserialize_with_metadata(&bytes).unwrap_or_else(|e| panic!("{e}"));
        prop_assert_eq!(&back, &vars);
        prop_assert_eq!(&read_metadata, &metadata);
        prop_assert_eq!(objax::serialize(&back, Some(&metadata)).ok(), Some(bytes));
    }
}

/// Reads `bytes` every way there is; any outcome but a panic is fine.
fn read_every_way(bytes: &[u8]) {
    let _ = Vec::<ArrayD<f32>>::from_bytes(bytes);
    let _ = Vec::<Vec<ArrayD<bool>>>::from_bytes(bytes);
    let _ = BTreeMap::<String, ArrayD<u8>>::from_bytes(bytes);
    let _ = BTreeMap::<String, Tensor>::from_bytes(bytes);
    let _ = Option::<[Array2<f32>; 2]>::from_bytes(bytes);
    let _ = Loader::new()
        .convert_floats()
        .allow_unexpected()
        .from_bytes::<BTreeMap<String, ArrayD<f16>>>(bytes);
    let _ = Loader::new()
        .style(Style::Objax)
        .from_bytes::<Vec<ArrayD<i64>>>(bytes);
    let _ = flax::deserialize(bytes);
    let _ = haiku::deserialize_with_metadata(bytes);
    if let Ok(mut vars) = objax::deserialize(bytes) {
        // Assigning a file into what it was read from must succeed.
        let again = objax::deserialize_with_assignment(bytes, &mut vars);
        assert!(again.is_ok(), "{again:?}");
    }
}

/// A valid file: a mixed-dtype model, in some style, with metadata.
fn valid_file() -> impl Strategy<Value = Vec<u8>> {
    (
        btree_map(name(), tensor(), 1..5),
        vec(vec(array(any::<bool>()), 1..3), 0..3),
        style(),
        metadata(),
    )
        .prop_map(|(map, lists, style, metadata)| {
            let saver = Saver::new().style(style).metadata(metadata);
            let mut bytes = saver.to_bytes(&map).unwrap_or_else(|e| panic!("{e}"));
            if !lists.is_empty() {
                bytes = saver.to_bytes(&lists).unwrap_or_else(|e| panic!("{e}"));
            }
            bytes
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn mutated_files_never_panic(
        bytes in valid_file(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>(), any::<bool>()), 1..6),
    ) {
        read_every_way(&bytes);
        let header_end = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap_or_default()) as usize;
        let mut mutated = bytes.clone();
        for (at, byte, in_header) in edits {
            // Half the edits hit the header, where most of the parsing is.
            let end = if in_header { header_end } else { mutated.len() };
            let i = at.index(end.max(1)).min(mutated.len() - 1);
            mutated[i] = byte;
        }
        read_every_way(&mutated);
    }

    #[test]
    fn truncated_and_extended_files_never_panic(
        bytes in valid_file(),
        cut in any::<prop::sample::Index>(),
        tail in vec(any::<u8>(), 0..16),
    ) {
        let cut = cut.index(bytes.len());
        read_every_way(&bytes[..cut]);
        prop_assert!(flax::deserialize(&bytes[..cut]).is_err());
        let mut longer = bytes.clone();
        longer.extend_from_slice(&tail);
        read_every_way(&longer);
        prop_assert_eq!(flax::deserialize(&longer).is_ok(), tail.is_empty());
    }
}
