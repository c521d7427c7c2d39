//! Derived structs holding every kind of tensor real checkpoints carry: f16 and bf16 weights,
//! 0-d int32 counters, bool masks, int64 and uint8 tables; and Flax params saved with and
//! without the collection level.

mod common;

use half::{bf16, f16};
use ndarray::{Array1, Array2, ShapeBuilder, array};
use safejax::{Dtype, Loader, Part, SafeParams, Saver, Style, Tree, flax};

#[derive(SafeParams, Debug, PartialEq, Clone)]
struct Embed {
    embedding: Array2<bf16>,
}

#[derive(SafeParams, Debug, PartialEq, Clone)]
struct Ema {
    average: Array1<f16>,
    counter: i32,
}

#[derive(SafeParams, Debug, PartialEq, Clone)]
#[safejax(style = "flax", collection = "params")]
struct Mixed {
    embed: Embed,
    #[safejax(collection = "state")]
    ema: Ema,
    #[safejax(collection = "constants")]
    mask: Array2<bool>,
    #[safejax(collection = "constants")]
    vocab_ids: Array1<i64>,
    #[safejax(collection = "constants")]
    lut: Array1<u8>,
}

fn mixed() -> Mixed {
    Mixed {
        embed: Embed {
            embedding: array![
                [bf16::from_f32(0.5), bf16::from_f32(-1.25)],
                [bf16::MAX, bf16::MIN_POSITIVE]
            ],
        },
        ema: Ema {
            average: array![f16::from_f32(0.1), f16::NEG_INFINITY],
            counter: 7,
        },
        mask: array![[true, false], [false, true]],
        vocab_ids: array![i64::MIN, 0, i64::MAX],
        lut: array![0u8, 128, 255],
    }
}

#[test]
fn every_dtype_keeps_its_safetensors_dtype_and_round_trips_in_each_style() {
    let model = mixed();
    let bytes = model.to_bytes().unwrap_or_else(|e| panic!("{e}"));
    let tree = flax::deserialize(&bytes).unwrap_or_else(|e| panic!("{e}"));
    let dtype = |key: &str| tree.tensor(key).map(|t| (t.dtype(), t.shape().to_vec()));
    assert_eq!(
        dtype("params.embed.embedding"),
        Some((Dtype::BF16, vec![2, 2]))
    );
    assert_eq!(dtype("state.ema.average"), Some((Dtype::F16, vec![2])));
    assert_eq!(dtype("state.ema.counter"), Some((Dtype::I32, vec![])));
    assert_eq!(dtype("constants.mask"), Some((Dtype::BOOL, vec![2, 2])));
    assert_eq!(dtype("constants.vocab_ids"), Some((Dtype::I64, vec![3])));
    assert_eq!(dtype("constants.lut"), Some((Dtype::U8, vec![3])));
    for style in Style::ALL {
        let bytes = Saver::new()
            .style(style)
            .to_bytes(&model)
            .unwrap_or_else(|e| panic!("{e}"));
        let back = Loader::new().style(style).from_bytes::<Mixed>(&bytes);
        assert_eq!(
            back.map(|l| l.value)
                .unwrap_or_else(|e| panic!("{style}: {e}")),
            model
        );
    }
}

#[test]
fn flax_params_save_and_load_with_or_without_the_collection_level() {
    use common::FlaxMlp as Mlp;
    let mlp = Mlp::load(common::fixture("flax_mlp")).unwrap_or_else(|e| panic!("{e}"));
    // `serialize(variables["params"])`: no collection level in the keys.
    let bare = Saver::new()
        .only(["params"])
        .without_collection()
        .to_bytes(&mlp);
    let bare = bare.unwrap_or_else(|e| panic!("{e}"));
    let tree: Tree = flax::deserialize(&bare).unwrap_or_else(|e| panic!("{e}"));
    assert!(tree.tensor("Dense_0.kernel").is_some());
    assert!(tree.get("params").is_none());
    let part = Part::bytes(&bare)
        .collections(["params"])
        .without_collection();
    let back = Loader::new()
        .read::<Mlp>(&[part])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back.value, mlp);
    // Read as if whole, the bare file lacks every key the struct needs.
    let err = Mlp::from_bytes(&bare).unwrap_err();
    assert_eq!(err.report().map(|r| r.missing.len()), Some(4));
    // With the collection level, the params alone are the fixture itself.
    let with = Saver::new()
        .only(["params"])
        .to_bytes(&mlp)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(with, common::fixture_bytes("flax_mlp"));
}

#[test]
fn non_contiguous_arrays_write_their_logical_order() {
    #[derive(SafeParams, Debug, PartialEq)]
    struct Dense {
        kernel: Array2<f32>,
    }
    let row_major = array![[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]];
    // Owned, but column-major: the same logical matrix laid out by columns.
    let column_major = Array2::from_shape_vec((2, 3).f(), vec![1.0f32, 4.0, 2.0, 5.0, 3.0, 6.0]);
    let column_major = column_major.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(column_major, row_major);
    assert!(column_major.as_slice().is_none());
    let a = Dense { kernel: row_major };
    let b = Dense {
        kernel: column_major,
    };
    let bytes = a.to_bytes().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(b.to_bytes().unwrap_or_else(|e| panic!("{e}")), bytes);
    assert_eq!(
        Dense::from_bytes(&bytes).unwrap_or_else(|e| panic!("{e}")),
        b
    );
}
