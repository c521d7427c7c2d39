//! Values that borrow their tensors from the file's bytes: derived structs with a lifetime whose
//! leaves are `ArrayView`s, read from bytes or a memory map with the same keys and the same
//! strict report as owned values, and refused where a view cannot be made without a copy.

mod common;

use common::{FlaxMlp, fixture, fixture_bytes};

use ndarray::{Array1, ArrayView1, ArrayView2, ArrayViewD, array};
use safejax::{Loader, MappedFile, SafeParams, SafeView, TensorView};

#[derive(SafeParams, Debug)]
#[safejax(borrow)]
struct DenseView<'a> {
    kernel: ArrayView2<'a, f32>,
    bias: ArrayView1<'a, f32>,
}

#[derive(SafeParams, Debug)]
#[safejax(borrow)]
#[safejax(style = "flax", collection = "params", class = "Mlp")]
struct FlaxMlpView<'a> {
    #[safejax(rename = "Dense_0")]
    hidden: DenseView<'a>,
    #[safejax(rename = "Dense_1")]
    out: DenseView<'a>,
}

/// Whether `view`'s elements lie in `bytes`.
fn borrows<T>(view: &ArrayViewD<'_, T>, bytes: &[u8]) -> bool {
    bytes.as_ptr_range().contains(&view.as_ptr().cast())
}

#[test]
fn a_flax_fixture_is_viewed_without_a_copy() {
    let bytes = fixture_bytes("flax_mlp");
    let owned = FlaxMlp::from_bytes(&bytes).unwrap_or_else(|e| panic!("{e}"));
    let view = FlaxMlpView::view(&bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(view.hidden.kernel, owned.hidden.kernel);
    assert_eq!(view.hidden.bias, owned.hidden.bias);
    assert_eq!(view.out.kernel, owned.out.kernel);
    assert_eq!(view.out.bias, owned.out.bias);
    for leaf in [
        view.hidden.kernel.view().into_dyn(),
        view.out.kernel.view().into_dyn(),
    ] {
        assert!(borrows(&leaf, &bytes), "a view was copied");
    }
    let keys = SafeView::keys(&view).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        keys,
        SafeParams::keys(&owned).unwrap_or_else(|e| panic!("{e}"))
    );
    // Views save: the same bytes, byte for byte.
    let again = safejax::Saver::new()
        .view_to_bytes(&view)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again, bytes);
}

#[derive(SafeParams)]
#[safejax(borrow)]
struct LinearView<'a> {
    w: ArrayView2<'a, f32>,
    b: ArrayView1<'a, f32>,
}

#[derive(SafeParams)]
#[safejax(borrow)]
struct MlpView<'a> {
    #[safejax(rename = "linear")]
    layers: Vec<LinearView<'a>>,
}

#[derive(SafeParams)]
#[safejax(borrow)]
#[safejax(style = "haiku")]
struct HaikuMlpView<'a> {
    mlp: MlpView<'a>,
}

#[test]
fn a_haiku_fixture_is_viewed_with_lists() {
    let bytes = fixture_bytes("haiku_mlp");
    let view = HaikuMlpView::view(&bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(view.mlp.layers.len(), 2);
    assert_eq!(view.mlp.layers[0].w.dim(), (8, 16));
    assert!(borrows(&view.mlp.layers[1].w.view().into_dyn(), &bytes));
    assert_eq!(
        SafeView::keys(&view).unwrap_or_else(|e| panic!("{e}")),
        [
            "mlp/~/linear_0.b",
            "mlp/~/linear_0.w",
            "mlp/~/linear_1.b",
            "mlp/~/linear_1.w"
        ]
    );
}

/// Owned parts of a view: a unit struct, and a derived owned struct whose tensors are copied.
#[derive(SafeParams)]
struct Relu;

#[derive(SafeParams)]
#[safejax(class = "Linear")]
struct OwnedLinear {
    w: ndarray::Array2<f32>,
    b: Array1<f32>,
}

#[derive(SafeParams)]
#[safejax(borrow)]
#[safejax(class = "Linear")]
struct ObjaxLinearView<'a> {
    w: ArrayView2<'a, f32>,
    b: ArrayView1<'a, f32>,
}

#[derive(SafeParams)]
#[safejax(borrow)]
#[safejax(class = "Sequential")]
struct LayersView<'a>(ObjaxLinearView<'a>, Relu, OwnedLinear);

#[derive(SafeParams)]
#[safejax(borrow)]
#[safejax(style = "objax", class = "OMLP")]
struct OmlpView<'a> {
    layers: LayersView<'a>,
}

