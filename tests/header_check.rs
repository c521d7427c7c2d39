//! `Loader::check` reads a file's header alone and reports what a strict load would. Held to the
//! loads themselves: every model type here against every file here (the Python-made fixtures,
//! the real models, and files saved from these types in each style), in every style and with
//! each leniency, must give the same report, problem for problem.

mod common;
#[path = "../examples/common/transformer.rs"]
mod transformer;
#[path = "common/wide_resnet.rs"]
mod wide_resnet;

use std::collections::BTreeMap;
use std::io::Read;

use ndarray::{Array1, Array2, ArrayD, array};
use safejax::{Error, Loaded, Loader, Part, SafeParams, Saver, Style, Tensor};

use common::{FlaxMlp, fixture, fixture_bytes};

// ---- Model types with every kind of field: lists of each numbering, arrays, options, maps,
// ---- defaults, flattened lists, collections, classes, separators, scalars and dynamic leaves.

#[derive(SafeParams, Debug, Clone, PartialEq)]
struct Linear {
    w: Array2<f32>,
    b: Array1<f32>,
}

/// `haiku_mlp`: `mlp/~/linear_0.w` ...
#[derive(SafeParams, Debug, Clone, PartialEq)]
struct HkMlp {
    #[safejax(rename = "linear")]
    layers: Vec<Linear>,
}

#[derive(SafeParams, Debug, Clone, PartialEq)]
#[safejax(style = "haiku")]
struct HaikuMlp {
    mlp: HkMlp,
}

/// The same layers, numbered as Haiku numbers repeated modules: `linear`, `linear_1`.
#[derive(SafeParams, Debug, Clone, PartialEq)]
#[safejax(style = "haiku", sep = "/")]
struct HaikuNumbered {
    #[safejax(numbering = "haiku")]
    linear: Vec<Linear>,
    #[safejax(numbering = "nested")]
    nested: Vec<Linear>,
    fixed: [Linear; 2],
}

#[derive(SafeParams, Debug, Clone, PartialEq)]
struct Ema {
    average: Array2<f32>,
    hidden: Array2<f32>,
    counter: i32,
}

#[derive(SafeParams, Debug, Clone, PartialEq)]
struct HaikuBatchNorm {
    offset: Array2<f32>,
    scale: Array2<f32>,
    #[safejax(collection = "state")]
    mean_ema: Ema,
    #[safejax(collection = "state")]
    var_ema: Ema,
}

/// `haiku_bn`: params and state in one file.
#[derive(SafeParams, Debug, Clone, PartialEq)]
#[safejax(style = "haiku", collection = "params")]
struct HaikuBn {
    linear: Linear,
    batch_norm: HaikuBatchNorm,
    linear_1: Linear,
}

#[derive(SafeParams, Debug, Clone, PartialEq)]
#[safejax(class = "Linear")]
struct ObjaxLinear {
    w: Array2<f32>,
    b: Array1<f32>,
}

#[derive(SafeParams, Debug, Clone, PartialEq)]
struct Relu;

#[derive(SafeParams, Debug, Clone, PartialEq)]
#[safejax(class = "Sequential")]
struct Layers(ObjaxLinear, Relu, ObjaxLinear);

/// `objax_mlp`: `(MLP).layers(Sequential)[0](Linear).w::TrainVar` ...
#[derive(SafeParams, Debug, Clone, PartialEq)]
#[safejax(style = "objax", class = "MLP")]
struct ObjaxMlp {
    layers: Layers,
}

/// Options, maps, defaults, dynamic leaves and scalars.
#[derive(SafeParams, Debug, Clone, PartialEq)]
#[safejax(collection = "params")]
struct Assorted {
    dense: Linear,
    maybe: Option<Linear>,
    table: BTreeMap<String, Array1<f32>>,
    experts: BTreeMap<String, Linear>,
    #[safejax(default)]
    step: i64,
    any: Tensor,
    dynamic: ArrayD<f32>,
    #[safejax(collection = "batch_stats")]
    mean: Array1<f32>,
    flag: bool,
}

