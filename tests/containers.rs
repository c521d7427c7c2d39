//! The runtime's impls for containers and leaves, through the facade, without the derive.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use half::{bf16, f16};
use ndarray::{Array0, Array1, Array2, ArrayD, IxDyn, array};
use safejax::{Dtype, Error, Loader, SafeParams, Saver, Style, Tensor};

fn ok<T>(result: Result<T, Error>) -> T {
    result.unwrap_or_else(|e| panic!("{e}"))
}

fn report(err: Error) -> safejax::LoadReport {
    match err {
        Error::Load(report) => *report,
        other => panic!("expected a load report, got {other}"),
    }
}

#[test]
fn every_dtype_and_rank_round_trips() {
    let mut tensors: BTreeMap<String, Tensor> = BTreeMap::new();
    tensors.insert("f32".into(), Tensor::from_array(&array![[1.5f32, -2.0]]));
    tensors.insert("f64".into(), Tensor::from_array(&array![1e300f64]));
    tensors.insert(
        "f16".into(),
        Tensor::from_array(&array![f16::from_f32(0.5)]),
    );
    tensors.insert(
        "bf16".into(),
        Tensor::from_array(&array![[[bf16::from_f32(-3.0)]]]),
    );
    tensors.insert("i8".into(), Tensor::from_array(&array![-1i8]));
    tensors.insert("i16".into(), Tensor::from_array(&array![-300i16]));
    tensors.insert(
        "i32".into(),
        Tensor::from_array(&Array0::from_elem((), 7i32)),
    );
    tensors.insert(
        "i64".into(),
        Tensor::from_array(&array![i64::MIN, i64::MAX]),
    );
    tensors.insert("u8".into(), Tensor::from_array(&array![255u8]));
    tensors.insert("u16".into(), Tensor::from_array(&array![65535u16]));
    tensors.insert("u32".into(), Tensor::from_array(&array![u32::MAX]));
    tensors.insert("u64".into(), Tensor::from_array(&array![u64::MAX]));
    tensors.insert("bool".into(), Tensor::from_array(&array![true, false]));
    let six = ArrayD::<f32>::from_shape_fn(IxDyn(&[1, 2, 1, 2, 1, 2]), |i| {
        (0..6).map(|k| i[k]).sum::<usize>() as f32
    });
    tensors.insert("rank6".into(), Tensor::from_array(&six));
    let bytes = ok(tensors.to_bytes());
    assert_eq!(ok(BTreeMap::<String, Tensor>::from_bytes(&bytes)), tensors);
    let back: ndarray::Array6<f32> = ok(tensors["rank6"].to_array());
    assert_eq!(back.into_dyn(), six);
}

#[test]
fn scalars_are_zero_d_tensors() {
    let mut map = BTreeMap::new();
    map.insert("counter".to_owned(), 7i32);
    let bytes = ok(map.to_bytes());
    let tree = ok(safejax::flax::deserialize(&bytes));
    let counter = tree.tensor("counter").unwrap_or_else(|| panic!("counter"));
    assert_eq!(counter.shape(), &[] as &[usize]);
    assert_eq!(counter.dtype(), safejax::Dtype::I32);
    assert_eq!(
        ok(BTreeMap::<String, i32>::from_bytes(&bytes))["counter"],
        7
    );
    let err = report(BTreeMap::<String, f32>::from_bytes(&bytes).unwrap_err());
    assert_eq!(err.dtype_mismatches[0].key, "counter");
    // A one-element vector is not a scalar.
    let vector = ok(vec![array![0.25f32]].to_bytes());
    let err = report(Vec::<f32>::from_bytes(&vector).unwrap_err());
    assert_eq!(
        err.shape_mismatches[0].expected,
        safejax::ExpectedShape::Rank(0)
    );
    assert_eq!(err.shape_mismatches[0].found, [1]);
}