#[test]
fn an_objax_fixture_is_viewed_with_owned_parts() {
    let bytes = fixture_bytes("objax_mlp");
    let view = OmlpView::view(&bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(view.layers.0.w.dim(), (8, 16));
    assert_eq!(view.layers.2.w.dim(), (16, 4));
    assert!(borrows(&view.layers.0.w.view().into_dyn(), &bytes));
    assert!(!borrows(&view.layers.2.w.view().into_dyn(), &bytes));
    assert_eq!(
        SafeView::keys(&view).unwrap_or_else(|e| panic!("{e}"))[0],
        "(OMLP).layers(Sequential)[0](Linear).b::TrainVar"
    );
}

#[test]
fn a_mapped_file_is_viewed() {
    // SAFETY: nothing writes the fixture while it is mapped.
    let file = unsafe { MappedFile::open(fixture("flax_mlp")) }.unwrap_or_else(|e| panic!("{e}"));
    let view = FlaxMlpView::view(file.bytes()).unwrap_or_else(|e| panic!("{e}"));
    assert!(borrows(&view.out.kernel.view().into_dyn(), file.bytes()));
    let owned = FlaxMlp::load(fixture("flax_mlp")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(view.out.kernel, owned.out.kernel);
}

#[derive(SafeParams, Debug)]
#[safejax(borrow)]
#[safejax(style = "flax", collection = "params")]
struct TypoView<'a> {
    #[safejax(rename = "Dense_0")]
    hidden: DenseView<'a>,
    #[safejax(rename = "Dense1")]
    out: DenseView<'a>,
}

#[test]
fn views_are_strict_with_the_same_report() {
    let bytes = fixture_bytes("flax_mlp");
    let err = TypoView::view(&bytes)
        .err()
        .unwrap_or_else(|| panic!("loaded"));
    let report = err.report().unwrap_or_else(|| panic!("{err}"));
    assert_eq!(
        report.missing,
        ["params.Dense1.kernel", "params.Dense1.bias"]
    );
    assert_eq!(
        report.unexpected,
        ["params.Dense_1.bias", "params.Dense_1.kernel"]
    );
    assert!(
        err.to_string()
            .contains("did you mean `params.Dense_1.kernel`?")
    );
    let loaded = Loader::new()
        .allow_unexpected()
        .view::<TypoView<'_>>(&bytes)
        .err();
    assert!(loaded.is_some(), "missing keys are not allowed");
}

/// A file whose F32 tensor `w` starts one byte into the data, after a one-byte `a`.
fn misaligned() -> Vec<u8> {
    let mut header =
        r#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"w":{"dtype":"F32","shape":[1],"data_offsets":[1,5]}}"#
            .to_owned();
    while !header.len().is_multiple_of(8) {
        header.push(' ');
    }
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.push(7);
    bytes.extend_from_slice(&1.5f32.to_le_bytes());
    bytes
}

#[derive(SafeParams, Debug)]
#[safejax(borrow)]
struct Pair<'a> {
    a: ArrayView1<'a, u8>,
    w: ArrayView1<'a, f32>,
}

#[derive(SafeParams, Debug, PartialEq)]
struct OwnedPair {
    a: Array1<u8>,
    w: Array1<f32>,
}

#[test]
fn a_misaligned_tensor_is_refused_with_its_key_and_offset() {
    let bytes = misaligned();
    let data_start = bytes.len() - 5;
    let err = Pair::view(&bytes).err().unwrap_or_else(|| panic!("viewed"));
    let report = err.report().unwrap_or_else(|| panic!("{err}"));
    assert_eq!(report.invalid.len(), 1, "{report}");
    assert_eq!(report.invalid[0].key, "w");
    assert_eq!(
        report.invalid[0].reason,
        format!(
            "cannot be viewed as `f32` at byte {}: its bytes are not aligned to 4 bytes (copy it: load it as an owned array)",
            data_start + 1
        )
    );
    // The same file loads into owned arrays, which copy.
    let owned = OwnedPair::from_bytes(&bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(owned.w, array![1.5f32]);
}

#[derive(SafeParams, Debug)]
#[safejax(borrow)]
struct Flags<'a> {
    mask: ArrayView1<'a, bool>,
}

#[derive(SafeParams)]
#[safejax(borrow)]
struct Wide<'a> {
    w: ArrayView1<'a, f64>,
}

#[test]
fn bool_views_are_checked_and_dtypes_never_convert() {
    let good = Array1::from(vec![true, false]);
    let bytes = safejax::Saver::new()
        .to_bytes(&std::collections::BTreeMap::from([(
            "mask".to_owned(),
            good,
        )]))
        .unwrap_or_else(|e| panic!("{e}"));
    let flags = Flags::view(&bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(flags.mask, array![true, false]);
    let mut bad = bytes.clone();
    let last = bad.len() - 1;
    bad[last] = 2;
    let err = Flags::view(&bad)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("mask: cannot be viewed as `bool`"), "{err}");
    assert!(err.contains("a bool is neither 0 nor 1"), "{err}");
    // An f32 tensor is not an f64 view, even when floats may convert.
    let floats = std::collections::BTreeMap::from([("w".to_owned(), array![1.0f32])]);
    let bytes = floats.to_bytes().unwrap_or_else(|e| panic!("{e}"));
    let err = Loader::new()
        .convert_floats()
        .view::<Wide<'_>>(&bytes)
        .err()
        .unwrap_or_else(|| panic!("converted"));
    let report = err.report().unwrap_or_else(|| panic!("{err}"));
    assert_eq!(report.dtype_mismatches.len(), 1);
}

#[test]
fn tensor_views_keep_any_dtype() {
    let tensors = std::collections::BTreeMap::from([
        (
            "count".to_owned(),
            safejax::Tensor::from_array(&ndarray::arr0(7i32)),
        ),
        (
            "half".to_owned(),
            safejax::Tensor::from_array(&array![half::f16::ONE]),
        ),
        (
            "mask".to_owned(),
            safejax::Tensor::from_array(&array![true]),
        ),
    ]);
    let bytes = tensors.to_bytes().unwrap_or_else(|e| panic!("{e}"));
    type Any<'a> = std::collections::BTreeMap<String, TensorView<'a>>;
    let views = Any::view(&bytes).unwrap_or_else(|e| panic!("{e}"));
    for (name, tensor) in &tensors {
        let view = &views[name];
        assert_eq!(view.dtype(), tensor.dtype(), "{name}");
        assert_eq!(view.data(), tensor.data(), "{name}");
        assert!(
            bytes.as_ptr_range().contains(&view.data().as_ptr()),
            "{name}"
        );
    }
}