/// A flattened list between positional fields.
#[derive(SafeParams, Debug, Clone, PartialEq)]
#[safejax(class = "Sequential")]
struct Flattened(
    Option<ObjaxLinear>,
    #[safejax(flatten)] Vec<ObjaxLinear>,
    ObjaxLinear,
);

#[derive(SafeParams, Debug, Clone, PartialEq)]
#[safejax(collection = "params")]
struct Doubles {
    #[safejax(rename = "Dense_0")]
    hidden: Linear64,
    #[safejax(rename = "Dense_1")]
    out: Linear64,
}

#[derive(SafeParams, Debug, Clone, PartialEq)]
struct Linear64 {
    kernel: Array2<f64>,
    bias: Array2<f32>,
}

/// Tensors where the types above have lists and maps, and a neighbour of a Haiku-numbered list.
#[derive(SafeParams, Debug, Clone, PartialEq)]
#[safejax(collection = "params")]
struct Shadows {
    table: Array1<f32>,
    experts: Array1<f32>,
    linear: Array1<f32>,
    nested: Array1<f32>,
    linear_norm: Linear,
}

/// A neighbour of a Haiku-numbered list without the list.
#[derive(SafeParams, Debug, Clone, PartialEq)]
#[safejax(collection = "params")]
struct NormOnly {
    linear_norm: Linear,
}

/// Elements 0 and 10 of a list, and not 1.
#[derive(SafeParams, Debug, Clone, PartialEq)]
struct Gappy {
    #[safejax(rename = "linear_0")]
    first: Linear,
    #[safejax(rename = "linear_10")]
    tenth: Linear,
}

#[derive(SafeParams, Debug, Clone, PartialEq)]
struct Listed {
    linear: Vec<Linear>,
}

/// Integer tensors of `Assorted` read as floats.
#[derive(SafeParams, Debug, Clone, PartialEq)]
#[safejax(collection = "params")]
struct IntsAsFloats {
    any: Array1<f32>,
    step: f32,
}

fn linear(seed: f32) -> Linear {
    Linear {
        w: array![[seed, 1.0], [2.0, 3.0]],
        b: array![seed],
    }
}

fn objax_linear(seed: f32) -> ObjaxLinear {
    ObjaxLinear {
        w: array![[seed]],
        b: array![seed, 2.0],
    }
}

fn assorted() -> Assorted {
    Assorted {
        dense: linear(1.0),
        maybe: Some(linear(2.0)),
        table: BTreeMap::from([("a".into(), array![1.0]), ("b_c".into(), array![2.0])]),
        experts: BTreeMap::from([("e0".into(), linear(3.0)), ("e_1".into(), linear(4.0))]),
        step: 7,
        any: Tensor::from_array(&array![1u8, 2]),
        dynamic: array![[1.0f32]].into_dyn(),
        mean: array![0.5],
        flag: true,
    }
}

fn numbered() -> HaikuNumbered {
    HaikuNumbered {
        linear: vec![linear(1.0), linear(2.0), linear(3.0)],
        nested: vec![linear(4.0), linear(5.0)],
        fixed: [linear(6.0), linear(7.0)],
    }
}

fn flattened() -> Flattened {
    Flattened(
        Some(objax_linear(1.0)),
        vec![objax_linear(2.0), objax_linear(3.0)],
        objax_linear(4.0),
    )
}

// ---- The comparison.

/// A report with its lists sorted: what a load and a check must agree on (hints aside).
#[derive(Debug, PartialEq)]
enum Outcome {
    Ok(Vec<String>),
    Problems(Vec<String>),
    Other(String),
}

fn outcome<T>(result: safejax::Result<Loaded<T>>) -> Outcome {
    match result {
        Ok(loaded) => {
            let mut ignored = loaded.ignored;
            ignored.sort();
            Outcome::Ok(ignored)
        }
        Err(Error::Load(report)) => {
            let mut lines: Vec<String> = Vec::new();
            lines.extend(report.missing.iter().map(|k| format!("missing {k}")));
            lines.extend(report.unexpected.iter().map(|k| format!("unexpected {k}")));
            lines.extend(
                report
                    .shape_mismatches
                    .iter()
                    .map(|m| format!("shape {} {:?} {:?}", m.key, m.expected, m.found)),
            );
            lines.extend(
                report
                    .dtype_mismatches
                    .iter()
                    .map(|m| format!("dtype {} {:?} {:?}", m.key, m.expected, m.found)),
            );
            lines.extend(
                report
                    .invalid
                    .iter()
                    .map(|p| format!("invalid {} {}", p.key, p.reason)),
            );
            lines.sort();
            Outcome::Problems(lines)
        }
        Err(other) => Outcome::Other(other.to_string()),
    }
}