#[test]
fn vec_length_comes_from_consecutive_indices() {
    let layers = vec![array![1.0f32], array![2.0f32], array![3.0f32]];
    let bytes = ok(layers.to_bytes());
    assert_eq!(ok(Vec::<Array1<f32>>::from_bytes(&bytes)), layers);
    // A fixed-size array of two leaves index 2 unread: strict loads refuse it.
    let err = report(<[Array1<f32>; 2]>::from_bytes(&bytes).unwrap_err());
    assert_eq!(err.unexpected, ["2"]);
    // A gap: indices 0 and 2 only. The list stops at the gap and 2 is unexpected.
    let mut gap = BTreeMap::new();
    gap.insert("0".to_owned(), array![1.0f32]);
    gap.insert("2".to_owned(), array![3.0f32]);
    let err = report(Vec::<Array1<f32>>::from_bytes(&ok(gap.to_bytes())).unwrap_err());
    assert_eq!(err.unexpected, ["2"]);
}

#[test]
fn option_is_none_only_when_wholly_absent() {
    let empty = ok(BTreeMap::<String, Array1<f32>>::new().to_bytes());
    assert_eq!(ok(Option::<Vec<Array1<f32>>>::from_bytes(&empty)), None);
    let pair = vec![array![1.0f32], array![2.0f32]];
    let loaded = ok(Option::<[Array1<f32>; 2]>::from_bytes(&ok(pair.to_bytes())));
    assert_eq!(loaded.map(|a| a.to_vec()), Some(pair));
    // Partly present: one of two is there.
    let one = ok(vec![array![1.0f32]].to_bytes());
    let err = report(Option::<[Array1<f32>; 2]>::from_bytes(&one).unwrap_err());
    assert_eq!(err.missing, ["1"]);
}

#[test]
fn maps_load_the_entries_the_file_has_and_refuse_ambiguous_names() {
    let mut heads: HashMap<String, Array2<f32>> = HashMap::new();
    heads.insert("query".into(), Array2::zeros((2, 2)));
    heads.insert("key".into(), Array2::ones((2, 2)));
    let bytes = ok(heads.to_bytes());
    assert_eq!(
        ok(HashMap::<String, Array2<f32>>::from_bytes(&bytes)),
        heads
    );
    assert_eq!(
        ok(heads.keys_in(Style::Objax)),
        [
            "(ModuleDict)[key]::TrainVar",
            "(ModuleDict)[query]::TrainVar"
        ]
    );

    let mut bad = BTreeMap::new();
    bad.insert("a.b".to_owned(), array![1.0f32]);
    let err = bad.to_bytes().unwrap_err().to_string();
    assert!(err.contains("map key `a.b` that contains `.`"), "{err}");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("bad.safetensors");
    assert_eq!(bad.save(&path).unwrap_err().to_string(), err);
    assert!(!path.exists(), "nothing is written");
}

#[test]
fn save_refuses_keys_produced_twice() {
    // List elements join their list's name: `a` + [0] is `a_0`, `a_0` + [0] is `a_0_0`.
    let mut lists: BTreeMap<String, Vec<Array1<f32>>> = BTreeMap::new();
    lists.insert("a".into(), vec![array![1.0f32]]);
    lists.insert("a_0".into(), vec![array![2.0f32]]);
    assert_eq!(ok(SafeParams::keys(&lists)), ["a_0", "a_0_0"]);
    // A map of lists beside a map of leaves, both rendering `a_0`, clash.
    let mut leaves: BTreeMap<String, Array1<f32>> = BTreeMap::new();
    leaves.insert("a_0".into(), array![3.0f32]);
    lists.remove("a_0");
    let pair = Pair(lists, leaves);
    let expected = "key `a_0` is produced twice; rename one of the fields or map entries";
    assert_eq!(pair.to_bytes().unwrap_err().to_string(), expected);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("pair.safetensors");
    std::fs::write(&path, b"previous").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(pair.save(&path).unwrap_err().to_string(), expected);
    assert_eq!(std::fs::read(&path).unwrap_or_default(), b"previous");
    assert_eq!(
        std::fs::read_dir(dir.path())
            .map(Iterator::count)
            .unwrap_or(0),
        1
    );
}

/// Two roots side by side, as a struct with two flattened maps would be.
struct Pair(
    BTreeMap<String, Vec<Array1<f32>>>,
    BTreeMap<String, Array1<f32>>,
);

