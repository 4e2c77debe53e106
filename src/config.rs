//! From command-line arguments to typed configuration, in one place.
//! Stages receive these types and never see clap.

use crate::cli::InputArgs;
use crate::read::ReadOptions;
use crate::validate::ValidateOptions;

/// Reading and validation options from the input flags. A bad value here is
/// a usage error (exit 2) whose message names the flag.
pub fn input_options(args: &InputArgs) -> anyhow::Result<(ReadOptions, ValidateOptions)> {
    let read = ReadOptions {
        format: args.format,
        ..ReadOptions::default()
    };
    let validate = ValidateOptions {
        mode: args.conversations,
        ..ValidateOptions::default()
    };
    Ok((read, validate))
}