/// The loaders a check must agree with a load under.
fn loaders() -> Vec<(String, Loader)> {
    let mut loaders = vec![
        ("default".to_owned(), Loader::new()),
        (
            "allow_unexpected".to_owned(),
            Loader::new().allow_unexpected(),
        ),
        ("convert_floats".to_owned(), Loader::new().convert_floats()),
    ];
    for style in Style::ALL {
        loaders.push((format!("style {style}"), Loader::new().style(style)));
    }
    loaders
}

/// Checks `T` against `bytes` under every loader; returns how many cases loaded.
fn agree<T: SafeParams>(file: &str, bytes: &[u8]) -> usize {
    let mut loaded = 0;
    for (how, loader) in loaders() {
        let load = outcome(loader.from_bytes::<T>(bytes));
        let check = outcome(loader.check_bytes::<T>(bytes));
        assert_eq!(
            check,
            load,
            "`{}` against `{file}` ({how}): the check (left) and the load (right) differ",
            std::any::type_name::<T>()
        );
        loaded += usize::from(matches!(load, Outcome::Ok(_)));
    }
    loaded
}

/// Every file here: the fixtures, the real models, and values of the types above saved in
/// every style.
fn files() -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = ["flax_mlp", "haiku_mlp", "haiku_bn", "objax_mlp"]
        .iter()
        .map(|name| (name.to_string(), fixture_bytes(name)))
        .collect();
    for name in ["haiku_transformer_lm", "objax_wide_resnet"] {
        let bytes = std::fs::read(common::real_model(name)).unwrap_or_else(|e| panic!("{e}"));
        files.push((name.to_owned(), bytes));
    }
    for style in Style::ALL {
        let saver = Saver::new().style(style);
        let save = |what: &str, bytes: safejax::Result<Vec<u8>>| {
            (
                format!("{what} in {style}"),
                bytes.unwrap_or_else(|e| panic!("{e}")),
            )
        };
        files.push(save("assorted", saver.to_bytes(&assorted())));
        files.push(save("numbered", saver.to_bytes(&numbered())));
        files.push(save("flattened", saver.to_bytes(&flattened())));
        let mut fewer = numbered();
        fewer.linear.truncate(1);
        files.push(save("numbered, one linear", saver.to_bytes(&fewer)));
        let shadows = Shadows {
            table: array![1.0],
            experts: array![2.0],
            linear: array![3.0],
            nested: array![4.0],
            linear_norm: linear(5.0),
        };
        files.push(save("shadows", saver.to_bytes(&shadows)));
        files.push(save(
            "shadows without collection",
            saver.clone().without_collection().to_bytes(&shadows),
        ));
        let norm = NormOnly {
            linear_norm: linear(1.0),
        };
        files.push(save("norm only", saver.to_bytes(&norm)));
        let gappy = Gappy {
            first: linear(1.0),
            tenth: linear(2.0),
        };
        files.push(save("gappy", saver.to_bytes(&gappy)));
        let inner = |name: &str| BTreeMap::from([(name.to_owned(), array![1.0f32])]);
        let maps = BTreeMap::from([
            ("a".to_owned(), inner("b_c")),
            ("x_y".to_owned(), inner("z")),
        ]);
        files.push(save("maps of maps", saver.to_bytes(&maps)));
        let mut sparse = assorted();
        sparse.maybe = None;
        sparse.table.clear();
        files.push(save(
            "assorted, no option or table",
            saver.to_bytes(&sparse),
        ));
    }
    files
}