impl SafeParams for Pair {
    fn visit<'a>(&'a self, path: &mut safejax::KeyPath, visitor: &mut dyn safejax::Visitor<'a>) {
        self.0.visit(path, visitor);
        self.1.visit(path, visitor);
    }

    fn visit_mut(&mut self, path: &mut safejax::KeyPath, visitor: &mut dyn safejax::VisitorMut) {
        self.0.visit_mut(path, visitor);
        self.1.visit_mut(path, visitor);
    }

    fn read(path: &mut safejax::KeyPath, reader: &mut safejax::Reader<'_>) -> Option<Self> {
        let a = SafeParams::read(path, reader);
        let b = SafeParams::read(path, reader);
        Some(Pair(a?, b?))
    }
}

#[test]
fn load_into_checks_everything_then_assigns() {
    let source = vec![array![[1.0f32, 2.0]], array![[3.0f32, 4.0]]];
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("two.safetensors");
    ok(source.save(&path));

    let mut target = vec![Array2::<f32>::zeros((1, 2)), Array2::zeros((1, 2))];
    ok(target.load_into(&path));
    assert_eq!(target, source);

    // One element of the wrong shape: nothing changes, not even the element that fits.
    let mut wrong = vec![Array2::<f32>::zeros((1, 2)), Array2::zeros((2, 1))];
    let err = report(wrong.load_into(&path).unwrap_err());
    assert_eq!(err.shape_mismatches[0].key, "1");
    assert_eq!(wrong[0], Array2::<f32>::zeros((1, 2)));

    // Missing tensors keep their values only when asked.
    let mut longer = vec![Array2::<f32>::zeros((1, 2)); 3];
    let err = report(longer.load_into(&path).unwrap_err());
    assert_eq!(err.missing, ["2"]);
    assert_eq!(longer[0], Array2::<f32>::zeros((1, 2)));
    ok(Loader::new().allow_missing().load_into(&mut longer, &path));
    assert_eq!(longer[..2], source[..]);
    assert_eq!(longer[2], Array2::<f32>::zeros((1, 2)));

    // A shared Arc cannot be loaded in place.
    let shared = Arc::new(Array2::<f32>::zeros((1, 2)));
    let mut arcs = vec![shared.clone(), Arc::new(Array2::zeros((1, 2)))];
    let err = report(arcs.load_into(&path).unwrap_err());
    assert!(
        err.invalid[0].reason.contains("shared `Arc`"),
        "{:?}",
        err.invalid
    );
}

#[test]
fn dtype_conversion_is_explicit_and_floats_only() {
    let halfs = vec![array![f16::from_f32(1.5), f16::from_f32(-0.25)]];
    let bytes = ok(halfs.to_bytes());
    let err = report(Vec::<Array1<f32>>::from_bytes(&bytes).unwrap_err());
    assert_eq!(err.dtype_mismatches.len(), 1);
    assert_eq!(
        err.to_string(),
        "the file does not fit: 1 dtype mismatch\ndtype mismatches:\n  0: expected F32, found F16"
    );
    let loaded = ok(Loader::new()
        .convert_floats()
        .from_bytes::<Vec<Array1<f32>>>(&bytes));
    assert_eq!(loaded.value, vec![array![1.5f32, -0.25]]);
    let ints = ok(vec![array![1i32]].to_bytes());
    let convert = Loader::new().convert_floats();
    let widened = report(convert.from_bytes::<Vec<Array1<i64>>>(&ints).unwrap_err());
    assert_eq!(
        (
            widened.dtype_mismatches[0].expected,
            widened.dtype_mismatches[0].found
        ),
        (Dtype::I64, Dtype::I32)
    );
    let to_float = report(convert.from_bytes::<Vec<Array1<f32>>>(&ints).unwrap_err());
    assert_eq!(
        (
            to_float.dtype_mismatches[0].expected,
            to_float.dtype_mismatches[0].found
        ),
        (Dtype::F32, Dtype::I32)
    );
}

#[test]
fn bool_tensors_accept_only_zero_and_one() {
    let mut bytes = ok(vec![array![true, false]].to_bytes());
    let last = bytes.len() - 1;
    bytes[last] = 2;
    let err = report(Vec::<Array1<bool>>::from_bytes(&bytes).unwrap_err());
    assert_eq!(err.invalid[0].key, "0");
    assert!(
        err.invalid[0].reason.contains("byte 2"),
        "{:?}",
        err.invalid
    );
}

