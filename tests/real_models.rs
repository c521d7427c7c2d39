//! Checkpoints of real models written by Python safejax: Haiku's example transformer language
//! model and Objax's WideResNet. Through the dynamic tree API every tensor's dtype, shape and
//! sha256 match the manifest and serializing back gives the identical bytes; the transformer's
//! forward pass in Rust gives JAX's logits.

mod common;
#[path = "../examples/common/transformer.rs"]
mod transformer;
#[path = "common/wide_resnet.rs"]
mod wide_resnet;

use common::{assert_matches_manifest, real_model, real_model_manifest};
use safejax::{haiku, objax};

const TRANSFORMER: &str = "haiku_transformer_lm";
const WIDE_RESNET: &str = "objax_wide_resnet";

fn tensor_count(entry: &serde_json::Value) -> usize {
    entry["tensors"].as_object().map_or(0, |m| m.len())
}

fn file_bytes(name: &str) -> Vec<u8> {
    std::fs::read(real_model(name)).unwrap_or_else(|e| panic!("cannot read {name}: {e}"))
}

#[test]
fn haiku_transformer_round_trips_byte_for_byte() {
    let params = haiku::deserialize_file(real_model(TRANSFORMER)).unwrap_or_else(|e| panic!("{e}"));
    let entry = real_model_manifest(TRANSFORMER);
    let flat = params.flatten().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(flat.len(), tensor_count(&entry), "number of tensors");
    for (key, tensor) in flat {
        assert_matches_manifest(&entry, &key, tensor);
    }
    // Two levels, as Haiku has them: module path, then parameter name.
    assert!(
        params
            .get("transformer/multi_head_attention_1/query")
            .is_some()
    );
    assert_eq!(
        haiku::serialize(&params, None).unwrap_or_else(|e| panic!("{e}")),
        file_bytes(TRANSFORMER)
    );
}

#[test]
fn objax_wide_resnet_round_trips_byte_for_byte() {
    let vars = objax::deserialize_file(real_model(WIDE_RESNET)).unwrap_or_else(|e| panic!("{e}"));
    let entry = real_model_manifest(WIDE_RESNET);
    assert_eq!(vars.len(), tensor_count(&entry), "number of variables");
    for (name, var) in &vars {
        assert_matches_manifest(&entry, &format!("{name}::{}", var.kind), &var.tensor);
    }
    let statistics = vars
        .values()
        .filter(|var| var.kind == objax::VarKind::StateVar)
        .count();
    // `running_mean` and `running_var` of 13 BatchNorm2D.
    assert_eq!(statistics, 26);
    assert_eq!(
        objax::serialize(&vars, None).unwrap_or_else(|e| panic!("{e}")),
        file_bytes(WIDE_RESNET)
    );
}

#[test]
fn haiku_transformer_forward_matches_jax() {
    let params =
        transformer::load_params(real_model(TRANSFORMER)).unwrap_or_else(|e| panic!("{e}"));
    let (tokens, want) = transformer::recorded_io().unwrap_or_else(|e| panic!("{e}"));
    let err = transformer::max_abs_err(&params.forward(&tokens), &want);
    assert!(
        err <= transformer::TOLERANCE,
        "max_abs_err={err:e} exceeds {:e}",
        transformer::TOLERANCE
    );
}