#[test]
fn a_check_reports_what_a_load_does_for_every_type_file_and_style() {
    let mut loaded = 0;
    let mut cases = 0;
    for (file, bytes) in files() {
        loaded += agree::<FlaxMlp>(&file, &bytes);
        loaded += agree::<Doubles>(&file, &bytes);
        loaded += agree::<HaikuMlp>(&file, &bytes);
        loaded += agree::<HaikuNumbered>(&file, &bytes);
        loaded += agree::<HaikuBn>(&file, &bytes);
        loaded += agree::<ObjaxMlp>(&file, &bytes);
        loaded += agree::<Assorted>(&file, &bytes);
        loaded += agree::<Flattened>(&file, &bytes);
        loaded += agree::<transformer::Params>(&file, &bytes);
        loaded += agree::<wide_resnet::WideResNet>(&file, &bytes);
        loaded += agree::<Vec<Linear>>(&file, &bytes);
        loaded += agree::<BTreeMap<String, Tensor>>(&file, &bytes);
        loaded += agree::<Shadows>(&file, &bytes);
        loaded += agree::<Listed>(&file, &bytes);
        loaded += agree::<IntsAsFloats>(&file, &bytes);
        loaded += agree::<BTreeMap<String, BTreeMap<String, Array1<f32>>>>(&file, &bytes);
        loaded += agree::<BTreeMap<String, Vec<Linear>>>(&file, &bytes);
        cases += 17 * loaders().len();
    }
    // Most pairs disagree; enough agree that the clean outcome is compared too.
    assert!(loaded >= 40, "only {loaded} of {cases} cases loaded");
}

#[test]
fn a_check_agrees_with_a_load_over_several_files() {
    let saver = |style| Saver::new().style(style);
    let bn = fixture_bytes("haiku_bn");
    let value = HaikuBn::from_bytes(&bn).unwrap_or_else(|e| panic!("{e}"));
    let params = saver(Style::Haiku)
        .only(["params"])
        .without_collection()
        .to_bytes(&value)
        .unwrap_or_else(|e| panic!("{e}"));
    let state = saver(Style::Haiku)
        .only(["state"])
        .to_bytes(&value)
        .unwrap_or_else(|e| panic!("{e}"));
    let split = [
        Part::bytes(&params)
            .collections(["params"])
            .without_collection(),
        Part::bytes(&state).collections(["state"]),
    ];
    let wrong = [
        Part::bytes(&params).collections(["params"]),
        Part::bytes(&state).collections(["state"]),
    ];
    let half = [Part::bytes(&params)
        .collections(["params"])
        .without_collection()];
    for parts in [&split[..], &wrong[..], &half[..]] {
        for (how, loader) in loaders() {
            let load = outcome(loader.read::<HaikuBn>(parts));
            let check = outcome(loader.check_parts::<HaikuBn>(parts));
            assert_eq!(check, load, "{how}");
        }
    }
    assert!(Loader::new().check_parts::<HaikuBn>(&split).is_ok());
}

// ---- Only the header is read.

/// A reader that counts the bytes it hands out.
struct Counting<R> {
    inner: R,
    read: usize,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n;
        Ok(n)
    }
}

fn header_len(bytes: &[u8]) -> usize {
    let mut len = [0u8; 8];
    len.copy_from_slice(&bytes[..8]);
    8 + u64::from_le_bytes(len) as usize
}

#[test]
fn a_check_reads_the_header_and_nothing_else() {
    let bytes =
        std::fs::read(common::real_model("haiku_transformer_lm")).unwrap_or_else(|e| panic!("{e}"));
    let head = header_len(&bytes);
    assert!(
        bytes.len() > head + 1000,
        "the file has data after its header"
    );
    let mut counting = Counting {
        inner: &bytes[..],
        read: 0,
    };
    Loader::new()
        .check_from::<transformer::Params>(&mut counting)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(counting.read, head, "bytes read: the header's, and no data");

    // A file cut right after its header passes the check and fails the load.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let cut = dir.path().join("cut.safetensors");
    std::fs::write(&cut, &bytes[..head]).unwrap_or_else(|e| panic!("{e}"));
    Loader::new()
        .check::<transformer::Params>(&cut)
        .unwrap_or_else(|e| panic!("{e}"));
    let Err(err) = transformer::Params::load(&cut) else {
        panic!("the cut file loaded");
    };
    assert!(matches!(err, Error::Format { .. }), "{err}");
}

