//! The `safejax` command-line tool: look at a checkpoint the way its framework sees it, write the
//! Rust structs that load it, and check, compare and convert files.
//!
//! Exit codes: `0` when everything is fine, `1` when `check` finds a problem or `diff` a
//! difference, `2` for a usage error or a file that cannot be read or written.

use std::io::Write;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub mod check;
pub mod checkpoint;
pub mod codegen;
pub mod convert;
pub mod detect;
pub mod diff;
pub mod inspect;
pub mod legacy;
pub mod output;
pub mod units;
pub mod values;

/// The command line.
#[derive(Debug, Parser)]
#[command(name = "safejax", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Shows the key tree of files as their framework sees it, with dtypes, shapes and sizes.
    Inspect(InspectArgs),
    /// Prints the Rust source of `#[derive(SafeParams)]` structs that load a file strictly.
    Codegen(CodegenArgs),
    /// Validates files completely; exits with 1 on any problem.
    Check(CheckArgs),
    /// Compares two files; exits with 0 only if they are equal within the tolerances.
    Diff(DiffArgs),
    /// Converts float dtypes, renames keys and keeps some of them, streaming tensor by tensor.
    Convert(ConvertArgs),
}

/// How keys are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum StyleArg {
    /// Recognised from the keys.
    #[default]
    Auto,
    /// `params.Dense_0.kernel`.
    Flax,
    /// `params.mlp/~/linear_0.w`.
    Haiku,
    /// `(Sequential)[0](Linear).w`.
    Objax,
}

/// `safejax inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The `.safetensors` files to show, or indexes of sharded checkpoints.
    #[arg(required = true)]
    pub files: Vec<std::path::PathBuf>,
    /// How the keys are named.
    #[arg(long, value_enum, default_value_t)]
    pub style: StyleArg,
    /// Prints JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `safejax codegen`.
#[derive(Debug, Args)]
pub struct CodegenArgs {
    /// The file (or index) to write structs for.
    pub file: std::path::PathBuf,
    /// How the keys are named.
    #[arg(long, value_enum, default_value_t)]
    pub style: StyleArg,
    /// The name of the root struct.
    #[arg(long, default_value = "Model")]
    pub root: String,
    /// Pins the root struct to the file with `#[safejax(expect = "...")]`, checked when the
    /// generated code compiles.
    #[arg(long)]
    pub expect: bool,
}

/// `safejax check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The `.safetensors` files to check, or indexes of sharded checkpoints (checked against
    /// their shards).
    #[arg(required = true)]
    pub files: Vec<std::path::PathBuf>,
    /// Also counts NaN and infinite values in every float tensor.
    #[arg(long)]
    pub values: bool,
}

/// `safejax diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The first file (or index of a sharded checkpoint).
    pub a: std::path::PathBuf,
    /// The second file (or index).
    pub b: std::path::PathBuf,
    /// Absolute tolerance: floats are equal when |a-b| <= atol + rtol*|b|.
    #[arg(long, default_value_t = 0.0)]
    pub atol: f64,
    /// Relative tolerance (to B's values).
    #[arg(long, default_value_t = 0.0)]
    pub rtol: f64,
}

/// `safejax convert`.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// The file (or index of a sharded checkpoint) to read; also a Flax msgpack (`.msgpack`),
    /// a pickle of Haiku parameters (`.pkl`, `.pickle`) or an npz of Haiku or Objax parameters
    /// (`.npz`), read without executing anything.
    pub input: std::path::PathBuf,
    /// The file to write, replaced atomically; an index (`*.safetensors.index.json`) writes
    /// shards beside it, then the index.
    pub output: std::path::PathBuf,
    /// Converts every F16, BF16, F32 and F64 tensor to this dtype.
    #[arg(long, value_parser = ["f16", "bf16", "f32", "f64"])]
    pub dtype: Option<String>,
    /// Renames keys: `REGEX=REPLACEMENT`, every match replaced, rules applied in order.
    #[arg(long = "rename", value_name = "REGEX=REPLACEMENT")]
    pub renames: Vec<String>,
    /// Keeps only the keys that start with one of these prefixes (before renaming).
    #[arg(long = "only", value_name = "PREFIX")]
    pub only: Vec<String>,
    /// The most tensor bytes one output file may hold (SI units: `5GB` is 5*10^9 bytes; `GiB`
    /// is 2^30); when OUTPUT is an index, the size of its shards (default 5GB).
    #[arg(long, value_name = "SIZE")]
    pub max_shard_size: Option<String>,
    /// For an input in another format: how its tree is named (default: flax for msgpack,
    /// haiku for pickles and `scope//name` npz, objax for Objax npz).
    #[arg(long, value_enum)]
    pub style: Option<StyleArg>,
    /// For an Objax npz: the variables whose name matches become `StateVar`, the others
    /// `TrainVar` (the npz does not record it).
    #[arg(long, value_name = "REGEX")]
    pub state_vars: Option<String>,
    /// For an Objax npz: `REGEX=KIND` gives matching variables that kind (`TrainVar`,
    /// `StateVar`, `RandomState`, `TrainRef`, ...); the first matching rule wins, before
    /// `--state-vars`.
    #[arg(long = "var-kind", value_name = "REGEX=KIND")]
    pub var_kinds: Vec<String>,
}

/// What a command found, when it could do its work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// All is well: exit code 0.
    Clean,
    /// Differences or problems were found and reported: exit code 1.
    Found,
}

/// Why a command could not do its work: one line naming the file and the cause (exit code 2).
#[derive(Debug)]
pub struct Failure(pub String);

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Failure {
    /// A failure that prints nothing (exit code 2 all the same): the reader of the report
    /// closed it.
    pub fn quiet() -> Self {
        Failure(String::new())
    }

    /// A failure about `path`.
    pub fn at(path: &std::path::Path, cause: impl std::fmt::Display) -> Self {
        Failure(format!("{}: {cause}", path.display()))
    }
}

/// Runs a parsed command, writing its report to `out`.
pub fn run(cli: &Cli, out: &mut dyn Write) -> Result<Outcome, Failure> {
    match &cli.command {
        Command::Inspect(args) => inspect::run(args, out),
        Command::Codegen(args) => codegen::run(args, out),
        Command::Check(args) => check::run(args, out),
        Command::Diff(args) => diff::run(args, out),
        Command::Convert(args) => convert::run(args, out),
    }
}

/// The command's entry point: parses the arguments, runs, and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match run(&cli, &mut out) {
        Ok(Outcome::Clean) => ExitCode::SUCCESS,
        Ok(Outcome::Found) => ExitCode::from(1),
        Err(failure) => {
            let _ = out.flush();
            if !failure.0.is_empty() {
                eprintln!("safejax: {failure}");
            }
            ExitCode::from(2)
        }
    }
}