/// Declared the natural way (one `Vec` per kind of repeated module, Haiku's numbering, a
/// struct-wide `/`), the transformer loads strictly and saves back the file Python wrote.
#[test]
fn haiku_transformer_derived_struct_re_saves_byte_for_byte() {
    use safejax::SafeParams;
    let params =
        transformer::load_params(real_model(TRANSFORMER)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(params.transformer.layer_norm.len(), 5);
    assert_eq!(params.transformer.multi_head_attention.len(), 2);
    assert_eq!(params.transformer.linear.len(), 4);
    assert_eq!(
        params.to_bytes().unwrap_or_else(|e| panic!("{e}")),
        file_bytes(TRANSFORMER)
    );
}

#[test]
fn transformer_load_reports_every_problem_at_once() {
    // The WideResNet's keys, split on `.` as Haiku's: none is the transformer's.
    let err = match transformer::load_params(real_model(WIDE_RESNET)) {
        Ok(_) => panic!("a WideResNet loaded as the transformer"),
        Err(err) => err,
    };
    let report = err
        .report()
        .unwrap_or_else(|| panic!("not a load report: {err}"));
    // The lists read no element (a list of none is a list); every other tensor is missing.
    assert_eq!(
        report.missing,
        [
            "language_model.positional_embeddings",
            "language_model/embed.embeddings",
            "language_model/linear.w",
            "language_model/linear.b",
        ]
    );
    assert_eq!(
        report.unexpected.len(),
        tensor_count(&real_model_manifest(WIDE_RESNET))
    );
}

#[test]
fn objax_wide_resnet_loads_with_its_blocks_in_a_vec() {
    use safejax::{SafeParams, Style};
    use wide_resnet::WideResNet;
    let model = WideResNet::load(real_model(WIDE_RESNET)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(model.1.len(), 6);
    let projected: Vec<bool> = model.1.iter().map(|b| b.proj_conv.is_some()).collect();
    assert_eq!(projected, [false, false, true, false, true, false]);
    assert_eq!(model.5.w.dim(), (64, 10));
    assert_eq!(
        model.to_bytes().unwrap_or_else(|e| panic!("{e}")),
        file_bytes(WIDE_RESNET)
    );
    // Any number of blocks, in every style: positions after the list follow its length.
    for blocks in [0, 1, 3] {
        let mut smaller = model.clone();
        smaller.1.truncate(blocks);
        let keys = smaller
            .keys_in(Style::Flax)
            .unwrap_or_else(|e| panic!("{e}"));
        let linear = format!("layers_{}.w", blocks + 4);
        assert!(keys.contains(&linear), "{linear} not in {keys:?}");
        let objax = smaller.keys().unwrap_or_else(|e| panic!("{e}"));
        let linear = format!("(WideResNet)[{}](Linear).w::TrainVar", blocks + 4);
        assert!(objax.contains(&linear), "{linear} not in {objax:?}");
        for style in Style::ALL {
            let bytes = safejax::Saver::new()
                .style(style)
                .to_bytes(&smaller)
                .unwrap_or_else(|e| panic!("{e}"));
            let back = safejax::Loader::new()
                .style(style)
                .from_bytes::<WideResNet>(&bytes)
                .unwrap_or_else(|e| panic!("{style}, {blocks} blocks: {e}"))
                .value;
            assert!(back == smaller, "{style}, {blocks} blocks");
        }
    }
}

/// A `VarCollection` whose kinds were lost (as an npz loses them: every variable a
/// `TrainVar`) loads into the WideResNet with the kinds the struct gives, BatchNorm statistics
/// as `StateVar`s.
#[test]
fn objax_wide_resnet_loads_from_vars_with_the_kinds_of_its_struct() {
    use safejax::{Loader, SafeParams, VarKind};
    use wide_resnet::WideResNet;
    let mut vars =
        objax::deserialize_file(real_model(WIDE_RESNET)).unwrap_or_else(|e| panic!("{e}"));
    let state = vars
        .values()
        .filter(|v| v.kind == VarKind::StateVar)
        .count();
    assert!(state > 0);
    for var in vars.values_mut() {
        var.kind = VarKind::TrainVar;
    }
    let model = Loader::new()
        .from_vars::<WideResNet>(&vars)
        .unwrap_or_else(|e| panic!("{e}"))
        .value;
    assert_eq!(
        model.to_bytes().unwrap_or_else(|e| panic!("{e}")),
        file_bytes(WIDE_RESNET)
    );
    // A variable the struct does not have still fails the load.
    let (path, var) = vars
        .iter()
        .next()
        .map(|(p, v)| (p.clone(), v.clone()))
        .unwrap_or_else(|| panic!("a variable"));
    vars.insert(format!("{path}_extra"), var);
    let err = Loader::new()
        .from_vars::<WideResNet>(&vars)
        .map(|_| ())
        .unwrap_err();
    assert!(err.to_string().contains("_extra::TrainVar"), "{err}");
}

/// A tree (as the readers of other formats give) loads strictly into the transformer's structs.
#[test]
fn haiku_transformer_loads_from_a_tree() {
    use safejax::{Loader, SafeParams};
    let tree = haiku::deserialize_file(real_model(TRANSFORMER)).unwrap_or_else(|e| panic!("{e}"));
    let params = Loader::new()
        .from_tree::<transformer::Params>(&tree)
        .unwrap_or_else(|e| panic!("{e}"))
        .value;
    assert_eq!(
        params.to_bytes().unwrap_or_else(|e| panic!("{e}")),
        file_bytes(TRANSFORMER)
    );
}
