//! Every Python-made fixture through the dynamic tree API: each tensor's dtype, shape and sha256
//! match the manifest, and serializing back gives the identical bytes.

mod common;

use common::{FIXTURES, assert_matches_manifest, fixture, fixture_bytes, manifest};
use safejax::{Tree, flax, haiku, objax};

fn flat(tree: &Tree) -> Vec<(String, &safejax::Tensor)> {
    tree.flatten().unwrap_or_else(|e| panic!("{e}"))
}

fn check_tree(name: &str, tree: &Tree) {
    let entry = manifest(name);
    let keys = flat(tree);
    let want = entry["tensors"].as_object().map_or(0, |m| m.len());
    assert_eq!(keys.len(), want, "{name}: number of tensors");
    for (key, tensor) in keys {
        assert_matches_manifest(&entry, &key, tensor);
    }
}

#[test]
fn flax_fixture_round_trips_byte_for_byte() {
    let bytes = fixture_bytes("flax_mlp");
    let variables = flax::deserialize(&bytes).unwrap_or_else(|e| panic!("{e}"));
    check_tree("flax_mlp", &variables);
    // Nested as Python restores it: collection, module, parameter.
    assert!(matches!(
        variables.get("params"),
        Some(safejax::Node::Tree(_))
    ));
    assert_eq!(
        flax::serialize(&variables, None).unwrap_or_else(|e| panic!("{e}")),
        bytes
    );
}

#[test]
fn haiku_fixtures_round_trip_byte_for_byte() {
    for name in ["haiku_mlp", "haiku_bn"] {
        let bytes = fixture_bytes(name);
        let params = haiku::deserialize(&bytes).unwrap_or_else(|e| panic!("{e}"));
        check_tree(name, &params);
        assert_eq!(
            haiku::serialize(&params, None).unwrap_or_else(|e| panic!("{e}")),
            bytes,
            "{name}"
        );
    }
    let bn = haiku::deserialize(&fixture_bytes("haiku_bn")).unwrap_or_else(|e| panic!("{e}"));
    let counter = bn
        .tensor("state.batch_norm/~/mean_ema.counter")
        .unwrap_or_else(|| panic!("counter"));
    let counter: ndarray::Array0<i32> = counter.to_array().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(counter.into_scalar(), 1);
}

#[test]
fn objax_fixture_round_trips_byte_for_byte() {
    let bytes = fixture_bytes("objax_mlp");
    let vars = objax::deserialize(&bytes).unwrap_or_else(|e| panic!("{e}"));
    let entry = manifest("objax_mlp");
    assert_eq!(vars.len(), 4);
    for (name, var) in &vars {
        assert_eq!(var.kind, objax::VarKind::TrainVar);
        assert_matches_manifest(&entry, &format!("{name}::{}", var.kind), &var.tensor);
    }
    assert_eq!(
        objax::serialize(&vars, None).unwrap_or_else(|e| panic!("{e}")),
        bytes
    );
}

#[test]
fn file_functions_round_trip_with_metadata() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let metadata: safejax::Metadata = [
        ("framework".to_owned(), "flax".to_owned()),
        ("step".to_owned(), "100".to_owned()),
    ]
    .into();
    for name in FIXTURES {
        let tree = flax::deserialize_file(fixture(name)).unwrap_or_else(|e| panic!("{e}"));
        let out = dir.path().join(format!("{name}.safetensors"));
        flax::serialize_to_file(&tree, &out, Some(&metadata)).unwrap_or_else(|e| panic!("{e}"));
        let (back, meta) =
            flax::deserialize_file_with_metadata(&out).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, tree, "{name}");
        assert_eq!(meta, metadata, "{name}");
        // The same inputs always give the same bytes, metadata included.
        let again = flax::serialize(&tree, Some(&metadata)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            std::fs::read(&out).unwrap_or_else(|e| panic!("{e}")),
            again,
            "{name}"
        );
    }
}

#[test]
fn objax_assignment_checks_everything_before_assigning() {
    let bytes = fixture_bytes("objax_mlp");
    let mut vars = objax::deserialize(&bytes).unwrap_or_else(|e| panic!("{e}"));
    let original = vars.clone();
    // Zero the model, then assign the file into it.
    for var in vars.values_mut() {
        let zeros = vec![0u8; var.tensor.data().len()];
        var.tensor = safejax::Tensor::new(var.tensor.dtype(), var.tensor.shape().to_vec(), zeros)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    objax::deserialize_with_assignment(&bytes, &mut vars).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(vars, original);

    // A collection that lacks one of the file's variables: refused, and nothing assigned.
    let mut smaller = original.clone();
    smaller.remove("(OMLP).layers(Sequential)[2](Linear).b");
    let w0 = "(OMLP).layers(Sequential)[0](Linear).w";
    let zeros = vec![0u8; smaller[w0].tensor.data().len()];
    let zeroed = safejax::Tensor::new(safejax::Dtype::F32, vec![8, 16], zeros)
        .unwrap_or_else(|e| panic!("{e}"));
    if let Some(var) = smaller.get_mut(w0) {
        var.tensor = zeroed.clone();
    }
    let err = objax::deserialize_with_assignment(&bytes, &mut smaller)
        .err()
        .map(|e| e.to_string());
    let err = err.unwrap_or_default();
    assert!(
        err.contains("(OMLP).layers(Sequential)[2](Linear).b::TrainVar"),
        "{err}"
    );
    assert_eq!(
        smaller[w0].tensor, zeroed,
        "nothing may be assigned on failure"
    );
}