#[test]
fn metadata_round_trips_in_stable_order() {
    let value = vec![array![1u8, 2, 3]];
    let metadata: safejax::Metadata = (0..10)
        .map(|i| (format!("k{i}"), format!("v{i}")))
        .collect();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("meta.safetensors");
    ok(value.save_with_metadata(&path, &metadata));
    let (back, meta) = ok(Vec::<Array1<u8>>::load_with_metadata(&path));
    assert_eq!((back, meta), (value.clone(), metadata.clone()));
    let again = ok(Saver::new().metadata(metadata).to_bytes(&value));
    assert_eq!(std::fs::read(&path).unwrap_or_default(), again);
}

#[test]
fn memory_mapped_loads_equal_read_loads() {
    let value = vec![Array2::<f32>::from_shape_fn((64, 64), |(i, j)| {
        (i * 64 + j) as f32
    })];
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("m.safetensors");
    ok(value.save(&path));
    let mapped = ok(Loader::new().memory_map().load::<Vec<Array2<f32>>>(&path));
    assert_eq!(mapped.value, value);
    let err = Loader::new()
        .load::<Vec<Array2<f32>>>(dir.path().join("absent"))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("cannot read `") && err.contains("absent"),
        "{err}"
    );
}

#[test]
fn maps_of_lists_and_of_maps_round_trip_in_every_style() {
    let mut lists: BTreeMap<String, Vec<Array1<f32>>> = BTreeMap::new();
    lists.insert("x".into(), vec![array![1.0f32], array![2.0f32]]);
    lists.insert("x_0".into(), vec![array![3.0f32]]);
    lists.insert("y_z".into(), vec![array![4.0f32]]);
    let mut nested: BTreeMap<String, BTreeMap<String, Array1<f32>>> = BTreeMap::new();
    nested.insert(
        "a".into(),
        BTreeMap::from([("b_c".to_owned(), array![5.0f32])]),
    );
    nested.insert(
        "d".into(),
        BTreeMap::from([("e".to_owned(), array![6.0f32])]),
    );
    for style in Style::ALL {
        let bytes = ok(Saver::new().style(style).to_bytes(&lists));
        let back = ok(Loader::new()
            .style(style)
            .from_bytes::<BTreeMap<String, Vec<Array1<f32>>>>(&bytes));
        assert_eq!(back.value, lists, "{style}");
        let bytes = ok(Saver::new().style(style).to_bytes(&nested));
        let back = ok(Loader::new()
            .style(style)
            .from_bytes::<BTreeMap<String, BTreeMap<String, Array1<f32>>>>(&bytes));
        assert_eq!(back.value, nested, "{style}");
    }
    assert_eq!(ok(SafeParams::keys(&nested)), ["a_b_c", "d_e"]);

    // Flax names a dict entry `<map>_<key>`, so `d_e_f` may be `d` -> `e_f` or `d_e` -> `f`: the
    // shortest outer name that reads wins. Objax brackets keep the two apart.
    let ambiguous = BTreeMap::from([(
        "d_e".to_owned(),
        BTreeMap::from([("f".to_owned(), array![6.0f32])]),
    )]);
    let bytes = ok(ambiguous.to_bytes());
    let back = ok(BTreeMap::<String, BTreeMap<String, Array1<f32>>>::from_bytes(&bytes));
    assert_eq!(back.keys().collect::<Vec<_>>(), ["d"]);
    assert_eq!(back["d"].keys().collect::<Vec<_>>(), ["e_f"]);
    let bytes = ok(Saver::new().style(Style::Objax).to_bytes(&ambiguous));
    let back = ok(Loader::new()
        .style(Style::Objax)
        .from_bytes::<BTreeMap<String, BTreeMap<String, Array1<f32>>>>(&bytes));
    assert_eq!(back.value, ambiguous);
}

#[test]
fn a_list_element_without_tensors_before_one_with_is_refused() {
    let holes: Vec<Vec<Array1<f32>>> = vec![vec![], vec![array![1.0f32]]];
    let err = holes.to_bytes().unwrap_err().to_string();
    assert!(
        err.contains("has element 0 holding no tensors before element 1"),
        "{err}"
    );
    // Trailing empty elements are simply not stored.
    let trailing: Vec<Vec<Array1<f32>>> = vec![vec![array![1.0f32]], vec![]];
    let back = ok(Vec::<Vec<Array1<f32>>>::from_bytes(
        &ok(trailing.to_bytes()),
    ));
    assert_eq!(back, trailing[..1]);
}