#[test]
fn a_header_only_file_is_the_first_bytes_of_the_file_and_checks_as_it_does() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let head = dir.path().join("flax_mlp.header");
    safejax::format::write_header_only(fixture("flax_mlp"), &head)
        .unwrap_or_else(|e| panic!("{e}"));
    let bytes = fixture_bytes("flax_mlp");
    let written = std::fs::read(&head).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(written, bytes[..header_len(&bytes)]);
    assert_eq!(
        outcome(Loader::new().check::<FlaxMlp>(&head)),
        outcome(Loader::new().check::<FlaxMlp>(fixture("flax_mlp")))
    );
    assert_eq!(
        outcome(Loader::new().check::<Doubles>(&head)),
        outcome(Loader::new().from_bytes::<Doubles>(&bytes))
    );
    // Not safetensors: the error names the file and the offset.
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not a checkpoint").unwrap_or_else(|e| panic!("{e}"));
    let err = safejax::format::write_header_only(&text, dir.path().join("x"))
        .expect_err("a text file has no header");
    assert!(err.to_string().contains("notes.txt"), "{err}");
    assert!(!dir.path().join("x").exists());
}

#[test]
fn a_recursive_type_is_refused_by_the_check_with_a_reason() {
    #[derive(SafeParams, Debug)]
    struct Chain {
        w: Array1<f32>,
        next: Option<Box<Chain>>,
    }
    let value = Chain {
        w: array![1.0],
        next: Some(Box::new(Chain {
            w: array![2.0],
            next: None,
        })),
    };
    let bytes = value.to_bytes().unwrap_or_else(|e| panic!("{e}"));
    Chain::from_bytes(&bytes).unwrap_or_else(|e| panic!("{e}"));
    let err = Loader::new()
        .check_bytes::<Chain>(&bytes)
        .expect_err("refused");
    let report = err.report().unwrap_or_else(|| panic!("{err}"));
    assert_eq!(report.invalid.len(), 1, "{err}");
    assert_eq!(report.invalid[0].key, "next");
    assert!(
        report.invalid[0].reason.contains("recursive"),
        "{}",
        report.invalid[0].reason
    );
}

// ---- The schema, as people read it.

#[test]
fn a_schema_lists_every_key_pattern_with_its_dtype_and_rank() {
    assert_eq!(
        FlaxMlp::schema().to_string(),
        "params.Dense_0.kernel  f32 rank 2\n\
         params.Dense_0.bias  f32 rank 1\n\
         params.Dense_1.kernel  f32 rank 2\n\
         params.Dense_1.bias  f32 rank 1\n"
    );
    let lines = |schema: safejax::schema::Schema| -> Vec<String> {
        schema.to_string().lines().map(str::to_owned).collect()
    };
    let transformer = lines(transformer::Params::schema());
    for line in [
        "language_model/embed.embeddings  f32 rank 2",
        // Haiku numbers repeated modules `linear`, `linear_1`, ...: element 0 has no suffix.
        "transformer/linear{_i}.w  f32 rank 2  (optional)",
    ] {
        assert!(transformer.contains(&line.to_owned()), "{transformer:#?}");
    }
    let resnet = lines(wide_resnet::WideResNet::schema());
    for line in [
        "(WideResNet)[0](Conv2D).w::TrainVar  f32 rank 4",
        "(WideResNet)[1+{j}](WRNBlock).proj_conv(Conv2D).w::TrainVar  f32 rank 4  (optional)",
        // After the flattened blocks, positions move by their number.
        "(WideResNet)[{n}+1](BatchNorm2D).running_mean::StateVar  f32 rank 4",
    ] {
        assert!(resnet.contains(&line.to_owned()), "{resnet:#?}");
    }
    let assorted = lines(Assorted::schema_in(Style::Haiku));
    for line in [
        "params.maybe.w  f32 rank 2  (optional)",
        "params.table_{key}  f32 rank 1  (optional)",
        "params.step  i64 rank 0  (optional)",
        "params.any  any dtype any rank",
        "params.dynamic  f32 any rank",
        "batch_stats.mean  f32 rank 1",
    ] {
        assert!(assorted.contains(&line.to_owned()), "{assorted:#?}");
    }
}
